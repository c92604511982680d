"""The service store: hashed tokens with roles, feedback appended transactionally, audit, outcomes merge."""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from features import schema as S
from recommender import store

E1 = "91420100MA4K0000XJ"
NODE = "optical_comm.optical_chip"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return store.make_engine(f"sqlite:///{tmp_path / 'service.db'}")


def test_store_sqlite_runs_in_wal_mode(engine: Engine, tmp_path: Path) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    assert (tmp_path / "service.db").exists()


def test_store_tokens_are_hashed_and_roles_ordered(engine: Engine, tmp_path: Path) -> None:
    token = store.create_token(engine, "小王", "analyst")
    assert token.startswith("sst_") and len(token) > 40
    raw = sqlite3.connect(tmp_path / "service.db").execute("SELECT token_hash FROM tokens").fetchall()
    assert raw == [(store.hash_token(token),)]
    who = store.authenticate(engine, token)
    assert who == store.Principal("小王", "analyst")
    assert who is not None and who.allows("viewer") and who.allows("analyst") and not who.allows("admin")
    assert store.authenticate(engine, token + "x") is None
    assert store.authenticate(engine, None) is None
    assert [t["name"] for t in store.list_tokens(engine)] == ["小王"]
    assert "token_hash" not in store.list_tokens(engine)[0]


def test_store_revoked_token_no_longer_authenticates(engine: Engine) -> None:
    token = store.create_token(engine, "临时", "viewer")
    tid = store.list_tokens(engine)[0]["id"]
    assert store.revoke_token(engine, tid, "admin") is True
    assert store.authenticate(engine, token) is None
    assert store.revoke_token(engine, 999, "admin") is False
    assert [a["action"] for a in store.audit_rows(engine)] == ["token.revoke", "token.create"]


def test_store_rejects_unknown_role_and_empty_name(engine: Engine) -> None:
    with pytest.raises(ValueError, match=re.escape("role must be one of ['viewer', 'analyst', 'admin']; got 'root'")):
        store.create_token(engine, "x", "root")
    with pytest.raises(ValueError, match=re.escape("token name must not be empty")):
        store.create_token(engine, "  ", "viewer")


def test_store_feedback_rejects_unknown_stage(engine: Engine) -> None:
    msg = "stage must be one of ['接洽', '考察', '洽谈', '签约', '落地', '终止']; got '线索'"
    with pytest.raises(ValueError, match=re.escape(msg)):
        store.add_feedback(engine, enterprise_id=E1, node_id=NODE, stage="线索", author="a")
    assert store.count_feedback(engine) == 0


def test_store_feedback_is_audited_in_the_same_transaction(engine: Engine) -> None:
    row = store.add_feedback(
        engine, enterprise_id=E1, node_id=NODE, stage="签约", author="小王", on=date(2026, 7, 1), amount_cny=5e8
    )
    assert row["outcome_id"].startswith("fb-")
    (audit,) = store.audit_rows(engine)
    assert (audit["actor"], audit["action"]) == ("小王", "feedback.add")
    assert row["outcome_id"] in audit["detail"] and "签约" in audit["detail"]


