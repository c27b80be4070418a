"""Synthetic sample data: a motor-insurance claim frequency/severity portfolio with known truth.

:func:`motor` draws a portfolio of policies whose claim counts are Poisson with mean
``exposure * exp(eta_freq)`` and whose claim costs are sums of Gamma severities with mean
``exp(eta_sev)`` and shape :data:`MOTOR_SEVERITY_SHAPE`. Both linear predictors are linear in
the numeric rating factors (so a GLM using them as numeric predictors is correctly specified)
plus one effect per level of each categorical factor. :func:`motor_truth` returns the true
coefficients under smglm's conventions: term names ``intercept``, ``<numeric column>`` and
``column[level]``, with each categorical's reference level (:data:`MOTOR_REFERENCE`, the level
with the most exposure for any ``n_rows >= 1000`` and any seed) at 0.

Rows are drawn in chunks of :data:`CHUNK_ROWS`, each from its own random stream derived from
``(seed, chunk index)``. :func:`motor` and :func:`write_motor` use the same chunks, so a file
written by ``write_motor(path, n, seed)`` holds exactly ``motor(n, seed)``, while writing only
one chunk at a time. Results are reproducible for a given numpy version (numpy does not promise
identical random streams across versions).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from smglm.errors import ConfigError, Issue

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CHUNK_ROWS",
    "MOTOR_CATEGORICAL",
    "MOTOR_LEVELS",
    "MOTOR_NUMERIC",
    "MOTOR_REFERENCE",
    "MOTOR_SEVERITY_SHAPE",
    "motor",
    "motor_history",
    "motor_history_truth",
    "motor_truth",
    "write_motor",
]

CHUNK_ROWS = 1_000_000
"""Rows drawn per random stream (and written per Parquet row group / CSV block)."""

MOTOR_NUMERIC = [
    "driver_age",
    "years_licensed",
    "vehicle_age",
    "vehicle_power",
    "bonus_malus",
    "density_log",
    "annual_mileage_k",
    "n_drivers",
    "credit_score_std",
    "parking_night",
]
"""The numeric rating factors; each enters both log-linear predictors linearly."""

MOTOR_CATEGORICAL = ["area", "vehicle_brand", "region", "vehicle_model"]
"""The categorical rating factors (pandas ``category`` dtype, string levels)."""

MOTOR_LEVELS: dict[str, list[str]] = {
    "area": [chr(ord("A") + i) for i in range(5)],
    "vehicle_brand": [f"B{i:02d}" for i in range(1, 13)],
    "region": [f"R{i:02d}" for i in range(1, 26)],
    "vehicle_model": [f"M{i:02d}" for i in range(1, 51)],
}
"""The levels of each categorical, in category order (sorted)."""

MOTOR_REFERENCE: dict[str, str] = {
    "area": "C",
    "vehicle_brand": "B04",
    "region": "R11",
    "vehicle_model": "M17",
}
"""Each categorical's dominant level: the one with the most exposure, smglm's reference level.

Deliberately not the first level in sort order, so that it differs from R's default reference.
"""

MOTOR_SEVERITY_SHAPE = 1.5
"""The Gamma shape of a single claim's cost (coefficient of variation 1 / sqrt(1.5))."""

# Probability of the dominant level of each categorical; the other levels share the rest with
# weights falling linearly from 1 to 0.3. The margin between the dominant level and the next
# one is at least 6 standard deviations of their exposure difference at 1,000 rows.
_DOMINANT_P = {"area": 0.40, "vehicle_brand": 0.25, "region": 0.14, "vehicle_model": 0.10}

_FREQ_NUMERIC = {
    "driver_age": -0.010,
    "years_licensed": -0.008,
    "vehicle_age": -0.020,
    "vehicle_power": 0.040,
    "bonus_malus": 0.012,
    "density_log": 0.090,
    "annual_mileage_k": 0.012,
    "n_drivers": 0.080,
    "credit_score_std": -0.060,
    "parking_night": -0.150,
}
_SEV_NUMERIC = {
    "driver_age": 0.002,
    "years_licensed": -0.003,
    "vehicle_age": -0.015,
    "vehicle_power": 0.060,
    "bonus_malus": 0.002,
    "density_log": 0.030,
    "annual_mileage_k": 0.004,
    "n_drivers": 0.020,
    "credit_score_std": -0.030,
    "parking_night": -0.050,
}
# Intercepts calibrated (on 4M rows) for a frequency of ~0.10 claims per exposure year and a
# claim-weighted mean severity of ~2,000.
_INTERCEPT = {"frequency": -3.45, "severity": 6.835}
# Amplitude of the categorical level effects (a fixed sinusoid over the level index).
_LEVEL_AMPLITUDE = {"frequency": 0.30, "severity": 0.15}


