"""Artifact manifests and content fingerprints.

Every saved artifact (FAISS index, lexical index, converted embedding model, ranker) is a directory
holding a ``manifest.json`` that describes it: the component type, library versions, the config,
the embedding model's id and pinned revision, a sha256 of the input data, dimension, count and
creation time. ``load`` functions read the manifest and call :meth:`Manifest.check` so that a
mismatch (another model, another dimension) is refused with a message naming every field.

Fingerprints are sha256 over bytes in a fixed order (dtype, shape, then the raw buffer; strings as
UTF-8 with their lengths), never Python's salted ``hash()``, so they are stable across processes,
machines and runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


class ManifestMismatchError(ValueError):
    """A saved artifact does not match what the caller expected."""


class ManifestMismatchWarning(UserWarning):
    """A saved artifact differs from what the caller expected in a field that is not fatal."""


# ---------------------------------------------------------------- fingerprints
def _update_str_block(h: Any, values: Sequence[object]) -> None:
    """Hash a sequence of strings/None unambiguously: missing mask, lengths, then UTF-8 text."""
    missing = np.fromiter((v is None or (isinstance(v, float) and np.isnan(v)) for v in values), bool, len(values))
    texts = ["" if m else str(v) for v, m in zip(values, missing, strict=True)]
    encoded = [t.encode("utf-8") for t in texts]
    lengths = np.fromiter((len(b) for b in encoded), np.int64, len(encoded))
    h.update(missing.tobytes())
    h.update(lengths.tobytes())
    h.update(b"".join(encoded))


def _update_array(h: Any, a: np.ndarray) -> None:
    if a.dtype == object or a.dtype.kind in "US":  # text: same digest for object, <U and list inputs
        h.update(f"text|{a.shape}|".encode())
        _update_str_block(h, a.ravel().tolist())
    else:
        h.update(f"{a.dtype.str}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).reshape(-1).view(np.uint8))


def fingerprint_bytes(*chunks: bytes) -> str:
    """sha256 (hex) over byte chunks, each prefixed by its length so that the split matters."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(len(c).to_bytes(8, "little"))
        h.update(c)
    return h.hexdigest()


def fingerprint_arrays(*arrays: np.ndarray | Sequence[Any]) -> str:
    """sha256 (hex) over arrays in the given order: dtype, shape and contents of each.

    Numeric arrays are hashed from their C-contiguous buffer; object and string arrays (e.g.
    enterprise ids) element by element as UTF-8 with lengths and a missing-value mask. Lists are
    converted with ``np.asarray`` first.
    """
    h = hashlib.sha256()
    h.update(f"arrays:{len(arrays)}|".encode())
    for a in arrays:
        _update_array(h, np.asarray(a) if not isinstance(a, np.ndarray) else a)
    return h.hexdigest()


def _column_bytes(h: Any, s: pd.Series) -> None:
    dtype = s.dtype
    h.update(f"{s.name}|{dtype}|".encode())
    if isinstance(dtype, pd.CategoricalDtype):
        _update_array(h, s.cat.codes.to_numpy())
        _update_array(h, np.asarray(s.cat.categories.astype(str), dtype=object))
    elif isinstance(dtype, np.dtype) and dtype.kind == "M":
        _update_array(h, s.to_numpy().view("int64"))
    elif isinstance(dtype, np.dtype) and dtype.kind in "biufc":
        _update_array(h, s.to_numpy())
    else:  # object, string, nullable extension types: element-wise text with a missing mask
        values = s.astype(object).where(s.notna(), None).tolist()
        _update_str_block(h, values)


def fingerprint_frame(df: pd.DataFrame, index: bool = False) -> str:
    """sha256 (hex) of a DataFrame: column names, dtypes and values in column order.

    Args:
        df: any frame; object columns may mix strings and missing values.
        index: also hash the index (off by default: a table's content is its rows).
    """
    h = hashlib.sha256()
    h.update(f"frame:{df.shape}|".encode())
    for name in df.columns:
        _column_bytes(h, df[name].rename(str(name)))
    if index:
        _column_bytes(h, pd.Series(df.index, name="__index__"))
    return h.hexdigest()


# ---------------------------------------------------------------- manifest
def library_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the named distributions (``"missing"`` when not installed)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def utc_now() -> str:
    """Current UTC time as ISO 8601 with seconds (the ``created`` stamp of a manifest)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _jsonable(value: Any) -> Any:
    """Make config values JSON-friendly (paths, tuples, numpy scalars) in a stable way."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass(frozen=True)
