"""The local backend's warm runtime worker: jobs forked from the zygote, stop, failure, fallback."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import smglm
from smglm.datasets import motor
from smglm.errors import JobFailed
from smglm.launch import warm
from smglm.launch.local import LocalBackend
from smglm.launch.processes import ProcessId, lock_held, start_time, take_lock
from smglm.runtime import zygote

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "vehicle_power", "area", "region"],
    "exposure": "exposure",
    "family": "poisson",
}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def _child_pid(log: str) -> int:
    line = next(x for x in log.splitlines() if "forked from the warm worker" in x)
    return int(line.rsplit("pid ", 1)[1].rstrip(")"))


def _wait_ready(home: Path, timeout: float = 90.0) -> int:
    """Wait until the home's worker has said it is ready (its socket listens), not just that a
    socket file exists: a killed worker leaves its socket behind, and its successor may still
    be importing mlflow, when a supervisor asking now would start cold."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = warm.worker_pid(home)
        log = warm.worker_dir(home) / "worker.log"
        if pid is not None and log.exists() and f"warm worker {pid} ready" in log.read_text():
            return pid
        time.sleep(0.05)
    raise AssertionError(f"the warm worker of {home} was not ready in {timeout} s")


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return motor(8_000, seed=3)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One home with a warm worker for the module; one OpenMP thread, so that fits are
    bit-for-bit reproducible between processes; the worker is gone at the end."""
    mp = pytest.MonkeyPatch()
    mp.setenv("OMP_NUM_THREADS", "1")
    path = tmp_path_factory.mktemp("warm") / "home"
    yield path
    pid = warm.worker_pid(path)
    LocalBackend(path).shutdown_warm()
    mp.undo()
    assert warm.worker_pid(path) is None
    if pid is not None:
        assert _gone(pid)


@pytest.fixture(scope="module")
def warm_jobs(home, data):
    be = LocalBackend(home, warm=True, stop_grace_seconds=5)
    jobs = []
    for _ in range(2):
        job = smglm.train(CONFIG, data, backend=be, tracking=False)
        job.wait(out=io.StringIO())
        jobs.append(job)
    return jobs


@pytest.mark.slow
def test_warm_jobs_run_forked_with_their_own_name_and_tree(home, warm_jobs):
    zygote = warm.worker_pid(home)
    assert zygote is not None
    pids = set()
    for job in warm_jobs:
        assert job.status == "Completed"
        log = job.logs()
        pid = _child_pid(log)
        assert pid != zygote and _gone(pid)  # a child of its own, reaped by the zygote
        pids.add(pid)
        assert f"training job '{job.name}'" in log  # its own TRAINING_JOB_NAME
        assert f"/opt/ml at {home / 'jobs' / job.name / 'ml'}" in log  # its own /opt/ml
        assert (home / "jobs" / job.name / "ml" / "model" / "model.json").exists()
        assert (home / "jobs" / job.name / "train.exit").read_text() == "0"
        # the supervisor (forked from the worker for the second job) held the job's lock, and
        # nothing it started kept it after its end
        lock = home / "jobs" / job.name / "runner.lock"
        deadline = time.monotonic() + 30
        while lock_held(lock) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not lock_held(lock)
    assert len(pids) == 2
    a, b = (j.model.coefficients["estimate"] for j in warm_jobs)
    pd.testing.assert_series_equal(a, b, check_exact=True)


@pytest.mark.slow
def test_warm_job_failure_keeps_reason(home, warm_jobs, data, tmp_path):
    path = tmp_path / "train.csv"
    data.drop(columns="region").to_csv(path, index=False)
    be = LocalBackend(home, warm=True)
    job = smglm.train(CONFIG, f"file://{path}", backend=be, tracking=False)
    with pytest.raises(JobFailed) as info:
        job.wait(out=io.StringIO())
    assert "forked from the warm worker" in job.logs()
    assert info.value.reason.startswith("AlgorithmError: ClientError")
    assert "'region'" in info.value.reason
    assert (home / "jobs" / job.name / "train.exit").read_text() == "1"


@pytest.mark.slow
def test_warm_stop_ends_stopped_within_grace(home, warm_jobs):
    be = LocalBackend(home, warm=True, stop_grace_seconds=5)
    big = motor(300_000, seed=5)
    cfg = {
        **CONFIG,
        "predictors": ["driver_age", "vehicle_power", "area", "region", "vehicle_brand"],
    }
    job = smglm.train(cfg, big, backend=be, tracking=False)
    deadline = time.monotonic() + 60
    # stop once the runtime says it runs (its SIGTERM handler is in place by then: a stop
    # before that line kills the fork before it can write why it stopped)
    while "/opt/ml at " not in job.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = _child_pid(job.logs())
    job.stop()
    job.wait(out=io.StringIO(), raise_on_failure=False, timeout=30)
    assert job.status == "Stopped"
    assert "SIGTERM" in (job.failure_reason or "")
    assert _gone(pid)


@pytest.mark.slow
def test_the_worker_is_private_and_names_the_variable_it_refuses(home, warm_jobs, tmp_path):
    import stat

    folder = warm.worker_dir(home)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "worker.sock").stat().st_mode) == 0o600
    said: list[str] = []
    env = {**os.environ, "PYTHONWARNINGS": "error"}  # read at start-up: the worker's differs
    got = warm.start_job(home, env, tmp_path, tmp_path / "log", tmp_path / "exit", said.append)
    assert got is None
    assert said == [
        "[smglm-local] warm worker unavailable (environment variable(s) PYTHONWARNINGS differ "
        "from the worker's): cold start"
    ]


@pytest.mark.slow
def test_warm_falls_back_to_cold_when_worker_killed(home, warm_jobs, data, monkeypatch):
    pid = warm.worker_pid(home)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)
    monkeypatch.setattr(warm, "ensure_worker", lambda *a, **k: None)  # no fresh zygote
    be = LocalBackend(home, warm=True)
    job = smglm.train(CONFIG, data, backend=be, tracking=False)
    job.wait(out=io.StringIO())
    log = job.logs()
    assert job.status == "Completed"
    assert sum("warm worker unavailable" in x for x in log.splitlines()) == 1
    assert "forked from the warm worker" not in log
    assert not (home / "jobs" / job.name / "train.exit").exists()  # a cold subprocess
    # the cold path fits the same coefficients as the warm children, bit for bit
    pd.testing.assert_series_equal(
        job.model.coefficients["estimate"],
        warm_jobs[0].model.coefficients["estimate"],
        check_exact=True,
    )


def _zygote(tmp_path: Path) -> zygote.Zygote:
    return zygote.Zygote(tmp_path / "worker.sock", tmp_path / "worker.lock", idle=1.0)


def _train(env: dict[str, str], python: str = sys.executable) -> dict[str, object]:
    return {"module": zygote.TRAIN_MODULE, "argv": ["train"], "env": env, "python": python}


def test_zygote_refuses_other_interpreter_module_env_or_changed_source(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    z = _zygote(tmp_path)
    env = dict(os.environ)
    assert z.refusal(_train(env)) is None
    assert "interpreter" in str(z.refusal(_train(env, "/other/python")))
    other = {**_train(env), "module": "os"}
    assert "module 'os' is not one the worker runs" in str(z.refusal(other))
    changed = {**env, "OMP_NUM_THREADS": "2"}
    assert "OMP_NUM_THREADS" in str(z.refusal(_train(changed)))
    source = tmp_path / "mod.py"
    source.write_text("x = 1\n")
    z.files[str(source)] = (source.stat().st_mtime_ns - 1, source.stat().st_size)
    assert f"{source} changed since the worker started" in str(z.refusal(_train(env)))
    assert z.stopping


def test_the_environment_check_is_an_allow_list(tmp_path):
    worker = {"PATH": "/usr/bin", "HOME": "/home/u", "OMP_NUM_THREADS": "1"}
    later = {
        "TRAINING_JOB_NAME": "j",
        "TRAINING_JOB_ARN": "arn",
        "SMGLM_ML_ROOT": "/x/ml",
        "SMGLM_HOME": "/x",
        "MLFLOW_TRACKING_URI": "sqlite:///m.db",
        "AWS_REGION": "eu-west-1",
        "SM_CHANNEL_TRAIN": "/opt/ml/input/data/train",
        "PYTHONUNBUFFERED": "1",
        "NUMPY_MADVISE_HUGEPAGE": "0",
        "JPY_SESSION_NAME": "a.ipynb",
    }
    assert zygote.environment_difference({**worker, **later}, worker) == []
    # anything else that differs, added, changed or removed, is named
    unknown = {**worker, "PYTHONWARNINGS": "error", "TZ": "UTC", "HOME": "/other"}
    assert zygote.environment_difference(unknown, worker) == ["HOME", "PYTHONWARNINGS", "TZ"]
    assert zygote.environment_difference({"PATH": "/usr/bin"}, worker) == [
        "HOME",
        "OMP_NUM_THREADS",
    ]
    # read when mlflow is imported, although MLFLOW_
    assert zygote.environment_difference({**worker, "MLFLOW_LOGGING_LEVEL": "DEBUG"}, worker) == [
        "MLFLOW_LOGGING_LEVEL"
    ]
    z = _zygote(tmp_path)
    env = {**z.env, "LC_ALL": "C.UTF-8" if z.env.get("LC_ALL") != "C.UTF-8" else "POSIX"}
    assert "environment variable(s) LC_ALL differ" in str(z.refusal(_train(env)))


def _load_and_record(z: zygote.Zygote, lib: Path, name: str) -> None:
    import importlib

    sys.path.insert(0, str(lib))
    try:
        importlib.import_module(name)
        z.record_files()
    finally:
        sys.modules.pop(name, None)
        sys.path.remove(str(lib))


def test_the_worker_is_stale_when_any_loaded_module_changes(tmp_path):
    """Not only smglm's files: a source edited in place (outside the installers' folders)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    dep = lib / "smglm_test_dependency.py"
    dep.write_text("VERSION = 1\n")
    z = _zygote(tmp_path)
    _load_and_record(z, lib, "smglm_test_dependency")
    assert str(dep) in z.files
    env = dict(os.environ)
    assert z.refusal(_train(env)) is None and not z.stopping
    dep.write_text("VERSION = 22\n")  # in place, as an editor does
    assert f"{dep} changed since the worker started (it exits)" == z.refusal(_train(env))
    assert z.stopping


