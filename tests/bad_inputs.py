"""The bad-input table's one row type, shared by the ``tests/test_bad_inputs_*.py`` modules.

Each module holds a list ``CASES`` of :class:`Case` and one parametrized test that feeds each
case to its entry point and asserts the outcome: a clear error (the expected fragment in the
message, naming the field and the value; never a traceback of an internal error, a hang or a
warning-only fit with NaN), or a correct accept. ``scripts/bad-input-counts`` (or the README's
reliability section) adds them up.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    """One bad (or borderline) input.

    Attributes
    ----------
    case
        A short unique id (the pytest id).
    entry
        The entry point fed: ``config``, ``fit``, ``train``, ``data folder``, ``archive``,
        ``serve``, ``aws settings``, ...
    given
        What is fed (a config dict, a DataFrame factory, bytes, ...), as the module's test reads it.
    expect
        A fragment the error message must contain; ``None`` when the input must be accepted.
    extra
        Anything else the module's test needs.
    """

    case: str
    entry: str
    given: Any
    expect: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.expect is None


def ids(cases: list[Case]) -> list[str]:
    """The pytest ids of ``cases`` (their ``case``), checked unique."""
    names = [c.case for c in cases]
    assert len(names) == len(set(names)), "duplicate case ids"
    return names


#: A DataFrame (or other value) built on demand, so a module's table stays cheap to import.
Factory = Callable[[], Any]


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail a case that runs longer than ``seconds`` (a hang, not a slow machine): SIGALRM
    raises TimeoutError in the main thread."""

    def _expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"the case ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
