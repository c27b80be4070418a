"""Keep the libraries' log noise out of the notebook cell: it goes to the launcher log.

Launching a job from a kernel calls MLflow there (the run is created before the job starts and
ended after it), and MLflow's sqlite store says ``Creating initial MLflow database tables`` and
``Updating database tables`` on stderr the first time, the SageMaker MLflow plugin and boto say
what credentials they found, and libraries warn about things meant for their developers. None
of it helps the person reading the cell. :func:`library_noise_to_log` sends those loggers, and
the warnings shown meanwhile, to ``<SMGLM_HOME>/launcher.log`` (:func:`launcher_log`) for as
long as a job is launched and followed. smglm's own messages (``[smglm] ...`` lines, errors)
are not touched.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["NOISY_LOGGERS", "launcher_log", "library_noise_to_log"]

#: The loggers whose records go to the launcher log while a job is launched and followed.
NOISY_LOGGERS = (
    "mlflow",
    "alembic",
    "sagemaker",
    "sagemaker_mlflow",
    "mlflow_sagemaker",
    "botocore.credentials",
    "urllib3.connectionpool",
)
_HANDLER_NAME = "smglm-launcher-log"


def launcher_log() -> Path:
    """The launcher log: ``launcher.log`` in smglm's working folder (``SMGLM_HOME``, default
    ``.smglm``)."""
    from smglm.launch.backend import default_home

    return default_home() / "launcher.log"


@contextmanager
def library_noise_to_log(
    path: str | Path | None = None, *, mlflow: bool = False, warnings_too: bool = True
) -> Iterator[Path]:
    """Route :data:`NOISY_LOGGERS` (and, with ``warnings_too``, the warnings shown) to the
    launcher log while the block runs; yield its path.

    ``mlflow``: import MLflow first (when it is installed), so that its own logging set-up,
    done once at import, happens before the routing and not inside the block where it would
    put its stderr handler back. ``warnings_too`` must be False outside the main thread
    (Python's warning display is process-wide).
    """
    if mlflow and "mlflow" not in sys.modules and importlib.util.find_spec("mlflow"):
        import mlflow as _mlflow  # noqa: F401  (its logging set-up, before the routing)
    target = Path(path) if path is not None else launcher_log()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(target, delay=True, encoding="utf-8")
    except OSError:  # an unwritable home: the noise is dropped rather than shown
        handler = logging.NullHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, list(logger.handlers), logger.propagate))
        logger.handlers = [handler]
        logger.propagate = False

    def to_log(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        record = logging.LogRecord(
            "py.warnings", logging.WARNING, filename, lineno,
            f"{category.__name__}: {message}", None, None,
        )  # fmt: skip
        handler.handle(record)

    try:
        if warnings_too:
            with warnings.catch_warnings():
                warnings.showwarning = to_log
                yield target
        else:
            yield target
    finally:
        for logger, handlers, propagate in saved:
            if logger.handlers == [handler]:  # not changed meanwhile by someone else
                logger.handlers = handlers
                logger.propagate = propagate
        handler.close()
