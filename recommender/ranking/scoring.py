"""Ranking service: load the champion, score candidates, and train / evaluate from a workspace.

``score_candidates`` is what the refresh and the API call: point-in-time pair features, the
champion's score (or the hand-weighted heuristic when no champion exists yet: the engine says "no
champion yet, using the heuristic"), the rank per node and, with a model, one ``contrib_<feature>``
column per feature plus ``contrib_bias`` (LightGBM ``pred_contrib``: they sum to ``score``).

``train_from_workspace`` and ``evaluate_from_workspace`` wire the workspace's tables, chains, colour
map and retrieval candidates into ``training``; every MLflow call stays in ``training.registry``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from features.pairs import FEATURE_NAMES, build_pair_features
from features.schema import COL_ENTERPRISE_ID, COL_NODE_ID, COL_YEAR
from recommender.workspace import Workspace
from training.baselines import heuristic_score
from training.registry import GateDecision, ModelRegistry, resolve_tracking_uri

if TYPE_CHECKING:
    from models.ranker import Ranker
    from recommender.settings import Settings
    from training.dataset import TrainingSet
    from training.train import TrainResult

log = logging.getLogger(__name__)

HEURISTIC_NOTICE: Final = "no champion yet, using the heuristic"
CONTRIB_PREFIX: Final = "contrib_"
DEFAULT_ORACLE: Final = Path("sample") / "oracle.parquet"  # relative to the workspace


@dataclass(frozen=True)
class ModelBundle:
    """A loaded champion: the ranker and where it came from."""

    ranker: Ranker
    version: str
    model_name: str
    tracking_uri: str
    zone_province: str = "湖北省"

    @property
    def feature_names(self) -> list[str]:
        return list(self.ranker.feature_names_)


# ---------------------------------------------------------------- registry access


def tracking_uri(settings: Settings) -> str:
    """``MLFLOW_TRACKING_URI``, else ``training.tracking_uri``, else SQLite in the workspace."""
    ws = Workspace(settings.workspace)
    return resolve_tracking_uri(settings.training.tracking_uri, os.environ.get("MLFLOW_TRACKING_URI"), ws.mlflow_uri())


def model_registry(settings: Settings) -> ModelRegistry:
    """The registry of ``training.registered_model`` (artifacts in the workspace for its SQLite store)."""
    uri = tracking_uri(settings)
    ws = Workspace(settings.workspace)
    artifacts = ws.mlflow_artifacts() if uri == ws.mlflow_uri() else None
    if artifacts is not None:
        ws.root.mkdir(parents=True, exist_ok=True)
    return ModelRegistry.from_config(settings.training, uri, artifacts)


def load_champion(settings: Settings) -> ModelBundle | None:
    """The ``champion`` version (``models:/<name>@champion``), or None when there is none yet."""
    ws = Workspace(settings.workspace)
    if tracking_uri(settings) == ws.mlflow_uri() and not (ws.root / "mlflow.db").is_file():
        return None  # no store yet: nothing was ever trained here (and creating one takes seconds)
    registry = model_registry(settings)
    loaded = registry.load_champion()
    if loaded is None:
        return None
    ranker, version = loaded
    return ModelBundle(ranker, version, registry.model_name, registry.tracking_uri, settings.zone_province)


# ---------------------------------------------------------------- scoring


def score_candidates(
    candidates: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    nodes: pd.DataFrame,
    map_df: pd.DataFrame | None,
    as_of: pd.Timestamp | str | None,
    bundle: ModelBundle | None,
    *,
    zone_province: str | None = None,
    features: pd.DataFrame | None = None,
    contributions: bool = True,
) -> pd.DataFrame:
    """Score retrieval candidates with the champion (or the heuristic) and rank them per node.

    Args:
        candidates: retrieval output, one row per (node, enterprise).
        tables, nodes, map_df: as for ``features.pairs.build_pair_features``.
        as_of: the scoring date (features use only records before it); None → today is NOT assumed:
            pass the run's date.
        bundle: ``load_champion(settings)``; None → heuristic (logged as "no champion yet, using the heuristic").
        zone_province: the zone's province (default: the bundle's, else 湖北省).
        features: precomputed ``build_pair_features`` output for the same rows (skips rebuilding).
        contributions: add ``contrib_<feature>`` and ``contrib_bias`` columns (model only).

    Returns:
        ``candidates`` columns + the features they lack + ``score``, ``rank`` (1 = best within a node;
        ties by enterprise id) and, with a model and ``contributions``, the contribution columns.
        Row order is the input's.
    """
    if as_of is None:
        raise ValueError("as_of is required: pass the run date (features use only records dated before it).")
    zone = zone_province or (bundle.zone_province if bundle is not None else "湖北省")
    feats = (
        features
        if features is not None
        else build_pair_features(candidates, tables, nodes, map_df, as_of, zone_province=zone)
    )
    extra = [c for c in FEATURE_NAMES if c not in candidates.columns]
    out = pd.concat([candidates, feats[extra].set_axis(candidates.index)], axis=1)
    if bundle is None:
        log.warning(HEURISTIC_NOTICE)
        out["score"] = heuristic_score(feats[FEATURE_NAMES])
    else:
        X = feats.reindex(columns=bundle.feature_names)
        if contributions:
            contrib = bundle.ranker.contributions(X)
            out["score"] = contrib.sum(axis=1).to_numpy()
            out = pd.concat([out, contrib.add_prefix(CONTRIB_PREFIX).set_axis(candidates.index)], axis=1)
        else:
            out["score"] = bundle.ranker.predict(X)
    out["rank"] = rank_within_node(out)
    return out


def rank_within_node(scored: pd.DataFrame) -> np.ndarray:
    """1-based rank by score (descending) within each node; ties broken by enterprise id."""
    order = scored.sort_values([COL_NODE_ID, "score", COL_ENTERPRISE_ID], ascending=[True, False, True], kind="stable")
    rank = order.groupby(COL_NODE_ID, sort=False).cumcount().to_numpy() + 1
    return np.asarray(pd.Series(rank, index=order.index).reindex(scored.index).to_numpy(dtype=np.int64))


# ---------------------------------------------------------------- training inputs


@dataclass(frozen=True)
class TrainingInputs:
    tables: dict[str, pd.DataFrame]
    nodes: pd.DataFrame
    map_df: pd.DataFrame | None
    candidates: pd.DataFrame
    oracle: pd.DataFrame | None


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
    """Dense and lexical candidates of every node, retrieved without the in-zone filter.

    The in-zone filter would drop enterprises that later landed in the zone (the positives); the
    training set filters by founding date per query instead.
    """
    from recommender.cli.retrieval import load_retrieval
    from recommender.retrieval.candidates import retrieve_candidates

    encoder, index = load_retrieval(settings, tables["enterprises"])
    no_presence = {**tables, "presence": tables["presence"].iloc[0:0]}
    return retrieve_candidates(
        nodes, None, no_presence, encoder, index.dense, index.lexical, settings.retrieval,
        node_ids=list(nodes[COL_NODE_ID]),
    )  # fmt: skip


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
    return TrainingInputs(tables, nodes, map_df, candidates, oracle)


def with_feedback(settings: Settings, outcomes: pd.DataFrame) -> pd.DataFrame:
    """The ingested outcomes plus the analysts' feedback (stage transitions recorded in the service).

    Before any service store exists (no ``serve.database_url``, no ``service.db``) there is none.
    """
    from recommender import store

    if settings.serve.database_url is None and not Workspace(settings.workspace).service_db.exists():
        return outcomes
    return store.merge_feedback(outcomes, store.engine_for(settings))


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
    """Build the training set, fit, evaluate against baselines (and oracle), log, register and gate."""
    from training.train import train_and_evaluate

    inputs = load_training_inputs(settings, oracle_path)
    training_set = build_training_data(settings, inputs)
    result = train_and_evaluate(training_set, settings.training, inputs.oracle, data_fingerprints(inputs.tables))
    decision = model_registry(settings).log_training_run(result, settings.training, promote_if_better=promote_if_better)
    return result, decision


def evaluate_from_workspace(
    settings: Settings, version: str | None = None, oracle_path: Path | None = None
) -> dict[str, Any]:
    """Evaluate a registered version (default: champion, else challenger) on the current test periods.

    In the same run: the baselines (similarity, heuristic, logistic refitted on the training periods)
    and, on the sample zone, the oracle.
    """
    from training.baselines import LogisticBaseline
    from training.dataset import COL_LABEL, subsample_negatives
    from training.registry import CHALLENGER, CHAMPION
    from training.splits import split_frame, time_split
    from training.train import evaluate_approached, evaluate_systems, score_systems

    registry = model_registry(settings)
    ref = version or (CHAMPION if registry.alias_version(CHAMPION) else CHALLENGER)
    if registry.alias_version(ref) is None and not ref.isdigit():
        raise LookupError(f"no model registered under {registry.model_name!r} yet; run `sansetu train` first.")
    ranker = registry.load(ref)
    resolved = ref if ref.isdigit() else registry.alias_version(ref)
    inputs = load_training_inputs(settings, oracle_path)
    ts = build_training_data(settings, inputs)
    cfg = settings.training
    split = time_split(ts.frame["as_of"], cfg.valid_periods, cfg.test_periods)
    train, _valid, test = split_frame(ts.frame, split)
    train = subsample_negatives(train, cfg.max_negatives_per_query, cfg.random_state)
    logistic = LogisticBaseline(random_state=cfg.random_state).fit(train[ts.feature_names], train[COL_LABEL].to_numpy())
    scores = score_systems(test, ts.feature_names, ranker, logistic, inputs.oracle)
    return {
        "model": registry.model_name,
        "version": resolved,
        "test_periods": split.describe()["test"],
        "metrics": evaluate_systems(test, scores),
        "metrics_approached_only": evaluate_approached(test, scores),
    }
