"""API tests: every endpoint, each role, bad inputs (FastAPI's test client on a hand-made run)."""

from __future__ import annotations

import threading
from pathlib import Path

import openpyxl
import pytest
from fastapi.testclient import TestClient

from features import schema as S
from recommender import store
from recommender.api import create_app
from recommender.settings import load_settings

E1 = "91420100MA4K0000XJ"  # same ids as the published_workspace fixture in tests/conftest.py
NODE = "optical_comm.optical_chip"


@pytest.fixture
def client(published_workspace: Path) -> TestClient:
    app = create_app(load_settings(workspace=published_workspace))
    return TestClient(app)


@pytest.fixture
def tokens(client: TestClient) -> dict[str, str]:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    return {r: store.create_token(engine, f"{r}-user", r) for r in store.ROLES}


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_api_health_needs_no_token(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "published_run": "2026-06-30"}


@pytest.mark.parametrize(
    "path",
    ["/api/chains", "/api/map", f"/api/nodes/{NODE}/targets", f"/api/enterprises/{E1}", "/api/runs", "/api/feedback"],
)
def test_api_reads_need_a_token(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, headers=_h("sst_wrong")).status_code == 401


def test_api_viewer_reads_map_and_targets(client: TestClient, tokens: dict[str, str]) -> None:
    m = client.get("/api/map", params={"chain_id": "optical_comm"}, headers=_h(tokens["viewer"])).json()
    assert [(r["node_id"], r["colour"]) for r in m] == [(NODE, "red")]
    t = client.get(f"/api/nodes/{NODE}/targets", headers=_h(tokens["viewer"])).json()
    assert t["total"] == 1
    item = t["items"][0]
    assert item["enterprise_id"] == E1
    assert item["reasons"] == [{"text": "近180天完成B轮融资"}]
    assert item["routes"][0]["theme"] == "资本招商"


def test_api_targets_filters(client: TestClient, tokens: dict[str, str]) -> None:
    h = _h(tokens["viewer"])
    url = f"/api/nodes/{NODE}/targets"
    assert client.get(url, params={"province": "广东"}, headers=h).json()["total"] == 1
    assert client.get(url, params={"province": "湖北"}, headers=h).json()["total"] == 0
    assert client.get(url, params={"listed": "true"}, headers=h).json()["total"] == 0
    assert client.get(url, params={"has_signals": "true"}, headers=h).json()["total"] == 1
    assert client.get(url, params={"theme": "场景招商"}, headers=h).json()["total"] == 0
    assert client.get(url, params={"min_capital_cny": 1e8}, headers=h).json()["total"] == 0


