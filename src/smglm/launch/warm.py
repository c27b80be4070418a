"""The local backend's warm worker, the client's side: start the home's worker, ask it to fork a
job's ``train`` (:class:`WarmLauncher`) or its supervisor, know whether it runs, stop it.

The worker itself (:mod:`smglm.runtime.zygote`, ``python -m smglm.runtime.zygote serve``, started
detached by :func:`ensure_worker` by module name: this module never imports the runtime) has
imported the runtime and its libraries and forks one isolated child per request: the local
counterpart of SageMaker's warm pools. A supervisor (:mod:`smglm.launch.supervisor`) sends one
JSON line per job: the job's whole environment, its ``/opt/ml`` folder and its log file; the
worker answers with the child's pid and start time and, when it has reaped the child, its wait
status (:class:`WarmProcess`). The worker decides what it refuses and when it is stale (see
:mod:`smglm.runtime.zygote`); the client then runs the cold subprocess and logs why.

Files, in ``HOME/warm/`` (mode 0700): ``worker.sock`` (0600), ``worker.lock`` (held by the
worker for its whole life: the worker runs exactly while it is held), ``worker.pid`` (its pid
and start time, written by the client that started it) and ``worker.log``. A pid alone is never
trusted: smglm signals the worker only while the lock is held and the pid file's pid still has
the recorded start time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, BinaryIO

from smglm.launch.processes import (
    ChildProcess,
    ProcessId,
    TrainingRequest,
    lock_held,
    take_lock,
)

__all__ = [
    "IDLE_SECONDS",
    "WarmLauncher",
    "WarmProcess",
    "ensure_worker",
    "shutdown_worker",
    "start_job",
    "start_supervisor",
    "worker_dir",
    "worker_pid",
]

#: A worker exits after this many seconds without a job (``--idle`` of the worker).
IDLE_SECONDS = 900.0
#: The worker's module, started by name.
WORKER_MODULE = "smglm.runtime.zygote"
#: The module that runs a job's training in the worker (``main(["train"])``).
TRAIN_MODULE = "smglm.runtime.__main__"
#: The job supervisor's module: the worker preloads it, so that a supervisor forks from it.
SUPERVISOR_MODULE = "smglm.launch.supervisor"
_READY_WAIT = 20.0  # how long a supervisor waits for a worker that is still importing


def worker_dir(home: str | Path) -> Path:
    """The worker's folder under smglm's home: socket, pid file, lock and log."""
    return Path(home) / "warm"


def _folder(home: str | Path) -> Path:
    """The worker's folder, created private to this user (0700)."""
    folder = worker_dir(home)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def _worker(home: str | Path) -> ProcessId | None:
    """The home's worker if it runs: its lock is held and its pid file names a process that
    still has the recorded start time."""
    folder = worker_dir(home)
    if not lock_held(folder / "worker.lock"):
        return None
    try:
        worker = ProcessId.parse((folder / "worker.pid").read_text())
    except OSError:
        return None
    return worker if worker is not None and worker.running() else None


def worker_pid(home: str | Path) -> int | None:
    """The pid of the home's worker if one is running, else None."""
    worker = _worker(home)
    return None if worker is None else worker.pid


def ensure_worker(
    home: str | Path, python: str | None = None, idle_seconds: float = IDLE_SECONDS
) -> None:
    """Start the home's worker, detached, unless one is running or starting; never waits.

    The lock is taken here and handed to the worker, so a supervisor that looks right after
    this call sees a worker starting (and waits for it) rather than none.
    """
    folder = _folder(home)
    fd = take_lock(folder / "worker.lock")
    if fd is None:
        return  # a worker runs or is starting
    try:
        cmd = [
            python or sys.executable,
            "-m",
            WORKER_MODULE,
            "serve",
            "--socket",
            str((folder / "worker.sock").absolute()),
            "--lock",
            str((folder / "worker.lock").absolute()),
            "--idle",
            str(idle_seconds),
            "--lock-fd",
            str(fd),
            "--preload",
            SUPERVISOR_MODULE,
        ]
        log = os.open(folder / "worker.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(folder),
                pass_fds=(fd,),
                # Python's view, which requests carry: C libraries (readline) may set more
                env=dict(os.environ),
                umask=0o077,  # what it forks (supervisors, jobs) writes files private to the user
            )
        finally:
            os.close(log)
        worker = ProcessId.of(proc.pid)
        if worker is not None:
            tmp = folder / f".worker.pid.{os.getpid()}"
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(worker.format())
            tmp.replace(folder / "worker.pid")
    finally:
        os.close(fd)  # the worker's copy keeps the lock


def shutdown_worker(home: str | Path, timeout: float = 10.0) -> bool:
    """Stop the home's worker (SIGTERM, SIGKILL after ``timeout``); running jobs go on.

    Returns whether a worker was running. Only the process that holds the worker's lock with
    the pid and start time its client recorded is signalled, never another that reuses its pid.
    """
    folder = worker_dir(home)
    deadline = time.monotonic() + timeout
    worker = _worker(home)
    # a worker just started holds the lock before its pid file is written
    while worker is None and lock_held(folder / "worker.lock") and time.monotonic() < deadline:
        time.sleep(0.05)
        worker = _worker(home)
    if worker is None:
        return False
    worker.signal(signal.SIGTERM)
    while worker.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    if worker.signal(signal.SIGKILL):
        while worker.running():
            time.sleep(0.05)
    return True


