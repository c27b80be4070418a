"""Tests of smglm.datasets: the synthetic motor portfolio, its truth, and its files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import design
from smglm import datasets
from smglm.datasets import (
    MOTOR_CATEGORICAL,
    MOTOR_LEVELS,
    MOTOR_NUMERIC,
    MOTOR_REFERENCE,
    MOTOR_SEVERITY_SHAPE,
    motor,
    motor_truth,
    write_motor,
)
from smglm.errors import ConfigError

COLUMNS = [
    "policy_id",
    "exposure",
    *MOTOR_NUMERIC,
    *MOTOR_CATEGORICAL,
    "claim_count",
    "claim_amount",
    "severity",
]


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    """50,000 policies: enough to check means and recover the truth, quick to draw (~0.1 s)."""
    return motor(50_000, seed=1)


def _design(df: pd.DataFrame) -> pd.DataFrame:
    """Intercept, numeric columns and one dummy per non-reference level, named like the truth."""
    terms: dict[str, list[object] | None] = dict.fromkeys(MOTOR_NUMERIC)
    for column in MOTOR_CATEGORICAL:
        reference = MOTOR_REFERENCE[column]
        terms[column] = [reference, *(lv for lv in MOTOR_LEVELS[column] if lv != reference)]
    return design(df, terms)


def _assert_recovered(estimates: pd.Series, errors: pd.Series, truth: dict[str, float]) -> None:
    assert list(estimates.index) == list(truth)
    z = (estimates - pd.Series(truth)) / errors
    worst = z.abs().sort_values(ascending=False).head(3)
    assert (z.abs() < 3.5).all(), f"true coefficients more than 3.5 SE away: {worst.to_dict()}"


def test_motor_same_seed_equal_different_seed_differs() -> None:
    a, b, c = motor(2_000, seed=3), motor(2_000, seed=3), motor(2_000, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a["claim_count"].equals(c["claim_count"])
    assert not a["driver_age"].equals(c["driver_age"])


def test_motor_columns_dtypes_and_ids(sample: pd.DataFrame) -> None:
    assert list(sample.columns) == COLUMNS
    assert len(MOTOR_NUMERIC) == 10
    assert [len(MOTOR_LEVELS[c]) for c in MOTOR_CATEGORICAL] == [5, 12, 25, 50]
    assert sample["policy_id"].tolist() == list(range(1, len(sample) + 1))
    for name in [*MOTOR_NUMERIC, "policy_id", "exposure", "claim_count", "claim_amount"]:
        assert pd.api.types.is_numeric_dtype(sample[name]), name
    assert sample["claim_count"].dtype == np.int64
    for column in MOTOR_CATEGORICAL:
        dtype = sample[column].dtype
        assert isinstance(dtype, pd.CategoricalDtype)
        assert list(dtype.categories) == MOTOR_LEVELS[column]
        assert all(isinstance(level, str) for level in dtype.categories)
    assert not sample[[*MOTOR_NUMERIC, *MOTOR_CATEGORICAL]].isna().any().any()


def test_motor_values_in_range(sample: pd.DataFrame) -> None:
    exposure = sample["exposure"]
    assert (exposure > 0).all() and (exposure <= 1).all()
    assert 0.6 < (exposure == 1).mean() < 0.9  # mostly full years, some partial ones
    assert sample["driver_age"].between(18, 90).all()
    assert (sample["years_licensed"] >= 0).all()
    assert (sample["years_licensed"] <= sample["driver_age"] - 18).all()
    assert sample["vehicle_age"].between(0, 25).all()
    assert sample["vehicle_power"].between(4, 15).all()
    assert sample["bonus_malus"].between(50, 150).all()
    assert sample["n_drivers"].between(1, 4).all()
    assert set(sample["parking_night"].unique()) == {0, 1}
    counts, amount, severity = sample["claim_count"], sample["claim_amount"], sample["severity"]
    assert (counts >= 0).all()
    claimed = counts > 0
    assert (amount[claimed] > 0).all() and (amount[~claimed] == 0).all()
    assert severity[~claimed].isna().all()
    assert (severity[claimed] > 0).all()
    np.testing.assert_allclose(severity[claimed], amount[claimed] / counts[claimed], rtol=1e-12)


def test_motor_mean_frequency_and_severity_near_target(sample: pd.DataFrame) -> None:
    frequency = sample["claim_count"].sum() / sample["exposure"].sum()
    severity = sample["claim_amount"].sum() / sample["claim_count"].sum()
    # Standard errors at 50k rows: ~0.0012 for the frequency, ~25 for the severity.
    assert 0.09 < frequency < 0.11
    assert 1_850 < severity < 2_150


@pytest.mark.parametrize(("n_rows", "seed"), [(1_000, 0), (1_000, 11), (1_000, 12345), (5_000, 2)])
def test_motor_reference_levels_have_most_exposure(n_rows: int, seed: int) -> None:
    df = motor(n_rows, seed=seed)
    for column in MOTOR_CATEGORICAL:
        exposure = df.groupby(column, observed=False)["exposure"].sum()
        assert exposure.idxmax() == MOTOR_REFERENCE[column], column
        assert MOTOR_REFERENCE[column] != MOTOR_LEVELS[column][0]  # differs from R's default


@pytest.mark.parametrize("kind", ["frequency", "severity"])
def test_motor_truth_has_every_term_once(kind: str) -> None:
    truth = motor_truth(kind)  # type: ignore[arg-type]
    levels = [
        f"{c}[{level}]"
        for c in MOTOR_CATEGORICAL
        for level in MOTOR_LEVELS[c]
        if level != MOTOR_REFERENCE[c]
    ]
    assert list(truth) == ["intercept", *MOTOR_NUMERIC, *levels]
    assert len(truth) == 1 + 10 + 4 + 11 + 24 + 49
    assert all(np.isfinite(v) for v in truth.values())
    assert MOTOR_SEVERITY_SHAPE > 0


def test_motor_truth_unknown_kind_raises() -> None:
    with pytest.raises(ConfigError, match="kind: 'freq' is not a model kind"):
        motor_truth("freq")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n_rows", "seed", "message"),
    [
        (0, 0, "n_rows: must be a positive integer; got 0"),
        (2.5, 0, "n_rows: must be a positive integer; got 2.5"),
        (10, -1, "seed: must be a non-negative integer; got -1"),
    ],
)
def test_motor_bad_arguments_raise(n_rows: int, seed: int, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        motor(n_rows, seed=seed)


@pytest.mark.slow
def test_motor_frequency_recovers_truth_with_statsmodels(sample: pd.DataFrame) -> None:
    import statsmodels.api as sm

    X = _design(sample)
    model = sm.GLM(
        sample["claim_count"],
        X,
        family=sm.families.Poisson(),
        offset=np.log(sample["exposure"]),
    )
    result = model.fit()
    _assert_recovered(result.params, result.bse, motor_truth("frequency"))


def test_motor_severity_recovers_truth_with_statsmodels(sample: pd.DataFrame) -> None:
    import statsmodels.api as sm

    claims = sample[sample["claim_count"] > 0]
    model = sm.GLM(
        claims["severity"],
        _design(claims),
        family=sm.families.Gamma(sm.families.links.Log()),
        var_weights=claims["claim_count"],
    )
    result = model.fit()
    _assert_recovered(result.params, result.bse, motor_truth("severity"))
    # The Pearson dispersion estimates 1 / shape.
    assert result.scale == pytest.approx(1 / MOTOR_SEVERITY_SHAPE, rel=0.1)


def _read_back(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    df = pd.read_csv(path)
    for column in MOTOR_CATEGORICAL:
        df[column] = pd.Categorical(df[column], categories=MOTOR_LEVELS[column])
    return df


@pytest.mark.parametrize("name", ["motor.parquet", "motor.csv.gz", "motor.csv"])
def test_write_motor_round_trip_equals_motor(tmp_path: Path, name: str) -> None:
    path = write_motor(tmp_path / "sub" / name, 3_000, seed=5)
    assert path == tmp_path / "sub" / name
    pd.testing.assert_frame_equal(_read_back(path), motor(3_000, seed=5))


def test_write_motor_chunks_equal_motor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq

    monkeypatch.setattr(datasets, "CHUNK_ROWS", 1_000)
    expected = motor(2_500, seed=9)
    assert expected["policy_id"].tolist() == list(range(1, 2_501))
    # The chunks come from different streams: the second is not a copy of the first.
    assert not np.array_equal(expected["driver_age"][:1000], expected["driver_age"][1000:2000])
    path = write_motor(tmp_path / "motor.parquet", 2_500, seed=9)
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    pd.testing.assert_frame_equal(pd.read_parquet(path), expected)
    gz = write_motor(tmp_path / "motor.csv.gz", 2_500, seed=9)
    pd.testing.assert_frame_equal(_read_back(gz), expected)


def test_write_motor_parquet_categoricals_are_dictionary_encoded(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(write_motor(tmp_path / "m.parquet", 1_000))
    for column in MOTOR_CATEGORICAL:
        assert pa.types.is_dictionary(schema.field(column).type), column


def test_write_motor_format_overrides_suffix(tmp_path: Path) -> None:
    path = write_motor(tmp_path / "motor.data", 1_000, format="parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), motor(1_000))


def test_write_motor_unknown_suffix_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"path: cannot tell the format of 'motor\.xlsx'"):
        write_motor(tmp_path / "motor.xlsx", 1_000)
    with pytest.raises(ConfigError, match="format: 'json' is not a format"):
        write_motor(tmp_path / "motor.csv", 1_000, format="json")  # type: ignore[arg-type]
