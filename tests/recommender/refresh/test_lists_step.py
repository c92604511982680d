"""The paths and export steps publish the lists: targets that fit, capped, without the excluded pairs;
the 本地延链 list and the excluded pairs beside them (Parquet and workbook sheets); overlap in the summary."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.chains import nodes_frame
from features.ingest import coerce_table, empty_table
from features.schema import TABLES
from recommender.refresh import steps
from recommender.refresh.context import RunContext
from recommender.refresh.executor import LocalExecutor
from recommender.runs.export import read_workbook
from recommender.settings import load_chains, load_settings
from recommender.workspace import Workspace

AS_OF = date(2026, 6, 30)


def table(table_name: str, /, **columns: Any) -> pd.DataFrame:
    """A table with the schema's columns, ``columns`` filled in."""
    return coerce_table(pd.DataFrame(columns), table_name)


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    settings = load_settings(workspace=tmp_path / "ws")
    settings = settings.model_copy(
        update={
            "refresh": settings.refresh.model_copy(update={"top_n": 2}),
            "ranking": settings.ranking.model_copy(update={"max_lists_per_firm": 1}),
        }
    )
    nodes = nodes_frame(load_chains(settings))
    a, b = nodes["node_id"].iloc[0], nodes["node_id"].iloc[1]
    ids = ["SIGNED", "ENDED", "STAR", "F1", "F2", "LOW", "LOCAL"]
    tables = {t: empty_table(t) for t in TABLES}
    tables["enterprises"] = table("enterprises", enterprise_id=ids, name=[f"{i}公司" for i in ids], province="江苏省")
    tables["presence"] = table("presence", enterprise_id=["LOCAL"], node_id=[nodes["node_id"].iloc[5]], year=[2026])
    tables["outcomes"] = table(
        "outcomes",
        outcome_id=["O1", "O2", "O3"],
        enterprise_id=["SIGNED", "ENDED", "F1"],
        node_id=[a, a, b],
        stage=["签约", "终止", "洽谈"],
        date=pd.to_datetime(["2025-01-02", "2025-09-01", "2026-03-01"]),
        note=[None, "对方暂缓投资", "对方有意来汉考察"],
    )
    rows = [(a, "SIGNED", 9.0, 0.9), (a, "ENDED", 8.0, 0.9), (a, "STAR", 7.0, 0.8), (a, "LOW", 99.0, 0.1)]
    rows += [(a, "F1", 1.0, 0.9), (a, "F2", 0.5, 0.9), (a, "LOCAL", 3.0, 0.9)]
    rows += [(b, "STAR", 7.0, 0.95), (b, "F1", 2.0, 0.9)]
    scored = pd.DataFrame(rows, columns=["node_id", "enterprise_id", "score", "fit"]).assign(sources="dense")
    map_df = nodes[nodes["node_id"].isin([a, b])][["chain_id", "node_id", "name"]].assign(colour="red", priority=0.5)
    staging = tmp_path / "staging"
    staging.mkdir()
    c = RunContext(settings, Workspace(settings.workspace).ensure(), AS_OF, "2026-06-30", staging, LocalExecutor())
    c.cache.update(tables=tables, nodes=nodes, map=map_df.reset_index(drop=True), scored=scored)
    return c


