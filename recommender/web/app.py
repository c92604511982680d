"""HTTP API and web page for analysts (FastAPI; server-rendered Chinese pages, no external assets).

Every endpoint needs a token except ``/health``: ``Authorization: Bearer <token>`` for the API, a
cookie set by ``/login`` for the pages. Roles: viewer reads, analyst also records feedback, admin
also trains, promotes and manages tokens.

No ``from __future__ import annotations`` here: FastAPI must resolve the dependency aliases
built inside :func:`create_app` at definition time.
"""

import datetime as dt
import difflib
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi import Path as FPath
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from features import schema as S
from recommender import store
from recommender.runs.published import PublishedCache, RunView
from recommender.settings import Settings, load_chains
from recommender.workspace import Workspace

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
COOKIE = "sansetu_token"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
THEMES = ("产业链招商", "资本招商", "场景招商", "人才科创招商", "生态圈招商")


class FeedbackIn(BaseModel):
    """A stage transition recorded by an analyst."""

    model_config = ConfigDict(extra="forbid")

    enterprise_id: str = Field(min_length=18, max_length=18)
    node_id: str = Field(min_length=1, max_length=100)
    stage: Literal["接洽", "考察", "洽谈", "签约", "落地", "终止"]
    date: dt.date | None = None
    note: str | None = Field(default=None, max_length=2000)
    amount_cny: float | None = Field(default=None, ge=0)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Literal["viewer", "analyst", "admin"]


