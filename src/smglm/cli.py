"""The ``smglm`` command line: ``demo``, ``train``, ``jobs``, ``logs``, ``stop``, ``show``,
``fit`` (in process), ``warm`` (the local backend's warm worker), ``data`` (sample data),
``image`` (build smglm's image and push it to ECR) and ``prices`` (the instance prices of the
cost line; ``--refresh`` fetches them from the AWS Price List API).

Every subcommand is a small function; errors from smglm are printed as one message (no
traceback) with exit status 2 for a user's mistake, 1 for anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from smglm import __version__
from smglm.errors import ConfigError, DataError, Issue, JobFailed, ModelError, SmglmError

#: The fitting engines (``JobConfig.engine``) and the local backend's container runners.
FIT_ENGINES = ("glum", "spark")
RUNNERS = ("podman", "docker")

__all__ = ["main"]

log = logging.getLogger("smglm.cli")

DEMO_CONFIG = """\
# A Poisson claim-frequency GLM on synthetic motor data, exposure as the offset.
target: claim_count
predictors: [driver_age, vehicle_age, vehicle_power, bonus_malus, density_log,
             area, vehicle_brand, region]
exposure: exposure
family: poisson
test: {fraction: 0.2, seed: 42}
"""


def _cmd_demo(args: argparse.Namespace) -> int:
    """A local training job end to end: data, config, upload, train, artifacts, summary."""
    import smglm
    from smglm.config import GLMConfig
    from smglm.datasets import motor
    from smglm.launch.local import LocalBackend

    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    data_path = out / "motor.parquet"
    print(f"[demo] generating {args.rows:,} rows of synthetic motor data -> {data_path}")
    motor(args.rows, seed=args.seed).to_parquet(data_path)
    config_path = out / "glm.yaml"
    config_path.write_text(DEMO_CONFIG, encoding="utf-8")
    config = GLMConfig.from_file(config_path)
    print(f"[demo] config {config_path}")
    backend = LocalBackend(out / ".smglm", warm=False)  # one job: a warm worker would not pay
    # the demo's report is read as files: the job draws its PNGs (report_images)
    job = smglm.train(config, data_path, backend=backend, report_images=True)
    print(f"[demo] started local training job {job.name}")
    job.wait(logs=args.logs)
    result = job.model
    print(result.summary())
    folder = job.artifacts()
    print(f"[demo] model directory: {folder / 'model'}")
    print(f"[demo] report and plots: {folder / 'output'}")
    return 0


def _fit_and_report(config: object, data: Path, model_dir: Path, report_dir: Path) -> int:
    import smglm
    from smglm.glm.report.scoring import scored_from_fit
    from smglm.runtime.report_files import plot_workers, write_reports

    result = smglm.fit(config, data, keep_fitted=True)  # type: ignore[arg-type]
    print(result.summary())
    result.save(model_dir)
    print(f"[smglm] model directory: {model_dir}")
    splits = []
    for name in ("train", "test"):
        scored = scored_from_fit(result, name)
        if scored is not None:
            trace = result.convergence if name == "train" else None
            splits.append((scored, report_dir / name, trace))
    files = write_reports(result.config, splits, workers=plot_workers(), result=result)
    count = sum(len(f) for f in files.values())
    print(f"[smglm] report: {count} files in {report_dir} ({', '.join(files)})")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from smglm.config import as_glm_config

    config = as_glm_config(args.config)
    return _fit_and_report(
        config, Path(args.data), Path(args.out) / "model", Path(args.out) / "report"
    )


def _cmd_warm(args: argparse.Namespace) -> int:
    from smglm.launch import warm
    from smglm.launch.backend import default_home

    home = Path(args.home).absolute() if args.home else default_home()
    pid = warm.worker_pid(home)
    if args.stop:
        stopped = warm.shutdown_worker(home)
        print(f"warm worker {pid} of {home} stopped" if stopped else f"no warm worker for {home}")
        return 0
    if pid is None:
        print(f"no warm worker for {home} (the next local job starts one)")
    else:
        print(f"warm worker {pid} for {home}; log: {warm.worker_dir(home) / 'worker.log'}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from smglm.datasets import write_motor

    path = write_motor(args.out, args.rows, seed=args.seed)
    print(path)
    return 0


def _backend(args: argparse.Namespace) -> Any:
    from smglm.launch import get_backend

    return get_backend(args.backend)


def _cmd_train(args: argparse.Namespace) -> int:
    import smglm

    fields: dict[str, Any] = {}
    engine, runner = args.engine, args.runner
    if engine in RUNNERS:  # the old spelling: --engine named the container runner
        print(
            f"[smglm] --engine {engine} is deprecated: use --runner {engine} (--engine now "
            f"names the fitting engine: {' or '.join(FIT_ENGINES)})",
            file=sys.stderr,
        )
        if runner is not None and runner != engine:
            raise ConfigError(
                [Issue("--engine", f"says {engine!r} but --runner says {runner!r}", engine)]
            )
        engine, runner = None, engine
    args.engine = engine
    for name in (
        "instance_type",
        "instance_count",
        "job_name",
        "max_cost",
        "image_uri",
        "role",
        "output_path",
        "engine",
        "aggregate",
        "report_images",
        "use_spot",
        "max_wait_seconds",
        "keep_alive_seconds",
    ):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    data = args.data or args.data_pos
    if not data:
        raise ConfigError([Issue("data", "give the training data: --data PATH_OR_URI")])
    backend: Any = args.backend
    if runner:
        from smglm.launch.backend import BACKENDS, get_backend

        if "runner" not in BACKENDS[args.backend].options:
            with_runner = [n for n, e in BACKENDS.items() if "runner" in e.options]
            raise ConfigError(
                [
                    Issue(
                        "--runner",
                        f"runs the image locally; not with --backend {args.backend} "
                        f"(backends with a runner: {with_runner})",
                        runner,
                    )
                ]
            )
        backend = get_backend(args.backend, runner=runner)
    job = smglm.train(
        args.config,
        data,
        test_data=args.test,
        backend=backend,
        reuse=not args.new,
        **fields,
    )
    print(job.name)
    if args.wait:
        job.wait()
        print(job.model.summary())
        print(f"[smglm] artifacts: {job.artifacts()}")
    return 0


def _cmd_jobs(args: argparse.Namespace) -> int:
    if args.mlflow:
        from smglm.tracking.runs import job_runs, resolve_tracking_uri

        rows = job_runs(resolve_tracking_uri(args.tracking_uri), args.experiment, args.max)
        for r in rows:
            r["SecondaryStatus"] = r.get("Backend", "")
    else:
        rows = [s.as_training_job() for s in _backend(args).list_states(args.max)]
    if not rows:
        print("no jobs")
        return 0
    print(f"{'job':<48} {'status':<11} {'secondary':<12} created")
    for r in rows:
        print(
            f"{r['TrainingJobName']:<48} {r['TrainingJobStatus']:<11} "
            f"{r.get('SecondaryStatus', ''):<12} {str(r.get('CreationTime', ''))[:19]}"
        )
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    from smglm.launch import Job

    job = Job.attach(args.job, _backend(args))
    if args.follow:  # from the start of the log, then new lines until the job ends
        if not job.done:
            job.announce()
        job.wait(raise_on_failure=False)
    else:
        print(job.logs())
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    from smglm.launch import Job

    job = Job.attach(args.job, _backend(args))
    if job.stop():
        print(f"stop requested: {args.job}")
        return 0
    state = job.state()
    reason = f": {state.failure_reason}" if state.failure_reason else ""
    print(f"job {args.job} has already ended ({state.status}{reason}); nothing to stop")
    return 1


def _cmd_show(args: argparse.Namespace) -> int:
    from smglm.launch import Job

    job = Job.attach(args.job, _backend(args))
    if args.request:  # the CreateTrainingJob / CreateProcessingJob request, nothing sent
        import json

        print(json.dumps(job.request(), indent=2, default=str))
        return 0
    print(repr(job))
    if job.status == "Completed":
        print(job.model.summary())
    elif job.failure_reason:
        print(f"failure: {job.failure_reason}")
    return 0


def _cmd_prices(args: argparse.Namespace) -> int:
    from smglm.launch import pricing

    if args.refresh:
        table = pricing.refresh_prices(args.region)
        print(
            f"[smglm] {len(table.training)} training and {len(table.processing)} processing "
            f"prices for {args.region} -> {pricing.cache_path(args.region)}"
        )
    table = pricing.prices(args.region)
    note = "" if table.region == args.region else f" ({args.region}: none; using {table.region}'s)"
    print(f"prices: on-demand {table.region}, {table.label}{note}")
    if not table.refreshed:
        print(f"  refresh with: smglm prices --refresh --region {args.region}")
    names = args.instance_type or sorted(table.training)
    for name in names:
        price = table.per_hour(name)
        if price is None:
            print(f"{name:<22} no price known")
            continue
        extra = ""
        if name in table.processing and table.processing[name] != price:
            extra = f"  (processing ${table.processing[name]:.4g}/h)"
        print(f"{name:<22} ${price:.4g}/h{extra}")
    return 0


def _cmd_deploy(args: argparse.Namespace) -> int:
    from smglm.launch import Job

    job = Job.attach(args.job, _backend(args))
    serverless = None
    if args.serverless_memory is not None or args.max_concurrency is not None:
        serverless = {
            "memory_mb": args.serverless_memory or 2048,
            "max_concurrency": args.max_concurrency or 5,
        }
    predictor = job.deploy(
        instance_type=args.instance_type,
        initial_instance_count=args.count,
        serverless=serverless,
        endpoint_name=args.name,
    )
    print(
        f"endpoint {predictor.endpoint_name} is InService; remove it with: smglm endpoints "
        f"--backend {args.backend} --delete {predictor.endpoint_name}"
    )
    return 0


def _cmd_endpoints(args: argparse.Namespace) -> int:
    from smglm.launch.deploy import Predictor, list_endpoints

    if args.delete:
        Predictor(args.delete, _backend(args).deployer()).delete()
        return 0
    rows = list_endpoints(_backend(args))
    if not rows:
        print("no endpoints")
        return 0
    print(f"{'endpoint':<56} {'status':<12} created")
    for r in rows:
        created = str(r.get("CreationTime", ""))[:19]
        print(f"{r['EndpointName']:<56} {r['EndpointStatus']:<12} {created}")
    return 0


def _cmd_image(args: argparse.Namespace) -> int:
    from smglm.launch.image import ImageOptions, image_command, run_image_command

    if args.engine_old:  # the old spelling, before --engine meant the fitting engine
        print(
            f"[smglm] image --engine is deprecated: use --builder {args.engine_old}",
            file=sys.stderr,
        )
        if args.builder is None:
            args.builder = args.engine_old
    names = ("builder", "tag", "repository", "region", "account", "extras", "base_image", "source")
    options = ImageOptions(
        **{name: getattr(args, name, None) for name in names},
        offline=args.offline,
        no_pull=args.no_pull,
    )
    command = image_command(options, push=args.image_command == "push", dry_run=args.dry_run)
    proc = run_image_command(command)
    print(proc.stdout, end="")
    return proc.returncode


def _parser() -> argparse.ArgumentParser:
    from smglm.launch.backend import DEFAULT_BACKEND, backend_names

    backends = backend_names()  # the registry: a registered backend is offered everywhere
    parser = argparse.ArgumentParser(
        prog="smglm",
        description="GLMs as SageMaker training jobs, with a local backend that needs no AWS.",
    )
    parser.add_argument("--version", action="version", version=f"smglm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="generate sample data, fit and report a GLM end to end")
    demo.add_argument("--rows", type=int, default=50_000, help="rows of synthetic data")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the data")
    demo.add_argument("--out", default="smglm-demo", help="folder for data, jobs and artifacts")
    demo.add_argument(
        "--logs", action=argparse.BooleanOptionalAction, default=False, help="show the job's log"
    )
    demo.set_defaults(func=_cmd_demo)

    fit = sub.add_parser("fit", help="fit a GLM in this process (no job, no backend)")
    fit.add_argument("config", help="GLMConfig YAML or JSON file")
    fit.add_argument("data", help="CSV/Parquet file or folder")
    fit.add_argument("--out", default="smglm-fit", help="folder for the model and report")
    fit.set_defaults(func=_cmd_fit)

    train = sub.add_parser("train", help="start a training job (local by default)")
    train.add_argument("config", help="GLMConfig YAML or JSON file")
    train.add_argument("data_pos", nargs="?", metavar="DATA", help="same as --data")
    train.add_argument("--data", help="CSV/Parquet file or folder, or an s3:// / file:// URI")
    train.add_argument("--test-data", dest="test", help="test data (else the config's split)")
    train.add_argument("--backend", choices=backends, default=DEFAULT_BACKEND, help="where to run")
    train.add_argument("--instance-type", dest="instance_type", help="e.g. ml.m5.xlarge")
    train.add_argument("--name", dest="job_name", help="job name (default: generated)")
    train.add_argument(
        "--image", dest="image_uri", help="training image URI (sagemaker, or with --runner)"
    )
    train.add_argument(
        "--engine",
        choices=[*FIT_ENGINES, *RUNNERS],
        help="the fitting engine: glum (default) or spark (Spark MLlib's GLR; a SageMaker "
        "Processing job on sagemaker). podman/docker here are the old spelling of --runner",
    )
    train.add_argument(
        "--aggregate",
        choices=["auto", "cells", "rows"],
        help="model points: fit on rows summed to rating cells (cells), never (rows), or when "
        "the terms allow it and the data is large (auto, the default)",
    )
    train.add_argument(
        "--report-images",
        dest="report_images",
        choices=["auto", "true", "false"],
        help="draw the report's PNGs in the job: auto (the default: on sagemaker, not on the "
        "local backend, where the notebook draws them from the tables), true or false",
    )
    train.add_argument(
        "--instance-count",
        dest="instance_count",
        type=int,
        help="instances (more than 1 only with --engine spark: a Spark cluster)",
    )
    train.add_argument(
        "--runner",
        choices=RUNNERS,
        help="local backend: run the image (--image) with this container runner instead of "
        "the installed package",
    )
    train.add_argument("--role", help="IAM role ARN (sagemaker)")
    train.add_argument("--output-path", dest="output_path", help="s3:// or file:// prefix")
    train.add_argument("--max-cost", dest="max_cost", type=float, help="refuse above this $")
    train.add_argument(
        "--use-spot",
        dest="use_spot",
        action="store_true",
        default=None,
        help="sagemaker: managed spot training (cheaper; may wait for capacity)",
    )
    train.add_argument(
        "--max-wait",
        dest="max_wait_seconds",
        type=int,
        metavar="SECONDS",
        help="with --use-spot: the most the job may wait and run, in all (default: its run time)",
    )
    train.add_argument(
        "--keep-alive",
        dest="keep_alive_seconds",
        type=int,
        metavar="SECONDS",
        help="sagemaker: keep the instances in a warm pool this long after the job (0-3600; "
        "billed while idle), so the next matching job starts in seconds",
    )
    train.add_argument("--new", action="store_true", help="run even if an identical job exists")
    train.add_argument(
        "--wait", action=argparse.BooleanOptionalAction, default=True, help="follow the job"
    )
    train.set_defaults(func=_cmd_train)

    for cmd, helptext, func in (
        ("logs", "print a job's log", _cmd_logs),
        ("stop", "stop a job", _cmd_stop),
        ("show", "a job's status and, when done, its model summary", _cmd_show),
    ):
        p = sub.add_parser(cmd, help=helptext)
        p.add_argument("job", help="training job name")
        p.add_argument(
            "--backend", choices=backends, default=DEFAULT_BACKEND, help="the job's backend"
        )
        if cmd == "logs":
            p.add_argument("-f", "--follow", action="store_true", help="follow until it ends")
        if cmd == "show":
            p.add_argument(
                "--request",
                action="store_true",
                help="print the job's request to SageMaker (a Spark job's CreateProcessingJob)",
            )
        p.set_defaults(func=func)

    jobs = sub.add_parser("jobs", help="list recent jobs")
    jobs.add_argument("--backend", choices=backends, default=DEFAULT_BACKEND, help="whose jobs")
    jobs.add_argument("--max", type=int, default=20, help="how many")
    jobs.add_argument(
        "--mlflow", action="store_true", help="list every backend's jobs from their MLflow runs"
    )
    jobs.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI)")
    jobs.add_argument("--experiment", help="MLflow experiment (default: smglm)")
    jobs.set_defaults(func=_cmd_jobs)

    dep = sub.add_parser(
        "deploy",
        help="serve a completed job's model on an endpoint (local: 127.0.0.1; sagemaker: bills "
        "until deleted)",
    )
    dep.add_argument("job", help="training job name")
    dep.add_argument(
        "--backend", choices=backends, default=DEFAULT_BACKEND, help="the job's backend"
    )
    dep.add_argument("--instance-type", dest="instance_type", help="default ml.m5.large")
    dep.add_argument("--count", type=int, default=1, help="instances (default 1)")
    dep.add_argument(
        "--serverless-memory",
        dest="serverless_memory",
        type=int,
        help="a serverless endpoint of this many MB (1024..6144, steps of 1024)",
    )
    dep.add_argument(
        "--max-concurrency", dest="max_concurrency", type=int, help="serverless: 1..200"
    )
    dep.add_argument("--name", help="the endpoint's name (default: the job's, with a suffix)")
    dep.set_defaults(func=_cmd_deploy)

    eps = sub.add_parser("endpoints", help="list a backend's endpoints; --delete NAME removes one")
    eps.add_argument("--backend", choices=backends, default=DEFAULT_BACKEND, help="whose")
    eps.add_argument("--delete", metavar="NAME", help="delete this endpoint (and its model)")
    eps.set_defaults(func=_cmd_endpoints)

    wrm = sub.add_parser(
        "warm",
        help="the local backend's warm runtime worker: is it running; --stop ends it",
        description="Local jobs fork from a warm runtime worker that has done the heavy "
        "imports; it starts with the first job and exits after SMGLM_WARM_IDLE_SECONDS "
        "(900) without one. SMGLM_LOCAL_WARM=0 runs every job in a fresh interpreter.",
    )
    wrm.add_argument("--home", help="smglm's working folder (default: SMGLM_HOME or ./.smglm)")
    wrm.add_argument("--stop", action="store_true", help="stop it (running jobs go on)")
    wrm.set_defaults(func=_cmd_warm)

    prc = sub.add_parser(
        "prices",
        help="the on-demand instance prices of the cost line; --refresh fetches them from AWS",
        description="The cost line and max_cost use smglm's shipped price table (us-east-1, "
        "typed by hand; its date is shown) unless a refreshed table for the job's region, "
        "younger than 30 days, is in smglm's cache (SMGLM_HOME/cache). --refresh fetches one "
        "from the AWS Price List API (needs credentials allowed pricing:GetProducts).",
    )
    prc.add_argument("--refresh", action="store_true", help="fetch from the AWS Price List API")
    prc.add_argument("--region", default="us-east-1", help="the region (default us-east-1)")
    prc.add_argument(
        "--instance-type", dest="instance_type", action="append", help="only this type (repeat)"
    )
    prc.set_defaults(func=_cmd_prices)

    data = sub.add_parser("data", help="write the synthetic motor data set")
    data.add_argument("out", help="output file: .parquet, .csv or .csv.gz")
    data.add_argument("--rows", type=int, default=100_000, help="number of rows")
    data.add_argument("--seed", type=int, default=0, help="random seed")
    data.set_defaults(func=_cmd_data)

    from smglm.launch.image import BUILDERS

    image = sub.add_parser(
        "image",
        help="build smglm's SageMaker image, or build and push it to Amazon ECR",
        description="Build smglm's image (container/Dockerfile) for linux/amd64 with Docker, "
        "podman or buildah, and push it to ECR for the sagemaker backend. Runs "
        "container/build_and_push.sh of smglm's source tree; see container/README.md.",
    )
    image_sub = image.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    image_build = image_sub.add_parser(
        "build", help="build the image; prints the local image name (smglm:VERSION)"
    )
    image_push = image_sub.add_parser(
        "push",
        help="build, create the ECR repository if missing, log in, tag and push; prints the "
        "image URI to pass as image_uri",
    )
    for p in (image_build, image_push):
        p.add_argument(
            "--dry-run", action="store_true", help="print the commands; run none of them"
        )
        p.add_argument(
            "--builder",
            choices=BUILDERS,
            help="container tool (default: docker if its engine answers, else buildah, "
            "else podman)",
        )
        p.add_argument(  # the old spelling of --builder
            "--engine", dest="engine_old", choices=BUILDERS, help=argparse.SUPPRESS
        )
        p.add_argument("--tag", help="image tag (default: smglm's version)")
        p.add_argument("--repository", help="repository name (default: smglm)")
        p.add_argument("--extras", help="smglm's extras in the image (default: serve)")
        p.add_argument("--base-image", dest="base_image", help="FROM image (Python 3.11)")
        p.add_argument("--offline", action="store_true", help="install from local wheels only")
        p.add_argument("--no-pull", dest="no_pull", action="store_true", help="never pull")
        p.add_argument("--source", type=Path, help="smglm's source tree (default: found)")
        p.set_defaults(func=_cmd_image)
    image_push.add_argument(
        "--region", help="AWS region of the jobs (default: AWS_REGION or the AWS config)"
    )
    image_push.add_argument("--account", help="AWS account ID (default: the caller's, by STS)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (ConfigError, DataError, ModelError) as exc:
        print(f"smglm {args.command}: {exc}", file=sys.stderr)
        return 2
    except JobFailed as exc:
        print(f"smglm {args.command}: {exc}", file=sys.stderr)
        return 1
    except SmglmError as exc:
        print(f"smglm {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"smglm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
