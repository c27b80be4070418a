"""The formula spelling of a GLMConfig's model (smglm.config.formula): what each piece of the
language becomes, the errors (naming ``formula``, the piece and its position), and the round
trip config -> formula_text -> config."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from smglm.config import GLMConfig
from smglm.config.formula import ALLOWED, FORMULA_FIELDS, parse_formula
from smglm.errors import ConfigError

EXAMPLE = (
    "claim_count ~ ns(driver_age, 5) + bands(bonus_malus, 60, 80, 100) + area * region"
    " + driver_age:area + C(vehicle_group) + offset(log(exposure))"
)


def config(formula: str, **fields: Any) -> GLMConfig:
    return GLMConfig.from_dict({"formula": formula, "family": "poisson", **fields})


def test_the_issue_example_parses_into_the_structured_fields():
    got = config(EXAMPLE)
    want = GLMConfig.from_dict(
        {
            "target": "claim_count",
            "predictors": ["driver_age", "bonus_malus", "area", "region", "vehicle_group"],
            "categorical": ["vehicle_group"],
            "exposure": "exposure",
            "family": "poisson",
            "terms": {
                "driver_age": {"spline": {"df": 5}},
                "bonus_malus": {"bands": [60, 80, 100]},
            },
            "interactions": [["area", "region"], ["driver_age", "area"]],
        }
    )
    assert got == want
    assert "formula" not in got.to_dict()  # the model records the structured form
    assert GLMConfig.from_json(got.to_json()) == got


def test_a_formula_in_yaml_and_in_an_sm_train_body():
    from smglm.notebook.cmd.train import parse_body

    text = f"formula: {EXAMPLE}\nfamily: poisson\npenalty: {{alpha: 0.01}}\n"
    assert GLMConfig.from_yaml(text) == config(EXAMPLE, penalty={"alpha": 0.01})
    assert parse_body(text) == config(EXAMPLE, penalty={"alpha": 0.01})


@pytest.mark.parametrize(
    ("formula", "fields"),
    [
        ("y ~ a + b", {"predictors": ["a", "b"]}),
        ("y ~ 1", {"predictors": []}),
        ("y ~ a - 1", {"predictors": ["a"], "fit_intercept": False}),
        ("y ~ a + 0", {"predictors": ["a"], "fit_intercept": False}),
        ("y ~ 0 + a", {"predictors": ["a"], "fit_intercept": False}),
        ("y ~ -1 + a", {"predictors": ["a"], "fit_intercept": False}),
        ("y ~ 1 + a", {"predictors": ["a"]}),
        ("y ~ a + a", {"predictors": ["a"]}),
        ("y ~ ns(x, 5)", {"predictors": ["x"], "terms": {"x": {"spline": {"df": 5}}}}),
        ("y ~ ns(x, df = 5)", {"predictors": ["x"], "terms": {"x": {"spline": {"df": 5}}}}),
        (
            "y ~ ns(x, knots = c(25, 35))",
            {"predictors": ["x"], "terms": {"x": {"spline": {"knots": [25, 35]}}}},
        ),
        (
            "y ~ ns(x, knots=[25, 35.5], boundary=c(18, 90))",
            {
                "predictors": ["x"],
                "terms": {"x": {"spline": {"knots": [25, 35.5], "boundary": [18, 90]}}},
            },
        ),
        (
            "y ~ ns(x, knots = c(25, 35), Boundary.knots = c(18, 90))",
            {
                "predictors": ["x"],
                "terms": {"x": {"spline": {"knots": [25, 35], "boundary": [18, 90]}}},
            },
        ),
        (
            "y ~ ms(x, 4, decreasing)",
            {"predictors": ["x"], "terms": {"x": {"spline": {"df": 4, "monotone": "decreasing"}}}},
        ),
        (
            "y ~ ms(x, increasing, knots = c(1, 2))",
            {
                "predictors": ["x"],
                "terms": {"x": {"spline": {"knots": [1, 2], "monotone": "increasing"}}},
            },
        ),
        (
            "y ~ ns(x, df = 4, monotone = 'increasing')",
            {"predictors": ["x"], "terms": {"x": {"spline": {"df": 4, "monotone": "increasing"}}}},
        ),
        ("y ~ bands(x, 60, 80)", {"predictors": ["x"], "terms": {"x": {"bands": [60, 80]}}}),
        ("y ~ bands(x, c(60, 80))", {"predictors": ["x"], "terms": {"x": {"bands": [60, 80]}}}),
        ("y ~ bands(x, [60, 80])", {"predictors": ["x"], "terms": {"x": {"bands": [60, 80]}}}),
        ("y ~ cut(x, c(60, 80))", {"predictors": ["x"], "terms": {"x": {"bands": [60, 80]}}}),
        (
            "y ~ cut(x, breaks = c(-Inf, 60, 80, Inf), right = FALSE)",
            {"predictors": ["x"], "terms": {"x": {"bands": [60, 80]}}},
        ),
        (
            "y ~ bands(x, 60, 80, base = '[60,80)', missing = level)",
            {
                "predictors": ["x"],
                "terms": {"x": {"bands": [60, 80], "base": "[60,80)", "missing": "level"}},
            },
        ),
        ("y ~ C(r)", {"predictors": ["r"], "categorical": ["r"]}),
        ("y ~ factor(r)", {"predictors": ["r"], "categorical": ["r"]}),
        ("y ~ as.factor(r)", {"predictors": ["r"], "categorical": ["r"]}),
        (
            "y ~ C(r, base = R05)",
            {"predictors": ["r"], "categorical": ["r"], "terms": {"r": {"base": "R05"}}},
        ),
        (
            'y ~ C(r, Treatment("R05"))',
            {"predictors": ["r"], "categorical": ["r"], "terms": {"r": {"base": "R05"}}},
        ),
        (
            "y ~ C(r, Treatment(reference = 5))",
            {"predictors": ["r"], "categorical": ["r"], "terms": {"r": {"base": "5"}}},
        ),
        ('y ~ relevel(r, "R05")', {"predictors": ["r"], "terms": {"r": {"base": "R05"}}}),
        ("y ~ relevel(r, ref = R05)", {"predictors": ["r"], "terms": {"r": {"base": "R05"}}}),
        (
            "y ~ levels(r, groups = list(north = c(R01, R02), south = c(R04)), missing = level)",
            {
                "predictors": ["r"],
                "terms": {
                    "r": {
                        "groups": {"north": ["R01", "R02"], "south": ["R04"]},
                        "missing": "level",
                    }
                },
            },
        ),
        (
            "y ~ levels(r, groups = {north: [R01, 2], 'far south': ['R 4']})",
            {
                "predictors": ["r"],
                "terms": {"r": {"groups": {"north": ["R01", "2"], "far south": ["R 4"]}}},
            },
        ),
        ("y ~ a * b", {"predictors": ["a", "b"], "interactions": [["a", "b"]]}),
        ("y ~ a:b", {"predictors": ["a", "b"], "interactions": [["a", "b"]]}),
        ("y ~ a*b + a:b + b:a", {"predictors": ["a", "b"], "interactions": [["a", "b"]]}),
        (
            "y ~ (a + b) * c",
            {"predictors": ["a", "b", "c"], "interactions": [["a", "c"], ["b", "c"]]},
        ),
        (
            "y ~ ns(x, 3) * C(r)",
            {
                "predictors": ["x", "r"],
                "categorical": ["r"],
                "terms": {"x": {"spline": {"df": 3}}},
                "interactions": [["x", "r"]],
            },
        ),
        (
            "y ~ ns(x, 3) + x:r",
            {
                "predictors": ["x", "r"],
                "terms": {"x": {"spline": {"df": 3}}},
                "interactions": [["x", "r"]],
            },
        ),
        ("y ~ a + offset(log(e))", {"predictors": ["a"], "exposure": "e"}),
        ("y ~ a + offset(o)", {"predictors": ["a"], "offset": "o"}),
        ("y ~ fixed(a, 0.09) + b", {"predictors": ["a", "b"], "fixed": {"a": 0.09}}),
        ("y ~ fixed(a, -1e-3) + b", {"predictors": ["a", "b"], "fixed": {"a": -0.001}}),
        (
            "y ~ fixed(area, A = 1.2, B = 1.35) + b",
            {"predictors": ["area", "b"], "fixed": {"area": {"A": 1.2, "B": 1.35}}},
        ),
        (
            'y ~ fixed(area, c(A = 1.2, "1" = 1)) + b',
            {"predictors": ["area", "b"], "fixed": {"area": {"A": 1.2, "1": 1.0}}},
        ),
        (
            'y ~ fixed(bands(bm, 60), "[-Inf,60)" = 1, "[60,Inf)" = 0.8) + b',
            {
                "predictors": ["bm", "b"],
                "terms": {"bm": {"bands": [60]}},
                "fixed": {"bm": {"[-Inf,60)": 1.0, "[60,Inf)": 0.8}},
            },
        ),
        ("y ~ âge + x² + x.1 + .a", {"predictors": ["âge", "x²", "x.1", ".a"]}),
        (
            "`claim count` ~ `driver age` + Q('vehicle-group')",
            {"target": "claim count", "predictors": ["driver age", "vehicle-group"]},
        ),
    ],
)
def test_each_piece_of_the_language(formula, fields):
    assert config(formula) == GLMConfig.from_dict({"target": "y", "family": "poisson", **fields})


#: (formula, the piece named, its position (1-based), a fragment of the message)
BAD = [
    ("y ~ a ^ 2", "^", 7, "'^' is not allowed"),
    ("y ~ a / b", "/", 7, "'/' is not allowed"),
    ("y ~ a | g", "|", 7, "'|' is not allowed"),
    ("y ~ a %in% b", "%in%", 7, "'%in%' is not allowed"),
    ("y ~ a:b:c", "a:b:c", 5, "3-way interaction"),
    ("y ~ a * b * c", "a * b * c", 5, "'a:b:c' is a 3-way interaction"),
    ("y ~ a:a", "a:a", 5, "cannot interact with itself"),
    ("y ~ bs(x, 3)", "bs(x, 3)", 5, "bs(...) is not a term"),
    ("y ~ log(x)", "log(x)", 5, "transform the column in the data"),
    ("y ~ I(x^2)", "^2", 8, "'^2' is not allowed"),
    ("~ a", "~", 1, "the target (left of '~') is missing"),
    ("log(y) ~ a", "log(", 1, "the target must be a column"),
    ("y a", "a", 3, "expected '~' after the target"),
    ("y ~ a +", "(the end)", None, "a term is missing"),
    ("y ~", "(the end)", None, "no terms right of '~'"),
    ("y ~ a - b", "b", 9, "only '- 1' may be subtracted"),
    ("y ~ .", ".", 5, "'.' (every other column) is not supported"),
    ("y ~ 2", "2", 5, "a number (2) is not a term"),
    ("y ~ 'a'", "'a'", 5, "a quoted string is not a term"),
    ("y ~ ns(x, 5) + bands(x, 1)", "bands(x, 1)", 16, "'x' enters two ways"),
    ("y ~ ns(x)", "ns(x)", 5, "ns() needs df (ns(x, 5)) or knots"),
    ("y ~ ns(x, 2.5)", "2.5", 11, "df must be a whole number"),
    ("y ~ ns(x, spar = 2)", "2", 18, "ns() takes no argument 'spar'"),
    ("y ~ ns(x, df = 2, df = 3)", "3", 24, "'df' is given twice"),
    ("y ~ ns(x, knots = c(a, b))", "a", 21, "knots must be numbers"),
    ("y ~ ns(x, boundary = c(1))", "c(1)", 22, "boundary is two numbers"),
    ("y ~ ms(x, 4)", "ms(x, 4)", 5, "ms() needs a direction"),
    ("y ~ ms(x, 4, upward)", "upward", 14, "monotone is increasing or decreasing"),
    ("y ~ ns(x, 4, 5)", "5", 14, "ns() takes the column, then df"),
    ("y ~ ns(3)", "3", 8, "ns() needs a column name first"),
    ("y ~ bands(x)", "bands(x)", 5, "bands() needs the cut points"),
    ("y ~ cut(x, c(1, 2), right = TRUE)", "TRUE", 29, "cut() takes right = FALSE only"),
    ("y ~ cut(x, 1, 2)", "2", 15, "cut(x, c(...)) takes its cut points as one vector"),
    ("y ~ C(r, sum)", "sum", 10, "C() takes the column and base="),
    ("y ~ C(r, missing = yes)", "yes", 20, "missing takes one value: level"),
    ("y ~ C(r, groups = c(R01))", "c(R01)", 19, "groups is list(name = c(level"),
    ("y ~ C(r, groups = list(a = c(x), a = c(z)))", "c(z)", 38, "group 'a' is given twice"),
    ("y ~ C(r, base = c(1, 2))", "c(1, 2)", 17, "base must be a level"),
    ("y ~ relevel(r)", "relevel(r)", 5, "relevel(x, ref) takes one reference level"),
    ("y ~ offset(e, o)", "offset(e, o)", 5, "offset() takes one column"),
    ("y ~ offset(exp(e))", "exp(e)", 12, "offset() takes a column, or log(column)"),
    ("y ~ offset(log(e)) + offset(o)", "offset(o)", 22, "a second offset"),
    ("y ~ offset(o):a", "offset(o)", 5, "an offset cannot be in a product"),
    ("y ~ 0:a", "0", 5, "the intercept (0 or 1) cannot be in a product"),
    ("y ~ fixed(a)", "fixed(a)", 5, "fixed() takes the term and a coefficient"),
    ("y ~ fixed(1, 2)", "1", 11, "fixed() needs the term first"),
    ("y ~ fixed(a, c(A = x))", "x", 20, "the relativity of 'A' must be a number"),
    ("y ~ fixed(a, c(1, 2))", "c(1, 2)", 14, "relativities are c(level = value"),
    ("y ~ fixed(a, 1) + fixed(a, 2)", "fixed(a, 2)", 19, "'a' is fixed twice"),
    ("y ~ (a + 1)", "(a + 1)", 5, "write '- 1' or '+ 0' outside parentheses"),
    ("y ~ ns(x, 5", "(the end)", None, "expected ',' or ')' in ns(...)"),
    ("y ~ a + `b", "`b", 9, "an unclosed `"),
    ("y ~ ns(x, [1, 2)", ")", 16, "expected ',' or ']'"),
    ("y ~ ns(x, knots = -a)", "-a", 19, "a sign goes before a number"),
    ("y ~ " + "(" * 60 + "a" + ")" * 60, "(", 45, "parentheses nest deeper than 40 levels"),
    ("y ~ a ~ b", "~", 7, "unexpected '~'"),
    ("y ~ ١٢", "١٢", 5, "'١٢' is not allowed"),
    ("y ~ 1e", "e", 6, "unexpected 'e'"),
    ("y ~ a b", "b", 7, "unexpected 'b'"),
]


@pytest.mark.parametrize(("formula", "piece", "position", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_formula_names_the_field_the_piece_and_its_position(
    formula, piece, position, fragment
):
    with pytest.raises(ConfigError) as info:
        config(formula)
    err = info.value
    message = str(err)
    assert err.fields == ["formula"], message
    assert fragment in message, message
    where = "at the end" if position is None else f"{piece!r} at position {position}"
    assert where in message, message
    assert err.issues[0].value == piece
    assert ALLOWED in message


def test_formula_not_a_string_and_too_long():
    with pytest.raises(ConfigError, match="must be a string such as 'y ~ a \\+ b'; got list"):
        GLMConfig.from_dict({"formula": ["y", "a"]})
    with pytest.raises(ConfigError, match="more than the 100,000 allowed"):
        GLMConfig.from_dict({"formula": "y ~ " + " + ".join(f"x{i}" for i in range(20_000))})


def test_a_formula_too_large_is_refused_quickly():
    """Limits keep parsing bounded: at most 10,000 terms, also after a product's expansion,
    and parentheses at most 40 deep (a recursive parser)."""
    many = "y ~ " + " + ".join(f"x{i}" for i in range(10_001))
    with pytest.raises(ConfigError, match=r"'x10000' at position .*: the formula has more than"):
        parse_formula(many)
    assert len(parse_formula(many.rsplit(" + ", 1)[0])["predictors"]) == 10_000
    a = " + ".join(f"a{i}" for i in range(100))
    b = " + ".join(f"b{i}" for i in range(100))
    with pytest.raises(ConfigError, match="the product expands to 10,200 terms, more than the"):
        parse_formula(f"y ~ ({a}) * ({b})")
    b = " + ".join(f"b{i}" for i in range(50))
    assert len(parse_formula(f"y ~ ({a}) : ({b})")["interactions"]) == 5000


@pytest.mark.parametrize(
    "field", ["target", "predictors", "categorical", "terms", "interactions", "exposure"]
)
def test_a_formula_and_the_fields_it_sets_conflict(field):
    value = {"target": "y", "exposure": "e"}.get(field, [])
    with pytest.raises(ConfigError) as info:
        GLMConfig.from_dict({"formula": "y ~ a", field: value})
    assert info.value.fields == ["formula"]
    assert f"remove [{field!r}] (the formula sets them)" in str(info.value)


def test_fixed_beside_a_formula_without_fixed_terms():
    got = config("y ~ area + b", fixed={"area": {"A": 1.2}})
    assert got.fixed == {"area": {"A": 1.2}}
    with pytest.raises(ConfigError, match=r"remove \['fixed'\]"):
        config("y ~ fixed(area, A = 1) + b", fixed={"area": {"A": 1.2}})


def test_the_structured_checks_apply_to_what_a_formula_spells():
    with pytest.raises(ConfigError) as info:
        config("y ~ fixed(a, 0.1) * b")
    assert info.value.fields == ["fixed.a"]
    assert "is in an interaction" in str(info.value)
    with pytest.raises(ConfigError, match=r"give either df .* or knots .*, not both"):
        config("y ~ ns(x, 3, knots = c(1, 2))")
    with pytest.raises(ConfigError, match="must be <= 30; got 99"):
        config("y ~ ns(x, 99)")
    with pytest.raises(ConfigError, match="'y' cannot also be a predictor"):
        config("y ~ y + a")


# -- the round trip -----------------------------------------------------------------------------
ROUND_TRIP = [
    {"target": "y"},
    {"target": "y", "predictors": ["a"], "fit_intercept": False},
    {
        "target": "claim_count",
        "predictors": ["driver_age", "vehicle_age", "bonus_malus", "area", "region", "brand"],
        "categorical": ["area"],
        "exposure": "exposure",
        "family": "poisson",
        "terms": {
            "driver_age": {"spline": {"df": 5}},
            "vehicle_age": {"spline": {"df": 4, "monotone": "decreasing"}},
            "bonus_malus": {"bands": [60, 80.5, 100, 125], "base": "[80.5,100)"},
            "region": {"groups": {"north": ["R01", "R02", "R03"], "far south": ["7"]}},
            "brand": {"missing": "level", "base": "B 1"},
            "area": {"base": "C"},
        },
        "interactions": [["area", "region"], ["driver_age", "area"]],
    },
    {
        "target": "y",
        "predictors": ["x", "density_log", "area", "my col", "`odd`", "TRUE", "Inf", "."],
        "offset": "o",
        "family": "gamma",
        "terms": {"x": {"spline": {"knots": [1e-3, 2.5, 1e6], "boundary": [-1, 2e6]}}},
        "fixed": {"density_log": 0.09, "area": {"A": 1.2, "B": 1.35, "1": 1.0}},
        "interactions": [["x", "my col"], ["my col", "`odd`"], ["TRUE", "."]],
    },
    {
        "target": "y",
        "predictors": ["bm", "x"],
        "family": "poisson",
        "terms": {
            "bm": {"bands": [60, 80]},
            "x": {"spline": {"knots": [1, 2], "monotone": "increasing"}},
        },
        "fixed": {"bm": {"[-Inf,60)": 1.1, "[60,80)": 1.0, "[80,Inf)": 0.9}},
    },
]


@pytest.mark.parametrize("fields", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
def test_config_to_formula_text_and_back(fields):
    original = GLMConfig.from_dict(fields)
    text = original.formula_text()
    spelled = (*FORMULA_FIELDS, "fixed")
    rest = {k: v for k, v in original.to_dict().items() if k not in spelled}
    again = GLMConfig.from_dict({"formula": text, **rest})
    assert again == original, text
    assert again.formula_text() == text


@pytest.mark.parametrize(
    "formula",
    [
        EXAMPLE,
        "y ~ (a + b) * C(c, base = x) + ms(z, 5, increasing) - 1",
        "y ~ cut(x, c(-Inf, 1, Inf), right = FALSE) + fixed(w, -2) + offset(o)",
        "y ~ levels(r, groups = {n: [1, 2]}, missing = level):ns(x, knots = [1, 2])",
    ],
)
def test_formula_to_config_to_formula_is_stable(formula):
    first = config(formula)
    text = first.formula_text()
    assert config(text) == first
    assert config(text).formula_text() == text


def test_formula_text_examples():
    assert config(EXAMPLE).formula_text() == (
        "claim_count ~ ns(driver_age, 5) + bands(bonus_malus, 60, 80, 100) + area + region"
        " + C(vehicle_group) + area:region + driver_age:area + offset(log(exposure))"
    )
    assert GLMConfig.from_dict({"target": "y"}).formula_text() == "y ~ 1"
    no_intercept = GLMConfig.from_dict({"target": "y", "predictors": ["a"], "fit_intercept": False})
    assert no_intercept.formula_text() == "y ~ a - 1"
    monotone = config("y ~ ns(x, df = 4, monotone = decreasing)")
    assert monotone.formula_text() == "y ~ ms(x, 4, decreasing)"


def test_parsing_a_formula_does_not_import_formulaic_or_glum():
    code = (
        "import sys\n"
        "from smglm.config import GLMConfig\n"
        f"GLMConfig.from_dict({{'formula': {EXAMPLE!r}, 'family': 'poisson'}})\n"
        "print(sorted(m for m in ('formulaic', 'glum', 'pandas', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
