"""The ``train`` entry point: read the job's channels and hyperparameters, fit, write the model.

What SageMaker runs as ``docker run IMAGE train`` (``python -m smglm.runtime train``):

1. ``input/config/hyperparameters.json``: GLMConfig overrides (:mod:`.hyperparameters`);
   ``inputdataconfig.json`` and ``resourceconfig.json`` (only the first host works; others exit 0).
2. The GLMConfig: the ``config`` channel's YAML/JSON file, or the hyperparameters alone (``config``
   as JSON, or ``target``, ``predictors``, ``family``, ...); hyperparameters override its fields.
3. Channels ``train`` (required) and ``test`` (optional; else ``config.test`` splits ``train``).
4. :func:`smglm.glm.fit`; the metric lines of :mod:`~smglm.runtime.metrics` to stdout.
5. ``output/data/``: ``metrics.json``, and per split (``train/``, ``test/``) the report tables
   and, unless the ``report_images`` hyperparameter is ``false``, the PNG plots
   (:mod:`~smglm.runtime.report_files`).
6. ``model/``: ``model.json``, ``coefficients.csv``, ``metrics.json``, ``config.yaml``,
   ``convergence.csv``, ``covariance.csv``, ``search.csv`` (with ``penalty.search``: the CV
   path) and the MLflow pyfunc folder ``mlflow_model/``. They are written to a staging folder
   and moved in last (``model.json`` the very last), so a failed or stopped job leaves no model
   behind.

Failures end as :mod:`~smglm.runtime.failure` says (exit 1 user error, 2 internal, 143 SIGTERM).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from smglm.config import GLMConfig
from smglm.config.model import apply_overrides
from smglm.errors import ConfigError, DataError, Issue
from smglm.runtime.channels import find_channel, read_config_channel, read_data_channel
from smglm.runtime.failure import run_entry_point
from smglm.runtime.hyperparameters import Hyperparameters, parse_hyperparameters
from smglm.runtime.logging_config import set_level
from smglm.runtime.paths import MLPaths

__all__ = ["main", "resolve_config", "train", "write_model_dir"]

log = logging.getLogger(__name__)

STAGING_NAME = ".smglm-staging"

#: The ``train`` entry point's own hyperparameters and their values (JobConfig's ``engine``,
#: ``aggregate`` and ``report_images``; the launcher sets them only when they are not the
#: first value).
OPTIONS: dict[str, tuple[str, ...] | None] = {
    "engine": ("glum", "spark"),
    "aggregate": ("auto", "cells", "rows"),
    "report_images": ("true", "false"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``train`` on the ``/opt/ml`` tree at ``$SMGLM_ML_ROOT``; return the exit code."""
    return run_entry_point("train", train, sys.argv[1:] if argv is None else argv)


def train(paths: MLPaths) -> None:
    """Fit the job's GLM and write the model and the report (raises on failure)."""
    raw = paths.read_hyperparameters()
    hp = parse_hyperparameters(raw, options=OPTIONS)
    set_level(hp.log_level)
    channels = paths.read_input_data_config()
    resources = paths.read_resource_config()
    log.info(
        "host %s of %s (%s); channels %s; hyperparameters %s",
        resources.current_host,
        resources.hosts,
        resources.current_instance_type,
        sorted(channels),
        json.dumps(raw, sort_keys=True),
    )
    config = resolve_config(paths, channels, hp)
    log.info("GLMConfig: %s", config.to_json(indent=None))
    if not resources.is_master:
        log.info("not the first host (%s): nothing to do here", resources.hosts[0])
        return
    find_channel(paths, channels, ["train"], required=True)
    images = hp.options.get("report_images", "true") == "true"
    if hp.options.get("engine") == "spark":
        _train_spark(paths, channels, config, images)
        return
    aggregate = hp.options.get("aggregate", "auto")
    if aggregate != "rows":
        from smglm.glm.points import will_aggregate
        from smglm.runtime.channels import channel_folder

        train_dir = channel_folder(paths, channels, "train")
        if (aggregate != "auto" or not _rows_for_sure(config, train_dir)) and will_aggregate(
            config, train_dir, aggregate
        ):
            _train_points(paths, channels, config, train_dir, aggregate, images)
            return
    train_df = read_data_channel(paths, channels, "train", config.columns)
    test_df = None
    if find_channel(paths, channels, ["test"], required=False):
        test_df = read_data_channel(paths, channels, "test", config.columns)
    elif config.test is not None:
        from smglm.glm.fitting import split_test

        train_df, test_df = split_test(train_df, config.test)
        how = (
            f"{config.test.by} in {config.test.holdout}"
            if config.test.by is not None
            else f"fraction {config.test.fraction:g}, seed {config.test.seed}"
        )
        log.info(
            "no test channel: %d rows of train held out for testing (%s), %d rows train",
            len(test_df),
            how,
            len(train_df),
        )

    from smglm.glm import fit
    from smglm.runtime.metrics import print_convergence, print_metrics

    log.info("fitting a %s/%s GLM on %d rows", config.family, config.resolved_link, len(train_df))
    result = fit(
        config,
        train_df,
        test_data=test_df,
        keep_fitted=True,
        aggregate="rows",
    )
    fit_info = result.metrics.get("fit", {})
    log.info(
        "fit done: %s iterations, converged %s, %.3f s",
        fit_info.get("iterations"),
        fit_info.get("converged"),
        result.fit_seconds,
    )
    if not fit_info.get("converged", True):
        log.warning("the solver did not converge in %d iterations (max_iter)", config.max_iter)
    search = result.metrics.get("search")
    if search:
        log.info(
            "penalty search: chose alpha %.6g, l1_ratio %g (rule %s, %d folds, CV deviance "
            "%.6g +/- %.3g, %d fits); the path is in search.csv",
            search["alpha"],
            search["l1_ratio"],
            search["rule"],
            search["folds"],
            search["cv_deviance"],
            search["cv_deviance_se"],
            search["n_fits"],
        )
    print_convergence(result.convergence)
    print_metrics(result.metrics)

    _write_outputs(paths, result, {"train": train_df, "test": test_df}, images)
    _write_model(paths, result)

    from smglm.tracking.runs import log_from_runtime

    if log_from_runtime(paths.model_dir, paths.output_data_dir):
        log.info("results logged live to the MLflow run")


