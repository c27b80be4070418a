"""The ``smglm`` command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _smglm(*args: str, cwd: Path, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if home is not None:
        env["SMGLM_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "smglm", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.slow
def test_cli_demo_runs_a_local_training_job_end_to_end(tmp_path):
    proc = _smglm("demo", "--rows", "4000", "--out", "demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Completed - Completed" in proc.stdout
    assert "train: n=3200" in proc.stdout and "test: n=800" in proc.stdout
    artifacts = list((tmp_path / "demo" / ".smglm" / "artifacts").iterdir())
    assert len(artifacts) == 1
    model = artifacts[0] / "model"
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["fit"]["converged"] is True
    assert any((artifacts[0] / "output").rglob("one_way_*.png"))


@pytest.mark.slow
def test_cli_train_jobs_show_and_logs(tmp_path):
    data = tmp_path / "motor.csv"
    assert _smglm("data", str(data), "--rows", "3000", cwd=tmp_path).returncode == 0
    config = tmp_path / "glm.yaml"
    config.write_text(
        "target: claim_count\npredictors: [driver_age, area]\nexposure: exposure\nfamily: poisson\n"
    )
    home = tmp_path / "home"
    proc = _smglm("train", str(config), "--data", str(data), cwd=tmp_path, home=home)
    assert proc.returncode == 0, proc.stderr
    name = proc.stdout.splitlines()[0]
    assert "[smglm] artifacts:" in proc.stdout and "driver_age" in proc.stdout
    jobs = _smglm("jobs", cwd=tmp_path, home=home)
    assert name in jobs.stdout and "Completed" in jobs.stdout
    show = _smglm("show", name, cwd=tmp_path, home=home)
    assert "status='Completed'" in show.stdout and "driver_age" in show.stdout
    logs = _smglm("logs", name, cwd=tmp_path, home=home)
    assert "train:deviance=" in logs.stdout
    request = json.loads(_smglm("show", name, "--request", cwd=tmp_path, home=home).stdout)
    assert request["TrainingJobName"] == name  # CreateTrainingJob's (a Spark job's: Processing)


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ("target: claim_count\nfamily: poison\n", ["family", "'poison'", "Did you mean 'poisson'"]),
        (
            "target: claim_count\npredictors: [regoin]\n",
            ["predictors", "'regoin'", "Did you mean 'region'"],
        ),
    ],
)
def test_cli_bad_config_is_one_clear_message_and_exit_2(tmp_path, config, words):
    data = tmp_path / "motor.csv"
    assert _smglm("data", str(data), "--rows", "500", cwd=tmp_path).returncode == 0
    path = tmp_path / "glm.yaml"
    path.write_text(config)
    proc = _smglm("train", str(path), str(data), cwd=tmp_path, home=tmp_path / "home")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in proc.stderr


def test_cli_show_unknown_job_says_so(tmp_path):
    proc = _smglm("show", "no-such-job", cwd=tmp_path, home=tmp_path / "home")
    assert proc.returncode == 1
    assert "no local training job named 'no-such-job'" in proc.stderr


def test_cli_train_failed_job_exits_non_zero_with_reason(tmp_path):
    data = tmp_path / "motor.csv"
    assert _smglm("data", str(data), "--rows", "500", cwd=tmp_path).returncode == 0
    config = tmp_path / "glm.yaml"
    config.write_text("target: claim_count\npredictors: [no_such_column]\nfamily: poisson\n")
    uri = f"file://{data}"  # a URI is checked in the job, not before
    proc = _smglm("train", str(config), "--data", uri, cwd=tmp_path, home=tmp_path / "home")
    assert proc.returncode == 1
    assert "failed" in proc.stderr and "no_such_column" in proc.stderr


def test_cli_fit_writes_the_model_and_the_report_of_both_splits(tmp_path):
    data = tmp_path / "motor.parquet"
    assert _smglm("data", str(data), "--rows", "3000", cwd=tmp_path).returncode == 0
    config = tmp_path / "glm.yaml"
    config.write_text(
        "target: claim_count\npredictors: [driver_age, area]\nexposure: exposure\n"
        "family: poisson\ntest: {fraction: 0.25, seed: 1}\n"
    )
    proc = _smglm("fit", str(config), str(data), "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    written = [p for p in (out / "report").rglob("*") if p.is_file()]
    assert f"[smglm] report: {len(written)} files in out/report (train, test)" in proc.stdout
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    assert metrics["test"]["n_obs"] == 750
    for split in ("train", "test"):
        names = {p.name for p in (out / "report" / split).iterdir()}
        assert {"one_way_driver_age.png", "one_way_area.csv", "lift.png", "report.json"} <= names
    assert (out / "report" / "train" / "convergence.png").exists()
    assert not (out / "report" / "test" / "convergence.png").exists()


def test_cli_warm_reports_and_stops_the_warm_worker(tmp_path):
    from smglm.launch import warm

    home = tmp_path / "home"
    assert "no warm worker for" in _smglm("warm", cwd=tmp_path, home=home).stdout
    warm.ensure_worker(home, idle_seconds=60)
    deadline = time.monotonic() + 60
    while warm.worker_pid(home) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = warm.worker_pid(home)
    assert pid is not None
    assert f"warm worker {pid} for {home}" in _smglm("warm", cwd=tmp_path, home=home).stdout
    stopped = _smglm("warm", "--home", str(home), "--stop", cwd=tmp_path)
    assert f"warm worker {pid} of {home} stopped" in stopped.stdout
    assert warm.worker_pid(home) is None


def test_cli_train_runner_needs_the_local_backend_and_an_image(tmp_path):
    data = tmp_path / "motor.csv"
    assert _smglm("data", str(data), "--rows", "300", cwd=tmp_path).returncode == 0
    config = tmp_path / "glm.yaml"
    config.write_text("target: claim_count\npredictors: [driver_age]\nfamily: poisson\n")
    home = tmp_path / "home"
    args = ("train", str(config), str(data), "--runner", "podman")
    other = _smglm(*args, "--backend", "sagemaker", cwd=tmp_path, home=home)
    assert other.returncode == 2 and "--runner: runs the image locally" in other.stderr
    no_image = _smglm(*args, cwd=tmp_path, home=home)
    assert no_image.returncode == 2
    assert "image_uri: the local backend with runner='podman' runs an image" in no_image.stderr
    # the old spelling still works, and says what to write instead
    old = _smglm("train", str(config), str(data), "--engine", "podman", cwd=tmp_path, home=home)
    assert old.returncode == 2
    assert "--engine podman is deprecated: use --runner podman" in old.stderr
    assert "image_uri: the local backend with runner='podman' runs an image" in old.stderr
    both = _smglm(*args, "--engine", "docker", cwd=tmp_path, home=home)
    assert both.returncode == 2
    assert "--engine: says 'docker' but --runner says 'podman'" in both.stderr


def test_cli_train_instance_count_needs_the_spark_engine(tmp_path):
    data = tmp_path / "motor.csv"
    assert _smglm("data", str(data), "--rows", "300", cwd=tmp_path).returncode == 0
    config = tmp_path / "glm.yaml"
    config.write_text("target: claim_count\npredictors: [driver_age]\nfamily: poisson\n")
    proc = _smglm(
        "train", str(config), str(data), "--instance-count", "4", cwd=tmp_path,
        home=tmp_path / "home",
    )  # fmt: skip
    assert proc.returncode == 2
    assert "instance_count: a glum training job runs on one instance; got 4" in proc.stderr
