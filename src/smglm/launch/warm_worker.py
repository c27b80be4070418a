"""The local backend's warm runtime worker, the zygote's side: ``python -m
smglm.launch.warm_worker serve HOME`` (started detached by :func:`smglm.launch.warm.ensure_worker`).

It imports numpy, pandas, pyarrow, scipy, glum, tabmat, matplotlib (Agg), the runtime's
``train`` and mlflow when installed (:data:`PRELOAD`), without running any computation (so no
OpenMP or BLAS thread pool exists when it forks), then listens on ``HOME/warm/worker.sock``.
For each job a supervisor sends, it forks a child that starts a new session, resets signal
handlers, takes exactly the job's environment, changes into the job's folder, writes fds 1 and
2 to the job's log and runs ``smglm.runtime`` ``train``, then ``os._exit``. The rules for
refusing a job and for exiting are in :mod:`smglm.launch.warm`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib
import io
import json
import os
import select
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from smglm.launch.warm import IDLE_SECONDS, _import_time_env, worker_dir

__all__ = ["PRELOAD", "main"]

#: Modules the zygote imports before it serves (those that are installed).
PRELOAD = (
    "numpy",
    "scipy.sparse",
    "scipy.stats",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "pyarrow.dataset",  # pandas.read_parquet
    "pyarrow.pandas_compat",
    "pandas.io.formats.csvs",  # the report's CSV files
    "tabmat",
    "glum",
    "narwhals._pandas_like.dataframe",  # glum and tabmat take DataFrames through narwhals
    "narwhals._pandas_like.namespace",
    "narwhals._interchange.dataframe",
    "narwhals.stable.v2._namespace",
    "yaml",
    "matplotlib",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "smglm.runtime.__main__",
    "smglm.runtime.train",
    "smglm.runtime.metrics",
    "smglm.runtime.report_files",
    "smglm.glm",
    "smglm.glm.engines.glum",
    "smglm.glm.report.figures",
    "smglm.glm.report",
    "smglm.glm.report.data",
    "smglm.tracking.pyfunc",
    "smglm.tracking.runs",
    "smglm.launch.local_runner",  # supervisors forked from here too (smglm.launch.warm)
    "mlflow",
)


# -- the zygote -------------------------------------------------------------------------------
class _Zygote:
    def __init__(self, home: Path, idle: float, lock_fd: int | None = None) -> None:
        self.folder = worker_dir(home)
        self.lock_fd = lock_fd
        self.idle = idle
        self.children: dict[int, socket.socket] = {}
        self.wake_fds: tuple[int, ...] = ()
        self.stopping = False
        self.sources: dict[str, int] = {}
        # before the imports, some of which set variables (e.g. KMP_INIT_AT_FORK)
        self.import_env = _import_time_env(dict(os.environ))

    def preload(self) -> None:
        for name in PRELOAD:
            try:
                importlib.import_module(name)
            except ImportError:
                continue
        with contextlib.suppress(Exception):  # Pillow imports its format plugins on first save
            importlib.import_module("PIL.Image").init()
        with contextlib.suppress(Exception):  # without mlflow there is nothing to prepare
            _prepare_tracking_store()
        from smglm import _version

        root = Path(_version.__file__).parent
        for module in list(sys.modules.values()):
            file = getattr(module, "__file__", None)
            if file and Path(file).is_relative_to(root):
                with contextlib.suppress(OSError):
                    self.sources[file] = os.stat(file).st_mtime_ns

    def stale(self) -> bool:
        for file, mtime in self.sources.items():
            try:
                if os.stat(file).st_mtime_ns != mtime:
                    return True
            except OSError:
                return True
        return False

    def refusal(self, request: dict[str, Any]) -> str | None:
        if request.get("python") != sys.executable:
            return f"interpreter {request.get('python')} is not the worker's {sys.executable}"
        if _import_time_env(request["env"]) != self.import_env:
            return "import-time environment variables differ from the worker's"
        if self.stale():
            self.stopping = True
            return "smglm's source changed since the worker started (it exits)"
        return None

    def serve(self) -> int:
        lock = self.lock_fd  # from ensure_worker, locked already; held for life
        if lock is None:
            lock = os.open(self.folder / "worker.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # another zygote serves this home
        self.lock_fd = lock
        (self.folder / "worker.pid").write_text(str(os.getpid()))
        signal.signal(signal.SIGTERM, self._on_term)
        started = time.monotonic()
        self.preload()
        sock_path = self.folder / "worker.sock"
        tmp = self.folder / f".worker.{os.getpid()}.sock"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(tmp))
        listener.listen(16)
        os.replace(tmp, sock_path)
        # a job's end wakes the loop at once (SIGCHLD through the wakeup pipe): the supervisor
        # learns the exit status without waiting for the next tick
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self.wake_fds = (wake_r, wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        print(f"warm worker {os.getpid()} ready in {time.monotonic() - started:.2f} s", flush=True)
        last = time.monotonic()
        try:
            while not self.stopping:
                ready, _, _ = select.select([listener.fileno(), wake_r], [], [], 0.2)
                if wake_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                if listener.fileno() in ready:
                    conn, _ = listener.accept()
                    self.handle(conn, listener)
                    last = time.monotonic()
                if self.reap():
                    last = time.monotonic()
                if not self.children and time.monotonic() - last > self.idle:
                    print(f"idle for {self.idle:g} s: exiting", flush=True)
                    break
                if not self.children and not os.path.exists(sock_path):
                    print("the socket (or the home) was removed: exiting", flush=True)
                    break
        finally:
            with contextlib.suppress(OSError):
                if os.stat(sock_path).st_ino == os.fstat(listener.fileno()).st_ino:
                    sock_path.unlink()
            listener.close()
            (self.folder / "worker.pid").unlink(missing_ok=True)
            for conn in self.children.values():
                conn.close()  # supervisors then watch their children themselves
        return 0

    def _on_term(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def handle(self, conn: socket.socket, listener: socket.socket) -> None:
        try:
            conn.settimeout(10.0)
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    raise OSError("connection closed before the request")
                data += chunk
            request = json.loads(data)
            why = self.refusal(request)
            if why:
                conn.sendall(json.dumps({"error": why}).encode() + b"\n")
                conn.close()
                return
            pid = os.fork()
            if pid == 0:
                code = 2
                try:
                    inherited = [listener, conn, *self.children.values()]
                    code = _child(request, inherited, self.lock_fd, self.wake_fds)
                except BaseException:
                    with contextlib.suppress(BaseException):
                        os.write(2, traceback.format_exc().encode())
                finally:
                    with contextlib.suppress(BaseException):
                        if request.get("exit_file"):
                            Path(request["exit_file"]).write_text(str(code))
                    os._exit(code)
            self.children[pid] = conn
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            what = request.get("role", "train")
            name = request["env"].get("TRAINING_JOB_NAME") or request["cwd"]
            print(f"{what} {name}: pid {pid}", flush=True)
        except (OSError, ValueError, KeyError) as exc:
            print(f"bad request: {exc}", flush=True)
            conn.close()

    def reap(self) -> bool:
        reaped = False
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped = True
            conn = self.children.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"status": status}).encode() + b"\n")
                conn.close()
        return reaped


def _child(
    request: dict[str, Any],
    inherited: list[socket.socket],
    lock_fd: int | None,
    wake_fds: tuple[int, ...] = (),
) -> int:
    """In the forked child: become the job's ``train`` process (or, with ``role`` "supervise",
    its supervisor, :mod:`smglm.launch.local_runner` with ``argv``); return its exit code."""
    os.setsid()
    if lock_fd is not None:
        os.close(lock_fd)  # the lock means "a zygote runs": a job must not keep it
    signal.set_wakeup_fd(-1)
    for fd in wake_fds:
        os.close(fd)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as a fresh interpreter has it
    for s in inherited:
        s.close()
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    log_fd = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.close(null_fd)
    sys.stdout = io.TextIOWrapper(
        open(1, "wb", buffering=0, closefd=False),  # noqa: SIM115
        encoding="utf-8",
        errors="backslashreplace",
        write_through=True,
    )
    sys.stderr = io.TextIOWrapper(
        open(2, "wb", buffering=0, closefd=False),  # noqa: SIM115
        encoding="utf-8",
        errors="backslashreplace",
        write_through=True,
    )
    random_state = sys.modules.get("numpy.random")
    if random_state is not None:
        random_state.seed()  # fresh entropy, as a cold process
    _apply_numpy_hugepage_setting()
    if request.get("role") == "supervise":
        from smglm.launch import local_runner

        argv = [str(a) for a in request["argv"]]
        sys.argv = [local_runner.__file__ or "smglm.launch.local_runner", *argv]
        try:
            return int(local_runner.main(argv))
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
    from smglm.runtime import __main__ as runtime

    sys.argv = [runtime.__file__ or "smglm.runtime", "train"]
    try:
        code = runtime.main(["train"])
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    return int(code)


def _prepare_tracking_store() -> None:
    """Import mlflow's SQL store with alembic and configure its ORM mappers (no database is
    opened): 0.5 s once here, and a forked supervisor then opens a job's sqlite store in about
    0.04 s instead of 0.55 s."""
    for name in (
        "mlflow.store.tracking.sqlalchemy_store",
        "mlflow.store.tracking.dbmodels.models",
        "alembic.config",
        "alembic.script",
        "alembic.migration",
        "alembic.runtime.migration",
    ):
        importlib.import_module(name)
    importlib.import_module("sqlalchemy.orm").configure_mappers()


def _apply_numpy_hugepage_setting() -> None:
    """Apply the job's ``NUMPY_MADVISE_HUGEPAGE`` as numpy does when it is imported (a cold
    process reads it then; here numpy was imported by the zygote)."""
    multiarray = sys.modules.get("numpy._core.multiarray")
    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    raw = os.environ.get("NUMPY_MADVISE_HUGEPAGE")
    if setter is not None and raw is not None:
        with contextlib.suppress(ValueError):
            setter(bool(int(raw)))


def main(argv: list[str] | None = None) -> int:
    """``python -m smglm.launch.warm_worker serve HOME [--idle SECONDS]``: run the zygote."""
    parser = argparse.ArgumentParser(prog="smglm.launch.warm_worker")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("home")
    parser.add_argument("--idle", type=float, default=IDLE_SECONDS)
    parser.add_argument("--lock-fd", type=int, default=None)
    args = parser.parse_args(argv)
    home = Path(args.home).absolute()
    worker_dir(home).mkdir(parents=True, exist_ok=True)
    return _Zygote(home, args.idle, args.lock_fd).serve()


if __name__ == "__main__":
    sys.exit(main())
