"""SageMaker's managed MLflow: a tracking URI that is a tracking server's (or an MLflow app's) ARN.

MLflow opens an ``arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name>`` (or
``...:mlflow-app/<id>``) URI through AWS's ``sagemaker-mlflow`` plugin: it turns the ARN into
the server's https endpoint and signs every request with SigV4 (the caller's AWS credentials,
service ``sagemaker-mlflow``). The plugin reads the ARN it signs for from MLflow's *process*
tracking URI (``mlflow.get_tracking_uri()``), not from the client's, so smglm's clients of an
ARN (:func:`client`) make it the process's tracking URI for the length of each call only, and
put back what was there (``mlflow.set_tracking_uri``'s value and ``MLFLOW_TRACKING_URI``).

Also here: the client/server MLflow version check. SageMaker's servers run one MLflow version
and cannot be upgraded; a client of another major.minor may fail in ways that do not say why
("For tracking server 2.16.x, use mlflow==2.16.2", SageMaker's docs). :func:`check_version`
warns once per server when the versions differ.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from smglm.errors import ConfigError, Issue, MissingDependency

__all__ = [
    "ManagedArn",
    "check_version",
    "client",
    "is_managed_uri",
    "parse_arn",
    "require_plugin",
    "server_version",
    "signing_for",
]

log = logging.getLogger(__name__)

#: The resource types the plugin supports (sagemaker-mlflow 0.5: both).
RESOURCE_TYPES = ("mlflow-tracking-server", "mlflow-app")

_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<kind>[a-zA-Z-]+)/(?P<name>[^/\s]+)$"
)


@dataclass(frozen=True)
class ManagedArn:
    """The parts of a managed MLflow ARN."""

    arn: str
    partition: str
    region: str
    account: str
    kind: str  # mlflow-tracking-server | mlflow-app
    name: str


def is_managed_uri(uri: str | None) -> bool:
    """Whether ``uri`` names a SageMaker managed MLflow resource (an ``arn:aws:sagemaker:`` ARN)."""
    return bool(uri) and re.match(r"^arn:aws[a-z-]*:sagemaker:", str(uri)) is not None


def parse_arn(uri: str, field: str = "mlflow_tracking_uri") -> ManagedArn:
    """The ARN's parts; ConfigError naming ``field`` when it is not a tracking server's or an
    MLflow app's ARN."""
    m = _ARN.match(uri)
    if m is None or m["kind"] not in RESOURCE_TYPES:
        raise ConfigError(
            [
                Issue(
                    field,
                    f"{uri!r} is not a SageMaker managed MLflow ARN; expected "
                    "'arn:aws:sagemaker:<region>:<12-digit account>:mlflow-tracking-server/"
                    "<name>' (or ':mlflow-app/<id>'), as DescribeMlflowTrackingServer's "
                    "TrackingServerArn shows it",
                    uri,
                )
            ]
        )
    return ManagedArn(uri, m["partition"], m["region"], m["account"], m["kind"], m["name"])


def require_plugin() -> None:
    """MissingDependency (``pip install sagemaker-mlflow``) unless AWS's plugin is installed."""
    import importlib.util

    if importlib.util.find_spec("sagemaker_mlflow") is None:
        exc = MissingDependency("sagemaker-mlflow", "sagemaker-mlflow", "managed MLflow")
        exc.msg = (  # ImportError's text
            "mlflow_tracking_uri: a SageMaker managed MLflow ARN (arn:aws:sagemaker:...:mlflow-"
            "tracking-server/... or :mlflow-app/...) needs AWS's MLflow plugin 'sagemaker-mlflow', "
            "which is not installed: pip install sagemaker-mlflow (or pip install "
            "'smglm[sagemaker-mlflow]'), then restart the kernel"
        )
        exc.args = (exc.msg,)
        raise exc


_SWAP = threading.RLock()


