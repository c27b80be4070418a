"""The bad-input table, configs: GLMConfig and JobConfig from a dict, YAML or JSON text and
files, and the checks ``smglm.train`` makes before launch.

Each case ends in a ConfigError or DataError that names the field and says what is allowed
(``expect`` is a fragment of the message), or in a correct accept (``expect=None``: the
config is built and reads the same after the JSON trip to the job). Every case runs under
a time limit: a case that would hang fails. Cases that hung smglm before (YAML alias bombs,
deep nesting) run in a child process with a timeout, since a hang inside C code (``repr`` of
a huge list) does not return to Python to be interrupted.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import smglm
from bad_inputs import Case, ids, time_limit
from smglm.config import GLMConfig, JobConfig
from smglm.config._base import MAX_CONFIG_BYTES
from smglm.errors import ConfigError, DataError

BASE: dict[str, Any] = {"target": "y", "predictors": ["x", "cat"], "family": "poisson"}
#: The seconds a case may take in this process (generous; a hang is minutes).
TIME_LIMIT = 30


def _with(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def _alias_bomb(levels: int = 9, unused: bool = False) -> str:
    """A few hundred bytes of YAML that expand to 9**levels values."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    if unused:  # only unknown fields hold it: the error formatter met it
        return "\n".join(lines) + "\ntarget: y\n"
    return (
        "\n".join(lines[:-1])
        + f"\ntarget: y\npredictors: &a{levels - 1} "
        + (f"[{', '.join([f'*a{levels - 2}'] * 9)}]\n")
    )


def _c(case: str, given: Any, expect: str | None, field: str | None = None, **extra: Any) -> Case:
    return Case(case, "config", given, expect, {"field": field, **extra})


def _yaml(case: str, text: str, expect: str | None, field: str | None = "", **kw: Any) -> Case:
    return _c(case, text, expect, field, via="yaml", **kw)


def _json(case: str, text: str, expect: str | None, field: str | None = "", **kw: Any) -> Case:
    return _c(case, text, expect, field, via="json", **kw)


def _file(
    case: str, name: str, content: bytes | None, expect: str | None, field: str | None = ""
) -> Case:
    return _c(case, content, expect, field, via="file", name=name)


def _job(case: str, given: dict[str, Any], expect: str | None, field: str | None = None) -> Case:
    return _c(case, given, expect, field, model="job")


def _train(case: str, config: dict[str, Any], expect: str, field: str) -> Case:
    return Case(case, "train", config, expect, {"field": field})


def _ml(**changes: Any) -> dict[str, Any]:
    """BASE with a third predictor, for the model language's cases."""
    return {**BASE, "predictors": ["x", "cat", "z"], **changes}


def _spline(**spline: Any) -> dict[str, Any]:
    """``x`` as a spline with these options (base, groups: options of the term)."""
    term = {k: spline.pop(k) for k in ("base", "groups") if k in spline}
    return _ml(terms={"x": {"spline": spline, **term}})


def _bands(cuts: list[Any], fixed: Any = None, **options: Any) -> dict[str, Any]:
    """``x`` in bands with these cut points and options (and ``fixed``, if given)."""
    more = {"fixed": fixed} if fixed is not None else {}
    return _ml(terms={"x": {"bands": cuts, **options}}, **more)


def _search(**search: Any) -> dict[str, Any]:
    return _ml(penalty={"search": search})


def _formula(formula: Any, **changes: Any) -> dict[str, Any]:
    return {"formula": formula, "family": "poisson", **changes}


#: The issue's model, every part of the language at once (valid).
MODEL_LANGUAGE: dict[str, Any] = {
    "predictors": ["x", "cat", "z", "age", "bm", "region", "brand", "density"],
    "exposure": "e",
    "terms": {
        "x": {"spline": {"df": 5}},
        "age": {"spline": {"knots": [25, 35, 50, 65], "boundary": [18, 90]}},
        "z": {"spline": {"df": 4, "monotone": "decreasing"}},
        "bm": {"bands": [60, 80, 100, 125], "base": "[80,100)", "missing": "level"},
        "region": {"groups": {"north": ["R01", "R02", 3]}, "base": "R05"},
        "brand": {"missing": "level"},
    },
    "interactions": [["cat", "region"], ["x", "cat"], ["bm", "x"]],
    "fixed": {"density": 0.09, "brand": {"A": 1.2, "B": 1.35}},
    "penalty": {"search": {"l1_ratio": [0, 0.5, 1], "n_alphas": 20, "cv": {"group": "policy"}}},
    "test": {"by": "year", "holdout": [2025]},
}


