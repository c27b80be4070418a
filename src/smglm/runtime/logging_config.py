"""Logging of the runtime's entry points: one stderr handler on the root logger; libraries quiet.

Only the entry points (:func:`smglm.runtime.failure.run_entry_point`) call
:func:`configure_logging`; library modules just use ``logging.getLogger(__name__)``. Log lines
go to stderr and metric lines (:mod:`smglm.runtime.metrics`) to stdout; SageMaker sends both to
CloudWatch and matches its metric regexes on both.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from smglm.redaction import redact, secret_values

__all__ = ["QUIET_LOGGERS", "configure_logging", "set_level"]

#: Libraries whose INFO/DEBUG chatter is not the job's story.
QUIET_LOGGERS = (
    "matplotlib",
    "PIL",
    "fontTools",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "numexpr",
    "mlflow",
    "alembic",
    "git",
    "asyncio",
    "py4j",
    "pyspark",
    "duckdb",
)
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (pytest swaps it between tests)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        pass


class _RedactingFormatter(logging.Formatter):
    """Formats as usual, then drops credentials (a tracking URI's ``user:password@``, the
    values of secret environment variables) from the line and any traceback."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self.secrets = secret_values(os.environ)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def _not_quiet_library_chatter(record: logging.LogRecord) -> bool:
    """Drop records below WARNING that a quiet library logs on the root logger itself (py4j
    logs its connection resets at Spark's shutdown with ``logging.info``)."""
    if record.levelno >= logging.WARNING or record.name != "root":
        return True
    return not any(f"{os.sep}{name}{os.sep}" in record.pathname for name in QUIET_LOGGERS)


def configure_logging(level: int = logging.INFO) -> None:
    """Send log records of ``level`` and above to stderr, once (calling again replaces it).

    Python warnings (e.g. unseen categorical levels, dropped rows) are logged too, as WARNING.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_RedactingFormatter(_FORMAT))
    handler.addFilter(_not_quiet_library_chatter)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    logging.captureWarnings(True)


def set_level(level: int | None) -> None:
    """Change the root level (e.g. from ``sagemaker_container_log_level``); None does nothing."""
    if level is not None:
        logging.getLogger().setLevel(level)
