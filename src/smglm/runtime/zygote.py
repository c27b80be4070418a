"""The warm worker (zygote) of the local backend: ``python -m smglm.runtime.zygote serve``.

Started detached by the local backend's client (:mod:`smglm.launch.warm`), one per smglm home.
It imports numpy, pandas, pyarrow, scipy, glum, tabmat, matplotlib (Agg), the runtime's
``train`` and mlflow when installed (:data:`PRELOAD`, plus the modules the client names with
``--preload``), without running any computation, then listens on its socket. For each request
it forks a child that starts a new session, resets signal handlers, takes exactly the job's
environment, changes into the job's folder, writes fds 1 and 2 to the job's log and runs the
``main(argv)`` of the requested module (``smglm.runtime.__main__`` with ``train`` for a job's
training; a module the client preloaded, e.g. the job's supervisor), then ``os._exit``.

Rules, all decided here:

- access: the socket is mode 0600 in a 0700 folder, and a connection from another user
  (``SO_PEERCRED``) is closed unanswered;
- a request is refused (the client then starts a cold process) when it comes from another
  interpreter, names a module that was not preloaded for it, or its environment differs from
  the worker's in a variable that is not known to be read only after start-up
  (:func:`environment_difference`; the answer names the variable);
- the worker is stale, refuses the request and exits (the next job starts a fresh one) when any
  loaded module changed since it started: smglm's own sources or any installed package (an
  upgrade changes the package's folders; a source outside site-packages and the standard
  library is compared file by file; :meth:`Zygote.changed_file`);
- it exits after ``--idle`` seconds without a job, on SIGTERM, and when its socket is gone (the
  home was deleted).

It holds the ``flock`` on ``--lock`` for its whole life (handed over by the client with
``--lock-fd``): the client reads it as alive while the lock is held. This module never imports
:mod:`smglm.launch`: the modules it runs for the client are named by the client.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import importlib
import io
import json
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = [
    "ALLOWED_PREFIXES",
    "ALLOWED_VARIABLES",
    "IDLE_SECONDS",
    "PRELOAD",
    "TRAIN_MODULE",
    "Zygote",
    "environment_difference",
    "main",
]

#: A worker exits after this many seconds without a job.
IDLE_SECONDS = 900.0
#: The module whose ``main(["train"])`` runs a job's training.
TRAIN_MODULE = "smglm.runtime.__main__"

#: Modules the worker imports before it serves (those that are installed).
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
    "zstandard",  # pandas 2's to_csv imports it where installed (SageMaker Distribution has it)
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
    TRAIN_MODULE,
    "smglm.runtime.train",
    "smglm.runtime.metrics",
    "smglm.runtime.report_files",
    "smglm.glm",
    "smglm.glm.points",  # every fit asks it first (duckdb itself only when it aggregates)
    "smglm.glm.engines.glum",
    "smglm.glm.report.figures",
    "smglm.glm.report",
    "smglm.glm.report.data",
    "smglm.tracking.pyfunc",
    "smglm.tracking.runs",
    "mlflow",
)

#: Variables a job may set differently from the worker: read when a job runs, never at
#: interpreter start-up or import: the job's identity and ``/opt/ml`` root, smglm's settings,
#: MLflow's (except the two its import reads), AWS's and SageMaker's; those the fork applies
#: itself (``PYTHONUNBUFFERED``: the child's output is unbuffered anyway;
#: ``NUMPY_MADVISE_HUGEPAGE``; glibc's ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``,
#: by ``mallopt``); and bookkeeping no library reads (shells', Jupyter's, pytest's).
ALLOWED_VARIABLES = frozenset(
    {
        "TRAINING_JOB_NAME",
        "TRAINING_JOB_ARN",
        "SMGLM_ML_ROOT",
        "PYTHONUNBUFFERED",
        "NUMPY_MADVISE_HUGEPAGE",
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_TRIM_THRESHOLD_",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
        "PYTEST_CURRENT_TEST",
    }
)
#: Prefixes of variables a job may set differently (see :data:`ALLOWED_VARIABLES`).
ALLOWED_PREFIXES = ("SMGLM_", "MLFLOW_", "AWS_", "SM_", "SAGEMAKER_", "JPY_")
#: Read when mlflow is imported, so they must match although they start with ``MLFLOW_``.
_READ_AT_IMPORT = frozenset({"MLFLOW_CONFIGURE_LOGGING", "MLFLOW_LOGGING_LEVEL"})


def _allowed(name: str) -> bool:
    if name in _READ_AT_IMPORT:
        return False
    return name in ALLOWED_VARIABLES or name.startswith(ALLOWED_PREFIXES)


def environment_difference(job: dict[str, str], worker: dict[str, str]) -> list[str]:
    """The variables, sorted, that make a job's environment unfit for this worker: set to
    another value, or set on one side only, and not allowed to differ."""
    names = set(job) | set(worker)
    return sorted(n for n in names if job.get(n) != worker.get(n) and not _allowed(n))


def _start_time(pid: int) -> int | None:
    """Process ``pid``'s start time (clock ticks since boot, ``/proc/<pid>/stat`` field 22):
    with the pid, it tells the client's supervisor this very child from a later one."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        return int(text[text.rfind(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _installer_roots() -> tuple[str, ...]:
    """Folders that only installers change (the standard library, site-packages): they
    replace, add and remove files, which changes the folder's modification time."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    roots = [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths]
    roots += [*site.getsitepackages(), site.getusersitepackages()]
    return tuple(sorted({os.path.join(os.path.realpath(r), "") for r in roots}))


def _loaded_files(roots: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """What tells whether a loaded module changed: for a module under one of ``roots``
    (:func:`_installer_roots`), its folder's modification time and size (an upgrade replaces
    files); for any other (smglm's sources, editable installs, ``PYTHONPATH``), its file's
    modification time and size, as an editor changes it in place."""
    files: dict[str, tuple[int, int]] = {}
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str):
            continue
        real = os.path.realpath(file)
        path = os.path.dirname(real) if real.startswith(roots) else real
        if path not in files:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                files[path] = (st.st_mtime_ns, st.st_size)
    return files


# -- the zygote -------------------------------------------------------------------------------
class Zygote:
    """The worker's state and loop: ``socket_path`` to listen on, ``lock_path`` to hold (or the
    already locked ``lock_fd``), ``entries``: modules the client preloads and may ask to run."""

    def __init__(
        self,
        socket_path: Path,
        lock_path: Path,
        idle: float,
        lock_fd: int | None = None,
        entries: tuple[str, ...] = (),
    ) -> None:
        self.socket_path = socket_path
        self.lock_path = lock_path
        self.lock_fd = lock_fd
        self.idle = idle
        self.entries = entries
        self.uid = os.getuid()  # the only user whose requests are served
        self.children: dict[int, socket.socket] = {}
        # a job's training, by the connection of the supervisor that asked for it: when that
        # connection closes unanswered, the supervisor is gone and the training is ended
        self.trainings: dict[int, socket.socket] = {}
        self.wake_fds: tuple[int, ...] = ()
        self.stopping = False
        self.files: dict[str, tuple[int, int]] = {}
        self.installed = _installer_roots()  # folders compared as a whole
        # before the imports, some of which set variables (e.g. KMP_INIT_AT_FORK)
        self.env = dict(os.environ)

    def preload(self) -> None:
        for name in (*PRELOAD, *self.entries):
            try:
                importlib.import_module(name)
            except ImportError:
                continue
        with contextlib.suppress(Exception):  # Pillow imports its format plugins on first save
            importlib.import_module("PIL.Image").init()
        with contextlib.suppress(Exception):  # without mlflow there is nothing to prepare
            _prepare_tracking_store()
        _warm_lazy_caches()
        self.record_files()
        # the preloaded objects never die: out of the collector's sight, so that a job's first
        # full collection does not walk (and copy, page by page) the worker's whole heap
        gc.collect()
        gc.freeze()

    def record_files(self) -> None:
        """Note what tells whether any loaded module changed (smglm's and every other
        package's, see :func:`_loaded_files`): :meth:`changed_file` compares on each request."""
        self.files = _loaded_files(self.installed)

    def changed_file(self) -> str | None:
        """The first loaded module's file (or installed folder) that changed or went since
        :meth:`record_files`."""
        for file, (mtime, size) in self.files.items():
            try:
                st = os.stat(file)
            except OSError:
                return file
            if st.st_mtime_ns != mtime or st.st_size != size:
                return file
        return None

    def refusal(self, request: dict[str, Any]) -> str | None:
        """Why the worker will not run ``request`` (None: it will)."""
        if request.get("python") != sys.executable:
            return f"interpreter {request.get('python')} is not the worker's {sys.executable}"
        module = request.get("module")
        if module != TRAIN_MODULE and module not in self.entries:
            return f"module {module!r} is not one the worker runs: {[TRAIN_MODULE, *self.entries]}"
        differ = environment_difference(request["env"], self.env)
        if differ:
            shown = ", ".join(differ[:5]) + (", ..." if len(differ) > 5 else "")
            return f"environment variable(s) {shown} differ from the worker's"
        changed = self.changed_file()
        if changed:
            self.stopping = True
            return f"{changed} changed since the worker started (it exits)"
        return None

    def peer_allowed(self, conn: socket.socket) -> bool:
        """Whether the process at the other end of ``conn`` runs as this worker's user."""
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return uid == self.uid

    def serve(self) -> int:
        lock = self.lock_fd  # from the client, locked already; held for life
        if lock is None:
            lock = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # another worker serves this home
        self.lock_fd = lock
        signal.signal(signal.SIGTERM, self._on_term)
        started = time.monotonic()
        self.preload()
        sock_path = self.socket_path
        sock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(sock_path.parent, 0o700)
        tmp = sock_path.with_name(f".{sock_path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        umask = os.umask(0o177)
        try:
            listener.bind(str(tmp))
        finally:
            os.umask(umask)
        os.chmod(tmp, 0o600)
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
                watched = [c.fileno() for c in self.trainings.values()]
                ready, _, _ = select.select([listener.fileno(), wake_r, *watched], [], [], 0.2)
                if watched:
                    self.end_orphans(set(ready))
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
            for conn in self.children.values():
                conn.close()  # supervisors then watch their children themselves
        return 0

    def _on_term(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def handle(self, conn: socket.socket, listener: socket.socket) -> None:
        """Answer one connection: refuse it, or fork its child and answer the child's pid and
        start time (the wait status follows when :meth:`reap` collects it)."""
        fds: list[int] = []
        try:
            if not self.peer_allowed(conn):
                print("refused a connection from another user", flush=True)
                conn.close()
                return
            conn.settimeout(10.0)
            # fds: files the child keeps open for life (a supervisor's lock)
            data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 4)
            for fd in fds:
                os.set_inheritable(fd, False)
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
            if request["module"] == TRAIN_MODULE:
                self.trainings[pid] = conn
            answer = {"pid": pid, "start": _start_time(pid)}
            conn.sendall(json.dumps(answer).encode() + b"\n")
            name = request["env"].get("TRAINING_JOB_NAME") or request["cwd"]
            print(f"{request['module']} {name}: pid {pid}", flush=True)
        except (OSError, ValueError, KeyError) as exc:
            print(f"bad request: {exc}", flush=True)
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)  # the child has its copies

    def end_orphans(self, ready: set[int]) -> None:
        """SIGKILL (with its process group) each training whose supervisor closed its
        connection: the supervisor died (a supervisor reads until the status comes). The
        child is not reaped yet, so its pid cannot have been reused."""
        for pid, conn in list(self.trainings.items()):
            if conn.fileno() not in ready:
                continue
            try:
                gone = conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                gone = False
            except OSError:
                gone = True
            if gone:
                del self.trainings[pid]
                print(f"training {pid}: its supervisor is gone, ending it", flush=True)
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

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
            self.trainings.pop(pid, None)
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
    """In the forked child: become the process of ``request``'s module and ``argv`` (a job's
    ``train``, or its supervisor); return its exit code."""
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
    _apply_malloc_settings()
    module = importlib.import_module(request["module"])
    argv = [str(a) for a in request["argv"]]
    sys.argv = [module.__file__ or request["module"], *argv]
    try:
        return int(module.main(argv))
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()


def _prepare_tracking_store() -> None:
    """Import mlflow's SQL store with alembic and configure its ORM mappers (no database is
    opened): once here, instead of in every forked supervisor that opens a job's sqlite store."""
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


#: glibc's ``mallopt`` parameters that a cold process reads from these variables at start-up.
_MALLOPT = {"MALLOC_TRIM_THRESHOLD_": -1, "MALLOC_MMAP_THRESHOLD_": -3}


def _apply_malloc_settings() -> None:
    """Apply the job's ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` as glibc does
    when a process starts (here the process was forked from the zygote): ``mallopt``. Nothing
    where the C library has no ``mallopt`` (not glibc)."""
    wanted = {k: os.environ[k] for k in _MALLOPT if os.environ.get(k)}
    if not wanted or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    for name, value in wanted.items():
        with contextlib.suppress(ValueError):
            mallopt(_MALLOPT[name], int(value))


def _warm_lazy_caches() -> None:
    """Fill the caches libraries fill on their first call, so each forked job does not: the
    entry points narwhals looks up when a DataFrame first reaches glum and tabmat."""
    with contextlib.suppress(Exception):
        importlib.import_module("narwhals.plugins")._discover_entrypoints()


def main(argv: list[str] | None = None) -> int:
    """``python -m smglm.runtime.zygote serve --socket PATH --lock PATH [--idle SECONDS]
    [--lock-fd FD] [--preload MODULE ...]``: run the worker."""
    parser = argparse.ArgumentParser(prog="smglm.runtime.zygote")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--socket", required=True, type=Path, help="the socket to listen on")
    parser.add_argument("--lock", required=True, type=Path, help="the lock held for life")
    parser.add_argument("--idle", type=float, default=IDLE_SECONDS)
    parser.add_argument("--lock-fd", type=int, default=None, help="the lock, taken already")
    parser.add_argument(
        "--preload", action="append", default=[], help="a module to preload and run on request"
    )
    args = parser.parse_args(argv)
    zygote = Zygote(
        args.socket.absolute(),
        args.lock.absolute(),
        args.idle,
        args.lock_fd,
        entries=tuple(args.preload),
    )
    return zygote.serve()


if __name__ == "__main__":
    sys.exit(main())
