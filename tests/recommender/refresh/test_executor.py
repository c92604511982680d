"""Executors: local and Dask give the same results; partitions keep groups whole."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import pytest

from recommender.refresh import executor as ex


@pytest.fixture(scope="module")
def dask_executor() -> Iterator[ex.DaskExecutor]:
    e = ex.DaskExecutor(address=None, n_workers=1, threads_per_worker=2, processes=False).start()
    yield e
    e.close()


class CountingEncoder:
    model_id = "fake"
    revision = "1"
    dim = 3

    def __init__(self) -> None:
        self.calls = 0

    def encode(
        self, texts: Sequence[str], kind: str = "passage", batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        self.calls += 1
        return np.asarray([[len(t), ord(t[0]) if t else 0, 1.0] for t in texts], dtype=np.float32)


def test_local_executor_maps_in_order() -> None:
    assert ex.LocalExecutor().map(lambda x: x * 2, [3, 1, 2]) == [6, 2, 4]
    assert ex.LocalExecutor().map(lambda s, x: s + x, [1, 2], shared=10) == [11, 12]


def test_dask_executor_matches_local(dask_executor: ex.DaskExecutor) -> None:
    items = list(range(20))
    assert dask_executor.map(lambda x: x * x, items) == [x * x for x in items]
    assert dask_executor.map(lambda s, x: s + x, [1, 2], shared=10) == [11, 12]
    assert dask_executor.describe() == {"kind": "dask", "scheduler": "LocalCluster", "n_workers": 1, "threads": 2}


def test_node_partitions_keep_nodes_whole_and_balance() -> None:
    df = pd.DataFrame({"node_id": list("aaaabbcccd"), "v": range(10)})
    parts = ex.node_partitions(df, 2)
    assert [sorted(set(p["node_id"])) for p in parts] == [["a", "d"], ["b", "c"]]
    pd.testing.assert_frame_equal(pd.concat(parts).sort_index(), df)


def test_node_partitions_rejects_zero_parts() -> None:
    msg = "The 'n_parts' parameter of node_partitions must be an int in the range [1, inf). Got 0 instead."
    with pytest.raises(ValueError, match=re.escape(msg)):
        ex.node_partitions(pd.DataFrame({"node_id": ["a"]}), 0)


def test_partitioned_encoder_counts_calls_and_keeps_order(dask_executor: ex.DaskExecutor) -> None:
    enc = CountingEncoder()
    texts = ["光纤", "激光器芯片", "a", "bb", "ccc"]
    wrapped = ex.PartitionedEncoder(enc, dask_executor, chunk_size=2)
    np.testing.assert_array_equal(wrapped.encode(texts), CountingEncoder().encode(texts))
    assert (wrapped.n_calls, wrapped.n_texts, enc.calls) == (3, 5, 3)


def test_make_executor_rejects_unknown_kind() -> None:
    msg = "The 'executor' parameter must be one of ['local', 'dask']. Got 'spark' instead."
    with pytest.raises(ValueError, match=re.escape(msg)):
        ex.make_executor("spark")  # type: ignore[arg-type]
