"""``sansetu map`` end to end on a workspace with hand-written snapshots."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.chains import nodes_frame
from recommender.cli import app
from recommender.colour_map.history import list_maps, load_latest_map, load_previous_map, save_map
from recommender.settings import load_chains, load_settings

NODE = "optical_comm.optical_module"
OTHER = "optical_comm.preform"


def _enterprises() -> pd.DataFrame:
    codes = ["3976"] * 20 + ["3921"] * 30 + ["1234"] * 50
    return pd.DataFrame(
        {
            "enterprise_id": [f"E{i:03d}" for i in range(100)],
            "name": [f"光谷企业{i:03d}" for i in range(100)],
            "industry_code": codes,
            "is_operating": True,
        }
    )


def _presence(n_module: int) -> pd.DataFrame:
    """``n_module`` enterprises at the optical-module node (E000 the leader) and one at the preform."""
    rows = [(f"E{i:03d}", NODE, 2024, 1e8, i == 0) for i in range(n_module)]
    rows.append(("E099", OTHER, 2024, 5e6, False))
    return pd.DataFrame(rows, columns=["enterprise_id", "node_id", "year", "output_value_cny", "is_chain_leader"])


def _workspace(tmp_path: Path, n_module: int = 6) -> Path:
    from features.io import write_snapshot

    ws = tmp_path / "ws"
    write_snapshot(_enterprises(), ws / "snapshots", "enterprises")
    write_snapshot(_presence(n_module), ws / "snapshots", "presence")
    return ws


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["map", *args])
    return result.exit_code, result.stdout, result.stderr


def test_map_json_lists_every_node_with_colour_and_reason(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    code, out, err = _run("--format", "json", "--workspace", str(ws))
    assert code == 0, err
    records = json.loads(out)
    assert len(records) == 154  # all nodes of the 11 bundled chains
    by_id = {r["node_id"]: r for r in records}
    # N_local = 7; the universe's 20 x 3976 and 30 x 3921 are split over the nodes listing each code,
    # E099 (code 1234) adds 1 at the preform: N_universe = 51.
    codes = [c for cs in nodes_frame(load_chains(load_settings()))["industry_codes"] for c in cs]
    module = 20 / codes.count("3976") + 30 / codes.count("3921")
    assert by_id[NODE] | {"lq": round(by_id[NODE]["lq"], 4)} == {
        "chain_id": "optical_comm",
        "node_id": NODE,
        "name": "光模块",
        "stage": "midstream",
        "colour": "green",
        "reason": "本地6家企业，产值6.0亿元，含链主〈光谷企业000〉，区位熵6.95，需延链固链",
        "n_local": 6,
        "output_value_cny": 6e8,
        "has_leader": True,
        "lq": round((6 / 7) / (module / 51), 4),
        "growth": None,
        "gap": 0.0,
        "priority": None,
        "year": 2024,
        "leaders": ["光谷企业000"],
    }
    assert by_id[OTHER]["colour"] == "blue"
    assert by_id["laser.fiber_laser"]["colour"] == "red"
    assert by_id["laser.fiber_laser"]["reason"] == "本地无企业布局（区位熵0.00），需补链"
    assert "首次计算三色图，暂无历史可比较。" in err


def test_map_writes_history_and_chain_pictures(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    code, _, err = _run("--format", "json", "--workspace", str(ws))
    assert code == 0, err
    maps = ws / "maps"
    assert len(list_maps(maps)) == 1
    for chain_id in ("optical_comm", "laser", "future"):
        page = (maps / f"{chain_id}.html").read_text(encoding="utf-8")
        assert 'data-node-id="' in page and "<svg" in page
        assert (maps / f"{chain_id}.svg").exists()
    assert '<a href="optical_comm.html">光通信</a>' in (maps / "index.html").read_text(encoding="utf-8")


def test_map_prints_colour_changes_against_the_previous_run(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, n_module=6)
    assert _run("--format", "json", "--workspace", str(ws))[0] == 0
    from features.io import write_snapshot

    write_snapshot(_presence(3), ws / "snapshots", "presence")
    code, out, err = _run("--chain", "optical_comm", "--workspace", str(ws))
    assert code == 0, err
    assert "颜色变化的节点（1个）：\n  optical_comm · 光模块（optical_comm.optical_module）：绿 → 蓝\n" in out
    assert "光模块" in out and "需强链" in out
    assert len(list_maps(ws / "maps")) == 2
    assert load_previous_map(ws / "maps")["colour"].tolist().count("green") == 1  # type: ignore[index]


def test_map_chain_filter_and_csv(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    code, out, err = _run("--chain", "laser", "--format", "csv", "--workspace", str(ws))
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 13
    assert {r["chain_id"] for r in rows} == {"laser"}
    assert list(rows[0])[:6] == ["chain_id", "node_id", "name", "stage", "colour", "reason"]
    code, out, _ = _run("--chain", "optical_comm", "--format", "csv", "--workspace", str(ws))
    module = next(r for r in csv.DictReader(io.StringIO(out)) if r["node_id"] == NODE)
    assert (module["output_value_cny"], module["leaders"], module["priority"]) == ("600000000.0", "光谷企业000", "")


def test_map_without_data_says_what_to_do(tmp_path: Path) -> None:
    code, out, err = _run("--workspace", str(tmp_path / "empty"))
    assert code == 1
    assert out == ""
    assert err == (
        f"工作区 {tmp_path / 'empty'} 中还没有园区企业分布数据（presence 表），无法计算三色图。\n"
        "请先导入数据：sansetu ingest FILE --table presence（以及 --table enterprises），"
        "或运行 sansetu demo 生成并导入示例园区。\n"
    )


def test_map_warns_without_enterprises(tmp_path: Path) -> None:
    from features.io import write_snapshot

    ws = tmp_path / "ws"
    write_snapshot(_presence(6), ws / "snapshots", "presence")
    code, out, err = _run("--format", "json", "--workspace", str(ws))
    assert code == 0, err
    assert err.startswith("未导入企业库（enterprises 表）：区位熵只能拿园区企业自身作比较，无法判断优势节点；")
    by_id = {r["node_id"]: r for r in json.loads(out)}
    assert by_id[NODE]["lq"] == 1.0
    assert by_id[NODE]["reason"] == (
        "本地6家企业，产值6.0亿元，含链主〈E000〉，区位熵1.00；距绿色尚缺：区位熵≥1.20，需强链"
    )


def test_map_rejects_unknown_chain(tmp_path: Path) -> None:
    code, _, err = _run("--chain", "nope", "--workspace", str(_workspace(tmp_path)))
    assert code == 2
    assert "unknown chain id 'nope'" in err


def test_map_rejects_unknown_year(tmp_path: Path) -> None:
    code, _, err = _run("--year", "2019", "--workspace", str(_workspace(tmp_path)))
    assert code == 2
    assert err == "as_of_year 2019 has no presence rows; presence covers years [2024]\n"


def test_map_store_keeps_order_and_loads_latest(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    assert load_latest_map(maps) is None and load_previous_map(maps) is None
    a = pd.DataFrame({"node_id": ["x.a"], "colour": ["red"]})
    b = pd.DataFrame({"node_id": ["x.a"], "colour": ["blue"]})
    p1 = save_map(a, maps, stamp="20260101T000000000000")
    p2 = save_map(b, maps)
    assert list_maps(maps) == [p1, p2]
    assert load_latest_map(maps)["colour"].tolist() == ["blue"]  # type: ignore[index]
    assert load_previous_map(maps)["colour"].tolist() == ["red"]  # type: ignore[index]
    (maps / "optical_comm.html").write_text("x", encoding="utf-8")
    assert list_maps(maps) == [p1, p2]


def test_save_map_rejects_bad_stamp(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="map stamp must look like 20260101T120000000000"):
        save_map(pd.DataFrame({"a": [1]}), tmp_path, stamp="latest")
