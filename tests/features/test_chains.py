"""Chain validation (features/chains.py) and the 11 bundled Optics Valley chains."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from features.chains import Chain, edges_frame, nodes_frame, validate_chains
from recommender.settings import ConfigError, Settings, load_chains, load_settings

# GB/T 4754-2017 class codes used by the bundled chains, with their official names. A code that is
# not here is either a typo or needs checking against the standard before it is added.
GBT_4754_2017 = {
    "1495": "食品及饲料添加剂制造",
    "2613": "无机盐制造",
    "2614": "有机化学原料制造",
    "2619": "其他基础化学原料制造",
    "2659": "其他合成材料制造",
    "2661": "化学试剂和助剂制造",
    "2682": "化妆品制造",
    "2710": "化学药品原料药制造",
    "2720": "化学药品制剂制造",
    "2730": "中药饮片加工",
    "2740": "中成药生产",
    "2761": "生物药品制造",
    "2762": "基因工程药物和疫苗制造",
    "2770": "卫生材料及医药用品制造",
    "2780": "药用辅料及包装材料制造",
    "2921": "塑料薄膜制造",
    "3042": "特种玻璃制造",
    "3051": "技术玻璃制品制造",
    "3052": "光学玻璃制造",
    "3073": "特种陶瓷制品制造",
    "3239": "其他稀有金属冶炼",
    "3254": "稀有稀土金属压延加工",
    "3421": "金属切削机床制造",
    "3424": "金属切割及焊接设备制造",
    "3442": "气体压缩机械制造",
    "3493": "增材制造装备制造",
    "3544": "制药专用设备制造",
    "3562": "半导体器件专用设备制造",
    "3569": "其他电子专用设备制造",
    "3581": "医疗诊断、监护及治疗设备制造",
    "3582": "口腔科用设备及器具制造",
    "3583": "医疗实验室及医用消毒设备和器具制造",
    "3584": "医疗、外科及兽医用器械制造",
    "3585": "机械治疗及病房护理设备制造",
    "3586": "康复辅具制造",
    "3589": "其他医疗设备及器械制造",
    "3596": "交通安全、管制及类似专用设备制造",
    "3612": "新能源车整车制造",
    "3670": "汽车零部件及配件制造",
    "3742": "航天器及运载火箭制造",
    "3743": "航天相关设备制造",
    "3744": "航空相关设备制造",
    "3812": "电动机制造",
    "3821": "变压器、整流器和电感器制造",
    "3823": "配电开关控制设备制造",
    "3824": "电力电子元器件制造",
    "3825": "光伏设备及元器件制造",
    "3829": "其他输配电及控制设备制造",
    "3832": "光纤制造",
    "3833": "光缆制造",
    "3841": "锂离子电池制造",
    "3849": "其他电池制造",
    "3911": "计算机整机制造",
    "3912": "计算机零部件制造",
    "3913": "计算机外围设备制造",
    "3914": "工业控制计算机及系统制造",
    "3915": "信息安全设备制造",
    "3919": "其他计算机制造",
    "3921": "通信系统设备制造",
    "3922": "通信终端设备制造",
    "3939": "应用电视设备及其他广播电视设备制造",
    "3940": "雷达及配套设备制造",
    "3951": "电视机制造",
    "3961": "可穿戴智能设备制造",
    "3962": "智能车载设备制造",
    "3963": "智能无人飞行器制造",
    "3964": "服务消费机器人制造",
    "3969": "其他智能消费设备制造",
    "3971": "电子真空器件制造",
    "3972": "半导体分立器件制造",
    "3973": "集成电路制造",
    "3974": "显示器件制造",
    "3975": "半导体照明器件制造",
    "3976": "光电子器件制造",
    "3979": "其他电子器件制造",
    "3983": "敏感元件及传感器制造",
    "3985": "电子专用材料制造",
    "4011": "工业自动控制系统装置制造",
    "4013": "绘图、计算及测量仪器制造",
    "4014": "实验分析仪器制造",
    "4023": "导航、测绘、气象及海洋专用仪器制造",
    "4028": "电子测量仪器制造",
    "4040": "光学仪器制造",
    "4090": "其他仪器仪表制造业",
    "4851": "架线及设备工程建筑",
    "5151": "西药批发",
    "5154": "医疗用品及器材批发",
    "5251": "西药零售",
    "5254": "医疗用品及器材零售",
    "5413": "出租车客运",
    "6319": "其他电信服务",
    "6331": "广播电视卫星传输服务",
    "6339": "其他卫星传输服务",
    "6422": "互联网游戏服务",
    "6432": "互联网生活服务平台",
    "6440": "互联网安全服务",
    "6450": "互联网数据服务",
    "6511": "基础软件开发",
    "6512": "支撑软件开发",
    "6513": "应用软件开发",
    "6519": "其他软件开发",
    "6520": "集成电路设计",
    "6531": "信息系统集成服务",
    "6532": "物联网技术服务",
    "6540": "运行维护服务",
    "6550": "信息处理和存储支持服务",
    "6571": "地理遥感信息服务",
    "6572": "动漫、游戏数字内容服务",
    "7340": "医学研究和试验发展",
    "7441": "遥感测绘服务",
    "7452": "检测服务",
    "7512": "生物技术推广服务",
    "7517": "三维（3D)打印技术推广服务",
    "8111": "汽车修理与维护",
    "8415": "专科医院",
    "8491": "健康体检服务",
    "8492": "临床检验服务",
    "8499": "其他未列明卫生服务",
}


def _node(slug: str, stage: str, downstream: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "id": f"demo.{slug}",
        "name": f"节点{slug}",
        "stage": stage,
        "description": "生产测试用的产品与服务。",
        "industry_codes": ["3976"],
        "downstream": [f"demo.{d}" for d in (downstream or [])],
        **kw,
    }


def _chain() -> dict[str, Any]:
    """A valid 8-node chain: u1, u2 -> m1 -> m2 -> d1..d4 (plus u3 -> m1)."""
    return {
        "id": "demo",
        "name": "演示链",
        "nodes": [
            _node("u1", "upstream", ["m1"]),
            _node("u2", "upstream", ["m1"]),
            _node("u3", "upstream", ["m1"]),
            _node("m1", "midstream", ["m2"]),
            _node("m2", "midstream", ["d1", "d2"]),
            _node("d1", "downstream"),
            _node("d2", "downstream", ["d3"]),
            _node("d3", "downstream"),
        ],
    }


def _first_error(raw: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as exc:
        Chain.model_validate(raw)
    return str(exc.value.errors()[0]["msg"])


def test_chain_accepts_valid_chain() -> None:
    chain = Chain.model_validate(_chain())
    assert [n.id for n in chain.nodes][:2] == ["demo.u1", "demo.u2"]
    assert edges_frame([chain]).shape == (7, 3)


def test_chain_rejects_duplicate_node_ids() -> None:
    raw = _chain()
    raw["nodes"][1]["id"] = "demo.u1"
    assert _first_error(raw) == "Value error, chain 'demo' has duplicate node ids ['demo.u1']"


def test_chain_rejects_unknown_downstream_node() -> None:
    raw = _chain()
    raw["nodes"][5]["downstream"] = ["demo.nowhere"]
    known = sorted(n["id"] for n in raw["nodes"])
    assert _first_error(raw) == (
        f"Value error, node 'demo.d1' of chain 'demo' has downstream edges to unknown nodes ['demo.nowhere']; "
        f"known nodes are {known}"
    )


def test_chain_rejects_cycle() -> None:
    raw = _chain()
    raw["nodes"][7]["downstream"] = ["demo.m1"]  # d3 -> m1 -> m2 -> d2 -> d3
    assert (
        _first_error(raw)
        == "Value error, chain 'demo' has a cycle: demo.d2 -> demo.d3 -> demo.m1 -> demo.m2 -> demo.d2"
    )


def test_chain_rejects_missing_stage() -> None:
    raw = _chain()
    for n in raw["nodes"]:
        if n["stage"] == "midstream":
            n["stage"] = "upstream"
    assert _first_error(raw) == "Value error, chain 'demo' has no nodes at stage(s) ['midstream']"


@pytest.mark.parametrize("code", ["39761", "C3976", "397"])
def test_chain_rejects_bad_industry_code(code: str) -> None:
    raw = _chain()
    raw["nodes"][0]["industry_codes"] = ["3976", code]
    assert (
        _first_error(raw) == f"Value error, industry_codes must be 4-digit GB/T 4754-2017 class codes; got ['{code}']"
    )


def test_chain_rejects_too_few_nodes() -> None:
    raw = _chain()
    raw["nodes"] = raw["nodes"][:7]
    assert _first_error(raw) == "List should have at least 8 items after validation, not 7"


def test_chain_rejects_too_many_nodes() -> None:
    raw = _chain()
    extra = [_node(f"x{i}", "downstream") for i in range(13)]
    raw["nodes"] = raw["nodes"] + extra
    assert _first_error(raw) == "List should have at most 20 items after validation, not 21"


def test_chain_rejects_node_id_outside_chain_prefix() -> None:
    raw = _chain()
    raw["nodes"][0]["id"] = "other.u1"
    raw["nodes"][3]["downstream"] = ["demo.m2"]
    assert _first_error(raw) == "Value error, node ids of chain 'demo' must start with 'demo.'; got ['other.u1']"


def test_validate_chains_rejects_duplicate_chain_id() -> None:
    with pytest.raises(ValueError, match=re.escape("duplicate chain id 'demo'")):
        validate_chains([_chain(), copy.deepcopy(_chain())])


def test_load_chains_names_the_folder_on_error(tmp_path: Path) -> None:
    for i in (1, 2):
        (tmp_path / f"0{i}.yaml").write_text(yaml.safe_dump(_chain(), allow_unicode=True), encoding="utf-8")
    settings = Settings(chains_dir=str(tmp_path))
    with pytest.raises(ConfigError) as exc:
        load_chains(settings)
    assert str(exc.value) == f"chains in {tmp_path}: duplicate chain id 'demo'"


# ---------------------------------------------------------------- the bundled chains
@pytest.fixture(scope="module")
def bundled() -> list[Chain]:
    return load_chains(load_settings())


def test_bundled_chains_are_the_eleven_key_chains(bundled: list[Chain]) -> None:
    assert [(c.id, c.name) for c in bundled] == [
        ("optical_comm", "光通信"),
        ("laser", "激光"),
        ("ic_memory", "集成电路与存储器"),
        ("display", "新型显示"),
        ("compound_semi", "化合物半导体"),
        ("beidou_space", "北斗与空天信息"),
        ("biomed", "生物医药"),
        ("med_device", "高端医疗器械"),
        ("icv", "智能网联汽车"),
        ("ai_software", "人工智能与软件"),
        ("future", "未来产业"),
    ]
    assert all(8 <= len(c.nodes) <= 20 for c in bundled)


def test_bundled_optical_comm_ids_are_stable(bundled: list[Chain]) -> None:
    assert [n.id.split(".")[1] for n in bundled[0].nodes] == [
        "preform",
        "optical_materials",
        "optical_chip",
        "electrical_chip",
        "fiber_cable",
        "special_fiber",
        "optical_device",
        "optical_module",
        "network_equipment",
        "fttx",
        "datacenter",
    ]


def test_bundled_chains_cover_required_nodes(bundled: list[Chain]) -> None:
    names = {c.id: {n.name for n in c.nodes} for c in bundled}
    assert {"算力", "大模型", "算法", "云计算中间件", "行业应用"} <= names["ai_software"]
    assert {"光纤预制棒", "光纤光缆", "光芯片", "光器件", "光模块", "通信设备"} <= names["optical_comm"]
    future = " ".join(names["future"])
    assert all(w in future for w in ("合成生物", "量子", "脑机接口"))


def test_bundled_chain_nodes_are_complete(bundled: list[Chain]) -> None:
    frame = nodes_frame(bundled)
    assert frame["node_id"].is_unique
    assert (frame["description"].str.len() >= 10).all()
    assert (frame["products"].map(len) >= 2).all()
    assert (frame["keywords"].map(len) >= 3).all()
    unknown = sorted({c for codes in frame["industry_codes"] for c in codes} - set(GBT_4754_2017))
    assert unknown == []
    assert (frame["industry_codes"].map(len) >= 1).all()


def test_bundled_chain_edges_run_upstream_to_downstream(bundled: list[Chain]) -> None:
    frame = nodes_frame(bundled)
    order = {"upstream": 0, "midstream": 1, "downstream": 2}
    stage = dict(zip(frame["node_id"], frame["stage"].map(order), strict=True))
    edges = edges_frame(bundled)
    backwards = edges[[stage[a] > stage[b] for a, b in zip(edges["src_node"], edges["dst_node"], strict=True)]]
    assert backwards.empty
    touched = set(edges["src_node"]) | set(edges["dst_node"])
    assert set(frame["node_id"]) == touched  # no isolated node
