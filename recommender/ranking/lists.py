"""What goes into the published lists: the fit threshold, the zone's history, local firms and the
per-firm cap, applied to the scored candidates of every node (pure pandas / numpy).

A node's published list holds outside firms that make what the node needs, ordered by how likely
they are to come. From the scored candidates (``node_id, enterprise_id, score, fit``):

1. **History.** A pair (node, firm) that reached 签约 or 落地 is never a target of that node again;
   a pair whose latest record is 终止, dated within ``exclude_terminated_months`` of ``as_of``, is
   left out. Both go to ``excluded`` with the reason (stage, date, 备注); records dated after
   ``as_of`` are ignored. A firm already in the zone at the node itself is excluded too (retrieval
   normally drops it first). A pair an analyst checked as not making the node's products (the
   ``fit_mark`` column of :func:`recommender.retrieval.fit.apply_fit_marks`) is excluded too, as
   ``marked_not_fit``.
2. **Fit.** A pair with ``fit < fit_threshold`` is never listed, whatever its score.
3. **Local firms.** A fitting firm already in the zone at another node goes to the node's
   local-extension list (本地延链), ranked by score and cut at ``top_n``, never mixed with the
   outside targets and not counted by the cap.
4. **Cap.** Each outside firm is kept in the published lists (the top ``top_n`` by score) of at most
   ``max_lists_per_firm`` nodes: those where its fit is highest (then score, then node id). The cap
   is applied before the final cut and repeated until it holds, so a list a firm leaves refills
   from the next fitting firm; the nodes it was taken off are its ``also_fits``.

``n_fit`` of a node is how many outside firms pass the threshold after the exclusions (what a page
shows as 本节点匹配企业 7 家); a list may be shorter than ``top_n``.

5. **To check (待核实).** Outside firms just below the threshold — ``near_fit_min ≤ fit <
   fit_threshold``, not excluded by rule 1, not in the zone — are never listed, but the best
   ``near_fit_per_node`` of each node by fit (then score, then firm id) go to ``near_fit`` for an
   analyst to check; ``n_near_fit`` counts all of them. Where the fit model is conservative (texts
   unlike the sample's: docs/ranking.md, "Fit on real texts"), the firms it cut are found there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from features.schema import COL_DATE, COL_ENTERPRISE_ID, COL_NODE_ID, COL_NOTE, COL_STAGE, check_columns
from recommender.settings import RankingConfig

SIGNED_STAGES: Final = ("签约", "落地")
TERMINATED_STAGE: Final = "终止"
EXCLUDED_COLUMNS: Final = [
    COL_NODE_ID, COL_ENTERPRISE_ID, "score", "fit", "reason_code", "reason", COL_STAGE, COL_DATE, COL_NOTE,
]  # fmt: skip
"""``excluded``: one row per (node, firm) left out, ``reason_code`` one of :data:`REASON_CODES`."""
REASON_CODES: Final = ("signed", "terminated", "in_zone_at_node", "marked_not_fit")
NODE_COUNT_COLUMNS: Final = [
    COL_NODE_ID, "n_candidates", "n_below_fit", "n_excluded_signed", "n_excluded_terminated", "n_fit",
    "n_local_fit", "n_capped", "n_listed", "n_local_listed", "n_near_fit",
]  # fmt: skip
NEAR_FIT_COLUMNS: Final = [COL_NODE_ID, "near_rank", COL_ENTERPRISE_ID, "fit", "score"]
"""``near_fit``: per node the best outside firms below the fit threshold (rule 5), ``near_rank`` 1 = best fit."""


@dataclass(frozen=True)
class PublishedLists:
    """The lists of every node.

    Attributes:
        targets: the outside targets: the scored columns plus ``rank`` (1 = best, per node),
            ``n_fit`` (the node's fitting outside firms) and ``also_fits`` (``|``-joined nodes the
            firm fits but was capped out of, best fit first; "" when none).
        local_extension: the 本地延链 lists: the scored columns plus ``rank``, ``n_local_fit`` and
            ``zone_nodes`` (``|``-joined nodes where the firm already is in the zone).
        excluded: :data:`EXCLUDED_COLUMNS`.
        node_counts: :data:`NODE_COUNT_COLUMNS`, one row per node of the candidates.
        capped: ``node_id, enterprise_id, fit``: the pairs the cap took off a list.
        near_fit: :data:`NEAR_FIT_COLUMNS`: the firms to check (rule 5), never in a list.
    """

    targets: pd.DataFrame
    local_extension: pd.DataFrame
    excluded: pd.DataFrame
    node_counts: pd.DataFrame
    capped: pd.DataFrame
    near_fit: pd.DataFrame


def build_lists(
    scored: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    presence: pd.DataFrame | None,
    config: RankingConfig,
    top_n: int,
    as_of: pd.Timestamp,
) -> PublishedLists:
    """The published lists of every node (see the module docstring for the rules and their order).

    Args:
        scored: one row per (node, firm): ``node_id, enterprise_id, score, fit`` (fit in [0, 1]) and
            any other columns, which are kept.
        outcomes: the approach records (``features.schema`` outcomes columns), or None.
        presence: the presence rows known at ``as_of`` (``enterprise_id, node_id``), or None.
        config: the ``ranking`` settings.
        top_n: places per published list.
        as_of: the run date; outcome records dated after it are ignored.
    """
    check_columns(list(scored.columns), [COL_NODE_ID, COL_ENTERPRISE_ID, "score", "fit"], "scored")
    if top_n < 1:
        raise ValueError(f"top_n must be an int in the range [1, inf); got {top_n!r} instead.")
    df = scored.reset_index(drop=True)
    df = df.assign(**{COL_NODE_ID: df[COL_NODE_ID].astype(str), COL_ENTERPRISE_ID: df[COL_ENTERPRISE_ID].astype(str)})
    excluded = _excluded(df, outcomes, presence, config, as_of)
    left_out = pd.MultiIndex.from_frame(df[[COL_NODE_ID, COL_ENTERPRISE_ID]]).isin(
        pd.MultiIndex.from_frame(excluded[[COL_NODE_ID, COL_ENTERPRISE_ID]].astype(str))
    )
    fit = pd.to_numeric(df["fit"], errors="coerce").fillna(0.0)
    fits = fit >= config.fit_threshold
    zone_nodes = _zone_nodes(presence)
    in_zone = df[COL_ENTERPRISE_ID].isin(zone_nodes.index)
    outside, local = df[fits & ~left_out & ~in_zone], df[fits & ~left_out & in_zone]
    near = df[~fits & (fit >= config.near_fit_min) & ~left_out & ~in_zone] if config.near_fit_per_node else df.iloc[:0]
    kept, capped = cap_lists(outside, config.max_lists_per_firm, top_n)
    local_rows = _ranked(local).groupby(COL_NODE_ID, sort=False).head(top_n)
    counts = _node_counts(df, fits, excluded, outside, local, capped, kept, local_rows, near)
    targets = _with_counts(kept, counts, "n_fit").assign(also_fits=_also_fits(kept, capped))
    local_ext = _with_counts(local_rows, counts, "n_local_fit")
    local_ext["zone_nodes"] = local_ext[COL_ENTERPRISE_ID].map(zone_nodes).fillna("")
    return PublishedLists(targets, local_ext, excluded, counts, capped, near_fit(near, config.near_fit_per_node))


def near_fit(near: pd.DataFrame, per_node: int) -> pd.DataFrame:
    """The best ``per_node`` rows of each node by fit (then score, then firm id), ``near_rank`` 1, 2, …
    (:data:`NEAR_FIT_COLUMNS`)."""
    order = near.sort_values(
        [COL_NODE_ID, "fit", "score", COL_ENTERPRISE_ID], ascending=[True, False, False, True], kind="stable"
    )
    top = order.assign(near_rank=order.groupby(COL_NODE_ID, sort=False).cumcount().to_numpy() + 1)
    top = top[top["near_rank"] <= per_node]
    return top[NEAR_FIT_COLUMNS].astype({"fit": float, "score": float}).reset_index(drop=True)


def _ranked(df: pd.DataFrame) -> pd.DataFrame:
    """Rows by node, score (descending), firm id; ``rank`` 1, 2, … within each node."""
    keys = [COL_NODE_ID, "score", *(["margin"] if "margin" in df else []), COL_ENTERPRISE_ID]  # = ranking.scoring
    order = df.sort_values(keys, ascending=[True, *[False] * (len(keys) - 2), True], kind="stable")
    return order.assign(rank=order.groupby(COL_NODE_ID, sort=False).cumcount().to_numpy() + 1)


def cap_lists(eligible: pd.DataFrame, max_lists: int, top_n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cut each node's list at ``top_n`` with no firm in more than ``max_lists`` lists.

    Repeats until the cap holds: cut every list at ``top_n``; a firm in more than ``max_lists``
    lists leaves those where its fit is lowest (then score, then node id); the lists it left refill
    from their next firms on the next round. A pair only leaves, so a firm's kept places stay.

    Args:
        eligible: ``node_id, enterprise_id, score, fit`` (+ any columns), the firms a list may hold.

    Returns:
        (the kept rows ranked within their node, ``node_id, enterprise_id, fit`` of the capped pairs).
    """
    order = _ranked(eligible).reset_index(drop=True)
    node, firm = order[COL_NODE_ID].to_numpy(), order[COL_ENTERPRISE_ID].to_numpy()
    fit, score = order["fit"].astype(float).to_numpy(), order["score"].astype(float).to_numpy()
    alive = np.ones(len(order), dtype=bool)
    while True:
        idx = np.flatnonzero(alive)
        pos = pd.Series(node[idx]).groupby(node[idx], sort=False).cumcount().to_numpy()
        listed = idx[pos < top_n]
        n_lists = pd.Series(firm[listed]).groupby(firm[listed]).transform("size").to_numpy()
        over = listed[n_lists > max_lists]
        if over.size == 0:
            break
        # within each over-cap firm: best fit first, then score, then node id; keep the first max_lists
        sub = pd.DataFrame({"f": firm[over], "fit": fit[over], "s": score[over], "n": node[over], "i": over})
        sub = sub.sort_values(["f", "fit", "s", "n"], ascending=[True, False, False, True], kind="stable")
        nth = sub.groupby("f", sort=False).cumcount().to_numpy()
        alive[sub["i"].to_numpy()[nth >= max_lists]] = False
    idx = np.flatnonzero(alive)
    pos = pd.Series(node[idx]).groupby(node[idx], sort=False).cumcount().to_numpy()
    kept = _ranked(order.iloc[idx[pos < top_n]])
    capped = order.loc[~alive, [COL_NODE_ID, COL_ENTERPRISE_ID, "fit"]].reset_index(drop=True)
    return kept.reset_index(drop=True), capped