def test_paths_step_publishes_fitting_capped_targets_local_extension_and_exclusions(ctx: RunContext) -> None:
    nodes = ctx.cache["nodes"]
    a, b = nodes["node_id"].iloc[0], nodes["node_id"].iloc[1]
    res = steps.step_paths(ctx)
    assert res.outputs == (
        "targets.parquet", "local_extension.parquet", "excluded.parquet", "lists.parquet", "near_fit.parquet"
    )  # fmt: skip
    targets = pd.read_parquet(ctx.staging / "targets.parquet").sort_values(["node_id", "rank"])
    got = {(r.node_id, r.rank, r.enterprise_id, r.n_fit, r.also_fits) for r in targets.itertuples()}
    # cap 1: STAR stays where it fits best (b); F1 fits both alike and scores higher at b; a refills from F2
    assert got == {(a, 1, "F2", 3, ""), (b, 1, "STAR", 2, a), (b, 2, "F1", 2, a)}
    assert targets.groupby("enterprise_id").size().max() == 1
    local = pd.read_parquet(ctx.staging / "local_extension.parquet")
    assert local[["node_id", "enterprise_id", "rank", "zone_nodes"]].values.tolist() == [
        [a, "LOCAL", 1, nodes["node_id"].iloc[5]]
    ]
    excluded = pd.read_parquet(ctx.staging / "excluded.parquet")
    assert excluded[["enterprise_id", "reason_code", "reason"]].values.tolist() == [
        ["SIGNED", "signed", "已于2025-01-02签约，不再作为本节点目标"],
        ["ENDED", "terminated", "2025-09-01终止（终止原因：对方暂缓投资），24个月内不再推荐"],
    ]
    assert excluded["name"].tolist() == ["SIGNED公司", "ENDED公司"]
    counts = res.info["counts"]
    assert {k: counts[k] for k in ("targets", "local_extension", "excluded_signed", "excluded_terminated")} == {
        "targets": 3,
        "local_extension": 1,
        "excluded_signed": 1,
        "excluded_terminated": 1,
    }
    assert (counts["below_fit"], counts["capped"]) == (1, 2)  # LOW; STAR and F1 at a
    near = pd.read_parquet(ctx.staging / "near_fit.parquet")  # LOW (fit 0.1) is to be checked, never listed
    assert near[["node_id", "near_rank", "enterprise_id", "name"]].values.tolist() == [[a, 1, "LOW", "LOW公司"]]
    assert (counts["near_fit"], counts["near_fit_shown"]) == (1, 1)
    assert res.info["lists"]["firms_per_100_places"] == 100.0
    assert res.info["lists"]["mean_jaccard_top20"] == 0.0
    f1 = targets[targets["enterprise_id"] == "F1"].iloc[0]
    assert "历次接洽：本节点〈" in f1["reasons"] and "2026-03-01 洽谈（备注：对方有意来汉考察）" in f1["reasons"]


def test_export_step_writes_the_local_extension_and_excluded_sheets(ctx: RunContext) -> None:
    steps.step_paths(ctx)
    steps.step_diff(ctx)
    steps.step_export(ctx)
    book = read_workbook(ctx.staging / "workbook.xlsx")
    assert {"本地延链", "排除名单", "待核实"} <= set(book)
    check = book["待核实"]
    assert check["企业名称"].tolist() == ["LOW公司"]
    assert list(check.columns)[-4:] == ["核实结果", "核实人", "核实日期", "备注"]  # for the analyst to fill in
    assert check["说明"].tolist() == [
        "匹配度10%，低于阈值50%，未列入名单：请核实其是否生产本节点产品，在「核实结果」填 是 / 否"
    ]
    ex = book["排除名单"]
    assert ex["排除原因"].tolist() == [
        "已于2025-01-02签约，不再作为本节点目标",
        "2025-09-01终止（终止原因：对方暂缓投资），24个月内不再推荐",
    ]
    assert ex["日期"].tolist() == ["2025-01-02", "2025-09-01"]
    local = book["本地延链"]
    assert local["企业名称"].tolist() == ["LOCAL公司"]
    assert local["已在园区节点"].tolist() == [ctx.cache["nodes"]["node_id"].iloc[5]]  # not on the map: its id


