"""Training and evaluation jobs from a workspace: the one ``train_from_workspace`` that the CLI, the
demo and the web service call, and ``evaluate_from_workspace``.

They wire the workspace's tables (outcomes merged once with the analysts' feedback), chains, yearly
colour maps and retrieval candidates into ``training``; every MLflow call stays in
``training.registry``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from features.schema import COL_NODE_ID, COL_OUTCOME_ID, COL_YEAR
from recommender.ranking.scoring import model_registry
from recommender.workspace import Workspace

if TYPE_CHECKING:
    from recommender.settings import Settings
    from training.dataset import TrainingSet
    from training.registry import GateDecision
    from training.train import TrainResult, Truth


DEFAULT_ORACLE: Final = Path("sample") / "oracle.parquet"  # relative to the workspace
DEFAULT_TRUTH: Final = Path("sample") / "truth.npz"  # the sample generator's P(签约 | approached), if any
SET_ASIDE_REJECTS: Final = "training-outcomes"  # rejects/training-outcomes-<stamp>.csv
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingInputs:
    tables: dict[str, pd.DataFrame]
    nodes: pd.DataFrame
    map_df: pd.DataFrame | None
    candidates: pd.DataFrame
    oracle: pd.DataFrame | None
    truth: Truth | None = None


def truth_callable(folder: Path) -> Truth | None:
    """The sample zone's true P(签约 | approached) as ``training.train.Truth`` (None without ``truth.npz``).

    Reported beside the off-policy estimates on the sample zone; never used to choose a model.
    """
    if not (folder / DEFAULT_TRUTH.name).is_file():
        return None
    from recommender.sample.truth import load_truth

    truth = load_truth(folder)

    def probability(rows: pd.DataFrame) -> Any:
        dates = pd.to_datetime(rows["as_of"]).dt.strftime("%Y-%m-%d").to_numpy()
        return truth.signing_probability(rows[COL_NODE_ID].to_numpy(), rows["enterprise_id"].to_numpy(), dates)

    return probability


def yearly_maps(
    nodes: pd.DataFrame, tables: dict[str, pd.DataFrame], settings: Settings, years: list[int]
) -> pd.DataFrame | None:
    """The colour map known at 1 January of each year (presence up to the year before), with ``as_of``."""
    presence = tables["presence"]
    if presence.empty:
        return None
    from recommender.colour_map.colours import compute_map

    first, last = int(presence[COL_YEAR].min()), int(presence[COL_YEAR].max())
    parts = [
        compute_map(
            nodes, presence, tables["enterprises"], settings.map, as_of_year=min(max(y - 1, first), last)
        ).assign(as_of=pd.Timestamp(year=y, month=1, day=1))
        for y in sorted(set(years))
    ]
    return pd.concat(parts, ignore_index=True)


def training_candidates(settings: Settings, nodes: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Dense and lexical candidates of every node, retrieved without the in-zone filter, with their fit.

    The in-zone filter would drop enterprises that later landed in the zone (the positives); the
    training set filters by founding date per query instead. ``fit`` is the refresh's
    (``recommender.retrieval.fit.fit_scores`` with ``ranking.fit_model``): the lists the gate judges
    keep the firms that fit, as the published ones do. With ``ranking.fit_refit`` the fit model is
    refitted on these candidates (``recommender.retrieval.fit.zone_fit``), as the refresh refits on its own;
    the analysts' checks (``fit_marks``) then decide the pairs they checked, as in the refresh.
    """
    from recommender.retrieval.candidates import retrieve_candidates, word_retriever
    from recommender.retrieval.fit import apply_fit_marks, zone_fit
    from recommender.retrieval.index import load_retrieval
    from recommender.settings import load_fit_model

    encoder, index = load_retrieval(settings, tables["enterprises"])
    no_presence = {**tables, "presence": tables["presence"].iloc[0:0]}
    candidates = retrieve_candidates(
        nodes, None, no_presence, encoder, index.dense, index.lexical, settings.retrieval,
        node_ids=list(nodes[COL_NODE_ID]), words=word_retriever(index),
    )  # fmt: skip
    cfg = settings.ranking
    fit, _, info = zone_fit(
        candidates, nodes, tables["enterprises"], load_fit_model(settings), cfg.fit_refit, cfg.fit_refit_min_pairs
    )
    log.info("fit model of the training candidates: %s (%s)", info["model"], info["why"])
    marked, _ = apply_fit_marks(candidates.assign(fit=fit.to_numpy()), tables.get("fit_marks"))  # as the refresh
    return candidates.assign(fit=marked["fit"].to_numpy())


def load_training_inputs(settings: Settings, oracle_path: Path | None = None) -> TrainingInputs:
    """Tables, nodes, yearly colour maps, retrieval candidates and (sample zone) the oracle."""
    from features.chains import nodes_frame
    from features.io import load_tables
    from recommender.settings import load_chains

    ws = Workspace(settings.workspace)
    tables = load_tables(ws.snapshots)
    tables["outcomes"] = with_feedback(settings, tables["outcomes"])
    if tables["outcomes"].empty:
        raise ValueError(f"no outcomes in workspace {ws.root}: ingest the approach history (outcomes) first.")
    nodes = nodes_frame(load_chains(settings))
    years = pd.to_datetime(tables["outcomes"]["date"]).dt.year.dropna().astype(int).tolist()
    map_df = yearly_maps(nodes, tables, settings, sorted({*years, *(y + 1 for y in years)}))
    candidates = training_candidates(settings, nodes, tables)
    path = oracle_path if oracle_path is not None else ws.root / DEFAULT_ORACLE
    oracle = pd.read_parquet(path) if path.is_file() else None
    truth = truth_callable(path.parent) if oracle_path is None or path.name == DEFAULT_ORACLE.name else None
    return TrainingInputs(tables, nodes, map_df, candidates, oracle, truth)


