"""The form's model language: term options (spline, bands, groups, base, missing level,
fixed), interactions and the penalty search, in the logic (no widgets) and the widgets driven
from code; the form writes what it shows and reads back what it wrote."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from smglm.config import GLMConfig
from smglm.notebook import form as make_form
from smglm.notebook import form_logic as logic
from smglm.notebook.cmd.train import parse_body
from smglm.notebook.form_logic import TermOptions

pytestmark = pytest.mark.usefixtures("fresh_notebook_settings")

#: Every part of the model language the form edits, on the motor data's columns.
MODEL: dict[str, Any] = {
    "target": "claim_count",
    "predictors": [
        "driver_age", "vehicle_age", "bonus_malus", "area", "region", "vehicle_brand",
        "density_log", "vehicle_power",
    ],
    "exposure": "exposure",
    "family": "poisson",
    "terms": {
        "driver_age": {"spline": {"df": 5}},
        "vehicle_age": {"spline": {"knots": [3, 6.5, 10], "monotone": "decreasing"}},
        "bonus_malus": {
            "bands": [60, 80, 100],
            "groups": {"high": ["[80,100)", "[100,Inf)"]},
            "base": "[-Inf,60)",
        },
        "region": {"groups": {"north": ["R01", "R02"], "far south": ["R07"]}, "base": "R05"},
        "vehicle_brand": {"missing": "level"},
    },
    "interactions": [["area", "region"], ["driver_age", "area"]],
    "fixed": {"density_log": 0.09, "vehicle_power": 0.01},
    "penalty": {
        "search": {"l1_ratio": [0, 0.5, 1], "n_alphas": 12, "rule": "1se", "cv": {"folds": 4,
                   "group": "policy_id", "seed": 7}}
    },
    "test": {"by": "years_licensed", "holdout": [3, 4]},
}  # fmt: skip


@pytest.fixture
def form(shell) -> Any:
    return make_form("df", user_ns=shell.user_ns)


# -- logic, no widgets ------------------------------------------------------------------------
def test_a_config_with_every_term_type_round_trips_through_the_form_state():
    config = GLMConfig.from_dict(MODEL)
    state = logic.state_from_config(config)
    assert state.term("driver_age") == TermOptions(kind="spline", df=5)
    assert state.term("vehicle_age") == TermOptions(
        kind="spline", knots="3, 6.5, 10", monotone="decreasing"
    )
    assert state.term("bonus_malus") == TermOptions(
        kind="bands", bands="60, 80, 100", groups="high: [80,100), [100,Inf)", base="[-Inf,60)"
    )
    assert state.term("region").groups == "north: R01, R02; far south: R07"
    assert state.term("density_log") == TermOptions(fixed="0.09")
    assert state.interactions == (("area", "region"), ("driver_age", "area"))
    assert state.search and state.search_fold_kind == "group"
    assert state.search_rest == {"rule": "1se", "cv": {"seed": 7}}
    assert state.extra == {"test": {"by": "years_licensed", "holdout": [3, 4]}}
    assert GLMConfig.from_dict(logic.config_dict(state)) == config
    body = logic.cell_text(replace(state, data_ref="df")).split("\n", 1)[1]
    assert parse_body(body) == config
    assert "formula" not in body  # the structured form is what the cell holds


def test_a_config_from_a_formula_loads_into_the_form_as_its_structure():
    config = GLMConfig.from_dict(
        {
            "formula": "claim_count ~ ns(driver_age, 4) + bands(bonus_malus, 60, 80) "
            "+ area * C(region, base = R05) + fixed(density_log, 0.1) + offset(log(exposure))",
            "family": "poisson",
        }
    )
    state = logic.state_from_config(config)
    assert state.offset_kind == "exposure" and state.offset_column == "exposure"
    assert state.term("region") == TermOptions(base="R05")
    assert state.extra == {"categorical": ["region"]}
    assert GLMConfig.from_dict(logic.config_dict(state)) == config


def test_options_of_predictors_not_chosen_are_left_out():
    state = logic.FormState(
        target="y",
        predictors=("a",),
        terms=(("a", TermOptions(kind="bands", bands="1, 2")), ("b", TermOptions(fixed="1"))),
        interactions=(("a", "b"),),
    )
    assert logic.config_dict(state) == {
        "target": "y",
        "predictors": ["a"],
        "family": "gaussian",
        "terms": {"a": {"bands": [1, 2]}},
    }


def test_hidden_options_of_a_spline_are_not_written():
    """Groups typed for bands, then the kind switched to spline: the spline is written alone."""
    options = TermOptions(kind="spline", df=4, groups="a: x", base="x", bands="1")
    assert options.spec("x") == ({"spline": {"df": 4}}, [])


@pytest.mark.parametrize(
    ("text", "numbers"),
    [("60, 80, 100", [60, 80, 100]), ("60 80.5;1e3", [60, 80.5, 1000]), ("", []), ("-1", [-1])],
)
def test_parse_numbers(text, numbers):
    assert logic.parse_numbers(text, "f") == (numbers, [])
    assert logic.parse_numbers(logic.numbers_text(numbers), "f") == (numbers, [])


def test_text_boxes_say_what_is_wrong_naming_the_field():
    assert logic.parse_numbers("60, abc", "terms.x.bands")[1] == [
        "terms.x.bands: ['abc'] is not a number in '60, abc'; write numbers separated by "
        "commas, e.g. 60, 80, 100"
    ]
    assert logic.parse_groups("north R01", "terms.r.groups")[1] == [
        "terms.r.groups: 'north R01' is not 'group: level, level'; write e.g. north: R01, R02; "
        "south: R04"
    ]
    assert "group 'a' is given twice" in logic.parse_groups("a: 1; a: 2", "g")[1][0]
    assert logic.parse_fixed("A: 1.2, B", "fixed.area")[1] == [
        "fixed.area: 'B' in 'A: 1.2, B' is not 'level: relativity'; write a coefficient (0.09) "
        "or relativities (A: 1.2, B: 1.35)"
    ]


def test_groups_and_fixed_text_keep_band_labels_whole():
    groups = {"low": ["[-Inf,60)", "[60,80)"], "far south": ["R 7"]}
    text = logic.groups_text(groups)
    assert text == "low: [-Inf,60), [60,80); far south: R 7"
    assert logic.parse_groups(text, "g") == (groups, [])
    fixed = {"[-Inf,60)": 1.1, "[60,Inf)": 0.95}
    assert logic.parse_fixed(logic.fixed_text(fixed), "f") == (fixed, [])
    assert logic.parse_fixed("A=1.2; B = 1.35", "f") == ({"A": 1.2, "B": 1.35}, [])
    assert logic.parse_fixed(" -0.5 ", "f") == (-0.5, [])


def test_check_shows_text_and_config_problems_of_terms():
    state = logic.state_from_config(
        {"target": "claim_count", "predictors": ["bonus_malus", "area"], "family": "poisson"},
        data_ref="df",
    )
    state = replace(
        state,
        terms=(
            ("bonus_malus", TermOptions(kind="bands", bands="80, 60")),
            ("area", TermOptions(fixed="A: 1.2, B")),
        ),
    )
    problems = logic.check(state, None)
    assert "fixed.area: 'B' in 'A: 1.2, B' is not 'level: relativity'" in problems[0]
    assert (
        "terms.bonus_malus.bands: cut points must be strictly increasing; got [80.0, 60.0]"
        in problems
    )


def test_level_choices_are_the_data_levels_or_the_bands():
    from smglm.datasets import motor

    frame = motor(500)
    areas = logic.level_choices(frame, "area", TermOptions())
    assert areas == sorted(frame["area"].astype(str).unique())
    grouped = logic.level_choices(frame, "area", TermOptions(groups="AB: A, B", missing_level=True))
    assert grouped[-2:] == ["AB", "(missing)"] and "A" not in grouped
    bands = logic.level_choices(frame, "bonus_malus", TermOptions(kind="bands", bands="60, 80"))
    assert bands == ["[-Inf,60)", "[60,80)", "[80,Inf)"]
    assert logic.level_choices(frame, "x", TermOptions(kind="bands", bands="80, 60")) == []
    assert logic.level_choices(frame, "policy_id", TermOptions(), limit=10) == []


# -- widgets -----------------------------------------------------------------------------------
def choose(form: Any, *predictors: str) -> None:
    form._target.value = "claim_count"
    form._family.value = "poisson"
    form._picker.select.value = predictors
    form._offset_kind.value = "exposure"
    form._offset_column.value = "exposure"


def set_term(form: Any, column: str, **boxes: Any) -> None:
    """Pick ``column`` in the term editor and type into its boxes, as a user would."""
    editor = form._terms
    editor.column.value = column
    for name, value in boxes.items():
        getattr(editor, name).value = value


def test_form_term_editor_writes_the_terms_the_table_lists(form):
    choose(form, "driver_age", "bonus_malus", "area", "region", "density_log")
    set_term(form, "driver_age", kind="spline", df=5)
    set_term(form, "bonus_malus", kind="bands", bands="60, 80, 100")
    set_term(form, "region", groups="north: R01, R02", base="R05", missing=True)
    set_term(form, "density_log", fixed="0.09")
    assert form.value["terms"] == {
        "driver_age": {"spline": {"df": 5}},
        "bonus_malus": {"bands": [60, 80, 100]},
        "region": {"groups": {"north": ["R01", "R02"]}, "base": "R05", "missing": "level"},
    }
    assert form.value["fixed"] == {"density_log": 0.09}
    table = form._terms.table.value
    assert "spline, df 5" in table and "bands 60, 80, 100" in table and "fixed 0.09" in table
    assert form.problems() == [] and not form._launch.disabled
    assert (
        "<code>claim_count ~ ns(driver_age, 5) + bands(bonus_malus, 60, 80, 100) + "
        "fixed(density_log, 0.09) + area + levels(region, base = &quot;R05&quot;, groups = "
        "list(north = c(&quot;R01&quot;, &quot;R02&quot;)), missing = level) + "
        "offset(log(exposure))</code>"
    ) in form._formula_html.value
    # the boxes show the chosen predictor's options; a spline hides the level options
    form._terms.column.value = "driver_age"
    assert form._terms.df.value == 5 and form._terms.levels_row.layout.display == "none"
    form._terms.column.value = "region"
    assert form._terms.groups.value == "north: R01, R02"
    assert form._terms.spline_row.layout.display == "none"
    assert "north" in form._terms.base.options and "R01" not in form._terms.base.options
    form._terms.column.value = "bonus_malus"
    assert form._terms.base.options == ("[-Inf,60)", "[60,80)", "[80,100)", "[100,Inf)")
    form._terms.clear.click()
    assert "bonus_malus" not in form.value["terms"]


def test_form_insert_cell_writes_the_term_options_in_the_structured_form(form, shell):
    choose(form, "driver_age", "vehicle_age", "area", "region")
    set_term(form, "driver_age", kind="spline", df=4)
    set_term(form, "vehicle_age", kind="spline", knots="3, 6, 10", monotone="decreasing")
    form._interactions.first.value = "area"
    form._interactions.second.value = "region"
    form._interactions.add.click()
    text = form.insert_cell()
    assert shell.rl_next_input == text
    body = text.split("\n", 1)[1]
    assert "    spline:\n      knots: [3, 6, 10]\n      monotone: decreasing\n" in body
    assert "- [area, region]" in body
    assert parse_body(body) == GLMConfig.from_dict(form.value)


def test_form_interactions_picker_adds_and_removes_pairs(form):
    choose(form, "driver_age", "area", "region")
    picker = form._interactions
    assert list(picker.first.options) == ["driver_age", "area", "region"]
    for a, b in [("area", "region"), ("driver_age", "area"), ("area", "region")]:
        picker.first.value, picker.second.value = a, b
        picker.add.click()
    assert form.value["interactions"] == [["area", "region"], ["driver_age", "area"]]
    picker.first.value = picker.second.value = "area"
    picker.add.click()  # a self interaction: the form shows the config's error
    assert form.problems() == [
        "interactions[2]: a predictor cannot interact with itself; got [area, area] (a spline "
        "gives a curve)"
    ]
    assert form._launch.disabled
    picker.listed.value = ("area", "area")
    picker.remove.click()
    assert form.problems() == []
    form._picker.select.value = ("driver_age", "area")  # region no longer chosen
    assert form.value["interactions"] == [["driver_age", "area"]]
    assert [v for _, v in picker.listed.options] == [("driver_age", "area")]


def test_form_penalty_search_toggle(form):
    choose(form, "driver_age", "area")
    form._alpha.value = 0.1
    search = form._search
    assert search.details.layout.display == "none"
    search.on.value = True
    assert search.details.layout.display == "" and form._alpha.layout.display == "none"
    assert search.fold_column.layout.display == "none"
    search.l1_ratio.value = "0, 0.5, 1"
    search.n_alphas.value = 10
    search.folds.value = 3
    search.fold_kind.value = "group"
    assert search.fold_column.layout.display == ""
    search.fold_column.value = "policy_id"
    assert form.value["penalty"] == {
        "search": {
            "l1_ratio": [0, 0.5, 1],
            "n_alphas": 10,
            "cv": {"folds": 3, "group": "policy_id"},
        }
    }
    assert form.problems() == []
    search.l1_ratio.value = "0, 2"
    assert "penalty.search.l1_ratio[1]: must be <= 1.0; got 2" in form.problems()
    search.l1_ratio.value = "0, x"
    assert form.problems()[0].startswith("penalty.search.l1_ratio: ['x'] is not a number")
    search.on.value = False
    assert form.value["penalty"] == {"alpha": 0.1, "l1_ratio": 0.0}


def test_form_shows_term_problems_inline(form):
    choose(form, "bonus_malus", "area")
    set_term(form, "bonus_malus", kind="bands", bands="80, 60")
    assert form._launch.disabled
    assert "cut points must be strictly increasing; got [80.0, 60.0]" in form._problems_html.value
    set_term(form, "bonus_malus", kind="spline", df=0)
    assert any("give either df" in p for p in form.problems())
    set_term(form, "bonus_malus", df=3)
    assert form.problems() == []


def test_form_value_set_to_a_config_with_terms_reads_back_equal(form):
    form.value = MODEL
    assert GLMConfig.from_dict(form.value) == GLMConfig.from_dict(MODEL)
    assert form._search.on.value and form._search.fold_column.value == "policy_id"
    assert [v for _, v in form._interactions.listed.options] == [
        ("area", "region"),
        ("driver_age", "area"),
    ]
    form._terms.column.value = "vehicle_age"
    assert form._terms.kind.value == "spline" and form._terms.knots.value == "3, 6.5, 10"
    assert form._terms.monotone.value == "decreasing"
    body = form.cell_text().split("\n", 1)[1]
    assert parse_body(body) == GLMConfig.from_dict(MODEL)
