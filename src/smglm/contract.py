"""What the launcher and the in-container runtime agree on, in one module both import.

The launcher (:mod:`smglm.launch`) never imports the runtime (:mod:`smglm.runtime`): the two
meet only through a training job's files, its log and its exit code. The names they must agree
on live here, below both, with no imports:

- :data:`METRIC_DEFINITIONS`: the SageMaker ``MetricDefinitions`` that read the metric lines the
  runtime prints (the launcher passes them to CreateTrainingJob; the local backend applies them
  to the job's log). :data:`SPLIT_METRICS` names each split's metrics, as in ``metrics.json`` and
  :class:`smglm.glm.stats.SplitMetrics` (``tests/test_api.py`` keeps the two in step).
- The exit codes of an entry point and the markers that start its ``output/failure`` line.
- :data:`TERMINAL`: the statuses after which a training job no longer changes.
"""

from __future__ import annotations

__all__ = [
    "EXIT_INTERNAL_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STOPPED",
    "EXIT_USER_ERROR",
    "FAILURE_LIMIT",
    "FIT_METRICS",
    "INTERNAL_MARKER",
    "METRIC_DEFINITIONS",
    "NUMBER_REGEX",
    "SPLITS",
    "SPLIT_METRICS",
    "STOPPED_MARKER",
    "TERMINAL",
    "USER_MARKER",
]

# -- metrics ------------------------------------------------------------------------------

#: The data splits whose metrics get definitions.
SPLITS = ("train", "test")
#: The metrics of each split, as in ``metrics.json`` (:class:`smglm.glm.stats.SplitMetrics`).
SPLIT_METRICS = (
    "n_obs",
    "deviance",
    "null_deviance",
    "explained_deviance",
    "log_likelihood",
    "aic",
    "bic",
    "dispersion",
    "df_resid",
    "gini",
)
#: The ``fit`` section's metrics that are printed.
FIT_METRICS = ("iterations", "converged", "seconds")
#: A decimal number as the runtime prints it; the first capture group is the value.
NUMBER_REGEX = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"

#: SageMaker ``MetricDefinitions``: ``{"Name": ..., "Regex": ...}``, at most 40 (here 24).
METRIC_DEFINITIONS: list[dict[str, str]] = [
    *(
        {"Name": f"{split}:{name}", "Regex": f"{split}:{name}={NUMBER_REGEX};"}
        for split in SPLITS
        for name in SPLIT_METRICS
    ),
    *({"Name": f"fit:{name}", "Regex": f"fit:{name}={NUMBER_REGEX};"} for name in FIT_METRICS),
    {"Name": "fit:objective", "Regex": f"iteration=[0-9]+ objective={NUMBER_REGEX};"},
]

# -- how an entry point ends (see smglm.runtime.failure) -----------------------------------

#: Success; no failure file.
EXIT_OK = 0
#: ``ClientError: ...``: the user must fix the config, the hyperparameters, the channels or data.
EXIT_USER_ERROR = 1
#: ``InternalError: ...``: anything else, a bug or a broken image.
EXIT_INTERNAL_ERROR = 2
#: ``Stopped: interrupted (SIGINT)``.
EXIT_INTERRUPTED = 130
#: ``Stopped: received SIGTERM ...``: StopTrainingJob or MaxRuntimeInSeconds (128 + 15).
EXIT_STOPPED = 143
#: The start of ``output/failure`` when the user's input is at fault (SageMaker's word).
USER_MARKER = "ClientError"
#: The start of ``output/failure`` for anything else.
INTERNAL_MARKER = "InternalError"
#: The start of ``output/failure`` when the job was stopped.
STOPPED_MARKER = "Stopped"
#: SageMaker keeps the first 1024 characters of ``output/failure`` as the FailureReason.
FAILURE_LIMIT = 1024

# -- job statuses ---------------------------------------------------------------------------

#: Primary statuses (``TrainingJobStatus``) after which nothing changes.
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
