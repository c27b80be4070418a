"""A split's report from the tables Spark computed (the ``spark`` engine's driver).

The Spark engine computes each split's metrics and report tables as Spark aggregations
(:mod:`smglm.glm.engines.spark_report`, which runs without smglm on AWS's Spark image) and
writes them with its ``write_split`` into a folder that :meth:`ReportData.from_dir` reads as it
is, plus ``metrics.json`` (the split's metrics) and the sums the term views need
(``spark_terms.json`` naming ``term_<kind>_<name>.csv``: exposure, actual, expected and rows
by level, by pair of an interaction's levels or bins, and by level and time-split value).

Here those sums meet the fitted model: :func:`read_spark_split` returns the split's
:class:`ReportData` with the term views (level relativities with their CI, interactions,
consistency over time) built by the same table functions as for a row-level fit
(:mod:`smglm.glm.report.term_views`), so the job's report folder, its PNGs and ``job.report()``
are the same as a glum job's.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from smglm.glm.report.data import ReportData, _read_term_csv
from smglm.glm.report.one_way import MISSING_LABEL
from smglm.glm.report.term_views import (
    _scale,
    consistency_table,
    display_order,
    interaction_table,
    level_estimates,
    level_table,
    search_table,
)

if TYPE_CHECKING:
    from smglm.config import GLMConfig

__all__ = ["SPARK_TERMS", "read_spark_split", "spark_split_metrics", "spark_term_views"]

log = logging.getLogger(__name__)

#: The file naming the term views' sums in a folder written by ``spark_report.write_split``.
SPARK_TERMS = "spark_terms.json"


def spark_split_metrics(folder: str | Path) -> dict[str, Any]:
    """The split's metrics that ``write_split`` stored (``metrics.json``; null reads as NaN):
    the keys and meaning of :class:`smglm.glm.stats.SplitMetrics`."""
    raw = json.loads((Path(folder) / "metrics.json").read_text())
    return {k: math.nan if v is None else v for k, v in raw.items()}


def read_spark_split(
    folder: str | Path,
    *,
    config: GLMConfig | None = None,
    result: Any = None,
    convergence: pd.DataFrame | None = None,
    name: str = "train",
) -> ReportData:
    """The :class:`ReportData` of a split whose tables Spark wrote into ``folder``.

    With ``result`` (the :class:`~smglm.glm.FitResult`), also the term views (from the sums
    in ``spark_terms.json`` and the model's estimates) and, for ``train``, the penalty
    search's path; ``convergence`` is the solver's trace (train). ``config`` gives the time
    split column of the consistency view (default: the result's config).
    """
    data = ReportData.from_dir(folder)
    if convergence is not None:
        data.convergence = convergence
    if result is not None:
        views = spark_term_views(folder, result, config=config, name=name)
        data.levels = views["levels"]
        data.interactions = views["interactions"]
        data.consistency = views["consistency"]
        data.search = views["search"]
        data.link = views["link"]
        data.split_by = views.get("by")
    return data


def spark_term_views(
    folder: str | Path, result: Any, *, config: GLMConfig | None = None, name: str = "train"
) -> dict[str, Any]:
    """The term views' tables of one split (as :func:`~smglm.glm.report.term_views.term_tables`
    returns them for a row-level fit) from the sums in ``folder`` and the fitted ``result``.

    A view that fails is logged and left out, as for a row-level fit."""
    model = result.model
    link = str(model.link)
    config = config if config is not None else result.config
    out: dict[str, Any] = {
        "link": link,
        "splines": {},
        "levels": {},
        "interactions": {},
        "consistency": {},
        "search": None,
    }
    src = Path(folder)
    meta_path = src / SPARK_TERMS
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    terms = list(model.to_dict().get("terms", []))
    by_name = {str(t["name"]): t for t in terms}
    coefs = {str(r["term"]): r for r in result.coefficients.to_dict("records")}
    makers = {"levels": _levels, "interactions": _interaction, "consistency": _consistency}
    for kind, make in makers.items():
        for term_name, file in (meta.get(kind) or {}).items():
            term = by_name.get(term_name)
            if term is None:
                continue
            try:
                sums = _read_term_csv(src / file)
                out[kind][term_name] = make(term, sums, coefs, by_name, link)
            except Exception:
                log.exception("term views: no %s view of %r from %s", kind, term_name, file)
    search = getattr(result, "search", None)
    if search is not None and name == "train":
        try:
            out["search"] = search_table(search)
        except ValueError:
            log.exception("term views: no penalty search view")
    by = getattr(getattr(config, "test", None), "by", None)
    if by:
        out["by"] = by
    return out


def _rows(table: pd.DataFrame, keys: dict[tuple[Any, ...], int], *columns: str) -> np.ndarray:
    """The summed row counts of ``sums`` aligned with ``table``'s rows (by key columns)."""
    return np.array(
        [keys.get(tuple(r), 0) for r in table[list(columns)].itertuples(index=False)],
        dtype=np.int64,
    )


def _amounts(sums: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        sums["actual"].to_numpy(np.float64),
        sums["expected"].to_numpy(np.float64),
        sums["exposure"].to_numpy(np.float64),
    )


def _levels(
    term: dict[str, Any],
    sums: pd.DataFrame,
    coefs: dict[str, dict[str, Any]],
    by_name: dict[str, dict[str, Any]],
    link: str,
) -> pd.DataFrame:
    """The level view: one pseudo-row per level holding the level's sums."""
    levels, reference, estimates, lower, upper = level_estimates(term, coefs)
    labels = sums["level"].to_numpy(dtype=object)
    a, p, e = _amounts(sums)
    table = level_table(
        levels, reference, estimates, lower, upper, labels, a, p, e, link,
        fixed=bool(term.get("fixed")),
    )  # fmt: skip
    counts = {(str(k),): int(n) for k, n in zip(sums["level"], sums["n_rows"], strict=True)}
    table["n_rows"] = _rows(table, counts, "level")
    return table


def _consistency(
    term: dict[str, Any],
    sums: pd.DataFrame,
    coefs: dict[str, dict[str, Any]],
    by_name: dict[str, dict[str, Any]],
    link: str,
) -> pd.DataFrame:
    """The consistency view: pseudo-rows per (level, value of the split column), the values
    ranked as smglm sorts them (``by_rank``) and shown as their text (``by``)."""
    order = display_order(term)
    levels = [str(term["levels"][i]) for i in order]
    fit = _scale(np.asarray(term["coefficients"], dtype=np.float64)[order], link)
    a, p, e = _amounts(sums)
    ranks = sums["by_rank"].to_numpy(np.int64)
    table = consistency_table(levels, fit, sums["level"].to_numpy(object), ranks, a, p, e, link)
    text = {str(r): str(t) for r, t in zip(ranks, sums["by"], strict=True)}
    counts = {
        (str(lv), str(r)): int(n)
        for lv, r, n in zip(sums["level"], ranks, sums["n_rows"], strict=True)
    }
    table["n_rows"] = _rows(table, counts, "level", "by")
    table["by"] = [text[str(b)] for b in table["by"]]
    return table


def _interaction(
    term: dict[str, Any],
    sums: pd.DataFrame,
    coefs: dict[str, dict[str, Any]],
    by_name: dict[str, dict[str, Any]],
    link: str,
) -> pd.DataFrame:
    """The interaction view: pseudo-rows per pair of levels (or bins). A pair of level parts
    has one effect per cell (from the coefficients); with a numeric part, the cell's
    exposure-weighted relativity comes from Spark (``fit_sum``)."""
    parts = [by_name[str(n)] for n in term["terms"]]
    c = np.asarray(term["coefficients"], dtype=np.float64)
    orders: list[list[str]] = []
    codes: list[np.ndarray | None] = []
    for side, part in zip(("a", "b"), parts, strict=True):
        labels = sums[side].astype(str).tolist()
        if part.get("type") in ("categorical", "bands"):
            levels = [str(v) for v in part["levels"]]
            orders.append([levels[i] for i in display_order(part)])
            ref = levels.index(str(part["reference"])) if part.get("reference") in levels else 0
            index = {lv: i for i, lv in enumerate(levels)}
            codes.append(np.array([index.get(lb, ref) for lb in labels], dtype=np.intp))
        else:
            bins = sums[f"{side}_bin"].to_numpy(np.int64)
            shown = dict(sorted((int(b), lb) for b, lb in zip(bins, labels, strict=True)))
            orders.append([lb for lb in shown.values() if lb != MISSING_LABEL])
            codes.append(None)
    a, p, e = _amounts(sums)
    if codes[0] is not None and codes[1] is not None:
        effect = c[codes[0], codes[1]]
    elif "fit_sum" in sums.columns:
        with np.errstate(divide="ignore", invalid="ignore"):
            fit = sums["fit_sum"].to_numpy(np.float64) / e
            effect = np.log(fit) if link == "log" else fit
    else:
        effect = np.full(len(sums), np.nan)
    table = interaction_table(
        sums["a"].to_numpy(object), sums["b"].to_numpy(object), a, p, e, effect, link,
        order_a=orders[0], order_b=orders[1],
    )  # fmt: skip
    counts = {
        (str(x), str(y)): int(n)
        for x, y, n in zip(sums["a"], sums["b"], sums["n_rows"], strict=True)
    }
    table["n_rows"] = _rows(table, counts, "a", "b")
    return table
