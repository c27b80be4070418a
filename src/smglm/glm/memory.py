"""The memory a fit needs, estimated before fitting, and the memory this machine has.

A GLM fit holds the design (sparse for categoricals) and a few arrays per row, and several dense
``p x p`` matrices for ``p`` coefficients: glum's Hessian and its factorisation, and the
information matrix smglm inverts for the standard errors. The dense matrices dominate once a
categorical has thousands of levels (50,000 levels: 20 GB each). :func:`check_fit_memory`
refuses a fit whose estimate exceeds the memory available, before any of it is allocated, with
a message saying how much it needs, how much there is, and what to do.

The estimate is calibrated on measured peaks (``tests/test_bad_inputs_fit.py`` holds the
refusals; the peak of a fit with one categorical of L levels on 100,000 rows grows as about
9 dense ``(L+1)^2`` float matrices): it counts 10, so it errs on the side of the fit needing
more, and the refusal only happens when even a generous reading of the memory cannot hold it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from smglm.errors import DataError, Issue

if TYPE_CHECKING:
    from smglm.glm.data import Prepared

__all__ = ["available_bytes", "check_fit_memory", "fit_bytes", "memory_error"]

#: Dense p x p float matrices alive at the peak of a fit (measured: about 9).
DENSE_MATRICES = 10
#: Bytes per row besides the predictors: the target, weights, offset, linear predictor, means,
#: working weights and residuals, and glum's copies of them.
ROW_BYTES = 320


def fit_bytes(n_rows: int, n_numeric: int, n_categorical: int, n_coef: int) -> int:
    """The estimated peak memory (bytes) of a fit: ``n_coef`` coefficients (intercept
    included) on ``n_rows`` rows with ``n_numeric`` numeric and ``n_categorical`` categorical
    predictors."""
    dense = DENSE_MATRICES * 8 * n_coef * n_coef
    rows = n_rows * (ROW_BYTES + 8 * n_numeric * 2 + 4 * n_categorical * 2)
    return dense + rows


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """What the container's memory limit leaves (cgroup v2, else v1); None without a limit."""
    root = Path("/sys/fs/cgroup")
    for limit_file, usage_file in (
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ):
        limit = _read_int(root / limit_file)
        if limit is None or limit >= 1 << 60:  # "max", or v1's "no limit"
            continue
        usage = _read_int(root / usage_file) or 0
        return max(limit - usage, 0)
    return None


def available_bytes() -> int | None:
    """The memory available to this process: the machine's ``MemAvailable`` (or the container's
    memory limit less its usage, when lower), in bytes; None when unknown."""
    found = [b for b in (_meminfo_available(), _cgroup_available()) if b is not None]
    return min(found) if found else None


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def _advice(prep: Prepared) -> str:
    import pandas as pd

    sizes = {
        str(c): len(prep.X[c].cat.categories)
        for c in prep.X.columns
        if isinstance(prep.X[c].dtype, pd.CategoricalDtype)
    }
    big = sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    levels = ", ".join(f"{c!r} ({n:,} levels)" for c, n in big)
    group = (
        f"group the rare levels of {levels} (e.g. keep the most frequent and map the rest to "
        "'other'), drop predictors, "
        if big
        else "drop predictors, "
    )
    return group + "or run on a machine or instance with more memory (instance_type)"


def _need(prep: Prepared, n_coef: int) -> int:
    """The fit's memory: dense columns (numerics, spline bases, products of numerics and
    splines; a product with levels counted as dense too, an upper bound) and categoricals
    (level terms and products of two of them)."""
    from smglm.glm.terms import BandsTerm, CategoricalTerm

    def is_levels(t: object) -> bool:
        return isinstance(t, (CategoricalTerm, BandsTerm))

    terms = prep.estimated_terms
    n_cat = sum(is_levels(t) for t in terms)
    n_dense = sum(len(t.columns) for t in terms if not is_levels(t))
    for inter in prep.interactions:
        if is_levels(inter.a) and is_levels(inter.b):
            n_cat += 1
        else:
            n_dense += len(inter.columns)
    return fit_bytes(len(prep.y), n_dense, n_cat, n_coef)


def check_fit_memory(prep: Prepared, n_coef: int) -> None:
    """Refuse (:class:`~smglm.errors.DataError`) a fit of ``n_coef`` coefficients (intercept
    included) on ``prep`` whose estimated memory exceeds what is available here."""
    need = _need(prep, n_coef)
    have = available_bytes()
    if have is None or need <= have:
        return
    raise DataError(
        [
            Issue(
                "predictors",
                f"the fit needs about {_gb(need)} of memory ({n_coef:,} coefficients: dense "
                f"{n_coef:,} x {n_coef:,} matrices for the solver and the standard errors, and "
                f"{len(prep.y):,} rows), and this machine (or container) has {_gb(have)} "
                f"available: {_advice(prep)}",
                n_coef,
            )
        ]
    )


def memory_error(prep: Prepared, n_coef: int) -> DataError:
    """The error a :class:`MemoryError` during a fit becomes."""
    have = available_bytes()
    there = f"; {_gb(have)} is available now" if have is not None else ""
    return DataError(
        [
            Issue(
                "predictors",
                f"the fit ran out of memory ({n_coef:,} coefficients on {len(prep.y):,} rows; "
                f"estimated need about {_gb(_need(prep, n_coef))}{there}): {_advice(prep)}",
                n_coef,
            )
        ]
    )
