"""Feedback through the API: values that could not be a real stage transition are refused (422
naming the field), and a row can be corrected or withdrawn by its author or an admin, audited."""

from __future__ import annotations

import datetime as dt
import json
import sys

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from recommender import store

E1 = "91420100MA4K0000XJ"
NODE = "optical_comm.optical_chip"
OTHER_NODE = "optical_comm.optical_device"


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _engine(client: TestClient) -> object:
    return client.app.state.engine  # type: ignore[attr-defined]


def _post_raw(client: TestClient, token: str, text: str) -> tuple[int, dict]:
    r = client.post("/api/feedback", content=text.encode(), headers=_h(token) | {"Content-Type": "application/json"})
    return r.status_code, r.json()


def _store_bounds_dates() -> bool:
    try:
        store.check_feedback_values("接洽", dt.date(9999, 12, 31), None, None)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('"amount_cny": 1e400', "body.amount_cny"),  # json.loads reads inf; stored, it broke training
        ('"amount_cny": NaN', "body.amount_cny"),
        ('"amount_cny": -1', "body.amount_cny"),
        ('"amount_cny": "5"', "body.amount_cny"),  # a string is not a number
        ('"amount_cny": 1e300', "body.amount_cny"),  # finite, but no contract is worth 10^300 yuan
        ('"note": "a\\u0000b"', "body.note"),  # NUL
        ('"note": "a\\u001bb"', "body.note"),  # ESC
        ('"date": "2026-7-1"', "body.date"),
        ('"date": 0', "body.date"),  # pydantic's lax mode read 0 as 1970-01-01
        ('"date": "2026-07-01T08:00:00"', "body.date"),
        ('"enterprise_id": 123456789012345678', "body.enterprise_id"),
    ],
)
def test_api_feedback_refuses_values_that_break_training(
    client: TestClient, tokens: dict[str, str], raw: str, field: str
) -> None:
    base = {"enterprise_id": E1, "node_id": NODE, "stage": "签约"}
    key = raw.split(":")[0].strip('"')
    body = json.dumps({k: v for k, v in base.items() if k != key}, ensure_ascii=False)[:-1] + ", " + raw + "}"
    status, got = _post_raw(client, tokens["analyst"], body)
    assert status == 422, got
    assert [p["field"] for p in got["detail"]] == [field]
    assert store.count_feedback(_engine(client)) == 0


def test_api_feedback_date_goes_through_the_store_check(
    client: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The date bounds are the store's (store.check_feedback_values): the API names the field it blames."""
    real = store.check_feedback_values

    def bounded(stage: str, on: dt.date, note: str | None, amount_cny: float | None) -> None:
        if on > dt.date(2030, 1, 1):
            raise ValueError(f"date must lie in 1949-10-01 … today; got {on.isoformat()}")
        real(stage, on, note, amount_cny)

    monkeypatch.setattr(store, "check_feedback_values", bounded)
    body = {"enterprise_id": E1, "node_id": NODE, "stage": "签约", "date": "9999-12-31"}
    r = client.post("/api/feedback", json=body, headers=_h(tokens["analyst"]))
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"field": "body.date", "problem": "date must lie in 1949-10-01 … today; got 9999-12-31", "got": "9999-12-31"}
    ]


@pytest.mark.skipif(not _store_bounds_dates(), reason="store.check_feedback_values does not bound dates yet")
def test_api_feedback_dated_9999_is_a_422_naming_the_date(client: TestClient, tokens: dict[str, str]) -> None:
    for day in ("9999-12-31", "1900-01-01"):
        body = {"enterprise_id": E1, "node_id": NODE, "stage": "签约", "date": day}
        r = client.post("/api/feedback", json=body, headers=_h(tokens["analyst"]))
        assert r.status_code == 422, r.text
        assert [p["field"] for p in r.json()["detail"]] == ["body.date"]
    assert store.count_feedback(_engine(client)) == 0


def test_api_feedback_without_a_date_is_dated_today_in_the_service_zone(
    client: TestClient, tokens: dict[str, str]
) -> None:
    from zoneinfo import ZoneInfo

    body = {"enterprise_id": E1, "node_id": NODE, "stage": "接洽"}
    before = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    r = client.post("/api/feedback", json=body, headers=_h(tokens["analyst"]))
    after = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert r.status_code == 201
    assert r.json()["date"][:10] in {before.isoformat(), after.isoformat()}