def _also_fits(kept: pd.DataFrame, capped: pd.DataFrame) -> pd.Series:
    """Per kept row: the nodes its firm was capped out of, best fit first, ``|``-joined."""
    if capped.empty:
        return pd.Series("", index=kept.index, dtype=object)
    order = capped.sort_values(["fit", COL_NODE_ID], ascending=[False, True], kind="stable")
    joined = order.groupby(COL_ENTERPRISE_ID, sort=False)[COL_NODE_ID].agg("|".join)
    return kept[COL_ENTERPRISE_ID].map(joined).fillna("").astype(object)


def _zone_nodes(presence: pd.DataFrame | None) -> pd.Series:
    """Firm id -> ``|``-joined nodes where it is in the zone (sorted)."""
    if presence is None or presence.empty:
        return pd.Series(dtype=object)
    pairs = presence[[COL_ENTERPRISE_ID, COL_NODE_ID]].astype(str).drop_duplicates()
    return pairs.sort_values(COL_NODE_ID).groupby(COL_ENTERPRISE_ID)[COL_NODE_ID].agg("|".join)


def _with_counts(rows: pd.DataFrame, counts: pd.DataFrame, col: str) -> pd.DataFrame:
    n = rows[COL_NODE_ID].map(counts.set_index(COL_NODE_ID)[col]).fillna(0).astype(int)
    return rows.assign(**{col: n.to_numpy()}).reset_index(drop=True)


