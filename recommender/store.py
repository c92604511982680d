"""The service's transactional store: API tokens (hashed) with roles, analysts' feedback, audit log.

SQLite in WAL mode in the workspace by default (``service.db``); any SQLAlchemy URL through
``serve.database_url``. Feedback rows are stage transitions in the outcomes schema and are merged
into the outcomes that the next training run reads (:func:`feedback_outcomes`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

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
from features.validate import event_date_problem, today_in_zone

if TYPE_CHECKING:
    from recommender.settings import Settings

Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")
ROLE_LEVEL = {r: i for i, r in enumerate(ROLES)}
FEEDBACK_STAGES = tuple(s for s in S.STAGES if s != "线索")
CONTROL_CHARACTERS: Final = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
"""What a note may not contain: control characters other than tab and line breaks."""
_CONTROL = re.compile(CONTROL_CHARACTERS)

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
    # a correction is a new row naming the row it corrects; the original is kept, marked superseded
    Column("corrects", String(64), nullable=True),
    Column("superseded_by", String(64), nullable=True),
    Column("withdrawn_at", DateTime(timezone=True), nullable=True),
    Column("withdrawn_by", String(200), nullable=True),
    Column("withdraw_reason", Text, nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_hash", String(64), nullable=False, unique=True),
    Column("token_id", Integer, nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

# columns added after the first release: added in place to an older service.db (nullable, no default)
_ADDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "feedback": ("corrects", "superseded_by", "withdrawn_at", "withdrawn_by", "withdraw_reason"),
}

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("detail", Text, nullable=False),
)


# the columns that hold moments (timezone-aware); SQLite hands them back naive, written in UTC
_MOMENT_COLUMNS: Final = frozenset(
    c.name for table in metadata.tables.values() for c in table.c if isinstance(c.type, DateTime) and c.type.timezone
)


def _row(row: Any) -> dict[str, Any]:
    """A result row as a dict, its moments timezone-aware in UTC whatever the database returns."""
    out = dict(row._mapping)
    for k, v in out.items():
        if k in _MOMENT_COLUMNS and isinstance(v, datetime):
            out[k] = _aware(v)
    return out


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
    _add_missing_columns(engine)
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """Bring a store written by an older release up to date (columns of :data:`_ADDED_COLUMNS`)."""
    from sqlalchemy import inspect
    from sqlalchemy.schema import CreateColumn

    present = {name: {c["name"] for c in inspect(engine).get_columns(name)} for name in _ADDED_COLUMNS}
    with engine.begin() as conn:
        for name, columns in _ADDED_COLUMNS.items():
            table = metadata.tables[name]
            for col in columns:
                if col not in present[name]:
                    ddl = CreateColumn(table.c[col]).compile(dialect=engine.dialect)
                    conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {ddl}")


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
    return [_row(r) for r in rows]


def revoke_token(engine: Engine, token_id: int, actor: str) -> bool:
    """Revoke a token and end its sessions; False when no such token is active (unknown or revoked)."""
    with engine.begin() as conn:
        n = conn.execute(
            update(tokens).where(tokens.c.id == token_id, tokens.c.revoked.is_(False)).values(revoked=True)
        ).rowcount
        if n:
            conn.execute(update(sessions).where(sessions.c.token_id == token_id).values(revoked=True))
            _audit(conn, actor, "token.revoke", {"id": token_id})
    return bool(n)


# ---------------------------------------------------------------- web sessions


@dataclass(frozen=True)
class Session:
    """A signed-in web session: who, the token behind it, and when it ends."""

    principal: Principal
    token_id: int
    expires_at: datetime


def create_session(engine: Engine, token: str, lifetime: timedelta, now: datetime | None = None) -> str | None:
    """A new session for a valid token, returned in clear (only its hash is stored), or None.

    The browser keeps the session id, never the API token: revoking the session (logout), the token
    or letting it expire ends it.
    """
    at = now or _now()
    with engine.begin() as conn:
        row = conn.execute(
            select(tokens.c.id, tokens.c.name).where(
                tokens.c.token_hash == hash_token(token), tokens.c.revoked.is_(False)
            )
        ).first()
        if row is None:
            return None
        session_id = "ses_" + secrets.token_urlsafe(32)
        conn.execute(
            insert(sessions).values(
                session_hash=hash_token(session_id), token_id=row.id, created_at=at, last_seen=at,
                expires_at=at + lifetime, revoked=False,
            )
        )  # fmt: skip
        _audit(conn, row.name, "session.create", {"token_id": row.id})
    return session_id


def session_for(engine: Engine, session_id: str | None, idle: timedelta, now: datetime | None = None) -> Session | None:
    """The live session of ``session_id`` (not revoked, not expired, used within ``idle``), touched; else None."""
    if not session_id:
        return None
    at = now or _now()
    with engine.begin() as conn:
        row = conn.execute(
            select(sessions.c.id, sessions.c.token_id, sessions.c.last_seen, sessions.c.expires_at,
                   tokens.c.name, tokens.c.role)
            .join(tokens, tokens.c.id == sessions.c.token_id)
            .where(sessions.c.session_hash == hash_token(session_id), sessions.c.revoked.is_(False),
                   tokens.c.revoked.is_(False))
        ).first()  # fmt: skip
        if row is None or at >= _aware(row.expires_at) or at - _aware(row.last_seen) > idle:
            return None
        conn.execute(update(sessions).where(sessions.c.id == row.id).values(last_seen=at))
    return Session(Principal(row.name, row.role), int(row.token_id), _aware(row.expires_at))


def revoke_session(engine: Engine, session_id: str | None) -> bool:
    """End a session (logout); False when there was none to end."""
    if not session_id:
        return False
    with engine.begin() as conn:
        n = conn.execute(
            update(sessions)
            .where(sessions.c.session_hash == hash_token(session_id), sessions.c.revoked.is_(False))
            .values(revoked=True)
        ).rowcount
    return bool(n)


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone-aware columns: they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _audit(conn: Any, actor: str, action: str, detail: dict[str, Any]) -> None:
    conn.execute(
        insert(audit).values(at=_now(), actor=actor, action=action, detail=json.dumps(detail, ensure_ascii=False))
    )


def record_audit(engine: Engine, actor: str, action: str, detail: dict[str, Any]) -> None:
    with engine.begin() as conn:
        _audit(conn, actor, action, detail)


def check_feedback_values(
    stage: str, on: date, note: str | None, amount_cny: float | None, today: date | None = None
) -> None:
    """Raise ``ValueError`` naming the field when a feedback value could not be a real stage transition.

    ``date`` must lie in 1949-10-01 … today in Asia/Shanghai (``features.validate.event_date_problem``),
    like every event date ingested from a file; ``today`` replaces the clock in tests.
    """
    if stage not in FEEDBACK_STAGES:
        raise ValueError(f"stage must be one of {list(FEEDBACK_STAGES)}; got {stage!r}")
    problem = event_date_problem(on, today)
    if problem is not None:
        raise ValueError(
            f"date must lie between {S.EVENT_DATE_MIN.isoformat()} and today; got {on.isoformat()} ({problem})"
        )
    if amount_cny is not None and not (math.isfinite(amount_cny) and amount_cny >= 0):
        raise ValueError(f"amount_cny must be a finite number >= 0; got {amount_cny!r}")
    if note is not None and _CONTROL.search(note):
        raise ValueError("note must not contain control characters (other than tab and line breaks)")


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
    created = _now()
    on = on or today_in_zone(created)  # the analyst's calendar day, not UTC's
    check_feedback_values(stage, on, note, amount_cny)
    outcome_id = "fb-" + secrets.token_hex(8)
    row = {
        "outcome_id": outcome_id,
        "enterprise_id": enterprise_id,
        "node_id": node_id,
        "stage": stage,
        "date": datetime.combine(on, datetime.min.time()),
        "amount_cny": amount_cny,
        "note": note,
        "author": author,
        "created_at": created,
    }
    with engine.begin() as conn:
        conn.execute(insert(feedback).values(**row))
        _audit(conn, author, "feedback.add", {k: str(v) for k, v in row.items() if k != "created_at"})
    return row


class FeedbackNotFoundError(LookupError):
    """No feedback row with that id, or it was already corrected or withdrawn."""


class FeedbackPermissionError(PermissionError):
    """Only the row's author or an admin may correct or withdraw it."""


