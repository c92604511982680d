"""training.adapt: pairs from the universe's own text, contrastive fine-tuning, the versioned folder, MLflow.

The model is a tiny BERT (1 layer, 16-d, random seeded weights) with a WordLevel tokenizer (one token
per Chinese character), saved once per module as a sentence-transformers folder; two steps train in
well under a second.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.manifest import Manifest
from training.adapt import ADAPTED_PREFIX, AdaptTracking, adapt_encoder, adaptation_pairs, base_identity

CHARS = "查询文档光模块芯片激光器武汉科技公司电池材料生物医药软件制造研发生产销售电子器件一家是编号"
VOCAB = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *CHARS, "query", "passage", ":"]))


def make_enterprises(n: int = 24) -> pd.DataFrame:
    """n enterprises with every text field; row 0 has too little text and must be skipped."""
    df = pd.DataFrame(
        {
            "enterprise_id": [f"E{i:03d}" for i in range(n)],
            "name": [f"武汉光模块科技公司{i}" for i in range(n)],
            "industry_name": "光电子器件制造",
            "products": [["光模块", "芯片"] if i % 2 else [] for i in range(n)],
            "business_scope": [f"光模块、激光器芯片的研发生产销售{i}" for i in range(n)],
            "description": [f"公司是一家电池材料制造公司，编号{i}。" for i in range(n)],
        }
    )
    df.loc[0, ["business_scope", "description"]] = ["光模块", None]
    return df


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers folder: tiny BertModel (seeded random weights) + mean pooling + normalise."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)  # fmt: skip
    raw = tmp_path_factory.mktemp("tiny_bert_raw")
    BertModel(config).save_pretrained(raw)
    fast.save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=60)
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu",
                                prompts={"query": "query: ", "passage": "passage: "})  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny_bert") / "tiny-bert"
    model.save(str(folder), create_model_card=False)
    return folder


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_adaptation_pairs_are_deterministic_and_skip_thin_rows() -> None:
    df = make_enterprises()
    pairs = adaptation_pairs(df, max_pairs=None, random_state=3)
    assert pairs == adaptation_pairs(df, max_pairs=None, random_state=3)
    assert len(pairs) == len(df) - 1  # row 0: positive '光模块' is under 16 characters
    assert "武汉光模块科技公司0；光电子器件制造" not in {a for a, _ in pairs}
    assert ("武汉光模块科技公司1；光电子器件制造；光模块、芯片",
            "光模块、激光器芯片的研发生产销售1；公司是一家电池材料制造公司,编号1") in pairs  # fmt: skip
    assert adaptation_pairs(df, max_pairs=5, random_state=3) == pairs[:5]
    assert adaptation_pairs(df, max_pairs=None, random_state=4) != pairs
    assert sorted(adaptation_pairs(df, None, 4)) == sorted(pairs)


def test_adaptation_pairs_drop_repeated_positives() -> None:
    df = make_enterprises(6).assign(business_scope="光模块、激光器芯片的研发生产销售", description=None)
    assert len(adaptation_pairs(df, None, 0)) == 1


def test_adaptation_pairs_rejects_enterprises_without_usable_text() -> None:
    df = make_enterprises(3).assign(business_scope="短", description=None)
    message = (
        "adaptation_pairs found no usable pair in 3 enterprises: each pair needs a name "
        "(name/industry_name/products) of at least 2 characters and a business_scope or description "
        "of at least 16 characters."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        adaptation_pairs(df, None, 0)


def test_adaptation_pairs_rejects_missing_columns_and_bad_max_pairs() -> None:
    with pytest.raises(ValueError, match=re.escape("enterprises needs the column 'name' and one of")):
        adaptation_pairs(pd.DataFrame({"name": ["甲公司"]}), None, 0)
    with pytest.raises(ValueError, match=re.escape("The 'max_pairs' parameter of adaptation_pairs must be an int")):
        adaptation_pairs(make_enterprises(), max_pairs=0, random_state=0)


def test_adapt_encoder_saves_a_versioned_folder_that_loads(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    pairs = adaptation_pairs(make_enterprises(), None, 0)
    result = adapt_encoder(
        tiny_bert_dir, pairs, tmp_path / "out", batch_size=4, max_steps=2, max_seq_length=32, onnx=False
    )
    assert result.folder.parent == tmp_path / "out"
    assert result.folder.name.startswith(ADAPTED_PREFIX) and len(result.folder.name) == len(ADAPTED_PREFIX) + 12
    assert result.n_steps == 2 and [s for s, _ in result.losses] == [1, 2] and not result.reused
    manifest = Manifest.read(result.folder)
    assert manifest.component == "AdaptedSentenceTransformer"
    assert (manifest.model_id, manifest.count, manifest.dim) == ("tiny-bert", len(pairs), 16)
    assert manifest.config["max_steps"] == 2 and manifest.extra["losses"] == [[s, v] for s, v in result.losses]
    model = SentenceTransformer(str(result.folder), device="cpu", local_files_only=True)
    assert model.encode(["光模块"]).shape == (1, 16)
    assert model.max_seq_length == 60  # the base's cap is restored; 32 was for training only
    assert model.prompts["query"] == "query: "
    assert not np.allclose(_weights(result.folder)["encoder.layer.0.output.dense.weight"],
                           _weights(tiny_bert_dir)["encoder.layer.0.output.dense.weight"])  # fmt: skip
    np.testing.assert_array_equal(_weights(result.folder)["embeddings.word_embeddings.weight"],
                                  _weights(tiny_bert_dir)["embeddings.word_embeddings.weight"])  # fmt: skip
    again = adapt_encoder(
        tiny_bert_dir, pairs, tmp_path / "out", batch_size=4, max_steps=2, max_seq_length=32, onnx=False
    )
    assert again.reused and again.folder == result.folder and again.losses == result.losses
    assert base_identity(result.folder)[0] == result.folder.name  # adapting it again is not its base's key


def test_adapt_encoder_same_seed_gives_same_weights(tiny_bert_dir: Path, tmp_path: Path) -> None:
    pairs = adaptation_pairs(make_enterprises(), None, 0)
    runs = [
        adapt_encoder(tiny_bert_dir, pairs, tmp_path / name, batch_size=4, max_steps=2, random_state=seed, onnx=False)
        for name, seed in (("a", 7), ("b", 7), ("c", 8))
    ]
    assert runs[0].losses == runs[1].losses and runs[0].folder.name == runs[1].folder.name
    wa, wb, wc = (_weights(r.folder) for r in runs)
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key])
    assert runs[2].folder.name != runs[0].folder.name
    assert any(not np.array_equal(wa[k], wc[k]) for k in wa)


def test_adapt_encoder_records_an_mlflow_run(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = AdaptTracking(uri, experiment="adapt-test")
    pairs = adaptation_pairs(make_enterprises(), None, 0)
    result = adapt_encoder(
        tiny_bert_dir, pairs, tmp_path / "out", batch_size=4, max_steps=2, tracking=tracking, onnx=False
    )
    assert result.run_id is not None
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["batch_size"] == "4" and run.data.params["n_pairs"] == str(len(pairs))
    assert run.data.tags["folder"] == str(result.folder)
    history = client.get_metric_history(result.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == result.losses
    assert [f.path for f in client.list_artifacts(result.run_id)] == ["manifest.json"]
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())  # next to the database


def test_adapt_encoder_rejects_bad_inputs(tiny_bert_dir: Path, tmp_path: Path) -> None:
    pairs = adaptation_pairs(make_enterprises(), None, 0)
    with pytest.raises(
        ValueError, match=re.escape("adapt_encoder needs at least 2 pairs (in-batch negatives); got 1.")
    ):
        adapt_encoder(tiny_bert_dir, pairs[:1], tmp_path)
    with pytest.raises(ValueError, match=re.escape(
        "The 'batch_size' parameter of adapt_encoder must be an int in the range [2, inf]. Got 1 instead."
    )):  # fmt: skip
        adapt_encoder(tiny_bert_dir, pairs, tmp_path, batch_size=1)
    with pytest.raises(TypeError, match=re.escape("must hold (anchor, positive) str tuples; items at positions [0]")):
        adapt_encoder(tiny_bert_dir, [("a", 1), *pairs], tmp_path)  # type: ignore[list-item]
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(f"expected {empty / 'modules.json'}")):
        adapt_encoder(empty, pairs, tmp_path)
    assert not list((tmp_path).glob(f"{ADAPTED_PREFIX}*"))
    shutil.rmtree(empty)


def test_adapt_encoder_exports_int8_onnx_that_encodes_like_torch(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from models.onnx_embedder import OnnxEmbedder

    pairs = adaptation_pairs(make_enterprises(), None, 0)
    result = adapt_encoder(tiny_bert_dir, pairs, tmp_path / "out", batch_size=4, max_steps=1)
    assert result.onnx == result.folder / "onnx" / "model_qint8.onnx" and result.onnx.is_file()
    assert result.manifest.extra["onnx"] == "onnx/model_qint8.onnx"
    texts = ["光模块芯片", "武汉激光器制造公司"]
    fp32 = OnnxEmbedder(result.folder, "onnx/model.onnx", query_prompt="query: ").encode(texts, kind="query")
    torch_model = SentenceTransformer(str(result.folder), device="cpu", local_files_only=True)
    reference = torch_model.encode(texts, prompt="query: ", normalize_embeddings=True)
    np.testing.assert_allclose(fp32, reference, atol=1e-5)
