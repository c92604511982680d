"""``sansetu demo``: the newcomer's first run on the bundled sample zone.

sample → ingest (the raw files, as a user would import them) → three-colour map → train, evaluate
and promote the ranker → refresh (retrieve, score, paths, publish) → the top targets of the zone's
most important red node. Everything lands in the workspace; the command says where.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

import typer

from recommender.cli.common import ConfigOpt, WorkspaceOpt, app, settings_from
from recommender.cli.sample import ProcessOpt
from recommender.sample.catalog import DEFAULT_PROCESS
from recommender.workspace import Workspace

if TYPE_CHECKING:
    from recommender.sample.process import ProcessConfig
    from recommender.settings import Settings

T = TypeVar("T")


def _step(n: int, total: int, title: str, fn: Callable[[], T]) -> T:
    from rich.console import Console

    console = Console(stderr=True)
    started = time.perf_counter()
    with console.status(f"[bold]{n}/{total}[/bold] {title} …"):
        result = fn()
    console.print(f"[green]✓[/green] {n}/{total} {title}  [dim]({time.perf_counter() - started:.1f}s)[/dim]")
    return result


@dataclass(frozen=True)
class DemoRun:
    """What the demo did, for its summary."""

    as_of: date
    sample_dir: Path
    reports: list[Any]
    colour_map: Any
    result: Any
    decision: Any
    run_dir: Path | None


@app.command("demo")
def demo(
    enterprises: Annotated[
        int, typer.Option("--enterprises", "-n", min=200, help="Enterprises in the sample universe.")
    ] = 2000,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Sample seed (default: random_state of the config).", show_default=False),
    ] = None,
    process: ProcessOpt = DEFAULT_PROCESS,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run the whole engine on a generated sample zone and show what it found."""
    from recommender.sample.process import load_process
    from recommender.settings import ConfigError

    settings = settings_from(workspace, config)
    try:
        process_cfg = load_process(process)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    t0 = time.perf_counter()
    run = _run_demo(settings, enterprises, settings.random_state if seed is None else seed, process_cfg)
    _print_summary(settings, run)
    if run.run_dir is None:
        typer.echo("刷新未发布名单，请查看日志。", err=True)
        raise typer.Exit(code=1)
    _print_outputs(settings, run, time.perf_counter() - t0)


def _run_demo(settings: Settings, enterprises: int, random_state: int, process: ProcessConfig) -> DemoRun:
    """The six steps, each shown with its duration: sample, ingest, map, train, refresh, summary."""
    from recommender.colour_map.history import update_map
    from recommender.ranking.jobs import train_from_workspace
    from recommender.refresh.pipeline import run_refresh
    from recommender.runs.directory import published_dir
    from recommender.sample.generate import generate_sample
    from recommender.sample.write import write_sample
    from recommender.settings import load_chains

    ws = Workspace(Path(settings.workspace)).ensure()
    chains = load_chains(settings)
    sample_dir = ws.root / "sample"
    total = 6
    data = _step(
        1,
        total,
        f"生成示例园区（{enterprises}家企业，种子{random_state}，过程 {process.name}）",
        lambda: generate_sample(chains, enterprises, random_state, process=process),
    )
    write_sample(data, sample_dir)
    as_of = date.fromisoformat(str(data.manifest["as_of"]))
    reports = _step(
        2, total, "导入原始文件（校验、清洗、问题行另存）", lambda: _ingest_sample(settings, ws, sample_dir)
    )
    colour_run = _step(
        3, total, "计算三色图", lambda: update_map(ws, chains, settings.map, zone_name=settings.zone_name)
    )
    result, decision = _step(
        4, total, "嵌入企业画像（首次需转换 e5 模型，约数分钟）并训练签约模型（四个模型族，验证期择优，MLflow 登记）",
        lambda: train_from_workspace(settings, promote_if_better=True, oracle_path=sample_dir / "oracle.parquet"),
    )  # fmt: skip
    _step(5, total, "刷新招商名单（召回、排序、路径、发布）", lambda: run_refresh(settings, as_of))
    run_dir = published_dir(ws.root)
    _step(6, total, "汇总", lambda: None)
    return DemoRun(as_of, sample_dir, reports, colour_run, result, decision, run_dir)