def _active() -> Any:
    return feedback.c.superseded_by.is_(None) & feedback.c.withdrawn_at.is_(None)


def _editable_row(conn: Any, outcome_id: str, actor: Principal) -> Any:
    row = conn.execute(select(feedback).where(feedback.c.outcome_id == outcome_id)).first()
    if row is None:
        raise FeedbackNotFoundError(f"no feedback {outcome_id!r}")
    if row.superseded_by is not None or row.withdrawn_at is not None:
        state = f"corrected by {row.superseded_by}" if row.superseded_by else "withdrawn"
        raise FeedbackNotFoundError(f"feedback {outcome_id!r} is no longer active ({state})")
    if actor.name != row.author and not actor.allows("admin"):
        raise FeedbackPermissionError(
            f"feedback {outcome_id!r} was recorded by {row.author!r}: only they or an admin may change it"
        )
    return row


def correct_feedback(engine: Engine, outcome_id: str, actor: Principal, changes: dict[str, Any]) -> dict[str, Any]:
    """Replace an active feedback row by a corrected copy; the original is kept and marked superseded.

    ``changes`` may set ``node_id``, ``stage``, ``date`` (a date), ``note`` and ``amount_cny``. The
    copy keeps the original author, names the row it ``corrects`` and is what training reads from
    now on; both rows and the change are audited under ``actor``.
    """
    allowed = {"node_id", "stage", "date", "note", "amount_cny"}
    unknown = sorted(set(changes) - allowed)
    if unknown or not changes:
        raise ValueError(f"a correction changes some of {sorted(allowed)}; got {sorted(changes) or 'nothing'}")
    with engine.begin() as conn:
        old = _row(_editable_row(conn, outcome_id, actor))
        values = {**old, **changes}
        check_feedback_values(values["stage"], values["date"], values["note"], values["amount_cny"])
        new = {
            **{k: old[k] for k in ("enterprise_id", "author")},
            **{k: values[k] for k in ("node_id", "stage", "note", "amount_cny")},
            "date": values["date"] if isinstance(values["date"], datetime) else datetime.combine(values["date"], datetime.min.time()),
            "outcome_id": "fb-" + secrets.token_hex(8),
            "created_at": _now(),
            "corrects": outcome_id,
        }  # fmt: skip
        conn.execute(insert(feedback).values(**new))
        conn.execute(
            update(feedback).where(feedback.c.outcome_id == outcome_id).values(superseded_by=new["outcome_id"])
        )
        _audit(conn, actor.name, "feedback.correct", {"outcome_id": outcome_id, "by": new["outcome_id"],
                                                      "changes": {k: str(v) for k, v in changes.items()}})  # fmt: skip
    return new