def _record(client: TestClient, token: str, **extra: object) -> dict:
    body = {"enterprise_id": E1, "node_id": NODE, "stage": "接洽", "date": "2026-07-01", "note": "电话沟通", **extra}
    r = client.post("/api/feedback", json=body, headers=_h(token))
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_api_feedback_author_corrects_a_row(client: TestClient, tokens: dict[str, str]) -> None:
    row = _record(client, tokens["analyst"])
    assert (row["active"], row["problems"], row["corrects"]) == (True, [], None)
    change = {"stage": "考察", "date": "2026-07-02", "note": None, "node_id": OTHER_NODE}
    r = client.patch(f"/api/feedback/{row['outcome_id']}", json=change, headers=_h(tokens["analyst"]))
    assert r.status_code == 200, r.text
    new = r.json()
    assert (new["corrects"], new["stage"], new["date"][:10], new["note"], new["node_id"], new["author"]) == (
        row["outcome_id"], "考察", "2026-07-02", None, OTHER_NODE, "analyst-user",
    )  # fmt: skip
    assert new["outcome_id"] != row["outcome_id"] and new["active"]
    old = client.get(f"/api/feedback/{row['outcome_id']}", headers=_h(tokens["viewer"])).json()
    assert (old["active"], old["superseded_by"]) == (False, new["outcome_id"])
    active = client.get("/api/feedback", params={"enterprise_id": E1}, headers=_h(tokens["viewer"])).json()
    assert [r["outcome_id"] for r in active] == [new["outcome_id"]]
    again = client.patch(f"/api/feedback/{row['outcome_id']}", json={"stage": "洽谈"}, headers=_h(tokens["analyst"]))
    assert again.status_code == 404 and again.json()["detail"][0]["field"] == "path.outcome_id"
    outcomes = store.feedback_outcomes(_engine(client))  # training reads the correction only
    assert outcomes["outcome_id"].tolist() == [new["outcome_id"]]
    audit = client.get("/api/audit", headers=_h(tokens["admin"])).json()
    assert [a["actor"] for a in audit if a["action"] == "feedback.correct"] == ["analyst-user"]


def test_api_feedback_only_its_author_or_an_admin_may_change_it(client: TestClient, tokens: dict[str, str]) -> None:
    row = _record(client, tokens["analyst"])
    other = store.create_token(_engine(client), "another-analyst", "analyst")
    url = f"/api/feedback/{row['outcome_id']}"
    r = client.patch(url, json={"stage": "考察"}, headers=_h(other))
    assert r.status_code == 403 and "analyst-user" in r.json()["detail"]
    r = client.post(url + "/withdraw", json={"reason": "录错了"}, headers=_h(other))
    assert r.status_code == 403
    r = client.patch(url, json={"stage": "考察"}, headers=_h(tokens["viewer"]))
    assert (r.status_code, r.json()) == (403, {"detail": "role 'analyst' required; token has role 'viewer'"})
    r = client.patch(url, json={"stage": "考察"}, headers=_h(tokens["admin"]))
    assert r.status_code == 200 and r.json()["author"] == "analyst-user"  # the author stays; the admin is audited
    audit = client.get("/api/audit", headers=_h(tokens["admin"])).json()
    assert [a["actor"] for a in audit if a["action"] == "feedback.correct"] == ["admin-user"]


def test_api_feedback_author_withdraws_a_row(client: TestClient, tokens: dict[str, str]) -> None:
    row = _record(client, tokens["analyst"])
    url = f"/api/feedback/{row['outcome_id']}/withdraw"
    r = client.post(url, json={"reason": "   "}, headers=_h(tokens["analyst"]))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.reason"
    r = client.post(url, json={"reason": "企业名称录错"}, headers=_h(tokens["analyst"]))
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["active"], got["withdrawn_by"], got["withdraw_reason"]) == (False, "analyst-user", "企业名称录错")
    assert client.get("/api/feedback", headers=_h(tokens["viewer"])).json() == []
    assert store.feedback_outcomes(_engine(client)).empty
    assert client.post(url, json={"reason": "再撤一次"}, headers=_h(tokens["analyst"])).status_code == 404
    audit = client.get("/api/audit", headers=_h(tokens["admin"])).json()
    assert any(a["action"] == "feedback.withdraw" and "企业名称录错" in a["detail"] for a in audit)


