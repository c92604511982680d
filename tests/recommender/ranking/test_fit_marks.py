"""The analysts' checks of the 待核实 sheet: filled in, ingested as ``fit_marks``, they decide the pairs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.io import default_mode, ingest_file, read_snapshot
from recommender.ranking.lists import build_lists
from recommender.retrieval.fit import apply_fit_marks
from recommender.runs.export import list_sheets, read_workbook, workbook_bytes
from recommender.settings import RankingConfig

MAPS = Path(__file__).resolve().parents[3] / "configs" / "column_maps"
A, B, C = "91420100MA4K0000AP", "91420100MA4K0000BT", "91420100MA4K0000CX"
NODE, OTHER = "optical_comm.optical_module", "optical_comm.fiber_cable"
AS_OF = pd.Timestamp("2026-06-30")


def returned_workbook(tmp_path: Path, verdicts: list[str | None]) -> Path:
    """The refresh workbook with its 待核实 sheet filled in by an analyst (one verdict per row, None = left blank)."""
    near = pd.DataFrame({"node_id": [NODE, NODE, OTHER], "near_rank": [1, 2, 1], "enterprise_id": [A, B, C],
                         "fit": [0.39, 0.25, 0.1], "score": [0.2, 0.1, 0.1], "name": ["中际", "光迅", "某公司"]})  # fmt: skip
    sheets = list_sheets(None, None, near, {NODE: "光模块", OTHER: "光纤光缆"}, 0.5)
    sheets["待核实"] = sheets["待核实"].assign(核实结果=verdicts, 核实人="张三", 核实日期="2026-06-01")
    map_df = pd.DataFrame({"chain_id": ["optical_comm"], "node_id": [NODE], "name": ["光模块"], "colour": ["red"]})
    targets = pd.DataFrame(columns=["chain_id", "node_id", "rank", "enterprise_id", "name", "score"])
    path = tmp_path / "workbook.xlsx"
    path.write_bytes(workbook_bytes(map_df, targets, None, None, sheets))
    return path


def test_a_returned_sheet_is_read_from_its_sheet_skipping_rows_left_unchecked(tmp_path: Path) -> None:
    path = returned_workbook(tmp_path, ["是", None, "不确定"])
    report = ingest_file(path, "fit_marks", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS,
                         mode=default_mode("fit_marks"), today=AS_OF.date())  # fmt: skip
    assert (report.n_ok, report.n_rejected) == (1, 1)  # the blank row is not checked yet: neither stored nor rejected
    marks = read_snapshot(tmp_path / "snap", "fit_marks")
    assert marks is not None
    assert marks[["node_id", "enterprise_id", "fits", "marked_by"]].values.tolist() == [[NODE, A, True, "张三"]]
    rejects = pd.read_csv(report.rejects)
    assert rejects[["row", "field"]].values.tolist() == [[3, "fits"]] and "不确定" in rejects["value"].tolist()
    # a second returned sheet adds to the earlier checks (upsert by node and firm), the newer verdict wins
    again = returned_workbook(tmp_path, ["否", "是", None])
    ingest_file(again, "fit_marks", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS,
                mode=default_mode("fit_marks"), today=AS_OF.date())  # fmt: skip
    marks = read_snapshot(tmp_path / "snap", "fit_marks")
    assert marks is not None
    assert sorted(marks[["enterprise_id", "fits"]].values.tolist()) == [[A, False], [B, True]]
    assert (default_mode("fit_marks"), default_mode("outcomes")) == ("upsert", "replace")


def test_checks_override_the_fit_and_a_firm_checked_no_is_excluded_with_the_reason() -> None:
    scored = pd.DataFrame({"node_id": [NODE, NODE, NODE, OTHER], "enterprise_id": [A, B, C, A],
                           "score": [0.3, 0.2, 0.1, 0.5], "fit": [0.39, 0.95, 0.9, 0.2]})  # fmt: skip
    marks = pd.DataFrame({"node_id": [NODE, NODE, NODE], "enterprise_id": [A, B, "91420100MA4K0000D1"],
                          "fits": [True, False, True], "date": pd.to_datetime(["2026-06-01", "2026-06-02", None]),
                          "marked_by": ["张三", None, None], "note": [None, "只做光纤", None]})  # fmt: skip
    marked, counts = apply_fit_marks(scored, marks)
    assert marked["fit"].tolist() == [1.0, 0.0, 0.9, 0.2]  # only the pairs checked change; other nodes keep theirs
    assert marked["fit_mark"].tolist() == ["fits", "not_fit", "", ""]
    assert counts == {"applied": 2, "not_candidates": 1}  # D1 is no candidate of the node: nothing to change
    out = build_lists(marked, None, None, RankingConfig(), 10, AS_OF)
    assert out.targets[out.targets["node_id"] == NODE]["enterprise_id"].tolist() == [A, C]  # A checked 是: listed
    assert out.excluded[["enterprise_id", "reason_code", "reason"]].values.tolist() == [
        [B, "marked_not_fit", "经核实不生产本节点产品（2026-06-02；只做光纤）"]
    ]
    unmarked = build_lists(scored, None, None, RankingConfig(), 10, AS_OF)
    assert unmarked.targets[unmarked.targets["node_id"] == NODE]["enterprise_id"].tolist() == [B, C]
    assert apply_fit_marks(scored, None)[1] == {"applied": 0, "not_candidates": 0}


def test_apply_fit_marks_names_a_missing_column() -> None:
    scored = pd.DataFrame({"node_id": [NODE], "enterprise_id": [A], "fit": [0.4]})
    with pytest.raises(ValueError, match=r"fit_marks is missing required columns \['fits'\]"):
        apply_fit_marks(scored, pd.DataFrame({"node_id": [NODE], "enterprise_id": [A]}))


def test_the_workbook_round_trip_reads_back_the_empty_check_columns(tmp_path: Path) -> None:
    book = read_workbook(returned_workbook(tmp_path, [None, None, None]))
    assert list(book["待核实"].columns)[-4:] == ["核实结果", "核实人", "核实日期", "备注"]


def test_refresh_inputs_merge_a_returned_workbook_into_the_earlier_checks(tmp_path: Path) -> None:
    from recommender.refresh import steps
    from recommender.refresh.context import RunContext
    from recommender.refresh.executor import LocalExecutor
    from recommender.settings import load_settings
    from recommender.workspace import Workspace

    settings = load_settings(workspace=tmp_path / "ws")
    ws = Workspace(settings.workspace).ensure()
    inputs = tmp_path / "in"
    inputs.mkdir()
    ctx = RunContext(settings, ws, AS_OF.date(), "r", tmp_path / "staging", LocalExecutor(), inputs=inputs)
    for verdicts in (["是", None, None], [None, "否", None]):  # two returned sheets, each checking one firm
        returned_workbook(tmp_path, verdicts).rename(inputs / "fit_marks.xlsx")
        assert steps._ingest_new(ctx) == ["fit_marks"]
    marks = read_snapshot(ws.snapshots, "fit_marks")
    assert marks is not None
    assert sorted(marks[["enterprise_id", "fits"]].values.tolist()) == [[A, True], [B, False]]


def test_a_returned_sheet_with_nothing_checked_does_not_stop_the_refresh(tmp_path: Path) -> None:
    from recommender.refresh import steps
    from recommender.refresh.context import RunContext
    from recommender.refresh.executor import LocalExecutor
    from recommender.settings import load_settings
    from recommender.workspace import Workspace

    settings = load_settings(workspace=tmp_path / "ws")
    ws = Workspace(settings.workspace).ensure()
    inputs = tmp_path / "in"
    inputs.mkdir()
    returned_workbook(tmp_path, [None, None, None]).rename(inputs / "fit_marks.xlsx")
    ctx = RunContext(settings, ws, AS_OF.date(), "r", tmp_path / "staging", LocalExecutor(), inputs=inputs)
    assert steps._ingest_new(ctx) == ["fit_marks"]  # no InputError: nothing checked yet is nothing wrong
    assert read_snapshot(ws.snapshots, "fit_marks") is None


def test_the_fit_marks_sheet_choice_respects_the_workbook_size_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openpyxl

    from features.io import IngestError, ReadLimits

    path = returned_workbook(tmp_path, ["是", None, None])
    monkeypatch.setattr(openpyxl, "load_workbook", lambda *a, **k: pytest.fail("parsed before the size check"))
    with pytest.raises(IngestError, match="would inflate"):
        ingest_file(path, "fit_marks", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS,
                    limits=ReadLimits(max_xlsx_uncompressed_bytes=1000))  # fmt: skip


def test_the_sheet_never_says_a_fit_below_the_threshold_is_at_it() -> None:
    near = pd.DataFrame({"node_id": [NODE], "near_rank": [1], "enterprise_id": [A], "fit": [0.496], "score": [0.1],
                         "name": ["甲"]})  # fmt: skip
    why = list_sheets(None, None, near, {NODE: "光模块"}, 0.5)["待核实"]["说明"].iloc[0]
    assert why.startswith("匹配度49%，低于阈值50%")
