"""The refresh's logs: one logger (``sansetu.refresh``), text or JSON lines, to stderr and a file.

A JSON line has ``ts``, ``level``, ``logger``, ``msg`` and the record's ``extra`` fields (``event``,
``step``, the step's counts; docs/operations.md lists the events).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

LOGGER_NAME: Final = "sansetu.refresh"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the record's ``extra`` fields."""

    _SKIP = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in self._SKIP})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(logs_dir: Path, json_format: bool, name: str = "refresh", stream: Any = None) -> Path:
    """Log the refresh to stderr and to ``logs_dir/<name>.log`` (``.jsonl`` with ``json_format``)."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    path = logs_dir / f"{name}.{'jsonl' if json_format else 'log'}"
    text = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    fmt: logging.Formatter = JsonFormatter() if json_format else text
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(fmt)
    console = logging.StreamHandler(stream or sys.stderr)
    console.setFormatter(fmt)
    logger.addHandler(file_handler)
    logger.addHandler(console)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return path
