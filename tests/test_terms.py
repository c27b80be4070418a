"""The fitted terms' bases (smglm.glm.terms): B-splines against scipy, R's ns() natural spline
(natural at the boundary knots, the same space as patsy's cr() with the same knots), the
monotone basis, bands and levels, and their model.json round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.interpolate import BSpline

from smglm.glm.terms import (
    MISSING_LEVEL,
    BandsTerm,
    CategoricalTerm,
    InteractionTerm,
    NumericTerm,
    SplineTerm,
    bspline_basis,
    monotone_basis,
    natural_basis,
    quantile_knots,
    term_from_dict,
)

KNOTS = [30.0, 42.5, 55.0, 70.0]
BOUNDARY = (18.0, 90.0)


def _x(n: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([[18.0, 90.0, 30.0, 55.0], rng.uniform(18, 90, n)])


def _knot_vector() -> np.ndarray:
    return np.array([18.0] * 4 + KNOTS + [90.0] * 4)


def test_bspline_basis_equals_scipy():
    x, t = _x(), _knot_vector()
    ours = bspline_basis(x, t)
    ref = BSpline.design_matrix(x, t, 3).toarray()
    np.testing.assert_allclose(ours, ref, atol=1e-14)
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-14)


@pytest.mark.parametrize("deriv", [1, 2])
def test_bspline_derivatives_equal_scipy(deriv):
    x, t = _x(), _knot_vector()
    n = t.size - 4
    ref = np.column_stack([BSpline(t, np.eye(n)[j], 3)(x, nu=deriv) for j in range(n)])
    np.testing.assert_allclose(bspline_basis(x, t, deriv=deriv), ref, atol=1e-10)


def test_bspline_lower_degrees_equal_scipy():
    x = _x()
    for degree in (0, 1, 2):
        t = np.array([18.0] * (degree + 1) + KNOTS + [90.0] * (degree + 1))
        ref = BSpline.design_matrix(x, t, degree).toarray()
        np.testing.assert_allclose(bspline_basis(x, t, degree), ref, atol=1e-14)


def _second_derivative(f, at: float, h: float = 1e-3) -> np.ndarray:
    v = f(np.array([at - h, at, at + h]))
    return (v[0] - 2 * v[1] + v[2]) / h**2


def test_natural_basis_is_natural_and_linear_beyond_the_boundary():
    def f(x):
        return natural_basis(x, KNOTS, BOUNDARY)

    # second derivative 0 at the boundary knots (from inside)
    assert np.abs(_second_derivative(f, 18.0 + 2e-3)).max() < 1e-4
    assert np.abs(_second_derivative(f, 90.0 - 2e-3)).max() < 1e-4
    # R's ns(): no intercept column, 0 at the lower boundary knot, len(knots) + 1 columns
    assert f(np.array([18.0])).shape == (1, len(KNOTS) + 1)
    np.testing.assert_allclose(f(np.array([18.0])), 0.0, atol=1e-15)
    # linear beyond the boundary, continuing the boundary's value and slope
    below = f(np.array([0.0, 6.0, 12.0, 18.0]))
    np.testing.assert_allclose(np.diff(below, n=2, axis=0), 0.0, atol=1e-12)
    above = f(np.array([90.0, 100.0, 110.0]))
    np.testing.assert_allclose(above[2] - above[1], above[1] - above[0], atol=1e-12)
    slope_in = (f(np.array([90.0]))[0] - f(np.array([90.0 - 1e-6]))[0]) / 1e-6
    np.testing.assert_allclose((above[1] - above[0]) / 10, slope_in, rtol=1e-4, atol=1e-8)


def test_natural_basis_spans_patsys_cr_space():
    patsy = pytest.importorskip("patsy")
    x = _x(600)
    ns = natural_basis(x, KNOTS, BOUNDARY)
    cr = patsy.dmatrix(
        f"cr(x, knots={KNOTS}, lower_bound=18, upper_bound=90) - 1",
        {"x": x},
        return_type="dataframe",
    ).to_numpy()
    # cr has an intercept-like column (its columns sum to 1): the space of [1, ns] is cr's
    ours = np.column_stack([np.ones_like(x), ns])
    assert ours.shape[1] == cr.shape[1]
    coef, *_ = np.linalg.lstsq(ours, cr, rcond=None)
    np.testing.assert_allclose(ours @ coef, cr, atol=1e-9)
    coef, *_ = np.linalg.lstsq(cr, ours, rcond=None)
    np.testing.assert_allclose(cr @ coef, ours, atol=1e-9)


def test_natural_basis_known_values_of_r_ns():
    """R 4.x: ns(c(0, 0.25, 0.5, 1), knots = 0.5, Boundary.knots = c(0, 1))."""
    got = natural_basis(np.array([0.0, 0.25, 0.5, 1.0]), [0.5], (0.0, 1.0))
    # the natural cubic spline space with one interior knot: 0 at 0, two columns
    assert got.shape == (4, 2)
    np.testing.assert_allclose(got[0], 0.0, atol=1e-15)
    # its columns are cubic on each piece with matching second derivative 0 at both ends:
    # check against an independent construction (truncated power basis, natural constraints)
    x = np.linspace(0, 1, 101)
    b = natural_basis(x, [0.5], (0.0, 1.0))

    def d(k, xx):  # ESL's natural spline basis (5.4-5.5)
        return (np.maximum(xx - k, 0) ** 3 - np.maximum(xx - 1.0, 0) ** 3) / (1.0 - k)

    esl = np.column_stack([x, d(0.0, x) - d(0.5, x)])
    coef, *_ = np.linalg.lstsq(b, esl, rcond=None)
    np.testing.assert_allclose(b @ coef, esl, atol=1e-12)


def test_monotone_basis_columns_increase_and_clamp():
    x = np.sort(_x())
    m = monotone_basis(x, KNOTS, BOUNDARY)
    assert m.shape == (x.size, len(KNOTS) + 3)
    assert (np.diff(m, axis=0) >= -1e-12).all()
    np.testing.assert_allclose(m[0], 0.0, atol=1e-15)
    np.testing.assert_allclose(m[-1], 1.0, atol=1e-12)
    out = monotone_basis(np.array([0.0, 18.0, 90.0, 200.0]), KNOTS, BOUNDARY)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[2], out[3])
    # any non-negative coefficients give an increasing curve
    rng = np.random.default_rng(3)
    for _ in range(5):
        curve = m @ rng.uniform(0, 1, m.shape[1])
        assert (np.diff(curve) >= -1e-12).all()


def test_quantile_knots_are_r_type_7():
    x = np.array([1.0, 2, 3, 4, 10, 11, 30])
    # R: quantile(x, c(1/3, 2/3)) = 3.0, 10.0 (type 7: h = (n - 1) p + 1)
    np.testing.assert_allclose(quantile_knots(x, 2), [3.0, 10.0])
    np.testing.assert_allclose(quantile_knots(np.arange(11.0), 4), [2, 4, 6, 8])
    assert quantile_knots(x, 0) == []


def test_level_terms_encode_groups_missing_and_unseen():
    t = CategoricalTerm(
        "region",
        ["R05", "north", "R04", MISSING_LEVEL],
        "R05",
        [0.0, 0.1, 0.2, 0.3],
        groups={"north": ["R01", "R02"]},
        missing="level",
    )
    col = pd.Series(["R01", "R02", "R04", None, "R05", "R99", "north"])
    codes = t.encode(col)
    np.testing.assert_array_equal(codes, [1, 1, 2, 3, 0, -1, 1])
    np.testing.assert_allclose(t.effect(codes), [0.1, 0.1, 0.2, 0.3, 0.0, 0.0, 0.1])
    assert t.columns == ["region[north]", "region[R04]", "region[(missing)]"]
    # categories, numbers written as levels
    cat = pd.Series(pd.Categorical(["R04", "R01"]))
    np.testing.assert_array_equal(t.encode(cat), [2, 1])


def test_bands_encode_numbers_and_labels():
    t = BandsTerm(
        "bm",
        ["[60,80)", "[-Inf,60)", "[80,Inf)"],
        "[60,80)",
        [0.0, -0.2, 0.4],
        cuts=[60.0, 80.0],
    )
    codes = t.encode(pd.Series([50, 60, 79.9, 80, 500]))
    np.testing.assert_array_equal(codes, [1, 0, 0, 2, 2])
    labels = pd.Series(pd.Categorical(["[80,Inf)", "[-Inf,60)"]))
    np.testing.assert_array_equal(t.encode(labels), [2, 1])
    from smglm.errors import ModelError

    with pytest.raises(ModelError, match="missing"):
        t.encode(pd.Series([50.0, np.nan]))
    tm = BandsTerm("bm", ["[-Inf,60)", "[60,Inf)", MISSING_LEVEL], "[-Inf,60)", [0, 1, 2],
                   cuts=[60.0], missing="level")  # fmt: skip
    np.testing.assert_array_equal(tm.encode(pd.Series([50.0, np.nan, 70])), [0, 2, 1])


def _round_trip(term, main=None):
    back = term_from_dict(term.to_dict(), main or {})
    assert back == term
    return back


def test_terms_round_trip_through_dicts():
    num = NumericTerm("x", 0.5)
    cat = CategoricalTerm("a", ["B", "A", "C"], "B", [0.0, 0.1, -0.2], groups={"C": ["c1"]})
    bands = BandsTerm("bm", ["[-Inf,60)", "[60,Inf)"], "[-Inf,60)", [0.0, 0.3], cuts=[60.0])
    spline = SplineTerm("age", [30.0, 50.0], (18.0, 90.0), None, [0.1, 0.2, 0.3])
    mono = SplineTerm("va", [5.0], (0.0, 20.0), "decreasing", [-0.1, -0.2, 0.0, -0.3])
    fixed = NumericTerm("d", 0.09, fixed=True)
    for t in (num, cat, bands, spline, mono, fixed):
        _round_trip(t)
    inter = InteractionTerm(spline, cat).with_coefficients(np.arange(6.0))
    assert inter.columns[:2] == ["age[s1]:a[A]", "age[s1]:a[C]"]
    back = _round_trip(inter, {"age": spline, "a": cat})
    assert back.columns == inter.columns


def test_interaction_effects_equal_the_product_of_dense_columns():
    rng = np.random.default_rng(0)
    n = 50
    spline = SplineTerm("age", [40.0], (18.0, 90.0), None, [0.0, 0.0])
    cat = CategoricalTerm("a", ["B", "A", "C"], "B", [0.0, 0.0, 0.0])
    num = NumericTerm("x")
    data = pd.DataFrame(
        {"age": rng.uniform(18, 90, n), "a": rng.choice(["A", "B", "C", "Z"], n),
         "x": rng.normal(size=n)}
    )  # fmt: skip
    enc = {t.name: t.encode(data[t.name]) for t in (spline, cat, num)}
    dense = {t.name: t.dense(enc[t.name]) for t in (spline, cat, num)}
    for a, b in [(spline, cat), (cat, spline), (num, cat), (spline, num), (cat, cat), (num, num)]:
        inter = InteractionTerm(a, b)
        coef = rng.normal(size=len(inter.columns))
        inter = inter.with_coefficients(coef)
        c = np.asarray(inter.coefficients)
        expected = np.einsum("ni,ij,nj->n", dense[a.name], c, dense[b.name])
        np.testing.assert_allclose(inter.effect(enc[a.name], enc[b.name]), expected, atol=1e-12)
