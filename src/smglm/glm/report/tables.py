"""The report's tables: metrics side by side, coefficients with base levels, a job's facts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from smglm.glm.report.render import (
    esc,
    fmt,
    html_table,
    significance_color,
    stars,
    text_table,
)
from smglm.glm.stats import SplitMetrics

if TYPE_CHECKING:
    import pandas as pd

    from smglm.glm.result import FitResult

__all__ = [
    "METRIC_ROWS",
    "coefficient_frame",
    "coefficients_html",
    "coefficients_text",
    "job_rows",
    "key_metrics_frame",
    "metrics_frame",
    "metrics_html",
    "metrics_text",
]

#: The metrics shown, in order (those of ``metrics.json``), then the balance of the report data.
METRIC_ROWS = tuple(f.name for f in fields(SplitMetrics))
BALANCE_ROWS = (
    ("sum_actual", "sum actual"),
    ("sum_predicted", "sum predicted"),
    ("ratio", "actual / predicted"),
)


def metrics_frame(result: FitResult, splits: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Metrics (rows) by split (columns ``train``, ``test``), plus the balance rows when the
    report data of a split is known. Values are those of ``metrics.json``, unrounded."""
    import pandas as pd

    names = [s for s in ("train", "test") if result.metrics.get(s)]
    columns: dict[str, dict[str, Any]] = {}
    for split in names:
        values = dict(result.metrics[split])
        report = splits.get(split) if splits else None
        balance = getattr(getattr(report, "data", None), "balance", None)
        for key, label in BALANCE_ROWS:
            if balance is not None:
                values[label] = balance[key]
        columns[split] = values
    order = [m for m in METRIC_ROWS if any(m in c for c in columns.values())]
    extra = {k for c in columns.values() for k in c} - set(order)
    order += [label for _, label in BALANCE_ROWS if label in extra]
    order += sorted(extra - {label for _, label in BALANCE_ROWS})
    frame = pd.DataFrame({s: [columns[s].get(m) for m in order] for s in names}, index=order)
    frame.index.name = "metric"
    return frame


#: The metrics users compare first, in the compact table: (row label, metrics.json key or the
#: metrics frame's row).
KEY_METRICS = (
    ("deviance explained", "explained_deviance"),
    ("Gini", "gini"),
    ("AIC", "aic"),
    ("actual / expected", "actual / predicted"),
    ("n_obs", "n_obs"),
)


