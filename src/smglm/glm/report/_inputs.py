"""The input checks shared by the report tables: arrays or column names to finite float64."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from smglm.errors import ConfigError, DataError, Issue, did_you_mean

#: An array of one value per row, or (where a DataFrame is given) the name of one of its columns.
Values: TypeAlias = "ArrayLike | str"
F = np.ndarray  # float64 arrays, for brevity in the private helpers


def data_error(field: str, message: str, value: Any = None) -> DataError:
    return DataError([Issue(field=field, message=message, value=value)])


def check_bins(name: str, n: int, minimum: int = 1) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < minimum:
        raise ConfigError([Issue(name, f"must be an integer >= {minimum}; got {n!r}", n)])


def as_values(values: Values, role: str, data: pd.DataFrame | None, n: int | None) -> F:
    """Return ``values`` (an array, or a column of ``data``) as finite float64, one per row."""
    label = role
    if isinstance(values, str):
        if data is None or values not in data.columns:
            known = [] if data is None else [str(c) for c in data.columns]
            hint = did_you_mean(values, known) if known else " Pass an array instead."
            raise data_error(role, f"column {values!r} is not in the data.{hint}", values)
        label, values = f"{role} (column {values!r})", data[values]
    try:
        if isinstance(values, pd.Series):  # nullable dtypes: pd.NA -> NaN, reported below
            arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise data_error(role, f"{label} must be numeric; could not convert it ({exc})") from exc
    if arr.ndim != 1:
        raise data_error(role, f"{label} must be one value per row (1-D); got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise data_error(role, f"{label} has {len(arr)} values; expected {n}, one per row")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        msg = f"{label} has {int(bad.sum())} missing or infinite values (first at row {first})"
        raise data_error(role, msg + "; all values must be finite")
    return arr


def exposure_values(exposure: Values | None, n: int, data: pd.DataFrame | None = None) -> F:
    if exposure is None:
        return np.ones(n)
    e = as_values(exposure, "exposure", data, n)
    if (e < 0).any():
        raise data_error("exposure", f"has {int((e < 0).sum())} negative values; it must be >= 0")
    return e


def amount_inputs(actual: Values, predicted: Values, exposure: Values | None) -> tuple[F, F, F]:
    a = as_values(actual, "actual", None, None)
    if len(a) == 0:
        raise data_error("actual", "has no rows; at least one row is needed")
    return a, as_values(predicted, "predicted", None, len(a)), exposure_values(exposure, len(a))
