"""How an entry point ends: exit codes, the one-line ``output/failure`` reason, and SIGTERM.

Every entry point (``train``, ``evaluate``, ``predict``) runs its body through
:func:`run_entry_point`, which configures logging, turns SIGTERM into a :class:`Stopped`
exception in the main thread, and maps the outcome to an exit code and a failure reason:

==========  ==================================================================================
exit code   meaning, and the start of ``output/failure``
==========  ==================================================================================
0           success; no failure file
1           ``ClientError: bad config: ...`` (or ``bad data``, ``bad model or data``): the user
            must fix the config, the hyperparameters, the channels or the data
            (:class:`~smglm.errors.ConfigError`, :class:`~smglm.errors.DataError`,
            :class:`~smglm.errors.ModelError`)
2           ``InternalError: <type>: <message>``: anything else, a bug or a broken image
130         ``Stopped: interrupted (SIGINT)``
143         ``Stopped: received SIGTERM ...``: StopTrainingJob or MaxRuntimeInSeconds (128 + 15)
==========  ==================================================================================

The failure file holds one line of at most 1024 characters (SageMaker's FailureReason is its
first 1024), written after everything else; the full traceback goes to the log on stderr.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

from smglm.contract import (
    EXIT_INTERNAL_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_USER_ERROR,
    FAILURE_LIMIT,
    INTERNAL_MARKER,
    STOPPED_MARKER,
    USER_MARKER,
)
from smglm.errors import ConfigError, DataError, ModelError
from smglm.runtime.logging_config import configure_logging
from smglm.runtime.paths import MLPaths

__all__ = [
    "Stopped",
    "failure_reason",
    "run_entry_point",
    "stop_on_sigterm",
    "write_failure",
]

log = logging.getLogger(__name__)

_USER_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (ConfigError, "bad config"),
    (DataError, "bad data"),
    (ModelError, "bad model or data"),
)


class Stopped(BaseException):
    """SIGTERM arrived: stop now. A BaseException, so ``except Exception`` does not swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"received {signal.Signals(signum).name}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _message(exc: BaseException) -> str:
    issues = getattr(exc, "issues", None)
    if issues:
        text = "; ".join(str(i) if i.field else i.message for i in issues)
        source = getattr(exc, "source", None)
        return f"{text} (in {source})" if source else text
    return str(exc) or type(exc).__name__


def _stop_in_chain(exc: BaseException) -> BaseException | None:
    """The :class:`Stopped` (or KeyboardInterrupt) that ``exc`` wraps, if any: a SIGTERM that
    lands while Python runs a class body (an import) comes out as the RuntimeError "Error
    calling __set_name__ ..." with the Stopped as its cause."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (Stopped, KeyboardInterrupt)):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def failure_reason(exc: BaseException) -> tuple[str, int]:
    """The one-line failure reason of ``exc`` and the exit code to end with (a stop wrapped
    in another exception is still a stop)."""
    exc = _stop_in_chain(exc) or exc
    if isinstance(exc, Stopped):
        reason = (
            f"{STOPPED_MARKER}: {exc} (StopTrainingJob or MaxRuntimeInSeconds); "
            "the job stopped before writing a model"
        )
        return _limit(reason), EXIT_STOPPED
    if isinstance(exc, KeyboardInterrupt):
        return f"{STOPPED_MARKER}: interrupted (SIGINT)", EXIT_INTERRUPTED
    for kind, label in _USER_ERRORS:
        if isinstance(exc, kind):
            return _limit(f"{USER_MARKER}: {label}: {_one_line(_message(exc))}"), EXIT_USER_ERROR
    reason = f"{INTERNAL_MARKER}: {type(exc).__name__}: {_one_line(_message(exc))}"
    return _limit(reason), EXIT_INTERNAL_ERROR


def _limit(text: str) -> str:
    return text if len(text) <= FAILURE_LIMIT else text[: FAILURE_LIMIT - 3] + "..."


def write_failure(paths: MLPaths, reason: str) -> None:
    """Write ``reason`` (one line) to ``output/failure``; a failure to write is only logged."""
    try:
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        paths.failure_file.write_text(_limit(_one_line(reason)) + "\n", encoding="utf-8")
    except OSError:
        log.exception("cannot write the failure file %s", paths.failure_file)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Stopped` in the main thread (once).

    Outside the main thread (where Python cannot install handlers) this does nothing. The
    previous handler is restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt us
        raise Stopped(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_entry_point(
    command: str,
    body: Callable[[MLPaths], None],
    argv: Sequence[str] | None = None,
) -> int:
    """Run ``body`` as the entry point ``command`` and return the process exit code.

    Parameters
    ----------
    command
        ``train``, ``evaluate`` or ``predict`` (for the log).
    body
        The work; it receives the ``/opt/ml`` tree and raises on failure.
    argv
        Extra command-line arguments; SageMaker passes none, and they are only logged.
    """
    from smglm._version import __version__
    from smglm.config.environment import TRAINING_JOB_NAME

    configure_logging()
    paths = MLPaths.from_env()
    with stop_on_sigterm():
        try:
            try:
                job = TRAINING_JOB_NAME.get()
                log.info(
                    "smglm %s %s: training job %s, python %s, /opt/ml at %s",
                    __version__,
                    command,
                    repr(job) if job else "(TRAINING_JOB_NAME not set: a local run)",
                    platform.python_version(),
                    paths.root,
                )
                if argv:
                    log.info("ignoring extra arguments %s", list(argv))
                if paths.failure_file.exists():  # left over from an earlier local run
                    paths.failure_file.unlink()
                body(paths)
                log.info("%s finished", command)
                return EXIT_OK
            except Exception as exc:
                reason, code = failure_reason(exc)
                log.error("%s failed: %s", command, reason, exc_info=exc)
                write_failure(paths, reason)
                return code
        except (Stopped, KeyboardInterrupt) as stop:
            reason, code = failure_reason(stop)
            log.error("%s", reason, exc_info=stop)
            write_failure(paths, reason)
            return code
