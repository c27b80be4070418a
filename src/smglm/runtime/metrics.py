"""The metric log lines the runtime prints, and the SageMaker ``metric_definitions`` that read them.

The lines are read by one list, :data:`smglm.contract.METRIC_DEFINITIONS`, shared with the
launcher (which passes it to SageMaker as ``AlgorithmSpecification.MetricDefinitions``);
:func:`capture_metrics` emulates SageMaker's capture. The lines (``sagemaker-contract.md``
§1.9, the ``name=value;`` form)::

    train:deviance=775.2922378484102;          one line per metric of metrics.json, printed to
    test:gini=0.1782218755385185;              stdout after the fit; values are Python's repr of
    fit:iterations=4;                          the float (exact round trip), 1/0 for booleans;
    iteration=3 objective=0.26905; convergence=1.49e-07;   one line per solver iteration

Non-finite values (e.g. a Tweedie log-likelihood, NaN) are not printed: CloudWatch takes numbers
only. ``evaluate`` prints its split under the data channel's name (``test:deviance=...;``).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from smglm.contract import FIT_METRICS, METRIC_DEFINITIONS, SPLIT_METRICS

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "capture_metrics",
    "convergence_lines",
    "format_value",
    "metric_lines",
    "print_convergence",
    "print_metrics",
]


def format_value(value: Any) -> str | None:
    """A metric value as printed: exact repr of the float, 1/0 for booleans, None if not finite."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return repr(number) if math.isfinite(number) else None


def metric_lines(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The metric lines of a ``metrics.json`` mapping (``{"train": {...}, "fit": {...}}``)."""
    lines = []
    for split, values in metrics.items():
        names = FIT_METRICS if split == "fit" else SPLIT_METRICS
        for name in names:
            text = format_value(values.get(name)) if name in values else None
            if text is not None:
                lines.append(f"{split}:{name}={text};")
    return lines


def print_metrics(metrics: Mapping[str, Mapping[str, Any]], file: TextIO | None = None) -> None:
    """Print :func:`metric_lines` to stdout (flushed, so they reach the log at once)."""
    out = file or sys.stdout
    for line in metric_lines(metrics):
        print(line, file=out)
    out.flush()


def convergence_lines(convergence: pd.DataFrame | None) -> list[str]:
    """One line per solver iteration: ``iteration=<i> objective=<v>; <column>=<v>; ...``."""
    if convergence is None or "iteration" not in convergence.columns:
        return []
    others = [c for c in convergence.columns if c not in ("iteration", "objective")]
    lines = []
    for row in convergence.to_dict("records"):
        parts = [f"iteration={int(row['iteration'])}"]
        objective = format_value(row.get("objective"))
        if objective is not None:
            parts.append(f"objective={objective};")
        parts += [f"{c}={v};" for c in others if (v := format_value(row[c])) is not None]
        lines.append(" ".join(parts))
    return lines


def print_convergence(convergence: pd.DataFrame | None, file: TextIO | None = None) -> None:
    """Print :func:`convergence_lines` to stdout."""
    out = file or sys.stdout
    for line in convergence_lines(convergence):
        print(line, file=out)
    out.flush()


def capture_metrics(
    lines: Iterable[str], definitions: Iterable[Mapping[str, str]] = METRIC_DEFINITIONS
) -> dict[str, list[float]]:
    """Emulate SageMaker: each definition's first capture group, per log line, in order."""
    compiled = [(d["Name"], re.compile(d["Regex"])) for d in definitions]
    found: dict[str, list[float]] = {}
    for line in lines:
        for name, regex in compiled:
            for match in regex.finditer(line):
                found.setdefault(name, []).append(float(match.group(1)))
    return found