def _ingest_sample(settings: Settings, ws: Workspace, sample_dir: Path) -> list[Any]:
    from features.io import ingest_file
    from recommender.sample.write import INGEST_ORDER

    options = settings.ingest_options()
    return [
        ingest_file(sample_dir / fname, table, None, ws.snapshots, ws.rejects, **options)
        for table, fname in INGEST_ORDER
    ]


def _print_summary(settings: Settings, run: DemoRun) -> None:
    from training.train import promotion_k

    typer.echo("")
    typer.echo(f"示例园区：{settings.zone_name}，数据截至 {run.as_of}")
    for r in run.reports:
        d = r.to_dict()
        typer.echo(f"  导入 {d['table']:<12} {d['n_ok']:>7,} 行有效，{d['n_rejected']:>4,} 行进入问题清单")
    counts = run.colour_map.map["colour"].value_counts()
    typer.echo(
        f"三色图：{len(run.colour_map.map)} 个节点 · 红色（缺失）{counts.get('red', 0)} · 蓝色（薄弱）{counts.get('blue', 0)}"
        f" · 绿色（优势）{counts.get('green', 0)}"
    )
    _print_evaluation(run.result.metrics)
    decision = run.decision
    typer.echo(family_line(run.result.validation, run.result.family, promotion_k(settings.training)))
    typer.echo(f"  （{FAMILY_NOTE}）")
    status = "已提升为 champion" if decision.promoted else "未提升（沿用现有 champion）"
    typer.echo(
        f"模型：sansetu-ranker 第{decision.version}版，验证期 {decision.metric} = {decision.challenger_value:.3f}，"
        f"{status}；{decision.reason}"
    )


def _print_outputs(settings: Settings, run: DemoRun, seconds: float) -> None:
    import pandas as pd

    assert run.run_dir is not None
    ws = Workspace(Path(settings.workspace))
    targets = pd.read_parquet(run.run_dir / "targets.parquet")
    map_df = pd.read_parquet(run.run_dir / "map.parquet")
    node_id = _print_top_red(map_df, targets)
    lists = run.run_dir / "lists.parquet"
    if node_id is not None and lists.is_file():
        counts = pd.read_parquet(lists).set_index("node_id")
        near = int(counts["n_near_fit"].get(node_id, 0)) if "n_near_fit" in counts else 0
        if near:
            r = settings.ranking
            shown = min(near, r.near_fit_per_node)
            typer.echo(f"另有 {near} 家企业匹配度在 {r.near_fit_min:.0%}–{r.fit_threshold:.0%} 之间，未列入名单；"
                       f"其中最接近阈值的 {shown} 家见 workbook.xlsx「待核实」，可填写「核实结果」后导入")  # fmt: skip
    from recommender.runs.directory import read_manifest

    fm = read_manifest(run.run_dir).get("fit_model") or {}
    if fm.get("model") == "refit":
        typer.echo(
            f"匹配度模型：以本区企业的行业代码为弱标签重新拟合（代码一致 {fm['n_agree']:,} 对，不一致 {fm['n_disagree']:,} 对）"
        )
    typer.echo("")
    typer.echo(f"完成，用时 {seconds:.0f} 秒。输出位置：")
    typer.echo(f"  原始示例文件    {run.sample_dir}")
    typer.echo(
        f"  已发布名单      {run.run_dir}（targets.parquet、targets/*.csv、workbook.xlsx：名单、本地延链、排除名单、待核实）"
    )
    typer.echo(f"  产业链三色图    {ws.maps / 'index.html'}")
    typer.echo(f"  模型与实验      {ws.mlflow_uri()}")
    typer.echo(
        "下一步：sansetu tokens create --role analyst --name 我  然后  sansetu serve  （浏览器打开 http://127.0.0.1:8000）"
    )


SYSTEM_NAMES: Final = {
    "ranker": "本次模型", "binary_ipw": "二分类·加权", "binary": "二分类", "logistic": "逻辑回归·加权",
    "lambdarank": "lambdarank", "similarity": "仅相似度", "heuristic": "人工加权", "random": "随机",
    "oracle": "真实概率(示例)",
}  # fmt: skip
FAMILY_NOTE: Final = "二分类 = LightGBM 二分类；加权 = 按接洽倾向的逆概率加权；lambdarank = LightGBM 排序模型"


