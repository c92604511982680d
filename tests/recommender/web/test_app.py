"""API tests: every endpoint, each role, bad inputs (FastAPI's test client on a hand-made run)."""

from __future__ import annotations

import dataclasses
import threading
import types
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
from fastapi.testclient import TestClient

from features import schema as S
from recommender import store
from recommender.settings import Settings

E1 = "91420100MA4K0000XJ"  # same ids as the published_workspace fixture in tests/conftest.py
NODE = "optical_comm.optical_chip"
# /health's search part of an app that was not started (a test client outside `with`) and has not searched yet
NOT_LOADED = {"ready": False, "loading": False, "error": None, "loaded_s": None, "profiles": None}


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_api_health_needs_no_token(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "published_run": "2026-06-30", "search": NOT_LOADED}


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


def test_web_login_and_pages(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str], csrf_of: Callable[[str], str]
) -> None:
    assert client.get("/", follow_redirects=False).status_code == 303
    r = client.post("/login", data={"token": "bad", "csrf_token": csrf_of(client.get("/login").text)})
    assert "令牌无效" in r.text
    csrf = log_in(client, tokens["analyst"])  # the form's token, then the session's (tests/.../test_security.py)
    assert "光通信" in client.get("/").text
    assert NODE in client.get("/chains/optical_comm").text
    page = client.get(f"/nodes/{NODE}").text
    assert "经光谷基金对接" in page and "近180天完成B轮融资" in page
    r = client.post(
        f"/enterprises/{E1}/feedback",
        data={"node_id": NODE, "stage": "考察", "note": "来汉考察", "csrf_token": csrf},
        follow_redirects=True,
    )
    assert r.status_code == 200 and "来汉考察" in r.text
    assert client.get("/new").status_code == 200


# ---------------------------------------------------------------- every endpoint x every role
ENDPOINTS: list[tuple[str, str, str, dict[str, object] | None]] = [
    ("GET", "/api/chains", "viewer", None),
    ("GET", "/api/map", "viewer", None),
    ("GET", "/api/chains/optical_comm/map.svg", "viewer", None),
    ("GET", f"/api/nodes/{NODE}/targets", "viewer", None),
    ("GET", f"/api/nodes/{NODE}/targets.xlsx", "viewer", None),
    ("GET", "/api/chains/optical_comm/targets.xlsx", "viewer", None),
    ("GET", "/api/search?q=光芯", "viewer", None),
    ("GET", f"/api/enterprises/{E1}", "viewer", None),
    ("GET", f"/api/explain/{E1}?node_id={NODE}", "viewer", None),
    ("GET", "/api/feedback", "viewer", None),
    ("POST", "/api/feedback", "analyst", {"enterprise_id": E1, "node_id": NODE, "stage": "接洽"}),
    ("GET", "/api/runs", "viewer", None),
    ("GET", "/api/runs/current/diff", "viewer", None),
    ("GET", "/api/models", "viewer", None),
    ("POST", "/api/models/train", "admin", None),
    ("POST", "/api/models/1/promote", "admin", None),
    ("GET", "/api/tokens", "admin", None),
    ("POST", "/api/tokens", "admin", {"name": "x", "role": "viewer"}),
    ("DELETE", "/api/tokens/999", "admin", None),
    ("GET", "/api/audit", "admin", None),
]


