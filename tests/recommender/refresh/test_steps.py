"""The production steps on small tables: the map step colours the zone as of the run's date."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.chains import nodes_frame
from recommender.colour_map.priority import gap_priority
from recommender.refresh import steps
from recommender.refresh.context import RunContext
from recommender.refresh.executor import LocalExecutor
from recommender.settings import load_chains, load_settings
from recommender.workspace import Workspace

IDS = [f"E{i}" for i in range(8)]


def _tables(node: str, code: str) -> dict[str, pd.DataFrame]:
    """One enterprise at ``node`` in 2023, all eight (one a chain leader) in 2025: a later year fills the node."""
    enterprises = pd.DataFrame(
        {"enterprise_id": IDS, "name": IDS, "industry_code": code, "province": "湖北省", "city": "武汉市"}
    )
    presence = pd.DataFrame(
        {
            "enterprise_id": ["E0", *IDS],
            "node_id": node,
            "year": [2023] + [2025] * len(IDS),
            "is_chain_leader": [False, True] + [False] * (len(IDS) - 1),
        }
    )
    return {"enterprises": enterprises, "presence": presence}


def _map_step(tmp_path: Path, as_of: date) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    settings = load_settings(workspace=tmp_path / "ws")
    nodes = nodes_frame(load_chains(settings))
    tables = _tables(nodes["node_id"].iloc[0], nodes["industry_codes"].iloc[0][0])
    staging = tmp_path / f"{as_of}.staging"
    staging.mkdir()
    ws = Workspace(Path(settings.workspace)).ensure()
    ctx = RunContext(settings, ws, as_of, as_of.isoformat(), staging, LocalExecutor())
    ctx.cache.update(tables=tables, nodes=nodes)
    steps.step_map(ctx)
    return pd.read_parquet(staging / "map.parquet"), nodes, tables


@pytest.mark.parametrize(
    ("as_of", "year", "n_local"),
    [
        (date(2024, 6, 30), 2023, 1),  # a backfill: the presence of 2025 is not known yet
        (date(2025, 6, 30), 2025, 8),  # presence of the as-of year counts
        (date(2026, 6, 30), 2025, 8),  # the latest year not after the as-of year
        (date(2022, 6, 30), 2023, 1),  # before the first year: the earliest year stands in (as in training)
    ],
)
def test_map_step_colours_the_zone_with_the_presence_known_at_the_as_of_date(
    tmp_path: Path, as_of: date, year: int, n_local: int
) -> None:
    map_df, nodes, tables = _map_step(tmp_path, as_of)
    assert set(map_df["year"]) == {year}
    assert map_df["n_local"].iloc[0] == n_local
    assert bool(map_df["has_leader"].iloc[0]) is (year == 2025)
    presence = tables["presence"]
    known = presence[presence["year"] == year]
    expected = gap_priority(map_df, nodes, tables["enterprises"], known, load_settings().paths)
    pd.testing.assert_series_equal(map_df["priority"], expected, check_names=False)
