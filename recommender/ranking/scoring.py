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
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from features.pairs import FEATURE_NAMES, build_pair_features
from features.schema import COL_ENTERPRISE_ID, COL_NODE_ID
from recommender.workspace import Workspace
from training.baselines import baseline_heuristic_score
from training.registry import ModelRegistry, resolve_tracking_uri

if TYPE_CHECKING:
    from models.ranker import Ranker
    from recommender.settings import Settings

log = logging.getLogger(__name__)

HEURISTIC_NOTICE: Final = "no champion yet, using the heuristic"
CONTRIB_PREFIX: Final = "contrib_"


@dataclass(frozen=True)
class ModelBundle:
    """A loaded champion: the ranker and where it came from."""

    ranker: Ranker
    version: str
    model_name: str
    tracking_uri: str

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
    return ModelBundle(ranker, version, registry.model_name, registry.tracking_uri)


# ---------------------------------------------------------------- scoring


def score_candidates(
    candidates: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    nodes: pd.DataFrame,
    map_df: pd.DataFrame | None,
    as_of: pd.Timestamp | None,
    bundle: ModelBundle | None,
    *,
    zone_province: str,
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
        zone_province: the zone's province (``settings.zone_province``).
        features: precomputed ``build_pair_features`` output for the same rows (skips rebuilding).
        contributions: add ``contrib_<feature>`` and ``contrib_bias`` columns (model only).

    Returns:
        ``candidates`` columns + the features they lack + ``score``, ``rank`` (1 = best within a node;
        ties by enterprise id) and, with a model and ``contributions``, the contribution columns.
        Row order is the input's.
    """
    if as_of is None:
        raise ValueError("as_of is required: pass the run date (features use only records dated before it).")
    feats = (
        features
        if features is not None
        else build_pair_features(candidates, tables, nodes, map_df, as_of, zone_province=zone_province)
    )
    extra = [c for c in FEATURE_NAMES if c not in candidates.columns]
    out = pd.concat([candidates, feats[extra].set_axis(candidates.index)], axis=1)
    if bundle is None:
        log.warning(HEURISTIC_NOTICE)
        out["score"] = baseline_heuristic_score(feats[FEATURE_NAMES])
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