def key_metrics_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The compact metrics table: the :data:`KEY_METRICS` rows of the full ``frame`` (from
    :func:`metrics_frame`) that it has, by split (columns). Values unrounded."""
    rows = [(label, key) for label, key in KEY_METRICS if key in frame.index]
    out = frame.loc[[key for _, key in rows]].copy()
    out.index = [label for label, _ in rows]
    out.index.name = "metric"
    return out


def _fit_line(result: FitResult) -> str:
    f = result.metrics.get("fit") or {}
    if not f:
        return ""
    seconds = f.get("seconds")
    secs = f", {seconds:.2f} s" if isinstance(seconds, (int, float)) else ""
    return f"fit: {f.get('iterations')} iterations, converged={f.get('converged')}{secs}"


def metrics_html(frame: pd.DataFrame, css_class: str = "smglm-table", digits: int = 6) -> str:
    rows = [[name, *frame.loc[name].tolist()] for name in frame.index]
    return html_table(["metric", *frame.columns], rows, css_class=css_class, digits=digits)


def metrics_text(frame: pd.DataFrame, digits: int = 6) -> str:
    rows = [[name, *frame.loc[name].tolist()] for name in frame.index]
    return text_table(["metric", *frame.columns], rows, digits=digits)


def coefficient_frame(result: FitResult) -> pd.DataFrame:
    """The coefficient table in model order, with each categorical's base level as a row.

    Columns: ``term``, ``column``, ``level``, ``base`` (True for a reference level: estimate 0,
    relativity 1), ``estimate``, ``std_error``, ``p_value``, ``ci_lower``, ``ci_upper``,
    ``note`` (why a term has no estimate or no meaningful one: aliased, as R's ``NA``, or
    separated; else empty) and, for log links, ``relativity``, ``relativity_lower``,
    ``relativity_upper`` (exp of the 95% CI).
    """
    import pandas as pd

    from smglm.glm.terms import BandsTerm, CategoricalTerm

    table = result.coefficients
    by_term = {str(r["term"]): r for r in table.to_dict("records")}
    rows: list[dict[str, Any]] = []
    used: set[str] = set()

    def add(term: str, column: str, level: str | None, base: bool = False) -> None:
        row = by_term.get(term, {})
        used.add(term)
        rows.append(
            {
                "term": term,
                "column": column,
                "level": level,
                "base": base,
                "estimate": 0.0 if base else row.get("estimate", math.nan),
                "std_error": row.get("std_error", math.nan),
                "p_value": row.get("p_value", math.nan),
                "ci_lower": row.get("ci_lower", math.nan),
                "ci_upper": row.get("ci_upper", math.nan),
                "note": _note(row.get("note")),
            }
        )

    if "intercept" in by_term:
        add("intercept", "intercept", None)
    for t in result.model.terms:
        if isinstance(t, (CategoricalTerm, BandsTerm)):
            if not t.fixed:  # a fixed term's every level has its (fixed) estimate
                add(f"{t.name}[{t.reference}]", t.name, t.reference, base=True)
            for level in t.levels:
                if t.fixed or level != t.reference:
                    add(f"{t.name}[{level}]", t.name, level)
        else:  # numeric, spline basis columns, interaction columns
            for column in t.columns:
                add(column, t.name, None)
    for term in by_term:
        if term not in used:
            add(term, term, None)
    frame = pd.DataFrame(rows)
    if result.model.link == "log":
        import numpy as np

        with np.errstate(over="ignore"):  # a huge estimate's relativity is inf, as it is
            frame["relativity"] = np.exp(frame["estimate"].astype(float))
            frame["relativity_lower"] = np.exp(frame["ci_lower"].astype(float))
            frame["relativity_upper"] = np.exp(frame["ci_upper"].astype(float))
    return frame


def _note(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _coef_rows(frame: pd.DataFrame, log_link: bool) -> tuple[list[str], list[list[Any]]]:
    headers = ["term", "estimate", "std error", "p-value", ""]
    headers += (
        ["relativity", "95% CI low", "95% CI high"] if log_link else ["95% CI low", "95% CI high"]
    )
    rows = []
    for r in frame.to_dict("records"):
        term = f"{r['term']} (base)" if r["base"] else r["term"]
        note = r.get("note") or ""
        if note.startswith("aliased"):
            term = f"{term} (aliased)"
        elif note.startswith("separated"):
            term = f"{term} (separated)"
        elif note:
            term = f"{term} (no SE)"
        estimate = "NA" if note.startswith("aliased") else r["estimate"]
        row = [term, estimate, r["std_error"], r["p_value"], stars(r["p_value"])]
        if log_link:
            row += [r["relativity"], r["relativity_lower"], r["relativity_upper"]]
        else:
            row += [r["ci_lower"], r["ci_upper"]]
        rows.append(row)
    return headers, rows


def coefficients_html(result: FitResult) -> str:
    """The coefficient table as HTML, rows shaded by p-value (darker: more significant)."""
    frame = coefficient_frame(result)
    log_link = "relativity" in frame.columns
    headers, rows = _coef_rows(frame, log_link)
    p_values = frame["p_value"].tolist()
    base = frame["base"].tolist()

    def style(i: int) -> str | None:
        return "#f0f0f0" if base[i] else significance_color(p_values[i])

    note = (
        "<p style='font-size:smaller'>Shading and codes by p-value: *** &lt; 0.001, ** &lt; "
        "0.01, * &lt; 0.05, . &lt; 0.1. Base levels are fixed at 0"
        + (" (relativity 1)" if log_link else "")
        + "; the 95% CI is "
        + ("exp of the coefficient's CI" if log_link else "the coefficient's")
        + f". {esc(_fit_line(result))}"
        + "".join(f"<br>{esc(n)}" for n in result.notes())
        + "</p>"
    )
    return html_table(headers, rows, row_style=style) + note


def coefficients_text(result: FitResult) -> str:
    frame = coefficient_frame(result)
    headers, rows = _coef_rows(frame, "relativity" in frame.columns)
    lines = [_fit_line(result), *result.notes()]
    return text_table(headers, rows) + "".join("\n" + line for line in lines if line)


def job_rows(state: Mapping[str, Any], backend: str | None) -> list[list[Any]]:
    """``[label, value]`` facts of a job from its DescribeTrainingJob-shaped state."""
    resources = state.get("ResourceConfig") or {}
    rows: list[list[Any]] = [
        ["job", state.get("TrainingJobName")],
        ["backend", backend],
        ["status", f"{state.get('TrainingJobStatus')} ({state.get('SecondaryStatus')})"],
        ["instance", f"{resources.get('InstanceType')} x {resources.get('InstanceCount', 1)}"],
        ["created", str(state.get("CreationTime", ""))[:19].replace("T", " ")],
    ]
    if state.get("BillableTimeInSeconds") is not None:
        rows.append(["billable seconds", state["BillableTimeInSeconds"]])
    if state.get("FailureReason"):
        rows.append(["failure", state["FailureReason"]])
    return [[k, fmt(v)] for k, v in rows]
