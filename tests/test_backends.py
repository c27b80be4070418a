"""The backend contract: the registry feeds every list of choices, ``train`` and ``Job`` use only
the contract's members, and the test double (:class:`smglm.launch.testing.FakeBackend`) drives
``train``, ``Job``, the magics and the form with no process and no AWS."""

from __future__ import annotations

import io
import re
from argparse import ArgumentTypeError
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import smglm
from notebook_shell import isolated_workdir, smglm_shell
from smglm.config import JobConfig
from smglm.contract import TERMINAL
from smglm.errors import BackendError, ConfigError, JobFailed
from smglm.launch import Job, list_jobs
from smglm.launch.backend import (
    BACKENDS,
    DEFAULT_BACKEND,
    Backend,
    BaseBackend,
    JobState,
    backend_entry,
    backend_from_config,
    backend_names,
    get_backend,
    register_backend,
    unregister_backend,
)
from smglm.launch.spec import JobSpec
from smglm.launch.testing import FakeBackend

SRC = Path(__file__).resolve().parents[1] / "src" / "smglm"

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "area"],
    "exposure": "exposure",
    "family": "poisson",
}


@pytest.fixture(scope="module")
def data() -> Any:
    from smglm.datasets import motor

    return motor(2000, seed=1)


@pytest.fixture(scope="module")
def model_dir(data, tmp_path_factory) -> Path:
    return smglm.fit(CONFIG, data).save(tmp_path_factory.mktemp("fit") / "model")


@pytest.fixture
def toy(tmp_path, model_dir) -> Iterator[FakeBackend]:
    """A FakeBackend registered as ``toy`` (the same object each time it is made)."""
    backend = FakeBackend(
        tmp_path / "home", model_dir=model_dir, log=["fitting", "done"], name="toy"
    )
    made: list[dict[str, Any]] = []

    def factory(**options: Any) -> FakeBackend:
        made.append(options)
        return backend

    register_backend("toy", factory, options=("region",), summary="in memory")
    backend.made = made  # type: ignore[attr-defined]
    yield backend
    unregister_backend("toy")


# -- the registry -----------------------------------------------------------------------------
def test_builtin_backends_are_registered_in_order():
    assert backend_names()[:2] == ["local", "sagemaker"]
    assert DEFAULT_BACKEND == JobConfig().backend == backend_names()[0]
    assert isinstance(get_backend("local"), Backend)


def test_unknown_backend_error_names_the_field_value_and_registered_names():
    with pytest.raises(ConfigError) as info:
        get_backend("lokal")
    assert info.value.fields == ["backend"]
    message = str(info.value)
    assert "'lokal' is not allowed" in message
    assert "['local', 'sagemaker']" in message and "Did you mean 'local'?" in message


def test_job_config_backend_is_checked_against_the_registry_at_launch(data):
    """``JobConfig`` sits below the launch layer, where backends register: it takes any name;
    ``train`` refuses one that is not registered before anything is uploaded."""
    assert JobConfig.from_dict({"backend": "aws"}).backend == "aws"
    with pytest.raises(ConfigError) as info:
        JobConfig.from_dict({"backend": ""})
    assert "backend" in info.value.fields
    with pytest.raises(ConfigError) as info:
        smglm.train(CONFIG, data, job={"backend": "aws"}, tracking=False)
    assert info.value.fields == ["backend"]
    assert "'aws'" in str(info.value) and "['local', 'sagemaker']" in str(info.value)


def test_register_backend_checks_name_and_duplicates():
    with pytest.raises(ConfigError, match=r"backend: 'My Backend' is not a backend name"):
        register_backend("My Backend", FakeBackend)
    with pytest.raises(ConfigError, match=r"'local' is already registered"):
        register_backend("local", FakeBackend)
    with pytest.raises(ConfigError, match=r"'nope' is not allowed"):
        unregister_backend("nope")
    assert backend_names()[:2] == ["local", "sagemaker"]


