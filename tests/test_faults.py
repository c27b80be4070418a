"""Fault injection on real processes: what an adversarial run did to local jobs.

``kill -9`` of a job's supervisor (cold, and forked from the warm worker) and of its training
process, the job's folder deleted while it trains, a full disk (a small tmpfs mounted here: CI
runs as root, and a test that cannot mount fails), eight ``smglm train`` started together in
an empty folder, a damaged MLflow store. Each test checks the job's terminal status and reason,
its MLflow run's status and reason, and that no process the job started is left (the pids
recorded with their start times, looked up in ``/proc``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import smglm
from smglm.datasets import motor
from smglm.errors import BackendError
from smglm.launch import Job
from smglm.launch.local import SUPERVISOR_PID_FILE, TRAIN_PID_FILE, LocalBackend
from smglm.launch.processes import ProcessId, read_recorded
from smglm.launch.storage import FileStorage

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "vehicle_power", "area", "region"],
    "exposure": "exposure",
    "family": "poisson",
}


# -- shared fixtures and helpers -----------------------------------------------------------------
@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small CSV for every job of the module."""
    path = tmp_path_factory.mktemp("faults-data") / "motor.csv"
    motor(4_000, seed=11).to_csv(path, index=False)
    return path


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh MLflow store per test (a sqlite file outside any disk a test fills)."""
    uri = f"sqlite:///{tmp_path / 'tracking' / 'mlflow.db'}"
    (tmp_path / "tracking").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def wait_for(what: str, check: Callable[[], Any], timeout: float = 180.0) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` on a hang."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting for {what} after {timeout:g} s")
        time.sleep(0.05)


def recorded(folder: Path, name: str) -> ProcessId | None:
    return read_recorded(folder / name)


def training_started(be: LocalBackend, job: Job) -> ProcessId:
    folder = be.job_dir(job.name)
    return wait_for(f"{job.name}'s training process", lambda: recorded(folder, TRAIN_PID_FILE))


def assert_no_process_left(*processes: ProcessId | None) -> None:
    """Each process the job started has ended (a pid now used by another process, with another
    start time, is not the job's)."""
    for process in processes:
        if process is not None:
            wait_for(f"process {process.pid} to end", lambda p=process: not p.running(), 30)


def run_of(uri: str, run_id: str | None) -> tuple[str, dict[str, str]]:
    from mlflow.tracking import MlflowClient

    assert run_id, "the job has no MLflow run"
    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    return run.info.status, dict(run.data.tags)


def leftovers(*roots: Path) -> list[Path]:
    """Partial files anywhere under ``roots``."""
    return [
        p
        for root in roots
        if root.exists()
        for p in root.rglob("*")
        if p.name.endswith((".part", ".tmp")) or ".part." in p.name
    ]


def launch(be: LocalBackend, data_file: Path, **job: Any) -> Job:
    return smglm.train(CONFIG, str(data_file), backend=be, **job)


# -- kill -9 ------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_kill_9_of_the_supervisor_ends_the_job_its_training_and_its_run(
    tmp_path, data_file, store, warm, capsys, monkeypatch
):
    """The supervisor is SIGKILLed while training runs (held stopped, so that it cannot finish
    first): the job shows Failed with the reason, its training process is gone (it dies with a
    cold supervisor; a training forked from the warm worker is ended by whoever finds the
    supervisor gone), its MLflow run is FAILED, and ``smglm stop`` says it has ended."""
    be = LocalBackend(tmp_path / "home", warm=warm, stop_grace_seconds=5)
    try:
        job = launch(be, data_file)
        folder = be.job_dir(job.name)
        train = training_started(be, job)
        supervisor = recorded(folder, SUPERVISOR_PID_FILE)
        assert supervisor is not None and supervisor.running()
        assert train.signal(signal.SIGSTOP)
        assert supervisor.signal(signal.SIGKILL)

        state = wait_for(
            "the job's end",
            lambda: (s := be.describe(job.name))["TrainingJobStatus"] != "InProgress" and s,
        )
        assert state["TrainingJobStatus"] == "Failed"
        assert "supervisor is gone" in state["FailureReason"]
        assert_no_process_left(supervisor, train)
        if warm:  # the worker ended the training it forked as soon as the supervisor went
            worker_log = be.home / "warm" / "worker.log"
            wait_for(
                "the worker's note", lambda: "its supervisor is gone" in worker_log.read_text()
            )
        # recorded for good: a later look (another process) reads the same end from the file
        again = LocalBackend(tmp_path / "home", warm=False).describe(job.name)
        assert again["TrainingJobStatus"] == "Failed"
        assert again["FailureReason"] == state["FailureReason"]
        status, tags = run_of(store, job.run_id)
        assert status == "FAILED"
        assert "supervisor is gone" in tags["smglm.failure_reason"]

        attached = Job.attach(job.name, be)
        assert attached.run_id == job.run_id
        assert attached.stop() is False  # nothing to stop
        from smglm import cli

        monkeypatch.setenv("SMGLM_HOME", str(be.home))
        capsys.readouterr()
        code = cli.main(["stop", job.name])
        assert code == 1
        said = capsys.readouterr().out
        assert f"job {job.name} has already ended (Failed" in said and "nothing to stop" in said
    finally:
        be.shutdown_warm()