def test_the_worker_is_stale_when_an_installed_package_is_upgraded(tmp_path):
    """An installer replaces a package's files: its folder changes."""
    site = tmp_path / "site-packages"
    package = site / "smglm_test_package"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VERSION = 1\n")
    z = _zygote(tmp_path)
    z.installed = (f"{site}{os.sep}",)
    _load_and_record(z, site, "smglm_test_package")
    assert str(package) in z.files
    env = dict(os.environ)
    assert z.refusal(_train(env)) is None
    time.sleep(0.05)  # past the file system's clock tick
    new = package / "__init__.py.new"
    new.write_text("VERSION = 1\n")  # same size, as pip does: a new file, renamed over
    new.replace(package / "__init__.py")
    assert f"{package} changed since the worker started (it exits)" == z.refusal(_train(env))


def test_the_worker_closes_a_connection_from_another_user_unanswered(tmp_path):
    import socket

    z = _zygote(tmp_path)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        assert z.peer_allowed(theirs)
        z.uid = os.getuid() + 1  # as if the worker ran as another user than the peer
        assert not z.peer_allowed(theirs)
        z.handle(theirs, ours)  # refused before it reads a request
        ours.settimeout(5)
        assert ours.recv(100) == b""  # closed, no answer, nothing forked
        assert z.children == {}


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)