def test_a_registered_backend_is_made_with_its_options_from_config(toy):
    assert backend_names()[-1] == "toy" and backend_entry("toy").summary == "in memory"
    backend = backend_from_config("toy", {"region": "eu-west-1", "bucket": "b", "role": None})
    assert backend is toy and toy.made == [{"region": "eu-west-1"}]  # type: ignore[attr-defined]
    assert get_backend("toy", region="x") is toy
    assert BACKENDS["toy"].options == ("region",)


def test_a_registered_backend_appears_in_every_list_of_choices(toy, tmp_path):
    from smglm.cli import _parser

    parser = _parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for command in ("train", "jobs", "logs", "stop", "show"):
        action = next(a for a in subparsers[command]._actions if a.dest == "backend")
        assert list(action.choices) == backend_names(), command
        assert "toy" in action.choices
    from smglm.notebook.magics import SmglmMagics

    for magic in ("sm_train", "sm_jobs", "sm_logs", "sm_stop", "sm_show", "sm_compare"):
        parser = getattr(SmglmMagics, magic).parser
        action = next(a for a in parser._actions if a.dest == "backend")
        assert [n for n in backend_names() if action.type(n) == n] == backend_names(), magic
        with pytest.raises(ArgumentTypeError, match=r"'nope' is not allowed; .*'toy'\]"):
            action.type("nope")
    from smglm.notebook.settings import set_values

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMGLM_CONFIG_FILE", str(tmp_path / "user.yaml"))
        assert set_values({"backend": "toy"}).get("backend") == "toy"
        with pytest.raises(ConfigError, match=r"'nope' is not allowed; choose one of \[.*'toy'\]"):
            set_values({"backend": "nope"})
        from smglm.notebook.settings import reset_session

        reset_session()


def test_cli_rejects_an_unknown_backend_listing_the_registered_ones(capsys):
    from smglm.cli import main

    with pytest.raises(SystemExit):
        main(["jobs", "--backend", "nope"])
    assert "invalid choice: 'nope' (choose from 'local', 'sagemaker')" in capsys.readouterr().err


def test_no_code_outside_a_backend_tests_a_backends_name():
    """Backends say what they can do through the contract, not through their names."""
    pattern = re.compile(
        r"""[=!]=\s*["'](local|sagemaker)["']|["'](local|sagemaker)["']\s*[=!]="""
        r"""|getattr\((be|backend|self\.backend)\b|\.backend\.name\s*(==|!=|in\b)"""
        r"""|hasattr\([^)]*backend"""
    )
    found = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for path in SRC.rglob("*.py")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, found


# -- BaseBackend and JobState -------------------------------------------------------------------
class Minimal(BaseBackend):
    name = "minimal"


def test_base_backend_defaults(tmp_path):
    be = Minimal()
    job = JobConfig(role="arn:aws:iam::1:role/r")
    be.home = tmp_path
    assert be.default_output_path(job) == f"file://{tmp_path / 'storage'}"
    assert be.resolve_role(job) == "arn:aws:iam::1:role/r"
    assert be.s3_client() is None and be.prewarm() is False
    assert be.check_cost(None, 1.0) is None  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        be.prepare_image(job)
    assert info.value.fields == ["image_uri"] and "the minimal backend runs an image" in str(
        info.value
    )
    assert be.prepare_image(JobConfig(image_uri="img:1")) == "img:1"
    with pytest.raises(NotImplementedError, match=r"Minimal\.describe"):
        be.describe("x")


def test_job_state_reads_describe_training_job_and_gives_it_back():
    response = {
        "TrainingJobName": "j",
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://b/j/output/model.tar.gz"},
        "BillableTimeInSeconds": 7,
        "FinalMetricDataList": [{"MetricName": "test:deviance", "Value": 1.5}],
        "Tags": [{"Key": "smglm.run_id", "Value": "r1"}],
    }
    state = JobState.from_training_job(response)
    assert state.done and state.billable_seconds == 7
    assert state.output_uri == "s3://b/j/output/output.tar.gz"
    assert state.final_metrics == {"test:deviance": 1.5} and state.tags == {"smglm.run_id": "r1"}
    assert state.as_training_job() is state.raw