class _Tables:
    """The current ingested tables, reloaded when a new snapshot appears.

    Besides the tables it keeps what every list request needs, built once per snapshot: the
    enterprises indexed by id (filters join only the node's rows) and the ids with any signal.
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._key: tuple[str, ...] = ()
        self._tables: dict[str, pd.DataFrame] = {}
        self._ent_by_id = pd.DataFrame()
        self._signal_ids: frozenset[str] = frozenset()
        self._ent_info = pd.DataFrame()
        self._lock = threading.Lock()

    def key(self) -> tuple[str, ...]:
        return tuple(sorted(str(p) for p in self.ws.snapshots.glob("*/*.parquet")))

    def get(self) -> dict[str, pd.DataFrame]:
        from features.io import load_tables

        key = self.key()
        with self._lock:
            if key != self._key:
                tables = load_tables(self.ws.snapshots)
                ent = tables.get("enterprises", pd.DataFrame())
                sig = tables.get("signals", pd.DataFrame())
                self._ent_by_id = (
                    ent.drop_duplicates(S.COL_ENTERPRISE_ID).set_index(S.COL_ENTERPRISE_ID)
                    if S.COL_ENTERPRISE_ID in ent
                    else pd.DataFrame()
                )
                self._signal_ids = (
                    frozenset(sig[S.COL_ENTERPRISE_ID].astype(str)) if S.COL_ENTERPRISE_ID in sig else frozenset()
                )
                self._ent_info = self._ent_by_id[[c for c in INFO_COLUMNS if c in self._ent_by_id.columns]]
                self._tables, self._key = tables, key
            return self._tables

    def enterprises_by_id(self) -> pd.DataFrame:
        self.get()
        return self._ent_by_id

    def enterprise_info(self) -> pd.DataFrame:
        """Only the columns list filters need (``INFO_COLUMNS`` present), indexed by id: cheap to reindex."""
        self.get()
        return self._ent_info

    def signal_ids(self) -> frozenset[str]:
        self.get()
        return self._signal_ids


class _Retrieval:
    """The search indexes of the current enterprises (built or reused on first search, then cached)."""

    def __init__(self, settings: Settings, ws: Workspace, tables: _Tables) -> None:
        self.settings, self.ws, self.tables = settings, ws, tables
        self._key: tuple[str, ...] | None = None
        self._encoder: Any = None
        self._encoder_loaded = False
        self._bundle: Any = None
        self._lock = threading.Lock()

    def search(self, text: str, top_n: int) -> pd.DataFrame:
        from recommender.retrieval.index import TFIDF, build_profile_index
        from recommender.retrieval.search import search_text

        enterprises = self.tables.get().get("enterprises", pd.DataFrame())
        if enterprises.empty:
            return pd.DataFrame(columns=[S.COL_ENTERPRISE_ID, S.COL_NAME, "score", "sources"])
        cfg = self.settings.retrieval
        with self._lock:
            if not self._encoder_loaded:
                if cfg.embedder != TFIDF:
                    from models.embedder import load_embedder

                    self._encoder = load_embedder(cfg.embedder, self.ws.model_cache)
                self._encoder_loaded = True
            key = self.tables.key()
            if key != self._key:
                self._bundle = build_profile_index(
                    enterprises, self._encoder, self.ws.index, self.ws.embedding_cache, cfg
                )
                self._key = key
            encoder, bundle = self._encoder, self._bundle
        return search_text(text, enterprises, encoder, bundle.dense, bundle.lexical, cfg, top_n=top_n)


def _clean(value: Any) -> Any:
    """JSON-safe scalars (NaN → None, timestamps → ISO dates, numpy → Python)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.date().isoformat()
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            return _clean(value.item())
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _clean(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def _json_field(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return _clean(value)


def target_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = records(df)
    for r in out:
        for k in ("reasons", "routes"):
            if k in r:
                r[k] = _json_field(r[k]) or []
    return out


SIZES: dict[str, tuple[float | None, float | None]] = {
    "小型": (None, 1e7),  # registered capital below 10 million CNY
    "中型": (1e7, 1e8),
    "大型": (1e8, None),  # 100 million CNY and more
}
LIST_COLUMNS = (
    "chain_id",
    "node_id",
    "rank",
    "enterprise_id",
    "name",
    "score",
    "reasons",
    "routes",
    "theme",
    "sources",
)
INFO_COLUMNS = (S.COL_PROVINCE, S.COL_CITY, S.COL_CAPITAL_CNY, S.COL_EMPLOYEES, S.COL_LISTED)


@dataclass(frozen=True)
class TargetFilters:
    """Filters of an investment path list; None means "any"."""

    province: str | None = None
    size: str | None = None
    min_capital_cny: float | None = None
    listed: bool | None = None
    has_signals: bool | None = None
    theme: str | None = None


def route_themes(routes: Any) -> set[str]:
    """The themes of a target's routes (``routes`` is the run's JSON text or a parsed list)."""
    parsed = _json_field(routes)
    if not isinstance(parsed, list):
        return set()
    return {str(r["theme"]) for r in parsed if isinstance(r, dict) and r.get("theme")}


def with_info(targets: pd.DataFrame, ent_by_id: pd.DataFrame, signal_ids: frozenset[str]) -> pd.DataFrame:
    """The list columns of ``targets`` plus each enterprise's place, size, listing and ``has_signals``."""
    if S.COL_ENTERPRISE_ID not in targets.columns:
        return pd.DataFrame(columns=[*LIST_COLUMNS, *INFO_COLUMNS, "has_signals"])
    t = targets[[c for c in LIST_COLUMNS if c in targets.columns]].reset_index(drop=True)
    ids = t[S.COL_ENTERPRISE_ID].astype(str)
    cols = [c for c in INFO_COLUMNS if c in ent_by_id.columns]
    info = ent_by_id.reindex(ids)[cols].reset_index(drop=True) if cols else pd.DataFrame(index=t.index)
    for c in INFO_COLUMNS:
        t[c] = info[c] if c in info else pd.Series(pd.NA, index=t.index, dtype=object)
    t["has_signals"] = [i in signal_ids for i in ids]  # a list's rows, not Series.isin(set): O(rows)
    return t


def filter_targets(t: pd.DataFrame, f: TargetFilters) -> pd.DataFrame:
    """Rows of :func:`with_info` output that pass every filter (pure; order kept)."""
    from features.text import normalize_text

    keep = pd.Series(True, index=t.index)
    if f.province:
        want = normalize_text(f.province)
        keep &= t[S.COL_PROVINCE].fillna("").astype(str).str.contains(want, regex=False)
    cap = pd.to_numeric(t[S.COL_CAPITAL_CNY], errors="coerce")
    if f.size:
        lo, hi = SIZES[f.size]
        keep &= cap.notna()
        if lo is not None:
            keep &= cap >= lo
        if hi is not None:
            keep &= cap < hi
    if f.min_capital_cny is not None:
        keep &= cap.fillna(-1) >= f.min_capital_cny
    if f.listed is not None:
        keep &= t[S.COL_LISTED].astype("boolean").fillna(False).astype(bool) == f.listed
    if f.has_signals is not None:
        keep &= t["has_signals"].astype(bool) == f.has_signals
    if f.theme:
        theme = f.theme
        parsed = t["_route_themes"] if "_route_themes" in t else t["routes"].map(route_themes)
        keep &= pd.Series([theme in r for r in parsed], index=t.index) | (t["theme"].fillna("") == theme)
    return t[keep]


def _iso(row: dict[str, Any]) -> dict[str, Any]:
    """A store row as JSON: datetimes and dates as ISO text."""
    return {k: (v.isoformat() if hasattr(v, "isoformat") else _clean(v)) for k, v in row.items()}


def train_with_feedback(settings: Settings, engine: Any, promote_if_better: bool) -> dict[str, Any]:
    """Train like ``sansetu train`` on the ingested outcomes plus every feedback row; the gate's decision.

    The service's own training entry point: the outcomes are merged with :func:`store.merge_feedback`
    before the training set is built, so what analysts recorded is the label the model learns from.
    """
    import dataclasses

    from recommender.ranking import jobs as service
    from training.train import train_and_evaluate

    inputs = service.load_training_inputs(settings)
    outcomes = store.merge_feedback(inputs.tables["outcomes"], engine)
    inputs = dataclasses.replace(inputs, tables={**inputs.tables, "outcomes": outcomes})
    training_set = service.build_training_data(settings, inputs)
    fingerprints = service.data_fingerprints(inputs.tables)
    result = train_and_evaluate(training_set, settings.training, inputs.oracle, fingerprints)
    decision = service.model_registry(settings).log_training_run(
        result, settings.training, promote_if_better=promote_if_better
    )
    return {"n_outcomes": int(len(outcomes)), **_clean(dataclasses.asdict(decision))}


class _Trainer:
    """One background training job at a time; its state is readable while it runs."""

    def __init__(self, job: Callable[[bool], dict[str, Any]]) -> None:
        self._job = job
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"state": "idle"}

    def status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state)

    def start(self, actor: str, promote_if_better: bool) -> bool:
        with self._lock:
            if self._state["state"] == "running":
                return False
            self._state = {
                "state": "running",
                "by": actor,
                "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "promote_if_better": promote_if_better,
            }
        threading.Thread(target=self._run, args=(promote_if_better,), daemon=True, name="sansetu-train").start()
        return True

    def _run(self, promote_if_better: bool) -> None:
        try:
            result: dict[str, Any] = {"state": "done", "result": self._job(promote_if_better)}
        except Exception as exc:  # reported to the admin through GET /api/models
            result = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
        with self._lock:
            self._state = {**self._state, **result, "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def create_app(settings: Settings) -> FastAPI:
    """Build the app for a workspace; nothing is read until a request comes."""
    ws = Workspace(Path(settings.workspace))
    ws.root.mkdir(parents=True, exist_ok=True)
    engine = store.engine_for(settings)
    published = PublishedCache(ws)
    tables = _Tables(ws)
    retrieval = _Retrieval(settings, ws, tables)
    trainer = _Trainer(lambda promote: train_with_feedback(settings, engine, promote))
    chains = load_chains(settings)
    chain_index = {c.id: c for c in chains}
    node_index = {n.id: (c, n) for c in chains for n in c.nodes}
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

    app = FastAPI(
        title="sansetu 招商三色图 API",
        version="0.1.0",
        description="Chains and their three-colour map, investment path lists, search, feedback.",
    )
    app.state.engine = engine
    app.state.trainer = trainer
    app.state.settings = settings

    @app.exception_handler(RequestValidationError)
    async def _bad_input(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"], "got": _clean(e.get("input"))}
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": problems})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """JSON for the API; a Chinese page for the web pages (unknown node, enterprise, no role)."""
        path = request.url.path
        if path.startswith(("/api/", "/health", "/docs", "/openapi", "/static/")):
            return await http_exception_handler(request, exc)
        titles = {403: "没有权限", 404: "未找到", 422: "输入有误"}
        detail = exc.detail
        if isinstance(detail, list):
            detail = "；".join(f"{d.get('field')}: {d.get('problem')}（{d.get('got')}）" for d in detail)
        message = {403: "当前令牌的角色不能执行此操作，请联系管理员。"}.get(exc.status_code, str(detail))
        return templates.TemplateResponse(
            request,
            "error.html",
            {"chains": chains, "user": page_user(request), "title": titles.get(exc.status_code, "出错了"),
             "message": message},
            status_code=exc.status_code,
        )  # fmt: skip

    # ------------------------------------------------------------------ auth
    def principal(request: Request) -> store.Principal:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        token = token or request.headers.get("x-api-token") or request.cookies.get(COOKIE)
        who = store.authenticate(engine, token)
        if who is None:
            raise HTTPException(
                status_code=401, detail="a valid API token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        return who

    def needs(role: store.Role) -> Callable[[store.Principal], store.Principal]:
        def check(who: Annotated[store.Principal, Depends(principal)]) -> store.Principal:
            if not who.allows(role):
                raise HTTPException(status_code=403, detail=f"role '{role}' required; token has role '{who.role}'")
            return who

        return check

    Viewer = Annotated[store.Principal, Depends(needs("viewer"))]
    Analyst = Annotated[store.Principal, Depends(needs("analyst"))]
    Admin = Annotated[store.Principal, Depends(needs("admin"))]

    def run_or_404() -> RunView:
        view = published.get()
        if view is None:
            raise HTTPException(status_code=404, detail="no published run yet: run `sansetu refresh` first")
        return view

    def enterprise_or_404(enterprise_id: str, field: str = "path.enterprise_id") -> None:
        ent = tables.enterprises_by_id()
        if ent.empty or enterprise_id not in ent.index:
            raise HTTPException(
                status_code=404,
                detail=[
                    {
                        "field": field,
                        "problem": "unknown enterprise_id: not in the ingested enterprises",
                        "got": enterprise_id,
                    }
                ],
            )

    def node_or_404(node_id: str, field: str = "path.node_id") -> None:
        if node_id not in node_index:
            close = difflib.get_close_matches(node_id, list(node_index), n=3, cutoff=0.6)
            hint = f"; did you mean {close}?" if close else "; see GET /api/chains for the node ids"
            raise HTTPException(
                status_code=404, detail=[{"field": field, "problem": f"unknown node_id{hint}", "got": node_id}]
            )

    # ------------------------------------------------------------------ data helpers
    node_cache: dict[tuple[str, tuple[str, ...], str], tuple[pd.DataFrame, list[dict[str, Any]]]] = {}

    def node_list(view: RunView, node_id: str) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
        """A node's list with enterprise info, and its JSON records; cached per (run, snapshots, node)."""
        key = (str(view.run_dir), tables.key(), node_id)
        got = node_cache.get(key)
        if got is None:
            t = with_info(view.node_targets(node_id), tables.enterprise_info(), tables.signal_ids())
            recs = target_records(t)
            themes = [route_themes(r.get("routes")) for r in recs]  # parsed once, not per request
            got = (t.assign(_route_themes=pd.Series(themes, index=t.index, dtype=object)), recs)
            if len(node_cache) > 4096 or any(k[:2] != key[:2] for k in list(node_cache)[:1]):
                node_cache.clear()  # a new run or snapshot: the old entries are dead
            node_cache[key] = got
        return got

    def filtered_targets(view: RunView, node_id: str, f: TargetFilters) -> pd.DataFrame:
        return filter_targets(node_list(view, node_id)[0], f)

    def filtered_records(view: RunView, node_id: str, f: TargetFilters) -> tuple[int, list[dict[str, Any]]]:
        """(rows kept, their records in list order); the records are shared: callers must not mutate them."""
        t, recs = node_list(view, node_id)
        kept = filter_targets(t, f)
        return len(kept), [recs[i] for i in kept.index]

    def enterprise_detail(enterprise_id: str) -> dict[str, Any]:
        """Profile, signals, relations, routes (its places in the published lists) and history."""
        enterprise_or_404(enterprise_id)
        tb = tables.get()
        row = tables.enterprises_by_id().loc[[enterprise_id]].reset_index()
        profile = records(row.drop(columns=[S.COL_EXTRA], errors="ignore"))[0]
        sig = tb.get("signals", pd.DataFrame())
        rel = tb.get("relations", pd.DataFrame())
        out = tb.get("outcomes", pd.DataFrame())
        signals = (
            records(sig[sig[S.COL_ENTERPRISE_ID] == enterprise_id].sort_values(S.COL_DATE)) if not sig.empty else []
        )
        relations = (
            records(
                rel[(rel[S.COL_SRC_ID] == enterprise_id) | (rel[S.COL_DST_ID] == enterprise_id)].sort_values(S.COL_DATE)
            )
            if not rel.empty
            else []
        )
        ent_names = tables.enterprises_by_id().get(S.COL_NAME, pd.Series(dtype=object))
        assets = tb.get("assets", pd.DataFrame())
        asset_names = dict(zip(assets[S.COL_ASSET_ID], assets[S.COL_NAME], strict=True)) if not assets.empty else {}
        for r in relations:
            for end in ("src", "dst"):
                rid = r.get(f"{end}_id")
                r[f"{end}_name"] = _clean(ent_names.get(rid)) or asset_names.get(rid) or rid
        history = (
            records(out[out[S.COL_ENTERPRISE_ID] == enterprise_id].sort_values(S.COL_DATE)) if not out.empty else []
        )
        for h in history:
            h["source"] = "history"
        for fb in store.feedback_rows(engine, enterprise_id):
            history.append(
                {
                    **{k: _clean(v) for k, v in fb.items() if k not in ("id", "created_at")},
                    "source": "feedback",
                    "date": fb["date"].date().isoformat(),
                    "recorded_at": fb["created_at"].isoformat(timespec="seconds"),
                }
            )
        history.sort(key=lambda h: (str(h.get("date") or ""), h["source"] == "feedback", str(h.get("recorded_at", ""))))
        view = published.get()
        picks: list[dict[str, Any]] = []
        if view is not None and not view.targets.empty:
            mine = view.targets[view.targets[S.COL_ENTERPRISE_ID] == enterprise_id]
            picks = target_records(mine[[c for c in LIST_COLUMNS if c in mine.columns]])
        return {"profile": profile, "signals": signals, "relations": relations, "history": history, "targets": picks}

    # ------------------------------------------------------------------ API
    def bad(field: str, problem: str, got: Any) -> HTTPException:
        return HTTPException(status_code=422, detail=[{"field": field, "problem": problem, "got": _clean(got)}])

    def list_filters(
        province: str | None,
        size: str | None,
        min_capital_cny: float | None,
        listed: bool | None,
        has_signals: bool | None,
        theme: str | None,
        where: str = "query",
    ) -> TargetFilters:
        if size is not None and size not in SIZES:
            raise bad(f"{where}.size", f"must be one of {list(SIZES)}", size)
        if theme is not None and theme not in THEMES:
            raise bad(f"{where}.theme", f"must be one of {list(THEMES)}", theme)
        return TargetFilters(province or None, size, min_capital_cny, listed, has_signals, theme)

    ProvinceQ = Annotated[str | None, Query(max_length=50, description="province contains, e.g. 广东")]
    SizeQ = Annotated[str | None, Query(description=f"registered-capital band, one of {list(SIZES)}")]
    CapitalQ = Annotated[float | None, Query(ge=0, description="registered capital at least (CNY)")]
    ThemeQ = Annotated[str | None, Query(description=f"a route theme, one of {list(THEMES)}")]

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, Any]:
        view = published.get()
        return {"status": "ok", "published_run": view.run_id if view else None}

    @app.get("/api/chains", tags=["map"])
    def api_chains(_: Viewer) -> list[dict[str, Any]]:
        return [
            {
                "chain_id": c.id,
                "name": c.name,
                "description": c.description,
                "nodes": [
                    {"node_id": n.id, "name": n.name, "stage": n.stage, "downstream": list(n.downstream)}
                    for n in c.nodes
                ],
            }
            for c in chains
        ]

    def chain_or_404(chain_id: str, field: str = "path.chain_id") -> None:
        if chain_id not in chain_index:
            raise HTTPException(
                status_code=404,
                detail=[
                    {"field": field, "problem": f"unknown chain_id; known: {sorted(chain_index)}", "got": chain_id}
                ],
            )

    @app.get("/api/map", tags=["map"])
    def api_map(_: Viewer, chain_id: str | None = None) -> list[dict[str, Any]]:
        view = run_or_404()
        m = view.map
        if chain_id is not None:
            chain_or_404(chain_id, "query.chain_id")
            m = m[m["chain_id"] == chain_id]
        return records(m)

    @app.get("/api/chains/{chain_id}/map.svg", tags=["map"])
    def api_map_svg(chain_id: str, _: Viewer) -> Response:
        chain_or_404(chain_id)
        view = run_or_404()
        rows = view.map[view.map["chain_id"] == chain_id] if not view.map.empty else view.map
        return Response(_chain_svg(chain_index[chain_id], rows), media_type="image/svg+xml")

    @app.get("/api/nodes/{node_id}/targets", tags=["targets"])
    def api_targets(
        node_id: str,
        _: Viewer,
        province: ProvinceQ = None,
        size: SizeQ = None,
        min_capital_cny: CapitalQ = None,
        listed: bool | None = None,
        has_signals: bool | None = None,
        theme: ThemeQ = None,
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=200)] = 20,
    ) -> dict[str, Any]:
        node_or_404(node_id)
        f = list_filters(province, size, min_capital_cny, listed, has_signals, theme)
        view = run_or_404()
        total, items = filtered_records(view, node_id, f)
        start = (page - 1) * page_size
        return {
            "run_id": view.run_id,
            "node_id": node_id,
            "total": total,
            "page": page,
            "page_size": page_size,
            "items": items[start : start + page_size],
        }

    @app.get("/api/nodes/{node_id}/targets.xlsx", tags=["targets"])
    def api_targets_xlsx(
        node_id: str,
        _: Viewer,
        province: ProvinceQ = None,
        size: SizeQ = None,
        min_capital_cny: CapitalQ = None,
        listed: bool | None = None,
        has_signals: bool | None = None,
        theme: ThemeQ = None,
    ) -> Response:
        """The (filtered) list as the refresh's workbook: same sheets, formula-injection safe."""
        node_or_404(node_id)
        f = list_filters(province, size, min_capital_cny, listed, has_signals, theme)
        view = run_or_404()
        keep = set(filtered_targets(view, node_id, f)[S.COL_ENTERPRISE_ID])
        t = view.node_targets(node_id)
        t = t[t[S.COL_ENTERPRISE_ID].isin(keep)] if not t.empty else t
        if "chain_id" not in t.columns:
            t = pd.DataFrame(columns=list(LIST_COLUMNS))
        m = (
            view.map[view.map["node_id"] == node_id]
            if not view.map.empty
            else pd.DataFrame(columns=["chain_id", "node_id", "colour"])
        )
        return xlsx_response(workbook_for(m, t), node_id)

    def workbook_for(m: pd.DataFrame, t: pd.DataFrame, diff: dict[str, Any] | None = None) -> bytes:
        from recommender.runs.export import workbook_bytes

        return workbook_bytes(m, t, diff, {c.id: c.name for c in chains})

    def xlsx_response(data: bytes, stem: str) -> Response:
        from urllib.parse import quote

        return Response(
            data,
            media_type=XLSX,
            headers={
                "Content-Disposition": f"attachment; filename=\"{stem}.xlsx\"; filename*=UTF-8''{quote(stem)}.xlsx"
            },
        )

    @app.get("/api/chains/{chain_id}/targets.xlsx", tags=["targets"])
    def api_chain_xlsx(chain_id: str, _: Viewer) -> Response:
        """Every list of one chain (the chain's sheet of the refresh's workbook)."""
        chain_or_404(chain_id)
        view = run_or_404()
        t = view.targets
        t = t[t["chain_id"] == chain_id] if "chain_id" in t.columns else pd.DataFrame(columns=list(LIST_COLUMNS))
        m = view.map
        m = (
            m[m["chain_id"] == chain_id]
            if "chain_id" in m.columns
            else pd.DataFrame(columns=["chain_id", "node_id", "colour"])
        )
        return xlsx_response(workbook_for(m, t, view.diff or None), chain_id)

    @app.get("/api/search", tags=["targets"])
    def api_search(
        _: Viewer,
        q: Annotated[str, Query(min_length=1, max_length=500, description="free text, e.g. 硅光芯片 封装")],
        top: Annotated[int, Query(ge=1, le=200)] = 20,
    ) -> dict[str, Any]:
        try:
            found = retrieval.search(q, top)
        except ValueError as exc:
            raise bad("query.q", str(exc), q) from None
        return {"q": q, "total": int(len(found)), "items": records(found.assign(rank=range(1, len(found) + 1)))}

    @app.get("/api/enterprises/{enterprise_id}", tags=["enterprises"])
    def api_enterprise(enterprise_id: str, _: Viewer) -> dict[str, Any]:
        return enterprise_detail(enterprise_id)

    @app.get("/api/explain/{enterprise_id}", tags=["enterprises"])
    def api_explain(enterprise_id: str, _: Viewer, node_id: str) -> dict[str, Any]:
        node_or_404(node_id, "query.node_id")
        view = run_or_404()
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

    @app.post("/api/feedback", tags=["feedback"], status_code=201)
    def api_feedback(body: FeedbackIn, who: Analyst) -> dict[str, Any]:
        node_or_404(body.node_id, "body.node_id")
        enterprise_or_404(body.enterprise_id, "body.enterprise_id")
        row = store.add_feedback(
            engine,
            enterprise_id=body.enterprise_id,
            node_id=body.node_id,
            stage=body.stage,
            author=who.name,
            on=body.date,
            note=body.note,
            amount_cny=body.amount_cny,
        )
        return _iso(row)

    @app.get("/api/feedback", tags=["feedback"])
    def api_feedback_list(_: Viewer, enterprise_id: str | None = None) -> list[dict[str, Any]]:
        return [_iso(r) for r in store.feedback_rows(engine, enterprise_id)]

    @app.get("/api/runs", tags=["runs"])
    def api_runs(_: Viewer) -> list[dict[str, Any]]:
        from recommender.runs.directory import list_runs

        return [
            {**_clean(r.record()), "run_id": r.run_id, "revision": r.revision, "diff": r.manifest.get("diff", {})}
            for r in list_runs(ws.runs, ws.root)
        ]

    @app.get("/api/runs/{run}/diff", tags=["runs"])
    def api_diff(run: str, _: Viewer) -> dict[str, Any]:
        """What changed since the run before: ``{since, run_id, nodes, colour_changes, totals}``.

        ``run`` is a run directory name from ``/api/runs`` (``2026-06-30``, ``2026-06-30-r2``) or ``current``.
        """
        return diff_of(run)

    def diff_of(run: str) -> dict[str, Any]:
        from recommender.runs.directory import complete_runs
        from recommender.runs.published import read_diff

        if run == "current":
            return run_or_404().diff
        found = {r.name: r for r in complete_runs(ws.runs, ws.root)}
        if run not in found:
            raise HTTPException(status_code=404, detail=f"unknown run {run!r}; complete runs: {sorted(found)}")
        return read_diff(found[run].path)

    def registry_or_none() -> Any:
        from recommender.ranking.scoring import model_registry, tracking_uri

        if tracking_uri(settings) == ws.mlflow_uri() and not (ws.root / "mlflow.db").is_file():
            return None  # nothing trained here yet; do not create an empty store on a read
        return model_registry(settings)

    @app.get("/api/models", tags=["models"])
    def api_models(_: Viewer) -> dict[str, Any]:
        """Registered versions (newest first) with aliases and test metrics, and the last training job."""
        reg = registry_or_none()
        versions = reg.list_versions() if reg is not None else []
        return {"model": settings.training.registered_model, "versions": _clean(versions), "training": trainer.status()}

    @app.post("/api/models/train", tags=["models"], status_code=202)
    def api_train(who: Admin, promote_if_better: bool = False) -> dict[str, Any]:
        """Train on the workspace's tables plus every feedback row, in the background (one at a time)."""
        if not trainer.start(who.name, promote_if_better):
            raise HTTPException(status_code=409, detail="a training run is already in progress; see GET /api/models")
        store.record_audit(engine, who.name, "model.train", {"promote_if_better": promote_if_better})
        return trainer.status()

    @app.post("/api/models/{version}/promote", tags=["models"])
    def api_promote(version: Annotated[int, FPath(ge=1)], who: Admin) -> dict[str, Any]:
        from training.registry import RegistryError

        reg = registry_or_none()
        if reg is None:
            raise HTTPException(
                status_code=404, detail="no model registered yet: train one first (POST /api/models/train)"
            )
        try:
            out = reg.promote(str(version))
        except RegistryError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        store.record_audit(engine, who.name, "model.promote", {"version": version, **out})
        return dict(out)

    @app.get("/api/tokens", tags=["tokens"])
    def api_tokens(_: Admin) -> list[dict[str, Any]]:
        return [_iso(t) for t in store.list_tokens(engine)]

    @app.post("/api/tokens", tags=["tokens"], status_code=201)
    def api_token_create(body: TokenIn, who: Admin) -> dict[str, Any]:
        return {
            "name": body.name,
            "role": body.role,
            "token": store.create_token(engine, body.name, body.role, actor=who.name),
        }

    @app.delete("/api/tokens/{token_id}", tags=["tokens"])
    def api_token_revoke(token_id: int, who: Admin) -> dict[str, Any]:
        if not store.revoke_token(engine, token_id, who.name):
            raise HTTPException(status_code=404, detail=f"unknown token id {token_id}")
        return {"revoked": token_id}

    @app.get("/api/audit", tags=["tokens"])
    def api_audit(_: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        return [_iso(r) for r in store.audit_rows(engine, limit)]

    # ------------------------------------------------------------------ web pages
    def page_user(request: Request) -> store.Principal | None:
        return store.authenticate(engine, request.cookies.get(COOKIE))

    def render(request: Request, name: str, **ctx: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"chains": chains, "user": page_user(request), **ctx})

    def login_redirect() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request) -> HTMLResponse:
        return render(request, "login.html", error=None)

    @app.post("/login", include_in_schema=False, response_model=None)
    def login(request: Request, token: Annotated[str, Form()]) -> Response:
        who = store.authenticate(engine, token.strip())
        if who is None:
            return render(request, "login.html", error="令牌无效或已停用，请向管理员申请。")
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(COOKIE, token.strip(), httponly=True, samesite="lax", max_age=30 * 86400)
        return resp

    @app.get("/logout", include_in_schema=False)
    def logout() -> RedirectResponse:
        resp = login_redirect()
        resp.delete_cookie(COOKIE)
        return resp

    @app.get("/", response_class=HTMLResponse, include_in_schema=False, response_model=None)
    def home(request: Request) -> Response:
        if page_user(request) is None:
            return login_redirect()
        view = published.get()
        summary = []
        for c in chains:
            m = view.map[view.map["chain_id"] == c.id] if view is not None and not view.map.empty else pd.DataFrame()
            counts = m["colour"].value_counts().to_dict() if not m.empty else {}
            summary.append(
                {
                    "chain": c,
                    "red": counts.get("red", 0),
                    "blue": counts.get("blue", 0),
                    "green": counts.get("green", 0),
                }
            )
        return render(request, "index.html", view=view, summary=summary)

    @app.get("/chains/{chain_id}", response_class=HTMLResponse, include_in_schema=False, response_model=None)
    def chain_page(request: Request, chain_id: str) -> Response:
        if page_user(request) is None:
            return login_redirect()
        chain_or_404(chain_id)
        view = published.get()
        rows = view.map[view.map["chain_id"] == chain_id] if view is not None and not view.map.empty else pd.DataFrame()
        svg = _chain_svg(chain_index[chain_id], rows)
        return render(request, "chain.html", chain=chain_index[chain_id], rows=records(rows), svg=svg, view=view)

    @app.get("/nodes/{node_id}", response_class=HTMLResponse, include_in_schema=False, response_model=None)
    def node_page(
        request: Request,
        node_id: str,
        province: str | None = None,
        size: str | None = None,
        listed: str | None = None,
        has_signals: str | None = None,
        theme: str | None = None,
    ) -> Response:
        if page_user(request) is None:
            return login_redirect()
        node_or_404(node_id)
        chain, node = node_index[node_id]
        view = published.get()
        as_bool = {"1": True, "0": False}
        f = TargetFilters(
            province=(province or "").strip()[:50] or None,
            size=size if size in SIZES else None,
            listed=as_bool.get(listed or ""),
            has_signals=as_bool.get(has_signals or ""),
            theme=theme if theme in THEMES else None,
        )
        items: list[dict[str, Any]] = []
        node_map: dict[str, Any] = {}
        total = 0
        if view is not None:
            total = len(view.node_targets(node_id))
            items = filtered_records(view, node_id, f)[1]
            if not view.map.empty:
                m = view.map[view.map["node_id"] == node_id]
                node_map = records(m)[0] if not m.empty else {}
        query = {
            "province": f.province or "",
            "size": f.size or "",
            "listed": {True: "1", False: "0"}.get(f.listed, "") if f.listed is not None else "",
            "has_signals": {True: "1", False: "0"}.get(f.has_signals, "") if f.has_signals is not None else "",
            "theme": f.theme or "",
        }
        api_query = {
            "province": f.province,
            "size": f.size,
            "listed": None if f.listed is None else str(f.listed).lower(),
            "has_signals": None if f.has_signals is None else str(f.has_signals).lower(),
            "theme": f.theme,
        }
        from urllib.parse import urlencode

        xlsx_qs = urlencode({k: v for k, v in api_query.items() if v})
        return render(
            request,
            "node.html",
            chain=chain,
            node=node,
            items=items,
            total=total,
            node_map=node_map,
            view=view,
            filters=query,
            themes=THEMES,
            sizes=list(SIZES),
            xlsx_url=f"/api/nodes/{node_id}/targets.xlsx" + (f"?{xlsx_qs}" if xlsx_qs else ""),
        )

    @app.get("/search", response_class=HTMLResponse, include_in_schema=False, response_model=None)
    def search_page(request: Request, q: str = "") -> Response:
        if page_user(request) is None:
            return login_redirect()
        text = q.strip()[:500]
        items: list[dict[str, Any]] = []
        error = None
        if text:
            try:
                items = records(retrieval.search(text, 50))
            except ValueError:
                error = "请输入要搜索的企业名称、产品或技术关键词。"
        return render(request, "search.html", q=text, items=items, error=error)

    @app.get("/enterprises/{enterprise_id}", response_class=HTMLResponse, include_in_schema=False, response_model=None)
    def enterprise_page(request: Request, enterprise_id: str, saved: int = 0, node_id: str | None = None) -> Response:
        user = page_user(request)
        if user is None:
            return login_redirect()
        detail = enterprise_detail(enterprise_id)
        nodes_for = list(
            dict.fromkeys(([node_id] if node_id in node_index else []) + [t["node_id"] for t in detail["targets"]])
        )
        return render(
            request,
            "enterprise.html",
            d=detail,
            node_names={k: f"{v[0].name} · {v[1].name}" for k, v in node_index.items()},
            all_nodes=[(k, f"{v[0].name} · {v[1].name}") for k, v in node_index.items()],
            stages=store.FEEDBACK_STAGES,
            nodes_for=nodes_for,
            saved=saved,
            can_write=user.allows("analyst"),
            today=dt.date.today().isoformat(),
        )

    @app.post("/enterprises/{enterprise_id}/feedback", include_in_schema=False, response_model=None)
    def enterprise_feedback(
        request: Request,
        enterprise_id: str,
        node_id: Annotated[str, Form()],
        stage: Annotated[str, Form()],
        note: Annotated[str, Form()] = "",
        date: Annotated[str, Form()] = "",
    ) -> Response:
        user = page_user(request)
        if user is None:
            return login_redirect()
        if not user.allows("analyst"):
            raise HTTPException(status_code=403, detail="role 'analyst' required to record feedback")
        try:
            body = FeedbackIn.model_validate(
                {"enterprise_id": enterprise_id, "node_id": node_id, "stage": stage, "note": note.strip() or None,
                 "date": date or None}
            )  # fmt: skip
        except ValidationError as exc:
            problems = [
                {
                    "field": "form." + ".".join(str(p) for p in e["loc"]),
                    "problem": e["msg"],
                    "got": _clean(e.get("input")),
                }
                for e in exc.errors()
            ]
            raise HTTPException(status_code=422, detail=problems) from None
        node_or_404(body.node_id, "form.node_id")
        enterprise_or_404(body.enterprise_id)
        store.add_feedback(
            engine,
            enterprise_id=body.enterprise_id,
            node_id=body.node_id,
            stage=body.stage,
            author=user.name,
            on=body.date,
            note=body.note,
        )
        return RedirectResponse(f"/enterprises/{enterprise_id}?saved=1#history", status_code=303)

    @app.get("/new", response_class=HTMLResponse, include_in_schema=False, response_model=None)
    def new_page(request: Request) -> Response:
        if page_user(request) is None:
            return login_redirect()
        view = published.get()
        return render(
            request,
            "new.html",
            view=view,
            diff=view.diff if view else {},
            node_names={k: f"{v[0].name} · {v[1].name}" for k, v in node_index.items()},
            colour_names={"red": "红（缺失）", "blue": "蓝（薄弱）", "green": "绿（优势）"},
        )

    @app.get("/new.xlsx", include_in_schema=False, response_model=None)
    def new_xlsx(request: Request) -> Response:
        if page_user(request) is None:
            return login_redirect()
        view = run_or_404()
        return xlsx_response(workbook_for(view.map, view.targets, view.diff or None), f"sansetu-{view.run_id}")

    @app.get("/static/style.css", include_in_schema=False)
    def style() -> Response:
        return Response((STATIC_DIR / "style.css").read_text(encoding="utf-8"), media_type="text/css")

    return app


def _chain_svg(chain: Any, rows: pd.DataFrame) -> str:
    """The chain picture (``recommender.colour_map.render``) with each node linking to its page; "" without map rows."""
    from features.chains import edges_frame
    from recommender.colour_map.render import render_chain_svg

    if rows.empty:
        return ""
    return render_chain_svg(rows, edges_frame([chain]), link="/nodes/{node_id}")
