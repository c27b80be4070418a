"""``%%sm_train``: a GLMConfig cell body plus options -> a training job (also the form's Launch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smglm.errors import ConfigError, Issue

if TYPE_CHECKING:
    import argparse

    from smglm.config import GLMConfig
    from smglm.launch import Job
    from smglm.launch.storage import UploadProgress
    from smglm.notebook.settings import Settings

__all__ = ["parse_body", "run", "submit"]

EXAMPLE = "target: claim_count\npredictors: [driver_age, area]\nexposure: exposure\nfamily: poisson"


def parse_body(cell: str) -> GLMConfig:
    """The GLMConfig written (in YAML) in the body of a ``%%sm_train`` cell."""
    from smglm.config import GLMConfig

    if not cell.strip():
        raise ConfigError(
            [
                Issue(
                    "config",
                    "the %%sm_train cell has no body; write the GLMConfig in YAML below the "
                    f"magic, e.g.\n{EXAMPLE}",
                )
            ]
        )
    return GLMConfig.from_yaml(cell, source="the %%sm_train cell")


def submit(
    config: GLMConfig | dict[str, Any],
    data: Any,
    *,
    test_data: Any = None,
    backend: str | None = None,
    reuse: bool = True,
    tracking: bool | None = None,
    settings: Settings | None = None,
    progress: UploadProgress | None = None,
    **job_fields: Any,
) -> Job:
    """Start a training job with the ``%sm_config`` defaults under the given fields.

    The magic and the form both launch through here: ``job_fields`` (JobConfig fields; None
    values are ignored) override the settings, and ``reuse`` returns a completed job with the
    same config, data and image instead of a new one. Returns at once (no waiting). The
    libraries' log noise (MLflow's store set-up...) goes to the launcher log, not the cell.
    ``progress`` hears the data's upload in bytes (:class:`~smglm.notebook.panel.UploadLine`).
    """
    from smglm.launch import train
    from smglm.notebook.cmd.common import backend_for
    from smglm.notebook.noise import library_noise_to_log
    from smglm.notebook.settings import load_settings

    settings = settings or load_settings()
    fields = settings.job_fields()
    fields.update({k: v for k, v in job_fields.items() if v is not None})
    be = backend_for(backend or fields.get("backend"), settings)
    fields["backend"] = be.name
    track = tracking if tracking is not None else settings.tracking
    with library_noise_to_log(mlflow=track is not False):
        return train(
            config,
            data,
            test_data=test_data,
            job=fields,
            backend=be,
            wait=False,
            reuse=reuse,
            tracking=track,
            progress=progress,
        )


def run(args: argparse.Namespace, cell: str, user_ns: dict[str, Any]) -> Job:
    """Do what a parsed ``%%sm_train`` line and its cell body ask; return the Job.

    The cell follows the job as ``--quiet``/``--verbose``/``%sm_config verbosity`` say: a
    live panel that ends as one status line (normal), only that line (quiet), or the whole
    log streamed (verbose). The libraries' log noise goes to the launcher log meanwhile.
    """
    from smglm.notebook.cmd.common import resolve_data
    from smglm.notebook.noise import library_noise_to_log
    from smglm.notebook.settings import load_settings

    if args.output and not args.output.isidentifier():
        raise ConfigError(
            [Issue("-o", f"{args.output!r} is not a Python variable name", args.output)]
        )
    config = parse_body(cell)
    if not args.data:
        raise ConfigError(
            [Issue("data", "--data is required: a DataFrame's name, a file or folder, or s3://")]
        )
    data = resolve_data(args.data, user_ns)
    test = resolve_data(args.test_data, user_ns, "--test-data") if args.test_data else None
    settings = load_settings()
    verbosity = getattr(args, "verbosity", None) or settings.verbosity
    tracking = args.tracking if args.tracking is not None else settings.tracking
    with library_noise_to_log(mlflow=tracking is not False):
        job = submit(
            config,
            data,
            test_data=test,
            backend=args.backend,
            reuse=not args.new,
            tracking=args.tracking,
            settings=settings,
            progress=upload_line() if verbosity != "quiet" else None,
            instance_type=args.instance_type,
            instance_count=args.instance_count,
            engine=args.engine,
            aggregate=args.aggregate,
            job_name=args.name,
            max_cost=args.max_cost,
            use_spot=args.use_spot,
            max_wait_seconds=args.max_wait,
            keep_alive_seconds=args.keep_alive,
        )
        if args.output:
            user_ns[args.output] = job
        wait = True if args.wait is None else args.wait
        if wait and not job.reused:
            if verbosity == "verbose":
                job.wait(logs=True)
            else:
                follow_in_cell(job, quiet=verbosity == "quiet")
    return job


def upload_line() -> Any:
    """In a Jupyter kernel, an :class:`~smglm.notebook.panel.UploadLine` drawing the data's
    upload in the cell (one display, updated in place; nothing for a fast upload); elsewhere
    None (the terminal keeps its plain progress line)."""
    from IPython import get_ipython

    from smglm.notebook.live import in_kernel
    from smglm.notebook.panel import UploadLine

    if not in_kernel(get_ipython()):
        return None
    return UploadLine(_shown_in_place())


def _shown_in_place() -> Any:
    """``show(bundle)``: the first call displays the mimebundle ``bundle`` in the cell, later
    calls replace it in place (one display id)."""
    from IPython.display import display

    handle: Any = None

    def show(bundle: dict[str, str]) -> None:
        nonlocal handle
        if handle is None:
            handle = display(bundle, raw=True, display_id=True)
        else:
            handle.update(bundle, raw=True)

    return show


def follow_in_cell(job: Job, *, quiet: bool = False) -> None:
    """Follow ``job`` until it ends, in the cell: in a Jupyter kernel a live panel updated in
    place that ends as the status line (``quiet``: only that line, at the end); elsewhere
    (terminal IPython) the status changes, then that line. The job's value then displays its
    report only. Raises :class:`~smglm.errors.JobFailed` when the job failed or was stopped
    (after showing why)."""
    import io

    from IPython import get_ipython
    from IPython.display import display

    from smglm.errors import JobFailed
    from smglm.notebook.live import in_kernel, poll_interval
    from smglm.notebook.panel import panel_bundle, panel_view, watch

    final = None
    if in_kernel(get_ipython()) and not quiet:
        show = _shown_in_place()
        try:
            final = watch(job, lambda view: show(panel_bundle(view)), interval=poll_interval(job))
        except KeyboardInterrupt:
            _ask_stop(job)
            return
    else:
        job.wait(logs=False, raise_on_failure=False, out=io.StringIO() if quiet else None)
        if job.done:
            final = panel_view(job)
            display(panel_bundle(final), raw=True)
    if final is None or not final.done:
        return
    if final.status == "Completed":
        job._panel_shown = True  # type: ignore[attr-defined]  # its display: the report only
        return
    raise JobFailed(job.name, final.status, final.failure_reason)


def _ask_stop(job: Job) -> None:
    """A Ctrl-C while the panel follows the job: ask whether to stop it (as ``job.wait``)."""
    answer = input(f"Stop training job {job.name!r}? [y/N] ").strip().lower()
    if answer in ("y", "yes"):
        job.stop()
        print(f"[{job.name}] stop requested")
    else:
        print(f"[{job.name}] still running; job.wait() to follow it again")