# -- train and Job through the FakeBackend -----------------------------------------------------
def test_train_and_job_through_the_fake_backend(toy, data):
    out = io.StringIO()
    job = smglm.train(CONFIG, data, backend="toy", tracking=False)
    assert isinstance(job, Job) and job.backend is toy
    spec = toy.jobs[job.name].spec
    assert spec is not None and spec.image_uri == "smglm-fake"  # the backend's default image
    assert spec.output_path == f"file://{toy.home / 'storage'}/jobs"
    assert {c.name for c in spec.channels} == {"train", "config"}
    assert spec.metric_definitions  # the fake captures metrics as SageMaker does
    job.wait(poll=0, out=out)
    assert out.getvalue().splitlines() == [
        f"[{job.name}] InProgress - Training",
        "fitting",
        "done",
        f"[{job.name}] Completed - Completed",
    ]
    assert job.status == "Completed" and job.done
    assert job.model.config.family == "poisson"
    assert (toy.home / "artifacts" / job.name / "model" / "model.json").exists()
    assert job.spec() == spec
    again = smglm.train(CONFIG, data, backend="toy", tracking=False, reuse=True)
    assert again.reused and again.name == job.name  # found by the default find_completed
    assert [j.name for j in list_jobs(toy)] == [job.name]


def test_train_asks_the_backend_for_the_image_and_role(toy, data):
    imageless = toy
    imageless.default_image = None
    with pytest.raises(ConfigError) as info:
        smglm.train(CONFIG, data, backend=imageless, tracking=False)
    assert info.value.fields == ["image_uri"] and not imageless.jobs
    job = smglm.train(
        CONFIG, data, backend=imageless, tracking=False, image_uri="img:2", role="arn:r"
    )
    spec = imageless.jobs[job.name].spec
    assert spec is not None and spec.image_uri == "img:2" and spec.role_arn == "arn:r"


def test_job_wait_raises_on_failure_and_stop_stops(tmp_path):
    be = FakeBackend(tmp_path)
    reason = "AlgorithmError: target: column 'y' is missing"
    be.add_job("bad", "InProgress", {"TrainingJobStatus": "Failed", "FailureReason": reason})
    with pytest.raises(JobFailed, match="column 'y' is missing"):
        Job.attach("bad", be).wait(poll=0, out=io.StringIO())
    be.add_job("long", "InProgress", "InProgress", "InProgress", "Completed")
    job = Job.attach("long", be)
    assert job.status == "InProgress"
    job.stop()
    assert be.jobs["long"].stop_requested
    assert job.status == "Stopped" and job.failure_reason is None
    job.stop()  # a job that has ended is left alone
    with pytest.raises(BackendError, match=r"no fake job named 'nope'; jobs: \['bad', 'long'\]"):
        Job.attach("nope", be)