def with_feedback(settings: Settings, outcomes: pd.DataFrame, today: date | None = None) -> pd.DataFrame:
    """The ingested outcomes plus the analysts' feedback (stage transitions recorded in the service),
    less the rows training cannot use.

    Before any service store exists (no ``serve.database_url``, no ``service.db``) there is no
    feedback. Rows of either source that ``training.dataset.usable_outcomes`` sets aside (a date
    outside 1949-10-01 … ``today`` in Asia/Shanghai such as ``9999-12-31``, a missing enterprise, node
    or stage) are left out before the merge, logged as a warning naming the first few and listed in
    ``rejects/training-outcomes-<stamp>.csv``; ``outcomes`` itself is returned when nothing changes.
    """
    from recommender import store
    from training.dataset import usable_outcomes

    usable, set_aside = usable_outcomes(outcomes, today)
    parts = [("outcomes", outcomes, set_aside)]
    if settings.serve.database_url is not None or Workspace(settings.workspace).service_db.exists():
        feedback = store.feedback_outcomes(store.engine_for(settings))
        if COL_OUTCOME_ID in outcomes:  # rows also ingested count once (as merge_outcomes does)
            feedback = feedback[~feedback[COL_OUTCOME_ID].isin(set(outcomes[COL_OUTCOME_ID]))]
        feedback = feedback.reset_index(drop=True)
        feedback_usable, feedback_aside = usable_outcomes(feedback, today)
        parts.append(("feedback", feedback, feedback_aside))
        usable = store.merge_outcomes(usable, feedback_usable)
    if any(len(aside) for _, _, aside in parts):
        _report_set_aside(settings, parts)
    return usable


def _report_set_aside(settings: Settings, parts: list[tuple[str, pd.DataFrame, pd.DataFrame]]) -> None:
    """Warn about the outcome rows training leaves out and list them in the workspace's rejects."""
    from features.io import write_rejects
    from training.dataset import describe_set_aside

    asides = [aside for _, _, aside in parts if len(aside)]
    rejects = pd.concat(
        [
            pd.DataFrame(
                {
                    "file": source,
                    "row": frame.index.get_indexer(aside.index) + 1,  # 1-based row of the snapshot / of the feedback
                    "field": aside["field"].to_numpy(),
                    "value": aside["value"].to_numpy(),
                    "reason": (
                        aside["reason"] + "; set aside from training (outcome " + aside[COL_OUTCOME_ID] + ")"
                    ).to_numpy(),
                }
            )
            for source, frame, aside in parts
            if len(aside)
        ],
        ignore_index=True,
    )
    path = write_rejects(rejects, Workspace(settings.workspace).rejects, SET_ASIDE_REJECTS)
    log.warning("%s; listed in %s", describe_set_aside(pd.concat(asides)), path)


def data_fingerprints(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    from models.manifest import fingerprint_frame

    return {name: fingerprint_frame(df) for name, df in sorted(tables.items())}


def build_training_data(settings: Settings, inputs: TrainingInputs) -> TrainingSet:
    from training.dataset import build_training_set

    return build_training_set(
        inputs.tables, inputs.nodes, inputs.map_df, inputs.candidates, settings.training,
        zone_province=settings.zone_province,
    )  # fmt: skip


def train_from_workspace(
    settings: Settings, promote_if_better: bool = False, oracle_path: Path | None = None
) -> tuple[TrainResult, GateDecision]:
    """Build the training set, fit, evaluate against baselines (and oracle), log, register and gate.

    ``result.counts["outcomes"]`` is how many outcome rows (ingested plus feedback, after the merge
    and the set-aside of unusable rows) the run learned from; it is logged with the other counts.
    """
    from training.train import train_and_evaluate

    inputs = load_training_inputs(settings, oracle_path)
    training_set = build_training_data(settings, inputs)
    result = train_and_evaluate(
        training_set, settings.training, inputs.oracle, data_fingerprints(inputs.tables), truth=inputs.truth,
        fit_threshold=settings.ranking.fit_threshold,
    )  # fmt: skip
    result.counts["outcomes"] = int(len(inputs.tables["outcomes"]))
    decision = model_registry(settings).log_training_run(result, settings.training, promote_if_better=promote_if_better)
    return result, decision


def evaluate_from_workspace(
    settings: Settings, version: str | None = None, oracle_path: Path | None = None
) -> dict[str, Any]:
    """Evaluate a registered version (default: champion, else challenger) on the current test periods.

    In the same run, on the same rows: every model family refitted on the training periods, the
    baselines (similarity, heuristic, random) and, on the sample zone, the oracle (its truth); the
    registered model is the ``ranker`` row.
    """
    from training.registry import CHALLENGER, CHAMPION
    from training.train import train_and_evaluate

    registry = model_registry(settings)
    ref = version or (CHAMPION if registry.alias_version(CHAMPION) else CHALLENGER)
    if registry.alias_version(ref) is None and not ref.isdigit():
        raise LookupError(f"no model registered under {registry.model_name!r} yet; run `sansetu train` first.")
    model = registry.load(ref)
    resolved = ref if ref.isdigit() else registry.alias_version(ref)
    inputs = load_training_inputs(settings, oracle_path)
    ts = build_training_data(settings, inputs)
    result = train_and_evaluate(ts, settings.training, inputs.oracle, truth=inputs.truth,
                                fit_threshold=settings.ranking.fit_threshold, production=model)  # fmt: skip
    return {
        "model": registry.model_name,
        "version": resolved,
        "family": model.family,
        "test_periods": result.split.describe()["test"],
        "metrics": result.metrics,
        "metrics_approached_only": result.metrics_approached,
    }
