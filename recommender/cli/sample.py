"""``sansetu sample``: write the bundled sample zone in the raw formats a user would import.

Files (docs/design.md, "Raw formats"): ``enterprises.csv`` (GB18030), ``presence.xlsx``,
``assets.csv`` (UTF-8 with BOM), ``relations.csv``, ``signals.csv``, ``outcomes.csv`` (UTF-8),
``oracle.parquet`` and ``sample_manifest.json``. The same chains, size and seed give the same bytes:
rows are sorted by the generator, the XLSX's zip entries and document properties carry the sample's
as-of date instead of the clock, and the manifest lists each file's sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from recommender.cli.common import ConfigOpt, WorkspaceOpt, app, settings_from
from recommender.settings import ConfigError, load_chains
from recommender.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd

    from recommender.sample.generate import SampleData

# file name -> (table, encoding); encoding None = binary writer
SAMPLE_FILES: Final[dict[str, tuple[str, str | None]]] = {
    "enterprises.csv": ("enterprises", "gb18030"),
    "presence.xlsx": ("presence", None),
    "assets.csv": ("assets", "utf-8-sig"),
    "relations.csv": ("relations", "utf-8"),
    "signals.csv": ("signals", "utf-8"),
    "outcomes.csv": ("outcomes", "utf-8"),
    "oracle.parquet": ("oracle", None),
}
MANIFEST_FILE: Final = "sample_manifest.json"


def _csv_bytes(df: pd.DataFrame, encoding: str) -> bytes:
    return df.to_csv(index=False, lineterminator="\n").encode(encoding)


def _normalise_xlsx(data: bytes, stamp: datetime) -> bytes:
    """Rewrite an XLSX zip with fixed entry times and document-property timestamps (same bytes each run)."""
    iso = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                text = body.decode("utf-8")
                text = re.sub(r"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)", rf"\g<1>{iso}\g<2>", text)
                body = text.encode("utf-8")
            entry = zipfile.ZipInfo(info.filename, date_time=stamp.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o600 << 16
            dst.writestr(entry, body)
    return out.getvalue()


def _xlsx_bytes(df: pd.DataFrame, stamp: datetime) -> bytes:
    """Presence as one sheet (header + rows, numbers as numbers) with deterministic metadata."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "presence"
    ws.append(list(df.columns))
    for row in df.itertuples(index=False):
        ws.append([v.item() if hasattr(v, "item") else v for v in row])
    wb.properties.creator = "sansetu sample"
    wb.properties.created = stamp
    wb.properties.modified = stamp
    buf = io.BytesIO()
    wb.save(buf)
    return _normalise_xlsx(buf.getvalue(), stamp)


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow", compression="zstd")
    return buf.getvalue()


def sample_file_bytes(data: SampleData) -> dict[str, bytes]:
    """The bytes of every sample file, manifest last (it lists the others' row counts and sha256)."""
    as_of = date.fromisoformat(str(data.manifest["as_of"]))
    stamp = datetime(as_of.year, as_of.month, as_of.day)
    frames: dict[str, Any] = {**data.tables(), "oracle": data.oracle}
    files: dict[str, bytes] = {}
    for name, (table, encoding) in SAMPLE_FILES.items():
        df = frames[table]
        if name.endswith(".xlsx"):
            files[name] = _xlsx_bytes(df, stamp)
        elif name.endswith(".parquet"):
            files[name] = _parquet_bytes(df)
        else:
            assert encoding is not None
            files[name] = _csv_bytes(df, encoding)
    listing = {
        name: {
            "table": table,
            "rows": int(len(frames[table])),
            "encoding": encoding or "binary",
            "sha256": hashlib.sha256(files[name]).hexdigest(),
        }
        for name, (table, encoding) in SAMPLE_FILES.items()
    }
    manifest = {**data.manifest, "files": listing}
    files[MANIFEST_FILE] = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    return files


def write_sample(data: SampleData, out_dir: Path) -> dict[str, Path]:
    """Write the sample files into ``out_dir`` (created if needed); returns file name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, body in sample_file_bytes(data).items():
        path = out_dir / name
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(body)
        tmp.replace(path)
        written[name] = path
    return written


@app.command("sample")
def sample(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output directory (default: <workspace>/sample).", show_default=False),
    ] = None,
    enterprises: Annotated[int, typer.Option("--enterprises", "-n", min=1, help="Enterprises in the universe.")] = 3000,
    seed: Annotated[
        int | None,
        typer.Option("--seed", min=0, help="Random seed (default: random_state of the config).", show_default=False),
    ] = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write a deterministic sample zone (raw files for `sansetu ingest`) and its hidden oracle."""
    from recommender.sample.generate import generate_sample

    settings = settings_from(workspace, config)
    try:
        chains = load_chains(settings)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    out_dir = out if out is not None else Workspace(settings.workspace).root / "sample"
    random_state = settings.random_state if seed is None else seed
    try:
        data = generate_sample(chains, enterprises, random_state)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--enterprises") from None
    written = write_sample(data, out_dir)
    counts = data.manifest["counts"]
    typer.echo(
        f"Sample zone (seed {random_state}, as of {data.manifest['as_of']}): {counts['enterprises']} enterprise rows, "
        f"{counts['approached_pairs']} approached pairs, {counts['signed_pairs']} signed; {len(data.manifest['chains'])} chains."
    )
    frames = {**data.tables(), "oracle": data.oracle}
    for name, path in written.items():
        table = SAMPLE_FILES[name][0] if name in SAMPLE_FILES else None
        rows = f"{len(frames[table]):>9,} rows" if table else " " * 14
        typer.echo(f"  {rows}  {path}")