def _level_probabilities(column: str) -> np.ndarray:
    levels = MOTOR_LEVELS[column]
    ref = levels.index(MOTOR_REFERENCE[column])
    n = len(levels)
    others = np.linspace(1.0, 0.3, n - 1)
    # Spread the falling weights over the levels in a fixed, non-monotone order.
    step = next(k for k in range(7, n + 7) if math.gcd(k, n - 1) == 1)
    order = [(step * j) % (n - 1) for j in range(n - 1)]
    weights = others[order] * (1.0 - _DOMINANT_P[column]) / others.sum()
    p = np.insert(weights, ref, _DOMINANT_P[column])
    return p / p.sum()


def _level_effects(column: str, kind: str) -> dict[str, float]:
    """True effect of each level of ``column`` on the log scale, reference level 0."""
    phase = {"area": 0.4, "vehicle_brand": 1.1, "region": 2.3, "vehicle_model": 3.7}[column]
    speed = 1.3 if kind == "frequency" else 0.9
    amplitude = _LEVEL_AMPLITUDE[kind]
    effects = {}
    for j, level in enumerate(MOTOR_LEVELS[column]):
        value = 0.0 if level == MOTOR_REFERENCE[column] else math.sin(speed * j + phase)
        effects[level] = round(amplitude * value, 4)
    return effects


def motor_truth(kind: Literal["frequency", "severity"]) -> dict[str, float]:
    """Return the true coefficients of the frequency or severity model of :func:`motor`.

    Parameters
    ----------
    kind
        ``"frequency"``: Poisson log-rate per exposure year of ``claim_count``.
        ``"severity"``: Gamma log-mean of one claim's cost (``severity`` with weights
        ``claim_count``; the Gamma shape is :data:`MOTOR_SEVERITY_SHAPE`).

    Returns
    -------
    dict[str, float]
        ``intercept``, each numeric column by name, then ``column[level]`` for every
        non-reference level of each categorical (the reference levels are
        :data:`MOTOR_REFERENCE`, coefficient 0, absorbed by the intercept).
    """
    if kind not in ("frequency", "severity"):
        raise ConfigError(
            [Issue("kind", f"{kind!r} is not a model kind; choose 'frequency' or 'severity'", kind)]
        )
    numeric = _FREQ_NUMERIC if kind == "frequency" else _SEV_NUMERIC
    truth = {"intercept": _INTERCEPT[kind], **numeric}
    for column in MOTOR_CATEGORICAL:
        for level, effect in _level_effects(column, kind).items():
            if level != MOTOR_REFERENCE[column]:
                truth[f"{column}[{level}]"] = effect
    return truth


def _linear_predictor(
    data: dict[str, np.ndarray], codes: dict[str, np.ndarray], kind: str
) -> np.ndarray:
    numeric = _FREQ_NUMERIC if kind == "frequency" else _SEV_NUMERIC
    eta = np.full(len(codes["area"]), _INTERCEPT[kind])
    for name, beta in numeric.items():
        eta += beta * data[name]
    for column in MOTOR_CATEGORICAL:
        effects = np.array(list(_level_effects(column, kind).values()))
        eta += effects[codes[column]]
    return eta


