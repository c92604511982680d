"""Every MLflow call of sansetu: tracking, the model registry and the champion/challenger gate.

A training run logs its parameters, the test-period metrics of every system, feature importance,
data fingerprints and the model (the lightgbm flavour, logging the Booster trimmed to its best
iteration, with a signature) and registers it as a new version of ``registered_model``. The new
version gets the alias ``challenger``. The alias ``champion`` moves only when the challenger beats
the current champion on the *same* test rows by ``promotion_margin`` on ``promotion_metric`` (the
champion is re-scored on the challenger's test set in the same run). Moving ``champion`` keeps the
version it left in ``previous-champion``, so that :meth:`ModelRegistry.rollback` can restore it.
Readers load ``models:/<name>@champion``, never "latest"; no deprecated registry stages are used.

The tracking store defaults to SQLite in the workspace (``Workspace.mlflow_uri()``) with artifacts
in ``<workspace>/mlartifacts``; ``training.tracking_uri`` or ``MLFLOW_TRACKING_URI`` point elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from features.pairs import FEATURE_NAMES
from models.ranker import Ranker
from training.config import TrainingConfig
from training.dataset import COL_LABEL, COL_QUERY
from training.evaluate import evaluate_ranking

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from training.train import TrainResult

CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
PREVIOUS: Final = "previous-champion"
MODEL_ARTIFACT: Final = "ranker"
_LISTED_METRICS: Final = ("ndcg_at_10", "ndcg_at_20", "ndcg_at_50", "recall_at_50", "map")


class RegistryError(RuntimeError):
    """A registry operation cannot be done (no such version, nothing to roll back to, ...)."""


def resolve_tracking_uri(config_uri: str | None, env_uri: str | None, workspace_uri: str) -> str:
    """``MLFLOW_TRACKING_URI`` wins, then ``training.tracking_uri``, then the workspace's SQLite store."""
    return env_uri or config_uri or workspace_uri


def metric_key(system: str, metric: str) -> str:
    """MLflow-safe metric name: ``test.ranker.ndcg_at_20``."""
    return f"test.{system}.{metric.replace('@', '_at_')}"


@dataclass(frozen=True)
class GateDecision:
    """What the champion/challenger gate decided for a new version."""

    version: str
    run_id: str
    metric: str
    challenger_value: float
    champion_version: str | None
    champion_value: float | None
    margin: float
    better: bool
    promoted: bool
    reason: str


def gate(challenger: float, champion: float | None, margin: float) -> tuple[bool, str]:
    """Whether the challenger beats the champion by more than ``margin`` (pure)."""
    if champion is None or not np.isfinite(champion):
        return True, "no champion yet"
    if not np.isfinite(challenger):
        return False, "the challenger's metric is not a number"
    if challenger > champion + margin:
        return True, f"challenger {challenger:.4f} > champion {champion:.4f} + margin {margin:g}"
    return False, f"challenger {challenger:.4f} <= champion {champion:.4f} + margin {margin:g}"


