"""The report package's seams: one registry of figures read by every consumer, and the two
entry points (in process from a FitResult, and from a job's folder) giving the same report."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest

import smglm
from smglm.datasets import motor
from smglm.glm.report import FIGURES, FigureItem, FigureSpec, load, register_figure, report
from smglm.glm.report.figures import figure_files, plot_lift
from smglm.glm.report.scoring import amounts, scored_from_fit
from smglm.runtime.report_files import write_reports

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "area"],
    "exposure": "exposure",
    "family": "poisson",
    "test": {"fraction": 0.25, "seed": 3},
}


#: The term views of terms that CONFIG's model lacks (no spline, interaction, time split or
#: penalty search); tests/test_report_terms.py draws them from a model that has them.
ABSENT_TERM_VIEWS = {"splines", "interactions", "consistency", "search"}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return motor(2000, seed=7)


@pytest.fixture(scope="module")
def fitted(data):
    return smglm.fit(CONFIG, data, keep_fitted=True)


def _lift_twice(d):
    """A toy figure: the lift table again, under another stem."""
    if d.lift is None:
        return []
    return [FigureItem("lift_again", "", d.lift, partial(plot_lift, d.lift))]


@pytest.fixture
def toy_figure():
    spec = FigureSpec("lift_again", "Lift again", "The lift, twice.", _lift_twice)
    register_figure(spec)
    yield spec
    FIGURES.remove(spec)


def test_a_registered_figure_reaches_sections_figures_and_job_files(fitted, data, toy_figure,
                                                                    tmp_path):  # fmt: skip
    rep = fitted.report(data)
    assert "lift_again" in [s.key for s in rep.sections]
    assert toy_figure.caption in rep.section("lift_again").html
    assert {"train/lift_again", "test/lift_again"} <= set(rep.figures())
    scored = scored_from_fit(fitted, "train")
    files = write_reports(fitted.config, [(scored, tmp_path / "train", None)])
    assert "lift_again.png" in {p.name for p in files["train"]}


def test_every_registered_figure_has_a_section_and_a_file(fitted, data, tmp_path):
    rep = fitted.report(data, out=tmp_path)
    keys = [s.key for s in rep.sections]
    written = {p.name for p in (tmp_path / "train").iterdir()}
    for spec in FIGURES:
        if spec.key in ABSENT_TERM_VIEWS:  # the model has no such term: no section, no file
            assert spec.key not in keys, spec.key
            continue
        assert spec.key in keys, spec.key
        stems = [stem.name for stem, _ in figure_files(rep.splits["train"].data, tmp_path)]
        assert stems and set(stems) <= written, spec.key


def test_in_process_report_writes_nothing_without_out(fitted, data):
    rep = fitted.report(data)
    assert all(split.folder is None for split in rep.splits.values())
    assert set(rep.splits) == {"train", "test"}


def test_loaded_report_equals_the_in_process_one(fitted, data, tmp_path):
    built = fitted.report(data, out=tmp_path / "output")
    fitted.save(tmp_path / "model")
    loaded = load(tmp_path, title="job")
    for name in ("train", "test"):
        a, b = built.splits[name].data, loaded.splits[name].data
        pd.testing.assert_frame_equal(a.lift, b.lift, rtol=1e-12)
        pd.testing.assert_frame_equal(a.one_ways["area"], b.one_ways["area"], rtol=1e-12)
        assert a.gini == pytest.approx(b.gini, rel=1e-12)
    assert [s.key for s in loaded.sections] == [s.key for s in built.sections]


def test_load_without_a_folder_is_the_summary_and_log_only():
    rep = load(None, title="t", job_state={"TrainingJobStatus": "Failed"}, log="boom")
    assert [s.key for s in rep.sections] == ["summary", "log"]


def test_amounts_convention_is_weighted_and_drops_zero_weights():
    y = np.array([1.0, 0.0, 2.0])
    mu = np.array([0.5, 0.2, 1.0])
    w = np.array([2.0, 0.0, 1.0])
    e = np.array([0.5, 1.0, 2.0])
    a, p, x = amounts(y, mu, w, e)
    np.testing.assert_array_equal(a, [2.0, 2.0])
    np.testing.assert_array_equal(p, [1.0, 1.0])
    np.testing.assert_array_equal(x, [1.0, 2.0])
    np.testing.assert_array_equal(amounts(y, mu, w, None)[2], [2.0, 1.0])


def test_report_rejects_what_is_not_a_fit():
    with pytest.raises(TypeError, match="takes a FitResult; got str"):
        report("model.json")  # type: ignore[arg-type]
