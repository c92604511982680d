"""The refresh as a scheduler sees it: one refresh mapped to an exit code, retries, the cron schedule.

Exit codes (cron, systemd, ``sansetu schedule``; docs/operations.md): 0 ok (published, or nothing
changed), 1 a step failed (the published run is untouched; rerun to resume), 2 bad input or
config, 3 another refresh holds the lock. Only 1 is retried.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal

from recommender.refresh.context import InputError
from recommender.refresh.executor import make_executor
from recommender.refresh.logs import LOGGER_NAME
from recommender.refresh.pipeline import RefreshResult, StepFailed, run_refresh
from recommender.runs import directory as runs
from recommender.settings import ConfigError, Settings

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_LOCKED: Final = 3


@dataclass(frozen=True)
class RefreshOutcome:
    """A refresh as a scheduler sees it: an exit code, a message, the result when there is one."""

    code: int
    message: str
    result: RefreshResult | None = None


def refresh_once(
    settings: Settings,
    as_of: date,
    *,
    inputs: Path | None = None,
    executor_kind: Literal["local", "dask"] | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = False,
    kill_at: str | None = None,
    encoder: Any = None,
) -> RefreshOutcome:
    """Run one refresh and map its outcome to an exit code (0 ok, 1 step failed, 2 bad input, 3 locked)."""
    log = logging.getLogger(LOGGER_NAME)
    kind = executor_kind or settings.refresh.executor
    try:
        executor = make_executor(kind, scheduler or settings.refresh.dask_scheduler)
    except (OSError, TimeoutError, ValueError) as exc:
        return RefreshOutcome(EXIT_BAD_INPUT, f"cannot start the {kind} executor: {exc}")
    try:
        res = run_refresh(
            settings, as_of, inputs=inputs, executor=executor, force=force, progress=progress, kill_at=kill_at,
            encoder=encoder,
        )  # fmt: skip
        return RefreshOutcome(EXIT_OK, res.message, res)
    except runs.RunLockedError as exc:
        log.warning(str(exc), extra={"event": "locked"})
        return RefreshOutcome(EXIT_LOCKED, str(exc))
    except (InputError, ConfigError) as exc:
        log.error(str(exc), extra={"event": "bad_input"})
        return RefreshOutcome(EXIT_BAD_INPUT, str(exc))
    except StepFailed as exc:
        return RefreshOutcome(EXIT_FAILED, f"{exc}; the published run is unchanged; rerun to resume")
    finally:
        executor.close()


def next_fire(cron: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that matches the cron expression."""
    from croniter import croniter

    if not croniter.is_valid(cron):
        raise ConfigError(f"refresh.schedule must be a cron expression like '30 2 * * *'; got {cron!r}")
    nxt: datetime = croniter(cron, after).get_next(datetime)
    return nxt


def with_retries(
    attempt: Callable[[], RefreshOutcome], retries: int, delay_s: float, sleep: Callable[[float], None]
) -> RefreshOutcome:
    """Run ``attempt``; retry failed steps (code 1) up to ``retries`` times, waiting ``n * delay_s``.

    A locked workspace (3) or bad input (2) is not retried: another run is busy, or a person must act.
    """
    log = logging.getLogger(LOGGER_NAME)
    out = attempt()
    for n in range(1, retries + 1):
        if out.code != EXIT_FAILED:
            break
        log.warning("attempt %d failed (%s); retry in %.0fs", n, out.message, n * delay_s, extra={"event": "retry"})
        sleep(n * delay_s)
        out = attempt()
    return out


def run_schedule(
    settings: Settings,
    attempt: Callable[[date], RefreshOutcome],
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    once: bool = False,
    max_cycles: int | None = None,
) -> RefreshOutcome:
    """Run refresh on ``settings.refresh.schedule`` forever (or ``max_cycles`` times), with retries.

    With ``once`` the refresh runs now, with the retry policy, and the outcome is returned (for cron
    or a systemd timer that does the timing). Each cycle's as-of date is the fire time's date.
    """
    cfg, log = settings.refresh, logging.getLogger(LOGGER_NAME)
    out = RefreshOutcome(EXIT_OK, "no cycle ran")
    cycles = 0
    while max_cycles is None or cycles < max_cycles:
        if once:
            fire = now()
        else:
            fire = next_fire(cfg.schedule, now())
            log.info("next refresh at %s", fire.isoformat(), extra={"event": "scheduled", "at": fire.isoformat()})
            sleep(max(0.0, (fire - now()).total_seconds()))
        out = with_retries(functools.partial(attempt, fire.date()), cfg.retries, cfg.retry_delay_s, sleep)
        log.info("refresh exit %d: %s", out.code, out.message, extra={"event": "cycle_done", "code": out.code})
        cycles += 1
        if once:
            break
    return out
