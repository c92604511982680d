"""The service's transactional store: API tokens (hashed) with roles, analysts' feedback, audit log.

SQLite in WAL mode in the workspace by default (``service.db``); any SQLAlchemy URL through
``serve.database_url``. Feedback rows are stage transitions in the outcomes schema and are merged
into the outcomes that the next training run reads (:func:`feedback_outcomes`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)

from features import schema as S

if TYPE_CHECKING:
    from recommender.settings import Settings

Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")
ROLE_LEVEL = {r: i for i, r in enumerate(ROLES)}
FEEDBACK_STAGES = tuple(s for s in S.STAGES if s != "线索")

metadata = MetaData()

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outcome_id", String(64), nullable=False, unique=True),
    Column("enterprise_id", String(18), nullable=False, index=True),
    Column("node_id", String(100), nullable=False, index=True),
    Column("stage", String(10), nullable=False),
    Column("date", DateTime, nullable=False),
    Column("amount_cny", Float, nullable=True),
    Column("note", Text, nullable=True),
    Column("author", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("detail", Text, nullable=False),
)


def hash_token(token: str) -> str:
    """sha256 of a token: tokens are 256-bit random, so a fast hash is enough and lookup stays O(1)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def make_engine(url: str) -> Engine:
    """An engine; SQLite gets WAL, a busy timeout and foreign keys so concurrent writers wait, not fail."""
    is_sqlite = url.startswith("sqlite")
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False} if is_sqlite else {})
    if is_sqlite:

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    metadata.create_all(engine)
    return engine


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and role."""

    name: str
    role: Role

    def allows(self, needed: Role) -> bool:
        return ROLE_LEVEL[self.role] >= ROLE_LEVEL[needed]


def _now() -> datetime:
    return datetime.now(UTC)


def create_token(engine: Engine, name: str, role: str, actor: str = "cli") -> str:
    """Create a token and return it in clear (shown once; only its hash is stored)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {list(ROLES)}; got {role!r}")
    if not name.strip():
        raise ValueError("token name must not be empty")
    token = "sst_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(insert(tokens).values(name=name, role=role, token_hash=hash_token(token), created_at=_now()))
        _audit(conn, actor, "token.create", {"name": name, "role": role})
    return token


def authenticate(engine: Engine, token: str | None) -> Principal | None:
    """The principal of a valid, unrevoked token, else None."""
    if not token:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(tokens.c.name, tokens.c.role).where(
                tokens.c.token_hash == hash_token(token), tokens.c.revoked.is_(False)
            )
        ).first()
    return Principal(row.name, row.role) if row else None


def list_tokens(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(tokens.c.id, tokens.c.name, tokens.c.role, tokens.c.created_at, tokens.c.revoked).order_by(
                tokens.c.id
            )
        ).all()
    return [dict(r._mapping) for r in rows]


def revoke_token(engine: Engine, token_id: int, actor: str) -> bool:
    with engine.begin() as conn:
        n = conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked=True)).rowcount
        if n:
            _audit(conn, actor, "token.revoke", {"id": token_id})
    return bool(n)


def _audit(conn: Any, actor: str, action: str, detail: dict[str, Any]) -> None:
    conn.execute(
        insert(audit).values(at=_now(), actor=actor, action=action, detail=json.dumps(detail, ensure_ascii=False))
    )


def record_audit(engine: Engine, actor: str, action: str, detail: dict[str, Any]) -> None:
    with engine.begin() as conn:
        _audit(conn, actor, action, detail)