@contextlib.contextmanager
def signing_for(uri: str) -> Iterator[None]:
    """MLflow's process tracking URI is ``uri`` inside the block (the plugin signs requests for
    that one); the previous one, and ``MLFLOW_TRACKING_URI``, are put back after it."""
    import os

    import mlflow
    from mlflow.tracking._tracking_service import utils

    with _SWAP:
        before, env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
        if before == uri:
            yield
            return
        mlflow.set_tracking_uri(uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(before)  # type: ignore[arg-type]  # None: unsets the variable
            if env is not None:
                os.environ["MLFLOW_TRACKING_URI"] = env


class _SignedClient:
    """An MlflowClient of a managed MLflow ARN whose every call runs in :func:`signing_for`."""

    def __init__(self, inner: Any, uri: str) -> None:
        self._inner = inner
        self._uri = uri

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with signing_for(self._uri):
                return attr(*args, **kwargs)

        return call


def client(uri: str) -> Any:
    """An ``MlflowClient`` of the managed MLflow ARN ``uri`` (the plugin installed: see
    :func:`require_plugin`), its calls signed for that ARN."""
    from mlflow.tracking import MlflowClient

    require_plugin()
    return _SignedClient(MlflowClient(tracking_uri=uri), uri)


_CHECKED: set[str] = set()


def _major_minor(version: str) -> tuple[int, ...] | None:
    m = re.match(r"^\s*v?(\d+)\.(\d+)", version)
    return (int(m[1]), int(m[2])) if m else None


def server_version(uri: str, *, session: Any | None = None, timeout: float = 3.0) -> str | None:
    """The MLflow version the tracking server at ``uri`` runs, when cheap to learn; else None.

    A managed ARN: DescribeMlflowTrackingServer's ``MlflowVersion`` (DescribeMlflowApp's for an
    app), with ``session`` (a boto3 Session; default: boto3's default session) in the ARN's region.
    An ``http(s)://`` server: its ``GET /version``. Other stores are this process's own MLflow."""
    try:
        if is_managed_uri(uri):
            import boto3

            arn = parse_arn(uri)
            # the default session's credentials, as the plugin signs with them
            from botocore.config import Config

            maker: Any = session or boto3
            quick = Config(
                retries={"max_attempts": 1}, connect_timeout=timeout, read_timeout=timeout
            )
            sm = maker.client("sagemaker", region_name=arn.region, config=quick)
            if arn.kind == "mlflow-app":
                found = sm.describe_mlflow_app(Arn=arn.arn)
            else:
                found = sm.describe_mlflow_tracking_server(TrackingServerName=arn.name)
            version = found.get("MlflowVersion")
            return str(version) if version else None
        if uri.startswith(("http://", "https://")):
            import urllib.request

            from smglm.redaction import redact_uri

            if redact_uri(uri) != uri:
                return None  # credentials in the URI: not sent anywhere but to MLflow
            url = f"{uri.split('?', 1)[0].rstrip('/')}/version"
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                text = resp.read(100).decode("utf-8", "replace").strip()
            return text if _major_minor(text) else None
    except Exception as exc:  # a version check never stops tracking
        from smglm.redaction import redact, redact_uri

        log.info("could not learn the MLflow version of %s: %s", redact_uri(uri), redact(str(exc)))
    return None


def check_version(uri: str, *, session: Any | None = None) -> str | None:
    """Warn (once per server and process) when this process's MLflow and the server's differ
    in major.minor; return the warning's text, or None."""
    if uri in _CHECKED or not (is_managed_uri(uri) or uri.startswith(("http://", "https://"))):
        return None
    _CHECKED.add(uri)
    import importlib.metadata

    try:
        local = importlib.metadata.version("mlflow")
    except importlib.metadata.PackageNotFoundError:
        return None
    remote = server_version(uri, session=session)
    if remote is None:
        return None
    if _major_minor(local) == _major_minor(remote):
        return None
    from smglm.redaction import redact_uri

    wanted = ".".join(str(n) for n in _major_minor(remote) or ())
    text = (
        f"this process has mlflow {local} and the tracking server {redact_uri(uri)} runs MLflow "
        f"{remote}: a client of another major.minor version may fail in ways that do not say "
        f"why. Install a matching client: pip install 'mlflow=={wanted}.*'"
    )
    warnings.warn(text, UserWarning, stacklevel=3)
    return text
