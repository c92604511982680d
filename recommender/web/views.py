"""What the routes answer, built from the app's state: lists, workbooks, an enterprise's detail,
explanations, diffs, the chain picture and the page summaries (no request or response objects,
except the Excel download's headers)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlencode

import pandas as pd
from fastapi import HTTPException
from fastapi.responses import Response

from features import schema as S
from recommender import store
from recommender.runs.published import RunView
from recommender.web.display import SCORE_LABELS, SCORE_NOTES, heuristic_run, score_text
from recommender.web.filters import LIST_COLUMNS, ListFilters, filter_targets
from recommender.web.lookups import enterprise_or_404, node_or_404, run_or_404
from recommender.web.problems import not_found
from recommender.web.serialize import clean, iso, records, target_records
from recommender.web.state import WebState

if TYPE_CHECKING:
    from features.chains import Chain
    from recommender.web.schemas import FeedbackIn

XLSX: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SVG: Final = "image/svg+xml"
XLSX_200: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "the workbook", "content": {XLSX: {"schema": {"type": "string", "format": "binary"}}}}
}
SVG_200: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "the chain picture", "content": {SVG: {"schema": {"type": "string"}}}}
}


class XlsxResponse(Response):
    media_type = XLSX


class SvgResponse(Response):
    media_type = SVG


COLOUR_NAMES: Final = {"red": "红（缺失）", "blue": "蓝（薄弱）", "green": "绿（优势）"}


# ---------------------------------------------------------------- lists
def filtered_targets(st: WebState, view: RunView, node_id: str, f: ListFilters) -> pd.DataFrame:
    return filter_targets(st.node_lists.get(view, node_id)[0], f)


def filtered_records(st: WebState, view: RunView, node_id: str, f: ListFilters) -> tuple[int, list[dict[str, Any]]]:
    """(rows kept, their records in list order); the records are shared: callers must not mutate them."""
    t, recs = st.node_lists.get(view, node_id)
    kept = filter_targets(t, f)
    return len(kept), [recs[i] for i in kept.index]


def target_page(st: WebState, view: RunView, node_id: str, f: ListFilters, page: int, page_size: int) -> dict[str, Any]:
    """One page of a node's filtered list: ``{run_id, node_id, total, page, page_size, items}``."""
    total, items = filtered_records(st, view, node_id, f)
    start = (page - 1) * page_size
    return {
        "run_id": view.run_id,
        "node_id": node_id,
        "total": total,
        "page": page,
        "page_size": page_size,
        "items": items[start : start + page_size],
    }


def explain(view: RunView, node_id: str, enterprise_id: str) -> dict[str, Any]:
    """One target of a published list: its list columns, features and per-feature contributions."""
    t = view.node_targets(node_id)
    row = t[t[S.COL_ENTERPRISE_ID] == enterprise_id] if not t.empty else t
    if row.empty:
        raise HTTPException(status_code=404, detail=f"{enterprise_id} is not in the published list of {node_id}")
    out = target_records(row)[0]
    features = {k: v for k, v in out.items() if k not in LIST_COLUMNS and not k.startswith("contrib_")}
    contributions = {k[len("contrib_") :]: v for k, v in out.items() if k.startswith("contrib_")}
    return {
        **{k: out[k] for k in LIST_COLUMNS if k in out},
        "run_id": view.run_id,
        "features": features,
        "contributions": contributions,
    }


# ---------------------------------------------------------------- Excel
def run_ranking(st: WebState, view: RunView | None) -> dict[str, Any]:
    """The ``ranking`` settings the run was made with (its manifest), else the current ones."""
    current = st.settings.ranking.model_dump()
    made = ((view.manifest if view is not None else {}).get("settings") or {}).get("ranking") or {}
    return {**current, **made}


def near_band(ranking: dict[str, Any]) -> str:
    """The 待核实 band in words: ``5%–50%`` (``near_fit_min`` to ``fit_threshold``)."""
    return f"{ranking['near_fit_min']:.0%}–{ranking['fit_threshold']:.0%}"


