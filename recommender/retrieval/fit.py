"""Fit: a calibrated probability that a firm makes what a chain node needs (docs/ranking.md, "Fit").

Retrieval finds candidates; fit says which of them really make the node's products, so that a list
holds only firms that fit and propensity only orders those. Per (node, firm) candidate pair,
:func:`fit_features` computes bounded, scale-light features (no raw cosine, which sits near 0.89 for
everything):

``{r}_logrank``      log(rank) / log(list length + 1) of retriever ``r`` in the node's list, 1 when ``r``
                     did not return the firm (``r`` in ``dense``, ``words``, ``lexical``)
``best_logrank``     the smallest ``{r}_logrank`` over the retrievers in use at that node
``mean_logrank``     their mean (not returned = 1)
``retrieved_share``  share of the retrievers in use that returned the firm
``similarity``       the fused similarity of the candidate (``recommender.retrieval.fusion``), in [0, 1]
``product_share``    share of the node's products found whole in the firm's name, products and scope
``keyword_share``    the same for the node's keywords
``name_hit``         1 when the node's name is found whole there
``word_cover``       weighted share of the node's name / product / keyword words found there
``word_cover_full``  the same over name, products, scope and description
``code``             ``agree`` / ``disagree`` / ``unknown``: the firm's GB/T 4754 class (4 digits) is /
                     is not one of the node's ``industry_codes``; no code on either side is unknown

"Found" means every word the segmenter makes of the product (search mode, the chains' products and
keywords in its dictionary) is among the firm's words. Per-retriever features of a retriever not in
use are not used by the default feature list (``TEXT_FEATURES``: aggregates over the retrievers in
use), so one model serves a bundle with or without the dense index.

The model (:class:`training.fit.FitModel`, fitted by :func:`training.fit.fit_fit_model`) turns the
text features into P(fits | text) and combines it with the code state by Bayes' rule; :func:`fit_scores`
is the accessor for many pairs and :func:`fit` for one. Pure and vectorised: Python loops run over
firms (segmentation) and nodes, never over pairs.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.schema import (
    COL_BUSINESS_SCOPE,
    COL_DESCRIPTION,
    COL_ENTERPRISE_ID,
    COL_NAME,
    COL_NODE_ID,
    COL_PRODUCTS,
    check_columns,
)
from features.words import WordSegmenter, as_list, chain_user_words
from recommender.retrieval.fusion import RETRIEVERS, fused_similarity
from training.fit import CODE_STATES, TEXT_FEATURES, FitModel, code_states, fit_fit_model

__all__ = [
    "CODE_STATES",
    "FIT_FEATURES",
    "FIT_MODEL_FILE",
    "TEXT_FEATURES",
    "FitModel",
    "apply_fit_marks",
    "fit",
    "fit_features",
    "fit_scores",
    "zone_fit",
    "zone_fit_model",
]

FIT_MODEL_FILE: Final = "fit_model.json"  # the model a refresh used, in its run folder (FitModel.to_dict)
RANK_FEATURES: Final = tuple(f"{r}_logrank" for r in RETRIEVERS)
FIT_FEATURES: Final = (*RANK_FEATURES, *TEXT_FEATURES, "code")
CORE_FIELDS: Final = (COL_NAME, COL_PRODUCTS, COL_BUSINESS_SCOPE)
FULL_FIELDS: Final = (*CORE_FIELDS, COL_DESCRIPTION)
NODE_COLUMNS: Final = [COL_NODE_ID, "name", "products", "keywords", "industry_codes"]
CANDIDATE_KEYS: Final = [COL_NODE_ID, COL_ENTERPRISE_ID]


def fit_features(
    candidates: pd.DataFrame,
    nodes: pd.DataFrame,
    enterprises: pd.DataFrame,
    segmenter: WordSegmenter | None = None,
) -> pd.DataFrame:
    """The fit features of every candidate pair (``node_id, enterprise_id``, ``FIT_FEATURES``; index of ``candidates``).

    Args:
        candidates: ``retrieve_candidates`` rows: ``node_id``, ``enterprise_id`` and, for each retriever
            in use, ``{r}_rank`` (1-based, NaN when it did not return the firm); ``similarity`` is
            optional (recomputed with equal weights from ``{r}_score`` when absent).
        nodes: ``features.chains.nodes_frame`` rows (``node_id, name, products, keywords, industry_codes``).
        enterprises: ``enterprise_id``, ``name``, ``products``, ``business_scope``, ``description``,
            ``industry_code`` (missing text columns are empty, a missing code column is all unknown).
        segmenter: the word segmenter of the index bundle; None: one with the words of ``nodes``.

    Raises:
        ValueError: a missing column, or a candidate node that ``nodes`` does not list.
    """
    check_columns(list(candidates.columns), CANDIDATE_KEYS, "candidates")
    check_columns(list(nodes.columns), NODE_COLUMNS, "nodes")
    check_columns(list(enterprises.columns), [COL_ENTERPRISE_ID], "enterprises")
    unknown = sorted(set(candidates[COL_NODE_ID].astype(str)) - set(nodes[COL_NODE_ID].astype(str)))
    if unknown:
        raise ValueError(f"candidates name nodes that nodes does not list: {unknown[:10]}; expected node ids of nodes")
    seg = segmenter if segmenter is not None else WordSegmenter(chain_user_words(nodes))
    out = rank_features(candidates)
    out["similarity"] = _similarity(candidates)
    out = pd.concat([out, overlap_features(candidates, nodes, enterprises, seg)], axis=1)
    out["code"] = code_states(candidates, enterprises, nodes)
    out[COL_NODE_ID] = candidates[COL_NODE_ID].astype(str).to_numpy()
    out[COL_ENTERPRISE_ID] = candidates[COL_ENTERPRISE_ID].astype(str).to_numpy()
    return out[[*CANDIDATE_KEYS, *FIT_FEATURES]]


def rank_features(candidates: pd.DataFrame) -> pd.DataFrame:
    """``{r}_logrank``, ``best_logrank``, ``mean_logrank`` and ``retrieved_share`` of each pair.

    ``{r}_logrank = log(rank) / log(K + 1)``: 0 for the first hit, just under 1 for the last, 1 when
    not returned. A retriever is in use at a node when it returned at least one of the node's
    candidates; K is its largest rank there (its top-K, or fewer when the universe is small).
    """
    node = candidates[COL_NODE_ID].astype(str)
    logranks, in_use = {}, {}
    for r in RETRIEVERS:
        rank = pd.to_numeric(candidates.get(f"{r}_rank", pd.Series(np.nan, index=candidates.index)), errors="coerce")
        length = rank.groupby(node).transform("max")
        used = length.notna().to_numpy()
        scaled = np.log(rank.clip(lower=1.0)) / np.log(length + 1.0)
        logranks[r] = scaled.clip(0.0, 1.0).fillna(1.0).to_numpy(dtype=float)
        in_use[r] = used
    lr = np.column_stack([logranks[r] for r in RETRIEVERS])
    use = np.column_stack([in_use[r] for r in RETRIEVERS])
    n_use = use.sum(axis=1)
    best = np.where(use, lr, 1.0).min(axis=1)  # a retriever not in use counts as "not returned"
    mean = np.where(n_use > 0, np.where(use, lr, 0.0).sum(axis=1) / np.maximum(n_use, 1), 1.0)
    share = _returned(candidates, use).sum(axis=1) / np.maximum(n_use, 1)
    frame = pd.DataFrame({f"{r}_logrank": logranks[r] for r in RETRIEVERS}, index=candidates.index)
    return frame.assign(best_logrank=best, mean_logrank=mean, retrieved_share=share)


def _returned(candidates: pd.DataFrame, use: np.ndarray) -> np.ndarray:
    """(n, 3) bool: the retriever returned the firm (a rank is present), for the retrievers in use."""
    cols = [
        pd.to_numeric(candidates.get(f"{r}_rank", pd.Series(np.nan, index=candidates.index)), errors="coerce")
        for r in RETRIEVERS
    ]
    return np.column_stack([c.notna().to_numpy() for c in cols]) & use


def _similarity(candidates: pd.DataFrame) -> np.ndarray:
    if "similarity" in candidates.columns:
        return pd.to_numeric(candidates["similarity"], errors="coerce").fillna(0.0).clip(0.0, 1.0).to_numpy(float)
    return fused_similarity(candidates).to_numpy(dtype=float)


# --------------------------------------------------------------------------------------- overlap
def overlap_features(
    candidates: pd.DataFrame, nodes: pd.DataFrame, enterprises: pd.DataFrame, segmenter: WordSegmenter
) -> pd.DataFrame:
    """``product_share``, ``keyword_share``, ``name_hit``, ``word_cover`` and ``word_cover_full``.

    Sparse algebra over the node terms' vocabulary only: firm × word presence matrices times node ×
    unit matrices, looked up per pair.
    """
    node_ids = nodes[COL_NODE_ID].astype(str).drop_duplicates().tolist()
    node_pos = {n: i for i, n in enumerate(node_ids)}
    rows = nodes.assign(**{COL_NODE_ID: nodes[COL_NODE_ID].astype(str)}).drop_duplicates(COL_NODE_ID)
    rows = rows.set_index(COL_NODE_ID)
    named = _node_units(rows.loc[node_ids], segmenter)
    vocab = {w: j for j, w in enumerate(sorted({w for part in named.values() for _, words, _ in part for w in words}))}
    units = {part: [(i, tuple(vocab[w] for w in words), v) for i, words, v in us] for part, us in named.items()}
    firm_ids = pd.Index(candidates[COL_ENTERPRISE_ID].astype(str).unique())
    ents = enterprises.assign(**{COL_ENTERPRISE_ID: enterprises[COL_ENTERPRISE_ID].astype(str)})
    ents = ents.drop_duplicates(COL_ENTERPRISE_ID).set_index(COL_ENTERPRISE_ID).reindex(firm_ids)
    core, full = _presence(ents, segmenter, vocab)
    fi = firm_ids.get_indexer(candidates[COL_ENTERPRISE_ID].astype(str))
    ni = candidates[COL_NODE_ID].astype(str).map(node_pos).to_numpy(dtype=np.int64)
    out = {}
    for feature, part in (("product_share", "products"), ("keyword_share", "keywords"), ("name_hit", "name")):
        out[feature] = _lookup(_whole_share(core, units[part], len(node_ids), len(vocab)), fi, ni)
    cover = _unit_matrix(units["words"], len(node_ids), len(vocab))
    out["word_cover"] = _lookup(core @ cover.T, fi, ni)
    out["word_cover_full"] = _lookup(full @ cover.T, fi, ni)
    return pd.DataFrame(out, index=candidates.index).clip(0.0, 1.0)


NamedUnit = tuple[int, tuple[str, ...], float]  # (node position, its words, weight)
Unit = tuple[int, tuple[int, ...], float]  # (node position, its words' vocabulary columns, weight)


def _node_units(nodes: pd.DataFrame, segmenter: WordSegmenter) -> dict[str, list[NamedUnit]]:
    """Per part, the node's units: each product / keyword / the name as its words, and each word alone."""
    parts: dict[str, list[NamedUnit]] = {"products": [], "keywords": [], "name": [], "words": []}
    for i, row in enumerate(nodes[["name", "products", "keywords"]].to_dict(orient="records")):
        weights: dict[str, float] = {}
        for part in ("name", "products", "keywords"):
            for text in as_list(row.get(part)):
                words = tuple(dict.fromkeys(segmenter.tokens(str(text))))
                if words:
                    parts[part].append((i, words, 1.0))
                for w in words:
                    weights[w] = weights.get(w, 0.0) + 1.0
        parts["words"].extend((i, (w,), v) for w, v in sorted(weights.items()))
    return parts