class ProcessingBackend(FakeBackend):
    """A backend whose service speaks DescribeProcessingJob: it translates in ``job_state``."""

    name = "processing"
    uses_metric_definitions = False

    def describe(self, job_name: str) -> dict[str, Any]:
        training = super().describe(job_name)
        status = training["TrainingJobStatus"]
        out = {
            "ProcessingJobName": job_name,
            "ProcessingJobStatus": status,
            "CreationTime": training["CreationTime"],
        }
        if status == "Completed":
            out["ProcessingOutputConfig"] = {"Outputs": [{"S3Output": {"S3Uri": "file:///x/"}}]}
        return out

    def job_state(self, job_name: str) -> JobState:
        raw = self.describe(job_name)
        outputs = (raw.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        folder = outputs[0]["S3Output"]["S3Uri"] if outputs else None
        return JobState(
            name=raw["ProcessingJobName"],
            status=raw["ProcessingJobStatus"],
            created=raw["CreationTime"],
            model_uri=f"{folder}model.tar.gz" if folder else None,
            raw=raw,
        )


def test_job_works_through_a_backend_that_is_not_a_training_job(tmp_path, data):
    be = ProcessingBackend(tmp_path, log=["spark says hi"])
    job = smglm.train(CONFIG, data, backend=be, tracking=False)
    spec = be.jobs[job.name].spec
    assert spec is not None and spec.metric_definitions == ()
    job.wait(poll=0, out=io.StringIO())
    assert job.status == "Completed" and job.state().secondary_status is None
    assert job.model_uri == "file:///x/model.tar.gz"
    assert job.state().raw["ProcessingJobStatus"] == "Completed"
    shaped = job.describe()  # what the views and the CLI read
    assert shaped["TrainingJobStatus"] == "Completed"
    assert shaped["ModelArtifacts"] == {"S3ModelArtifacts": "file:///x/model.tar.gz"}
    assert repr(job) == f"Job({job.name!r}, backend='processing', status='Completed')"
    assert job.logs() == "spark says hi"


# -- the magics and the form through a registered fake ----------------------------------------
@pytest.fixture(scope="module")
def shell(tmp_path_factory) -> Iterator[InteractiveShell]:
    with isolated_workdir(tmp_path_factory.mktemp("backends")):
        yield smglm_shell()


def run(shell: InteractiveShell, code: str) -> Any:
    result = shell.run_cell(code, store_history=False)
    if result.error_before_exec is not None:
        raise result.error_before_exec
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


@pytest.mark.usefixtures("fresh_notebook_settings")
def test_magics_run_jobs_on_a_registered_backend(shell, toy):
    cell = "\n".join(f"{k}: {v}" for k, v in CONFIG.items())
    toy.script = ["InProgress"]  # runs until stopped
    job = run(shell, "%%sm_train --data df --backend toy --no-wait -o job_t\n" + cell)
    assert job.backend is toy and shell.user_ns["job_t"] is job
    table = run(shell, "%sm_jobs --backend toy")
    assert table.backend == "toy" and [s["TrainingJobName"] for s in table.states] == [job.name]
    run(shell, f"%sm_stop {job.name} --backend toy")
    assert toy.jobs[job.name].stop_requested and job.status == "Stopped"
    with pytest.raises(UsageError, match=r"--backend: 'nope' is not allowed; choose one of \["):
        run(shell, "%sm_jobs --backend nope")


@pytest.mark.usefixtures("fresh_notebook_settings")
def test_form_offers_and_launches_on_a_registered_backend(shell, toy):
    from smglm.notebook import form as make_form

    form = make_form("df", user_ns=shell.user_ns)
    assert list(form._backend.options) == backend_names() and "toy" in form._backend.options
    form._target.value = "claim_count"
    form._family.value = "poisson"
    form._picker.search.value = ""
    form._picker.select.value = ("driver_age", "area")
    form._backend.value = "toy"
    job = form.launch()
    assert job is not None and job.backend is toy, form.problems()
    form._monitor.join(timeout=60)
    assert job.status == "Completed" and toy.jobs[job.name].spec is not None
    assert {job.status} <= TERMINAL


def test_fake_backend_is_a_backend_and_its_spec_round_trips(tmp_path):
    be = FakeBackend(tmp_path)
    assert isinstance(be, Backend)
    spec = JobSpec(name="j-1", image_uri="i", output_path="file:///o", channels=())
    be.launch(spec)
    assert be.spec("j-1") == spec and be.describe("j-1")["TrainingJobStatus"] == "InProgress"
    be.add_job("added")
    with pytest.raises(BackendError, match="was added, not launched"):
        be.spec("added")