def workbook_for(
    st: WebState, m: pd.DataFrame, t: pd.DataFrame, diff: dict[str, Any] | None = None, view: RunView | None = None
) -> bytes:
    """The workbook of map rows ``m`` and targets ``t``; with ``view``, also the 本地延链, 排除名单 and 待核实
    sheets of the nodes of ``m`` (the refresh's workbook has them for every node)."""
    from recommender.runs.export import LIST_FRAMES, list_sheets, workbook_bytes

    sheets = None
    if view is not None:
        nodes = set(m["node_id"].astype(str)) if "node_id" in m else set()
        frames = {}
        for name in LIST_FRAMES:
            frame = st.run_lists.get(view, name)
            frames[name] = frame[frame["node_id"].astype(str).isin(nodes)] if "node_id" in frame else None
        names = {k: n.name for k, (_, n) in st.node_index.items()}
        sheets = list_sheets(**frames, node_names=names, fit_threshold=run_ranking(st, view)["fit_threshold"])
    return workbook_bytes(m, t, diff, {c.id: c.name for c in st.chains}, sheets)


def xlsx_response(data: bytes, stem: str) -> Response:
    return XlsxResponse(
        data,
        headers={"Content-Disposition": f"attachment; filename=\"{stem}.xlsx\"; filename*=UTF-8''{quote(stem)}.xlsx"},
    )


def node_workbook(st: WebState, view: RunView, node_id: str, f: ListFilters) -> bytes:
    """A node's filtered list as the refresh's workbook."""
    keep = set(filtered_targets(st, view, node_id, f)[S.COL_ENTERPRISE_ID])
    t = view.node_targets(node_id)
    t = t[t[S.COL_ENTERPRISE_ID].isin(keep)] if not t.empty else t
    if "chain_id" not in t.columns:
        t = pd.DataFrame(columns=list(LIST_COLUMNS))
    m = (
        view.map[view.map["node_id"] == node_id]
        if not view.map.empty
        else pd.DataFrame(columns=["chain_id", "node_id", "colour"])
    )
    return workbook_for(st, m, t, view=view)


def chain_workbook(st: WebState, view: RunView, chain_id: str) -> bytes:
    """Every list of one chain, with the run's diff."""
    t = view.targets
    t = t[t["chain_id"] == chain_id] if "chain_id" in t.columns else pd.DataFrame(columns=list(LIST_COLUMNS))
    m = view.map
    m = (
        m[m["chain_id"] == chain_id]
        if "chain_id" in m.columns
        else pd.DataFrame(columns=["chain_id", "node_id", "colour"])
    )
    return workbook_for(st, m, t, view.diff or None, view)


# ---------------------------------------------------------------- map
def chain_records(st: WebState) -> list[dict[str, Any]]:
    return [
        {
            "chain_id": c.id,
            "name": c.name,
            "description": c.description,
            "nodes": [
                {"node_id": n.id, "name": n.name, "stage": n.stage, "downstream": list(n.downstream)} for n in c.nodes
            ],
        }
        for c in st.chains
    ]


def chain_svg(chain: Chain, rows: pd.DataFrame) -> str:
    """The chain picture (``recommender.colour_map.render``) with each node linking to its page; "" without map rows."""
    from features.chains import edges_frame
    from recommender.colour_map.render import render_chain_svg

    if rows.empty:
        return ""
    return render_chain_svg(rows, edges_frame([chain]), link="/nodes/{node_id}")


def chain_map_rows(view: RunView | None, chain_id: str) -> pd.DataFrame:
    """The published map rows of one chain (empty without a run or a map)."""
    return view.map[view.map["chain_id"] == chain_id] if view is not None and not view.map.empty else pd.DataFrame()