def _print_evaluation(metrics: dict[str, dict[str, float]], k: int = 20) -> None:
    """Test periods: expected signings in the top k of each node's fit-gated list, estimated from the
    logs (and, on the sample zone, from the generator's truth), per system."""
    from rich.console import Console
    from rich.table import Table

    cols = {f"ope_signings@{k}": f"前{k}家（估计）", f"signings@{k}": f"前{k}家（真实）",
            "signings@5": "前5家（真实）", f"places@{k}": "名单长度", "ndcg@20": "ndcg@20"}  # fmt: skip
    table = Table(
        title="测试期评估：每个节点名单的预期签约数（按时间切分，越高越好；名单短于20家时前20家相同，看前5家）"
    )
    table.add_column("方法")
    for label in cols.values():
        table.add_column(label, justify="right")
    for system, m in metrics.items():
        table.add_row(SYSTEM_NAMES.get(system, system), *[f"{m.get(c, float('nan')):.3f}" for c in cols])
    Console().print(table)


def family_line(validation: dict[str, dict[str, float]], family: str, k: int = 20) -> str:
    """Which family won the gate on the validation periods, and by how much over the runner-up, at the
    first cut-off where they differ (``training.train.beats``: lists shorter than k tie at k)."""
    from training.train import beats, gate_key, judged_ks

    name = SYSTEM_NAMES.get(family, family)
    won = gate_key(validation[family], k)
    others = [f for f in validation if f != family]
    if not others:
        return f"模型族：{name} 胜出（验证期 ope_signings@{k} = {won[0]:.3f}，无其他模型族）"
    second = others[0]
    for f in others[1:]:
        if beats(gate_key(validation[f], k), gate_key(validation[second], k)):
            second = f
    lost = gate_key(validation[second], k)
    cut = next((i for i, (a, b) in enumerate(zip(won, lost, strict=True)) if beats((a,), (b,))), 0)
    a, b, at = won[cut], lost[cut], judged_ks(k)[cut]
    gain = f"为其 {a / b:.3f} 倍" if b > 0 else f"高 {a - b:.3f}"
    tie = f"（前{k}家打平，按前{at}家比较）" if cut else ""
    return (f"模型族：{name} 胜出：验证期预期签约 ope_signings@{at} = {a:.3f}，"
            f"次优 {SYSTEM_NAMES.get(second, second)} {b:.3f}，{gain}{tie}")  # fmt: skip


def _print_top_red(map_df: Any, targets: Any) -> str | None:
    """The first red node's list as a table; its node id (None when there is none)."""
    from rich.console import Console
    from rich.table import Table

    red = map_df[map_df["colour"] == "red"]
    if red.empty or targets.empty:
        typer.echo("没有红色节点或名单为空。")
        return None
    order = "priority" if "priority" in red and red["priority"].notna().any() else "gap"
    node = red.sort_values(order, ascending=False).iloc[0]
    top = targets[targets["node_id"] == node["node_id"]].sort_values("rank").head(10)
    n_fit = int(top["n_fit"].iloc[0]) if "n_fit" in top and len(top) else len(top)
    title = f"最重要的红色节点：{node['name']}（{node['node_id']}）— {node['reason']}；本节点匹配企业 {n_fit} 家"
    table = Table(title=title, show_lines=True)
    for c in ("名次", "企业", "签约概率", "理由", "招商路径"):
        table.add_column(c, overflow="fold")
    import json

    for _, t in top.iterrows():
        reasons = json.loads(t["reasons"]) if isinstance(t.get("reasons"), str) else []
        routes = json.loads(t["routes"]) if isinstance(t.get("routes"), str) else []
        table.add_row(
            str(t["rank"]),
            str(t["name"]),
            f"{100 * t['score']:.1f}%",
            "；".join((r.get("text", "") if isinstance(r, dict) else str(r)) for r in reasons[:3]),
            (routes[0].get("theme", "") + "：" + routes[0].get("sentence", "")) if routes else "暂无现成路径",
        )
    Console(width=160).print(table)
    return str(node["node_id"])
