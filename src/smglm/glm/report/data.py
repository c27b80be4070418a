"""The report tables of one model on one data set: :class:`ReportData` (stored as CSV and JSON
by :meth:`ReportData.to_dir`, read back by :meth:`ReportData.from_dir`) and :func:`build_report`,
which computes them all."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from smglm.errors import DataError, Issue, did_you_mean
from smglm.glm.io import EXACT_FLOATS
from smglm.glm.report._inputs import Values, as_values, check_bins, data_error, exposure_values
from smglm.glm.report.one_way import one_way_of_arrays
from smglm.glm.report.ranking import gini_of_curve, lift_and_curve, thin
from smglm.glm.report.residuals import balance, residual_bins

__all__ = ["REPORT_FORMAT", "ReportData", "build_report"]

logger = logging.getLogger(__name__)

#: The version of the folder layout that :meth:`ReportData.to_dir` writes.
REPORT_FORMAT = 1

_TABLES = ("lift", "lorenz", "residuals", "convergence", "search")
#: The term views' tables (one per term, by name) and the prefix of their file stems.
_TERM_TABLES = {
    "splines": "spline",
    "levels": "levels",
    "interactions": "interaction",
    "consistency": "consistency",
}
#: From this many rows, the one-way tables are built in a thread beside the ranked tables.
_THREADED_ROWS = 200_000


@dataclass(repr=False)
class ReportData:
    """The report tables of one model on one data set, stored by :meth:`to_dir` as CSV + JSON.

    ``one_ways`` maps a column to its :func:`one_way` table; ``lift``, ``lorenz``, ``residuals``
    (a :func:`residual_bins` table) and ``convergence`` (``iteration`` plus one column per traced
    quantity, e.g. ``deviance``) are tables or ``None``; ``gini`` and ``balance`` are the values of
    :func:`gini` and :func:`balance`.
    """

    one_ways: dict[str, pd.DataFrame] = field(default_factory=dict)
    lift: pd.DataFrame | None = None
    lorenz: pd.DataFrame | None = None
    gini: float | None = None
    balance: dict[str, float] | None = None
    residuals: pd.DataFrame | None = None
    convergence: pd.DataFrame | None = None
    splines: dict[str, pd.DataFrame] = field(default_factory=dict)
    levels: dict[str, pd.DataFrame] = field(default_factory=dict)
    interactions: dict[str, pd.DataFrame] = field(default_factory=dict)
    consistency: dict[str, pd.DataFrame] = field(default_factory=dict)
    search: pd.DataFrame | None = None
    link: str | None = None
    split_by: str | None = None

    def __repr__(self) -> str:
        parts = [f"one_ways={list(self.one_ways)!r}"]
        if self.gini is not None:
            parts.append(f"gini={self.gini:.4g}")
        tables = [name for name in _TABLES if getattr(self, name) is not None]
        for name in _TERM_TABLES:
            if getattr(self, name):
                parts.append(f"{name}={list(getattr(self, name))!r}")
        return f"ReportData({', '.join(parts)}, tables={tables!r})"

    def one_way_files(self) -> dict[str, str]:
        """Return the file stem of each one-way: ``one_way_<column>``, safe and unique as a name."""
        return _stems("one_way", self.one_ways)

    def term_files(self, kind: str) -> dict[str, str]:
        """The file stem of each table of a term view ``kind`` (``splines``, ``levels``,
        ``interactions``, ``consistency``): ``<prefix>_<term>``, safe and unique as a name."""
        return _stems(_TERM_TABLES[kind], getattr(self, kind))

    def to_dir(self, path: str | Path) -> list[Path]:
        """Write each table as ``<name>.csv`` and ``report.json`` into ``path``; return the files.

        ``report.json`` holds ``format``, ``gini``, ``balance`` (non-finite numbers as null),
        ``one_ways`` (column -> file) and ``files`` (every CSV written).
        """
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        stems = self.one_way_files()
        tables = {f"{stems[c]}.csv": t for c, t in self.one_ways.items()}
        tables |= {f"{n}.csv": getattr(self, n) for n in _TABLES if getattr(self, n) is not None}
        term_files = {kind: self.term_files(kind) for kind in _TERM_TABLES}
        for kind, files in term_files.items():
            tables |= {f"{files[name]}.csv": t for name, t in getattr(self, kind).items()}
        for name, table in tables.items():
            table.to_csv(out / name, index=False)
        meta: dict[str, Any] = {"format": REPORT_FORMAT}
        if self.gini is not None:
            meta["gini"] = _to_json(self.gini)
        if self.balance is not None:
            meta["balance"] = {k: _to_json(v) for k, v in self.balance.items()}
        meta["one_ways"] = {str(c): f"{s}.csv" for c, s in stems.items()}
        for kind, files in term_files.items():
            if files:
                meta[kind] = {str(c): f"{s}.csv" for c, s in files.items()}
        if self.link is not None:
            meta["link"] = self.link
        if self.split_by is not None:
            meta["split_by"] = self.split_by
        meta["files"] = list(tables)
        (out / "report.json").write_text(json.dumps(meta, indent=2) + "\n")
        return [out / name for name in tables] + [out / "report.json"]

    @classmethod
    def from_dir(cls, path: str | Path) -> ReportData:
        """Read back what :meth:`to_dir` wrote (numbers exactly; a JSON null reads as NaN)."""
        src = Path(path)
        meta = json.loads((src / "report.json").read_text())
        if meta.get("format") != REPORT_FORMAT:
            msg = f"has format {meta.get('format')!r}; this smglm reads format {REPORT_FORMAT}"
            raise data_error(str(src / "report.json"), msg, meta.get("format"))
        files = set(meta.get("files", []))
        tables = {n: _read_csv(src / f"{n}.csv") if f"{n}.csv" in files else None for n in _TABLES}
        terms = {
            kind: {c: _read_term_csv(src / f) for c, f in meta.get(kind, {}).items()}
            for kind in _TERM_TABLES
        }
        return cls(
            one_ways={c: _read_csv(src / f, text_bin=True) for c, f in meta["one_ways"].items()},
            gini=_from_json(meta["gini"]) if "gini" in meta else None,
            balance={k: _from_json(v) for k, v in meta["balance"].items()}
            if "balance" in meta
            else None,
            lift=tables["lift"],
            lorenz=tables["lorenz"],
            residuals=tables["residuals"],
            convergence=tables["convergence"],
            search=tables["search"],
            splines=terms["splines"],
            levels=terms["levels"],
            interactions=terms["interactions"],
            consistency=terms["consistency"],
            link=meta.get("link"),
            split_by=meta.get("split_by"),
        )


def _stems(prefix: str, names: Mapping[str, Any]) -> dict[str, str]:
    """``<prefix>_<name>`` for each name: safe as a file name, unique (also ignoring case)."""
    stems: dict[str, str] = {}
    seen: set[str] = set()
    for name in names:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "column"
        stem, i = f"{prefix}_{safe}", 2
        while stem.lower() in seen:  # also unique on case-insensitive file systems
            stem, i = f"{prefix}_{safe}_{i}", i + 1
        seen.add(stem.lower())
        stems[name] = stem
    return stems


def _read_term_csv(path: Path) -> pd.DataFrame:
    """A term view's table: level and bin labels stay text (``NA`` is a level, not missing)."""
    labels = [c for c in ("level", "a", "b", "by", "part") if c in pd.read_csv(path, nrows=0)]
    options: dict[str, Any] = dict(EXACT_FLOATS)
    numbers = [c for c in pd.read_csv(path, nrows=0).columns if c not in labels]
    options |= {"dtype": dict.fromkeys(labels, str), "keep_default_na": False}
    options["na_values"] = {c: ["", "NaN", "nan"] for c in numbers}
    return pd.read_csv(path, **options)


