"""The seam between smglm and where jobs run: the :class:`Backend` contract and the registry.

Everything smglm asks of a backend is written here, once:

- :class:`Backend` is the whole contract: five calls on jobs (``launch``, ``describe``,
  ``stop``, ``log_lines``, ``list_jobs``), the neutral views of their state (``job_state``,
  ``list_states``) and the hooks that :func:`smglm.train` and :class:`~smglm.launch.job.Job`
  use (where data goes, which image runs, the role, the cost guard, reuse, ...).
- :class:`BaseBackend` gives every hook a default, so a backend implements the five calls and
  overrides only the hooks whose default does not fit it.
- :data:`BACKENDS` maps each backend's name to how it is made. :func:`get_backend` and every
  list of choices (the CLI's ``--backend``, the magics' ``--backend``, the form's dropdown,
  ``JobConfig.backend`` and ``%sm_config backend=``) read it, so a backend registered with
  :func:`register_backend` appears everywhere.

A job's state has two shapes. ``describe`` returns what the backend's service says, in its own
vocabulary (the built-in backends speak SageMaker's DescribeTrainingJob: ``TrainingJobStatus``,
``SecondaryStatus``, ``ModelArtifacts``...). ``job_state`` returns a :class:`JobState`, the
backend-neutral view the Job handle reads (status, secondary status, failure reason,
transitions, artifact locations, billable seconds, final metrics, tags). Its default parses a
DescribeTrainingJob-shaped answer; a backend whose jobs are something else (SageMaker
Processing jobs, say) overrides ``job_state`` and ``list_states`` to translate its own answers,
and :meth:`JobState.as_training_job` gives the views their DescribeTrainingJob-shaped dict
either way.

Adding a backend: a module with a :class:`BaseBackend` subclass, one :func:`register_backend`
line at the end of this module (or in the package that ships it), and tests (use
:class:`smglm.launch.testing.FakeBackend` as the model of a minimal one).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from smglm.contract import TERMINAL
from smglm.errors import ConfigError, Issue, did_you_mean
from smglm.launch.spec import JobSpec

if TYPE_CHECKING:
    from smglm.config.job import JobConfig

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Backend",
    "BackendEntry",
    "BaseBackend",
    "JobState",
    "backend_entry",
    "backend_from_config",
    "backend_names",
    "default_home",
    "get_backend",
    "register_backend",
    "unregister_backend",
]

#: The backend used when none is chosen (``JobConfig.backend``'s default says the same).
DEFAULT_BACKEND = "local"


def default_home() -> Path:
    """smglm's working folder on this machine: ``SMGLM_HOME``, else ``./.smglm``."""
    from smglm.config.environment import SMGLM_HOME

    return Path(SMGLM_HOME.get() or ".smglm").absolute()