def _rows_for_sure(config: GLMConfig, folder: Path) -> bool:
    """Whether ``aggregate: auto`` fits ``folder``'s rows, told from its Parquet footers alone
    (pyarrow, loaded already) instead of DuckDB's import and scan: when the files hold fewer
    rows than :data:`~smglm.glm.points.AUTO_MIN_ROWS`, or a term varies within a rating cell
    (:func:`~smglm.glm.points.blockers` with the files' types). False (ask
    :func:`~smglm.glm.points.will_aggregate`) for anything else: other formats, unreadable
    footers, differing schemas, a column the footers lack."""
    from smglm.glm.points import AUTO_MIN_ROWS, blockers

    files = [p for p in folder.rglob("*") if p.is_file()]
    if not files or not all(p.name.endswith(".parquet") for p in files):
        return False
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows, schema = 0, None
        for path in files:
            meta = pq.ParquetFile(path).metadata
            rows += meta.num_rows
            if schema is None:
                schema = meta.schema.to_arrow_schema()
            elif not meta.schema.to_arrow_schema().equals(schema):
                return False
    except Exception:  # DuckDB and the reader say what is wrong with the files
        return False
    if rows < AUTO_MIN_ROWS:
        return True
    assert schema is not None
    types: dict[str, str] = {}
    for field in schema:
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        view = getattr(pa.types, "is_string_view", None)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or (view and view(kind)):
            types[field.name] = "VARCHAR"
        elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            types[field.name] = "BLOB"
        else:
            types[field.name] = str(kind).upper()
    if any(column not in types for column in config.columns):
        return False  # e.g. a hive partition column, which only the reader adds
    return bool(blockers(config, types))


def _train_points(
    paths: MLPaths,
    channels: Mapping[str, Any],
    config: GLMConfig,
    train_dir: Path,
    aggregate: str,
    images: bool = True,
) -> None:
    """Model points: DuckDB sums the channels' files to rating cells out of core (the rows are
    never loaded here), glum fits the cells, and the report is computed from the cells
    (:mod:`smglm.glm.points`)."""
    from smglm.glm import fit
    from smglm.runtime.channels import channel_folder
    from smglm.runtime.metrics import print_convergence, print_metrics

    test_dir = None
    if find_channel(paths, channels, ["test"], required=False):
        test_dir = channel_folder(paths, channels, "test")
    log.info(
        "model points (aggregate %s): DuckDB reads the files of %s",
        aggregate,
        "train" + (" and test" if test_dir else ""),
    )
    result = fit(config, train_dir, test_data=test_dir, keep_fitted=True, aggregate=aggregate)
    points = result.metrics.get("fit", {}).get("model_points") or {}
    log.info(
        "fit done on %s cells of %s rows: %s iterations, converged %s, %.3f s",
        f"{points.get('cells', 0):,}",
        f"{points.get('rows', 0):,}",
        result.metrics.get("fit", {}).get("iterations"),
        result.metrics.get("fit", {}).get("converged"),
        result.fit_seconds,
    )
    print_convergence(result.convergence)
    print_metrics(result.metrics)
    splits = {name: kept[0] for name, kept in (result.fitted or {}).items()}
    _write_outputs(paths, result, splits, images)
    _write_model(paths, result)

    from smglm.tracking.runs import log_from_runtime

    if log_from_runtime(paths.model_dir, paths.output_data_dir):
        log.info("results logged live to the MLflow run")


