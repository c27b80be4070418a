"""The widget form: its logic without widgets, then the widgets driven from code (no front end)."""

from __future__ import annotations

from typing import Any

import pytest

from smglm.config import GLMConfig
from smglm.config.families import DEFAULT_LINK, FAMILIES, FAMILY_LINKS
from smglm.datasets import motor
from smglm.notebook import form as make_form
from smglm.notebook import form_logic as logic
from smglm.notebook.cmd.train import parse_body

pytestmark = pytest.mark.usefixtures("fresh_notebook_settings")

#: The form's choices for the launch test: the same model as test_magics' job A (so that, in
#: one session, whichever test runs second reuses the first's job).
EXPECTED = {
    "target": "claim_count",
    "predictors": ["driver_age", "vehicle_power", "area"],
    "exposure": "exposure",
    "family": "poisson",
    "test": {"fraction": 0.2, "seed": 0},
}


@pytest.fixture
def form(shell) -> Any:
    return make_form("df", user_ns=shell.user_ns)


def fill(form: Any) -> None:
    """Choose EXPECTED's model through the widgets, as a user would."""
    form._target.value = "claim_count"
    form._family.value = "poisson"
    form._picker.search.value = "age"
    form._picker.select.value = ("driver_age",)
    form._picker.search.value = "power"
    form._picker.select.value = ("vehicle_power",)
    form._picker.search.value = ""
    form._picker.select.value = (*form._picker.select.value, "area")
    form._offset_kind.value = "exposure"
    form._offset_column.value = "exposure"
    form._test.value = 0.2


# -- logic, no widgets ------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_links_for_family_lists_valid_links_default_first(family):
    links, default = logic.links_for(family)
    assert links == list(FAMILY_LINKS[family])
    assert default == DEFAULT_LINK[family] == links[0]


def test_config_dict_leaves_defaults_out():
    state = logic.FormState(target="y", predictors=("a",)).with_family("gamma")
    assert logic.config_dict(state) == {"target": "y", "predictors": ["a"], "family": "gamma"}
    tweedie = logic.FormState(target="y", bounds=(("a", None, 0.0),)).with_family("tweedie")
    tweedie = logic.FormState(**{**tweedie.__dict__, "predictors": ("a",), "alpha": 0.1})
    assert logic.config_dict(tweedie) == {
        "target": "y",
        "predictors": ["a"],
        "family": "tweedie",
        "tweedie_power": 1.5,
        "penalty": {"alpha": 0.1, "l1_ratio": 0.0},
        "constraints": {"bounds": {"a": [None, 0.0]}},
    }


def test_state_from_config_round_trips_and_keeps_other_fields():
    fields = {**EXPECTED, "link": "identity", "max_iter": 50, "categorical": ["vehicle_power"]}
    fields["offset"] = fields.pop("exposure")
    config = GLMConfig.from_dict(fields)
    state = logic.state_from_config(config)
    assert state.extra == {"max_iter": 50, "categorical": ["vehicle_power"]}
    assert GLMConfig.from_dict(logic.config_dict(state)) == config


def test_check_reports_gamma_target_with_zeros_from_the_data():
    state = logic.FormState(data_ref="df", target="claim_count").with_family("gamma")
    problems = logic.check(state, motor(200))
    assert len(problems) == 1
    assert problems[0].startswith("target: column 'claim_count' has")
    assert "family 'gamma' needs a target > 0" in problems[0]


def test_check_reports_config_problems_naming_the_field():
    state = logic.FormState(data_ref="df", target="claim_count", predictors=("claim_count",))
    state = logic.FormState(**{**state.__dict__, "offset_kind": "exposure"})
    problems = logic.check(state, None)
    assert "exposure: choose the exposure column" in problems
    assert any(
        p.startswith("predictors: the target 'claim_count' cannot also be") for p in problems
    )


def test_cell_text_parses_to_the_same_config():
    state = logic.state_from_config(EXPECTED, data_ref="my frame", job_name="freq-1")
    text = logic.cell_text(state)
    head, body = text.split("\n", 1)
    assert head == (
        "%%sm_train --data 'my frame' --backend local --instance-type ml.m5.xlarge --name freq-1"
    )
    assert parse_body(body) == GLMConfig.from_dict(EXPECTED)