class Manifest:
    """What a saved artifact is. Written as ``manifest.json`` in the artifact's directory.

    Attributes:
        component: type of the artifact, e.g. ``"ProfileIndex"``, ``"LexicalIndex"``, ``"Ranker"``.
        config: the parameters the component was built with (JSON-able).
        model_id: the embedding (or ranking) model the artifact depends on, if any.
        revision: pinned revision of that model (changes whenever its weights change).
        data_sha256: fingerprint of the input data (see ``fingerprint_*``).
        dim: vector dimension, if any.
        count: number of items (vectors, documents, rows).
        libraries: distribution name -> version at save time.
        created: ISO 8601 UTC time of creation.
        extra: anything else worth recording (measured verification figures, vocabulary size, ...).
        format_version: version of this manifest layout.
    """

    component: str
    config: dict[str, Any] = field(default_factory=dict)
    model_id: str | None = None
    revision: str | None = None
    data_sha256: str | None = None
    dim: int | None = None
    count: int | None = None
    libraries: dict[str, str] = field(default_factory=dict)
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @classmethod
    def build(cls, component: str, libraries: Iterable[str] = ("numpy",), **values: Any) -> Manifest:
        """A manifest stamped now with the installed versions of ``libraries``."""
        return cls(component=component, libraries=library_versions(libraries), created=utc_now(), **values)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[no-any-return]

    def write(self, directory: Path) -> Path:
        """Write ``directory/manifest.json`` (UTF-8, sorted keys); returns the file's path."""
        path = Path(directory) / MANIFEST_FILE
        tmp = path.with_name(f".{MANIFEST_FILE}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2, sort_keys=True) + "\n", "utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """Read ``directory/manifest.json``; errors name the file and what is wrong with it."""
        path = Path(directory) / MANIFEST_FILE
        if not path.is_file():
            raise FileNotFoundError(f"No manifest at {path}: expected a directory written by a sansetu save().")
        try:
            data = json.loads(path.read_text("utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"Manifest {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"Manifest {path} must hold a JSON object; got {type(data).__name__}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown or "component" not in data:
            raise ValueError(
                f"Manifest {path} has unknown fields {unknown} or lacks 'component'; valid fields are {sorted(known)}."
            )
        return cls(**data)

    def mismatches(self, expected: Mapping[str, Any]) -> list[str]:
        """Human-readable differences between this manifest and ``expected`` field values.

        ``expected`` keys are manifest fields; ``config.<key>`` compares one config entry.
        """
        valid = sorted(f.name for f in fields(self))
        out = []
        for key, want in expected.items():
            if key.startswith("config."):
                got = self.config.get(key.removeprefix("config."))
            elif key in valid:
                got = getattr(self, key)
            else:
                raise ValueError(f"Unknown manifest field {key!r}; expected one of {valid} or 'config.<key>'.")
            if _jsonable(got) != _jsonable(want):
                out.append(f"{key}: expected {want!r}, found {got!r}")
        return out

    def check(self, expected: Mapping[str, Any], action: Literal["raise", "warn"] = "raise") -> None:
        """Refuse (or warn about) a manifest whose fields differ from ``expected``.

        Raises:
            ManifestMismatchError: listing every mismatched field, when ``action="raise"``.
        """
        diffs = self.mismatches(expected)
        if not diffs:
            return
        message = f"{self.component} manifest does not match: " + "; ".join(diffs) + "."
        if action == "raise":
            raise ManifestMismatchError(message)
        warnings.warn(message, ManifestMismatchWarning, stacklevel=2)

    def check_libraries(self, names: Iterable[str] | None = None) -> None:
        """Warn (``ManifestMismatchWarning``) when a recorded library version differs from the installed one."""
        recorded = {k: v for k, v in self.libraries.items() if names is None or k in set(names)}
        installed = library_versions(recorded)
        diffs = [f"{k} saved with {v}, installed {installed[k]}" for k, v in recorded.items() if installed[k] != v]
        if diffs:
            warnings.warn(
                f"{self.component} was saved with other library versions: " + "; ".join(diffs) + ".",
                ManifestMismatchWarning,
                stacklevel=2,
            )


# ---------------------------------------------------------------- atomic directories
@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Write a directory atomically: yield a fresh staging folder, then publish it as ``target``.

    The staging folder is a sibling (same filesystem). On success ``target`` becomes a symlink to
    it, switched with one ``os.replace`` so a reader sees either the old or the new artifact,
    never a half-written one; the previous version is deleted afterwards. If ``target`` exists as a
    plain directory (written by other means) it is swapped out by rename. On error the staging
    folder is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    staging = target.parent / f".{target.name}.{stamp}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _publish(staging, target)


def _publish(staging: Path, target: Path) -> None:
    previous: Path | None = None
    if target.is_symlink():
        previous = target.parent / os.readlink(target)
    elif target.exists():
        previous = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, previous)
    link = target.parent / f".{target.name}.link-{uuid.uuid4().hex[:8]}"
    os.symlink(staging.name, link)
    os.replace(link, target)
    if previous is not None and previous.resolve() != staging.resolve():
        shutil.rmtree(previous, ignore_errors=True)
