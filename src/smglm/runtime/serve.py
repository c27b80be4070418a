"""``serve``: the SageMaker hosting contract (``/ping``, ``/invocations``) for an smglm model.

``python -m smglm.runtime serve`` (or ``python -m smglm.runtime.serve``) loads the model first
and only then starts gunicorn: the listening socket opens after the model is in memory, so
``/ping`` can never answer 200 without a model. When the model cannot be loaded the command
refuses to start: it prints the reason and exits 1 (nothing listens). The model comes from
``<SMGLM_ML_ROOT or /opt/ml>/model`` (``--model-dir``): its ``model.json``, or the ``model.json``
member of a ``model.tar.gz`` there, read in memory after checking every member of the archive
as :mod:`smglm.archive` does (no absolute path or ``..``, no link or special file, no duplicate
path, a total size under ``SMGLM_MAX_ARCHIVE_MB``).

gunicorn runs in this process (PID 1 in the container) as the master of the worker processes.
Each worker reads whole requests on an event loop (:mod:`smglm.runtime._front`, the job nginx
does in SageMaker's own containers): slow clients hold a socket, never a thread, so ``/ping``
and scoring keep answering; the headers must arrive within 10 s (else 408); a body over the
limit gets 413, also when the client sends it all before reading. Batches over 16 KiB are
scored on the worker's threads (2), a few rows and ``/ping`` on the event loop. The master
turns SIGTERM into a graceful shutdown: requests in flight finish (within 20 s; SageMaker kills
30 s after SIGTERM), idle connections and those still sending headers close at once, and the
process exits 0. ``--worker-class gthread`` selects gunicorn's thread-per-connection worker
instead (the server before the front, which a few slow clients stall; kept for comparison).
Settings, from the environment as SageMaker sets it, each overridable by an option:

==================================  ================================  =====================
variable                            meaning                           default
==================================  ================================  =====================
``SAGEMAKER_BIND_TO_PORT``          port (``--port``)                 8080
``SAGEMAKER_MODEL_SERVER_WORKERS``  worker processes (``--workers``)  CPUs available
``SAGEMAKER_MODEL_SERVER_TIMEOUT``  seconds a silent worker may take  60
``SAGEMAKER_MAX_PAYLOAD_IN_MB``     largest body, MiB (batch)         6
==================================  ================================  =====================
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from smglm.config.environment import (
    SAGEMAKER_BIND_TO_PORT,
    SAGEMAKER_MAX_PAYLOAD_IN_MB,
    SAGEMAKER_MODEL_SERVER_TIMEOUT,
    SAGEMAKER_MODEL_SERVER_WORKERS,
)
from smglm.contract import EXIT_USER_ERROR
from smglm.errors import ConfigError, Issue, MissingDependency, ModelError, SmglmError
from smglm.glm.model import PortableModel
from smglm.runtime._app import ServeApp
from smglm.runtime.logging_config import configure_logging
from smglm.runtime.paths import MLPaths, usable_cores

__all__ = ["load_serving_model", "main"]

log = logging.getLogger(__name__)

#: Seconds in-flight requests get after SIGTERM (SageMaker sends SIGKILL 30 s after SIGTERM).
GRACEFUL_TIMEOUT = 20
#: Seconds an idle kept-alive connection stays open.
KEEPALIVE = 60
#: Threads per worker: the work is CPU-bound, so a few suffice.
THREADS = 2
#: Worker classes: ``asyncio`` (the front of :mod:`smglm.runtime._front`) or gunicorn's ``gthread``.
WORKER_CLASSES = ("asyncio", "gthread")
_MAX_MODEL_JSON_BYTES = 64 * 1024 * 1024


def load_serving_model(path: str | Path) -> PortableModel:
    """Load the model to serve from a model directory (or a ``model.tar.gz`` file).

    Parameters
    ----------
    path
        A directory holding ``model.json``, or holding only ``model.tar.gz`` (whose root
        ``model.json`` is read in memory, nothing is extracted); or such an archive itself.

    Raises
    ------
    ModelError
        No model there, an unsafe or unreadable archive, or an invalid ``model.json``.
    """
    p = Path(path)
    if p.is_file() and p.name.endswith((".tar.gz", ".tgz", ".tar")):
        return _from_archive(p)
    if not p.is_dir():
        raise ModelError(
            f"model directory {str(p)!r} does not exist; pass --model-dir or set "
            "SMGLM_ML_ROOT (the model is read from <root>/model)"
        )
    if (p / "model.json").is_file():
        return PortableModel.load(p / "model.json")
    if (p / "model.tar.gz").is_file():
        return _from_archive(p / "model.tar.gz")
    found = sorted(c.name for c in p.iterdir())[:10]
    raise ModelError(f"no model.json (nor a model.tar.gz holding one) in {str(p)!r}; found {found}")


def _from_archive(path: Path) -> PortableModel:
    """The root ``model.json`` of a model archive, read in memory after every member has been
    checked (:func:`smglm.archive.read_member`: the same checks as the batch jobs' unpacking)."""
    from smglm.archive import read_member
    from smglm.config.environment import max_archive_bytes

    raw = read_member(
        path,
        "model.json",
        error=ModelError,
        max_bytes=max_archive_bytes(),
        max_member_bytes=_MAX_MODEL_JSON_BYTES,
    )
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"model.json in {path.name} is not JSON: {exc}") from None
    return PortableModel.from_dict(data)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="serve", description="Serve an smglm model on SageMaker's /ping and /invocations."
    )
    p.add_argument("--model-dir", help="model directory (default: <SMGLM_ML_ROOT>/model)")
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="port (default: $SAGEMAKER_BIND_TO_PORT or 8080)")
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes (default: $SAGEMAKER_MODEL_SERVER_WORKERS or the number of CPUs)",
    )
    p.add_argument(
        "--threads", type=int, default=THREADS, help=f"threads per worker (default {THREADS})"
    )
    p.add_argument(
        "--worker-class",
        choices=WORKER_CLASSES,
        default="asyncio",
        help="asyncio (default): requests are read on an event loop, slow clients cost no "
        "thread; gthread: gunicorn's thread-per-connection worker (slow clients stall it; "
        "for comparison)",
    )
    p.add_argument(
        "--timeout",
        type=int,
        help="seconds before a silent worker is restarted "
        "(default: $SAGEMAKER_MODEL_SERVER_TIMEOUT or 60)",
    )
    p.add_argument(
        "--max-payload-mb",
        type=int,
        help="largest request body in MiB (default: $SAGEMAKER_MAX_PAYLOAD_IN_MB or 6)",
    )
    return p