def test_api_feedback_change_bad_inputs(client: TestClient, tokens: dict[str, str]) -> None:
    row = _record(client, tokens["analyst"])
    url = f"/api/feedback/{row['outcome_id']}"
    h = _h(tokens["analyst"])
    r = client.patch(url, json={}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body"
    r = client.patch(url, json={"author": "someone"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.author"
    r = client.patch(url, json={"node_id": "x.y"}, headers=h)
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "body.node_id"
    r = client.patch(url, json={"note": "a\u0000"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.note"
    r = client.patch(url, json={"stage": None}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.stage"
    assert client.patch("/api/feedback/fb-0000000000000000", json={"stage": "考察"}, headers=h).status_code == 404
    r = client.patch("/api/feedback/not-an-id", json={"stage": "考察"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "path.outcome_id"
    assert client.get("/api/feedback/fb-0000000000000000", headers=h).status_code == 404
    assert store.count_feedback(_engine(client)) == 1


def test_api_admin_lists_inactive_and_flagged_feedback_and_fixes_it(client: TestClient, tokens: dict[str, str]) -> None:
    """A row stored before the checks (amount inf, a NUL in the note) is listed with its problems and can be fixed."""
    engine = _engine(client)
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(
            insert(store.feedback).values(
                outcome_id="fb-00000000000000bd", enterprise_id=E1, node_id=NODE, stage="签约",
                date=dt.datetime(2026, 5, 1), amount_cny=float("inf"), note="a\x00b", author="analyst-user",
                created_at=dt.datetime(2026, 5, 1, 1, 2, tzinfo=dt.UTC),
            )
        )  # fmt: skip
    withdrawn = _record(client, tokens["analyst"])
    client.post(
        f"/api/feedback/{withdrawn['outcome_id']}/withdraw", json={"reason": "重复"}, headers=_h(tokens["analyst"])
    )
    r = client.get("/api/feedback", params={"include_inactive": "true"}, headers=_h(tokens["analyst"]))
    assert (r.status_code, r.json()) == (
        403,
        {"detail": "role 'admin' required to list inactive feedback; token has role 'analyst'"},
    )
    rows = client.get("/api/feedback", params={"include_inactive": "true"}, headers=_h(tokens["admin"])).json()
    assert [(r["outcome_id"], r["active"]) for r in rows] == [
        ("fb-00000000000000bd", True),
        (withdrawn["outcome_id"], False),
    ]
    bad = rows[0]
    assert bad["amount_cny"] is None and bad["created_at"] == "2026-05-01T01:02:00+00:00"
    assert [p.split(" ")[0] for p in bad["problems"]] == ["note", "amount_cny"]
    flagged = client.get("/api/feedback", params={"flagged": "true"}, headers=_h(tokens["viewer"])).json()
    assert [r["outcome_id"] for r in flagged] == ["fb-00000000000000bd"]
    r = client.patch("/api/feedback/fb-00000000000000bd", json={"note": "已修正"}, headers=_h(tokens["admin"]))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.amount_cny"  # the stored inf still blocks
    r = client.patch(
        "/api/feedback/fb-00000000000000bd", json={"note": "已修正", "amount_cny": None}, headers=_h(tokens["admin"])
    )
    assert r.status_code == 200, r.text
    assert (r.json()["problems"], r.json()["corrects"]) == ([], "fb-00000000000000bd")
    assert client.get("/api/feedback", params={"flagged": "true"}, headers=_h(tokens["viewer"])).json() == []


def test_feedback_note_pattern_is_the_store_check() -> None:
    """The note's schema pattern (what clients are told) refuses exactly what store.check_feedback_values refuses."""
    import re

    from recommender.web.schemas import NOTE_PATTERN

    pattern = re.compile(NOTE_PATTERN)
    for code in [*range(0, 0x3100), *range(0xFE00, 0x10000), 0x1F600, sys.maxunicode]:
        if 0xD800 <= code <= 0xDFFF:
            continue
        text = f"a{chr(code)}b"
        try:
            store.check_feedback_values("接洽", dt.date(2020, 1, 1), text, None)
            ok = True
        except ValueError:
            ok = False
        assert ok == bool(pattern.fullmatch(text)), hex(code)