# -- the supervisor's side --------------------------------------------------------------------
class WarmProcess:
    """A training child forked by the zygote, with the parts of ``Popen``'s interface the
    supervisor uses (``pid``, ``poll``, ``wait``, ``send_signal``, ``kill``)."""

    def __init__(
        self,
        sock: socket.socket,
        reader: BinaryIO,
        child: ProcessId | None,
        pid: int,
        exit_file: Path,
    ) -> None:
        self.pid = pid
        self._child = child  # None: it had ended before its start time was read
        self.returncode: int | None = None
        self._sock = sock
        self._reader = reader
        self._exit_file = exit_file
        self._done = threading.Event()
        threading.Thread(target=self._read_status, daemon=True).start()

    def _read_status(self) -> None:
        code: int | None = None
        try:
            self._sock.settimeout(None)
            line = self._reader.readline()
            if line:
                code = os.waitstatus_to_exitcode(int(json.loads(line)["status"]))
        except (OSError, ValueError, KeyError):
            code = None
        finally:
            self._reader.close()
            self._sock.close()
        if code is None:  # the zygote died: the child is orphaned; watch it and read its file
            while self._child is not None and self._child.running():
                time.sleep(0.2)
            try:
                code = int(self._exit_file.read_text().strip())
            except (OSError, ValueError):
                code = -signal.SIGKILL
        self.returncode = code
        self._done.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(["smglm.runtime", "train"], timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None and self._child is not None:
            self._child.signal(sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _request(
    home: str | Path,
    request: Mapping[str, object],
    fds: tuple[int, ...] = (),
    wait: float = 0.0,
) -> tuple[socket.socket, BinaryIO, dict[str, object]]:
    """Send one request to the home's worker, waiting up to ``wait`` seconds for a worker that
    is still starting; the open socket, its reader and the answer (OSError or ValueError when
    there is no answer)."""
    folder = worker_dir(home)
    deadline = time.monotonic() + wait
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(10.0)
        while True:
            try:
                sock.connect(str(folder / "worker.sock"))
                break
            except OSError:
                # a worker still importing holds the lock: waiting costs no more than a cold
                # start would; no lock (none running) or too long: cold
                if not lock_held(folder / "worker.lock") or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.settimeout(60.0)  # the worker answers right after the fork
        data = json.dumps({**request, "python": sys.executable}).encode() + b"\n"
        if fds:
            sent = socket.send_fds(sock, [data], list(fds))
            sock.sendall(data[sent:])
        else:
            sock.sendall(data)
        reader = sock.makefile("rb")
        answer = json.loads(reader.readline() or b"{}")
    except (OSError, ValueError):
        sock.close()
        raise
    if "pid" not in answer:
        reader.close()
        sock.close()
        raise OSError(answer.get("error", "the warm worker closed the connection"))
    return sock, reader, answer


def start_supervisor(
    home: str | Path,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    argv: list[str],
    lock_fd: int,
) -> int | None:
    """Ask the home's worker, if it is ready now, to fork a job's supervisor
    (:mod:`smglm.launch.supervisor` with ``argv``, detached, with ``env``, in ``cwd``, its
    output to ``log_path``), handing it ``lock_fd`` (the job's ``runner.lock``, which it then
    holds for life): mlflow and the supervisor's modules are imported there already.
    Returns the supervisor's pid, or None (no worker ready, or it refused): start it cold then.
    """
    request = {
        "module": SUPERVISOR_MODULE,
        "argv": argv,
        "env": env,
        "cwd": str(cwd),
        "log": str(log_path),
    }
    try:
        sock, reader, answer = _request(home, request, fds=(lock_fd,))
    except (OSError, ValueError):
        return None
    reader.close()
    sock.close()  # the supervisor is detached: nobody waits for its status here
    return int(str(answer["pid"]))


def start_job(
    home: str | Path,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    exit_file: Path,
    say: Callable[[str], None],
) -> WarmProcess | None:
    """Ask the home's worker to fork the job's ``train``; None (and one line through ``say``
    that says why) when it cannot, so the caller runs the cold subprocess."""
    request = {
        "module": TRAIN_MODULE,
        "argv": ["train"],
        "env": env,
        "cwd": str(cwd),
        "log": str(log_path),
        "exit_file": str(exit_file),
    }
    try:
        sock, reader, answer = _request(home, request, wait=_READY_WAIT)
    except (OSError, ValueError) as exc:
        say(f"[smglm-local] warm worker unavailable ({exc}): cold start")
        return None
    pid = int(str(answer["pid"]))
    start = answer.get("start")
    child = ProcessId(pid, int(str(start))) if start is not None else None
    say(f"[smglm-local] training forked from the warm worker (pid {pid})")
    return WarmProcess(sock, reader, child, pid, exit_file)


class WarmLauncher:
    """Forks a job's ``train`` from ``home``'s warm worker (None when the worker cannot)."""

    def __init__(self, home: str | Path) -> None:
        self.home = home

    def start(
        self, request: TrainingRequest, out: IO[bytes], say: Callable[[str], None]
    ) -> ChildProcess | None:
        exit_file = request.folder / "train.exit"
        return start_job(self.home, request.env, request.ml, request.log, exit_file, say)
