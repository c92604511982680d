"""Every MLflow call of sansetu: tracking, the model registry and the champion/challenger gate.

A training run logs its parameters, the validation figures of every model family (the gate's
table), the test-period metrics of every system, feature importance, data fingerprints and the
run's model — a ``models.scorer.SigningScorer`` folder (``scorer.json`` + the LightGBM
``model.txt``; plain files, no pickle) — and registers that folder as a new version of
``registered_model``. The new version gets the alias ``challenger``. The alias ``champion`` moves
only when the challenger beats the current champion on the *same* rows by ``promotion_margin`` on
``promotion_metric``: for ``ope_signings@k`` the champion's fit-gated lists are judged on the
run's validation periods with the run's propensities and direct model, in the same run. Moving ``champion`` keeps the
version it left in ``previous-champion``, so that :meth:`ModelRegistry.rollback` can restore it.
Readers load ``models:/<name>@champion``, never "latest"; no deprecated registry stages are used.

The tracking store defaults to SQLite in the workspace (``Workspace.mlflow_uri()``) with artifacts
in ``<workspace>/mlartifacts``; ``training.tracking_uri`` or ``MLFLOW_TRACKING_URI`` point elsewhere.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from models.scorer import SCORER_FILE, Calibration, SigningScorer
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
_LISTED_METRICS: Final = ("ope_signings_at_20", "signings_at_20", "ndcg_at_20", "ndcg_at_50", "recall_at_50", "map")


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

    def load(self, alias_or_version: str = CHAMPION) -> SigningScorer:
        """The model at ``models:/<name>@<alias>`` (or ``models:/<name>/<version>`` for a number).

        A version registered as a ``SigningScorer`` folder loads as it was saved; one registered by
        an older sansetu (the lightgbm flavour, uncalibrated lambdarank scores) loads as a
        ``lambdarank`` scorer without calibration (``is_probability`` False).
        """
        import mlflow

        self._client()
        ref = f"/{alias_or_version}" if alias_or_version.isdigit() else f"@{alias_or_version}"
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{self.model_name}{ref}"))
        if (local / SCORER_FILE).is_file():
            return SigningScorer.load(local)
        import mlflow.lightgbm

        booster = mlflow.lightgbm.load_model(str(local))
        return SigningScorer("lambdarank", list(booster.feature_name()), Calibration("none"), booster=booster)

    def load_champion(self) -> tuple[SigningScorer, str] | None:
        """(model, version) of the champion, or None when no version is champion yet."""
        version = self.alias_version(CHAMPION)
        if version is None:
            return None
        return self.load(CHAMPION), version

    # ------------------------------------------------------------ training runs

    def log_training_run(
        self, result: TrainResult, config: TrainingConfig, *, promote_if_better: bool = False
    ) -> GateDecision:
        """Log the run, register its model (alias ``challenger``), re-judge the champion, apply the gate."""
        import mlflow

        client = self._client()
        experiment_id = self._experiment_id(client)
        champion = self._judge_champion(result, config)
        with mlflow.start_run(experiment_id=experiment_id, run_name="sansetu-train") as run:
            _log_run(result, config, champion)
            with tempfile.TemporaryDirectory() as tmp:
                result.model.save(Path(tmp) / MODEL_ARTIFACT)
                mlflow.log_artifacts(str(Path(tmp) / MODEL_ARTIFACT), artifact_path=MODEL_ARTIFACT)
            source = f"{run.info.artifact_uri}/{MODEL_ARTIFACT}"
        version = self._register(client, source, run.info.run_id)
        self._tag_version(client, version, run.info.run_id, result)
        client.set_registered_model_alias(self.model_name, CHALLENGER, version)
        metric = config.promotion_metric
        new = challenger_value(result, metric)
        old = None if champion is None else champion["value"]
        if metric.startswith("ope_") and champion is not None:
            better, reason = gate_signings(challenger_key(result, config), champion["key"], config.promotion_margin)
        else:
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

    def _register(self, client: MlflowClient, source: str, run_id: str) -> str:
        from mlflow.exceptions import MlflowException

        try:
            client.get_registered_model(self.model_name)
        except MlflowException:
            client.create_registered_model(self.model_name)
        return str(client.create_model_version(self.model_name, source=source, run_id=run_id).version)

    def _judge_champion(self, result: TrainResult, config: TrainingConfig) -> dict[str, Any] | None:
        """The current champion judged on the challenger's rows by ``promotion_metric`` (None without one).

        ``ope_signings@k``: its fit-gated lists on the run's validation periods with the run's
        propensities and direct model; the older metrics: on the run's test rows.
        """
        loaded = self.load_champion()
        if loaded is None:
            return None
        scorer, version = loaded
        metric = config.promotion_metric
        if metric.startswith("ope_") and result.valid is not None:
            from training.train import gate_key, gate_metrics, judge_model, promotion_k

            valid = _with_columns(result.valid, scorer.feature_names)
            judge = result.judge or judge_model(result.scorers)
            figures = gate_metrics(valid, scorer.margin(valid), judge.predict(result.valid),
                                   k=promotion_k(config), fit_threshold=result.fit_threshold,
                                   max_weight=config.max_weight)  # fmt: skip
            key = gate_key(figures, promotion_k(config))
            return {"version": version, "value": figures[metric], "metrics": figures, "key": key}
        test = _with_columns(result.test, scorer.feature_names)
        q, y = result.test[COL_QUERY].to_numpy(), result.test[COL_LABEL].to_numpy(dtype=np.float64)
        metrics = evaluate_ranking(q, y, scorer.margin(test))
        return {"version": version, "value": metrics.get(metric, float("nan")), "metrics": metrics}

    def _tag_version(self, client: MlflowClient, version: str, run_id: str, result: TrainResult) -> None:
        tags = {
            "run_id": run_id,
            "family": result.family,
            "test_periods": result.split.describe()["test"],
            "feature_names": ",".join(result.model.feature_names),
            **{
                metric_key("ranker", k).removeprefix("test.ranker."): f"{v:.6f}"
                for k, v in result.metrics["ranker"].items()
                if np.isfinite(v)
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
                    "family": tags.get("family", "lambdarank"),
                    "test_periods": tags.get("test_periods", ""),
                    **{k.replace("_at_", "@"): float(tags[k]) for k in _LISTED_METRICS if k in tags},
                }
            )
        return sorted(out, key=lambda r: int(r["version"]), reverse=True)


def gate_signings(challenger: tuple[float, ...], champion: tuple[float, ...], margin: float) -> tuple[bool, str]:
    """``training.train.beats`` on (expected signings@k, then the tie-break cut-offs) (pure)."""
    from training.train import beats

    shown = " / ".join
    a, b = shown(f"{v:.4f}" for v in challenger), shown(f"{v:.4f}" for v in champion)
    if beats(challenger, champion, margin):
        return True, f"challenger {a} > champion {b} (margin {margin:g} on the first)"
    return False, f"challenger {a} <= champion {b} (margin {margin:g} on the first)"


def challenger_key(result: TrainResult, config: TrainingConfig) -> tuple[float, ...]:
    from training.train import gate_key, promotion_k

    return gate_key(result.validation.get(result.family, {}), promotion_k(config))


def challenger_value(result: TrainResult, metric: str) -> float:
    """The run's own figure on ``metric``: its family's validation estimate, or its test metric."""
    if metric.startswith("ope_"):
        return float(result.validation.get(result.family, {}).get(metric, float("nan")))
    return float(result.metrics["ranker"].get(metric, float("nan")))


def _with_columns(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """``frame`` with any of ``names`` it lacks added as NaN (features an older champion used)."""
    missing = [n for n in names if n not in frame.columns]
    return frame.assign(**{n: np.nan for n in missing}) if missing else frame


def _log_run(result: TrainResult, config: TrainingConfig, champion: Mapping[str, Any] | None) -> None:
    import mlflow

    mlflow.log_params(_params(result, config))
    mlflow.log_metrics(_metrics(result.metrics, champion))
    mlflow.log_metrics(
        {f"valid.{fam}.{k.replace('@', '_at_')}": float(v)
         for fam, m in result.validation.items() for k, v in m.items() if np.isfinite(v)}
    )  # fmt: skip
    mlflow.log_metrics(
        {metric_key(sys_, k).replace("test.", "test_approached.", 1): float(v)
         for sys_, m in result.metrics_approached.items() for k, v in m.items() if np.isfinite(v)}
    )  # fmt: skip
    mlflow.set_tags({f"data.{k}_sha256": v for k, v in result.fingerprints.items()} | {"family": result.family})
    mlflow.log_dict(result.feature_importance, "feature_importance.json")
    mlflow.log_dict(
        {"split": result.split.describe(), "counts": result.counts, "family": result.family,
         "validation": result.validation, "metrics": result.metrics,
         "metrics_approached_only": result.metrics_approached,
         "fingerprints": result.fingerprints, "champion_on_same_rows": champion},
        "evaluation.json",
    )  # fmt: skip


def _params(result: TrainResult, config: TrainingConfig) -> dict[str, Any]:
    params: dict[str, Any] = {k: v for k, v in config.model_dump().items() if k not in ("stage_gains", "tracking_uri")}
    params["stage_gains"] = ",".join(f"{k}={v}" for k, v in config.stage_gains.items())
    params["family"] = result.family
    params["n_features"] = len(result.model.feature_names)
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
