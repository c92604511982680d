"""Time splits of a training set: train on older query periods, validate and test on the newest.

Never random rows: every row of a query period lands in the same split, and every training period
precedes every validation period, which precedes every test period (``python_chrono_split`` idea).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.pairs import COL_AS_OF


@dataclass(frozen=True)
class TimeSplit:
    """The query periods (as-of dates) of each split, oldest first."""

    train: tuple[pd.Timestamp, ...]
    valid: tuple[pd.Timestamp, ...]
    test: tuple[pd.Timestamp, ...]

    def describe(self) -> dict[str, str]:
        def span(d: tuple[pd.Timestamp, ...]) -> str:
            return f"{d[0]:%Y-%m-%d}..{d[-1]:%Y-%m-%d} ({len(d)})"

        return {"train": span(self.train), "valid": span(self.valid), "test": span(self.test)}


def time_split(as_of: pd.Series, valid_periods: int, test_periods: int) -> TimeSplit:
    """Split the distinct as-of dates: the newest ``test_periods`` test, the ``valid_periods`` before valid, the rest train."""
    for name, v in (("valid_periods", valid_periods), ("test_periods", test_periods)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(
                f"The '{name}' parameter of time_split must be an int in the range [1, inf). Got {v!r} instead."
            )
    dates = tuple(pd.Timestamp(d) for d in np.sort(pd.to_datetime(as_of).dropna().unique()))
    need = valid_periods + test_periods + 1
    if len(dates) < need:
        raise ValueError(
            f"A time split needs at least {need} query periods (1 train, {valid_periods} valid, {test_periods} test); "
            f"got {len(dates)}: {[f'{d:%Y-%m-%d}' for d in dates]}."
        )
    n_train = len(dates) - valid_periods - test_periods
    return TimeSplit(dates[:n_train], dates[n_train : n_train + valid_periods], dates[n_train + valid_periods :])


def split_frame(frame: pd.DataFrame, split: TimeSplit) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, valid, test) rows of ``frame`` by its ``as_of`` column; row order is kept."""
    t = pd.to_datetime(frame[COL_AS_OF])
    return (
        frame[t.isin(split.train).to_numpy()],
        frame[t.isin(split.valid).to_numpy()],
        frame[t.isin(split.test).to_numpy()],
    )