def test_the_spark_engine_choice_shows_what_spark_cannot_fit_and_goes_into_the_cell():
    config = {**EXPECTED, "family": "negative_binomial", "link": "log"}
    state = logic.state_from_config(config, data_ref="df", engine="spark")
    problems = logic.check(state, None)
    assert any(
        p.startswith("family: engine 'spark' cannot fit family 'negative_binomial'")
        for p in problems
    ), problems
    assert not logic.check(logic.state_from_config(config, data_ref="df"), None)  # glum fits it
    head = logic.cell_text(state).split("\n", 1)[0]
    assert "--engine spark" in head
    assert "--engine" not in logic.cell_text(logic.state_from_config(config, data_ref="df"))


def test_the_form_launches_with_its_engine():
    frame = motor(300, seed=4)
    form = make_form(frame)
    form._engine.value = "spark"
    assert form._state().engine == "spark"
    form.reset()
    assert form._state().engine == "glum"


def test_filter_options_matches_every_word():
    options = ["driver_age", "vehicle_age", "area", "driver_count"]
    assert logic.filter_options(options, "driver") == ["driver_age", "driver_count"]
    assert logic.filter_options(options, "AGE driv") == ["driver_age"]
    assert logic.filter_options(options, "") == options


def test_instance_choices_label_vcpu_memory_and_price():
    from smglm.launch.pricing import instance_info

    choices = dict((value, label) for label, value in logic.instance_choices())
    info = instance_info("ml.m5.xlarge")
    assert choices["ml.m5.xlarge"] == f"ml.m5.xlarge ({info.vcpu} vCPU, 16 GiB, ~$0.23/h)"
    assert not any("GPU" in label for label in choices.values())
    assert logic.instance_choices("ml.zz.huge")[0] == ("ml.zz.huge (no price known)", "ml.zz.huge")


# -- widgets -----------------------------------------------------------------------------------
def test_form_lists_numeric_columns_for_target_and_all_for_predictors(form, shell):
    df = shell.user_ns["df"]
    targets = [v for _, v in form._target.options if v]
    assert "claim_count" in targets and "area" not in targets
    form._target.value = "claim_count"
    assert list(form._picker.select.options) == [c for c in df.columns if c != "claim_count"]


def test_form_family_offers_only_its_links_default_selected(form):
    for family in FAMILIES:
        form._family.value = family
        assert list(form._link.options) == list(FAMILY_LINKS[family])
        assert form._link.value == DEFAULT_LINK[family]


def test_form_tweedie_power_shows_only_for_tweedie(form):
    form._family.value = "tweedie"
    assert form._power.layout.display == ""
    form._power.value = 1.7
    assert form.value["tweedie_power"] == 1.7
    form._family.value = "poisson"
    assert form._power.layout.display == "none"
    assert "tweedie_power" not in form.value


def test_form_search_keeps_hidden_selections(form):
    form._target.value = "claim_count"
    form._picker.search.value = "age"
    assert set(form._picker.select.options) == {"driver_age", "vehicle_age", "annual_mileage_k"}
    form._picker.select.value = ("driver_age",)
    form._picker.search.value = "area"
    form._picker.select.value = ("area",)
    assert form.value["predictors"] == ["driver_age", "area"]
    form._picker.search.value = ""
    assert form._picker.select.value == ("driver_age", "area")


def test_form_bounds_editor_sets_and_removes_bounds(form):
    fill(form)
    form._bounds.term.value = "driver_age"
    form._bounds.upper.value = "0"
    form._bounds.add.click()
    assert form.value["constraints"] == {"bounds": {"driver_age": [None, 0.0]}}
    assert "driver_age" in form._bounds.table.value
    form._bounds.lower.value = "abc"
    form._bounds.add.click()
    assert "bounds must be numbers" in form._bounds.table.value
    form._bounds.remove.click()
    assert "constraints" not in form.value


def test_form_invalid_choice_shows_inline_and_disables_launch(form):
    fill(form)
    assert form.problems() == [] and not form._launch.disabled
    form._family.value = "gamma"
    assert form._launch.disabled
    assert "family &#x27;gamma&#x27; needs a target &gt; 0" in form._problems_html.value


def test_form_value_set_from_code_is_not_changed_by_observers(form):
    config = {**EXPECTED, "family": "gamma", "link": "inverse", "target": "claim_amount"}
    config["weights"] = config.pop("exposure")
    form.value = config
    assert form.value == {**config, "predictors": EXPECTED["predictors"]}
    assert form._link.value == "inverse"  # the family observer would have reset it to log


def test_form_reset_restores_the_defaults(form):
    fill(form)
    form.reset()
    assert form.value == {"target": None, "predictors": [], "family": "gaussian"}
    assert form._data_name.value == "df"