def _node_counts(
    df: pd.DataFrame,
    fits: pd.Series,
    excluded: pd.DataFrame,
    outside: pd.DataFrame,
    local: pd.DataFrame,
    capped: pd.DataFrame,
    kept: pd.DataFrame,
    local_rows: pd.DataFrame,
    near: pd.DataFrame,
) -> pd.DataFrame:
    nodes = pd.Index(sorted(df[COL_NODE_ID].unique()), name=COL_NODE_ID)

    def per_node(frame: pd.DataFrame) -> pd.Series:
        return frame.groupby(COL_NODE_ID).size().reindex(nodes, fill_value=0)

    codes = excluded["reason_code"]
    out = pd.DataFrame(
        {
            "n_candidates": per_node(df),
            "n_below_fit": per_node(df[~fits]),
            "n_excluded_signed": per_node(excluded[codes == "signed"]),
            "n_excluded_terminated": per_node(excluded[codes == "terminated"]),
            "n_fit": per_node(outside),
            "n_local_fit": per_node(local),
            "n_capped": per_node(capped),
            "n_listed": per_node(kept),
            "n_local_listed": per_node(local_rows),
            "n_near_fit": per_node(near),
        },
        index=nodes,
    )
    return out.reset_index()[NODE_COUNT_COLUMNS]