def _chunk(n: int, seed: int, index: int, first_id: int) -> pd.DataFrame:
    """Draw ``n`` policies from the stream ``(seed, index)``; ids start at ``first_id``."""
    import pandas as pd

    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    full_year = rng.random(n) < 0.75
    days = rng.integers(1, 366, size=n)
    exposure = np.where(full_year, 1.0, days / 365.0)

    age = np.clip(np.rint(rng.normal(45.0, 14.0, n)), 18, 90).astype(np.int64)
    not_driving = np.minimum(np.floor(rng.exponential(6.0, n)).astype(np.int64), age - 18)
    num: dict[str, np.ndarray] = {
        "driver_age": age,
        "years_licensed": age - 18 - not_driving,
        "vehicle_age": np.clip(np.rint(rng.gamma(2.0, 3.5, n)), 0, 25).astype(np.int64),
        "vehicle_power": np.minimum(4 + rng.poisson(2.5, n), 15).astype(np.int64),
        "bonus_malus": np.where(
            rng.random(n) < 0.55, 50, np.minimum(50 + np.rint(rng.exponential(25.0, n)), 150)
        ).astype(np.int64),
        "density_log": np.round(np.clip(rng.normal(5.5, 1.8, n), 0.0, 10.5), 3),
        "annual_mileage_k": np.round(np.clip(rng.lognormal(2.5, 0.5, n), 1.0, 60.0), 1),
        "n_drivers": 1 + rng.choice(4, size=n, p=[0.55, 0.35, 0.08, 0.02]),
        "credit_score_std": np.round(rng.standard_normal(n), 3),
        "parking_night": (rng.random(n) < 0.4).astype(np.int64),
    }
    codes = {
        c: rng.choice(len(MOTOR_LEVELS[c]), size=n, p=_level_probabilities(c)).astype(np.int8)
        for c in MOTOR_CATEGORICAL
    }
    mean_count = exposure * np.exp(_linear_predictor(num, codes, "frequency"))
    claim_count = rng.poisson(mean_count).astype(np.int64)
    del mean_count
    # The sum of k iid Gamma(shape, mean mu) costs is Gamma(k * shape, scale mu / shape).
    has_claim = np.flatnonzero(claim_count)
    mu = np.exp(_linear_predictor(num, codes, "severity")[has_claim])
    claim_amount = np.zeros(n)
    claim_amount[has_claim] = np.round(
        rng.gamma(MOTOR_SEVERITY_SHAPE * claim_count[has_claim], mu / MOTOR_SEVERITY_SHAPE), 2
    )
    severity = np.full(n, np.nan)
    severity[has_claim] = claim_amount[has_claim] / claim_count[has_claim]

    columns: dict[str, object] = {
        "policy_id": np.arange(first_id, first_id + n, dtype=np.int64),
        "exposure": exposure,
        **num,
    }
    for c in MOTOR_CATEGORICAL:
        columns[c] = pd.Categorical.from_codes(codes[c], dtype=pd.CategoricalDtype(MOTOR_LEVELS[c]))
    columns.update(claim_count=claim_count, claim_amount=claim_amount, severity=severity)
    return pd.DataFrame(columns)


def _check_args(n_rows: int, seed: int) -> None:
    issues = []
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        issues.append(Issue("n_rows", f"must be a positive integer; got {n_rows!r}", n_rows))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        issues.append(Issue("seed", f"must be a non-negative integer; got {seed!r}", seed))
    if issues:
        raise ConfigError(issues)


def _chunks(n_rows: int, seed: int) -> Iterator[pd.DataFrame]:
    for index, start in enumerate(range(0, n_rows, CHUNK_ROWS)):
        yield _chunk(min(CHUNK_ROWS, n_rows - start), int(seed), index, start + 1)