def chain_summary(st: WebState, view: RunView | None) -> list[dict[str, Any]]:
    """Every chain with its red / blue / green counts (the home page)."""
    summary = []
    for c in st.chains:
        m = chain_map_rows(view, c.id)
        counts = m["colour"].value_counts().to_dict() if not m.empty else {}
        summary.append(
            {"chain": c, "red": counts.get("red", 0), "blue": counts.get("blue", 0), "green": counts.get("green", 0)}
        )
    return summary


def shown_scores(view: RunView | None, items: list[dict[str, Any]]) -> dict[str, Any]:
    """How the pages show the targets' scores: ``score_label`` (签约概率, or 启发式分 for a run the
    heuristic scored), its ``score_note`` and ``scores``, each item's score as text (``12.3%``, ``12.3``, "—")."""
    heuristic = view is not None and heuristic_run(view.manifest)
    return {
        "score_label": SCORE_LABELS[heuristic],
        "score_note": SCORE_NOTES[heuristic],
        "scores": [score_text(i.get("score"), heuristic) for i in items],
    }


def node_page(st: WebState, node_id: str, f: ListFilters) -> dict[str, Any]:
    """What the node page shows: the filtered list with each row's score as text (:func:`shown_scores`),
    the list's size, the node's map row, the Excel link."""
    chain, node = st.node_index[node_id]
    view = st.published.get()
    items: list[dict[str, Any]] = []
    node_map: dict[str, Any] = {}
    total = 0
    if view is not None:
        total = len(view.node_targets(node_id))
        items = filtered_records(st, view, node_id, f)[1]
        if not view.map.empty:
            m = view.map[view.map["node_id"] == node_id]
            node_map = records(m)[0] if not m.empty else {}
    xlsx_qs = urlencode(f.api_params())
    return {
        "chain": chain,
        "node": node,
        "items": items,
        **shown_scores(view, items),
        "total": total,
        "node_map": node_map,
        "view": view,
        "filters": f.form_values(),
        "xlsx_url": f"/nodes/{node_id}/targets.xlsx" + (f"?{xlsx_qs}" if xlsx_qs else ""),
        **(
            node_lists(st, view, node_id)
            if view is not None
            else {"n_fit": None, "local": [], "excluded": {}, "near_fit": 0}
        ),
    }


def node_lists(st: WebState, view: RunView, node_id: str) -> dict[str, Any]:
    """What the node page says beside its list: ``n_fit`` (fitting outside firms, None for a run
    from before fit), the 本地延链 ``local`` records, the ``excluded`` counts by reason and ``near_fit``
    (how many outside firms are just below the fit threshold, ``near_fit_shown`` of them in 待核实)."""
    counts = st.run_lists.node(view, "lists", node_id)
    targets = view.node_targets(node_id)
    n_fit: int | None = None
    near = int(counts["n_near_fit"].iloc[0]) if not counts.empty and "n_near_fit" in counts else 0
    if not counts.empty and "n_fit" in counts:
        n_fit = int(counts["n_fit"].iloc[0])
    elif not targets.empty and "n_fit" in targets:
        n_fit = int(targets["n_fit"].iloc[0])
    excluded = st.run_lists.node(view, "excluded", node_id)
    by_reason = excluded["reason_code"].value_counts().to_dict() if "reason_code" in excluded else {}
    local = st.run_lists.node(view, "local_extension", node_id)
    names = st.node_names()
    local_recs = target_records(local)
    for r in local_recs:
        r["zone_node_names"] = [names.get(n, n) for n in str(r.get("zone_nodes") or "").split("|") if n]
    return {
        "n_fit": n_fit,
        "local": local_recs,
        "excluded": {str(k): int(v) for k, v in by_reason.items()},
        "terminated_months": st.settings.ranking.exclude_terminated_months,
        "near_fit": near,  # outside firms below the fit threshold, fit ≥ near_fit_min (the 待核实 sheet holds the best)
        "near_fit_shown": len(st.run_lists.node(view, "near_fit", node_id)),
        "near_band": near_band(run_ranking(st, view)),
    }