def add_feedback(
    engine: Engine,
    *,
    enterprise_id: str,
    node_id: str,
    stage: str,
    author: str,
    on: date | None = None,
    note: str | None = None,
    amount_cny: float | None = None,
) -> dict[str, Any]:
    """Append one stage transition (and its audit record) in one transaction; returns the stored row."""
    if stage not in FEEDBACK_STAGES:
        raise ValueError(f"stage must be one of {list(FEEDBACK_STAGES)}; got {stage!r}")
    created = _now()
    outcome_id = "fb-" + secrets.token_hex(8)
    row = {
        "outcome_id": outcome_id,
        "enterprise_id": enterprise_id,
        "node_id": node_id,
        "stage": stage,
        "date": datetime.combine(on or created.date(), datetime.min.time()),
        "amount_cny": amount_cny,
        "note": note,
        "author": author,
        "created_at": created,
    }
    with engine.begin() as conn:
        conn.execute(insert(feedback).values(**row))
        _audit(conn, author, "feedback.add", {k: str(v) for k, v in row.items() if k != "created_at"})
    return row


def feedback_rows(engine: Engine, enterprise_id: str | None = None) -> list[dict[str, Any]]:
    q = select(feedback).order_by(feedback.c.date, feedback.c.id)
    if enterprise_id is not None:
        q = q.where(feedback.c.enterprise_id == enterprise_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q).all()]


def count_feedback(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(feedback)).scalar_one())


def audit_rows(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(audit).order_by(audit.c.id.desc()).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def feedback_outcomes(engine: Engine) -> pd.DataFrame:
    """Feedback as rows of the outcomes table (``features.schema`` columns), for training."""
    rows = feedback_rows(engine)
    cols = [S.COL_OUTCOME_ID, S.COL_ENTERPRISE_ID, S.COL_NODE_ID, S.COL_STAGE, S.COL_DATE, S.COL_AMOUNT_CNY, S.COL_NOTE]
    df = pd.DataFrame([{c: r[c] for c in cols} for r in rows], columns=cols)
    df[S.COL_DATE] = pd.to_datetime(df[S.COL_DATE])
    df[S.COL_AMOUNT_CNY] = df[S.COL_AMOUNT_CNY].astype(float)
    return df


def merge_outcomes(outcomes: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """``outcomes`` with the rows of ``extra`` appended (pure).

    Rows whose ``outcome_id`` is already in ``outcomes`` are not added twice (a feedback row that
    was also ingested later counts once). Columns of ``outcomes`` are kept; ``extra`` columns it
    lacks are dropped and missing ones are filled with NA. ``date`` stays a datetime column.
    """
    missing = [
        c for c in (S.COL_OUTCOME_ID, S.COL_ENTERPRISE_ID, S.COL_NODE_ID, S.COL_STAGE, S.COL_DATE) if c not in extra
    ]
    if missing:
        raise ValueError(f"feedback rows are missing outcome columns {missing}; got columns {list(extra.columns)}")
    if extra.empty:
        return outcomes
    if outcomes.empty and not len(outcomes.columns):
        return extra.reset_index(drop=True)
    new = (
        extra[~extra[S.COL_OUTCOME_ID].isin(set(outcomes[S.COL_OUTCOME_ID]))] if S.COL_OUTCOME_ID in outcomes else extra
    )
    new = new.reindex(columns=outcomes.columns)
    empty_cols = {c: outcomes[c].dtype for c in outcomes.columns if new[c].isna().all() and outcomes[c].dtype != bool}
    new = new.astype(empty_cols) if empty_cols else new
    merged = pd.concat([outcomes, new], ignore_index=True) if not outcomes.empty else new.reset_index(drop=True)
    if S.COL_DATE in merged:
        merged[S.COL_DATE] = pd.to_datetime(merged[S.COL_DATE])
    return merged


def merge_feedback(outcomes: pd.DataFrame, engine: Engine) -> pd.DataFrame:
    """The outcomes the next training run reads: ingested ``outcomes`` plus every feedback row."""
    return merge_outcomes(outcomes, feedback_outcomes(engine))


def engine_for(settings: Settings) -> Engine:
    """The store of a workspace's settings (``serve.database_url``, else ``<workspace>/service.db``)."""
    from pathlib import Path

    from recommender.workspace import Workspace

    ws = Workspace(Path(settings.workspace))
    ws.root.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.serve.database_url or f"sqlite:///{ws.service_db.resolve()}")