def test_score_step_fit_is_the_fit_model_of_the_settings(ctx: RunContext) -> None:
    from recommender.retrieval.fit import FIT_MODEL_FILE, FitModel, fit_scores
    from recommender.settings import load_fit_model

    scored = ctx.cache["scored"].drop(columns="fit").assign(words_rank=[1.0, 2, 3, 4, 5, 6, 7, 1, 2])
    got = steps.pair_fit(ctx, scored)
    model = load_fit_model(ctx.settings)
    want = fit_scores(scored, ctx.cache["nodes"], ctx.cache["tables"]["enterprises"], model)
    pd.testing.assert_series_equal(got, want)
    assert ((got >= 0) & (got <= 1)).all()
    assert steps.fit_source(ctx).startswith("configs/fit_model.yaml@")
    assert ctx.cache["fit_model_info"]["why"] == "ranking.fit_refit is off"
    s = ctx.settings
    ctx.settings = s.model_copy(update={"ranking": s.ranking.model_copy(update={"fit_refit": True})})
    assert steps.fit_source(ctx).endswith(f"refit ≥ {ctx.settings.ranking.fit_refit_min_pairs}")
    pd.testing.assert_series_equal(steps.pair_fit(ctx, scored), want)
    info = ctx.cache["fit_model_info"]  # the toy universe has no codes: the configured model, and why
    assert (info["model"], info["n_agree"], info["n_disagree"]) == ("default", 0, 0)
    written = FitModel.from_dict(json.loads((ctx.staging / FIT_MODEL_FILE).read_text(encoding="utf-8")))
    assert written.to_dict() == model.to_dict()  # the run holds the model it used (the live fit reads it)


def test_a_missing_fit_model_is_bad_input_naming_the_file(ctx: RunContext, tmp_path: Path) -> None:
    from recommender.refresh.context import InputError

    missing = tmp_path / "nope.yaml"
    s = ctx.settings
    ctx.settings = s.model_copy(update={"ranking": s.ranking.model_copy(update={"fit_model": str(missing)})})
    with pytest.raises(InputError, match=f"config file {missing} does not exist"):
        steps.pair_fit(ctx, ctx.cache["scored"])


def test_paths_step_on_a_run_scored_before_the_fit_column_declares_the_fit_model_it_wrote(ctx: RunContext) -> None:
    from recommender.retrieval.fit import FIT_MODEL_FILE

    assert FIT_MODEL_FILE not in steps.step_paths(ctx).outputs  # scored with fit: the score step owns the file
    ctx.cache["scored"] = ctx.cache["scored"].drop(columns="fit")  # as an older run's scored.parquet
    outputs = steps.step_paths(ctx).outputs
    assert FIT_MODEL_FILE in outputs and (ctx.staging / FIT_MODEL_FILE).is_file()


def test_the_analysts_checks_decide_the_pairs_in_the_refresh(ctx: RunContext) -> None:
    a = ctx.cache["nodes"]["node_id"].iloc[0]
    ctx.cache["tables"]["fit_marks"] = table(
        "fit_marks", node_id=[a, a], enterprise_id=["LOW", "F2"], fits=[True, False], marked_by=["张三", "李四"],
        date=pd.to_datetime(["2026-06-01", "2026-06-02"]),
    )  # fmt: skip
    ctx.cache["scored"] = steps.marked_fit(ctx, ctx.cache["scored"])
    assert ctx.cache["fit_marks_info"] == {"applied": 2, "not_candidates": 0}
    res = steps.step_paths(ctx)
    targets = pd.read_parquet(ctx.staging / "targets.parquet")
    assert targets[targets["node_id"] == a]["enterprise_id"].tolist() == ["LOW"]  # fit 0.1, checked 是; F2 checked 否
    first = json.loads(targets[targets["node_id"] == a]["reasons"].iloc[0])[0]
    assert (first["group"], first["text"]) == ("fit_check", "经核实生产本节点产品（核实人 张三，2026-06-01）")
    excluded = pd.read_parquet(ctx.staging / "excluded.parquet")
    marked = excluded[excluded["reason_code"] == "marked_not_fit"]
    assert marked[["enterprise_id", "reason"]].values.tolist() == [
        ["F2", "经核实不生产本节点产品（核实人 李四，2026-06-02）"]
    ]
    assert res.info["counts"]["near_fit"] == 0  # LOW is listed now, not to check
