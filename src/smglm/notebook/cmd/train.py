"""``%%sm_train``: a GLMConfig cell body plus options -> a training job (also the form's Launch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smglm.errors import ConfigError, Issue

if TYPE_CHECKING:
    import argparse

    from smglm.config import GLMConfig
    from smglm.launch import Job
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
    **job_fields: Any,
) -> Job:
    """Start a training job with the ``%sm_config`` defaults under the given fields.

    The magic and the form both launch through here: ``job_fields`` (JobConfig fields; None
    values are ignored) override the settings, and ``reuse`` returns a completed job with the
    same config, data and image instead of a new one. Returns at once (no waiting).
    """
    from smglm.launch import train
    from smglm.notebook.cmd.common import backend_for
    from smglm.notebook.settings import load_settings

    settings = settings or load_settings()
    fields = settings.job_fields()
    fields.update({k: v for k, v in job_fields.items() if v is not None})
    be = backend_for(backend or fields.get("backend"), settings)
    fields["backend"] = be.name
    track = tracking if tracking is not None else settings.tracking
    return train(
        config,
        data,
        test_data=test_data,
        job=fields,
        backend=be,
        wait=False,
        reuse=reuse,
        tracking=track,
    )


def run(args: argparse.Namespace, cell: str, user_ns: dict[str, Any]) -> Job:
    """Do what a parsed ``%%sm_train`` line and its cell body ask; return the Job."""
    from smglm.notebook.cmd.common import resolve_data

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
    job = submit(
        config,
        data,
        test_data=test,
        backend=args.backend,
        reuse=not args.new,
        tracking=args.tracking,
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
        job.wait(logs=True)
    return job
