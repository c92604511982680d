"""Tests of the sample's outcome processes (configs/processes, recommender/sample/process.py) and of its truth
(recommender/sample/truth.py): the default process pinned to the sample before processes existed, the schema's
errors, a usable zone under every process, and P(签约 | approached) against the logged history and the oracle."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from features.chains import Chain, validate_chains
from recommender.sample.catalog import PROCESSES_DIR, available_processes
from recommender.sample.generate import SampleData, generate_sample
from recommender.sample.process import ProcessConfig, load_process, parse_process
from recommender.sample.truth import SigningTruth, load_truth
from recommender.sample.write import write_sample
from recommender.settings import ConfigError
from tests.recommender.sample.test_generate import make_chain

N = 600
AS_OF = date(2026, 6, 30)
PROCESSES = ("default", "frictions", "momentum", "prestige")
# sha256 over the csv of every table and the oracle, from the generator as it was before processes were
# configurable (commit b224717's parent tree, recommender/sample/generate.py), for these chains, N and seeds
PINNED = {
    (600, 42): "a1424b5171ab1fd372b2fc79a8079321fd36c853e0b234865f20c777dd7a03ea",
    (900, 7): "e6d11182811c916efe0887997f89e81bcc339ced94a221cca8fa579b59aacfd8",
}


@pytest.fixture(scope="module")
def chains() -> list[Chain]:
    return validate_chains([make_chain("optic", "光通信"), make_chain("bio", "生物医药", 9)])


@pytest.fixture(scope="module")
def samples(chains: list[Chain]) -> dict[str, SampleData]:
    return {name: generate_sample(chains, N, random_state=42, process=name) for name in PROCESSES}


def _tables_sha256(sample: SampleData) -> str:
    h = hashlib.sha256()
    for name, df in [*sample.tables().items(), ("oracle", sample.oracle)]:
        body = df.to_csv(index=False, lineterminator="\n").encode("utf-8")
        h.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- the processes
@pytest.mark.parametrize(("n", "seed"), sorted(PINNED))
def test_default_process_gives_the_sample_of_before_processes(chains: list[Chain], n: int, seed: int) -> None:
    assert _tables_sha256(generate_sample(chains, n, random_state=seed)) == PINNED[(n, seed)]
    assert _tables_sha256(generate_sample(chains, n, random_state=seed, process="default")) == PINNED[(n, seed)]


def test_available_processes_lists_the_bundled_files_default_first() -> None:
    assert available_processes() == list(PROCESSES)
    assert sorted(p.name for p in PROCESSES_DIR.iterdir()) == sorted(f"{n}.yaml" for n in PROCESSES)


def test_every_process_loads_and_has_its_own_fingerprint() -> None:
    configs = [load_process(name) for name in PROCESSES]
    assert [c.name for c in configs] == list(PROCESSES)
    assert len({c.sha256() for c in configs}) == len(PROCESSES)
    assert load_process(PROCESSES_DIR / "momentum.yaml") == configs[2]


@pytest.mark.parametrize("name", PROCESSES[1:])
def test_other_processes_differ_in_drivers_policy_and_relevant_share(name: str) -> None:
    default, cfg = load_process("default"), load_process(name)
    terms = cfg.propensity.terms
    assert cfg.propensity.latent.sd > 0 or any(f.attribute == "latent" for t in terms for f in t.factors)
    assert any(len(t.factors) >= 2 for t in terms), "an interaction"
    assert any(f.above is not None or f.below is not None for t in terms for f in t.factors), "a threshold"
    assert cfg.policy != default.policy
    assert cfg.policy.approaches_per_target_node_per_quarter != default.policy.approaches_per_target_node_per_quarter
    assert cfg.universe.distractor_share != default.universe.distractor_share


def _write(tmp_path: Path, data: dict[str, object], name: str = "world") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _default_data() -> dict[str, object]:
    data = yaml.safe_load((PROCESSES_DIR / "default.yaml").read_text(encoding="utf-8"))
    data["name"] = "world"
    return data


def test_load_process_reads_a_file_by_path(tmp_path: Path, chains: list[Chain], samples: dict[str, SampleData]) -> None:
    path = _write(tmp_path, _default_data())
    cfg = load_process(path)
    assert cfg.name == "world" and cfg.propensity == load_process("default").propensity
    other = generate_sample(chains, N, random_state=42, process=path)
    pd.testing.assert_frame_equal(other.outcomes, samples["default"].outcomes)
    assert other.manifest["process"]["name"] == "world"


def test_load_process_names_the_bundled_ones_for_an_unknown_name() -> None:
    message = (
        "no sample process 'nope'; the bundled ones are ['default', 'frictions', 'momentum', 'prestige'] "
        "(or give the path of a .yaml file)"
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_process("nope")


def test_load_process_rejects_unknown_keys_naming_file_key_and_choices(tmp_path: Path) -> None:
    data = _default_data()
    data["policy"]["fame_wieght"] = 0.7  # type: ignore[index]
    path = _write(tmp_path, data)
    message = (
        f"Invalid sample process in {path}:\n  policy.fame_wieght: unknown key; expected one of ['bias', "
        "'approaches_per_target_node_per_quarter', 'red_factor', 'text_fit_weight', 'fame_weight', 'text_fit', "
        "'pool', 'noise_scale', 'signal_chasing', 'tie_weight', 'zone_province_weight'] (got 0.7)"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        load_process(path)


def test_load_process_rejects_wrong_values_and_missing_keys(tmp_path: Path) -> None:
    data = _default_data()
    data["propensity"]["fit"]["true_node"] = "high"  # type: ignore[index]
    del data["universe"]["vague_share"]  # type: ignore[attr-defined]
    data["universe"]["distractor_share"] = 1.5  # type: ignore[index]
    path = _write(tmp_path, data)
    message = (
        f"Invalid sample process in {path}:\n"
        "  propensity.fit.true_node: Input should be a valid number (got 'high')\n"
        "  universe.distractor_share: Input should be less than 1 (got 1.5)\n"
        "  universe.vague_share: required key is missing"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        load_process(path)


@pytest.mark.parametrize(
    ("factor", "problem"),
    [
        ({"tie": ["lab"], "fit": ["true_node"]}, "a factor needs exactly one of signal, attribute, tie, geography, "
         "fit; got ['tie', 'fit']"),
        ({"signal": ["financing"]}, "window_days goes with signal, and a signal needs window_days"),
        ({"tie": ["lab"], "where": "zone_province"}, "where goes only with signal; got where='zone_province' for tie"),
        ({"attribute": "age_years", "above": 5.0, "below": 2.0}, "above must be less than below; got above=5.0, "
         "below=2.0"),
    ],
)  # fmt: skip
def test_parse_process_rejects_malformed_factors(factor: dict[str, object], problem: str) -> None:
    data = _default_data()
    data["propensity"]["terms"] = [{"name": "x", "weight": 1.0, "factors": [factor]}]  # type: ignore[index]
    with pytest.raises(ConfigError, match=re.escape(f"  propensity.terms.0.factors.0: {problem} (got ")):
        parse_process(data, "world.yaml")


def test_parse_process_rejects_thresholds_out_of_order() -> None:
    data = _default_data()
    data["propensity"]["stage_thresholds"]["签约"] = -2.0  # type: ignore[index]
    with pytest.raises(
        ConfigError, match=re.escape("  propensity.stage_thresholds: must increase from stage to stage")
    ):
        parse_process(data, "world.yaml")


def test_load_process_wants_the_name_of_its_file(tmp_path: Path) -> None:
    path = _write(tmp_path, _default_data(), name="other")
    message = f"Invalid sample process in {path}:\n  name: must be the file's name 'other' (got 'world')"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        load_process(path)


# ---------------------------------------------------------------------------------------------- samples
@pytest.mark.parametrize("name", PROCESSES)
def test_every_process_makes_a_usable_demo_zone(samples: dict[str, SampleData], name: str) -> None:
    s = samples[name]
    counts = s.manifest["counts"]
    targets = {n for n, c in s.manifest["designed_colours"].items() if c != "green"}
    leads = s.outcomes[s.outcomes["阶段"] == "线索"]
    per_node = leads.groupby("节点编号").size()
    assert set(per_node.index) == targets
    assert per_node.min() >= 5, per_node.to_dict()
    assert counts["signed_pairs"] > 0 and (s.outcomes["阶段"] == "签约").sum() > 0
    assert s.manifest["process"] == {
        "name": name,
        "sha256": load_process(name).sha256(),
        "description": load_process(name).description,
    }


def test_processes_change_the_relevant_share_and_keep_the_tables_columns(samples: dict[str, SampleData]) -> None:
    shares = {name: s.manifest["counts"]["distractors"] / s.manifest["n_enterprises"] for name, s in samples.items()}
    assert len({round(v, 2) for v in shares.values()}) == len(PROCESSES), shares
    for s in samples.values():  # the latent factor is in no table: the same columns everywhere
        for name, df in s.tables().items():
            assert list(df.columns) == list(samples["default"].tables()[name].columns)


# ---------------------------------------------------------------------------------------------- the truth
def _approaches(s: SampleData) -> pd.DataFrame:
    """One row per logged approach: node, enterprise, day, and whether it reached 签约 in the log."""
    o = s.outcomes
    leads = o.loc[o["阶段"] == "线索", ["节点编号", "统一社会信用代码", "日期"]]
    signed = o.loc[o["阶段"] == "签约", ["节点编号", "统一社会信用代码"]].assign(signed=True)
    out = leads.merge(signed, on=["节点编号", "统一社会信用代码"], how="left")
    return out.assign(signed=out["signed"].fillna(False).astype(bool))


@pytest.mark.parametrize("name", PROCESSES)
def test_truth_mean_over_the_logged_approaches_matches_the_signing_rate(
    samples: dict[str, SampleData], name: str
) -> None:
    s = samples[name]
    a = _approaches(s)
    p = s.signing_probability(a["节点编号"], a["统一社会信用代码"], a["日期"])
    tolerance = 4 * np.sqrt(np.sum(p * (1 - p)))  # 4 standard deviations of a sum of independent Bernoullis
    assert abs(s.manifest["counts"]["signed_pairs"] - p.sum()) <= tolerance
    old = (pd.to_datetime(a["日期"]) < pd.Timestamp(AS_OF) - pd.Timedelta(days=730)).to_numpy()
    tolerance = 4 * np.sqrt(np.sum(p[old] * (1 - p[old])))  # approaches whose stages all lie before as-of
    assert abs(a["signed"].to_numpy()[old].sum() - p[old].sum()) <= tolerance


def test_truth_over_every_process_predicts_who_signs(samples: dict[str, SampleData]) -> None:
    signed, unsigned = [], []
    for s in samples.values():
        a = _approaches(s)
        p = s.signing_probability(a["节点编号"], a["统一社会信用代码"], a["日期"])
        signed.extend(p[a["signed"].to_numpy()])
        unsigned.extend(p[~a["signed"].to_numpy()])
    assert np.mean(signed) > 3 * np.mean(unsigned)


@pytest.mark.parametrize("name", PROCESSES)
def test_truth_equals_the_oracle_at_as_of(samples: dict[str, SampleData], name: str) -> None:
    s = samples[name]
    p = s.signing_probability(s.oracle["node_id"], s.oracle["enterprise_id"], AS_OF)
    np.testing.assert_allclose(np.round(p, 6), s.oracle["oracle_score"].to_numpy(), rtol=0, atol=0)


def test_truth_differs_across_processes_on_the_same_firms(samples: dict[str, SampleData]) -> None:
    s = samples["default"]
    assert s.truth is not None
    node, ent = s.oracle["node_id"].to_numpy(dtype=str), s.oracle["enterprise_id"].to_numpy(dtype=str)
    base = s.truth.signing_probability(node, ent, AS_OF)
    for name in PROCESSES[1:]:
        other = SigningTruth(s.truth.world, load_process(name), AS_OF).signing_probability(node, ent, AS_OF)
        assert np.mean(np.abs(other - base)) > 0.01, name
        assert np.corrcoef(other, base)[0, 1] < 0.98, name


def test_truth_answers_for_any_node_firm_and_date(samples: dict[str, SampleData]) -> None:
    s = samples["momentum"]
    ids = s.enterprises["统一社会信用代码"].drop_duplicates()
    ids = ids[ids.isin(s.signals["统一社会信用代码"])].to_numpy()[:50]
    nodes = np.asarray(sorted(s.manifest["designed_colours"]))  # green nodes too
    grid_node, grid_ent = np.repeat(nodes, len(ids)), np.tile(ids, len(nodes))
    days = np.datetime64("2019-01-01") + np.arange(len(grid_node)) % 2700
    p = s.signing_probability(grid_node, grid_ent, days)
    assert p.shape == (len(grid_node),) and np.all((p > 0) & (p < 1))
    one = s.signing_probability(nodes[0], ids[:3], "2024-05-01")
    assert one.shape == (3,)
    np.testing.assert_array_equal(one, s.signing_probability([nodes[0]] * 3, ids[:3], [date(2024, 5, 1)] * 3))
    early = s.signing_probability(nodes[0], ids, "2019-01-01")
    late = s.signing_probability(nodes[0], ids, AS_OF)
    assert not np.array_equal(early, late)  # signals and ties count only once they happened


def test_truth_rejects_unknown_ids_mismatched_lengths_and_bad_dates(samples: dict[str, SampleData]) -> None:
    s = samples["default"]
    node, ent = str(s.oracle["node_id"].iloc[0]), str(s.oracle["enterprise_id"].iloc[0])
    with pytest.raises(ValueError, match=re.escape("unknown enterprise ids (not in this sample): ['X1']")):
        s.signing_probability(node, ["X1", ent], AS_OF)
    with pytest.raises(ValueError, match=re.escape("unknown node ids (not in this sample): ['nope.n0']")):
        s.signing_probability("nope.n0", ent, AS_OF)
    with pytest.raises(ValueError, match=re.escape("node_ids (2), enterprise_ids (3) and dates (1) must have")):
        s.signing_probability([node, node], [ent] * 3, AS_OF)
    with pytest.raises(ValueError, match=re.escape("dates must be dates (YYYY-MM-DD); got ['soon']")):
        s.signing_probability(node, ent, ["soon"])
    with pytest.raises(ValueError, match=re.escape("this SampleData carries no truth")):
        SampleData(**s.tables(), oracle=s.oracle).signing_probability(node, ent, AS_OF)


@pytest.mark.parametrize("name", ["default", "prestige"])
def test_truth_file_loads_back_the_same_function(samples: dict[str, SampleData], name: str, tmp_path: Path) -> None:
    s = samples[name]
    write_sample(s, tmp_path)
    loaded = load_truth(tmp_path)
    assert s.truth is not None and loaded.process == s.truth.process and loaded.as_of == AS_OF
    a = _approaches(s)
    args = (a["节点编号"].to_numpy(), a["统一社会信用代码"].to_numpy(), a["日期"].to_numpy())
    np.testing.assert_array_equal(loaded.signing_probability(*args), s.signing_probability(*args))
    assert load_truth(tmp_path / "truth.npz").process.name == name


def test_load_truth_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(f"no sample truth file {tmp_path / 'truth.npz'}")):
        load_truth(tmp_path)


def test_generate_sample_takes_a_validated_process(chains: list[Chain], samples: dict[str, SampleData]) -> None:
    cfg: ProcessConfig = load_process("frictions")
    s = generate_sample(chains, N, random_state=42, process=cfg)
    pd.testing.assert_frame_equal(s.outcomes, samples["frictions"].outcomes)
    pd.testing.assert_frame_equal(s.oracle, samples["frictions"].oracle)