class ModelRegistry:
    """The registered ranker model in one MLflow tracking store.

    Args:
        tracking_uri: MLflow tracking (and registry) URI, e.g. ``sqlite:///.../mlflow.db``.
        model_name: registered model name.
        experiment: experiment that training runs go to.
        artifact_location: artifact root for a newly created experiment (None: the server's default).
    """

    def __init__(
        self, *, tracking_uri: str, model_name: str, experiment: str, artifact_location: str | None = None
    ) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.experiment = experiment
        self.artifact_location = artifact_location

    @classmethod
    def from_config(cls, config: TrainingConfig, tracking_uri: str, artifacts: Path | None) -> ModelRegistry:
        return cls(
            tracking_uri=tracking_uri,
            model_name=config.registered_model,
            experiment=config.experiment,
            artifact_location=artifacts.resolve().as_uri() if artifacts is not None else None,
        )

    # ------------------------------------------------------------ plumbing

    def _client(self) -> MlflowClient:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow
        from mlflow import MlflowClient

        # mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI into os.environ (for subprocesses),
        # where resolve_tracking_uri would later read it as the user's choice and send every other
        # workspace of this process to this store. Keep the user's environment as it was.
        before = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def _experiment_id(self, client: MlflowClient) -> str:
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        return str(client.create_experiment(self.experiment, artifact_location=self.artifact_location))

    def alias_version(self, alias: str) -> str | None:
        """The version an alias points to, or None (no such model or alias)."""
        from mlflow.exceptions import MlflowException

        client = self._client()
        try:
            return str(client.get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException:
            return None

    def load(self, alias_or_version: str = CHAMPION) -> Ranker:
        """The ranker at ``models:/<name>@<alias>`` (or ``models:/<name>/<version>`` for a number)."""
        import mlflow.lightgbm

        self._client()
        ref = f"/{alias_or_version}" if alias_or_version.isdigit() else f"@{alias_or_version}"
        booster = mlflow.lightgbm.load_model(f"models:/{self.model_name}{ref}")
        return Ranker.from_booster(booster)

    def load_champion(self) -> tuple[Ranker, str] | None:
        """(ranker, version) of the champion, or None when no version is champion yet."""
        version = self.alias_version(CHAMPION)
        if version is None:
            return None
        return self.load(CHAMPION), version

    # ------------------------------------------------------------ training runs

    def log_training_run(
        self, result: TrainResult, config: TrainingConfig, *, promote_if_better: bool = False
    ) -> GateDecision:
        """Log the run, register a new version (alias ``challenger``), re-score the champion, apply the gate."""
        import mlflow
        import mlflow.lightgbm
        from mlflow.models import infer_signature

        client = self._client()
        experiment_id = self._experiment_id(client)
        champion = self._score_champion(result)
        with mlflow.start_run(experiment_id=experiment_id, run_name="sansetu-train") as run:
            mlflow.log_params(_params(result, config))
            mlflow.log_metrics(_metrics(result.metrics, champion))
            mlflow.log_metrics(
                {metric_key(sys_, k).replace("test.", "test_approached.", 1): float(v)
                 for sys_, m in result.metrics_approached.items() for k, v in m.items() if np.isfinite(v)}
            )  # fmt: skip
            mlflow.set_tags({f"data.{k}_sha256": v for k, v in result.fingerprints.items()})
            mlflow.log_dict(result.feature_importance, "feature_importance.json")
            mlflow.log_dict(
                {"split": result.split.describe(), "counts": result.counts, "metrics": result.metrics,
                 "metrics_approached_only": result.metrics_approached,
                 "fingerprints": result.fingerprints, "champion_on_same_test": champion},
                "evaluation.json",
            )  # fmt: skip
            booster = _trimmed_booster(result.ranker)
            sample = result.test[result.ranker.feature_names_].head(200)
            info = mlflow.lightgbm.log_model(
                booster,
                name=MODEL_ARTIFACT,
                signature=infer_signature(sample, booster.predict(sample.to_numpy(dtype=np.float64))),
                registered_model_name=self.model_name,
                pip_requirements=_pip_requirements(),  # explicit: inference spawns a subprocess (~15 s)
            )
            version = str(info.registered_model_version)
        self._tag_version(client, version, run.info.run_id, result)
        client.set_registered_model_alias(self.model_name, CHALLENGER, version)
        metric = config.promotion_metric
        new = result.metrics["ranker"][metric]
        old = None if champion is None else champion["metrics"][metric]
        better, reason = gate(new, old, config.promotion_margin)
        promoted = promote_if_better and better
        if promoted:
            self.promote(version)
        return GateDecision(
            version=version,
            run_id=run.info.run_id,
            metric=metric,
            challenger_value=new,
            champion_version=None if champion is None else champion["version"],
            champion_value=old,
            margin=config.promotion_margin,
            better=better,
            promoted=promoted,
            reason=reason,
        )

    def _score_champion(self, result: TrainResult) -> dict[str, Any] | None:
        """The current champion's metrics on the challenger's test rows (None without a champion)."""
        loaded = self.load_champion()
        if loaded is None:
            return None
        ranker, version = loaded
        X = result.test.reindex(columns=ranker.feature_names_)  # features the champion lacks → NaN
        scores = ranker.predict(X)
        q, y = result.test[COL_QUERY].to_numpy(), result.test[COL_LABEL].to_numpy(dtype=np.float64)
        return {"version": version, "metrics": evaluate_ranking(q, y, scores)}

    def _tag_version(self, client: MlflowClient, version: str, run_id: str, result: TrainResult) -> None:
        tags = {
            "run_id": run_id,
            "test_periods": result.split.describe()["test"],
            "feature_names": ",".join(result.ranker.feature_names_),
            **{
                metric_key("ranker", k).removeprefix("test.ranker."): f"{v:.6f}"
                for k, v in result.metrics["ranker"].items()
            },
        }
        for key, value in tags.items():
            client.set_model_version_tag(self.model_name, version, key, value)

    # ------------------------------------------------------------ aliases

    def _check_version(self, client: MlflowClient, version: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            client.get_model_version(self.model_name, str(version))
        except MlflowException:
            known = [v["version"] for v in self.list_versions()]
            raise RegistryError(
                f"Model {self.model_name!r} has no version {version!r}; known versions are {known}."
            ) from None

    def promote(self, version: str) -> dict[str, str | None]:
        """Make ``version`` the champion; the old champion becomes ``previous-champion``."""
        client = self._client()
        version = str(version)
        self._check_version(client, version)
        current = self.alias_version(CHAMPION)
        if current == version:
            return {"champion": version, "previous-champion": self.alias_version(PREVIOUS)}
        if current is not None:
            client.set_registered_model_alias(self.model_name, PREVIOUS, current)
        client.set_registered_model_alias(self.model_name, CHAMPION, version)
        return {"champion": version, "previous-champion": current}

    def rollback(self) -> dict[str, str | None]:
        """Restore ``previous-champion`` as champion (the demoted version becomes ``previous-champion``)."""
        client = self._client()
        previous = self.alias_version(PREVIOUS)
        if previous is None:
            raise RegistryError(
                f"Model {self.model_name!r} has no '{PREVIOUS}' alias: nothing to roll back to "
                "(a champion must have been replaced first)."
            )
        current = self.alias_version(CHAMPION)
        client.set_registered_model_alias(self.model_name, CHAMPION, previous)
        if current is not None:
            client.set_registered_model_alias(self.model_name, PREVIOUS, current)
        else:
            client.delete_registered_model_alias(self.model_name, PREVIOUS)
        return {"champion": previous, "previous-champion": current}

    def list_versions(self) -> list[dict[str, Any]]:
        """Every version, newest first: version, aliases, run id, creation time and logged test metrics."""
        from mlflow.exceptions import MlflowException

        client = self._client()
        try:
            aliases = client.get_registered_model(self.model_name).aliases
        except MlflowException:
            return []
        by_version: dict[str, list[str]] = {}
        for alias, v in aliases.items():
            by_version.setdefault(str(v), []).append(alias)
        out = []
        for mv in client.search_model_versions(f"name='{self.model_name}'"):
            tags = dict(mv.tags)
            out.append(
                {
                    "version": str(mv.version),
                    "aliases": sorted(by_version.get(str(mv.version), [])),
                    "created": pd.Timestamp(mv.creation_timestamp, unit="ms").strftime("%Y-%m-%d %H:%M:%S"),
                    "run_id": mv.run_id,
                    "test_periods": tags.get("test_periods", ""),
                    **{k.replace("_at_", "@"): float(tags[k]) for k in _LISTED_METRICS if k in tags},
                }
            )
        return sorted(out, key=lambda r: int(r["version"]), reverse=True)


def _pip_requirements() -> list[str]:
    from importlib import metadata

    return [f"{name}=={metadata.version(name)}" for name in ("lightgbm", "numpy", "pandas", "scikit-learn", "scipy")]


def _trimmed_booster(ranker: Ranker) -> Any:
    """The booster with only its best iteration's trees, so that any loader predicts like the ranker."""
    import lightgbm as lgb

    return lgb.Booster(model_str=ranker.booster_.model_to_string(num_iteration=ranker.best_iteration_))


def _params(result: TrainResult, config: TrainingConfig) -> dict[str, Any]:
    params: dict[str, Any] = {k: v for k, v in config.model_dump().items() if k not in ("stage_gains", "tracking_uri")}
    params["stage_gains"] = ",".join(f"{k}={v}" for k, v in config.stage_gains.items())
    params["n_features"] = len(result.ranker.feature_names_)
    params["features_changed"] = result.ranker.feature_names_ != list(FEATURE_NAMES)
    params.update({f"split.{k}": v for k, v in result.split.describe().items()})
    params.update({f"count.{k}": v for k, v in result.counts.items()})
    return params


def _metrics(metrics: Mapping[str, Mapping[str, float]], champion: Mapping[str, Any] | None) -> dict[str, float]:
    out = {metric_key(s, k): float(v) for s, m in metrics.items() for k, v in m.items() if np.isfinite(v)}
    if champion is not None:
        out.update({metric_key("champion", k): float(v) for k, v in champion["metrics"].items() if np.isfinite(v)})
    return out


# ---------------------------------------------------------------- function forms (API, scripts)


def _registry(tracking_uri: str, model_name: str) -> ModelRegistry:
    return ModelRegistry(tracking_uri=tracking_uri, model_name=model_name, experiment=model_name)


def list_versions(tracking_uri: str, model_name: str) -> list[dict[str, Any]]:
    """:meth:`ModelRegistry.list_versions` of ``model_name`` in ``tracking_uri``."""
    return _registry(tracking_uri, model_name).list_versions()


def promote(tracking_uri: str, model_name: str, version: str | int) -> dict[str, str | None]:
    """:meth:`ModelRegistry.promote`."""
    return _registry(tracking_uri, model_name).promote(str(version))


def rollback(tracking_uri: str, model_name: str) -> dict[str, str | None]:
    """:meth:`ModelRegistry.rollback`."""
    return _registry(tracking_uri, model_name).rollback()