@pytest.mark.slow
def test_kill_9_of_the_training_process_fails_the_job_with_the_signal(tmp_path, data_file, store):
    be = LocalBackend(tmp_path / "home", warm=False)
    job = launch(be, data_file)
    folder = be.job_dir(job.name)
    train = training_started(be, job)
    supervisor = recorded(folder, SUPERVISOR_PID_FILE)
    assert train.signal(signal.SIGKILL)

    job.wait(logs=False, raise_on_failure=False, out=open(os.devnull, "w"))  # noqa: SIM115
    assert job.status == "Failed"
    assert "killed by SIGKILL (signal 9" in job.failure_reason
    status, tags = run_of(store, job.run_id)
    assert status == "FAILED"
    assert "SIGKILL" in tags["smglm.failure_reason"]
    assert_no_process_left(supervisor, train)
    assert not leftovers(be.home)


@pytest.mark.slow
def test_deleting_the_job_folder_ends_training_and_fails_the_run(tmp_path, data_file, store):
    """The folder goes while training runs: the supervisor ends training, ends the MLflow run
    (the one record left) FAILED with the reason, and exits; the job is then unknown."""
    be = LocalBackend(tmp_path / "home", warm=False)
    job = launch(be, data_file)
    folder = be.job_dir(job.name)
    train = training_started(be, job)
    supervisor = recorded(folder, SUPERVISOR_PID_FILE)
    assert train.signal(signal.SIGSTOP)  # it cannot finish first
    shutil.rmtree(folder)

    status = wait_for(
        "the run's end", lambda: (s := run_of(store, job.run_id))[0] != "RUNNING" and s
    )
    assert status[0] == "FAILED"
    assert f"job's folder {folder} was deleted" in status[1]["smglm.failure_reason"]
    assert_no_process_left(supervisor, train)
    assert not folder.exists()  # nothing recreated it
    with pytest.raises(BackendError, match="no local training job named"):
        Job.attach(job.name, be)
    with pytest.raises(BackendError, match="no local training job named"):
        be.stop(job.name)


# -- a full disk --------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for the test (unmounted after); the test fails if it cannot."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {mount} (run as root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` but ``leave`` bytes."""
    st = os.statvfs(disk)
    size = st.f_bavail * st.f_frsize - leave
    with (disk / "filler").open("wb") as f:
        f.write(b"\0" * size)


def test_a_failed_upload_leaves_no_partial_file_and_names_the_path(small_disk, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 << 20))
    dest = small_disk / "bucket" / "big.bin"
    with pytest.raises(OSError, match="No space left on device") as info:
        FileStorage().upload_file(big, f"file://{dest}")
    assert str(dest) in str(info.value)
    assert not dest.exists() and not leftovers(small_disk)


