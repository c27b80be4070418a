"""Credentials never reach a file smglm writes: one place that knows what a secret looks like.

- :func:`redact_uri` drops a URI's ``user:password@`` part (an MLflow tracking URI with basic
  auth, an ``https://token@host``); :func:`redact` does it for every URI in a text (a log line,
  an exception message, a failure reason) and hides the values of credential query parameters
  (``?token=...``, ``X-Amz-Signature=...``) and of the secrets given;
- :func:`is_secret_name` tells the environment variables that hold a secret
  (``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``MLFLOW_TRACKING_PASSWORD``, anything named
  ``*PASSWORD*``, ``*SECRET*``, ``*TOKEN*``...); :func:`split_secrets` splits a job's environment
  into what may be written down (a ``spec.json``) and what only the processes that need it get,
  through their environment; :func:`restore_secrets` puts them back in such a process;
- :class:`RedactingStream` wraps a text stream (a process's stdout/stderr that goes to a log
  file) so that what libraries print is redacted too.

A neutral module: it imports nothing from smglm, so every layer may use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "MASK",
    "RedactingStream",
    "is_secret_name",
    "redact",
    "redact_uri",
    "restore_secrets",
    "secret_values",
    "split_secrets",
]

#: What a hidden value is replaced by.
MASK = "***"

# scheme://userinfo@ : the userinfo has no '/', whitespace or '@' (RFC 3986), ends at the last '@'
# before the host
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@'\"<>]+@)+")
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;](?:[A-Za-z0-9_.-]*(?:token|password|passwd|secret|signature|credential|"
    r"api[_-]?key|access[_-]?key)[A-Za-z0-9_.-]*)=)(?P<value>[^&;#\s'\"<>]+)",
    re.IGNORECASE,
)
_SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE_KEY|API_KEY|ACCESS_KEY)", re.IGNORECASE
)
#: Variables that are secrets although their names do not say so.
_SECRET_NAMES = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECURITY_TOKEN", "DATABRICKS_TOKEN"})
#: Shorter values are not searched for in text (too many false hits).
_MIN_SECRET_LENGTH = 6


def redact_uri(uri: str) -> str:
    """The URI without any ``user:password@`` part (the rest, host included, as written)."""
    parts = urlsplit(uri)
    if "@" in parts.netloc:  # keep the host as written (``[::1]``, a port that is not a number)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return uri


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The values of ``env``'s secret variables (:func:`is_secret_name`) and the credentials
    in its URIs, long enough to be searched for in text."""
    found = []
    for name, value in env.items():
        if not value:
            continue
        if is_secret_name(name):
            found.append(value)
        elif "://" in value and "@" in value:
            userinfo = urlsplit(value).netloc.rpartition("@")[0]
            found += [p for p in userinfo.split(":") if p]
    return sorted({v for v in found if len(v) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URI's ``user:password@`` dropped, the values of credential query
    parameters and each of ``secrets`` (e.g. :func:`secret_values` of the environment)
    replaced by :data:`MASK`."""
    if "@" in text:
        text = _USERINFO.sub(lambda m: m.group("scheme"), text)
    if "=" in text:
        text = _QUERY_SECRET.sub(lambda m: m.group("key") + MASK, text)
    for value in secrets:
        if value and value in text:
            text = text.replace(value, MASK)
    return text


def is_secret_name(name: str) -> bool:
    """Whether an environment variable of this name holds a secret (its value is never written
    down): ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``MLFLOW_TRACKING_PASSWORD``, ..."""
    return name.upper() in _SECRET_NAMES or bool(_SECRET_NAME.search(name))


def split_secrets(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``(public, secret)``: ``public`` may be written to a file (secret variables left out,
    URIs redacted); ``secret`` holds the real values of what ``public`` lacks or redacts, to be
    given to a process through its environment only."""
    public: dict[str, str] = {}
    secret: dict[str, str] = {}
    for name, value in env.items():
        if is_secret_name(name):
            secret[name] = value
            continue
        shown = redact(value)
        public[name] = shown
        if shown != value:
            secret[name] = value
    return public, secret


def restore_secrets(public: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """``public`` (a written-down environment, :func:`split_secrets`) with each redacted value
    replaced by the real one from ``env`` (the process's environment) when that one redacts to
    it; the secret variables themselves stay in ``env``."""
    out = dict(public)
    for name, value in public.items():
        real = env.get(name)
        if real is not None and real != value and redact(real) == value:
            out[name] = real
    return out


class RedactingStream:
    """A text stream that writes :func:`redact`-ed lines to ``stream`` (a log file).

    A line is written once complete (or on :meth:`flush`), so that a URI printed in pieces is
    still seen whole."""

    def __init__(self, stream: TextIO, secrets: Iterable[str] = ()) -> None:
        self._stream = stream
        self._secrets = list(secrets)
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            done, _, self._pending = self._pending.rpartition("\n")
            self._stream.write(redact(done + "\n", self._secrets))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._stream.write(redact(self._pending, self._secrets))
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name: str) -> object:  # fileno, encoding, isatty, ...
        return getattr(self._stream, name)