@pytest.fixture
def fake_training(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Replace the real training job by one that waits for the returned event."""
    release = threading.Event()

    def job(settings: object, promote_if_better: bool) -> dict[str, object]:
        release.wait(10)
        return {"version": "1", "promoted": promote_if_better}

    monkeypatch.setattr("recommender.web.state.train_job", job)
    return release


def test_api_every_endpoint_checks_the_role(
    client: TestClient, tokens: dict[str, str], fake_training: threading.Event
) -> None:
    fake_training.set()
    for method, path, needed, body in ENDPOINTS:
        assert client.request(method, path, json=body).status_code == 401, path
        for role in store.ROLES:
            r = client.request(method, path, json=body, headers=_h(tokens[role]))
            if store.ROLE_LEVEL[role] < store.ROLE_LEVEL[needed]:  # type: ignore[index]
                assert r.status_code == 403, (path, role, r.text)
                assert r.json() == {"detail": f"role '{needed}' required; token has role '{role}'"}
            else:
                assert r.status_code not in (401, 403), (path, role, r.text)


def test_api_openapi_lists_every_endpoint(client: TestClient, tokens: dict[str, str]) -> None:
    paths = client.get("/openapi.json", headers=_h(tokens["viewer"])).json()["paths"]  # a token: test_contract.py
    for _, path, _, _ in ENDPOINTS:
        template = path.split("?")[0].replace(E1, "{enterprise_id}").replace(NODE, "{node_id}")
        template = template.replace("/optical_comm/", "/{chain_id}/").replace("/current/", "/{run}/")
        template = template.replace("/999", "/{token_id}").replace("/1/promote", "/{version}/promote")
        assert template in paths, template


# ---------------------------------------------------------------- lists, filters, paging
def test_api_targets_theme_matches_any_route_and_size_bands(client: TestClient, tokens: dict[str, str]) -> None:
    h = _h(tokens["viewer"])
    url = f"/api/nodes/{NODE}/targets"
    assert client.get(url, params={"theme": "生态圈招商"}, headers=h).json()["total"] == 1  # second route
    assert client.get(url, params={"size": "中型"}, headers=h).json()["total"] == 1  # 5e7 CNY
    assert client.get(url, params={"size": "大型"}, headers=h).json()["total"] == 0
    assert client.get(url, params={"province": "廣東"}, headers=h).json()["total"] == 1  # traditional input
    assert client.get(url, params={"listed": "false", "has_signals": "true"}, headers=h).json()["total"] == 1
    r = client.get(url, params={"size": "巨型"}, headers=h)
    assert r.status_code == 422
    assert r.json() == {
        "detail": [{"field": "query.size", "problem": "must be one of ['小型', '中型', '大型']", "got": "巨型"}]
    }


def test_api_targets_items_carry_place_size_and_signals(client: TestClient, tokens: dict[str, str]) -> None:
    item = client.get(f"/api/nodes/{NODE}/targets", headers=_h(tokens["viewer"])).json()["items"][0]
    assert {k: item[k] for k in ("province", "city", "registered_capital_cny", "listed", "has_signals")} == {
        "province": "广东省",
        "city": "深圳市",
        "registered_capital_cny": 5e7,
        "listed": False,
        "has_signals": True,
    }
    assert [r["theme"] for r in item["routes"]] == ["资本招商", "生态圈招商"]


def test_api_targets_paging(client: TestClient, tokens: dict[str, str]) -> None:
    h = _h(tokens["viewer"])
    r = client.get(f"/api/nodes/{NODE}/targets", params={"page": 2, "page_size": 1}, headers=h).json()
    assert (r["total"], r["page"], r["page_size"], r["items"]) == (1, 2, 1, [])
    r = client.get(f"/api/nodes/{NODE}/targets", params={"page": 0}, headers=h)
    assert r.status_code == 422
    assert r.json()["detail"][0] == {
        "field": "query.page",
        "problem": "Input should be greater than or equal to 1",
        "got": "0",
    }


def test_api_unknown_ids_name_the_field(client: TestClient, tokens: dict[str, str]) -> None:
    h = _h(tokens["viewer"])
    r = client.get("/api/nodes/optical_comm.optical_chp/targets", headers=h)
    assert r.status_code == 404
    assert r.json() == {
        "detail": [
            {
                "field": "path.node_id",
                "problem": "unknown node_id; did you mean ['optical_comm.optical_chip', 'optical_comm.optical_device', 'optical_comm.electrical_chip']?",
                "got": "optical_comm.optical_chp",
            }
        ]
    }
    r = client.get("/api/enterprises/91420100MA4K0000YY", headers=h)
    assert r.status_code == 404
    assert r.json()["detail"][0]["field"] == "path.enterprise_id"
    r = client.get("/api/map", params={"chain_id": "nope"}, headers=h)
    assert r.json()["detail"][0]["field"] == "query.chain_id"
    r = client.get(f"/api/explain/{E1}", params={"node_id": "optical_comm.preform"}, headers=h)
    assert r.status_code == 404
    assert client.get(f"/api/explain/{E1}", headers=h).json()["detail"][0]["field"] == "query.node_id"


def test_api_filtered_excel_has_only_the_kept_rows(client: TestClient, tokens: dict[str, str]) -> None:
    from recommender.runs.export import read_workbook

    h = _h(tokens["viewer"])
    full = read_workbook(client.get(f"/api/nodes/{NODE}/targets.xlsx", headers=h).content)
    none = read_workbook(client.get(f"/api/nodes/{NODE}/targets.xlsx", params={"province": "湖北"}, headers=h).content)
    sheet = next(k for k in full if "光通信" in k or "optical" in k)
    assert len(full[sheet]) == 1
    assert len(none[sheet]) == 0


def test_api_chain_svg_links_nodes_to_their_pages(client: TestClient, tokens: dict[str, str]) -> None:
    r = client.get("/api/chains/optical_comm/map.svg", headers=_h(tokens["viewer"]))
    assert r.headers["content-type"] == "image/svg+xml"
    assert f'href="/nodes/{NODE}"' in r.text


# ---------------------------------------------------------------- search, explain
def test_api_search_with_only_enterprises(client: TestClient, tokens: dict[str, str]) -> None:
    h = _h(tokens["viewer"])
    r = client.get("/api/search", params={"q": "光芯科技"}, headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 1
    assert (body["items"][0]["enterprise_id"], body["items"][0]["rank"]) == (E1, 1)
    r = client.get("/api/search", params={"q": "   "}, headers=h)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "query.q"
    assert client.get("/api/search", headers=h).json()["detail"][0]["field"] == "query.q"


def test_api_explain_returns_reasons_features_and_contributions(client: TestClient, tokens: dict[str, str]) -> None:
    r = client.get(f"/api/explain/{E1}", params={"node_id": NODE}, headers=_h(tokens["viewer"])).json()
    assert r["reasons"] == [{"text": "近180天完成B轮融资"}]
    assert r["features"] == {"listed": 0.0}
    assert r["contributions"] == {"listed": -0.1}
    assert r["run_id"] == "2026-06-30"


# ---------------------------------------------------------------- feedback
def test_api_feedback_bad_inputs(client: TestClient, tokens: dict[str, str]) -> None:
    h = _h(tokens["analyst"])
    r = client.post("/api/feedback", json={"enterprise_id": "123", "node_id": NODE, "stage": "接洽"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.enterprise_id"
    r = client.post(
        "/api/feedback", json={"enterprise_id": "91420100MA4K0000YY", "node_id": NODE, "stage": "接洽"}, headers=h
    )
    assert r.status_code == 404
    assert r.json()["detail"][0] == {
        "field": "body.enterprise_id",
        "problem": "unknown enterprise_id: not in the ingested enterprises",
        "got": "91420100MA4K0000YY",
    }
    r = client.post("/api/feedback", json={"enterprise_id": E1, "node_id": "x.y", "stage": "接洽"}, headers=h)
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "body.node_id"
    r = client.post(
        "/api/feedback", json={"enterprise_id": E1, "node_id": NODE, "stage": "签约", "note": "x" * 2001}, headers=h
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.note"
    r = client.post(
        "/api/feedback", json={"enterprise_id": E1, "node_id": NODE, "stage": "签约", "date": "2026-13-01"}, headers=h
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.date"
    assert store.count_feedback(client.app.state.engine) == 0  # type: ignore[attr-defined]


def test_api_feedback_every_stage_is_appended_and_audited(client: TestClient, tokens: dict[str, str]) -> None:
    h = _h(tokens["analyst"])
    for i, stage in enumerate(("接洽", "考察", "洽谈", "签约", "落地", "终止")):
        body = {"enterprise_id": E1, "node_id": NODE, "stage": stage, "date": f"2026-07-0{i + 1}", "note": stage}
        assert client.post("/api/feedback", json=body, headers=h).status_code == 201
    rows = client.get("/api/feedback", params={"enterprise_id": E1}, headers=_h(tokens["viewer"])).json()
    assert [(r["stage"], r["date"][:10], r["author"]) for r in rows] == [
        ("接洽", "2026-07-01", "analyst-user"),
        ("考察", "2026-07-02", "analyst-user"),
        ("洽谈", "2026-07-03", "analyst-user"),
        ("签约", "2026-07-04", "analyst-user"),
        ("落地", "2026-07-05", "analyst-user"),
        ("终止", "2026-07-06", "analyst-user"),
    ]
    audit = [a for a in client.get("/api/audit", headers=_h(tokens["admin"])).json() if a["action"] == "feedback.add"]
    assert len(audit) == 6 and all(a["actor"] == "analyst-user" and a["at"] for a in audit)
    assert '"stage": "终止"' in audit[0]["detail"]  # newest first


# ---------------------------------------------------------------- runs, models
def test_api_runs_and_diffs(client: TestClient, tokens: dict[str, str]) -> None:
    h = _h(tokens["viewer"])
    runs = client.get("/api/runs", headers=h).json()
    assert [(r["run"], r["state"]) for r in runs] == [("2026-06-30", "published")]
    diff = client.get("/api/runs/current/diff", headers=h).json()
    assert diff["totals"] == {"new": 1, "dropped": 0, "moved": 0, "colour_changes": 0}
    assert [(n["node_id"], [t["enterprise_id"] for t in n["new"]]) for n in diff["nodes"]] == [(NODE, [E1])]
    assert client.get("/api/runs/2026-06-30/diff", headers=h).json() == diff
    r = client.get("/api/runs/2020-01-01/diff", headers=h)
    assert r.status_code == 404
    assert r.json() == {"detail": "unknown run '2020-01-01'; complete runs: ['2026-06-30']"}


def test_api_models_without_a_store_lists_nothing_and_creates_nothing(
    client: TestClient, tokens: dict[str, str], published_workspace: Path
) -> None:
    r = client.get("/api/models", headers=_h(tokens["viewer"])).json()
    assert r == {"model": "sansetu-ranker", "versions": [], "training": {"state": "idle"}}
    assert not (published_workspace / "mlflow.db").exists()
    r = client.post("/api/models/3/promote", headers=_h(tokens["admin"]))
    assert r.status_code == 404
    assert r.json() == {"detail": "no model registered yet: train one first (POST /api/models/train)"}
    assert client.post("/api/models/0/promote", headers=_h(tokens["admin"])).json()["detail"][0]["field"] == (
        "path.version"
    )


def test_api_training_runs_in_background_one_at_a_time(
    client: TestClient, tokens: dict[str, str], fake_training: threading.Event
) -> None:
    h = _h(tokens["admin"])
    r = client.post("/api/models/train", params={"promote_if_better": "true"}, headers=h)
    assert r.status_code == 202
    assert (r.json()["state"], r.json()["by"], r.json()["promote_if_better"]) == ("running", "admin-user", True)
    again = client.post("/api/models/train", headers=h)
    assert again.status_code == 409
    fake_training.set()
    trainer = client.app.state.trainer  # type: ignore[attr-defined]
    for _ in range(100):
        if trainer.status()["state"] != "running":
            break
        threading.Event().wait(0.05)
    status = client.get("/api/models", headers=_h(tokens["viewer"])).json()["training"]
    assert (status["state"], status["result"]) == ("done", {"version": "1", "promoted": True})
    audit = client.get("/api/audit", headers=h).json()
    assert [a["action"] for a in audit if a["action"].startswith("model.")] == ["model.train"]


def test_web_pages_need_login_and_show_diff_and_search(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str]
) -> None:
    for path in ("/", "/chains/optical_comm", f"/nodes/{NODE}", f"/enterprises/{E1}", "/new", "/search?q=光芯"):
        assert client.get(path, follow_redirects=False).headers["location"] == "/login"
    csrf = log_in(client, tokens["viewer"])
    new = client.get("/new").text
    assert "新增目标 <b>1</b>" in new and f'href="/enterprises/{E1}"' in new
    assert E1 in client.get("/search", params={"q": "光芯科技"}).text
    node = client.get(f"/nodes/{NODE}", params={"province": "湖北"}).text
    assert "没有符合筛选条件的企业" in node
    # the page's download is a page route (the session), the API takes only header tokens
    assert f'href="/nodes/{NODE}/targets.xlsx?province=%E6%B9%96%E5%8C%97"' in node
    page = client.get(f"/enterprises/{E1}").text
    assert 'id="feedback-form"' not in page  # viewers cannot record feedback
    r = client.post(
        f"/enterprises/{E1}/feedback",
        data={"node_id": NODE, "stage": "考察", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "没有权限" in r.text
    r = client.get("/nodes/optical_comm.nope")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html") and "未找到" in r.text


def test_cli_tokens_create_list_revoke(published_workspace: Path) -> None:
    from typer.testing import CliRunner

    from recommender.cli import app

    runner = CliRunner(env={"COLUMNS": "200"})
    ws = ["-w", str(published_workspace)]
    made = runner.invoke(app, ["tokens", "create", "--role", "admin", "--name", "管理员", *ws])
    assert made.exit_code == 0, made.output
    token = made.output.strip()
    engine = store.make_engine(f"sqlite:///{published_workspace / 'service.db'}")
    assert store.authenticate(engine, token) == store.Principal("管理员", "admin")
    listed = runner.invoke(app, ["tokens", "list", "-f", "json", *ws])
    assert token not in listed.output and "管理员" in listed.output
    bad = runner.invoke(app, ["tokens", "create", "--role", "root", *ws])
    assert bad.exit_code == 2 and "must be one of ['viewer', 'analyst', 'admin']; got 'root'" in bad.output
    assert runner.invoke(app, ["tokens", "revoke", "1", *ws]).output.strip() == "revoked token 1"
    assert store.authenticate(engine, token) is None
    missing = runner.invoke(app, ["tokens", "revoke", "9", *ws])
    assert missing.exit_code == 2 and "no token with id 9" in missing.output


def test_api_before_any_refresh(
    tmp_path: Path, make_client: Callable[..., TestClient], log_in: Callable[[TestClient, str], str]
) -> None:
    c = make_client(tmp_path / "empty")
    app = c.app
    h = _h(store.create_token(app.state.engine, "v", "viewer"))  # type: ignore[attr-defined]
    assert c.get("/health").json() == {"status": "ok", "published_run": None, "search": NOT_LOADED}
    r = c.get("/api/map", headers=h)
    assert (r.status_code, r.json()) == (404, {"detail": "no published run yet: run `sansetu refresh` first"})
    assert c.get(f"/api/nodes/{NODE}/targets", headers=h).status_code == 404
    assert c.get("/api/runs", headers=h).json() == []
    assert c.get("/api/search", params={"q": "光芯"}, headers=h).json() == {"q": "光芯", "total": 0, "items": []}
    log_in(c, h["Authorization"][7:])
    assert "尚无已发布的名单" in c.get("/").text
    assert "暂无目标企业" in c.get(f"/nodes/{NODE}").text


def test_api_training_reads_the_feedback(
    client: TestClient, tokens: dict[str, str], published_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service trains through jobs.train_from_workspace: the ingested outcome and the feedback row, each once."""
    import pandas as pd

    from features.io import write_snapshot
    from recommender.ranking import jobs as service
    from recommender.web import state as api
    from training.registry import GateDecision

    engine = client.app.state.engine  # type: ignore[attr-defined]
    store.add_feedback(engine, enterprise_id=E1, node_id=NODE, stage="签约", author="小王")
    ingested = pd.DataFrame(
        {
            S.COL_OUTCOME_ID: ["o1"],
            S.COL_ENTERPRISE_ID: [E1],
            S.COL_NODE_ID: [NODE],
            S.COL_STAGE: ["接洽"],
            S.COL_DATE: [pd.Timestamp("2025-01-01")],
        }
    )
    write_snapshot(ingested, published_workspace / "snapshots", "outcomes")
    loaded: list[service.TrainingInputs] = []
    built: list[service.TrainingInputs] = []
    real_load = service.load_training_inputs

    def load(settings: Settings, oracle_path: Path | None = None) -> service.TrainingInputs:
        loaded.append(real_load(settings, oracle_path))
        return loaded[-1]

    def build(settings: object, got: service.TrainingInputs) -> str:
        built.append(got)
        return "training set"

    decision = GateDecision(
        version="1", run_id="run", metric="ndcg@20", challenger_value=0.5, champion_version=None,
        champion_value=None, margin=0.0, better=True, promoted=False, reason="no champion yet",
    )  # fmt: skip

    trained = types.SimpleNamespace(counts={})  # what train_and_evaluate returns, as far as the job reads it

    class Registry:
        def log_training_run(self, result: object, config: object, promote_if_better: bool) -> GateDecision:
            assert (result, promote_if_better) == (trained, False)
            return decision

    monkeypatch.setattr(service, "load_training_inputs", load)
    monkeypatch.setattr(service, "training_candidates", lambda settings, nodes, tables: pd.DataFrame())
    monkeypatch.setattr(service, "build_training_data", build)
    monkeypatch.setattr("training.train.train_and_evaluate", lambda ts, cfg, oracle, fps, **kw: trained)
    monkeypatch.setattr(service, "model_registry", lambda settings: Registry())
    out = api.train_job(client.app.state.settings, False)  # type: ignore[attr-defined]
    assert len(loaded) == len(built) == 1 and built[0] is loaded[0]  # built from the one merge, not merged again
    assert built[0].tables["outcomes"][S.COL_STAGE].tolist() == ["接洽", "签约"]
    assert out == {"n_outcomes": 2, **dataclasses.asdict(decision)}
