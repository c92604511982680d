"""Map history on disk: every computed map is kept, the chain pictures sit next to it.

Layout under ``<workspace>/maps/``::

    <YYYYmmddTHHMMSSffffff>.parquet   one computed map per run (columns of colour_map.MAP_COLUMNS)
    <chain_id>.html, <chain_id>.svg    the latest picture of each chain
    index.html                         links to every chain picture with its colour counts

``update_map`` is the one call the CLI (and the demo / nightly job) makes: load the current tables,
compute the map, store it, diff it against the previous stored map and write the pictures.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pandas as pd

from features.chains import Chain, edges_frame, nodes_frame
from features.schema import SCHEMAS
from recommender.colour_map.colours import compute_map, diff_maps
from recommender.colour_map.priority import gap_priority
from recommender.colour_map.render import render_chain_html, render_chain_svg, render_index_html

if TYPE_CHECKING:
    from recommender.settings import MapConfig, PathsConfig
    from recommender.workspace import Workspace

STAMP_FORMAT: Final = "%Y%m%dT%H%M%S%f"
_STAMP_FILE = re.compile(r"^\d{8}T\d{12}\.parquet$")


class NoPresenceDataError(RuntimeError):
    """The workspace holds no presence rows yet, so there is nothing to colour."""


@dataclass(frozen=True)
class MapRun:
    """What ``update_map`` produced."""

    map: pd.DataFrame
    diff: pd.DataFrame
    path: Path
    previous_path: Path | None
    pictures: list[Path]
    warnings: list[str]


# ---------------------------------------------------------------- history
def list_maps(maps_dir: Path) -> list[Path]:
    """Stored maps, oldest first (stamps sort as text)."""
    if not maps_dir.is_dir():
        return []
    return sorted(p for p in maps_dir.iterdir() if p.is_file() and _STAMP_FILE.match(p.name))


def new_stamp(maps_dir: Path, now: datetime | None = None) -> str:
    """A UTC stamp later than every stored map (two saves in one microsecond stay ordered)."""
    t = now or datetime.now(UTC)
    existing = list_maps(maps_dir)
    if existing:
        last = datetime.strptime(existing[-1].stem, STAMP_FORMAT).replace(tzinfo=UTC)
        if t.replace(tzinfo=UTC) <= last:
            t = last + timedelta(microseconds=1)
    return t.strftime(STAMP_FORMAT)


def save_map(map_df: pd.DataFrame, maps_dir: Path, stamp: str | None = None) -> Path:
    """Write ``map_df`` to ``<maps_dir>/<stamp>.parquet`` (atomically) and return the path."""
    maps_dir.mkdir(parents=True, exist_ok=True)
    stamp = stamp or new_stamp(maps_dir)
    if not re.fullmatch(r"\d{8}T\d{12}", stamp):
        raise ValueError(f"map stamp must look like 20260101T120000000000 ({STAMP_FORMAT}); got {stamp!r}")
    path = maps_dir / f"{stamp}.parquet"
    tmp = path.with_suffix(".parquet.tmp")
    map_df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def load_map(path: Path) -> pd.DataFrame:
    """Read one stored map; the error names the file."""
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types; the caller needs the file name
        raise OSError(f"Failed while loading the map {path}: {exc}") from exc


def load_latest_map(maps_dir: Path) -> pd.DataFrame | None:
    """The newest stored map, or None when none was stored."""
    maps = list_maps(maps_dir)
    return load_map(maps[-1]) if maps else None


def load_previous_map(maps_dir: Path) -> pd.DataFrame | None:
    """The map stored before the newest one, or None."""
    maps = list_maps(maps_dir)
    return load_map(maps[-2]) if len(maps) >= 2 else None


# ---------------------------------------------------------------- pictures
def write_pictures(map_df: pd.DataFrame, chains: list[Chain], maps_dir: Path, subtitle: str = "") -> list[Path]:
    """Write ``<chain_id>.html`` / ``.svg`` for every chain in ``map_df`` and ``index.html``."""
    maps_dir.mkdir(parents=True, exist_ok=True)
    edges = edges_frame(chains)
    names = {c.id: c.name for c in chains}
    written: list[Path] = []
    for chain_id, rows in map_df.groupby("chain_id", sort=False):
        e = edges[edges["chain_id"] == chain_id]
        title = f"{names.get(str(chain_id), str(chain_id))}产业链三色图"
        svg_path = maps_dir / f"{chain_id}.svg"
        svg_path.write_text(render_chain_svg(rows, e), encoding="utf-8")
        html_path = maps_dir / f"{chain_id}.html"
        html_path.write_text(render_chain_html(rows, e, title=title, subtitle=subtitle), encoding="utf-8")
        written += [html_path, svg_path]
    index = maps_dir / "index.html"
    index.write_text(render_index_html(map_df, names, subtitle=subtitle), encoding="utf-8")
    return [*written, index]


# ---------------------------------------------------------------- one map run
def update_map(
    ws: Workspace,
    chains: list[Chain],
    config: MapConfig,
    as_of_year: int | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    zone_name: str = "",
    paths_config: PathsConfig | None = None,
) -> MapRun:
    """Compute the map from the workspace's current tables, store it, diff it and draw it.

    Args:
        ws: the workspace (maps go to ``ws.maps``; tables come from ``ws.snapshots``).
        chains: the validated chains.
        config: colour rules.
        as_of_year: map year; default the latest presence year.
        tables: the current tables (``presence``, ``enterprises``); read from the snapshots if None.
        zone_name: shown on the pictures.
        paths_config: settings of gap priority (``recommender.colour_map.priority``), which fills the map's
            ``priority`` column for red and blue nodes; its defaults when None.

    Raises:
        NoPresenceDataError: when there are no presence rows to colour from.
    """
    if tables is None:
        from features.io import load_tables

        tables = load_tables(ws.snapshots)
    presence = tables.get("presence")
    if presence is None or presence.empty:
        raise NoPresenceDataError(f"no presence rows in {ws.snapshots}")
    enterprises = tables.get("enterprises")
    warnings = []
    if enterprises is None or enterprises.empty:
        enterprises = pd.DataFrame(columns=SCHEMAS["enterprises"].column_names)
        warnings.append(
            "未导入企业库（enterprises 表）：区位熵只能拿园区企业自身作比较，无法判断优势节点；"
            "请先运行 sansetu ingest FILE --table enterprises。"
        )
    nodes = nodes_frame(chains)
    map_df = compute_map(nodes, presence, enterprises, config, as_of_year=as_of_year)
    map_df["priority"] = _priority(map_df, nodes, enterprises, presence, paths_config)
    previous_paths = list_maps(ws.maps)
    previous = load_map(previous_paths[-1]) if previous_paths else None
    path = save_map(map_df, ws.maps)
    year = map_df["year"].dropna()
    subtitle = " · ".join(x for x in (zone_name, f"{int(year.iloc[0])}年数据" if len(year) else "") if x)
    pictures = write_pictures(map_df, chains, ws.maps, subtitle=subtitle)
    return MapRun(
        map=map_df,
        diff=diff_maps(previous, map_df),
        path=path,
        previous_path=previous_paths[-1] if previous_paths else None,
        pictures=pictures,
        warnings=warnings,
    )


def _priority(
    map_df: pd.DataFrame,
    nodes: pd.DataFrame,
    enterprises: pd.DataFrame,
    presence: pd.DataFrame,
    paths_config: PathsConfig | None,
) -> pd.Series:
    """Gap priority of red and blue nodes (NaN for green)."""
    return gap_priority(map_df, nodes, enterprises, presence, paths_config)