CASES: list[Case] = [
    # -- wrong types ---------------------------------------------------------------------
    _c("target-not-string", _with(target=5), "must be a string; got 5", "target"),
    _c("target-missing", {"predictors": ["x"]}, "is required but missing", "target"),
    _c("predictors-not-list", _with(predictors="x"), "must be a list; got 'x'", "predictors"),
    _c("predictor-not-string", _with(predictors=["x", 3]), "must be a string", "predictors[1]"),
    _c("fit-intercept-word", _with(fit_intercept="maybe"), "true or false", "fit_intercept"),
    _c("max-iter-fraction", _with(max_iter=1.5), "must be an integer; got 1.5", "max_iter"),
    _c("max-iter-zero", _with(max_iter=0), "must be > 0", "max_iter"),
    _c("tol-negative", _with(tol=-1e-8), "must be > 0", "tol"),
    _c("tol-nan", _with(tol=math.nan), "finite number", "tol"),
    _c("not-a-mapping", ["target", "y"], "must be a mapping", ""),
    _c("schema-version-2", _with(schema_version=2), "choose one of [1]", "schema_version"),
    _c("missing-policy-typo", _with(missing="skip"), "choose one of ['error', 'drop']", "missing"),
    # -- unknown fields, with a did-you-mean ---------------------------------------------
    _c("unknown-field", _with(predictor=["x"]), "Did you mean 'predictors'?", "predictor"),
    _c("unknown-field-case", _with(Family="gamma"), "Did you mean 'family'?", "Family"),
    _c(
        "unknown-nested-field",
        _with(penalty={"alpha": 1.0, "l1": 0.5}),
        "Did you mean 'l1_ratio'?",
        "penalty.l1",
    ),
    # -- families and links --------------------------------------------------------------
    _c("family-typo", _with(family="poison"), "Did you mean 'poisson'?", "family"),
    _c("family-number", _with(family=1), "is not allowed; choose one of", "family"),
    _c("link-typo", _with(link="lgo"), "Did you mean 'log'?", "link"),
    _c("link-not-of-family", _with(family="gamma", link="logit"), "not a link for", "link"),
    _c("tweedie-power-high", _with(family="tweedie", tweedie_power=2.5), "between 1 and 2"),
    _c("tweedie-power-one", _with(family="tweedie", tweedie_power=1.0), "between 1 and 2"),
    _c("tweedie-power-nan", _with(family="tweedie", tweedie_power=math.nan), "between 1 and 2"),
    _c("tweedie-power-wrong-family", _with(tweedie_power=1.5), "only used with family 'tweedie'"),
    _c("theta-wrong-family", _with(theta=2.0), "only used with family 'negative_binomial'"),
    _c("theta-zero", _with(family="negative_binomial", theta=0), "must be > 0", "theta"),
    # -- penalty -------------------------------------------------------------------------
    _c("alpha-negative", _with(penalty={"alpha": -0.1}), "must be >= 0", "penalty.alpha"),
    _c("alpha-infinite", _with(penalty={"alpha": math.inf}), "finite", "penalty.alpha"),
    _c("l1-ratio-above-one", _with(penalty={"l1_ratio": 1.5}), "<= 1", "penalty.l1_ratio"),
    _c("l1-ratio-negative", _with(penalty={"l1_ratio": -0.5}), ">= 0", "penalty.l1_ratio"),
    _c("l1-ratio-nan", _with(penalty={"l1_ratio": math.nan}), "got nan", "penalty.l1_ratio"),
    # -- test split ----------------------------------------------------------------------
    _c("test-fraction-zero", _with(test={"fraction": 0}), "must be > 0", "test.fraction"),
    _c("test-fraction-one", _with(test={"fraction": 1}), "must be < 1", "test.fraction"),
    _c("test-fraction-nan", _with(test={"fraction": math.nan}), "got nan", "test.fraction"),
    _c("test-seed-negative", _with(test={"seed": -1}), "must be >= 0; got -1", "test.seed"),
    _c("test-seed-huge", _with(test={"seed": 2**40}), "<= 4294967295", "test.seed"),
    _c("test-seed-word", _with(test={"seed": "abc"}), "must be an integer", "test.seed"),
    _c("test-seed-bool", _with(test={"seed": True}), "got True (bool", "test.seed"),
    _c("test-not-mapping", _with(test=0.2), "must be a mapping", "test"),
    # -- bounds --------------------------------------------------------------------------
    _c(
        "bounds-lower-above-upper",
        _with(constraints={"bounds": {"x": [1, 0]}}),
        "lower 1.0 is above upper 0.0",
        "constraints.bounds",
    ),
    _c(
        "bounds-nan",
        _with(constraints={"bounds": {"x": [math.nan, 1]}}),
        "not NaN",
        "constraints.bounds",
    ),
    _c(
        "bounds-not-pair",
        _with(constraints={"bounds": {"x": [1]}}),
        "must be a pair [lower, upper]",
        "constraints.bounds",
    ),
    _c(
        "bounds-word",
        _with(constraints={"bounds": {"x": ["low", 1]}}),
        "must be a number; got 'low'",
        "constraints.bounds.x[0]",
    ),
    _c(
        "bounds-null-null",
        _with(constraints={"bounds": {"x": [None, None]}}),
        "bounds nothing",
        "constraints.bounds",
    ),
    _c(
        "bounds-minus-inf-inf",
        _with(constraints={"bounds": {"x": [-math.inf, math.inf]}}),
        "[-inf, inf] bounds nothing",
        "constraints.bounds",
    ),
    _c(
        "bounds-lower-plus-inf",
        _with(constraints={"bounds": {"x": [math.inf, math.inf]}}),
        "leaves no value",
        "constraints.bounds",
    ),
    _c(
        "bounds-intercept",
        _with(constraints={"bounds": {"intercept": [0, 1]}}),
        "'intercept' cannot be bounded",
        "constraints.bounds",
    ),
    # -- roles of columns ----------------------------------------------------------------
    _c("offset-and-exposure", _with(offset="o", exposure="e"), "not both", "exposure"),
    _c(
        "exposure-identity-link",
        _with(family="gaussian", exposure="e"),
        "needs the log link",
        "exposure",
    ),
    _c("target-as-predictor", _with(predictors=["y", "x"]), "cannot also be a predictor"),
    _c("weights-as-predictor", _with(weights="x"), "also a predictor", "weights"),
    _c("predictor-twice", _with(predictors=["x", "x"]), "listed more than once", "predictors"),
    _c("categorical-not-predictor", _with(categorical=["z"]), "are not predictors", "categorical"),
    _c(
        "no-terms",
        _with(predictors=[], fit_intercept=False),
        "give at least one predictor",
        "predictors",
    ),
    _c(
        "predictor-named-intercept",
        _with(predictors=["x", "intercept"]),
        "column 'intercept' has the name of the intercept's coefficient",
        "predictors",
    ),
    _c(
        "predictor-named-Intercept",
        _with(predictors=["Intercept"]),
        "column 'Intercept' has the name of the intercept",
        "predictors",
    ),
    _c(
        "predictor-like-a-level",
        _with(predictors=["cat", "cat[B]"]),
        "column 'cat[B]' has a bracket in its name",
        "predictors",
    ),
    # -- YAML text -----------------------------------------------------------------------
    _yaml("yaml-syntax", "target: [y", "not valid YAML"),
    _yaml("yaml-tab-indent", "target: y\n\tfamily: poisson", "spaces, not tabs"),
    _yaml(
        "yaml-duplicate-key", "target: y\nfamily: poisson\nfamily: gamma", "'family' is given twice"
    ),
    _yaml("yaml-list", "- target\n- y", "must be a mapping"),
    _yaml("yaml-scalar", "just some text", "must be a mapping"),
    _yaml("yaml-empty", "", "is required but missing", "target"),
    _yaml("yaml-python-tag", "!!python/object/apply:os.system ['true']", "could not determine"),
    _yaml("yaml-huge-integer", "target: y\nmax_iter: 1" + "0" * 5000, "4300 digits"),
    _yaml("yaml-norway-family", "target: y\nfamily: no", "False is not allowed", "family"),
    _yaml("yaml-date-seed", "target: y\ntest: {seed: 2024-01-01}", "integer", "test.seed"),
    _yaml("yaml-alias-bomb", _alias_bomb(), "expands to more than", isolate=True),
    _yaml("yaml-alias-bomb-unused", _alias_bomb(unused=True), "expands to more", isolate=True),
    _yaml("yaml-alias-cycle", "a: &a [*a]\ntarget: y", "a cycle"),
    _yaml("yaml-deep-nesting", "[" * 50_000 + "]" * 50_000, "nests deeper", isolate=True),
    _yaml("yaml-too-large", "target: y\n#" + "x" * MAX_CONFIG_BYTES, "too large"),
    _yaml("yaml-merge-key-unknown", "target: y\nx: &a {b: 1}\n<<: *a", "unknown field 'b'", "b"),
    # -- JSON text -----------------------------------------------------------------------
    _json("json-nan", '{"target": "y", "penalty": {"alpha": NaN}}', "finite", "penalty.alpha"),
    _json("json-duplicate-key", '{"target": "y", "target": "z"}', "'target' is given twice"),
    _json("json-trailing-comma", '{"target": "y",}', "not valid JSON"),
    _json("json-deep-nesting", "[" * 200_000 + "]" * 200_000, "nests deeper", isolate=True),
    _json("json-deep-small", "[" * 2_000 + "]" * 2_000, "nests deeper", isolate=True),
    _json("json-too-large", '{"target": "' + "y" * MAX_CONFIG_BYTES + '"}', "too large"),
    _json("json-array", '["target", "y"]', "must be a mapping"),
    # -- files ---------------------------------------------------------------------------
    _file("file-missing", "absent.yaml", None, "cannot read config file"),
    _file("file-empty-json", "c.json", b"", "not valid JSON"),
    _file("file-too-large", "c.yaml", b"target: y\n#" + b"x" * (2 * MAX_CONFIG_BYTES), "too large"),
    _file("file-not-utf8", "c.yaml", b"target: \xff\xfe y\n", "is not UTF-8 text"),
    _file("file-bomb", "c.yaml", _alias_bomb().encode(), "expands to more than"),
    _file("file-empty-yaml", "c.yaml", b"", "is required but missing", "target"),
    _file("file-yaml-list", "c.yml", b"- a\n", "must be a mapping"),
    # -- JobConfig -----------------------------------------------------------------------
    _job("job-instance-type", {"instance_type": "m5.large"}, "ml.<family>.<size>", "instance_type"),
    _job(
        "job-instance-count",
        {"instance_count": 2},
        "a glum training job runs on one instance; got 2 (more instances need engine: spark)",
        "instance_count",
    ),
    _job(
        "job-instance-count-max",
        {"instance_count": 101, "engine": "spark"},
        "must be <= 100",
        "instance_count",
    ),
    _job("job-engine", {"engine": "sprak"}, "Did you mean 'spark'?", "engine"),
    _job("job-aggregate", {"aggregate": "cell"}, "Did you mean 'cells'?", "aggregate"),
    _job("job-unknown-field", {"instanc_type": "ml.m5.large"}, "Did you mean 'instance_type'?"),
    _job("job-name", {"job_name": "bad_name"}, "not a valid training job name", "job_name"),
    _job("job-output-path", {"output_path": "/tmp/x"}, "s3:// or file:// URI", "output_path"),
    _job("job-max-cost-negative", {"max_cost": -1}, "must be > 0", "max_cost"),
    _job("job-runtime-zero", {"max_runtime_seconds": 0}, "must be >= 1", "max_runtime_seconds"),
    _job("job-tag-number", {"tags": {"team": 1}}, "must be a string", "tags.team"),
    _job("job-volume-huge", {"volume_size_gb": 10**6}, "<= 16384", "volume_size_gb"),
    # -- before launch (smglm.train, the data on this machine) ---------------------------
    _train("train-seed-negative", _with(test={"seed": -1}), ">= 0", "test.seed"),
    _train(
        "train-bounds-unknown-term",
        _with(constraints={"bounds": {"xx": [0, 1]}}),
        "'xx' is not a term of this model",
        "constraints.bounds.xx",
    ),
    _train(
        "train-bounds-unknown-level",
        _with(constraints={"bounds": {"cat[z]": [0, 1]}}),
        "'cat[z]' is not a term",
        "constraints.bounds.cat[z]",
    ),
    _train(
        "train-bounds-reference-level",
        _with(constraints={"bounds": {"cat[a]": [0, 1]}}),
        "is the reference level",
        "constraints.bounds.cat[a]",
    ),
    _train(
        "train-bounds-infinite",
        _with(constraints={"bounds": {"x": [-math.inf, math.inf]}}),
        "bounds nothing",
        "constraints.bounds",
    ),
    # -- correct accepts -----------------------------------------------------------------
    _c("accept-minimal", {"target": "y"}, None),
    _c("accept-full", _with(weights="w", test={"fraction": 0.3, "seed": 7}), None),
    _c("accept-seed-max", _with(test={"seed": 2**32 - 1}), None),
    _c(
        "accept-half-infinite-bounds",
        _with(constraints={"bounds": {"x": [-math.inf, 0.0], "cat": [0.0, math.inf]}}),
        None,
        bounds={"x": (None, 0.0), "cat": (0.0, None)},
    ),
    _c("accept-tweedie", _with(family="tweedie", tweedie_power=1.2), None),
    _c("accept-penalty", _with(penalty={"alpha": 0.1, "l1_ratio": 1.0}), None),
    _yaml("yaml-anchor-unknown-field", "target: y\nx: &p [a, b]\n", "unknown field 'x'", "x"),
    _yaml("accept-yaml-anchors", "target: y\npredictors: &p [x, cat]\ncategorical: *p\n", None),
    _yaml(
        "accept-yaml-10k-predictors",
        "target: y\npredictors: [" + ", ".join(f"p{i}" for i in range(10_000)) + "]\n",
        None,
    ),
    _yaml("accept-yaml-bom", "\ufefftarget: y\npredictors: [x]\n", None),
    _yaml(
        "accept-yaml-inf-bounds",
        "target: y\npredictors: [x]\nconstraints: {bounds: {x: [-.inf, 1]}}",
        None,
        bounds={"x": (None, 1.0)},
    ),
    _json(
        "accept-json-infinity",
        '{"target": "y", "predictors": ["x"], "constraints": {"bounds": {"x": [-Infinity, 0]}}}',
        None,
        bounds={"x": (None, 0.0)},
    ),
    _file("accept-file-bom-json", "c.json", b'\xef\xbb\xbf{"target": "y"}', None),
    _file("accept-file-yaml", "c.yaml", b"target: y\npredictors: [x]\nfamily: gamma\n", None),
    _job("accept-job-defaults", {}, None),
    # -- the model language: terms, interactions, fixed, penalty search, split by column ----
    _c(
        "term-unknown-column", _ml(terms={"q": {"bands": [1]}}), "'q' is not a predictor", "terms.q"
    ),
    _c(
        "interaction-unknown-column",
        _ml(interactions=[["x", "q"]]),
        "'q' is not a predictor",
        "interactions[0]",
    ),
    _c("fixed-unknown-column", _ml(fixed={"q": 0.1}), "'q' is not a predictor", "fixed.q"),
    _c(
        "spline-df-and-knots",
        _spline(df=3, knots=[1, 2]),
        "not both; got df=3 and knots=[1.0, 2.0]",
        "terms.x.spline.df",
    ),
    _c("spline-neither", _spline(), "not neither; got neither", "terms.x.spline.df"),
    _c(
        "spline-knots-not-increasing",
        _spline(knots=[2, 1]),
        "knots must be strictly increasing; got [2.0, 1.0]",
        "terms.x.spline.knots",
    ),
    _c(
        "spline-knots-repeated",
        _spline(knots=[1, 1]),
        "strictly increasing; got [1.0, 1.0]",
        "terms.x.spline.knots",
    ),
    _c(
        "spline-knots-outside-boundary",
        _spline(knots=[1, 5], boundary=[0, 4]),
        "interior knots [1.0, 5.0] must lie strictly inside the boundary [0, 4]",
        "terms.x.spline.knots",
    ),
    _c(
        "spline-knot-on-boundary",
        _spline(knots=[0, 2], boundary=[0, 4]),
        "interior knots [0.0, 2.0] must lie strictly inside",
        "terms.x.spline.knots",
    ),
    _c(
        "spline-knots-nan",
        _spline(knots=[1, math.nan]),
        "knots must be finite numbers; got [1.0, nan]",
        "terms.x.spline.knots",
    ),
    _c("spline-knots-empty", _spline(knots=[]), "interior knot", "terms.x.spline.knots"),
    _c(
        "spline-boundary-reversed",
        _spline(df=3, boundary=[4, 0]),
        "low < high; got (4.0, 0.0)",
        "terms.x.spline.boundary",
    ),
    _c("spline-df-zero", _spline(df=0), "must be >= 1; got 0", "terms.x.spline.df"),
    _c("spline-df-too-large", _spline(df=99), "must be <= 30; got 99", "terms.x.spline.df"),
    _c("spline-df-fraction", _spline(df=2.5), "must be an integer; got 2.5", "terms.x.spline.df"),
    _c(
        "spline-monotone-df-small",
        _spline(df=3, monotone="increasing"),
        "a monotone spline has df >= 4 (a cubic B-spline: df - 3 interior knots); got df=3",
        "terms.x.spline.df",
    ),
    _c(
        "spline-monotone-typo",
        _spline(df=4, monotone="up"),
        "'up' is not allowed; choose one of ['increasing', 'decreasing']",
        "terms.x.spline.monotone",
    ),
    _c(
        "spline-kind-typo",
        _spline(df=4, kind="bs"),
        "'bs' is not allowed; choose one of ['natural']",
        "terms.x.spline.kind",
    ),
    _c(
        "spline-on-categorical",
        _ml(categorical=["x"], terms={"x": {"spline": {"df": 3}}}),
        "'x' is listed under categorical; a spline needs a numeric predictor",
        "terms.x.spline",
    ),
    _c(
        "spline-and-bands",
        _ml(terms={"x": {"spline": {"df": 3}, "bands": [1]}}),
        "a spline or bands, not both; got spline Spline(df=3) and bands [1.0]",
        "terms.x.spline",
    ),
    _c(
        "term-option-typo", _ml(terms={"x": {"band": [1]}}), "Did you mean 'bands'?", "terms.x.band"
    ),
    _c(
        "bands-not-increasing",
        _bands([80, 60]),
        "cut points must be strictly increasing; got [80.0, 60.0]",
        "terms.x.bands",
    ),
    _c("bands-empty", _bands([]), "give at least one cut point", "terms.x.bands"),
    _c(
        "bands-nan",
        _bands([60, math.nan]),
        "cut points must be finite numbers; got [60.0, nan]",
        "terms.x.bands",
    ),
    _c(
        "bands-infinite",
        _bands([60, math.inf]),
        "cut points must be finite numbers; got [60.0, inf]",
        "terms.x.bands",
    ),
    _c("bands-word", _bands([60, "high"]), "must be a number; got 'high'", "terms.x.bands[1]"),
    _c(
        "bands-base-not-a-band",
        _bands([60, 80], base="60"),
        "'60' is not a band (or group) of cut points [60.0, 80.0]; choose one of "
        "['[-Inf,60)', '[60,80)', '[80,Inf)']",
        "terms.x.base",
    ),
    _c(
        "bands-group-not-a-band",
        _bands([60, 80], groups={"young": ["[0,60)"]}),
        "['[0,60)'] are not bands of cut points [60.0, 80.0]",
        "terms.x.groups.young",
    ),
    _c(
        "group-level-in-two-groups",
        _ml(terms={"cat": {"groups": {"g1": ["a", "b"], "g2": ["b", "c"]}}}),
        "level 'b' is in two groups ('g1' and 'g2')",
        "terms.cat.groups.g2",
    ),
    _c(
        "group-empty",
        _ml(terms={"cat": {"groups": {"g1": []}}}),
        "group 'g1' is empty (got [])",
        "terms.cat.groups.g1",
    ),
    _c(
        "group-not-a-list",
        _ml(terms={"cat": {"groups": {"g1": "a"}}}),
        "must be a list; got 'a'",
        "terms.cat.groups.g1",
    ),
    _c(
        "base-on-spline",
        _spline(df=3, base="a"),
        "base applies to levels (categoricals and bands), not to a spline; got base='a'",
        "terms.x.base",
    ),
    _c(
        "groups-on-spline",
        _spline(df=3, groups={"g": ["1"]}),
        "groups applies to levels",
        "terms.x.groups",
    ),
    _c(
        "missing-level-typo",
        _ml(terms={"cat": {"missing": "drop"}}),
        "'drop' is not allowed; choose one of ['level']",
        "terms.cat.missing",
    ),
    _c(
        "interaction-self",
        _ml(interactions=[["x", "x"]]),
        "cannot interact with itself; got [x, x]",
        "interactions[0]",
    ),
    _c(
        "interaction-duplicate",
        _ml(interactions=[["x", "cat"], ["cat", "x"]]),
        "[cat, x] is listed twice",
        "interactions[1]",
    ),
    _c(
        "interaction-triple",
        _ml(interactions=[["x", "cat"], ["x", "cat", "z"]]),
        "a pair of predictors [a, b]; got ['x', 'cat', 'z'] (3 columns) (smglm fits two-way",
        "interactions[1]",
    ),
    _c(
        "interaction-single",
        _ml(interactions=[["x"]]),
        "a pair of predictors [a, b]; got ['x'] (1 column)",
        "interactions[0]",
    ),
    _c("interaction-not-a-list", _ml(interactions="x:cat"), "must be a list", "interactions"),
    _c(
        "fixed-relativity-zero",
        _ml(fixed={"cat": {"a": 1.0, "b": 0.0}}),
        "relativities must be finite and > 0; got {'b': 0.0}",
        "fixed.cat",
    ),
    _c(
        "fixed-relativity-negative",
        _ml(fixed={"cat": {"a": -1.2}}),
        "relativities must be finite and > 0; got {'a': -1.2}",
        "fixed.cat",
    ),
    _c(
        "fixed-relativities-empty",
        _ml(fixed={"cat": {}}),
        "give the relativity of every level; got {}",
        "fixed.cat",
    ),
    _c(
        "fixed-coefficient-nan",
        _ml(fixed={"x": math.nan}),
        "a coefficient must be finite; got nan",
        "fixed.x",
    ),
    _c("fixed-word", _ml(fixed={"x": "high"}), "got 'high'", "fixed.x"),
    _c(
        "fixed-relativities-identity-link",
        _ml(family="gaussian", fixed={"cat": {"a": 1.0, "b": 1.2}}),
        "relativities (level: value) need the log link; got link 'identity'",
        "fixed.cat",
    ),
    _c(
        "fixed-in-interaction",
        _ml(fixed={"x": 0.1}, interactions=[["x", "cat"]]),
        "'x' is in an interaction; a fixed term cannot be",
        "fixed.x",
    ),
    _c(
        "fixed-with-bounds",
        _ml(fixed={"x": 0.1}, constraints={"bounds": {"x": [0, 1]}}),
        "'x' is fixed, so its bounds mean nothing: remove them (constraints.bounds ['x'])",
        "fixed.x",
    ),
    _c(
        "fixed-with-level-bounds",
        _ml(fixed={"cat": {"a": 1.0, "b": 1.1}}, constraints={"bounds": {"cat[b]": [0, 1]}}),
        "(constraints.bounds ['cat[b]'])",
        "fixed.cat",
    ),
    _c(
        "fixed-spline",
        _ml(fixed={"x": 0.1}, terms={"x": {"spline": {"df": 3}}}),
        "'x' has a spline (terms.x.spline), and a spline cannot be fixed",
        "fixed.x",
    ),
    _c(
        "fixed-bands-unknown-band",
        _bands([60], fixed={"x": {"[-Inf,60)": 1.0, "[60,80)": 1.2}}),
        "['[60,80)'] are not bands of 'x' (cut points [60.0])",
        "fixed.x",
    ),
    _c(
        "fixed-everything-no-intercept",
        _ml(predictors=["x"], fit_intercept=False, fixed={"x": 0.1}),
        "every predictor is fixed and there is no intercept: nothing to fit",
        "fixed",
    ),
    _c(
        "search-with-alpha",
        _ml(penalty={"alpha": 0.1, "search": {}}),
        "is chosen by penalty.search; remove alpha (got 0.1)",
        "penalty.alpha",
    ),
    _c(
        "search-with-l1-ratio",
        _ml(penalty={"l1_ratio": 0.5, "search": {"l1_ratio": [0, 1]}}),
        "remove l1_ratio (got 0.5)",
        "penalty.l1_ratio",
    ),
    _c(
        "search-cv-group-and-by",
        _search(cv={"group": "policy", "by": "year"}),
        "not both; got group='policy' and by='year'",
        "penalty.search.cv",
    ),
    _c(
        "search-cv-group-is-target",
        _search(cv={"group": "y"}),
        "'y' is the model's target; folds need another column",
        "penalty.search.cv.group",
    ),
    _c(
        "search-folds-one",
        _search(cv={"folds": 1}),
        "must be >= 2; got 1",
        "penalty.search.cv.folds",
    ),
    _c(
        "search-n-alphas-one", _search(n_alphas=1), "must be >= 2; got 1", "penalty.search.n_alphas"
    ),
    _c(
        "search-l1-ratio-empty",
        _search(l1_ratio=[]),
        "give at least one l1_ratio",
        "penalty.search.l1_ratio",
    ),
    _c(
        "search-l1-ratio-repeated",
        _search(l1_ratio=[0.5, 0.5]),
        "l1_ratio values must differ; got [0.5, 0.5]",
        "penalty.search.l1_ratio",
    ),
    _c(
        "search-l1-ratio-above-one",
        _search(l1_ratio=[0, 1.5]),
        "must be <= 1.0; got 1.5",
        "penalty.search.l1_ratio[1]",
    ),
    _c(
        "search-alphas-zero",
        _search(alphas=[0.1, 0]),
        "must be > 0.0; got 0",
        "penalty.search.alphas[1]",
    ),
    _c(
        "search-rule-typo",
        _search(rule="1-se"),
        "'1-se' is not allowed; choose one of ['min', '1se']",
        "penalty.search.rule",
    ),
    _c(
        "search-option-typo",
        _search(n_alpha=10),
        "Did you mean 'n_alphas'?",
        "penalty.search.n_alpha",
    ),
    _c(
        "test-by-without-holdout",
        _ml(test={"by": "year"}),
        "needs both by (the column) and holdout (its values for testing); got only by='year'",
        "test.by",
    ),
    _c(
        "test-holdout-without-by",
        _ml(test={"holdout": [2025]}),
        "got only holdout=[2025]",
        "test.holdout",
    ),
    _c(
        "test-holdout-empty",
        _ml(test={"by": "year", "holdout": []}),
        "give at least one value to hold out; got []",
        "test.holdout",
    ),
    _c(
        "test-fraction-with-by",
        _ml(test={"by": "year", "holdout": [2025], "fraction": 0.3}),
        "takes no fraction or seed (its holdout values choose the test rows); remove them "
        "(got fraction=0.3, seed=0)",
        "test.fraction",
    ),
    _c(
        "test-by-target",
        _ml(test={"by": "y", "holdout": [1]}),
        "'y' is the target; split by another column",
        "test.by",
    ),
    _c(
        "formula-bad-operator",
        _formula("y ~ x ^ 2"),
        "'^' at position 7 of 'y ~ x ^ 2': '^' is not allowed. Allowed:",
        "formula",
    ),
    _c(
        "formula-triple-interaction",
        _formula("y ~ x:cat:z"),
        "'x:cat:z' at position 5 of 'y ~ x:cat:z': 'x:cat:z' is a 3-way interaction",
        "formula",
    ),
    _c(
        "formula-unknown-function",
        _formula("y ~ poly(x, 2)"),
        "'poly(x, 2)' at position 5 of 'y ~ poly(x, 2)': poly(...) is not a term smglm knows",
        "formula",
    ),
    _c("formula-no-target", _formula("~ x"), "the target (left of '~') is missing", "formula"),
    _c("formula-unfinished", _formula("y ~ x +"), "at the end of 'y ~ x +': a term", "formula"),
    _c(
        "formula-two-ways",
        _formula("y ~ ns(x, 3) + cut(x, c(1, 2))"),
        "'x' enters two ways ('ns(x, 3)' and this)",
        "formula",
    ),
    _c(
        "formula-subtract-a-predictor",
        _formula("y ~ x + cat - cat"),
        "'cat' at position 15 of 'y ~ x + cat - cat': only '- 1' may be subtracted",
        "formula",
    ),
    _c(
        "formula-and-predictors",
        _formula("y ~ x", predictors=["x"]),
        "remove ['predictors'] (the formula sets them)",
        "formula",
    ),
    _c("formula-typo", {"Formula": "y ~ x"}, "Did you mean 'formula'?", "Formula"),
    _c("formula-not-text", _formula(["y", "x"]), "must be a string such as 'y ~ a + b'", "formula"),
    _c(
        "formula-fixed-relativity-zero",
        _formula("y ~ fixed(cat, a = 0) + x"),
        "relativities must be finite and > 0; got {'a': 0.0}",
        "fixed.cat",
    ),
    _yaml(
        "formula-yaml-bad-knots",
        "target: y\nformula: y ~ ns(x, knots = c(30, 20))\n",
        "remove ['target']",
        "formula",
    ),
    _yaml(
        "formula-yaml-knots-not-increasing",
        "formula: y ~ ns(x, knots = c(30, 20))\nfamily: poisson\n",
        "knots must be strictly increasing; got [30.0, 20.0]",
        "terms.x.spline.knots",
    ),
    _c("accept-model-language", _ml(**MODEL_LANGUAGE), None),
    _c("accept-monotone-df-4", _spline(df=4, monotone="decreasing"), None),
    _c(
        "accept-bands-base-and-group",
        _bands([60, 80], base="lo", groups={"lo": ["[-Inf,60)"]}),
        None,
    ),
    _c("accept-fixed-bands", _bands([60], fixed={"x": {"[-Inf,60)": 1.0, "[60,Inf)": 1.2}}), None),
    _yaml(
        "accept-formula",
        "formula: y ~ ns(x, 4) * C(cat) + bands(z, 1, 2) + offset(log(e))\nfamily: poisson\n",
        None,
    ),
    # -- penalty search and the split by a column (the cv helper's cases) -------------------
    _c(
        "search-alphas-and-min-alpha-ratio",
        _with(penalty={"search": {"alphas": [1.0, 0.1], "min_alpha_ratio": 0.001}}),
        "remove min_alpha_ratio",
        "penalty.search.min_alpha_ratio",
    ),
    _c(
        "accept-search-alphas",
        _with(penalty={"search": {"alphas": [1.0, 0.1], "l1_ratio": 0.5, "rule": "1se"}}),
        None,
    ),
    _train(
        "train-forward-folds-too-few-periods",
        _with(penalty={"search": {"cv": {"folds": 3, "by": "cat"}}}),
        "need at least 4 distinct values",
        "penalty.search.cv.folds",
    ),
    _train(
        "train-grouped-folds-too-few-groups",
        _with(penalty={"search": {"cv": {"folds": 4, "group": "cat"}}}),
        "4 folds need at least 4 groups",
        "penalty.search.cv.folds",
    ),
    _train(
        "train-search-bounds-excluding-zero",
        _with(
            penalty={"search": {"l1_ratio": [0, 1]}},
            constraints={"bounds": {"x": [None, -0.5]}},
        ),
        "bounds [null, -0.5] exclude 0",
        "constraints.bounds.x",
    ),
    _train(
        "train-holdout-value-absent",
        _with(test={"by": "cat", "holdout": ["a", "z"]}),
        "value 'z' is not in column 'cat'; its values are ['a', 'b', 'c']",
        "test.holdout",
    ),
    _train(
        "train-holdout-every-row",
        _with(test={"by": "cat", "holdout": ["a", "b", "c"]}),
        "holds out every row",
        "test.holdout",
    ),
]


