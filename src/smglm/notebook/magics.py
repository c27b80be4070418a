"""The IPython magics of ``%load_ext smglm``: thin routers from parsed options to :mod:`.cmd`.

Errors smglm raises on purpose (a bad config, data that does not fit it, a failed job...) come
back as IPython ``UsageError``: IPython shows it as one line, ``UsageError: <message>``, with
no traceback, and the message already names the field (jupysql turns its user errors into
UsageError for the same reason). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from smglm.errors import SmglmError

__all__ = ["SmglmMagics", "load_ipython_extension"]

F = TypeVar("F", bound=Callable[..., Any])


def _usage_errors(func: F) -> F:
    """Turn smglm's errors into a UsageError (one message, no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SmglmError as exc:
            raise UsageError(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _backend_name(value: str) -> str:
    """``--backend``'s check: a registered backend's name (the registry is read when a magic
    runs, not when the extension loads, and a backend registered later is accepted too)."""
    from argparse import ArgumentTypeError

    from smglm.errors import ConfigError
    from smglm.launch.backend import backend_entry

    try:
        backend_entry(value)
    except ConfigError as exc:
        raise ArgumentTypeError(exc.issues[0].message) from None
    return value


def _backend_argument(help: str) -> Callable[[F], F]:
    """The ``--backend NAME`` option: one of the registered backends."""
    # not argparse's choices: formatting the magic's help would read them at import
    return argument("--backend", type=_backend_name, metavar="NAME", help=help)


def _job_arguments(func: Any) -> Any:
    """The ``job`` and ``--backend`` arguments of the magics that act on one job."""
    func = _backend_argument("the job's backend (default: setting)")(func)
    return argument("job", help="a Job variable or a training job's name")(func)


@magics_class
class SmglmMagics(Magics):
    """``%%sm_train``, ``%sm_jobs``, ``%sm_logs``, ``%sm_stop``, ``%sm_show``,
    ``%sm_compare``, ``%sm_config``, ``%sm_form`` and ``%sm_explore``."""

    @property
    def _ns(self) -> dict[str, Any]:
        ns: dict[str, Any] = self.shell.user_ns if self.shell is not None else {}
        return ns

    @cell_magic
    @_usage_errors
    @magic_arguments()
    @argument("--data", help="training data: a DataFrame's name, a CSV/Parquet path, or s3://")
    @argument("--test-data", help="test data (same forms as --data); else the config's split")
    @_backend_argument("where to run (default: setting)")
    @argument("--instance-type", help="training instance type, e.g. ml.m5.2xlarge")
    @argument(
        "--instance-count",
        type=int,
        help="number of instances (1, or more with --engine spark: a Spark cluster)",
    )
    @argument(
        "--engine",
        choices=["glum", "spark"],
        help="fitting engine: glum (default) or spark (Spark MLlib's GLR: local Spark, or a "
        "SageMaker Processing job)",
    )
    @argument(
        "--aggregate",
        choices=["auto", "cells", "rows"],
        help="model points: fit on rows summed to rating cells (cells), never (rows), or "
        "when the terms allow it and the data is large (auto, default)",
    )
    @argument("--name", help="the training job's name (default: generated)")
    @argument(
        "--wait",
        dest="wait",
        action="store_true",
        default=None,
        help="follow the job in a live panel until it ends (default)",
    )
    @argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="return at once; the job's display is a live panel, then its report",
    )
    @argument(
        "--quiet",
        dest="verbosity",
        action="store_const",
        const="quiet",
        default=None,
        help="show only the final status line and the report (default: %%sm_config verbosity)",
    )
    @argument(
        "--verbose",
        dest="verbosity",
        action="store_const",
        const="verbose",
        help="stream the job's whole log into the cell instead of the live panel",
    )
    @argument("--max-cost", type=float, help="refuse to launch if the job may cost more (USD)")
    @argument(
        "--use-spot",
        action="store_true",
        default=None,
        help="sagemaker: managed spot training (cheaper; may wait for capacity)",
    )
    @argument(
        "--max-wait",
        type=int,
        metavar="SECONDS",
        help="with --use-spot: the most the job may wait and run, in all",
    )
    @argument(
        "--keep-alive",
        type=int,
        metavar="SECONDS",
        help="sagemaker: keep the instances warm this long after the job (0-3600; billed)",
    )
    @argument(
        "--new",
        action="store_true",
        help="always start a new job (no reuse of a completed identical one)",
    )
    @argument(
        "--tracking",
        dest="tracking",
        action="store_true",
        default=None,
        help="track the job in MLflow",
    )
    @argument(
        "--no-tracking",
        dest="tracking",
        action="store_false",
        help="do not track the job in MLflow",
    )
    @argument("-o", "--output", metavar="VAR", help="store the Job handle in this variable")
    def sm_train(self, line: str, cell: str) -> Any:
        """Train a GLM as a training job; the cell body is the GLMConfig in YAML."""
        from smglm.notebook.cmd import train

        args = parse_argstring(self.sm_train, line)
        return train.run(args, cell, self._ns)

    @line_magic
    @_usage_errors
    @magic_arguments()
    @_backend_argument("whose jobs (default: setting)")
    @argument("--max", type=int, default=20, help="how many jobs, newest first (default 20)")
    @argument("--mlflow", action="store_true", help="every backend's jobs, from their MLflow runs")
    @argument(
        "--wide",
        action="store_true",
        help="the wide table: secondary status, created, instance, train and test deviance "
        "and Gini",
    )
    def sm_jobs(self, line: str) -> Any:
        """List recent training jobs: status, family, terms, test Gini, cost and age, the best
        completed job marked (``--wide``: secondary status, created, instance, key metrics)."""
        from smglm.notebook.cmd import jobs

        args = parse_argstring(self.sm_jobs, line)
        if args.mlflow:
            return jobs.jobs_from_mlflow(args.max, wide=args.wide)
        return jobs.jobs(args.backend, args.max, wide=args.wide)

    @line_magic
    @_usage_errors
    @magic_arguments()
    @_job_arguments
    @argument("--tail", type=int, default=0, help="only the last N lines")
    @argument(
        "--follow",
        action="store_true",
        help="print the log so far, then follow the job until it ends (e.g. after a restart)",
    )
    def sm_logs(self, line: str) -> None:
        """Print a training job's log; ``--follow`` keeps following it until it ends (works
        from a new kernel: the job is found by name)."""
        from smglm.notebook.cmd import jobs

        args = parse_argstring(self.sm_logs, line)
        if args.follow:
            jobs.follow(args.job, self._ns, args.backend)
            return
        print(jobs.logs(args.job, self._ns, args.backend, args.tail))

    @line_magic
    @_usage_errors
    @magic_arguments()
    @_job_arguments
    def sm_stop(self, line: str) -> None:
        """Stop a running training job."""
        from smglm.notebook.cmd import jobs

        args = parse_argstring(self.sm_stop, line)
        print(jobs.stop(args.job, self._ns, args.backend))

    @line_magic
    @_usage_errors
    @magic_arguments()
    @_job_arguments
    def sm_show(self, line: str) -> Any:
        """Show a training job's report."""
        from smglm.notebook.cmd import jobs

        args = parse_argstring(self.sm_show, line)
        return jobs.show(args.job, self._ns, args.backend)

    @line_magic
    @_usage_errors
    @magic_arguments()
    @argument("jobs", nargs="+", help="two or more Job variables or training job names")
    @_backend_argument("the jobs' backend (default: setting)")
    @argument(
        "--bootstrap",
        type=int,
        default=200,
        metavar="N",
        help="resamples of each test Gini's bootstrap interval (default 200; 0: the Gini alone)",
    )
    def sm_compare(self, line: str) -> Any:
        """Compare jobs: metrics, coefficients, one-ways and the double lift of the first two,
        the nested-model test where one model's terms contain the other's, and each model's
        test Gini with its bootstrap interval."""
        from smglm.notebook.cmd.common import resolve_job
        from smglm.notebook.cmd.compare import compare

        args = parse_argstring(self.sm_compare, line)
        jobs = [resolve_job(ref, self._ns, args.backend) for ref in args.jobs]
        return compare(jobs, bootstrap=args.bootstrap)

    @line_magic
    @_usage_errors
    @magic_arguments()
    @argument("assignments", nargs="*", help="key=value pairs to set (key= unsets)")
    @argument("--unset", action="append", default=[], metavar="KEY", help="remove a setting")
    def sm_config(self, line: str) -> Any:
        """Show or set the defaults: bucket, prefix, role, region, image, mlflow_uri,
        instance_type, backend... (saved to the user config file)."""
        from smglm.notebook.cmd import config

        args = parse_argstring(self.sm_config, line)
        return config.run(args.assignments, args.unset)

    @line_magic
    @_usage_errors
    @magic_arguments()
    @argument("data", nargs="?", default="", help="a DataFrame's name or a data path")
    def sm_form(self, line: str) -> Any:
        """Show the widget form that builds and launches a training job."""
        from smglm.notebook.glm_form import form

        args = parse_argstring(self.sm_form, line)
        return form(args.data or None, user_ns=self._ns)

    @line_magic
    @_usage_errors
    @magic_arguments()
    @argument("data", help="a DataFrame's name or a local data path")
    @argument(
        "options",
        nargs="*",
        help="key=value: target= (required unless config= gives it), exposure=, weights=, "
        "predictors=a,b, config=, bins=, rare=, max_levels=",
    )
    def sm_explore(self, line: str) -> Any:
        """Look at the data before fitting: exposure and observed rate by level or bin of
        each candidate predictor (``%sm_explore df target=claim_count exposure=exposure``)."""
        from smglm.notebook.cmd import explore

        args = parse_argstring(self.sm_explore, line)
        return explore.run(args.data, args.options, self._ns)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and the displays of Job and FitResult (``%load_ext smglm``)."""
    from smglm.notebook.live import register_formatters

    ipython.register_magics(SmglmMagics)
    register_formatters(ipython)
