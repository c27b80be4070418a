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
    _job("job-instance-count", {"instance_count": 2}, "must be <= 1", "instance_count"),
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