@pytest.fixture(name="time_limit")
def _time_limit() -> Iterator[None]:
    """Fail a case that runs longer than TIME_LIMIT seconds (a hang, not a slow machine)."""
    with time_limit(TIME_LIMIT):
        yield


def _frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    cat = np.array(["a"] * (n // 2) + ["b"] * (n // 3) + ["c"] * (n - n // 2 - n // 3))
    return pd.DataFrame(
        {
            "y": rng.poisson(1.0, n).astype(float),
            "x": rng.normal(size=n),
            "cat": cat,
            "w": rng.uniform(0.5, 2, n),
        }
    )


def _load(case: Case, tmp_path: Path) -> Any:
    model = JobConfig if case.extra.get("model") == "job" else GLMConfig
    via = case.extra.get("via", "dict")
    if via == "yaml":
        return model.from_yaml(case.given)
    if via == "json":
        return model.from_json(case.given)
    if via == "file":
        path = tmp_path / case.extra["name"]
        if case.given is not None:
            path.write_bytes(case.given)
        return model.from_file(path)
    return model.from_dict(case.given)


def _train_before_launch(case: Case, tmp_path: Path) -> Any:
    from smglm.launch.testing import FakeBackend

    backend = FakeBackend(tmp_path / "home")
    job = smglm.train(case.given, _frame(), backend=backend, tracking=False)
    return job, backend


_CHILD = """
import json, sys
from smglm.config import GLMConfig
from smglm.errors import SmglmError
via, text = sys.argv[1], sys.stdin.read()
try:
    (GLMConfig.from_json if via == "json" else GLMConfig.from_yaml)(text)
except SmglmError as exc:
    out = {"type": type(exc).__name__, "message": str(exc), "fields": getattr(exc, "fields", [])}
else:
    out = {"type": None}
print(json.dumps(out))
"""


def _in_child(case: Case) -> dict[str, Any]:
    """Load the case in a fresh interpreter, killed after a generous timeout: a hang fails."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, case.extra.get("via", "yaml")],
            input=case.given,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case.case}: loading the config did not end within 120 s")
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_config(case: Case, tmp_path: Path, time_limit: None) -> None:
    field = case.extra.get("field")
    if case.extra.get("isolate"):
        out = _in_child(case)
        assert out["type"] in ("ConfigError", "DataError"), out
        assert case.expect in out["message"]
        if field is not None:
            assert field in out["fields"]
        return
    if case.accepted:
        config = _load(case, tmp_path)
        # what the job reads after the JSON upload is the same config
        assert type(config).from_json(config.to_json()) == config
        if "bounds" in case.extra:
            assert config.constraints.bounds == case.extra["bounds"]
        return
    run = _train_before_launch if case.entry == "train" else _load
    with pytest.raises((ConfigError, DataError)) as info:
        run(case, tmp_path)
    message = str(info.value)
    assert case.expect in message, message
    assert "Traceback" not in message
    if field is not None:
        assert field in info.value.fields, (info.value.fields, message)


def test_table_counts() -> None:
    """At least 70 cases over this table and the data table, accepts included."""
    from test_bad_inputs_data import CASES as DATA_CASES

    assert len(CASES) + len(DATA_CASES) >= 70
    assert sum(c.accepted for c in CASES + DATA_CASES) >= 10


def test_train_checks_bounds_before_any_upload(tmp_path: Path) -> None:
    """A bound on a term the data does not have fails before upload and launch: nothing is
    written to the storage and no job is launched."""
    from smglm.launch.testing import FakeBackend

    backend = FakeBackend(tmp_path / "home")
    config = _with(constraints={"bounds": {"driver_age": [None, 0]}})
    with pytest.raises(DataError, match="'driver_age' is not a term of this model"):
        smglm.train(config, _frame(), backend=backend, tracking=False)
    assert not backend.jobs
    assert not any((tmp_path / "home").rglob("*.parquet"))


def test_a_config_too_large_for_the_job_is_refused_before_upload(tmp_path: Path) -> None:
    """Every config accepted here is read by the job: one whose JSON is over the job's limit
    (a YAML list is shorter than the indented JSON sent) is refused before launch."""
    from smglm.launch.inputs import upload_config

    names = [f"predictor_{i:06d}" for i in range(60_000)]
    config = GLMConfig.from_dict({"target": "y", "predictors": names})
    with pytest.raises(ConfigError, match="more than the 1,000,000 bytes a training job reads"):
        upload_config(config, f"file://{tmp_path}/store")
    assert not (tmp_path / "store").exists()


def test_infinite_bounds_read_the_same_in_the_job() -> None:
    """``[-inf, 0]`` is stored as ``[null, 0]``: the config uploaded as JSON and read in the job
    is the config validated here (no ``[null, null]`` surprise)."""
    config = GLMConfig.from_dict(_with(constraints={"bounds": {"x": [-math.inf, 0.0]}}))
    sent = json.loads(config.to_json())
    assert sent["constraints"]["bounds"] == {"x": [None, 0.0]}
    assert GLMConfig.from_dict(sent) == config


def test_user_settings_file_is_read_by_the_bounded_parser(tmp_path, monkeypatch, time_limit):
    """``%sm_config``'s user file goes through the same limits as a config: an alias bomb is
    refused with a clear error naming the file, not expanded."""
    from smglm.notebook.settings import load_settings

    path = tmp_path / "user.yaml"
    path.write_text(_alias_bomb(), encoding="utf-8")
    monkeypatch.setenv("SMGLM_CONFIG_FILE", str(path))
    with pytest.raises(ConfigError, match="expands to more than") as err:
        load_settings(tmp_path)
    assert str(path) in str(err.value)