def test_store_concurrent_writers_in_threads_and_engines_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    engines = [store.make_engine(url) for _ in range(4)]  # like several server processes on one file
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for i in range(15):
                store.add_feedback(
                    engines[k % 4], enterprise_id=E1, node_id=NODE, stage="接洽", author=f"a{k}", note=f"{k}-{i}"
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    notes = sorted(r["note"] for r in store.feedback_rows(engines[0]))
    assert notes == sorted(f"{k}-{i}" for k in range(8) for i in range(15))
    assert len(store.audit_rows(engines[0], 1000)) == 120


def test_store_feedback_outcomes_have_the_outcomes_schema(engine: Engine) -> None:
    store.add_feedback(engine, enterprise_id=E1, node_id=NODE, stage="考察", author="a", on=date(2026, 7, 2), note="n")
    out = store.feedback_outcomes(engine)
    assert list(out.columns) == [
        S.COL_OUTCOME_ID, S.COL_ENTERPRISE_ID, S.COL_NODE_ID, S.COL_STAGE, S.COL_DATE, S.COL_AMOUNT_CNY, S.COL_NOTE,
    ]  # fmt: skip
    assert out[[S.COL_ENTERPRISE_ID, S.COL_NODE_ID, S.COL_STAGE, S.COL_NOTE]].values.tolist() == [
        [E1, NODE, "考察", "n"]
    ]
    assert out[S.COL_DATE].tolist() == [pd.Timestamp("2026-07-02")]


def test_store_merge_outcomes_appends_new_rows_once() -> None:
    outcomes = pd.DataFrame(
        {
            S.COL_OUTCOME_ID: ["o1"],
            S.COL_ENTERPRISE_ID: [E1],
            S.COL_NODE_ID: [NODE],
            S.COL_STAGE: ["接洽"],
            S.COL_DATE: [pd.Timestamp("2025-01-01")],
            "source_file": ["a.csv"],
        }
    )
    fb = pd.DataFrame(
        {
            S.COL_OUTCOME_ID: ["o1", "fb-1"],
            S.COL_ENTERPRISE_ID: [E1, E1],
            S.COL_NODE_ID: [NODE, NODE],
            S.COL_STAGE: ["接洽", "签约"],
            S.COL_DATE: [pd.Timestamp("2025-01-01"), pd.Timestamp("2026-07-01")],
            S.COL_NOTE: ["dup", "签了"],
        }
    )
    merged = store.merge_outcomes(outcomes, fb)
    assert list(merged.columns) == list(outcomes.columns)
    assert merged[S.COL_OUTCOME_ID].tolist() == ["o1", "fb-1"]
    assert merged[S.COL_STAGE].tolist() == ["接洽", "签约"]
    assert merged["source_file"].tolist()[0] == "a.csv" and pd.isna(merged["source_file"].tolist()[1])
    assert store.merge_outcomes(outcomes, fb.iloc[0:0]) is outcomes


def test_store_merge_outcomes_rejects_rows_without_outcome_columns() -> None:
    msg = "feedback rows are missing outcome columns ['stage', 'date']; got columns ['outcome_id', 'enterprise_id', 'node_id']"
    with pytest.raises(ValueError, match=re.escape(msg)):
        store.merge_outcomes(
            pd.DataFrame(), pd.DataFrame(columns=[S.COL_OUTCOME_ID, S.COL_ENTERPRISE_ID, S.COL_NODE_ID])
        )


def test_store_merge_feedback_reads_the_store(engine: Engine) -> None:
    store.add_feedback(engine, enterprise_id=E1, node_id=NODE, stage="落地", author="a", on=date(2026, 8, 1))
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in (S.COL_OUTCOME_ID, S.COL_ENTERPRISE_ID, S.COL_NODE_ID,
                                                              S.COL_STAGE)} | {S.COL_DATE: pd.Series(dtype="datetime64[ns]")})  # fmt: skip
    merged = store.merge_feedback(empty, engine)
    assert merged[[S.COL_ENTERPRISE_ID, S.COL_STAGE]].values.tolist() == [[E1, "落地"]]