@pytest.mark.slow
def test_a_full_disk_fails_the_job_naming_enospc_and_the_path(
    tmp_path, small_disk, data_file, store
):
    """The job's home is on a disk with room for the job's files but not its data: the job
    fails, the reason names ENOSPC and the file, its run is FAILED with that reason, no
    process and no partial file is left."""
    home = small_disk / "home"
    home.mkdir()
    storage = tmp_path / "storage"  # outputs go elsewhere, the data stays where it is (a
    # file:// URI is not uploaded): the job's download fills the disk
    be = LocalBackend(home, warm=False)
    fill(small_disk, leave=data_file.stat().st_size // 2)
    job = smglm.train(CONFIG, data_file.as_uri(), backend=be, output_path=f"file://{storage}")
    folder = be.job_dir(job.name)

    job.wait(logs=False, raise_on_failure=False, out=open(os.devnull, "w"))  # noqa: SIM115
    assert job.status == "Failed"
    reason = job.failure_reason or ""
    assert "no space left on device (ENOSPC)" in reason
    assert str(folder / "ml" / "input" / "data" / "train") in reason
    assert "killed or the machine restarted" not in reason
    status, tags = run_of(store, job.run_id)
    assert status == "FAILED"
    assert "ENOSPC" in tags["smglm.failure_reason"]
    assert_no_process_left(recorded(folder, SUPERVISOR_PID_FILE), recorded(folder, TRAIN_PID_FILE))
    assert not leftovers(small_disk, storage)


# -- the MLflow store ---------------------------------------------------------------------------
@pytest.mark.slow
def test_eight_concurrent_first_launches_share_one_new_store(tmp_path, data_file, request):
    """Eight ``smglm train`` processes started together in a folder with no ``mlflow.db``:
    every job completes, each with its run FINISHED in the one store created."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.yaml").write_text(
        "target: claim_count\npredictors: [driver_age, vehicle_power, area, region]\n"
        "exposure: exposure\nfamily: poisson\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SMGLM_HOME")}
    src = str(Path(smglm.__file__).parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["SMGLM_LOCAL_WARM"] = "1"  # as users run it: the first job starts the warm worker
    names = [f"first-{i}" for i in range(8)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "smglm",
                "train",
                "config.yaml",
                str(data_file),
                "--name",
                name,
                "--no-wait",
            ],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in names
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for name, proc, out in zip(names, procs, outputs, strict=True):
        assert proc.returncode == 0, f"{name}: {out}"
        assert "tracking failed" not in out and "Traceback" not in out, out

    be = LocalBackend(work / ".smglm", warm=False)
    request.addfinalizer(lambda: LocalBackend(work / ".smglm", warm=True).shutdown_warm())
    uri = f"sqlite:///{work / 'mlflow.db'}"
    for name in names:
        job = Job.attach(name, be)
        job.wait(logs=False, out=open(os.devnull, "w"))  # noqa: SIM115
        assert job.status == "Completed"
        status, tags = run_of(uri, job.run_id)
        assert status == "FINISHED" and tags["smglm.job_name"] == name
        folder = be.job_dir(name)
        assert_no_process_left(
            recorded(folder, SUPERVISOR_PID_FILE), recorded(folder, TRAIN_PID_FILE)
        )
    assert sorted(p.name for p in work.iterdir() if "mlflow.db" in p.name) == [
        ".mlflow.db.lock",
        "mlflow.db",
    ]


def _half_migrated(path: Path) -> None:
    """A store as a migration killed half-way leaves it: some tables, an old revision."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("create table experiments (experiment_id integer primary key, name text)")
        conn.execute("create table alembic_version (version_num varchar(32))")
        conn.execute("insert into alembic_version values ('451aebb31d03')")
        conn.commit()


def test_a_store_that_cannot_be_opened_is_a_clear_error_naming_the_file(tmp_path):
    from smglm.tracking.runs import TrackingStoreError, prepare_store

    for name, make in (
        ("half.db", _half_migrated),
        ("garbage.db", lambda p: p.write_bytes(b"not a database\n" * 64)),
    ):
        path = tmp_path / name
        make(path)
        with pytest.raises(TrackingStoreError) as info:
            prepare_store(f"sqlite:///{path}")
        text = str(info.value)
        assert f"the MLflow store {path} cannot be opened" in text
        assert f"mv {path} {path}.broken" in text


@pytest.mark.slow
def test_a_broken_store_never_costs_the_job(tmp_path, data_file, monkeypatch, capsys):
    db = tmp_path / "mlflow.db"
    _half_migrated(db)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    be = LocalBackend(tmp_path / "home", warm=False)
    job = launch(be, data_file)
    said = capsys.readouterr().out
    assert f"MLflow tracking failed, job {job.name} runs untracked" in said
    assert f"the MLflow store {db} cannot be opened" in said
    job.wait(logs=False, out=open(os.devnull, "w"))  # noqa: SIM115
    assert job.status == "Completed" and job.run_id is None


def test_stop_of_an_unknown_job_says_so(tmp_path, capsys, monkeypatch):
    from smglm import cli

    monkeypatch.setenv("SMGLM_HOME", str(tmp_path / "home"))
    with pytest.raises(BackendError, match="no local training job named 'nope'"):
        LocalBackend(tmp_path / "home").stop("nope")
    assert cli.main(["stop", "nope"]) == 1
    assert "no local training job named 'nope'" in capsys.readouterr().err
