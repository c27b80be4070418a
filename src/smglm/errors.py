"""smglm's exceptions: one hierarchy, every error naming what was wrong and what is allowed.

::

    SmglmError
     ├── ConfigError          a GLMConfig or JobConfig is invalid (no data needed to tell)
     ├── DataError            the data does not fit the config (missing column, bad target, ...)
     ├── ModelError           a model file cannot be read or cannot score the data given
     ├── MissingDependency    an optional extra is needed: says which ``pip install`` fixes it
     ├── BackendError         storage or a backend failed (S3, the local emulation, SageMaker)
     └── JobFailed            a training job ended Failed or Stopped; carries its failure reason

``ConfigError`` and ``DataError`` collect *all* the problems found in one pass: each is an
:class:`Issue` naming the field, the value received and what is allowed. ``str(error)`` lists them
one per line, so the user fixes everything at once.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BackendError",
    "ConfigError",
    "DataError",
    "Issue",
    "JobFailed",
    "MissingDependency",
    "ModelError",
    "SmglmError",
    "did_you_mean",
    "short_repr",
]


class SmglmError(Exception):
    """Base class of every error smglm raises on purpose."""


@dataclass(frozen=True)
class Issue:
    """One problem: ``field`` (a dotted path such as ``penalty.alpha``), what was received, and why.

    ``message`` is the whole sentence shown to the user; it already names the value received
    and what is allowed.
    """

    field: str
    message: str
    value: Any = None

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class _IssuesError(SmglmError):
    """An error that carries a list of :class:`Issue` and shows them all."""

    kind = "problem"

    def __init__(self, issues: Sequence[Issue] | str, *, source: str | None = None) -> None:
        if isinstance(issues, str):
            issues = [Issue(field="", message=issues)]
        self.issues: list[Issue] = list(issues)
        self.source = source
        super().__init__(self._format())

    @property
    def fields(self) -> list[str]:
        """The fields named by the issues, in order."""
        return [i.field for i in self.issues]

    def _format(self) -> str:
        where = f" in {self.source}" if self.source else ""
        if len(self.issues) == 1:
            only = self.issues[0]
            text = str(only) if only.field else only.message
            return f"{text}" if not where else f"{text} ({where.strip()})"
        n = len(self.issues)
        lines = [f"{n} {self.kind}s{where}:"]
        lines += [f"  - {i}" if i.field else f"  - {i.message}" for i in self.issues]
        return "\n".join(lines)


class ConfigError(_IssuesError, ValueError):
    """The configuration is invalid. ``issues`` lists every problem found."""

    kind = "configuration problem"


class DataError(_IssuesError, ValueError):
    """The data cannot be used with this configuration. ``issues`` lists every problem found."""

    kind = "data problem"


class ModelError(SmglmError, ValueError):
    """A model file is unreadable or of an unknown format, or it cannot score the data given."""


class MissingDependency(SmglmError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} requires {package!r}, which is not installed: pip install 'smglm[{extra}]'"
        )


class BackendError(SmglmError, RuntimeError):
    """Storage or a backend (local emulation, SageMaker) failed."""


class JobFailed(SmglmError, RuntimeError):
    """A training job ended Failed or Stopped; ``reason`` is SageMaker's FailureReason."""

    def __init__(self, job_name: str, status: str, reason: str | None) -> None:
        self.job_name = job_name
        self.status = status
        self.reason = reason
        super().__init__(
            f"training job {job_name!r} {status.lower()}: {reason or 'no reason given'}"
        )


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """Return `` Did you mean 'x'?`` for the closest of ``choices`` to ``value``, or ``''``."""
    if not isinstance(value, str):
        return ""
    choices = list(choices)
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if value.lower() in lowered:
            close = [lowered[value.lower()]]
    if not close and len(value) >= 2:  # an abbreviation: 'l1' for 'l1_ratio'
        prefixed = [c for c in choices if c.lower().startswith(value.lower())]
        close = prefixed[:1] if len(prefixed) == 1 else []
    return f" Did you mean {close[0]!r}?" if close else ""


class _BoundedRepr(reprlib.Repr):
    """``reprlib.Repr`` with small limits: a few items of each container, a few levels deep."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 6
        self.maxdeque = self.maxarray = 6
        self.maxstring = self.maxother = self.maxlong = 60

    def repr_instance(self, x: object, level: int) -> str:
        # reprlib calls repr() on other objects, which may be unbounded: cut what it returns,
        # and fall back to the type's name when repr() itself fails
        try:
            text = repr(x) if type(x).__repr__ is not object.__repr__ else f"<{type(x).__name__}>"
        except Exception:
            return f"<{type(x).__name__}>"
        return text if len(text) <= self.maxother else text[: self.maxother - 3] + "..."


_BOUNDED = _BoundedRepr()


def short_repr(value: object, limit: int = 60) -> str:
    """A ``repr`` of ``value`` for an error message, at most ``limit`` characters.

    Bounded in time and memory whatever ``value`` is: containers show their first items and
    nesting stops a few levels down (as :mod:`reprlib` does), so a value built from a YAML
    alias bomb (a list holding the same list nine times, nine levels deep) is never expanded.
    """
    try:
        text = _BOUNDED.repr(value)
    except Exception:  # a broken __repr__ of a user object
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
