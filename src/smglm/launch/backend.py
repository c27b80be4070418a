"""The seam between the Job handle and where jobs run: the :class:`Backend` protocol.

A backend speaks SageMaker's vocabulary: ``describe`` returns a dict shaped like the
DescribeTrainingJob response (``TrainingJobStatus``, ``SecondaryStatus``,
``SecondaryStatusTransitions``, ``FailureReason``, ``ModelArtifacts``, ``FinalMetricDataList``,
``BillableTimeInSeconds``...), so the Job handle and the views work the same for the local
emulation and for SageMaker.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from smglm.launch.spec import JobSpec

__all__ = ["Backend", "get_backend"]


@runtime_checkable
class Backend(Protocol):
    """Where training jobs run."""

    name: str

    def launch(self, spec: JobSpec) -> None:
        """Start the job (returns at once; the job runs in the background)."""

    def describe(self, job_name: str) -> dict[str, Any]:
        """The job's state, shaped like SageMaker's DescribeTrainingJob response."""

    def stop(self, job_name: str) -> None:
        """Ask the job to stop (SIGTERM, then SIGKILL after the grace period)."""

    def log_lines(self, job_name: str, start: int = 0) -> tuple[list[str], int]:
        """Log lines from position ``start`` on, and the position to continue from."""

    def list_jobs(self, max_results: int = 50) -> list[dict[str, Any]]:
        """Recent jobs, newest first: ``TrainingJobName``, ``TrainingJobStatus``,
        ``CreationTime``, ``TrainingEndTime`` (as ListTrainingJobs' summaries)."""


def get_backend(name: str, **options: Any) -> Backend:
    """The backend called ``name`` (``local`` or ``sagemaker``)."""
    if name == "local":
        from smglm.launch.local import LocalBackend

        return LocalBackend(**options)
    if name == "sagemaker":
        from smglm.launch.sagemaker import SageMakerBackend

        return SageMakerBackend(**options)
    from smglm.errors import ConfigError, Issue

    raise ConfigError(
        [Issue("backend", f"{name!r} is not a backend; choose one of ['local', 'sagemaker']", name)]
    )