def motor(n_rows: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Return a synthetic motor-insurance portfolio of ``n_rows`` policies.

    Parameters
    ----------
    n_rows
        Number of policies (rows). The dominant levels of the categoricals are guaranteed
        (in practice) from about 1,000 rows on.
    seed
        Non-negative seed; the result depends only on ``(n_rows, seed)`` (and the numpy
        version).

    Returns
    -------
    pandas.DataFrame
        ``policy_id`` (1..n_rows), ``exposure`` (years, in (0, 1]: 75% full years, the rest
        whole days / 365), the numeric factors :data:`MOTOR_NUMERIC` (int64 or float64), the
        categoricals :data:`MOTOR_CATEGORICAL` (``category`` dtype, levels
        :data:`MOTOR_LEVELS`), ``claim_count`` (int64, Poisson), ``claim_amount`` (total cost,
        0 without claims) and ``severity`` (``claim_amount / claim_count``, NaN without
        claims).

    Examples
    --------
    >>> from smglm.datasets import motor, motor_truth
    >>> df = motor(5_000, seed=1)
    >>> df.shape
    (5000, 19)
    >>> print(f"{df.claim_count.sum() / df.exposure.sum():.1f} claims per year")
    0.1 claims per year
    """
    import pandas as pd

    _check_args(n_rows, seed)
    parts = list(_chunks(n_rows, seed))
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts, ignore_index=True)


#: The accident years of :func:`motor_history`.
HISTORY_YEARS = (2021, 2022, 2023, 2024, 2025)
#: The yearly claim-frequency trend of :func:`motor_history` (log scale, per year).
HISTORY_TREND = 0.03
#: Extra log-frequency of area E in region R20..R25 (the interaction of :func:`motor_history`).
HISTORY_AREA_REGION = 0.25


def _history_age_effect(age: np.ndarray) -> np.ndarray:
    """A U-shaped driver-age effect (log scale): young and old drivers claim more."""
    a = np.asarray(age, dtype=float)
    return 0.9 * np.exp(-(a - 18.0) / 6.0) + 0.00035 * np.square(np.maximum(a - 50.0, 0.0))


def _history_vehicle_age_effect(vehicle_age: np.ndarray) -> np.ndarray:
    """A decreasing, flattening vehicle-age effect (log scale)."""
    v = np.asarray(vehicle_age, dtype=float)
    return -0.35 * (1.0 - np.exp(-v / 6.0))


def motor_history_truth() -> dict[str, object]:
    """The non-linear truth of :func:`motor_history`: the driver-age and vehicle-age curves
    (functions of the column, log scale), the yearly trend and the area x region effect."""
    return {
        "driver_age": _history_age_effect,
        "vehicle_age": _history_vehicle_age_effect,
        "trend": HISTORY_TREND,
        "area_region": HISTORY_AREA_REGION,
    }


def motor_history(n_rows: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """A motor portfolio over the accident years 2021-2025, with effects a linear GLM misses.

    The policies are :func:`motor`'s (same columns, plus ``accident_year``), but the claim
    counts are drawn again (Poisson, with ``exposure``) from a log-rate that has, besides
    :func:`motor`'s linear and level effects: a U-shaped driver-age curve (young and old
    drivers claim more) in place of the linear age effect, a decreasing and flattening
    vehicle-age curve in place of the linear one, a trend of :data:`HISTORY_TREND` a year,
    and an interaction: area ``E`` in regions ``R20``-``R25`` claims
    ``exp(HISTORY_AREA_REGION)`` times more. It is made for the exploratory tutorial:
    splines, bands, groups, an interaction and a time holdout all find something real.
    ``claim_amount`` and ``severity`` are dropped (frequency only).

    Examples
    --------
    >>> from smglm.datasets import motor_history
    >>> df = motor_history(2_000, seed=1)
    >>> sorted(df.accident_year.unique().tolist())
    [2021, 2022, 2023, 2024, 2025]
    """
    import pandas as pd

    df = motor(n_rows, seed).drop(columns=["claim_amount", "severity"])
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    years = np.asarray(HISTORY_YEARS)
    df.insert(1, "accident_year", years[rng.integers(0, years.size, size=n_rows)])
    num = {c: df[c].to_numpy() for c in MOTOR_NUMERIC}
    codes = {c: df[c].cat.codes.to_numpy() for c in MOTOR_CATEGORICAL}
    eta = _linear_predictor(num, codes, "frequency")
    eta -= _FREQ_NUMERIC["driver_age"] * num["driver_age"]
    eta -= _FREQ_NUMERIC["vehicle_age"] * num["vehicle_age"]
    eta += _history_age_effect(num["driver_age"]) - 0.70  # about 0.1 claims a year overall
    eta += _history_vehicle_age_effect(num["vehicle_age"]) + 0.15
    eta += HISTORY_TREND * (df["accident_year"].to_numpy() - years[0])
    in_east = df["region"].isin([f"R{i}" for i in range(20, 26)]).to_numpy()
    eta += HISTORY_AREA_REGION * ((df["area"] == "E").to_numpy() & in_east)
    df["claim_count"] = rng.poisson(df["exposure"].to_numpy() * np.exp(eta)).astype(np.int64)
    return pd.DataFrame(df)


def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        if format not in ("parquet", "csv"):
            raise ConfigError(
                [Issue("format", f"{format!r} is not a format; choose 'parquet' or 'csv'", format)]
            )
        return format
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    raise ConfigError(
        [
            Issue(
                "path",
                f"cannot tell the format of {path.name!r}; name it *.parquet, *.csv or *.csv.gz, "
                "or pass format='parquet' or 'csv'",
                str(path),
            )
        ]
    )


def write_motor(
    path: str | Path,
    n_rows: int,
    seed: int = 0,
    format: Literal["parquet", "csv"] | None = None,
) -> Path:
    """Write ``motor(n_rows, seed)`` to ``path``, one chunk of :data:`CHUNK_ROWS` at a time.

    Parameters
    ----------
    path
        The file to write (parent folders are created). ``*.parquet``/``*.pq``: Parquet with
        dictionary-encoded categoricals, one row group per chunk. ``*.csv``: CSV;
        ``*.csv.gz``: gzip-compressed CSV.
    n_rows, seed
        As in :func:`motor`; the file holds exactly ``motor(n_rows, seed)``.
    format
        ``"parquet"`` or ``"csv"``, overriding the file name's suffix.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    kind = _format_of(path, format)
    _check_args(n_rows, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer = None
        try:
            for part in _chunks(n_rows, seed):
                table = pa.Table.from_pandas(part, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table, row_group_size=CHUNK_ROWS)
        finally:
            if writer is not None:
                writer.close()
    else:
        import gzip

        gz = path.name.lower().endswith(".gz")
        with gzip.open(path, "wt", newline="") if gz else path.open("w", newline="") as handle:
            for index, part in enumerate(_chunks(n_rows, seed)):
                part.to_csv(handle, header=index == 0, index=False)
    return path