def test_api_bad_inputs_name_the_field(client: TestClient, tokens: dict[str, str]) -> None:
    h = _h(tokens["viewer"])
    r = client.get(f"/api/nodes/{NODE}/targets", params={"page_size": 0}, headers=h)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "query.page_size"
    r = client.get(f"/api/nodes/{NODE}/targets", params={"theme": "随便"}, headers=h)
    assert r.status_code == 422
    assert client.get("/api/nodes/nope.node/targets", headers=h).status_code == 404
    assert client.get("/api/map", params={"chain_id": "nope"}, headers=h).status_code == 404
    r = client.post(
        "/api/feedback", json={"enterprise_id": E1, "node_id": NODE, "stage": "喝茶"}, headers=_h(tokens["analyst"])
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "body.stage"


def test_api_feedback_roles_and_history(client: TestClient, tokens: dict[str, str]) -> None:
    body = {"enterprise_id": E1, "node_id": NODE, "stage": "接洽", "note": "电话沟通"}
    assert client.post("/api/feedback", json=body, headers=_h(tokens["viewer"])).status_code == 403
    r = client.post("/api/feedback", json=body, headers=_h(tokens["analyst"]))
    assert r.status_code == 201
    assert r.json()["author"] == "analyst-user"
    detail = client.get(f"/api/enterprises/{E1}", headers=_h(tokens["viewer"])).json()
    fb = [h for h in detail["history"] if h["source"] == "feedback"]
    assert [(h["stage"], h["note"], h["author"]) for h in fb] == [("接洽", "电话沟通", "analyst-user")]
    audit = client.get("/api/audit", headers=_h(tokens["admin"])).json()
    assert any(a["action"] == "feedback.add" and a["actor"] == "analyst-user" for a in audit)
    outcomes = store.feedback_outcomes(client.app.state.engine)  # type: ignore[attr-defined]
    assert outcomes[[S.COL_ENTERPRISE_ID, S.COL_NODE_ID, S.COL_STAGE]].values.tolist() == [[E1, NODE, "接洽"]]


def test_api_token_management_needs_admin(client: TestClient, tokens: dict[str, str]) -> None:
    assert client.get("/api/tokens", headers=_h(tokens["analyst"])).status_code == 403
    r = client.post("/api/tokens", json={"name": "新同事", "role": "viewer"}, headers=_h(tokens["admin"]))
    assert r.status_code == 201
    new = r.json()["token"]
    assert client.get("/api/chains", headers=_h(new)).status_code == 200
    listed = client.get("/api/tokens", headers=_h(tokens["admin"])).json()
    tid = next(t["id"] for t in listed if t["name"] == "新同事")
    assert "token_hash" not in listed[0]
    assert client.delete(f"/api/tokens/{tid}", headers=_h(tokens["admin"])).status_code == 200
    assert client.get("/api/chains", headers=_h(new)).status_code == 401
    bad = client.post("/api/tokens", json={"name": "x", "role": "god"}, headers=_h(tokens["admin"]))
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "body.role"


def test_api_training_and_promotion_need_admin(client: TestClient, tokens: dict[str, str]) -> None:
    assert client.post("/api/models/train", headers=_h(tokens["analyst"])).status_code == 403
    assert client.post("/api/models/1/promote", headers=_h(tokens["analyst"])).status_code == 403


def test_api_explain_and_excel(client: TestClient, tokens: dict[str, str], tmp_path: Path) -> None:
    h = _h(tokens["viewer"])
    r = client.get(f"/api/explain/{E1}", params={"node_id": NODE}, headers=h)
    assert r.status_code == 200 and r.json()["rank"] == 1
    x = client.get(f"/api/nodes/{NODE}/targets.xlsx", headers=h)
    assert x.status_code == 200
    p = tmp_path / "t.xlsx"
    p.write_bytes(x.content)
    wb = openpyxl.load_workbook(p)
    cells = [
        c
        for ws in wb.worksheets
        for row in ws.iter_rows()
        for c in row
        if isinstance(c.value, str) and "HYPERLINK" in c.value
    ]
    assert cells and all(c.data_type == "s" and not c.value.startswith("=") for c in cells)


def test_api_concurrent_feedback_loses_nothing(client: TestClient, tokens: dict[str, str]) -> None:
    h = _h(tokens["analyst"])
    errors: list[int] = []

    def write(i: int) -> None:
        r = client.post(
            "/api/feedback", json={"enterprise_id": E1, "node_id": NODE, "stage": "接洽", "note": f"n{i}"}, headers=h
        )
        if r.status_code != 201:
            errors.append(r.status_code)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count_feedback(client.app.state.engine) == 40  # type: ignore[attr-defined]


def test_web_login_and_pages(client: TestClient, tokens: dict[str, str]) -> None:
    assert client.get("/", follow_redirects=False).status_code == 303
    r = client.post("/login", data={"token": "bad"})
    assert "令牌无效" in r.text
    r = client.post("/login", data={"token": tokens["analyst"]}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.set("sansetu_token", tokens["analyst"])
    assert "光通信" in client.get("/").text
    assert NODE in client.get("/chains/optical_comm").text
    page = client.get(f"/nodes/{NODE}").text
    assert "经光谷基金对接" in page and "近180天完成B轮融资" in page
    r = client.post(
        f"/enterprises/{E1}/feedback",
        data={"node_id": NODE, "stage": "考察", "note": "来汉考察"},
        follow_redirects=True,
    )
    assert r.status_code == 200 and "来汉考察" in r.text
    assert client.get("/new").status_code == 200