# -- the neutral state of a job ------------------------------------------------------------
@dataclass(frozen=True)
class JobState:
    """A job's state in words every backend can fill: what the Job handle reads.

    Attributes
    ----------
    name
        The job's name.
    status
        The primary status: ``InProgress``, ``Completed``, ``Failed``, ``Stopping`` or
        ``Stopped`` (a backend maps its own statuses onto these).
    secondary_status
        The step the job is at (``Starting``, ``Downloading``, ``Training``, ``Uploading``,
        ``Completed``...), or None when the backend has no such notion.
    failure_reason
        Why the job failed or was stopped, else None.
    transitions
        The steps so far, oldest first, as SageMaker's ``SecondaryStatusTransitions`` items
        (``Status``, ``StartTime``, ``EndTime``, ``StatusMessage``).
    created, ended
        When the job was created and when it ended (None while it runs), as the backend gives
        them (ISO strings or datetimes).
    model_uri, output_uri
        Where ``model.tar.gz`` and ``output.tar.gz`` are (``s3://`` or ``file://``), once the
        job has written them; else None.
    billable_seconds
        The seconds billed, once the job has ended (None: not known or not billed).
    training_seconds
        The seconds the job trained (``TrainingTimeInSeconds``), once it has ended; with
        managed spot training, ``1 - billable_seconds / training_seconds`` is the saving.
    final_metrics
        The metrics the backend captured (name -> value); empty when it captures none.
    tags
        The job's tags (smglm's hashes, the MLflow run id, the user's).
    raw
        The backend's own answer (``describe``'s), for what is not above.
    """

    name: str
    status: str
    secondary_status: str | None = None
    failure_reason: str | None = None
    transitions: tuple[dict[str, Any], ...] = ()
    created: Any = None
    ended: Any = None
    model_uri: str | None = None
    output_uri: str | None = None
    billable_seconds: int | None = None
    training_seconds: int | None = None
    final_metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        """Whether the job has ended (nothing changes any more)."""
        return self.status in TERMINAL

    @classmethod
    def from_training_job(cls, response: Mapping[str, Any]) -> JobState:
        """The state in a DescribeTrainingJob response, or in a ListTrainingJobs summary."""
        model_uri = (response.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        output_uri = (response.get("OutputArtifacts") or {}).get("S3OutputArtifacts")
        if output_uri is None and model_uri:  # SageMaker writes both into the same folder
            output_uri = model_uri.replace("model.tar.gz", "output.tar.gz")
        tags = response.get("Tags") or {}
        if isinstance(tags, list):  # the AWS shape: [{"Key": ..., "Value": ...}]
            tags = {t["Key"]: t["Value"] for t in tags}
        billable = response.get("BillableTimeInSeconds")
        trained = response.get("TrainingTimeInSeconds")
        return cls(
            name=str(response.get("TrainingJobName", "")),
            status=str(response.get("TrainingJobStatus")),
            secondary_status=response.get("SecondaryStatus"),
            failure_reason=response.get("FailureReason"),
            transitions=tuple(response.get("SecondaryStatusTransitions") or ()),
            created=response.get("CreationTime"),
            ended=response.get("TrainingEndTime"),
            model_uri=model_uri,
            output_uri=output_uri,
            billable_seconds=int(billable) if billable is not None else None,
            training_seconds=int(trained) if trained is not None else None,
            final_metrics={
                m["MetricName"]: m["Value"] for m in response.get("FinalMetricDataList") or []
            },
            tags=dict(tags),
            raw=dict(response),
        )

    def as_training_job(self) -> dict[str, Any]:
        """This state shaped like DescribeTrainingJob's response, for the code that reads that
        shape (the views, the CLI, MLflow's run finaliser): the backend's own answer when it is
        already one, else one built from the fields above."""
        if "TrainingJobStatus" in self.raw:
            return self.raw
        out: dict[str, Any] = {
            **self.raw,
            "TrainingJobName": self.name,
            "TrainingJobStatus": self.status,
            "SecondaryStatus": self.secondary_status,
            "SecondaryStatusTransitions": [dict(t) for t in self.transitions],
            "CreationTime": self.created,
            "Tags": dict(self.tags),
        }
        optional = {
            "FailureReason": self.failure_reason,
            "TrainingEndTime": self.ended,
            "BillableTimeInSeconds": self.billable_seconds,
            "TrainingTimeInSeconds": self.training_seconds,
            "ModelArtifacts": {"S3ModelArtifacts": self.model_uri} if self.model_uri else None,
            "OutputArtifacts": {"S3OutputArtifacts": self.output_uri} if self.output_uri else None,
            "FinalMetricDataList": [
                {"MetricName": k, "Value": v} for k, v in self.final_metrics.items()
            ]
            or None,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out


# -- the contract ---------------------------------------------------------------------------
@runtime_checkable
class Backend(Protocol):
    """Where jobs run: everything smglm asks of a backend.

    :class:`BaseBackend` implements every member but the five calls on jobs (``launch``,
    ``describe``, ``stop``, ``log_lines``, ``list_jobs``) with a default; see its docstrings.
    """

    #: The name the backend is registered under (``local``, ``sagemaker``, ...).
    name: str
    #: Seconds between looks at a running job (``Job.wait``, the notebook's live displays).
    poll_seconds: float
    #: Whether jobs run on another machine: they cannot read this machine's files or a local
    #: MLflow store, so a job is not told a local tracking store (the client logs for it).
    remote: bool
    #: Whether the backend's own job process ends the job's MLflow run; if not, the Job
    #: handle ends it when it sees the job end.
    ends_tracking_runs: bool
    #: Whether the backend captures metrics from the log with the spec's metric definitions
    #: (SageMaker training jobs do; Processing jobs do not): ``train`` sends none otherwise.
    uses_metric_definitions: bool
    #: The image a job runs when ``JobConfig.image_uri`` is not set (None: it must be set).
    default_image: str | None

    @property
    def home(self) -> Path:
        """smglm's working folder on this machine for this backend's jobs (downloads go to
        ``home/artifacts/<job>``)."""

    # the five calls on jobs
    def launch(self, spec: JobSpec) -> None:
        """Start the job (returns at once; the job runs in the background)."""

    def describe(self, job_name: str) -> dict[str, Any]:
        """The job's state as the backend's service gives it (the built-in backends: shaped
        like SageMaker's DescribeTrainingJob response)."""

    def stop(self, job_name: str) -> None:
        """Ask the job to stop (SIGTERM, then SIGKILL after the grace period)."""

    def log_lines(self, job_name: str, start: int = 0) -> tuple[list[str], int]:
        """Log lines from position ``start`` on, and the position to continue from."""

    def list_jobs(self, max_results: int = 50) -> list[dict[str, Any]]:
        """Recent jobs, newest first, as the backend's service lists them (the built-in
        backends: ListTrainingJobs' summaries, ``TrainingJobName``, ``TrainingJobStatus``,
        ``CreationTime``, ``TrainingEndTime``)."""

    # neutral views of the state
    def job_state(self, job_name: str) -> JobState:
        """The job's state in backend-neutral words (what the Job handle reads)."""

    def list_states(self, max_results: int = 50) -> list[JobState]:
        """Recent jobs, newest first, in backend-neutral words."""

    def spec(self, job_name: str) -> JobSpec:
        """The JobSpec the job was launched with."""

    def request(self, spec: JobSpec) -> dict[str, Any]:
        """The request the backend's service receives (or, for an emulating backend, would
        receive on SageMaker) for ``spec``: CreateTrainingJob's keyword arguments, or
        CreateProcessingJob's for a Spark job. Nothing is sent."""

    # hooks of smglm.train, in the order it calls them
    def apply_defaults(self, job: JobConfig) -> tuple[JobConfig, list[str]]:
        """The JobConfig with the defaults of the backend's own service filled in where it
        left a field at its default (the sagemaker backend: the SageMaker SDK's config file,
        :mod:`smglm.launch.sdk_config`), and lines saying what was applied from where."""

    def prepare_image(self, job: JobConfig) -> str:
        """The image the job runs, checked (e.g. that it is in ECR); raises ConfigError
        naming ``image_uri`` when there is none or it cannot run."""

    def default_output_path(self, job: JobConfig) -> str:
        """The storage base when ``JobConfig.output_path`` is not set: jobs' artifacts go to
        ``<base>/jobs/<job>/output/``."""

    def default_input_base(self, job: JobConfig) -> str:
        """Where content-addressed inputs (data, config) go: ``<base>/inputs/<hash>/``, whether
        or not ``JobConfig.output_path`` is set (never inside its job layout)."""

    def s3_client(self) -> Any:
        """The boto3 S3 client uploads to ``s3://`` use (None: one from the default
        credentials)."""

    def find_completed(
        self, tags: dict[str, str], limit: int = 100
    ) -> tuple[str, dict[str, str]] | None:
        """The newest Completed job whose tags hold ``tags``, with all its tags (``reuse``)."""

    def resolve_role(self, job: JobConfig) -> str | None:
        """The execution role the job runs as (None: the backend needs none)."""

    def check_cost(self, spec: JobSpec, max_cost: float | None) -> None:
        """Say what the job may cost; raise when it may cost more than ``max_cost``."""

    # what the Job handle prints
    def log_locations(self, job_name: str) -> list[str]:
        """Where a person finds the job's log outside smglm (log group, streams, console
        links), as lines to print when the job starts and when it fails; may be empty."""

    def billing_summary(self, state: JobState) -> str | None:
        """What the ended job cost (billable seconds, savings, cost), one line; None when it
        costs nothing or is not known."""

    # the notebook's
    def prewarm(self) -> bool:
        """Get ready for a first job now, in the background (a form opened); never waits.
        Returns whether there was anything to do."""

    # deployment (Job.deploy, Job.transform)
    def deployer(self) -> Any:
        """What serves a completed job's model: a :class:`smglm.launch.deploy.Deployer`
        (endpoints, batch transforms); ConfigError naming ``backend`` when the backend has
        none."""


class BaseBackend:
    """A backend's defaults: subclass it, implement the five calls on jobs, set ``name`` and
    override what does not fit.

    The defaults suit a backend that runs jobs on this machine, speaks DescribeTrainingJob,
    reads ``file://`` storage under :attr:`home`, needs no role, costs nothing and has nothing
    to warm up.
    """

    #: Set by each backend: the name it is registered under.
    name: str = ""
    #: Half a second between looks at a running job.
    poll_seconds: float = 0.5
    #: Jobs run elsewhere: a local MLflow store is not handed to them (the safe default).
    remote: bool = True
    #: The Job handle ends the job's MLflow run when it sees the job end.
    ends_tracking_runs: bool = False
    #: The spec carries smglm's metric definitions (the backend may ignore them).
    uses_metric_definitions: bool = True
    #: No default image: ``JobConfig.image_uri`` must be set.
    default_image: str | None = None

    @property
    def home(self) -> Path:
        """smglm's working folder: the one given to the backend, else :func:`default_home`."""
        own = self.__dict__.get("_home")
        return own if own is not None else default_home()

    @home.setter
    def home(self, value: str | Path) -> None:
        self._home = Path(value).absolute()

    # -- the five calls on jobs: a backend implements them ----------------------------------
    def launch(self, spec: JobSpec) -> None:
        raise NotImplementedError(f"{type(self).__name__}.launch")

    def describe(self, job_name: str) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.describe")

    def stop(self, job_name: str) -> None:
        raise NotImplementedError(f"{type(self).__name__}.stop")

    def log_lines(self, job_name: str, start: int = 0) -> tuple[list[str], int]:
        raise NotImplementedError(f"{type(self).__name__}.log_lines")

    def list_jobs(self, max_results: int = 50) -> list[dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__}.list_jobs")

    # -- neutral views: override when describe/list_jobs do not speak DescribeTrainingJob ---
    def job_state(self, job_name: str) -> JobState:
        """:meth:`describe`'s answer read as DescribeTrainingJob's."""
        return JobState.from_training_job(self.describe(job_name))

    def list_states(self, max_results: int = 50) -> list[JobState]:
        """:meth:`list_jobs`' summaries read as ListTrainingJobs'."""
        return [JobState.from_training_job(s) for s in self.list_jobs(max_results)]

    def spec(self, job_name: str) -> JobSpec:
        """The spec rebuilt from :meth:`describe` (DescribeTrainingJob repeats the request)."""
        return JobSpec.from_request(self.describe(job_name))

    def request(self, spec: JobSpec) -> dict[str, Any]:
        """:meth:`JobSpec.to_request`: the CreateTrainingJob request of ``spec``."""
        return spec.to_request()

    # -- hooks of smglm.train ----------------------------------------------------------------
    def prepare_image(self, job: JobConfig) -> str:
        """``job.image_uri``, else :attr:`default_image`; ConfigError naming ``image_uri``
        when neither is set."""
        image = job.image_uri or self.default_image
        if not image:
            raise ConfigError(
                [
                    Issue(
                        "image_uri",
                        f"the {self.name} backend runs an image and none was given: pass "
                        "image_uri= (or set it with %sm_config image=)",
                    )
                ]
            )
        return image

    def default_output_path(self, job: JobConfig) -> str:
        """``file://<home>/storage``: on this machine."""
        return f"file://{self.home / 'storage'}"

    def default_input_base(self, job: JobConfig) -> str:
        """``s3://<bucket>/<prefix>`` when the job writes to S3 (``output_path`` ``s3://...``):
        ``job.bucket``, else ``output_path``'s bucket, with ``job.prefix``; otherwise
        :meth:`default_output_path` (``file://<home>/storage``). Inputs are found in one place
        whatever ``output_path`` each job writes to, never inside its job layout."""
        if job.output_path and job.output_path.startswith("s3://"):
            from smglm.launch.storage import split_s3

            bucket = job.bucket or split_s3(job.output_path)[0]
            prefix = job.prefix.strip("/")
            return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        return self.default_output_path(job)

    def s3_client(self) -> Any:
        """None: uploads to ``s3://`` use a client from the default credentials."""
        return None

    def find_completed(
        self, tags: dict[str, str], limit: int = 100
    ) -> tuple[str, dict[str, str]] | None:
        """Looks through the last ``limit`` jobs of :meth:`list_states` (which must carry
        tags; a backend whose list does not overrides this)."""
        for state in self.list_states(limit):
            if state.status == "Completed" and all(
                state.tags.get(k, "") == v for k, v in tags.items()
            ):
                return state.name, state.tags
        return None

    def apply_defaults(self, job: JobConfig) -> tuple[JobConfig, list[str]]:
        """Nothing to apply: ``job`` as given, no lines."""
        return job, []

    def resolve_role(self, job: JobConfig) -> str | None:
        """``job.role`` as given."""
        return job.role

    def check_cost(self, spec: JobSpec, max_cost: float | None) -> None:
        """Nothing: the job costs nothing to run."""

    def log_locations(self, job_name: str) -> list[str]:
        """Nothing to add: ``job.logs()`` is the whole log."""
        return []

    def billing_summary(self, state: JobState) -> str | None:
        """None: the job costs nothing."""
        return None

    def prewarm(self) -> bool:
        """Nothing to warm up: False."""
        return False

    def deployer(self) -> Any:
        """None here: a ConfigError naming ``backend`` (deploying needs a backend that
        serves models, as ``local`` and ``sagemaker`` do)."""
        raise ConfigError(
            [
                Issue(
                    "backend",
                    f"the {self.name} backend cannot deploy models or run batch transforms "
                    "(the built-in local and sagemaker backends can)",
                    self.name,
                )
            ]
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# -- the registry ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BackendEntry:
    """How to make the backend ``name``.

    Attributes
    ----------
    name
        What users write: ``JobConfig.backend``, ``--backend``, the form's dropdown.
    factory
        Called with keyword options (see :func:`get_backend`); returns the backend.
    options
        The options the factory takes from configuration: ``JobConfig`` fields or settings
        (e.g. ``region``) and command-line flags (e.g. ``runner``). :func:`backend_from_config`
        passes these when they are set; the CLI refuses a flag its backend does not take.
    summary
        One line for lists of choices.
    """

    name: str
    factory: Callable[..., Backend]
    options: tuple[str, ...] = ()
    summary: str = ""


#: The registered backends, by name, in registration order: read by get_backend and by every
#: list of choices. Add to it with :func:`register_backend`.
BACKENDS: dict[str, BackendEntry] = {}

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def register_backend(
    name: str,
    factory: Callable[..., Backend],
    *,
    options: tuple[str, ...] = (),
    summary: str = "",
    replace: bool = False,
) -> BackendEntry:
    """Make the backend ``name`` available everywhere: :func:`get_backend`, the CLI, the
    magics, the form and ``JobConfig.backend``.

    Parameters
    ----------
    name
        Lower-case letters, digits, ``-`` and ``_``, starting with a letter.
    factory
        A callable (usually the backend class, or a function that imports it) that takes the
        backend's keyword options and returns it.
    options
        The factory's options that come from configuration (see :class:`BackendEntry`).
    summary
        One line saying where the jobs run.
    replace
        Replace a backend already registered under ``name`` (else that is an error).
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            [
                Issue(
                    "backend",
                    f"{name!r} is not a backend name: 1-32 characters of [a-z0-9_-], "
                    "starting with a letter",
                    name,
                )
            ]
        )
    if not callable(factory):
        raise TypeError(f"the factory of backend {name!r} must be callable; got {factory!r}")
    if name in BACKENDS and not replace:
        raise ConfigError(
            [Issue("backend", f"{name!r} is already registered (pass replace=True)", name)]
        )
    entry = BackendEntry(name, factory, tuple(options), summary)
    BACKENDS[name] = entry
    return entry


def unregister_backend(name: str) -> None:
    """Remove the backend ``name`` from the registry (a test's clean-up)."""
    backend_entry(name)
    del BACKENDS[name]


def backend_names() -> list[str]:
    """The registered backends' names, in registration order (the built-in ones first)."""
    return list(BACKENDS)


def backend_entry(name: str, field: str = "backend") -> BackendEntry:
    """The registration of ``name``.

    Raises
    ------
    ConfigError
        Naming ``field``, the value and the registered names when ``name`` is not one.
    """
    entry = BACKENDS.get(name) if isinstance(name, str) else None
    if entry is None:
        names = backend_names()
        raise ConfigError(
            [
                Issue(
                    field,
                    f"{name!r} is not allowed; choose one of {names}.{did_you_mean(name, names)}",
                    name,
                )
            ]
        )
    return entry


def get_backend(name: str, **options: Any) -> Backend:
    """The backend called ``name`` (one of :func:`backend_names`), made with ``options``
    (e.g. ``get_backend("local", home="/tmp/h")``, ``get_backend("sagemaker",
    region="eu-west-1")``).

    Raises
    ------
    ConfigError
        Naming ``backend`` and the registered names when ``name`` is not registered.
    """
    return backend_entry(name).factory(**options)


def backend_from_config(name: str, values: Mapping[str, Any]) -> Backend:
    """The backend ``name``, made with those of ``values`` (JobConfig fields or settings,
    e.g. ``{"region": "eu-west-1", "bucket": ...}``) that are its registered options and set."""
    entry = backend_entry(name)
    options = {k: values[k] for k in entry.options if values.get(k) is not None}
    return entry.factory(**options)


# -- the built-in backends (their modules load when one is made) --------------------------
def _local(**options: Any) -> Backend:
    from smglm.launch.local import LocalBackend

    return LocalBackend(**options)


def _sagemaker(**options: Any) -> Backend:
    from smglm.launch.sagemaker import SageMakerBackend

    return SageMakerBackend(**options)


register_backend(
    "local", _local, options=("runner",), summary="this machine, no AWS (SageMaker emulated)"
)
register_backend(
    "sagemaker",
    _sagemaker,
    options=("region",),
    summary="Amazon SageMaker training jobs (Processing jobs for engine spark)",
)