def _train_spark(
    paths: MLPaths, channels: Mapping[str, Any], config: GLMConfig, images: bool = True
) -> None:
    """``engine: spark`` on this machine: the Spark driver fits the channels' files in a local
    Spark session (Spark reads them; no DataFrame of the rows here), then ``spark-finish``
    writes the model and the report as a training job's (:mod:`~smglm.runtime.spark_finish`).
    On SageMaker the same driver runs in a Processing job instead."""
    from smglm.glm.engines import spark_driver
    from smglm.glm.engines.spark import job_document, spark_session
    from smglm.runtime.channels import channel_folder
    from smglm.runtime.metrics import print_metrics
    from smglm.runtime.spark_finish import finish

    train_dir = channel_folder(paths, channels, "train")
    test_dir = None
    if find_channel(paths, channels, ["test"], required=False):
        test_dir = channel_folder(paths, channels, "test")
    job = job_document(config, str(train_dir), None if test_dir is None else str(test_dir))
    log.info(
        "fitting a %s/%s GLM with Spark (%s) on the files of %s",
        config.family,
        config.resolved_link,
        "local session",
        "train" + (" and test" if test_dir else ""),
    )
    with tempfile.TemporaryDirectory(prefix="smglm-spark-") as out:
        try:
            spark_driver.run(spark_session(), job, out)
        except spark_driver.DriverError as exc:
            raise DataError([Issue(f, m) for f, m in exc.issues]) from None
        result = finish(Path(out), paths.model_dir, paths.output_data_dir, images=images)
    fit_info = result.metrics.get("fit", {})
    log.info(
        "Spark fit done: %s iterations, %.3f s",
        fit_info.get("iterations"),
        fit_info.get("seconds") or 0.0,
    )
    print_metrics(result.metrics)


def resolve_config(paths: MLPaths, channels: Mapping[str, Any], hp: Hyperparameters) -> GLMConfig:
    """The job's GLMConfig: the ``config`` channel (or the ``config`` hyperparameter, or none)
    with the hyperparameter overrides applied, validated once."""
    has_channel = find_channel(paths, channels, ["config"], required=False) is not None
    if has_channel and hp.config is not None:
        raise ConfigError(
            [
                Issue(
                    "hyperparameters.config",
                    "the config is given twice (a 'config' channel and a 'config' "
                    "hyperparameter); give one",
                )
            ]
        )
    if has_channel:
        base, source = read_config_channel(paths, channels), "the config channel"
    elif hp.config is not None:
        base, source = hp.config, "the config hyperparameter"
    elif "target" in hp.overrides:
        base, source = {}, "the hyperparameters"
    else:
        raise ConfigError(
            [
                Issue(
                    "channels.config",
                    "no GLMConfig: give a 'config' channel holding one YAML or JSON file, or "
                    "the whole config as hyperparameters (at least 'target')",
                )
            ]
        )
    if not isinstance(base, dict):
        raise ConfigError(
            [Issue("config", f"must be a mapping of GLMConfig fields; got {type(base).__name__}")],
            source=source,
        )
    for key, value in hp.overrides.items():
        log.info("hyperparameter sets %s = %r", key, value)
    data = apply_overrides(base, hp.overrides)
    if hp.overrides and source != "the hyperparameters":
        source += " with hyperparameter overrides"
    return GLMConfig.from_dict(data, source=source)


def _write_outputs(
    paths: MLPaths, result: Any, splits: Mapping[str, Any], images: bool = True
) -> None:
    from smglm.glm.report.scoring import score, scored_from_fit
    from smglm.glm.result import json_safe
    from smglm.runtime.report_files import plot_workers, write_reports

    out = paths.output_data_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(json_safe(result.metrics), indent=1))
    reports = []
    for name, df in splits.items():
        if df is None:
            continue
        try:
            scored = scored_from_fit(result, name) or score(result.config, result.model, df, name)
        except Exception:  # the data passed fit's checks; this is a bug, but not worth the model
            log.exception("%s: cannot score the data for the report", name)
            continue
        reports.append((scored, out / name, result.convergence if name == "train" else None))
    write_reports(result.config, reports, workers=plot_workers(), result=result, images=images)


def _write_model(paths: MLPaths, result: Any) -> None:
    """Write the model directory through a staging folder; ``model.json`` is moved in last."""
    write_model_dir(paths.model_dir, result)


def write_model_dir(model_dir: Path, result: Any) -> None:
    """Write ``result``'s model directory (with the pyfunc folder) at ``model_dir`` through a
    staging folder; ``model.json`` is moved in last, so a failure leaves no model behind."""
    from smglm.tracking.pyfunc import save_pyfunc_model

    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_NAME, dir=model_dir))
    try:
        result.save(staging)
        save_pyfunc_model(staging / "mlflow_model", staging / "model.json")
        entries = sorted(staging.iterdir(), key=lambda p: p.name == "model.json")
        for entry in entries:
            target = model_dir / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("model written to %s: %s", model_dir, sorted(p.name for p in model_dir.iterdir()))
