"""Where the refresh's parallel work runs: in this process (``local``) or on a Dask cluster (``dask``).

An executor maps a function over partitions (node partitions of candidates, chunks of changed
profile texts) and returns the results in input order, so both executors produce the same output.
``DaskExecutor`` connects a ``dask.distributed.Client`` to ``address`` or starts a ``LocalCluster``
when none is given.

dask and distributed are imported lazily.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from distributed import Client

T = TypeVar("T")
R = TypeVar("R")
ExecutorKind = Literal["local", "dask"]


class Executor(Protocol):
    """Maps a function over partitions; results come back in input order."""

    kind: str

    def map(self, fn: Callable[..., R], items: Sequence[Any], shared: Any = None, desc: str = "") -> list[R]:
        """``[fn(item) for item in items]``, or ``fn(shared, item)`` when ``shared`` is given."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def _progress(items: Sequence[Any], desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=not desc or not sys.stderr.isatty(), leave=False)


class LocalExecutor:
    """Runs every partition in this process, one after the other."""

    kind = "local"

    def map(self, fn: Callable[..., R], items: Sequence[Any], shared: Any = None, desc: str = "") -> list[R]:
        if shared is None:
            return [fn(it) for it in _progress(items, desc)]
        return [fn(shared, it) for it in _progress(items, desc)]

    def describe(self) -> dict[str, Any]:
        return {"kind": "local"}

    def close(self) -> None:
        return None


class DaskExecutor:
    """Runs partitions as tasks on a Dask cluster.

    Args:
        address: scheduler address (``tcp://host:8786``); None starts a ``LocalCluster``.
        n_workers: workers of the local cluster.
        threads_per_worker: threads per worker of the local cluster.
        processes: whether the local cluster's workers are processes (threads in this one if False).
    """

    kind = "dask"

    def __init__(
        self, address: str | None = None, n_workers: int = 1, threads_per_worker: int = 2, processes: bool = False
    ) -> None:
        self.address = address
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.processes = processes
        self.client_: Client | None = None
        self.cluster_: Any = None

    def start(self) -> DaskExecutor:
        """Connect the client (start the local cluster first when there is no address)."""
        from distributed import Client, LocalCluster

        if self.client_ is not None:
            return self
        if self.address:
            self.client_ = Client(self.address, timeout="30s")
        else:
            self.cluster_ = LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=self.threads_per_worker,
                processes=self.processes,
                dashboard_address=None,
            )
            self.client_ = Client(self.cluster_)
        return self

    @property
    def client(self) -> Client:
        if self.client_ is None:
            self.start()
        assert self.client_ is not None
        return self.client_

    def map(self, fn: Callable[..., R], items: Sequence[Any], shared: Any = None, desc: str = "") -> list[R]:
        if not items:
            return []
        client = self.client
        # data goes to the workers by scatter, not inside the task graph (large graphs are slow and warn)
        parts = client.scatter(list(items), hash=False)
        if shared is None:
            futures = client.map(fn, parts, pure=False)
        else:
            shared_f = client.scatter(shared, broadcast=True, hash=False)
            futures = client.map(fn, [shared_f] * len(items), parts, pure=False)
        _wait_with_progress(futures, desc)
        return list(client.gather(futures))

    def describe(self) -> dict[str, Any]:
        workers = self.client.scheduler_info().get("workers", {}) if self.client_ is not None else {}
        return {
            "kind": "dask",
            "scheduler": self.address or "LocalCluster",
            "n_workers": len(workers),
            "threads": int(sum(w.get("nthreads", 0) for w in workers.values())),
        }

    def close(self) -> None:
        if self.client_ is not None:
            self.client_.close()
            self.client_ = None
        if self.cluster_ is not None:
            self.cluster_.close()
            self.cluster_ = None


def _wait_with_progress(futures: list[Any], desc: str) -> None:
    from distributed import as_completed

    bar = _progress(range(len(futures)), desc)
    for _ in as_completed(futures):
        bar.update(1) if hasattr(bar, "update") else None
    if hasattr(bar, "close"):
        bar.close()


def make_executor(kind: ExecutorKind, address: str | None = None) -> Executor:
    """``local`` or ``dask`` (a ``LocalCluster`` of 1 worker × 2 threads when ``address`` is None)."""
    if kind == "local":
        return LocalExecutor()
    if kind == "dask":
        return DaskExecutor(address=address).start()
    raise ValueError(f"The 'executor' parameter must be one of ['local', 'dask']. Got {kind!r} instead.")


# ---------------------------------------------------------------- partitions (pure)
def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    if size < 1:
        raise ValueError(f"The 'size' parameter of chunks must be an int in the range [1, inf). Got {size} instead.")
    return [items[i : i + size] for i in range(0, len(items), size)]


def node_partitions(df: pd.DataFrame, n_parts: int, column: str = "node_id") -> list[pd.DataFrame]:
    """Split ``df`` into at most ``n_parts`` frames with whole ``column`` groups, balanced by rows.

    Groups are assigned greedily (largest first) to the lightest partition; each partition keeps
    the original row order, so concatenating and re-sorting gives back ``df``.
    """
    if n_parts < 1:
        raise ValueError(
            f"The 'n_parts' parameter of node_partitions must be an int in the range [1, inf). Got {n_parts} instead."
        )
    if df.empty:
        return []
    sizes = df.groupby(column, sort=True).size().sort_values(ascending=False, kind="stable")
    loads = [0] * min(n_parts, len(sizes))
    owner: dict[Any, int] = {}
    for key, n in sizes.items():
        j = loads.index(min(loads))
        owner[key] = j
        loads[j] += int(n)
    part = df[column].map(owner).to_numpy()
    return [df[part == j] for j in range(len(loads)) if (part == j).any()]


class PartitionedEncoder:
    """A ``TextEncoder`` whose ``encode`` splits texts into chunks mapped on an executor.

    ``n_calls`` counts calls to the wrapped encoder, ``n_texts`` the texts it encoded.
    """

    def __init__(self, encoder: Any, executor: Executor, chunk_size: int = 2048) -> None:
        self.encoder = encoder
        self.executor = executor
        self.chunk_size = chunk_size
        self.model_id: str = encoder.model_id
        self.revision: str = encoder.revision
        self.dim: int = encoder.dim
        self.n_calls = 0
        self.n_texts = 0

    def encode(
        self, texts: Sequence[str], kind: Any = "passage", batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        parts = chunks(list(texts), self.chunk_size)
        if not parts:
            return np.empty((0, self.dim), dtype=np.float32)

        def run(enc: Any, part: Sequence[str]) -> np.ndarray:
            return np.asarray(enc.encode(list(part), kind=kind, batch_size=batch_size), dtype=np.float32)

        out = self.executor.map(run, parts, shared=self.encoder, desc="编码" if show_progress else "")
        self.n_calls += len(parts)
        self.n_texts += len(texts)
        return np.vstack(out)