# ---------------------------------------------------------------- enterprises
def _relations(st: WebState, tb: dict[str, pd.DataFrame], enterprise_id: str) -> list[dict[str, Any]]:
    """The enterprise's relations, oldest first, with both ends named (enterprise or asset name, else id)."""
    rel = tb.get("relations", pd.DataFrame())
    relations = (
        records(
            rel[(rel[S.COL_SRC_ID] == enterprise_id) | (rel[S.COL_DST_ID] == enterprise_id)].sort_values(S.COL_DATE)
        )
        if not rel.empty
        else []
    )
    ent_names = st.tables.enterprises_by_id().get(S.COL_NAME, pd.Series(dtype=object))
    assets = tb.get("assets", pd.DataFrame())
    asset_names = dict(zip(assets[S.COL_ASSET_ID], assets[S.COL_NAME], strict=True)) if not assets.empty else {}
    for r in relations:
        for end in ("src", "dst"):
            rid = r.get(f"{end}_id")
            r[f"{end}_name"] = clean(ent_names.get(rid)) or asset_names.get(rid) or rid
    return relations


def _history(st: WebState, tb: dict[str, pd.DataFrame], enterprise_id: str) -> list[dict[str, Any]]:
    """Ingested outcomes and feedback rows of the enterprise by date (ingested first on the same day)."""
    out = tb.get("outcomes", pd.DataFrame())
    history = records(out[out[S.COL_ENTERPRISE_ID] == enterprise_id].sort_values(S.COL_DATE)) if not out.empty else []
    for h in history:
        h["source"] = "history"
    for fb in store.feedback_rows(st.engine, enterprise_id):
        history.append(
            {
                **{k: clean(v) for k, v in fb.items() if k not in ("id", "created_at")},
                "source": "feedback",
                "date": fb["date"].date().isoformat(),
                "recorded_at": iso({"created_at": fb["created_at"]})["created_at"],
            }
        )
    history.sort(key=lambda h: (str(h.get("date") or ""), h["source"] == "feedback", str(h.get("recorded_at", ""))))
    return history


def pick_scores(st: WebState, picks: list[dict[str, Any]]) -> dict[str, Any]:
    """The enterprise page's scores: :func:`shown_scores` with ``scores`` by node id."""
    shown = shown_scores(st.published.get(), picks)
    return {**shown, "scores": dict(zip([p["node_id"] for p in picks], shown["scores"], strict=True))}


def enterprise_detail(st: WebState, enterprise_id: str) -> dict[str, Any]:
    """Profile, signals, relations, routes (its places in the published lists) and history."""
    enterprise_or_404(st, enterprise_id)
    tb = st.tables.get()
    row = st.tables.enterprises_by_id().loc[[enterprise_id]].reset_index()
    profile = records(row.drop(columns=[S.COL_EXTRA], errors="ignore"))[0]
    sig = tb.get("signals", pd.DataFrame())
    signals = records(sig[sig[S.COL_ENTERPRISE_ID] == enterprise_id].sort_values(S.COL_DATE)) if not sig.empty else []
    relations = _relations(st, tb, enterprise_id)
    history = _history(st, tb, enterprise_id)
    view = st.published.get()
    picks: list[dict[str, Any]] = []
    local: list[dict[str, Any]] = []
    if view is not None and not view.targets.empty:
        mine = view.targets[view.targets[S.COL_ENTERPRISE_ID] == enterprise_id]
        picks = target_records(mine[[c for c in LIST_COLUMNS if c in mine.columns]])
    if view is not None:
        ext = st.run_lists.get(view, "local_extension")
        if not ext.empty:
            local = target_records(ext[ext[S.COL_ENTERPRISE_ID] == enterprise_id])
    also = [n for n in str(picks[0].get("also_fits") or "").split("|") if n] if picks else []
    return {"profile": profile, "signals": signals, "relations": relations, "history": history, "targets": picks,
            "also_fits": also, "local_extension": local}  # fmt: skip


