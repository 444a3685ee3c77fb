"""The library's logger (``dj.logger``, named ``dj_dagster``) and datajoint's log
format.

Importing the library changes no process-wide state: no ``sys.excepthook``, and no
handler on the root logger. The ``dj_dagster`` logger gets a console handler only when
asked, with :func:`log_to_console` or ``DJ_LOG_STREAM`` (``stdout`` or ``stderr``) set
in the environment; its level follows ``dj.config.loglevel`` (``DJ_LOG_LEVEL``) when
that is set. ``JOBS`` (15) is the level of populate's per-job messages.
"""

from __future__ import annotations

import logging
import os
import sys

JOBS = 15
logging.addLevelName(JOBS, "JOBS")

logger = logging.getLogger(__name__.split(".")[0])


class LevelAwareFormatter(logging.Formatter):
    """``[time] message`` for INFO and below, ``[time][LEVEL]: message`` for warnings,
    errors and JOBS, followed by the traceback and stack when the record has them."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%Y-%m-%d %H:%M:%S")
        if record.levelno >= logging.WARNING or record.levelno == JOBS:
            text = f"[{stamp}][{record.levelname}]: {record.getMessage()}"
        else:
            text = f"[{stamp}] {record.getMessage()}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


def log_to_console(stream=None, level: str | int | None = None) -> logging.Handler:
    """Send the library's messages to ``stream`` (default stdout) in datajoint's
    format; returns the handler (one only: calling again replaces it)."""
    for old in [h for h in logger.handlers if getattr(h, "_dj_console", False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(LevelAwareFormatter())
    handler._dj_console = True
    logger.addHandler(handler)
    if level is not None:
        logger.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


def jobs(message: str, *args, **kwargs) -> None:
    """Log a populate job message at the JOBS level."""
    logger.log(JOBS, message, *args, **kwargs)


_stream = os.environ.get("DJ_LOG_STREAM", "").strip().lower()
if _stream in ("stdout", "stderr"):
    log_to_console(sys.stderr if _stream == "stderr" else sys.stdout)
