"""The local backend's warm runtime worker, the supervisor's side: start the per-home zygote,
ask it to fork a job's ``train``, watch that child, stop the zygote.

The zygote itself (:mod:`smglm.launch.warm_worker`, ``python -m smglm.launch.warm_worker serve
HOME``, started detached by :func:`ensure_worker`) has imported the runtime and its libraries and
forks one isolated child per training job: the local counterpart of SageMaker's warm pools. A
supervisor (:mod:`smglm.launch.local_runner`) sends one JSON line per job (:func:`start_job`):
the job's whole environment, its ``/opt/ml`` folder and its log file; the zygote answers with
the child's pid and, when it has reaped the child, its wait status (:class:`WarmProcess`).

The zygote refuses a job (the supervisor then runs the cold subprocess) when a variable that
takes effect at import time (``OMP_*``, ``OPENBLAS_*``, ``PYTHONPATH``, ...) differs from its
own, when the interpreter differs, or when a loaded smglm source file changed since it started
(it then exits, so the next job starts a fresh one). It exits after ``--idle`` seconds without
a job (default 900), on SIGTERM (:func:`shutdown_worker`), and when its socket is gone (the
home was deleted).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "IDLE_SECONDS",
    "WarmProcess",
    "ensure_worker",
    "shutdown_worker",
    "start_job",
    "start_supervisor",
    "worker_dir",
    "worker_pid",
]

#: A zygote exits after this many seconds without a job.
IDLE_SECONDS = 900.0
#: Environment variables read when a library loads: a job whose values differ runs cold.
IMPORT_TIME_PREFIXES = ("OMP_", "GOMP_", "KMP_", "OPENBLAS_", "MKL_", "GOTO", "BLIS_", "LD_")
IMPORT_TIME_NAMES = ("PYTHONPATH", "PYTHONHASHSEED", "PYTHONHOME", "MPLBACKEND", "MPLCONFIGDIR")
_READY_WAIT = 20.0  # how long a supervisor waits for a zygote that is still importing


def worker_dir(home: str | Path) -> Path:
    """The zygote's folder under smglm's home: socket, pid file, lock and log."""
    return Path(home) / "warm"


def _import_time_env(env: dict[str, str]) -> dict[str, str]:
    return {
        k: v for k, v in env.items() if k.startswith(IMPORT_TIME_PREFIXES) or k in IMPORT_TIME_NAMES
    }


def worker_pid(home: str | Path) -> int | None:
    """The pid of the home's zygote if one is running, else None."""
    try:
        pid = int((worker_dir(home) / "worker.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def _lock_free(folder: Path) -> bool:
    """True when no zygote holds the home's lock (none running or starting)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "worker.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def ensure_worker(
    home: str | Path, python: str | None = None, idle_seconds: float = IDLE_SECONDS
) -> None:
    """Start the home's zygote, detached, unless one is running or starting; never waits.

    The lock is taken here and handed to the zygote, so a supervisor that looks right after
    this call sees a zygote starting (and waits for it) rather than none.
    """
    folder = worker_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "worker.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # a zygote runs or is starting
        cmd = [python or sys.executable, "-m", "smglm.launch.warm_worker", "serve", str(home)]
        with open(folder / "worker.log", "ab") as out:
            subprocess.Popen(
                [*cmd, "--idle", str(idle_seconds), "--lock-fd", str(fd)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(folder),
                pass_fds=(fd,),
            )
    finally:
        os.close(fd)  # the zygote's copy keeps the lock


def shutdown_worker(home: str | Path, timeout: float = 10.0) -> bool:
    """Stop the home's zygote (SIGTERM, SIGKILL after ``timeout``); running jobs go on.

    Returns whether a zygote was running.
    """
    pid = worker_pid(home)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
    return True


# -- the supervisor's side --------------------------------------------------------------------
class WarmProcess:
    """A training child forked by the zygote, with the parts of ``Popen``'s interface the
    supervisor uses (``pid``, ``poll``, ``wait``, ``send_signal``, ``kill``)."""

    def __init__(self, sock: socket.socket, reader: BinaryIO, pid: int, exit_file: Path) -> None:
        self.pid = pid
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
            while _alive(self.pid):
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
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def start_supervisor(
    home: str | Path, env: dict[str, str], cwd: Path, log_path: Path, argv: list[str]
) -> int | None:
    """Ask the home's zygote, if it is ready now, to fork a job's supervisor
    (:mod:`smglm.launch.local_runner` with ``argv``, detached, with ``env``, in ``cwd``, its
    output to ``log_path``): mlflow and the supervisor's modules are imported there already.
    Returns the supervisor's pid, or None (no zygote ready, or it refused): start it cold then.
    """
    request = {
        "role": "supervise",
        "env": env,
        "cwd": str(cwd),
        "log": str(log_path),
        "argv": argv,
        "python": sys.executable,
    }
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(10.0)
        sock.connect(str(worker_dir(home) / "worker.sock"))
        sock.sendall(json.dumps(request).encode() + b"\n")
        with sock.makefile("rb") as reader:
            answer = json.loads(reader.readline() or b"{}")
    except (OSError, ValueError):
        return None
    finally:
        sock.close()  # the supervisor is detached: nobody waits for its status here
    pid = answer.get("pid")
    return int(pid) if pid else None


def start_job(
    home: str | Path,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    exit_file: Path,
    say: Callable[[str], None],
) -> WarmProcess | None:
    """Ask the home's zygote to fork the job's ``train``; None (and one line through ``say``)
    when it cannot, so the caller runs the cold subprocess."""
    folder = worker_dir(home)
    path = folder / "worker.sock"
    request = {
        "env": env,
        "cwd": str(cwd),
        "log": str(log_path),
        "exit_file": str(exit_file),
        "python": sys.executable,
    }
    deadline = time.monotonic() + _READY_WAIT
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        while True:
            try:
                sock.connect(str(path))
                break
            except OSError:
                # a zygote still importing holds the lock: waiting costs no more than a cold
                # start would; no lock (none running) or too long: cold
                if _lock_free(folder) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.settimeout(60.0)  # the zygote answers right after the fork
        sock.sendall(json.dumps(request).encode() + b"\n")
        reader = sock.makefile("rb")
        answer = json.loads(reader.readline() or b"{}")
        if "pid" not in answer:
            raise OSError(answer.get("error", "the warm worker closed the connection"))
    except (OSError, ValueError) as exc:
        sock.close()
        say(f"[smglm-local] warm worker unavailable ({exc}): cold start")
        return None
    say(f"[smglm-local] training forked from the warm worker (pid {answer['pid']})")
    return WarmProcess(sock, reader, int(answer["pid"]), exit_file)
