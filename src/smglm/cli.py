"""The ``smglm`` command line: ``demo``, ``fit``, ``data`` (and the job commands as they come).

Every subcommand is a small function; errors from smglm are printed as one message (no
traceback) with exit status 2 for a user's mistake, 1 for anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from smglm import __version__
from smglm.errors import ConfigError, DataError, ModelError, SmglmError

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
    from smglm.config import GLMConfig
    from smglm.datasets import motor

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_path = out / "motor.parquet"
    print(f"[demo] generating {args.rows:,} rows of synthetic motor data -> {data_path}")
    motor(args.rows, seed=args.seed).to_parquet(data_path)
    config_path = out / "glm.yaml"
    config_path.write_text(DEMO_CONFIG, encoding="utf-8")
    config = GLMConfig.from_file(config_path)
    print(f"[demo] config {config_path}:\n{config.to_yaml()}")
    return _fit_and_report(config, data_path, out / "model", out / "report")


def _fit_and_report(config: object, data: Path, model_dir: Path, report_dir: Path) -> int:
    import smglm

    result = smglm.fit(config, data)  # type: ignore[arg-type]
    print(result.summary())
    result.save(model_dir)
    print(f"[smglm] model directory: {model_dir}")
    files = _write_report(result, data, report_dir)
    if files:
        print(f"[smglm] report: {len(files)} files in {report_dir}")
    return 0


def _write_report(result: object, data: Path, report_dir: Path) -> list[Path]:
    """The report tables and plots, when the report modules are available."""
    try:
        from smglm.runtime.report import write_report
    except ImportError:
        return []
    return write_report(result, data, report_dir)


def _cmd_fit(args: argparse.Namespace) -> int:
    from smglm.config import as_glm_config

    config = as_glm_config(args.config)
    return _fit_and_report(
        config, Path(args.data), Path(args.out) / "model", Path(args.out) / "report"
    )


def _cmd_data(args: argparse.Namespace) -> int:
    from smglm.datasets import write_motor

    path = write_motor(args.out, args.rows, seed=args.seed)
    print(path)
    return 0


def _parser() -> argparse.ArgumentParser:
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
    demo.add_argument("--out", default="smglm-demo", help="folder for data, model and report")
    demo.set_defaults(func=_cmd_demo)

    fit = sub.add_parser("fit", help="fit a GLM in this process (no job, no backend)")
    fit.add_argument("config", help="GLMConfig YAML or JSON file")
    fit.add_argument("data", help="CSV/Parquet file or folder")
    fit.add_argument("--out", default="smglm-fit", help="folder for the model and report")
    fit.set_defaults(func=_cmd_fit)

    data = sub.add_parser("data", help="write the synthetic motor data set")
    data.add_argument("out", help="output file: .parquet, .csv or .csv.gz")
    data.add_argument("--rows", type=int, default=100_000, help="number of rows")
    data.add_argument("--seed", type=int, default=0, help="random seed")
    data.set_defaults(func=_cmd_data)
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
    except SmglmError as exc:
        print(f"smglm {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"smglm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