# ---------------------------------------------------------------- runs, models
def run_records(st: WebState) -> list[dict[str, Any]]:
    """Every run, newest first, with its revision and diff totals."""
    from recommender.runs.directory import list_runs

    return [
        {**clean(r.record()), "run_id": r.run_id, "revision": r.revision, "diff": r.manifest.get("diff", {})}
        for r in list_runs(st.ws.runs, st.ws.root)
    ]


def diff_of(st: WebState, run: str) -> dict[str, Any]:
    """The diff of a complete run by directory name, or of the published one (``current``); else 404."""
    from recommender.runs.directory import complete_runs
    from recommender.runs.published import read_diff

    if run == "current":
        return run_or_404(st).diff
    found = {r.name: r for r in complete_runs(st.ws.runs, st.ws.root)}
    if run not in found:
        raise HTTPException(status_code=404, detail=f"unknown run {run!r}; complete runs: {sorted(found)}")
    return read_diff(found[run].path)


def registry_or_none(st: WebState) -> Any:
    """The model registry, or None when nothing was trained here (a read never creates an empty store)."""
    from recommender.ranking.scoring import model_registry, tracking_uri

    if tracking_uri(st.settings) == st.ws.mlflow_uri() and not (st.ws.root / "mlflow.db").is_file():
        return None
    return model_registry(st.settings)


# ---------------------------------------------------------------- feedback
def feedback_problems(st: WebState, row: dict[str, Any]) -> list[str]:
    """What is wrong with a stored feedback row (values from before the checks, ids gone since): [] when nothing."""
    from recommender.web.schemas import field_problem

    day = row["date"].date() if isinstance(row["date"], dt.datetime) else row["date"]
    found = [field_problem(f, v) for f, v in (("stage", row["stage"]), ("date", day), ("note", row["note"]),
                                              ("amount_cny", row["amount_cny"]))]  # fmt: skip
    if row["node_id"] not in st.node_index:
        found.append(f"node_id {row['node_id']!r} is not a node of the chains")
    ent = st.tables.enterprises_by_id()
    if ent.empty or row["enterprise_id"] not in ent.index:
        found.append(f"enterprise_id {row['enterprise_id']!r} is not in the ingested enterprises")
    return [p for p in found if p is not None]


def feedback_json(st: WebState, row: dict[str, Any]) -> dict[str, Any]:
    """A feedback row as the API answers it (:class:`recommender.web.schemas.FeedbackRow`)."""
    active = row.get("superseded_by") is None and row.get("withdrawn_at") is None
    return {**iso(row), "active": active, "problems": feedback_problems(st, row)}


def feedback_list(
    st: WebState, enterprise_id: str | None, include_inactive: bool, flagged: bool
) -> list[dict[str, Any]]:
    rows = [feedback_json(st, r) for r in store.feedback_rows(st.engine, enterprise_id, include_inactive)]
    return [r for r in rows if r["problems"]] if flagged else rows


def feedback_row(st: WebState, outcome_id: str) -> dict[str, Any]:
    """One feedback row, active or not, by its id; else a 404 naming ``path.outcome_id``."""
    row = store.feedback_row(st.engine, outcome_id)
    if row is None:
        raise not_found("path.outcome_id", "no feedback with this outcome_id", outcome_id)
    return feedback_json(st, row)


def record_feedback(st: WebState, body: FeedbackIn, author: str, where: str, enterprise_field: str) -> dict[str, Any]:
    """Store one stage transition for a known node and enterprise (404 naming ``where``.node_id or
    ``enterprise_field`` otherwise); the API and the enterprise page's form both record through here."""
    node_or_404(st, body.node_id, f"{where}.node_id")
    enterprise_or_404(st, body.enterprise_id, enterprise_field)
    return store.add_feedback(
        st.engine,
        enterprise_id=body.enterprise_id,
        node_id=body.node_id,
        stage=body.stage,
        author=author,
        on=body.date,
        note=body.note,
        amount_cny=body.amount_cny,
    )
