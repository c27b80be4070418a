"""Where a job's log is: CloudWatch log group, streams and console links printed when a job
starts and when it fails; the bill after a job; the warm-pool reuse hint; and following a job
from a new process (``smglm logs JOB -f``, ``%sm_logs JOB --follow`` in a fresh IPython)
against moto's server (jobs run by tests/aws_harness.py) and the local backend."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from aws_harness import REGION, SageMakerSimulator, moto_training_job
from smglm.launch import Job
from smglm.launch.sagemaker import LOG_GROUP, SageMakerBackend, job_console_url, log_console_url
from smglm.launch.spec import JobSpec
from test_sagemaker_backend import GOOD_CONFIG, make_spec

CONSOLE = f"https://{REGION}.console.aws.amazon.com"


def test_log_console_url_uses_the_consoles_double_encoding():
    # the form the SageMaker Python SDK prints (aws/sagemaker-python-sdk PR #5861)
    assert log_console_url(REGION, LOG_GROUP, prefix="smglm-job-1") == (
        f"{CONSOLE}/cloudwatch/home?region={REGION}#logsV2:log-groups/log-group/"
        "$252Faws$252Fsagemaker$252FTrainingJobs$3FlogStreamNameFilter$3Dsmglm-job-1"
    )
    assert log_console_url("eu-west-1", LOG_GROUP, stream="smglm-job-1/algo-1-1764000000") == (
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:"
        "log-groups/log-group/$252Faws$252Fsagemaker$252FTrainingJobs/log-events/"
        "smglm-job-1$252Falgo-1-1764000000"
    )
    group = "/aws/sagemaker/ProcessingJobs"
    assert log_console_url(REGION, group).endswith(
        "log-group/$252Faws$252Fsagemaker$252FProcessingJobs"
    )


def test_job_console_url():
    assert job_console_url(REGION, "smglm-job-1") == (
        f"{CONSOLE}/sagemaker/home?region={REGION}#/jobs/smglm-job-1"
    )
    assert job_console_url(REGION, "smglm-job-1", processing=True).endswith(
        "#/processing-jobs/smglm-job-1"
    )


def _spec(session: Any, tmp: Path, name: str, config: dict[str, Any] | None = None) -> JobSpec:
    return make_spec(session, tmp, config or GOOD_CONFIG, name)


@pytest.mark.slow
def test_job_prints_log_locations_at_start_and_the_bill_at_the_end(
    aws, boto_session, tmp_path, capsys
):
    sim = SageMakerSimulator(tmp_path / "jobs", mode="hold").attach(boto_session)
    backend = SageMakerBackend(session=boto_session)
    spec = _spec(boto_session, tmp_path, "smglm-links-ok")
    backend.launch(spec)
    job = Job(spec.name, backend)
    job.announce()
    start = capsys.readouterr().out.splitlines()
    assert start == [
        f"[smglm] log group: {LOG_GROUP}",
        f"[smglm] log streams: {spec.name}/algo-<n>-<epoch> (created when the job starts running)",
        f"[smglm]   {log_console_url(REGION, LOG_GROUP, prefix=spec.name)}",
        f"[smglm] SageMaker console: {job_console_url(REGION, spec.name)}",
        f"[smglm] to follow it from another kernel or after a restart: %sm_logs {spec.name} "
        f"--backend sagemaker --follow (shell: smglm logs {spec.name} --backend sagemaker -f)",
    ]
    sim.run(sim.requests[-1], REGION)
    job.wait(logs=False)
    out = capsys.readouterr().out
    seconds = job.state().billable_seconds
    assert seconds is not None and job.state().training_seconds == seconds
    assert re.search(
        rf"\[smglm\] billed {seconds} s x 1 ml\.m5\.xlarge: (< )?\$\d+\.\d\d "
        r"\(on-demand, us-east-1; smglm's price table of 2025-06\)\n",
        out,
    )
    assert "log group" not in out  # a completed job: no log links again
    sim.close()


@pytest.mark.slow
def test_failed_job_prints_its_reason_streams_and_links(aws, boto_session, tmp_path, capsys):
    from smglm.errors import JobFailed

    SageMakerSimulator(tmp_path / "jobs").attach(boto_session)  # runs inside the create call
    backend = SageMakerBackend(session=boto_session)
    bad = {**GOOD_CONFIG, "target": "no_such_column"}
    spec = _spec(boto_session, tmp_path, "smglm-links-bad", bad)
    backend.launch(spec)
    with pytest.raises(JobFailed):
        Job(spec.name, backend).wait(logs=False)
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("[smglm] failure reason: AlgorithmError:") for line in lines)
    assert f"[smglm] log group: {LOG_GROUP}" in lines
    streams = [line.split(": ", 1)[1] for line in lines if line.startswith("[smglm] log stream:")]
    assert len(streams) == 1 and re.fullmatch(rf"{spec.name}/algo-1-\d+", streams[0])
    assert f"[smglm]   {log_console_url(REGION, LOG_GROUP, stream=streams[0])}" in lines
    assert f"[smglm] SageMaker console: {job_console_url(REGION, spec.name)}" in lines


def test_bill_of_a_spot_job_with_a_warm_pool(aws, boto_session, tmp_path):
    SageMakerSimulator(tmp_path / "jobs", mode="hold").attach(boto_session)  # nothing runs
    backend = SageMakerBackend(session=boto_session)
    spec = _spec(boto_session, tmp_path, "smglm-links-spot")
    backend.launch(spec)
    stored = moto_training_job(spec.name)  # what DescribeTrainingJob returns for a spot job
    stored.training_job_status = "Completed"
    stored.enable_managed_spot_training = True
    stored.training_time_in_seconds, stored.billable_time_in_seconds = 1000, 300
    stored.warm_pool_status = {"Status": "Available", "ResourceRetainedBillableTimeInSeconds": 600}
    job = Job.attach(spec.name, backend)
    assert job.state().training_seconds == 1000 and job.billable_seconds == 300
    assert job.billing() == (
        "billed 300 s x 1 ml.m5.xlarge: $0.02 (on-demand, us-east-1; smglm's price table of "
        "2025-06); managed spot saved 70% (300 of 1000 training seconds billed); "
        "warm pool idle 600 s: $0.04"
    )


def test_bill_of_a_spark_processing_job_uses_processing_prices(aws, boto_session):
    from datetime import datetime, timezone

    from smglm.launch.processing import processing_state

    start = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
    state = processing_state(
        {
            "ProcessingJobName": "smglm-spark-1",
            "ProcessingJobStatus": "Completed",
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceType": "ml.m5.xlarge",
                    "InstanceCount": 3,
                    "VolumeSizeInGB": 30,
                }
            },
            "CreationTime": start,
            "ProcessingStartTime": start,
            "ProcessingEndTime": start.replace(minute=20),
        }
    )
    line = SageMakerBackend(session=boto_session).billing_summary(state)
    assert line == (
        "billed 1200 s x 3 ml.m5.xlarge: $0.23 (on-demand, us-east-1; smglm's price table of "
        "2025-06)"
    )


def test_job_display_shows_the_cost_and_on_failure_where_the_log_is(aws, boto_session, tmp_path):
    SageMakerSimulator(tmp_path / "jobs", mode="hold").attach(boto_session)
    backend = SageMakerBackend(session=boto_session)
    spec = _spec(boto_session, tmp_path, "smglm-links-html")
    backend.launch(spec)
    stored = moto_training_job(spec.name)
    stored.training_job_status, stored.failure_reason = "Failed", "AlgorithmError: boom"
    stored.training_time_in_seconds = stored.billable_time_in_seconds = 120
    html = Job.attach(spec.name, backend)._repr_html_()
    assert "<th style='text-align:left'>cost</th>" in html and "billed 120 s x 1" in html
    assert "AlgorithmError: boom" in html and f"log group: {LOG_GROUP}" in html
    assert "logStreamNameFilter" in html


def test_a_job_that_can_reuse_a_warm_pool_says_so(aws, boto_session, tmp_path, capsys):
    SageMakerSimulator(tmp_path / "jobs", mode="hold").attach(boto_session)  # nothing runs
    backend = SageMakerBackend(session=boto_session)
    first = _spec(boto_session, tmp_path, "smglm-pool-first")
    backend.launch(first)
    stored = moto_training_job(first.name)
    stored.training_job_status = "Completed"
    stored.resource_config = {**stored.resource_config, "KeepAlivePeriodInSeconds": 600}
    stored.warm_pool_status = {"Status": "Available"}
    capsys.readouterr()
    backend.check_cost(
        dataclasses.replace(first, name="smglm-pool-second", keep_alive_seconds=600), None
    )
    out = capsys.readouterr().out
    assert (
        "[smglm] warm pool kept 10 min after the job: the warm pool bills while idle: up to "
        "$0.04 per refit gap"
    ) in out
    assert "[smglm] may reuse the warm pool of smglm-pool-first (same instance type" in out
    # another instance type does not match the pool; nor does a job without keep_alive look
    backend.check_cost(
        dataclasses.replace(
            first, name="smglm-pool-3", instance_type="ml.m5.large", keep_alive_seconds=600
        ),
        None,
    )
    backend.check_cost(dataclasses.replace(first, name="smglm-pool-4"), None)
    assert "may reuse" not in capsys.readouterr().out
    stored.warm_pool_status = {"Status": "Reused", "ReusedByJob": "smglm-pool-other"}
    backend.check_cost(
        dataclasses.replace(first, name="smglm-pool-5", keep_alive_seconds=600), None
    )
    assert "may reuse" not in capsys.readouterr().out


def test_spot_cost_lines_through_the_backend(aws, boto_session, tmp_path, capsys):
    backend = SageMakerBackend(session=boto_session)
    spec = dataclasses.replace(
        JobSpec(name="smglm-spot", image_uri="x", output_path="s3://b/o", channels=()),
        use_spot=True,
        max_wait_seconds=7200,
    )
    backend.check_cost(spec, None)
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(
        "at most $0.23 on-demand (on-demand, us-east-1; smglm's price table of 2025-06)"
    )
    assert out[1].startswith("[smglm] managed spot: expected about $0.07 (spot saves about 70%")
    assert out[1].endswith(
        "at most $0.46 if it runs until max_wait (2.0 h, interruptions included)"
    )


# -- following a job from a new process ----------------------------------------------------------
def _follow_until_done(command: list[str], env: dict[str, str], started: str, then: Any) -> str:
    """Run ``command``; once it has printed ``started`` call ``then()``; return all it printed."""
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert proc.stdout is not None
    seen: list[str] = []
    runner: threading.Thread | None = None
    for line in proc.stdout:
        seen.append(line)
        if runner is None and started in line:
            runner = threading.Thread(target=then, daemon=True)
            runner.start()
    assert proc.wait(timeout=300) == 0, "".join(seen)
    assert runner is not None, "".join(seen)
    runner.join(timeout=300)
    return "".join(seen)


@pytest.mark.slow
def test_smglm_logs_follow_resumes_a_running_sagemaker_job_from_a_new_process(
    aws, boto_session, tmp_path
):
    sim = SageMakerSimulator(tmp_path / "jobs", mode="hold").attach(boto_session)
    backend = SageMakerBackend(session=boto_session)
    spec = _spec(boto_session, tmp_path, "smglm-links-follow")
    backend.launch(spec)  # InProgress; runs once the new process follows it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "smglm.cli", "logs", spec.name, "--backend", "sagemaker", "-f"]
    out = _follow_until_done(
        command,
        env,
        f"[{spec.name}] InProgress",
        lambda: sim.run(sim.requests[-1], REGION),
    )
    assert f"[smglm] log group: {LOG_GROUP}" in out  # where the log is, said at once
    assert f"[{spec.name}] Completed - Completed" in out
    lines, _ = backend.log_lines(spec.name, 0)
    assert len(lines) > 5
    position = 0
    for line in lines:  # every line of the job's log, in order
        found = out.find(line + "\n", position)
        assert found >= 0, line
        position = found + len(line)
    assert re.search(r"\[smglm\] billed \d+ s x 1 ml\.m5\.xlarge", out)
    sim.close()


@pytest.mark.slow
def test_sm_logs_follow_in_a_fresh_ipython_resumes_a_local_job(tmp_path):
    import smglm
    from smglm.launch.local import LocalBackend
    from test_sagemaker_backend import make_frame

    home = tmp_path / "home"
    backend = LocalBackend(home, warm=False)
    job = smglm.train(GOOD_CONFIG, make_frame(), backend=backend, wait=False, tracking=False)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "SMGLM_HOME": str(home),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    code = (
        "get_ipython().run_line_magic('load_ext', 'smglm'); "
        f"get_ipython().run_line_magic('sm_logs', '{job.name} --backend local --follow')"
    )
    command = [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", "-c", code]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"[{job.name}] Completed" in proc.stdout
    lines, _ = backend.log_lines(job.name, 0)
    assert lines and all(line in proc.stdout for line in lines)
    assert "log group" not in proc.stdout and "billed" not in proc.stdout  # local: free, no links