def withdraw_feedback(engine: Engine, outcome_id: str, actor: Principal, reason: str) -> dict[str, Any]:
    """Withdraw an active feedback row: kept and audited, no longer read by training."""
    if not reason.strip():
        raise ValueError("a withdrawal needs a reason")
    at = _now()
    with engine.begin() as conn:
        _editable_row(conn, outcome_id, actor)
        values = {"withdrawn_at": at, "withdrawn_by": actor.name, "withdraw_reason": reason.strip()}
        conn.execute(update(feedback).where(feedback.c.outcome_id == outcome_id).values(**values))
        _audit(conn, actor.name, "feedback.withdraw", {"outcome_id": outcome_id, "reason": reason.strip()})
        row = conn.execute(select(feedback).where(feedback.c.outcome_id == outcome_id)).one()
    return _row(row)


def feedback_row(engine: Engine, outcome_id: str) -> dict[str, Any] | None:
    """One feedback row by its id, active or not; None when there is none."""
    with engine.connect() as conn:
        row = conn.execute(select(feedback).where(feedback.c.outcome_id == outcome_id)).first()
    return _row(row) if row is not None else None


def feedback_rows(
    engine: Engine, enterprise_id: str | None = None, include_inactive: bool = False
) -> list[dict[str, Any]]:
    """Feedback rows by date; only the active ones (not corrected, not withdrawn) unless ``include_inactive``."""
    q = select(feedback).order_by(feedback.c.date, feedback.c.id)
    if enterprise_id is not None:
        q = q.where(feedback.c.enterprise_id == enterprise_id)
    if not include_inactive:
        q = q.where(_active())
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(q).all()]


def count_feedback(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(feedback)).scalar_one())


def audit_rows(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(audit).order_by(audit.c.id.desc()).limit(limit)).all()
    return [_row(r) for r in rows]


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
