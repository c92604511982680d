"""The raw-file writer of the sample zone: the files a user would import, byte for byte the same per seed.

Files (docs/design.md, "Raw formats"): ``enterprises.csv`` (GB18030), ``presence.xlsx``,
``assets.csv`` (UTF-8 with BOM), ``relations.csv``, ``signals.csv``, ``outcomes.csv`` (UTF-8),
``oracle.parquet``, ``truth.npz`` (the true P(签约 | approached) for any node, firm and date; read it back
with :func:`recommender.sample.truth.load_truth`) and ``sample_manifest.json``. The same chains, size, seed
and process give the same bytes: rows are sorted by the generator, the zip entries (XLSX, npz) and the
XLSX's document properties carry the sample's as-of date instead of the clock, and the manifest lists each
file's sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd

from features.chains import Chain
from features.schema import RAW_TABLES
from recommender.sample.catalog import DEFAULT_PROCESS
from recommender.sample.generate import SampleData, generate_sample
from recommender.sample.process import ProcessConfig
from recommender.sample.truth import TRUTH_FILE, truth_bytes

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
INGEST_ORDER: Final[tuple[tuple[str, str], ...]] = tuple(
    (table, name) for table in RAW_TABLES for name, (t, _) in SAMPLE_FILES.items() if t == table
)
"""(table, raw file) in the order the tables are ingested (enterprises first: the others refer to them)."""


@dataclass(frozen=True)
class WrittenSample:
    """A generated sample and where its files went."""

    data: SampleData
    paths: dict[str, Path]  # file name -> path, in SAMPLE_FILES order, manifest last

    def rows(self, name: str) -> int | None:
        """Data rows of file ``name`` (None for the truth and the manifest)."""
        if name not in SAMPLE_FILES:
            return None
        return len(_frames(self.data)[SAMPLE_FILES[name][0]])


def write_sample_zone(
    chains: list[Chain],
    n_enterprises: int,
    random_state: int,
    out_dir: Path,
    process: str | Path | ProcessConfig = DEFAULT_PROCESS,
) -> WrittenSample:
    """Generate the sample zone (:func:`recommender.sample.generate.generate_sample`) under an outcome
    ``process`` and write its files.

    Raises:
        ValueError: from the generator (no chains, a bad seed, too few enterprises, an unknown or invalid
            process), before anything is written.
    """
    data = generate_sample(chains, n_enterprises, random_state, process=process)
    return WrittenSample(data, write_sample(data, out_dir))


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


def sample_file_bytes(data: SampleData) -> dict[str, bytes]:
    """The bytes of every sample file, then ``truth.npz`` (when the sample has its truth), manifest last
    (it lists the others' row counts and sha256)."""
    as_of = date.fromisoformat(str(data.manifest["as_of"]))
    stamp = datetime(as_of.year, as_of.month, as_of.day)
    frames = _frames(data)
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
    if data.truth is not None:
        files[TRUTH_FILE] = truth_bytes(data.truth)
        listing[TRUTH_FILE] = {
            "table": "truth",
            "rows": int(len(data.truth.world.ids)),
            "encoding": "binary",
            "sha256": hashlib.sha256(files[TRUTH_FILE]).hexdigest(),
        }
    manifest = {**data.manifest, "files": listing}
    files[MANIFEST_FILE] = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    return files


def _frames(data: SampleData) -> dict[str, Any]:
    return {**data.tables(), "oracle": data.oracle}


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