def _settings(args: argparse.Namespace) -> dict[str, int]:
    """The server settings: options first, then the environment, then the defaults."""
    values = {
        "port": _first(args.port, SAGEMAKER_BIND_TO_PORT.get(), 8080),
        "workers": _first(args.workers, SAGEMAKER_MODEL_SERVER_WORKERS.get(), usable_cores()),
        "threads": args.threads,
        "timeout": _first(args.timeout, SAGEMAKER_MODEL_SERVER_TIMEOUT.get(), 60),
        "payload_mb": _first(args.max_payload_mb, SAGEMAKER_MAX_PAYLOAD_IN_MB.get(), 6),
    }
    issues = [
        Issue(name, f"must be at least 1; got {value}", value)
        for name, value in values.items()
        if name != "port" and value < 1
    ]
    if not 0 <= values["port"] <= 65535:
        issues.append(Issue("port", f"must be in 0..65535; got {values['port']}", values["port"]))
    if issues:
        raise ConfigError(issues, source="serve settings")
    return values


def _first(*values: int | None) -> int:
    return next(v for v in values if v is not None)


def _gunicorn_server(app: ServeApp, options: dict[str, Any], worker_class: str = "asyncio") -> Any:
    """A gunicorn application (``BaseApplication``) that serves ``app`` with ``options``."""
    try:
        from gunicorn.app.base import BaseApplication
        from gunicorn.workers.gthread import ThreadWorker
    except ImportError:
        raise MissingDependency("gunicorn", "serve", "serve") from None
    from gunicorn.arbiter import Arbiter

    from smglm.runtime._front import spawn_with_signals_blocked, unblock_stop_signals
    from smglm.runtime._front import worker_class as front_worker

    class _Arbiter(Arbiter):
        def spawn_worker(self) -> Any:
            return spawn_with_signals_blocked(super().spawn_worker)

    class _Worker(ThreadWorker):
        """gthread, but on SIGTERM idle kept-alive connections close at once. gunicorn 26
        waits for them to time out (``keepalive``), up to ``graceful_timeout``; 27 lingers
        2 s. Uses gthread internals where they exist; otherwise gthread's own behaviour."""

        def init_signals(self) -> None:
            super().init_signals()
            unblock_stop_signals()

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            queue = getattr(self, "method_queue", None)
            if queue is not None and hasattr(self, "keepalived_conns"):
                queue.defer(self._expire_keepalived)  # runs on the worker's main loop

        def _expire_keepalived(self) -> None:
            for conn in self.keepalived_conns:
                conn.timeout = 0
            self.murder_keepalived()

    class _Server(BaseApplication):
        def load_config(self) -> None:
            worker = _Worker if worker_class == "gthread" else front_worker(app.max_payload_bytes)
            for key, value in {**options, "worker_class": worker}.items():
                if key in self.cfg.settings:  # settings of newer gunicorns are skipped
                    self.cfg.set(key, value)

        def load(self) -> ServeApp:
            return app

        def run(self) -> None:
            try:
                _Arbiter(self).run()
            except RuntimeError as exc:  # as BaseApplication.run
                print(f"\nError: {exc}\n", file=sys.stderr)
                sys.exit(1)

    return _Server()