def test_a_stale_pid_file_never_gets_another_process_signalled(tmp_path):
    """After a worker died by SIGKILL, its pid file stays; the pid may now be anyone's."""
    home = tmp_path / "home"
    folder = warm.worker_dir(home)
    folder.mkdir(parents=True)
    other = _sleeper()  # a process smglm did not start as a worker
    try:
        real = ProcessId.of(other.pid)
        assert real is not None
        for text in (str(other.pid), real.format(), f"{other.pid} {real.started + 1}"):
            (folder / "worker.pid").write_text(text)
            # no lock held: no worker, whatever the pid file says
            assert warm.worker_pid(home) is None
            assert warm.shutdown_worker(home, timeout=0.5) is False
        # the lock held (a worker starting), the pid file naming the pid with another start time
        lock = take_lock(folder / "worker.lock")
        assert lock is not None
        try:
            (folder / "worker.pid").write_text(f"{other.pid} {real.started + 1}")
            assert warm.worker_pid(home) is None
            assert warm.shutdown_worker(home, timeout=0.5) is False
        finally:
            os.close(lock)
        assert other.poll() is None  # never signalled
        assert start_time(other.pid) == real.started
    finally:
        other.kill()
        other.wait()


def test_a_warm_child_whose_pid_was_reused_is_never_signalled(tmp_path):
    import socket

    other = _sleeper()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        started = start_time(other.pid)
        assert started is not None
        gone = ProcessId(other.pid, started + 1)  # the worker's child, since ended
        child = warm.WarmProcess(theirs, theirs.makefile("rb"), gone, other.pid, tmp_path / "x")
        child.send_signal(signal.SIGTERM)
        child.kill()
        assert other.poll() is None
        ours.sendall(b'{"status": 0}\n')
        assert child.wait(timeout=10) == 0
    finally:
        ours.close()
        other.kill()
        other.wait()


def test_start_job_without_worker_returns_none_and_says_so(tmp_path):
    said: list[str] = []
    got = warm.start_job(
        tmp_path, dict(os.environ), tmp_path, tmp_path / "log", tmp_path / "exit", said.append
    )
    assert got is None
    assert len(said) == 1 and "cold start" in said[0]