def _to_json(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _from_json(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _read_csv(path: Path, *, text_bin: bool = False) -> pd.DataFrame:
    options: dict[str, Any] = dict(EXACT_FLOATS)
    if text_bin:  # keep labels such as "NA" or "" as text; only the numbers have missing values
        numbers = [c for c in pd.read_csv(path, nrows=0).columns if c != "bin"]
        options |= {"dtype": {"bin": str}, "keep_default_na": False}
        options["na_values"] = {c: [""] for c in numbers}
    return pd.read_csv(path, **options)


def build_report(
    data: pd.DataFrame,
    *,
    predictors: Sequence[str],
    actual: Values,
    predicted: Values,
    exposure: Values | None = None,
    residuals: ArrayLike | None = None,
    fitted: ArrayLike | None = None,
    convergence: pd.DataFrame | Mapping[str, Sequence[float]] | None = None,
    categorical: Sequence[str] = (),
    bins: int = 10,
    lorenz_points: int | None = 1000,
) -> ReportData:
    """Build every report table of one model on ``data``.

    Parameters
    ----------
    data : DataFrame
        The rows scored, holding the ``predictors`` (and any columns named below).
    predictors : list of str
        The columns that get a one-way table (numeric ones binned, see :func:`one_way`).
    actual, predicted, exposure : array-like or str
        Amounts per row and exposure (default 1), as arrays or column names of ``data``.
    residuals, fitted : array-like, optional
        Residuals per row (e.g. :func:`deviance_residuals`) and the fitted values to bin them by
        (default ``predicted``); without ``residuals`` there is no residual table.
    convergence : DataFrame or mapping, optional
        The solver's trace: an ``iteration`` column and one column per traced quantity.
    categorical : list of str
        Predictors to tabulate per level even when numeric.
    bins : int
        Maximum bins of a numeric one-way, and the number of lift bins.
    lorenz_points : int, optional
        Maximum vertices kept of the Lorenz curve (``None``: all); the Gini uses them all.
    """
    check_bins("bins", bins)
    start = time.perf_counter()
    n = len(data)
    a = as_values(actual, "actual", data, n)
    p = as_values(predicted, "predicted", data, n)
    e = exposure_values(exposure, n, data)
    missing = [c for c in dict.fromkeys([*predictors, *categorical]) if c not in data.columns]
    if missing:
        known = [str(c) for c in data.columns]
        raise DataError(
            [
                Issue(c, f"column {c!r} is not in the data.{did_you_mean(c, known)}", c)
                for c in missing
            ]
        )
    cats = set(categorical)

    def one_way_tables() -> dict[str, pd.DataFrame]:
        return {
            c: one_way_of_arrays(data, c, a, p, e, bins, True if c in cats else None)
            for c in predictors
        }

    def ranked_tables() -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame | None]:
        lift_table, x, y = lift_and_curve(a, p, e, bins)
        table = None
        if residuals is not None:
            table = residual_bins(p if fitted is None else fitted, residuals)
        return lift_table, x, y, table

    if n >= _THREADED_ROWS:  # numpy's sorts and sums release the GIL: the two overlap
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="smglm-report") as pool:
            pending = pool.submit(one_way_tables)
            lift_table, x, y, table = ranked_tables()
            one_ways = pending.result()
    else:
        one_ways = one_way_tables()
        lift_table, x, y, table = ranked_tables()
    trace = None
    if convergence is not None:
        trace = pd.DataFrame(convergence)
        if "iteration" not in trace.columns:
            msg = f"needs an 'iteration' column; got columns {list(trace.columns)}"
            raise data_error("convergence", msg)
    report = ReportData(
        one_ways=one_ways,
        lift=lift_table,
        lorenz=thin(x, y, lorenz_points),
        gini=gini_of_curve(x, y),
        balance=balance(a, p),
        residuals=table,
        convergence=trace,
    )
    seconds = time.perf_counter() - start
    logger.debug("report of %d rows, %d one-ways built in %.2f s", n, len(one_ways), seconds)
    return report
