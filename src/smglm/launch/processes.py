"""How the local job supervisor starts a job's ``train``, and how smglm recognises its processes.

A :class:`Launcher` starts the job's training process and returns a :class:`ChildProcess`
(the parts of :class:`subprocess.Popen` the supervisor uses), or None when it cannot take the
job, so that the supervisor tries the next one. Three implementations:

- :class:`ColdLauncher`: ``python -m smglm.runtime train`` in a fresh interpreter;
- :class:`smglm.launch.warm.WarmLauncher`: forked from the home's warm worker (the zygote,
  :mod:`smglm.runtime.zygote`), which has done the heavy imports already;
- :class:`ContainerLauncher`: the job's image with ``podman run`` or ``docker run``, ``/opt/ml``
  mounted from the job's folder, as SageMaker runs it.

Liveness never rests on a pid alone, which the system reuses: a process smglm started is known
by its pid *and* its start time (:class:`ProcessId`), and a long-lived process (the warm worker,
a job's supervisor) holds an ``flock`` for its whole life (:func:`lock_held`). smglm signals a
process only through a :class:`ChildProcess` or a :class:`ProcessId` that still matches.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from smglm.redaction import split_secrets

__all__ = [
    "ChildProcess",
    "ColdLauncher",
    "ContainerLauncher",
    "ContainerProcess",
    "Launcher",
    "ProcessId",
    "TrainingRequest",
    "die_with_parent",
    "end_recorded",
    "lock_held",
    "read_recorded",
    "record_process",
    "start_detached",
    "start_time",
    "take_lock",
    "terminate_later",
]


# -- process identity ---------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from the state field on (the command name may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text[text.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None when there is no such
    process or it has exited (a zombie)."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass(frozen=True)
class ProcessId:
    """A process as smglm started it: its pid and its start time. A later process that reuses
    the pid has another start time, so it never matches."""

    pid: int
    started: int

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        """The running process ``pid`` now, or None."""
        started = start_time(pid)
        return None if started is None else cls(pid, started)

    @classmethod
    def parse(cls, text: str) -> ProcessId | None:
        """Read :meth:`format`'s ``"PID START"``; anything else (e.g. an old bare pid) is None."""
        parts = text.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            return None
        return cls(int(parts[0]), int(parts[1]))

    def format(self) -> str:
        return f"{self.pid} {self.started}"

    def running(self) -> bool:
        """Whether this very process still runs (not exited, not a zombie, pid not reused)."""
        return start_time(self.pid) == self.started

    def signal(self, sig: int) -> bool:
        """Send ``sig`` if this very process still runs; returns whether it was sent.

        Where the system has pidfds, the process is held by one before its start time is
        checked, so the signal reaches that process even if the pid is reused in between."""
        handle: int | None = None
        with contextlib.suppress(AttributeError, OSError):  # no pidfd here, or no such process
            handle = os.pidfd_open(self.pid)
        try:
            if not self.running():
                return False
            if handle is not None:
                signal.pidfd_send_signal(handle, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        finally:
            if handle is not None:
                os.close(handle)
        return True


def record_process(path: Path, pid: int) -> ProcessId | None:
    """Write ``pid`` with its start time to ``path`` (atomically), so that whoever finds the
    job's supervisor gone can end what it started; returns the record, or None when the
    process has ended already."""
    process = ProcessId.of(pid)
    if process is not None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the owner's only
            with os.fdopen(fd, "w") as f:
                f.write(process.format())
            tmp.replace(path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    return process


def read_recorded(path: Path) -> ProcessId | None:
    """The process :func:`record_process` wrote to ``path`` (None: none, or unreadable)."""
    try:
        return ProcessId.parse(path.read_text())
    except (OSError, ValueError):
        return None


def end_recorded(path: Path) -> bool:
    """SIGKILL the process recorded in ``path`` and its process group (a job's ``train`` leads
    one: its forked workers go with it), if that very process still runs; returns whether it
    was signalled. A pid whose start time differs (reused) is never signalled."""
    process = read_recorded(path)
    if process is None or not process.running():
        return False
    with contextlib.suppress(OSError):
        if os.getpgid(process.pid) == process.pid and process.running():
            os.killpg(process.pid, signal.SIGKILL)
            return True
    return process.signal(signal.SIGKILL)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when the process that starts it
    ends, however it ends (``prctl(PR_SET_PDEATHSIG)``, Linux): a job's training never
    outlives its supervisor. None where there is no ``prctl``."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1
    kill = int(signal.SIGKILL)

    def preexec() -> None:  # in the child, between fork and exec: no imports, no locks
        prctl(pr_set_pdeathsig, kill, 0, 0, 0)
        if os.getppid() != parent:  # the parent ended before the request took effect
            os.kill(os.getpid(), kill)

    return preexec


def lock_held(path: Path) -> bool:
    """Whether some process holds the ``flock`` on ``path`` (False when the file is missing).

    The kernel releases an ``flock`` when its holder ends, however it ends, so a held lock is a
    live holder.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def take_lock(path: Path) -> int | None:
    """Open ``path`` (mode 0600) and take its exclusive ``flock`` without waiting: the fd, or
    None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def start_detached(
    argv: list[str], cwd: Path, log: Path, lock: int, env: dict[str, str] | None = None
) -> int:
    """Start ``argv`` in a session of its own (it survives the notebook's kernel), its output
    appended to ``log``, handing it the open, locked ``lock`` (it holds the lock for life),
    with ``env`` (default: this process's environment); returns its pid."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(cwd),
            pass_fds=(lock,),
            # Python's view (C libraries such as readline add more)
            env=dict(os.environ) if env is None else env,
        )
    return proc.pid


# -- the launcher interface ---------------------------------------------------------------------
@runtime_checkable
class ChildProcess(Protocol):
    """A job's running ``train``, as the supervisor sees it (:class:`subprocess.Popen` is one)."""

    pid: int

    def poll(self) -> int | None:
        """The exit code if it has ended, else None."""
        ...

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end and return the exit code; :class:`subprocess.TimeoutExpired`
        after ``timeout`` seconds."""
        ...

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` unless it has ended."""
        ...

    def kill(self) -> None:
        """SIGKILL it (and whatever the launcher must clean up with it)."""
        ...


@dataclass(frozen=True)
class TrainingRequest:
    """What a launcher needs to start one job's ``train``.

    ``env`` is the whole environment of a process on this machine (the supervisor's, with the
    job's variables on top); ``job_env`` the job's own variables with smglm's job variables, as
    SageMaker sets them in a container. ``ml`` is the job's ``/opt/ml`` folder, ``log`` the file
    that receives the output, ``folder`` the job's folder.
    """

    name: str
    image_uri: str
    folder: Path
    ml: Path
    log: Path
    env: dict[str, str]
    job_env: dict[str, str]


class Launcher(Protocol):
    """Starts a job's ``train``."""

    def start(
        self, request: TrainingRequest, out: IO[bytes], say: Callable[[str], None]
    ) -> ChildProcess | None:
        """Start ``train`` with its output to ``out`` (the job's log, open); None (after one
        line through ``say`` that says why) when this launcher cannot take the job."""
        ...


class ColdLauncher:
    """``python -m smglm.runtime train`` in a fresh interpreter (this one)."""

    def start(
        self, request: TrainingRequest, out: IO[bytes], say: Callable[[str], None]
    ) -> ChildProcess:
        # its own process group (its forked workers end with it), and it dies with the
        # supervisor: a killed supervisor never leaves training computing
        return subprocess.Popen(
            [sys.executable, "-m", "smglm.runtime", "train"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=request.env,
            cwd=str(request.ml),
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )


class ContainerProcess:
    """The client of ``RUNNER run``; :meth:`kill` also removes the container (the runner's
    client is gone, the container would stay)."""

    def __init__(self, popen: subprocess.Popen[bytes], runner: str, container: str) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.runner = runner
        self.container = container

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def send_signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def kill(self) -> None:
        self.popen.kill()
        subprocess.run(
            [self.runner, "rm", "--force", self.container], capture_output=True, check=False
        )


class ContainerLauncher:
    """The job's image with ``RUNNER run``: ``runner`` is ``"podman"`` or ``"docker"``."""

    def __init__(self, runner: str) -> None:
        self.runner = runner

    @staticmethod
    def container_name(request: TrainingRequest) -> str:
        return f"smglm-{request.name}"

    def command(self, request: TrainingRequest) -> list[str]:
        """``RUNNER run`` of the job's image with ``train``, ``ml/`` mounted at ``/opt/ml`` and
        the job's environment (as SageMaker sets it, not this machine's)."""
        # a secret is passed by name, its value through the runner's environment: never on a
        # command line, which every user of the machine can read
        _, secrets = split_secrets(request.job_env)
        flags = [
            f
            for k, v in sorted(request.job_env.items())
            for f in ("-e", k if k in secrets else f"{k}={v}")
        ]
        return [
            self.runner,
            "run",
            "--rm",
            "--name",
            self.container_name(request),
            "-v",
            f"{request.ml}:/opt/ml",
            *flags,
            request.image_uri,
            "train",
        ]

    def start(
        self, request: TrainingRequest, out: IO[bytes], say: Callable[[str], None]
    ) -> ChildProcess:
        popen = subprocess.Popen(
            self.command(request),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(request.folder),
            env={**os.environ, **split_secrets(request.job_env)[1]},
        )
        return ContainerProcess(popen, self.runner, self.container_name(request))


def terminate_later(child: ChildProcess, grace: float, say: Callable[[str], None]) -> None:
    """SIGTERM ``child`` now and SIGKILL it after ``grace`` seconds (``docker stop -t grace``),
    from a daemon thread."""
    import threading

    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)

    def killer() -> None:
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            say(f"[smglm-local] training ignored SIGTERM for {grace:g} s: SIGKILL")
            with contextlib.suppress(OSError):
                child.kill()

    threading.Thread(target=killer, daemon=True).start()