def test_form_reads_a_path_and_says_why_data_cannot_be_used(shell, tmp_path):
    path = tmp_path / "motor.parquet"
    motor(100).to_parquet(path)
    form = make_form(str(path), user_ns=shell.user_ns)
    assert form._data_path.value == str(path) and form._data_name.value == ""
    assert "claim_count" in [v for _, v in form._target.options]
    form._data_path.value = str(tmp_path / "missing.csv")
    assert form.problems()[0].startswith(f"data: --data '{tmp_path / 'missing.csv'}' is neither")
    assert form._target.options == (("(choose)", ""),)
    form._data_path.value = "s3://bucket/motor.parquet"
    assert "for 's3://bucket/motor.parquet' write a %%sm_train cell" in form.problems()[0]
    form._data_name.value = "df"
    assert form.problems() == ["target: choose the target column"]


def test_form_takes_a_dataframe_object(shell):
    frame = motor(50)
    form = make_form(frame, user_ns=shell.user_ns)
    assert shell.user_ns["smglm_form_data"] is frame
    assert form._data_name.value == "smglm_form_data"


@pytest.fixture(scope="module")
def launched(shell) -> Any:
    form = make_form("df", user_ns=shell.user_ns)
    fill(form)
    submitted: list[Any] = []
    form.on_submit(submitted.append)
    form._launch.click()
    job = form.wait(timeout=300)
    return form, job, submitted


@pytest.mark.slow
def test_form_launch_runs_the_job_and_shows_report_tabs(launched):
    form, job, submitted = launched
    assert form.value == EXPECTED
    assert submitted == [job]
    assert job.status == "Completed"
    monitor = form._run.children[0]
    assert monitor.error is None
    titles = list(monitor.tabs.titles)
    assert titles[:3] == ["Summary", "Coefficients", "One-way"] and titles[-1] == "Log (last lines)"
    assert monitor.children[1] is monitor.tabs


@pytest.mark.slow
def test_form_insert_cell_writes_the_equivalent_magic(launched, shell):
    form, job, _ = launched
    form._insert.click()
    text = shell.rl_next_input
    assert text.startswith("%%sm_train --data df --backend local --instance-type ml.m5.xlarge\n")
    assert form._cell.value == text
    assert parse_body(text.split("\n", 1)[1]) == GLMConfig.from_dict(form.value)
    result = shell.run_cell(text, store_history=False)
    assert result.error_in_exec is None
    assert result.result.name == job.name  # same config and data: the launched job is reused


def test_form_widgets_have_their_own_layouts():
    """Hiding one field (e.g. the offset column) must not hide the others sharing a layout."""
    import pandas as pd

    from smglm.notebook.glm_form import GLMForm

    form = GLMForm(pd.DataFrame({"y": [1.0, 2.0], "x": [0.1, 0.2]}))
    widgets = [form._target, form._weights, form._offset_column, form._link, form._job_name]
    layouts = [id(wdg.layout) for wdg in widgets]
    assert len(set(layouts)) == len(layouts)
    assert form._target.layout.display != "none"


def test_opening_the_form_starts_the_warm_worker_for_local_jobs(shell, tmp_path, monkeypatch):
    """While the user fills the form, the local backend's worker does its imports, so that
    the first launch is warm too; with the worker off, opening the form starts nothing."""
    import time

    from smglm.launch import warm

    home = tmp_path / "home"
    monkeypatch.setenv("SMGLM_HOME", str(home))
    make_form("df", user_ns=shell.user_ns)
    assert warm.worker_pid(home) is None  # SMGLM_LOCAL_WARM=0 in the suite
    monkeypatch.setenv("SMGLM_LOCAL_WARM", "1")
    make_form("df", user_ns=shell.user_ns)
    deadline = time.monotonic() + 60
    while warm.worker_pid(home) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert warm.worker_pid(home) is not None
    finally:
        assert warm.shutdown_worker(home)
    monkeypatch.setenv("SMGLM_LOCAL_WARM", "yes")  # a bad setting: the form still opens
    assert make_form("df", user_ns=shell.user_ns) is not None


def test_notebook_form_stays_the_function_after_its_module_is_imported():
    """``smglm.notebook.form`` is the function: importing the form's implementation (as the
    function and ``%sm_form`` do) must not rebind the package's name to a module."""
    import importlib

    import smglm.notebook

    importlib.import_module("smglm.notebook.glm_form")
    assert callable(smglm.notebook.form)
    assert smglm.notebook.form.__module__ == "smglm.notebook"