def _presence(
    ents: pd.DataFrame, segmenter: WordSegmenter, vocab: dict[str, int]
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(n_firms, |vocab|) 0/1 matrices of the firm's node words in ``CORE_FIELDS`` and in ``FULL_FIELDS``.

    One segmentation per firm and field (the only loop over firms); words that no node uses are dropped.
    """
    columns = [ents[f].tolist() if f in ents.columns else [None] * len(ents) for f in FULL_FIELDS]
    n_core = len(CORE_FIELDS)
    core: list[set[int]] = []
    full: list[set[int]] = []
    for values in zip(*columns, strict=True):
        found = [{vocab[w] for w in segmenter.tokens(v) if w in vocab} for v in values]
        core.append(set().union(*found[:n_core]))
        full.append(set().union(*found))
    return _binary(core, len(vocab)), _binary(full, len(vocab))


def _binary(rows: list[set[int]], n_cols: int) -> sp.csr_matrix:
    indptr = np.cumsum([0, *(len(r) for r in rows)])
    indices = np.asarray([j for r in rows for j in sorted(r)], dtype=np.int64)
    return sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(rows), n_cols))


def _unit_matrix(units: list[Unit], n_nodes: int, n_vocab: int) -> sp.csr_matrix:
    """(n_nodes, |vocab|): each node's word weights, normalised to sum 1."""
    rows = np.asarray([i for i, words, _ in units for _ in words], dtype=np.int64)
    cols = np.asarray([j for _, words, _ in units for j in words], dtype=np.int64)
    vals = np.asarray([w for _, words, w in units for _ in words], dtype=float)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n_nodes, n_vocab))
    total = np.asarray(m.sum(axis=1)).ravel()
    return (sp.diags(np.where(total > 0, 1.0 / np.maximum(total, 1e-12), 0.0)) @ m).tocsr()