def _gunicorn_options(host: str, s: dict[str, int], ready: Callable[[Any], None]) -> dict[str, Any]:
    shm = Path("/dev/shm")
    return {
        "bind": [f"{host}:{s['port']}"],
        "workers": s["workers"],
        "threads": s["threads"],
        "timeout": s["timeout"],
        "graceful_timeout": min(GRACEFUL_TIMEOUT, s["timeout"]),
        "keepalive": KEEPALIVE,
        "accesslog": None,  # one line per request would flood CloudWatch
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "smglm-serve",
        "worker_tmp_dir": str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None,
        "control_socket_disable": True,  # gunicorn >= 25.1 would create ~/.gunicorn/gunicorn.ctl
        "when_ready": ready,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``serve``: load the model, then serve it with gunicorn until SIGTERM.

    Parameters
    ----------
    argv
        The arguments after ``serve`` (default ``sys.argv[1:]``); see ``--help``.

    Returns
    -------
    int
        1 when the model or the settings are unusable (nothing was started). Once serving,
        gunicorn's master ends the process itself: exit 0 after SIGTERM or SIGINT.
    """
    args = _parser().parse_args(argv)
    configure_logging()
    try:
        settings = _settings(args)
        model_dir = Path(args.model_dir) if args.model_dir else MLPaths.from_env().model_dir
        model = load_serving_model(model_dir)
        app = ServeApp(
            model, workers=settings["workers"], max_payload_bytes=settings["payload_mb"] * 2**20
        )
        summary = (
            f"model {str(model_dir)!r} ({model.family}/{model.link}, predictors "
            f"{model.input_columns}, exposure {model.exposure!r}, offset {model.offset!r})"
        )

        def ready(server: Any) -> None:
            server.log.info(
                "smglm serve: %s loaded; %d %s workers",
                summary,
                settings["workers"],
                args.worker_class,
            )

        options = _gunicorn_options(args.host, settings, ready)
        server = _gunicorn_server(app, options, args.worker_class)
    except SmglmError as exc:
        print(f"serve: cannot start: {exc}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    server.run()
    return 0  # not reached: gunicorn's master ends the process (exit 0 after SIGTERM)


if __name__ == "__main__":
    sys.exit(main())
