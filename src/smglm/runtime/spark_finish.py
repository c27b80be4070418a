"""``python -m smglm.runtime spark-finish``: a Spark driver's output as a training job's artifacts.

The Spark engine's driver (:mod:`smglm.glm.engines.spark_driver`, run by SageMaker Processing
or locally) writes ``spark_fit.json`` and, per split, the report tables it computed with Spark
(``report/<split>/``). This command turns that into what a training job leaves, so that
``job.model``, ``job.report()``, tracking, serving and the pyfunc model work unchanged::

    python -m smglm.runtime spark-finish --driver-out DIR --model-dir M --output-data-dir O

- ``M``: ``model.json``, ``coefficients.csv``, ``metrics.json``, ``config.yaml`` and the
  MLflow pyfunc folder, written as ``train`` writes them (model.json last);
- ``O``: ``metrics.json``, and per split (``train/``, ``test/``) the driver's report tables
  (and the PNG plots drawn from them when the report module offers it).

The launch layer runs it as a process (it never imports the runtime). Exit codes as the other
entry points: 0, 1 for a user error (bad driver output), 2 for anything else.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["finish", "main"]

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run :func:`finish`; return the exit code."""
    from smglm.runtime.failure import failure_reason
    from smglm.runtime.logging_config import configure_logging

    parser = argparse.ArgumentParser(
        prog="python -m smglm.runtime spark-finish",
        description="Turn a Spark driver's output into a training job's model and output data.",
    )
    parser.add_argument("--driver-out", required=True, help="the driver's output directory")
    parser.add_argument("--model-dir", required=True, help="where to write the model directory")
    parser.add_argument(
        "--output-data-dir", required=True, help="where to write metrics.json and the reports"
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging()
    try:
        finish(Path(args.driver_out), Path(args.model_dir), Path(args.output_data_dir))
    except Exception as exc:
        reason, code = failure_reason(exc)
        log.error("spark-finish failed: %s", reason, exc_info=exc)
        print(reason, file=sys.stderr)
        return code
    return 0


def finish(driver_out: Path, model_dir: Path, output_data_dir: Path, *, images: bool = True) -> Any:
    """Write the model directory and the output data of the driver's output; returns the
    :class:`~smglm.glm.result.FitResult`. ``images``: draw the report's PNGs (else the tables
    only; ``JobConfig.report_images``)."""
    from smglm.errors import DataError, Issue
    from smglm.glm.engines.spark import FIT_FILE, result_from_driver
    from smglm.glm.result import json_safe
    from smglm.runtime.train import write_model_dir

    fit_file = driver_out / FIT_FILE
    if not fit_file.is_file():
        failure = driver_out / "failure"
        why = failure.read_text(encoding="utf-8").strip() if failure.is_file() else ""
        raise DataError(
            [
                Issue(
                    "driver_out",
                    f"no {FIT_FILE} in {str(driver_out)!r}"
                    + (f"; the driver failed: {why}" if why else "; did the Spark job run?"),
                    str(driver_out),
                )
            ]
        )
    doc = json.loads(fit_file.read_text(encoding="utf-8"))
    result = result_from_driver(doc["config"], driver_out)
    output_data_dir.mkdir(parents=True, exist_ok=True)
    (output_data_dir / "metrics.json").write_text(json.dumps(json_safe(result.metrics), indent=1))
    splits = [
        (split, driver_out / "report" / split, output_data_dir / split)
        for split in ("train", "test")
        if (driver_out / "report" / split).is_dir()
    ]
    _write_reports(result, splits, images=images)
    write_model_dir(model_dir, result)
    from smglm.tracking.runs import log_from_runtime

    if log_from_runtime(model_dir, output_data_dir):
        log.info("results logged live to the MLflow run")
    log.info("spark-finish: model in %s, output data in %s", model_dir, output_data_dir)
    return result


def _write_reports(result: Any, splits: list[tuple[str, Path, Path]], *, images: bool) -> None:
    """Each split's report folder from the tables Spark computed: the runtime's
    ``write_spark_reports`` (report tables, term views and PNGs, as a row-level job's) when
    this version has it, else the driver's tables copied as they are."""
    from smglm.runtime import report_files

    write = getattr(report_files, "write_spark_reports", None)
    if write is not None:
        from smglm.runtime.report_files import plot_workers

        write(
            result.config,
            [(name, tables, out, None) for name, tables, out in splits],
            workers=plot_workers(),
            result=result,
            images=images,
        )
        return
    for name, tables, out in splits:
        shutil.copytree(tables, out, dirs_exist_ok=True)
        log.info("%s: report tables copied; no plots drawn from tables in this version", name)