def test_warm_is_the_default_unless_the_setting_says_otherwise(monkeypatch, tmp_path):
    from smglm.errors import BackendError

    monkeypatch.delenv("SMGLM_LOCAL_WARM", raising=False)
    assert LocalBackend(tmp_path).warm is True
    monkeypatch.setenv("SMGLM_LOCAL_WARM", "0")
    assert LocalBackend(tmp_path).warm is False
    assert LocalBackend(tmp_path, warm=True).warm is True  # the argument wins
    monkeypatch.setenv("SMGLM_LOCAL_WARM", "2")
    with pytest.raises(BackendError, match=r"SMGLM_LOCAL_WARM must be 0 or 1; got 2"):
        LocalBackend(tmp_path)


@pytest.mark.slow
def test_default_local_backend_forks_from_the_warm_worker(home, warm_jobs, data, monkeypatch):
    monkeypatch.delenv("SMGLM_LOCAL_WARM", raising=False)
    monkeypatch.setenv("SMGLM_HOME", str(home))
    job = smglm.train(CONFIG, data, tracking=False)  # the default backend: local, warm
    job.wait(out=io.StringIO())
    assert job.status == "Completed"
    assert "forked from the warm worker" in job.logs()
    assert _child_pid(job.logs()) != warm.worker_pid(home)


def test_the_zygote_preloads_every_module_a_job_imports(tmp_path):
    """What a training job imports that the zygote has not is paid again by every warm job."""
    code = f"""
import importlib, sys, tempfile
from pathlib import Path
from smglm.runtime import zygote
for name in zygote.PRELOAD:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
importlib.import_module("PIL.Image").init()
from smglm.datasets import motor
motor(3000, seed=1).to_parquet({str(tmp_path / "d.parquet")!r})  # the test's, not the job's
before = set(sys.modules)
import pandas as pd
from smglm.runtime import train
df = pd.read_parquet({str(tmp_path / "d.parquet")!r})
config = {{"target": "claim_count", "exposure": "exposure", "family": "poisson",
          "predictors": ["driver_age", "area", "region"]}}
from smglm.glm import fit
from smglm.glm.report.scoring import scored_from_fit
from smglm.runtime.report_files import write_reports
result = fit(config, df, keep_fitted=True)
out = Path({str(tmp_path)!r})
write_reports(result.config, [(scored_from_fit(result, "train"), out / "r", result.convergence)])
train._write_model(type("P", (), {{"model_dir": out / "model"}})(), result)
print(sorted(set(sys.modules) - before))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_forked_job_applies_its_numpy_hugepage_setting(monkeypatch):
    """numpy reads NUMPY_MADVISE_HUGEPAGE when imported; a forked job applies its own value
    (the local supervisor sets 0 unless the job sets it), as a cold process would."""
    from numpy._core import multiarray

    saved = multiarray._set_madvise_hugepage(True)
    try:
        for value, expected in (("0", False), ("1", True)):
            monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", value)
            zygote._apply_numpy_hugepage_setting()
            assert multiarray._set_madvise_hugepage(not expected) is expected
    finally:
        multiarray._set_madvise_hugepage(saved)


def test_the_worker_exits_when_its_home_is_deleted(tmp_path):
    import shutil

    home = tmp_path / "home"
    warm.ensure_worker(home, idle_seconds=600)
    deadline = time.monotonic() + 60
    while not (warm.worker_dir(home) / "worker.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = warm.worker_pid(home)
    assert pid is not None
    shutil.rmtree(home)
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)


@pytest.mark.slow
def test_a_warm_supervisor_is_forked_and_ends_a_tracked_run(home, warm_jobs, data, tmp_path):
    """Once the worker is up, the supervisor is forked from it too (mlflow is imported there):
    a tracked job's run ends FINISHED with its results."""
    from mlflow.tracking import MlflowClient

    be = LocalBackend(home, warm=True, stop_grace_seconds=5)
    runner_log = (be.job_dir(warm_jobs[1].name) / "runner.log").read_text()
    assert "supervisor forked from the warm worker" in runner_log
    warm.ensure_worker(home)  # an earlier test may have killed it
    _wait_ready(home)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = smglm.train(CONFIG, data, backend=be, tracking=True, mlflow_tracking_uri=uri)
    job.wait(out=io.StringIO())
    assert job.status == "Completed"
    assert "supervisor forked" in (be.job_dir(job.name) / "runner.log").read_text()
    run = MlflowClient(tracking_uri=uri).get_run(job.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["train_deviance"] == pytest.approx(
        job.metrics["train"]["deviance"], rel=1e-12
    )
    assert run.data.tags["smglm.job_name"] == job.name
