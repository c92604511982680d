"""What one app keeps between requests: the store, the published-run cache, the current tables and
their per-node lists, the search indexes, the background trainer, the chains and the templates.

Everything here is built by :func:`build_state` without reading a file; the caches fill on the
first request that needs them and follow new snapshots and new published runs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from fastapi.templating import Jinja2Templates

from features import schema as S
from recommender import store
from recommender.runs.published import PublishedCache, RunView
from recommender.web.display import local_time
from recommender.web.filters import INFO_COLUMNS, route_themes, with_info
from recommender.web.serialize import clean, target_records
from recommender.workspace import Workspace

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from features.chains import Chain, ChainNode
    from recommender.settings import Settings

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


class Tables:
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


class Retrieval:
    """The search encoder and the indexes of the current enterprises, kept between requests.

    ``sansetu serve`` calls :meth:`warm` at start-up: a background thread loads the encoder, builds or
    reuses the indexes and runs one query (so tokenizers and lazily built parts are ready too) while
    the port already answers. A search that comes before that finishes waits for it; without
    :meth:`warm` the first search loads. A new snapshot is noticed by the next search, which updates
    the indexes (the encoder stays loaded). :meth:`status` is what ``/health`` shows.
    """

    WARM_QUERY = "光模块"

    def __init__(self, settings: Settings, ws: Workspace, tables: Tables) -> None:
        self.settings, self.ws, self.tables = settings, ws, tables
        self._key: tuple[str, ...] | None = None
        self._encoder: Any = None
        self._encoder_loaded = False
        self._user_words: list[str] = []
        self._enterprises = pd.DataFrame()
        self._bundle: Any = None
        self._lock = threading.Lock()  # held while loading: searches wait for the load, not fail
        self._status_lock = threading.Lock()
        self._status: dict[str, Any] = {
            "ready": False,
            "loading": False,
            "error": None,
            "loaded_s": None,
            "profiles": None,
        }

    def status(self) -> dict[str, Any]:
        """``ready`` (a search answers without loading), ``loading``, ``error`` of the last failed load
        (``None`` after a good one), ``loaded_s`` (seconds the last load and warm-up query took), ``profiles``."""
        with self._status_lock:
            return dict(self._status)

    def warm(self) -> threading.Thread:
        """Load in a background thread (daemon); returns the started thread."""
        self._update(loading=True)
        thread = threading.Thread(target=self._warm, daemon=True, name="sansetu-search-warm")
        thread.start()
        return thread

    def _warm(self) -> None:
        try:
            self.search(self.WARM_QUERY, 1)
        except Exception as exc:  # shown by /health; the next search tries the load again
            self._update(loading=False, error=f"{type(exc).__name__}: {exc}")

    def search(self, text: str, top_n: int) -> pd.DataFrame:
        """Up to ``top_n`` enterprises for ``text`` (:func:`recommender.retrieval.search.search_text`)."""
        from recommender.retrieval.search import search_bundle

        enterprises, encoder, bundle, started = self._current()
        try:
            if enterprises.empty:
                return pd.DataFrame(columns=[S.COL_ENTERPRISE_ID, S.COL_NAME, "score", "sources"])
            return search_bundle(text, enterprises, encoder, bundle, self.settings.retrieval, top_n=top_n)
        finally:
            if started is not None:  # this search loaded and warmed up: the next one pays neither
                loaded_s = round(time.perf_counter() - started, 3)
                self._update(ready=True, loading=False, error=None, loaded_s=loaded_s, profiles=len(enterprises))

    def _current(self) -> tuple[pd.DataFrame, Any, Any, float | None]:
        """Enterprises, encoder and indexes of the current snapshots, loaded when they changed (then
        with the load's start time, else None)."""
        with self._lock:
            key = self.tables.key()
            if key == self._key:
                return self._enterprises, self._encoder, self._bundle, None
            started = time.perf_counter()
            self._update(loading=True)
            try:
                self._load(key)
            except Exception as exc:
                self._update(loading=False, error=f"{type(exc).__name__}: {exc}")
                raise
            return self._enterprises, self._encoder, self._bundle, started

    def _load(self, key: tuple[str, ...]) -> None:
        """What :func:`recommender.retrieval.index.load_retrieval` does, but the encoder and the chains'
        words are loaded once, not for every new snapshot."""
        from recommender.retrieval.index import TFIDF, build_profile_index, settings_user_words

        cfg = self.settings.retrieval
        if not self._encoder_loaded:
            if cfg.embedder != TFIDF:
                from models.embedder import load_embedder

                self._encoder = load_embedder(cfg.embedder, self.ws.model_cache)
            self._user_words = settings_user_words(self.settings)
            self._encoder_loaded = True
        enterprises = self.tables.get().get("enterprises", pd.DataFrame())
        bundle = None
        if not enterprises.empty:
            bundle = build_profile_index(
                enterprises, self._encoder, self.ws.index, self.ws.embedding_cache, cfg, user_words=self._user_words
            )
        self._enterprises, self._bundle, self._key = enterprises, bundle, key

    def _update(self, **changes: Any) -> None:
        with self._status_lock:
            self._status = {**self._status, **changes}


NodeList = tuple[pd.DataFrame, list[dict[str, Any]]]


class NodeLists:
    """Each node's list joined with enterprise info, and its JSON records; per (run, snapshots, node)."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self._cache: dict[tuple[str, tuple[str, ...], str], NodeList] = {}

    def get(self, view: RunView, node_id: str) -> NodeList:
        key = (str(view.run_dir), self.tables.key(), node_id)
        got = self._cache.get(key)
        if got is None:
            t = with_info(view.node_targets(node_id), self.tables.enterprise_info(), self.tables.signal_ids())
            recs = target_records(t)
            themes = [route_themes(r.get("routes")) for r in recs]  # parsed once, not per request
            got = (t.assign(_route_themes=pd.Series(themes, index=t.index, dtype=object)), recs)
            if len(self._cache) > 4096 or any(k[:2] != key[:2] for k in list(self._cache)[:1]):
                self._cache.clear()  # a new run or snapshot: the old entries are dead
            self._cache[key] = got
        return got


class RunLists:
    """The published run's other lists, read once per run: ``local_extension`` (本地延链),
    ``excluded`` (排除名单), ``lists`` (the counts of each node) and ``near_fit`` (待核实); empty frames for a
    run without them."""

    NAMES = ("local_extension", "excluded", "lists", "near_fit")

    def __init__(self) -> None:
        self._run: Path | None = None
        self._frames: dict[str, pd.DataFrame] = {}
        self._lock = threading.Lock()

    def get(self, view: RunView, name: str) -> pd.DataFrame:
        with self._lock:
            if self._run != view.run_dir:
                self._frames = {n: _read_optional(view.run_dir / f"{n}.parquet") for n in self.NAMES}
                self._run = view.run_dir
            return self._frames[name]

    def node(self, view: RunView, name: str, node_id: str) -> pd.DataFrame:
        """The rows of one node (in rank order when ranked)."""
        df = self.get(view, name)
        if df.empty or S.COL_NODE_ID not in df:
            return df
        rows = df[df[S.COL_NODE_ID] == node_id]
        return rows.sort_values("rank", kind="stable") if "rank" in rows else rows


def _read_optional(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame()


def train_job(settings: Settings, promote_if_better: bool) -> dict[str, Any]:
    """The service's training job: ``sansetu train`` (:func:`recommender.ranking.jobs.train_from_workspace`,
    the ingested outcomes merged once with every feedback row) and the gate's decision, with
    ``n_outcomes``, the outcome rows it learned from."""
    from recommender.ranking import jobs

    result, decision = jobs.train_from_workspace(settings, promote_if_better)
    return {"n_outcomes": result.counts["outcomes"], **clean(dataclasses.asdict(decision))}


class Trainer:
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


@dataclass(frozen=True)
class WebState:
    """One app's state (``app.state.web``); routes get it through ``recommender.web.deps.State``."""

    settings: Settings
    ws: Workspace
    engine: Engine
    published: PublishedCache
    tables: Tables
    node_lists: NodeLists
    run_lists: RunLists
    retrieval: Retrieval
    trainer: Trainer
    chains: list[Chain]
    chain_index: dict[str, Chain]
    node_index: dict[str, tuple[Chain, ChainNode]]
    templates: Jinja2Templates

    def node_names(self) -> dict[str, str]:
        """``chain · node`` for every node id."""
        return {k: f"{c.name} · {n.name}" for k, (c, n) in self.node_index.items()}


def build_state(settings: Settings, chains: list[Chain]) -> WebState:
    """The state of an app serving ``settings.workspace`` (creates the workspace folder and the store)."""
    ws = Workspace(Path(settings.workspace))
    ws.root.mkdir(parents=True, exist_ok=True)
    engine = store.engine_for(settings)
    tables = Tables(ws)
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    zone = settings.serve.timezone
    templates.env.filters["local_time"] = lambda value: local_time(value, zone)  # times as 北京时间 etc.
    return WebState(
        settings=settings,
        ws=ws,
        engine=engine,
        published=PublishedCache(ws),
        tables=tables,
        node_lists=NodeLists(tables),
        run_lists=RunLists(),
        retrieval=Retrieval(settings, ws, tables),
        trainer=Trainer(lambda promote: train_job(settings, promote)),
        chains=chains,
        chain_index={c.id: c for c in chains},
        node_index={n.id: (c, n) for c in chains for n in c.nodes},
        templates=templates,
    )