def _whole_share(presence: sp.csr_matrix, units: list[Unit], n_nodes: int, n_vocab: int) -> sp.csr_matrix:
    """(n_firms, n_nodes): share of each node's units whose every word the firm has."""
    if not units:
        return sp.csr_matrix((presence.shape[0], n_nodes))
    unit_words = sp.csr_matrix(
        (
            np.ones(sum(len(w) for _, w, _ in units)),
            (np.repeat(np.arange(len(units)), [len(w) for _, w, _ in units]), [j for _, w, _ in units for j in w]),
        ),
        shape=(len(units), n_vocab),
    )
    sizes = np.asarray([len(w) for _, w, _ in units], dtype=float)
    hits = (presence @ unit_words.T).tocoo()
    whole = hits.data >= sizes[hits.col] - 1e-9
    complete = sp.csr_matrix((np.ones(int(whole.sum())), (hits.row[whole], hits.col[whole])), hits.shape)
    owner = np.asarray([i for i, _, _ in units], dtype=np.int64)
    per_node = np.bincount(owner, minlength=n_nodes).astype(float)
    to_node = sp.csr_matrix((1.0 / per_node[owner], (np.arange(len(units)), owner)), shape=(len(units), n_nodes))
    return (complete @ to_node).tocsr()


def _lookup(matrix: sp.spmatrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix[rows[k], cols[k]]`` for every k (rows −1: 0)."""
    ok = rows >= 0
    out = np.zeros(len(rows), dtype=float)
    if ok.any():
        out[ok] = np.asarray(sp.csr_matrix(matrix)[rows[ok], cols[ok]]).ravel()
    return out


# -------------------------------------------------------------------------------------- accessors
def fit_scores(
    candidates: pd.DataFrame,
    nodes: pd.DataFrame,
    enterprises: pd.DataFrame,
    model: FitModel,
    segmenter: WordSegmenter | None = None,
) -> pd.Series:
    """P(the firm makes what the node needs) for every candidate pair, in [0, 1], index of ``candidates``."""
    features = fit_features(candidates, nodes, enterprises, segmenter)
    return pd.Series(model.predict(features), index=candidates.index, name="fit")


def fit(
    node_id: str,
    enterprise_id: str,
    candidates: pd.DataFrame,
    nodes: pd.DataFrame,
    enterprises: pd.DataFrame,
    model: FitModel,
    segmenter: WordSegmenter | None = None,
) -> float:
    """The fit of one pair, through :func:`fit_scores` on the node's own candidate list.

    The node's whole list is needed because ranks are relative to it; a firm that is not among the
    node's candidates was returned by no retriever and is scored as such.
    """
    own = candidates[candidates[COL_NODE_ID].astype(str) == str(node_id)]
    pair = own[own[COL_ENTERPRISE_ID].astype(str) == str(enterprise_id)]
    if pair.empty:
        own = pd.concat([own, pd.DataFrame({COL_NODE_ID: [str(node_id)], COL_ENTERPRISE_ID: [str(enterprise_id)]})])
        own = own.reset_index(drop=True)
    scores = fit_scores(own, nodes, enterprises, model, segmenter)
    hit = own[COL_ENTERPRISE_ID].astype(str).to_numpy() == str(enterprise_id)
    return float(scores.to_numpy()[hit][0])


def zone_fit_model(
    features: pd.DataFrame, default: FitModel, refit: bool, min_pairs: int
) -> tuple[FitModel, dict[str, object]]:
    """The fit model for this universe and where it came from (docs/ranking.md, "Which model").

    With ``refit``, the model is refitted on the universe's own candidate pairs, with the registry
    codes as the noisy labels (:func:`training.fit.fit_fit_model`): its retrievers, its texts. That
    needs at least ``min_pairs`` pairs whose code agrees and as many whose code disagrees; with fewer
    (a registry without codes, chains without ``industry_codes``), or without ``refit``, it is
    ``default`` (``ranking.fit_model``). The second value says which (``model``), why (``why``, a
    sentence for logs and summaries) and the counts.
    """
    state = features["code"].astype(str)
    n_agree, n_disagree = int((state == "agree").sum()), int((state == "disagree").sum())
    info: dict[str, object] = {"n_agree": n_agree, "n_disagree": n_disagree, "min_pairs": min_pairs}
    if not refit:
        return default, {"model": "default", "why": "ranking.fit_refit is off", **info}
    if min(n_agree, n_disagree) < max(min_pairs, 1):
        why = f"{n_agree} pairs whose code agrees and {n_disagree} whose code disagrees; a refit needs {min_pairs} of each"
        return default, {"model": "default", "why": why, **info}
    model = fit_fit_model(features, default.features, manifest={"fitted_on": "the universe's own candidates"})
    why = (
        f"refitted on {n_agree} pairs whose code agrees and {n_disagree} whose code disagrees, alpha {model.alpha:.3f}"
    )
    return model, {"model": "refit", "why": why, "alpha": model.alpha,
                   "em_iterations": model.manifest["em_iterations"], **info}  # fmt: skip


def zone_fit(
    candidates: pd.DataFrame,
    nodes: pd.DataFrame,
    enterprises: pd.DataFrame,
    default: FitModel,
    refit: bool,
    min_pairs: int,
    segmenter: WordSegmenter | None = None,
) -> tuple[pd.Series, FitModel, dict[str, object]]:
    """:func:`fit_scores` with the model of :func:`zone_fit_model`, fitted on these very candidates
    (the features are computed once): (fit of every pair, the model, where it came from)."""
    features = fit_features(candidates, nodes, enterprises, segmenter)
    model, info = zone_fit_model(features, default, refit, min_pairs)
    return pd.Series(model.predict(features), index=candidates.index, name="fit"), model, info


# --------------------------------------------------------------------------------------- analysts' checks
MARK_FITS: Final = "fits"
MARK_NOT_FIT: Final = "not_fit"


def apply_fit_marks(scored: pd.DataFrame, marks: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The analysts' checks (the ``fit_marks`` table) over the model's fit: a pair checked 是 gets fit 1,
    one checked 否 fit 0, whatever the model said.

    Args:
        scored: candidate pairs (``node_id, enterprise_id, fit``, any other columns).
        marks: ``features.schema`` ``fit_marks`` rows (``node_id, enterprise_id, fits`` and optionally
            ``date, marked_by, note``), or None / empty.

    Returns:
        (``scored`` with ``fit`` overridden and ``fit_mark`` — ``"fits"``, ``"not_fit"`` or ``""`` — and
        ``fit_mark_note``, who checked it, when and their note, for the reasons; the counts
        ``{"applied": …, "not_candidates": …}``: checks of pairs that are not candidates change nothing).
    """
    out = scored.assign(fit_mark="", fit_mark_note="")
    if marks is None or marks.empty:
        return out, {"applied": 0, "not_candidates": 0}
    check_columns(list(marks.columns), [COL_NODE_ID, COL_ENTERPRISE_ID, "fits"], "fit_marks")
    m = marks.assign(**{c: marks[c].astype(str) for c in CANDIDATE_KEYS}).drop_duplicates(CANDIDATE_KEYS, keep="last")
    key = pd.MultiIndex.from_frame(out[CANDIDATE_KEYS].astype(str))
    found = pd.MultiIndex.from_frame(m[CANDIDATE_KEYS])
    m = m.set_index(CANDIDATE_KEYS)
    hit = key.isin(found)
    if hit.any():
        rows = m.loc[key[hit]]
        fits = rows["fits"].astype(bool).to_numpy()
        out.loc[hit, "fit"] = np.where(fits, 1.0, 0.0)
        out.loc[hit, "fit_mark"] = np.where(fits, MARK_FITS, MARK_NOT_FIT)
        notes = np.full(len(out), "", dtype=object)
        notes[hit] = [_mark_note({str(k): v for k, v in r.items()}) for r in rows.to_dict("records")]
        out["fit_mark_note"] = notes
    return out, {"applied": int(hit.sum()), "not_candidates": int(len(m) - key[hit].nunique())}


def _mark_note(row: dict[str, object]) -> str:
    """``核实人 张三，2026-12-04；备注`` from a check's optional columns (empty parts left out)."""
    who = row.get("marked_by")
    day = row.get("date")
    parts = [f"核实人 {who}" if isinstance(who, str) and who else "", _day(day)]
    note = row.get("note")
    return "；".join(t for t in ("，".join(p for p in parts if p), note if isinstance(note, str) else "") if t)


def _day(value: object) -> str:
    stamp = pd.to_datetime(pd.Series([value]), errors="coerce").iloc[0]
    return "" if pd.isna(stamp) else str(stamp.strftime("%Y-%m-%d"))
