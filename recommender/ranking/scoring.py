"""Ranking service: load the champion, score candidates, and train / evaluate from a workspace.

``score_candidates`` is what the refresh and the API call: point-in-time pair features (with the
relocation features of ``features.relocation`` when the champion reads them, from the candidates'
``fit``), the champion's score — its calibrated P(签约 | approached) in [0, 1] — (or the
hand-weighted heuristic when no champion exists yet: the engine says "no champion yet, using the
heuristic"), the rank per node and, with a model, one ``contrib_<feature>`` column per feature plus
``contrib_bias``: they sum to the model's margin (its log-odds before calibration), which the
monotone calibration turns into ``score``.

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
from features.relocation import RELOCATION_FEATURE_NAMES, relocation_features
from features.schema import COL_ENTERPRISE_ID, COL_NODE_ID
from recommender.workspace import Workspace
from training.baselines import baseline_heuristic_score
from training.registry import ModelRegistry, resolve_tracking_uri

if TYPE_CHECKING:
    from models.scorer import SigningScorer
    from recommender.settings import Settings

log = logging.getLogger(__name__)

HEURISTIC_NOTICE: Final = "no champion yet, using the heuristic"
CONTRIB_PREFIX: Final = "contrib_"
COL_MARGIN: Final = "margin"  # the model's score before calibration (orders ties of the calibrated score)


@dataclass(frozen=True)
class ModelBundle:
    """A loaded champion: the model (``models.scorer.SigningScorer``) and where it came from."""

    model: SigningScorer
    version: str
    model_name: str
    tracking_uri: str

    @property
    def feature_names(self) -> list[str]:
        return list(self.model.feature_names)

    @property
    def family(self) -> str:
        return self.model.family


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
    model, version = loaded
    return ModelBundle(model, version, registry.model_name, registry.tracking_uri)


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
    if bundle is not None and set(bundle.feature_names) & set(RELOCATION_FEATURE_NAMES):
        feats = with_relocation(feats.set_axis(candidates.index), candidates, tables, as_of, zone_province)
    extra = [c for c in feats.columns if c in (*FEATURE_NAMES, *RELOCATION_FEATURE_NAMES) and c not in candidates]
    out = pd.concat([candidates, feats[extra].set_axis(candidates.index)], axis=1)
    if bundle is None:
        log.warning(HEURISTIC_NOTICE)
        out["score"] = baseline_heuristic_score(feats[FEATURE_NAMES])
    else:
        X = feats.reindex(columns=bundle.feature_names).set_axis(candidates.index)
        out[COL_MARGIN] = bundle.model.margin(X)
        out["score"] = bundle.model.calibration.apply(out[COL_MARGIN].to_numpy())
        if contributions:
            contrib = bundle.model.contributions(X)
            out = pd.concat([out, contrib.add_prefix(CONTRIB_PREFIX)], axis=1)
    out["rank"] = rank_within_node(out)
    return out


def with_relocation(
    feats: pd.DataFrame,
    candidates: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    zone_province: str,
) -> pd.DataFrame:
    """``feats`` plus the relocation features, from the candidates' ``fit`` (NaN, with a warning, without it)."""
    keys = candidates[[COL_NODE_ID, COL_ENTERPRISE_ID]]
    if "fit" in candidates:
        keys = keys.assign(fit=candidates["fit"].to_numpy())
    else:
        log.warning("the candidates carry no fit: the champion's fit features are unknown (NaN)")
    reloc = relocation_features(keys, tables, as_of, zone_province=zone_province)
    new = [c for c in RELOCATION_FEATURE_NAMES if c not in feats.columns]
    return pd.concat([feats, reloc[new]], axis=1)


def rank_within_node(scored: pd.DataFrame) -> np.ndarray:
    """1-based rank by score (descending) within each node; ties broken by the model's ``margin``
    (when there is one: an isotonic calibration maps a range of margins to one probability), then by
    enterprise id."""
    keys = [COL_NODE_ID, "score", *([COL_MARGIN] if COL_MARGIN in scored else []), COL_ENTERPRISE_ID]
    order = scored.sort_values(keys, ascending=[True, *[False] * (len(keys) - 2), True], kind="stable")
    rank = order.groupby(COL_NODE_ID, sort=False).cumcount().to_numpy() + 1
    return np.asarray(pd.Series(rank, index=order.index).reindex(scored.index).to_numpy(dtype=np.int64))
