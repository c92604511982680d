"""HTTP API and web page for analysts (FastAPI; server-rendered Chinese pages, no external assets).

Every endpoint needs a token except ``/health``: ``Authorization: Bearer <token>`` for the API, a
cookie set by ``/login`` for the pages. Roles: viewer reads, analyst also records feedback, admin
also trains, promotes and manages tokens.

No ``from __future__ import annotations`` here: FastAPI must resolve the dependency aliases
built inside :func:`create_app` at definition time.
"""

import datetime as dt
import json
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field

from features import schema as S
from recommender import store
from recommender.published import PublishedCache, RunView
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
    """The current ingested tables, reloaded when a new snapshot appears."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._key: tuple[str, ...] = ()
        self._tables: dict[str, pd.DataFrame] = {}
        self._lock = threading.Lock()

    def get(self) -> dict[str, pd.DataFrame]:
        from features.io import load_tables

        key = tuple(sorted(str(p) for p in self.ws.snapshots.glob("*/*.parquet")))
        with self._lock:
            if key != self._key:
                self._tables = load_tables(self.ws.snapshots)
                self._key = key
            return self._tables


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
    return [{k: _clean(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


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


def create_app(settings: Settings) -> FastAPI:
    """Build the app for a workspace; nothing is read until a request comes."""
    ws = Workspace(Path(settings.workspace))
    ws.root.mkdir(parents=True, exist_ok=True)
    engine = store.make_engine(settings.serve.database_url or f"sqlite:///{ws.service_db.resolve()}")
    published = PublishedCache(ws)
    tables = _Tables(ws)
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
    app.state.settings = settings

    @app.exception_handler(RequestValidationError)
    async def _bad_input(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"], "got": _clean(e.get("input"))}
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": problems})

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

    def node_or_404(node_id: str) -> None:
        if node_id not in node_index:
            raise HTTPException(status_code=404, detail=f"unknown node_id {node_id!r}")

    # ------------------------------------------------------------------ data helpers
    def filtered_targets(
        view: RunView,
        node_id: str,
        province: str | None,
        min_capital_cny: float | None,
        listed: bool | None,
        has_signals: bool | None,
        theme: str | None,
    ) -> pd.DataFrame:
        t = view.targets
        if t.empty:
            return t
        t = t[t[S.COL_NODE_ID] == node_id]
        ent = tables.get().get("enterprises", pd.DataFrame())
        if not ent.empty and (province or min_capital_cny is not None or listed is not None):
            cols = [S.COL_ENTERPRISE_ID, S.COL_PROVINCE, S.COL_CAPITAL_CNY, S.COL_LISTED]
            t = t.merge(
                ent[cols].rename(columns={S.COL_PROVINCE: "_prov", S.COL_CAPITAL_CNY: "_cap", S.COL_LISTED: "_listed"}),
                on=S.COL_ENTERPRISE_ID,
                how="left",
            )
            if province:
                t = t[t["_prov"].fillna("").str.contains(province, regex=False)]
            if min_capital_cny is not None:
                t = t[t["_cap"].fillna(0) >= min_capital_cny]
            if listed is not None:
                t = t[t["_listed"].fillna(False).astype(bool) == listed]
            t = t.drop(columns=["_prov", "_cap", "_listed"])
        if has_signals is not None:
            sig = tables.get().get("signals", pd.DataFrame())
            ids = set(sig[S.COL_ENTERPRISE_ID]) if not sig.empty else set()
            t = t[t[S.COL_ENTERPRISE_ID].isin(ids) == has_signals]
        if theme:
            t = t[t.get("theme", pd.Series("", index=t.index)).fillna("") == theme]
        return t.sort_values("rank") if "rank" in t else t

    def enterprise_detail(enterprise_id: str) -> dict[str, Any]:
        tb = tables.get()
        ent = tb.get("enterprises", pd.DataFrame())
        row = ent[ent[S.COL_ENTERPRISE_ID] == enterprise_id] if not ent.empty else ent
        if row.empty:
            raise HTTPException(status_code=404, detail=f"unknown enterprise_id {enterprise_id!r}")
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
                }
            )
        view = published.get()
        picks: list[dict[str, Any]] = []
        if view is not None and not view.targets.empty:
            picks = target_records(view.targets[view.targets[S.COL_ENTERPRISE_ID] == enterprise_id])
        return {"profile": profile, "signals": signals, "relations": relations, "history": history, "targets": picks}

    # ------------------------------------------------------------------ API
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

    @app.get("/api/map", tags=["map"])
    def api_map(_: Viewer, chain_id: str | None = None) -> list[dict[str, Any]]:
        view = run_or_404()
        m = view.map
        if chain_id is not None:
            if chain_id not in chain_index:
                raise HTTPException(
                    status_code=404, detail=f"unknown chain_id {chain_id!r}; known: {sorted(chain_index)}"
                )
            m = m[m["chain_id"] == chain_id]
        return records(m)

    @app.get("/api/nodes/{node_id}/targets", tags=["targets"])
    def api_targets(
        node_id: str,
        _: Viewer,
        province: str | None = None,
        min_capital_cny: Annotated[float | None, Query(ge=0)] = None,
        listed: bool | None = None,
        has_signals: bool | None = None,
        theme: Annotated[str | None, Query(description=f"one of {THEMES}")] = None,
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=200)] = 20,
    ) -> dict[str, Any]:
        node_or_404(node_id)
        if theme is not None and theme not in THEMES:
            raise HTTPException(
                status_code=422,
                detail=[{"field": "query.theme", "problem": f"must be one of {list(THEMES)}", "got": theme}],
            )
        view = run_or_404()
        t = filtered_targets(view, node_id, province, min_capital_cny, listed, has_signals, theme)
        start = (page - 1) * page_size
        return {
            "run_id": view.run_id,
            "node_id": node_id,
            "total": int(len(t)),
            "page": page,
            "page_size": page_size,
            "items": target_records(t.iloc[start : start + page_size]),
        }

    @app.get("/api/nodes/{node_id}/targets.xlsx", tags=["targets"])
    def api_targets_xlsx(node_id: str, _: Viewer) -> Response:
        node_or_404(node_id)
        view = run_or_404()
        from recommender.export import workbook_bytes

        t = view.targets[view.targets[S.COL_NODE_ID] == node_id]
        m = view.map[view.map["node_id"] == node_id] if not view.map.empty else view.map
        data = workbook_bytes(m, t)
        return Response(
            data, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{node_id}.xlsx"'}
        )

    @app.get("/api/search", tags=["targets"])
    def api_search(
        _: Viewer, q: Annotated[str, Query(min_length=1, max_length=500)], top: Annotated[int, Query(ge=1, le=200)] = 20
    ) -> list[dict[str, Any]]:
        from recommender.retrieval import search_text

        result = search_text(q, settings=settings, top=top)
        return records(result)

    @app.get("/api/enterprises/{enterprise_id}", tags=["enterprises"])
    def api_enterprise(enterprise_id: str, _: Viewer) -> dict[str, Any]:
        return enterprise_detail(enterprise_id)

    @app.get("/api/explain/{enterprise_id}", tags=["enterprises"])
    def api_explain(enterprise_id: str, _: Viewer, node_id: str) -> dict[str, Any]:
        node_or_404(node_id)
        view = run_or_404()
        t = view.targets
        row = t[(t[S.COL_ENTERPRISE_ID] == enterprise_id) & (t[S.COL_NODE_ID] == node_id)]
        if row.empty:
            raise HTTPException(status_code=404, detail=f"{enterprise_id} is not in the published list of {node_id}")
        return target_records(row)[0]

    @app.post("/api/feedback", tags=["feedback"], status_code=201)
    def api_feedback(body: FeedbackIn, who: Analyst) -> dict[str, Any]:
        node_or_404(body.node_id)
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
        return {k: _clean(v) if not hasattr(v, "isoformat") else v.isoformat() for k, v in row.items()}

    @app.get("/api/feedback", tags=["feedback"])
    def api_feedback_list(_: Viewer, enterprise_id: str | None = None) -> list[dict[str, Any]]:
        return [
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
            for r in store.feedback_rows(engine, enterprise_id)
        ]

    @app.get("/api/runs", tags=["runs"])
    def api_runs(_: Viewer) -> list[dict[str, Any]]:
        out = []
        for d in sorted(ws.runs.glob("*"), reverse=True):
            m = d / "manifest.json"
            if d.is_dir() and m.exists():
                man = json.loads(m.read_text(encoding="utf-8"))
                out.append(
                    {
                        "run_id": man.get("run_id", d.name),
                        "as_of": man.get("as_of"),
                        "status": man.get("status"),
                        "model_version": man.get("model_version"),
                        "published": published.get() is not None and published.get().run_dir == d.resolve(),
                    }
                )  # type: ignore[union-attr]
        return out

    @app.get("/api/runs/current/diff", tags=["runs"])
    def api_diff(_: Viewer) -> dict[str, Any]:
        return run_or_404().diff

    @app.get("/api/models", tags=["models"])
    def api_models(_: Viewer) -> list[dict[str, Any]]:
        from training.registry import list_versions

        return [_clean(v) for v in list_versions(_tracking(settings, ws), settings.training.registered_model)]

    @app.post("/api/models/train", tags=["models"], status_code=202)
    def api_train(who: Admin, promote_if_better: bool = True) -> dict[str, Any]:
        store.record_audit(engine, who.name, "model.train", {"promote_if_better": promote_if_better})
        from recommender.service import train_from_workspace

        thread = threading.Thread(
            target=train_from_workspace, args=(settings,), kwargs={"promote_if_better": promote_if_better}, daemon=True
        )
        thread.start()
        return {"status": "started"}

    @app.post("/api/models/{version}/promote", tags=["models"])
    def api_promote(version: int, who: Admin) -> dict[str, Any]:
        from training.registry import promote

        promote(_tracking(settings, ws), settings.training.registered_model, version)
        store.record_audit(engine, who.name, "model.promote", {"version": version})
        return {"champion": version}

    @app.get("/api/tokens", tags=["tokens"])
    def api_tokens(_: Admin) -> list[dict[str, Any]]:
        return [
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in t.items()}
            for t in store.list_tokens(engine)
        ]

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
        return [
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
            for r in store.audit_rows(engine, limit)
        ]

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
        if chain_id not in chain_index:
            raise HTTPException(status_code=404, detail=f"unknown chain_id {chain_id!r}")
        view = published.get()
        rows = view.map[view.map["chain_id"] == chain_id] if view is not None and not view.map.empty else pd.DataFrame()
        svg = _chain_svg(chain_index[chain_id], rows)
        return render(request, "chain.html", chain=chain_index[chain_id], rows=records(rows), svg=svg, view=view)

    @app.get("/nodes/{node_id}", response_class=HTMLResponse, include_in_schema=False, response_model=None)
    def node_page(
        request: Request,
        node_id: str,
        province: str | None = None,
        listed: str | None = None,
        has_signals: str | None = None,
        theme: str | None = None,
    ) -> Response:
        if page_user(request) is None:
            return login_redirect()
        node_or_404(node_id)
        chain, node = node_index[node_id]
        view = published.get()
        items: list[dict[str, Any]] = []
        node_map: dict[str, Any] = {}
        if view is not None:
            as_bool = {"1": True, "0": False}
            t = filtered_targets(
                view,
                node_id,
                province or None,
                None,
                as_bool.get(listed or ""),
                as_bool.get(has_signals or ""),
                theme or None,
            )
            items = target_records(t)
            if not view.map.empty:
                m = view.map[view.map["node_id"] == node_id]
                node_map = records(m)[0] if not m.empty else {}
        filters = {
            "province": province or "",
            "listed": listed or "",
            "has_signals": has_signals or "",
            "theme": theme or "",
        }
        return render(
            request,
            "node.html",
            chain=chain,
            node=node,
            items=items,
            node_map=node_map,
            view=view,
            filters=filters,
            themes=THEMES,
        )

    @app.get("/enterprises/{enterprise_id}", response_class=HTMLResponse, include_in_schema=False, response_model=None)
    def enterprise_page(request: Request, enterprise_id: str, saved: int = 0) -> Response:
        user = page_user(request)
        if user is None:
            return login_redirect()
        detail = enterprise_detail(enterprise_id)
        nodes_for = [t["node_id"] for t in detail["targets"]] or list(node_index)[:1]
        return render(
            request,
            "enterprise.html",
            d=detail,
            node_names={k: v[1].name for k, v in node_index.items()},
            stages=store.FEEDBACK_STAGES,
            nodes_for=nodes_for,
            saved=saved,
            can_write=user.allows("analyst"),
        )

    @app.post("/enterprises/{enterprise_id}/feedback", include_in_schema=False)
    def enterprise_feedback(
        request: Request,
        enterprise_id: str,
        node_id: Annotated[str, Form()],
        stage: Annotated[str, Form()],
        note: Annotated[str, Form()] = "",
    ) -> RedirectResponse:
        user = page_user(request)
        if user is None:
            return login_redirect()
        if not user.allows("analyst"):
            raise HTTPException(status_code=403, detail="role 'analyst' required to record feedback")
        try:
            body = FeedbackIn(enterprise_id=enterprise_id, node_id=node_id, stage=stage, note=note or None)  # type: ignore[arg-type]
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        node_or_404(body.node_id)
        store.add_feedback(
            engine,
            enterprise_id=body.enterprise_id,
            node_id=body.node_id,
            stage=body.stage,
            author=user.name,
            note=body.note,
        )
        return RedirectResponse(f"/enterprises/{enterprise_id}?saved=1", status_code=303)

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
            node_names={k: v[1].name for k, v in node_index.items()},
        )

    @app.get("/static/style.css", include_in_schema=False)
    def style() -> Response:
        return Response((STATIC_DIR / "style.css").read_text(encoding="utf-8"), media_type="text/css")

    return app


def _tracking(settings: Settings, ws: Workspace) -> str:
    import os

    return settings.training.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ws.mlflow_uri()


def _chain_svg(chain: Any, rows: pd.DataFrame) -> str:
    """The chain picture with clickable nodes (the map engineer's renderer when present)."""
    try:
        from recommender.render import render_chain_svg
    except ImportError:
        return ""
    from features.chains import edges_frame

    if rows.empty:
        return ""
    try:
        return str(render_chain_svg(rows, edges_frame([chain]), link="/nodes/{node_id}"))  # type: ignore[call-arg]
    except TypeError:
        return str(render_chain_svg(rows, edges_frame([chain])))