# ---------------------------------------------------------------- exclusions
def _excluded(
    df: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    presence: pd.DataFrame | None,
    config: RankingConfig,
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """The pairs of ``df`` that history or presence keep off the node's list (:data:`EXCLUDED_COLUMNS`)."""
    history = history_exclusions(df, outcomes, as_of, config.exclude_terminated_months)
    parts = [history]
    if presence is not None and not presence.empty:
        here = presence[[COL_NODE_ID, COL_ENTERPRISE_ID]].astype(str).drop_duplicates()
        same = df[[COL_NODE_ID, COL_ENTERPRISE_ID]].merge(here)
        same = same.assign(reason_code="in_zone_at_node", reason="已在园区本节点布局", **{COL_NOTE: None})
        parts.append(
            same.assign(
                **{COL_STAGE: None, COL_DATE: pd.Series(pd.NaT, index=same.index, dtype=history[COL_DATE].dtype)}
            )
        )
    if "fit_mark" in df:  # an analyst checked that the firm does not make what the node needs
        marked = df.loc[df["fit_mark"] == "not_fit", [COL_NODE_ID, COL_ENTERPRISE_ID]]
        notes = df.loc[marked.index, "fit_mark_note"] if "fit_mark_note" in df else pd.Series("", index=marked.index)
        reason = ("经核实不生产本节点产品" + notes.fillna("").map(lambda t: f"（{t}）" if t else "")).to_numpy()
        date_type = history[COL_DATE].dtype
        parts.append(marked.assign(reason_code="marked_not_fit", reason=reason, **{COL_NOTE: None, COL_STAGE: None,
                                   COL_DATE: pd.Series(pd.NaT, index=marked.index, dtype=date_type)}))  # fmt: skip
    found = _concat(parts).drop_duplicates([COL_NODE_ID, COL_ENTERPRISE_ID])  # history first
    info = df[[COL_NODE_ID, COL_ENTERPRISE_ID, "score", "fit"]].drop_duplicates([COL_NODE_ID, COL_ENTERPRISE_ID])
    out = found.drop(columns=["score", "fit"], errors="ignore").merge(info, how="left")
    for c in EXCLUDED_COLUMNS:
        if c not in out.columns:
            out[c] = pd.Series(dtype="datetime64[ns]" if c == COL_DATE else object)
    return out[EXCLUDED_COLUMNS].sort_values([COL_NODE_ID, "reason_code", COL_ENTERPRISE_ID]).reset_index(drop=True)


def history_exclusions(
    pairs: pd.DataFrame, outcomes: pd.DataFrame | None, as_of: pd.Timestamp, terminated_months: int
) -> pd.DataFrame:
    """The pairs of ``pairs`` that signed or landed (reason ``signed``) or whose latest record is a
    termination within ``terminated_months`` of ``as_of`` (``terminated``), from records up to ``as_of``.

    Returns:
        ``node_id, enterprise_id, reason_code, reason, stage, date, note``, one row per excluded pair
        (a signed pair is reported as signed even if it was terminated later).
    """
    cols = [COL_NODE_ID, COL_ENTERPRISE_ID, "reason_code", "reason", COL_STAGE, COL_DATE, COL_NOTE]
    if outcomes is None or outcomes.empty:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == COL_DATE else object) for c in cols})
    check_columns(list(outcomes.columns), [COL_ENTERPRISE_ID, COL_NODE_ID, COL_STAGE, COL_DATE], "outcomes")
    note = outcomes[COL_NOTE] if COL_NOTE in outcomes else pd.Series(None, index=outcomes.index, dtype=object)
    typed: dict[str, pd.Series] = {
        COL_NODE_ID: outcomes[COL_NODE_ID].astype(str),
        COL_ENTERPRISE_ID: outcomes[COL_ENTERPRISE_ID].astype(str),
        COL_DATE: pd.to_datetime(outcomes[COL_DATE]),
        COL_NOTE: note,
    }
    recs = outcomes.assign(**typed)
    recs = recs[recs[COL_DATE] <= as_of].merge(pairs[[COL_NODE_ID, COL_ENTERPRISE_ID]].drop_duplicates())
    # a termination ends the process: on the day of another record it is the later one
    recs = recs.assign(_end=recs[COL_STAGE] == TERMINATED_STAGE)
    recs = recs.sort_values([COL_NODE_ID, COL_ENTERPRISE_ID, COL_DATE, "_end"], kind="stable")
    signed = recs[recs[COL_STAGE].isin(SIGNED_STAGES)].groupby([COL_NODE_ID, COL_ENTERPRISE_ID]).tail(1)
    signed = signed.assign(reason_code="signed", reason=[_signed_text(r) for r in signed.to_dict("records")])
    last = recs.groupby([COL_NODE_ID, COL_ENTERPRISE_ID]).tail(1)
    since = as_of - pd.DateOffset(months=terminated_months)
    ended = last[(last[COL_STAGE] == TERMINATED_STAGE) & (last[COL_DATE] > since)]
    ended = ended.assign(
        reason_code="terminated", reason=[_terminated_text(r, terminated_months) for r in ended.to_dict("records")]
    )
    both = _concat([signed[cols], ended[cols]]).drop_duplicates([COL_NODE_ID, COL_ENTERPRISE_ID])
    return both.reset_index(drop=True)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The non-empty parts one after the other (the first part, empty, when all are)."""
    full = [p for p in parts if len(p)]
    return pd.concat(full, ignore_index=True) if full else parts[0].reset_index(drop=True)


def _note(rec: Mapping[Any, Any]) -> str:
    note = rec.get(COL_NOTE)
    return "" if note is None or (not isinstance(note, str) and pd.isna(note)) else str(note).strip()


def _signed_text(rec: Mapping[Any, Any]) -> str:
    note = _note(rec)
    day = pd.Timestamp(rec[COL_DATE])
    return f"已于{day:%Y-%m-%d}{rec[COL_STAGE]}" + (f"（备注：{note}）" if note else "") + "，不再作为本节点目标"


def _terminated_text(rec: Mapping[Any, Any], months: int) -> str:
    note = _note(rec).removeprefix("终止:").removeprefix("终止：").strip()  # 备注 often repeats the stage
    day = pd.Timestamp(rec[COL_DATE])
    why = f"终止原因：{note}" if note else "未注明终止原因"
    return f"{day:%Y-%m-%d}终止（{why}），{months}个月内不再推荐"


# ---------------------------------------------------------------- overlap
def list_overlap(targets: pd.DataFrame, k: int = 20) -> dict[str, float | int | None]:
    """How much the node lists repeat the same firms.

    Returns:
        ``n_places`` (rows of ``targets``), ``n_firms`` (distinct firms), ``firms_per_100_places``
        (100 · n_firms / n_places), ``max_lists_per_firm`` (lists of the most listed firm),
        ``mean_jaccard_top{k}`` (mean Jaccard index of the top-``k`` lists over all pairs of nodes;
        None with fewer than two lists).
    """
    check_columns(list(targets.columns), [COL_NODE_ID, COL_ENTERPRISE_ID, "rank"], "targets")
    n_places, firms = len(targets), targets[COL_ENTERPRISE_ID].astype(str)
    out: dict[str, float | int | None] = {
        "n_places": int(n_places),
        "n_firms": int(firms.nunique()),
        "firms_per_100_places": round(100.0 * firms.nunique() / n_places, 2) if n_places else None,
        "max_lists_per_firm": int(firms.value_counts().max()) if n_places else 0,
    }
    top = targets[targets["rank"] <= k]
    nodes, node_idx = np.unique(top[COL_NODE_ID].astype(str).to_numpy(), return_inverse=True)
    _, firm_idx = np.unique(top[COL_ENTERPRISE_ID].astype(str).to_numpy(), return_inverse=True)
    key = f"mean_jaccard_top{k}"
    if len(nodes) < 2:
        return out | {key: None}
    m = np.zeros((len(nodes), int(firm_idx.max()) + 1), dtype=np.float32)
    m[node_idx, firm_idx] = 1.0
    inter = m @ m.T
    size = m.sum(axis=1)
    iu = np.triu_indices(len(nodes), k=1)
    union = size[iu[0]] + size[iu[1]] - inter[iu]
    return out | {key: round(float(np.mean(inter[iu] / union)), 4)}