@pytest.mark.skipif(
    not os.environ.get("SANSETU_TEST_POSTGRES_URL"), reason="set SANSETU_TEST_POSTGRES_URL to test PostgreSQL"
)
def test_store_postgres_concurrent_feedback() -> None:
    url = os.environ["SANSETU_TEST_POSTGRES_URL"]
    try:
        engine = store.make_engine(url)
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {url}: {exc}")
    with engine.begin() as conn:
        conn.execute(store.feedback.delete())
    threads = [
        threading.Thread(
            target=lambda k=k: [
                store.add_feedback(engine, enterprise_id=E1, node_id=NODE, stage="接洽", author=f"a{k}")
                for _ in range(10)
            ]
        )
        for k in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count_feedback(engine) == 60


# ---------------------------------------------------------------- web sessions

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LIFE, IDLE = timedelta(hours=12), timedelta(minutes=30)


def test_store_session_holds_no_token_and_ends_at_expiry_idle_logout_and_revocation(engine: Engine) -> None:
    token = store.create_token(engine, "王分析", "analyst")
    assert store.create_session(engine, "sst_not-a-token", LIFE, T0) is None
    sid = store.create_session(engine, token, LIFE, T0)
    assert sid is not None and sid.startswith("ses_") and token not in sid
    with engine.connect() as conn:  # only the hash is stored
        assert conn.execute(text("SELECT count(*) FROM sessions WHERE session_hash = :h"), {"h": sid}).scalar() == 0
    live = store.session_for(engine, sid, IDLE, T0 + timedelta(minutes=20))
    assert live is not None and live.principal == store.Principal("王分析", "analyst")
    assert store.session_for(engine, sid, IDLE, T0 + timedelta(minutes=45)) is not None  # touched at 20 min
    assert store.session_for(engine, sid, IDLE, T0 + timedelta(minutes=45) + IDLE + timedelta(seconds=1)) is None
    busy = store.create_session(engine, token, LIFE, T0)  # used every 25 minutes: never idle, still ends
    alive = [store.session_for(engine, busy, IDLE, T0 + timedelta(minutes=25 * k)) is not None for k in range(1, 32)]
    assert alive == [25 * k < 12 * 60 for k in range(1, 32)]
    sid3 = store.create_session(engine, token, LIFE, T0)
    assert store.revoke_session(engine, sid3) is True and store.session_for(engine, sid3, IDLE, T0) is None
    assert store.revoke_session(engine, sid3) is False
    sid4 = store.create_session(engine, token, LIFE, T0)
    (tok,) = [t for t in store.list_tokens(engine) if t["name"] == "王分析"]
    assert store.revoke_token(engine, tok["id"], "admin")
    assert store.session_for(engine, sid4, IDLE, T0) is None
    assert store.create_session(engine, token, LIFE, T0) is None


# ---------------------------------------------------------------- correcting and withdrawing feedback

ANALYST, OTHER, ADMIN = (
    store.Principal("小王", "analyst"),
    store.Principal("小李", "analyst"),
    store.Principal("管理员", "admin"),
)


def test_store_feedback_correction_keeps_the_original_and_training_reads_the_correction(engine: Engine) -> None:
    row = store.add_feedback(engine, enterprise_id=E1, node_id=NODE, stage="签约", author="小王", on=date(2026, 7, 2))
    with pytest.raises(store.FeedbackPermissionError, match="recorded by '小王'"):
        store.correct_feedback(engine, row["outcome_id"], OTHER, {"stage": "洽谈"})
    with pytest.raises(ValueError, match=re.escape("a correction changes some of")):
        store.correct_feedback(engine, row["outcome_id"], ANALYST, {"author": "x"})
    fixed = store.correct_feedback(engine, row["outcome_id"], ANALYST, {"stage": "洽谈", "date": date(2026, 7, 3)})
    assert fixed["corrects"] == row["outcome_id"] and fixed["author"] == "小王"
    out = store.feedback_outcomes(engine)
    assert out[[S.COL_OUTCOME_ID, S.COL_STAGE]].values.tolist() == [[fixed["outcome_id"], "洽谈"]]
    assert out[S.COL_DATE].tolist() == [pd.Timestamp("2026-07-03")]
    every = store.feedback_rows(engine, include_inactive=True)
    assert [(r["outcome_id"], r["stage"], r["superseded_by"]) for r in every] == [
        (row["outcome_id"], "签约", fixed["outcome_id"]),
        (fixed["outcome_id"], "洽谈", None),
    ]
    with pytest.raises(store.FeedbackNotFoundError, match="no longer active"):
        store.correct_feedback(engine, row["outcome_id"], ADMIN, {"stage": "落地"})
    again = store.correct_feedback(engine, fixed["outcome_id"], ADMIN, {"note": "管理员更正"})
    assert [r["note"] for r in store.feedback_rows(engine)] == ["管理员更正"]
    actions = [(a["actor"], a["action"]) for a in store.audit_rows(engine)][::-1]
    assert actions == [("小王", "feedback.add"), ("小王", "feedback.correct"), ("管理员", "feedback.correct")]
    assert again["corrects"] == fixed["outcome_id"]


def test_store_feedback_withdrawal_is_audited_and_leaves_training(engine: Engine) -> None:
    row = store.add_feedback(engine, enterprise_id=E1, node_id=NODE, stage="考察", author="小王")
    with pytest.raises(ValueError, match="needs a reason"):
        store.withdraw_feedback(engine, row["outcome_id"], ANALYST, "  ")
    with pytest.raises(store.FeedbackPermissionError):
        store.withdraw_feedback(engine, row["outcome_id"], OTHER, "录错了")
    with pytest.raises(store.FeedbackNotFoundError, match="no feedback 'fb-nope'"):
        store.withdraw_feedback(engine, "fb-nope", ADMIN, "录错了")
    gone = store.withdraw_feedback(engine, row["outcome_id"], ADMIN, "录错了企业")
    assert (gone["withdrawn_by"], gone["withdraw_reason"]) == ("管理员", "录错了企业")
    assert store.feedback_outcomes(engine).empty and store.feedback_rows(engine) == []
    assert len(store.feedback_rows(engine, include_inactive=True)) == 1
    assert store.audit_rows(engine)[0]["action"] == "feedback.withdraw"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"amount_cny": float("inf")}, "amount_cny must be a finite number >= 0; got inf"),
        ({"amount_cny": -1.0}, "amount_cny must be a finite number >= 0; got -1.0"),
        ({"note": "签约\x00"}, "note must not contain control characters"),
        ({"on": date(9999, 12, 31)}, "date must lie between 1949-10-01 and today; got 9999-12-31 (after today ("),
        ({"on": date(1900, 1, 1)}, "date must lie between 1949-10-01 and today; got 1900-01-01 (before 1949-10-01)"),
    ],
)
def test_store_feedback_refuses_values_no_stage_transition_has(
    engine: Engine, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        store.add_feedback(engine, enterprise_id=E1, node_id=NODE, stage="签约", author="a", **kwargs)  # type: ignore[arg-type]
    assert store.count_feedback(engine) == 0


def test_store_adds_the_new_feedback_columns_to_an_older_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the feedback table as the first release created it
        conn.execute(
            "CREATE TABLE feedback (id INTEGER PRIMARY KEY, outcome_id VARCHAR(64) NOT NULL UNIQUE, enterprise_id "
            "VARCHAR(18) NOT NULL, node_id VARCHAR(100) NOT NULL, stage VARCHAR(10) NOT NULL, date DATETIME NOT NULL, "
            "amount_cny FLOAT, note TEXT, author VARCHAR(200) NOT NULL, created_at DATETIME NOT NULL)"
        )
        conn.execute(
            "INSERT INTO feedback VALUES (1, 'fb-old', :e, :n, '接洽', '2026-01-05 00:00:00', NULL, NULL, 'a', '2026-01-05')",
            {"e": E1, "n": NODE},
        )
    engine = store.make_engine(f"sqlite:///{path}")
    assert [r["outcome_id"] for r in store.feedback_rows(engine)] == ["fb-old"]
    assert store.withdraw_feedback(engine, "fb-old", ADMIN, "旧数据")["withdrawn_by"] == "管理员"


def test_store_feedback_date_is_checked_against_today_in_shanghai() -> None:
    late_utc = date(2026, 12, 3)  # 2026-12-02 20:00 UTC is already 2026-12-03 in Asia/Shanghai
    store.check_feedback_values("签约", late_utc, None, None, today=date(2026, 12, 3))
    with pytest.raises(ValueError, match=re.escape("got 2026-12-04 (after today (2026-12-03, Asia/Shanghai))")):
        store.check_feedback_values("签约", date(2026, 12, 4), None, None, today=date(2026, 12, 3))


def test_store_feedback_row_and_revoking_twice(engine: Engine) -> None:
    row = store.add_feedback(engine, enterprise_id=E1, node_id=NODE, stage="考察", author="小王")
    assert store.feedback_row(engine, row["outcome_id"])["stage"] == "考察"  # type: ignore[index]
    assert store.feedback_row(engine, "fb-nope") is None
    store.create_token(engine, "甲", "viewer")
    (tok,) = store.list_tokens(engine)
    assert store.revoke_token(engine, tok["id"], "admin") is True
    assert store.revoke_token(engine, tok["id"], "admin") is False  # nothing left to revoke: not audited twice
    assert [a["action"] for a in store.audit_rows(engine)].count("token.revoke") == 1
