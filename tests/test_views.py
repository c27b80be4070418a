"""The report views of jobs and fitted models, checked on their content: labels, bins, numbers."""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import smglm
from smglm.datasets import motor
from smglm.glm.fitting import split_train_test
from smglm.glm.report import Report, report
from smglm.glm.report.render import fmt, significance_color
from smglm.launch import Job
from smglm.launch.storage import pack_dir
from smglm.launch.testing import FakeBackend
from smglm.notebook import live

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "area"],
    "exposure": "exposure",
    "family": "poisson",
    "test": {"fraction": 0.25, "seed": 3},
}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return motor(3000, seed=5)


@pytest.fixture(scope="module")
def fitted(data):
    return smglm.fit(CONFIG, data)


@pytest.fixture(scope="module")
def rep(fitted, data, tmp_path_factory) -> Report:
    return report(fitted, data=data, out=tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def splits(data):
    return split_train_test(data, 0.25, 3)


def test_report_fit_has_every_section(rep):
    keys = [s.key for s in rep.sections]
    assert keys == [
        "summary",
        "coefficients",
        "one_way",
        "levels",
        "lift",
        "lorenz",
        "balance",
        "residuals",
        "convergence",
    ]
    assert set(rep.splits) == {"train", "test"}


def test_report_metrics_equal_fit_metrics(rep, fitted):
    frame = rep.metrics
    for split in ("train", "test"):
        for name, value in fitted.metrics[split].items():
            assert frame.loc[name, split] == value
    html = rep.section("summary").html
    assert f"<td style='text-align:right'>{fmt(fitted.metrics['test']['deviance'])}</td>" in html


def test_report_balance_equals_sums_of_actual_and_predicted(rep, fitted, splits):
    for name, df in zip(("train", "test"), splits, strict=True):
        actual = float(df["claim_count"].sum())
        predicted = float(np.sum(fitted.predict(df)))
        balance = rep.splits[name].data.balance
        assert balance["sum_actual"] == pytest.approx(actual, rel=1e-12)
        assert balance["sum_predicted"] == pytest.approx(predicted, rel=1e-9)
        assert rep.metrics.loc["actual / predicted", name] == pytest.approx(actual / predicted)
    # a canonical-link GLM with an intercept reproduces the total on its training data
    assert rep.splits["train"].data.balance["ratio"] == pytest.approx(1.0, abs=1e-6)


def test_report_coefficients_show_base_levels_with_relativity_one(rep, fitted):
    coefs = rep.coefficients
    term = next(t for t in fitted.model.terms if t.name == "area")
    base = coefs[coefs["base"]]
    assert base["term"].tolist() == [f"area[{term.reference}]"]
    assert base["relativity"].tolist() == [1.0]
    assert base["estimate"].tolist() == [0.0]
    levels = coefs[coefs["column"] == "area"]["level"].tolist()
    assert sorted(levels) == sorted(term.levels)
    assert len(coefs) == len(fitted.coefficients) + 1


def test_report_relativities_are_exp_of_estimates_and_ci(rep, fitted):
    coefs = rep.coefficients.set_index("term")
    table = fitted.coefficients.set_index("term")
    for term, row in table.iterrows():
        assert coefs.loc[term, "relativity"] == pytest.approx(math.exp(row["estimate"]), rel=1e-12)
        assert coefs.loc[term, "relativity_lower"] == pytest.approx(math.exp(row["ci_lower"]))
        assert coefs.loc[term, "relativity_upper"] == pytest.approx(math.exp(row["ci_upper"]))


def test_report_coefficients_shaded_by_p_value(rep, fitted):
    html = rep.section("coefficients").html
    for row in fitted.coefficients.itertuples():
        color = significance_color(row.p_value)
        match = re.search(
            rf"<tr( style='background:([^']*)')?><td[^>]*>{re.escape(row.term)}<", html
        )
        assert match is not None, row.term
        assert match.group(2) == color
    assert "(base)" in html


def test_report_one_way_bins_match_the_data(rep, splits):
    train, _ = splits
    table = rep.splits["train"].data.one_ways["area"]
    expected = train.groupby("area", observed=True)["exposure"].sum()
    assert table["bin"].tolist() == [str(b) for b in expected.index]
    np.testing.assert_allclose(table["exposure"], expected.to_numpy(), rtol=1e-12)
    assert table["actual"].sum() == train["claim_count"].sum()
    ages = rep.splits["train"].data.one_ways["driver_age"]["bin"].tolist()
    assert ages[0].startswith("[18,") and ages[-1].endswith("]")
    html = rep.section("one_way").html
    # one pill and one figure (train and test side by side) per predictor
    pills = re.findall(r"<label class='smglm-pill' for='[^']*' title='[^']*'>([^<]*)</label>", html)
    assert pills == ["driver_age", "area"]
    assert html.count("data:image/png;base64,") == 2
    assert html.count("<figure class='smglm-figure'>") == 2
    assert "alt='area: actual vs predicted'" in html
    assert "<figcaption>area: Train (left) and test (right)" in html
    text = rep.section("one_way").text
    assert "area (train):" in text and ages[0] in text


def test_report_key_metrics_are_the_metrics_json_figures(rep, fitted):
    key = rep.key_metrics
    assert key.index.tolist() == ["deviance explained", "Gini", "AIC", "actual / expected", "n_obs"]
    assert key.columns.tolist() == ["train", "test"]
    for split in ("train", "test"):
        m = fitted.metrics[split]
        assert key.loc["deviance explained", split] == m["explained_deviance"]
        assert key.loc["Gini", split] == m["gini"]
        assert key.loc["AIC", split] == m["aic"]
        assert key.loc["n_obs", split] == m["n_obs"]
        ratio = rep.splits[split].data.balance["ratio"]
        assert key.loc["actual / expected", split] == ratio
    # the summary shows them once, compact; the full list is one click away (closed)
    html = rep.section("summary").html
    compact = html.split("<details")[0]
    assert "smglm-key-metrics" in compact and "null_deviance" not in compact
    assert "<details class='smglm-all-metrics'><summary>All metrics</summary>" in html
    assert "null_deviance" in html.split("smglm-all-metrics")[1]
    text = rep.section("summary").text
    assert text.splitlines()[0].split() == ["metric", "train", "test"]
    assert len(text.splitlines()) == 1 + len(key)  # the compact table only
    assert "null_deviance" not in rep.to_text() and "Gini" in rep.to_text()


def _ids(page: str) -> tuple[list[str], list[str]]:
    return re.findall(r" id='([^']*)'", page), re.findall(r" for='([^']*)'", page)


def test_report_html_tabs_pills_and_ids_are_unique_per_display(rep):
    first, second = rep.to_html(), rep.to_html()
    ids, targets = _ids(first)
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(targets)
    # one tab per section, then one pill per term of each term view
    assert len(re.findall("<label class='smglm-tab'", first)) == len(rep.sections)
    assert len(re.findall("<label class='smglm-pill'", first)) == 2 + 1  # one-ways, levels
    # the first tab and the first pill of each group are the ones shown
    checked = re.findall(r"<input type='radio' [^>]*checked/>", first)
    assert len(checked) == 3
    # a second display (or a second report) gets other ids: no clash in one page
    assert not set(ids) & set(_ids(second)[0])
    assert re.sub(r"smglm-[0-9a-f]{12}", "ID", first) == re.sub(r"smglm-[0-9a-f]{12}", "ID", second)
    # every figure is a <figure> with its image and a short caption under it
    figures = re.findall(r"<figure class='smglm-figure'>(.*?)</figure>", first)
    assert len(figures) == first.count("data:image/png;base64,") > 10
    for body in figures:
        assert re.fullmatch(r"<img [^>]*/><figcaption>[^<]{20,400}</figcaption>", body), body[:80]
    assert "<style>" in first and ".smglm-report label.smglm-tab" in first


def test_report_figures_are_drawn_once(fitted, data, monkeypatch, tmp_path):
    from matplotlib.figure import Figure

    drawn: list[int] = []
    savefig = Figure.savefig

    def counting(fig: Any, *args: Any, **kwargs: Any) -> Any:
        drawn.append(1)
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", counting)
    fresh = report(fitted, data=data)
    text = fresh.to_text()
    assert drawn == [] and "-- One-way --" in text  # building it and its text draw nothing
    page = fresh.to_html()
    assert len(drawn) == page.count("data:image/png;base64,") > 10
    count = len(drawn)
    fresh.to_html()
    fresh._repr_mimebundle_()
    fresh.save(tmp_path / "again.html")
    assert len(drawn) == count  # shown again, saved: nothing drawn again


def test_report_one_way_of_one_split_says_so(data):
    cfg = {k: v for k, v in CONFIG.items() if k != "test"}
    train_only = report(smglm.fit(cfg, data), data=data)
    assert set(train_only.splits) == {"train"}
    html = train_only.section("one_way").html
    assert html.count("<figure class='smglm-figure'>") == 2
    assert "<figcaption>area: Train: actual (blue)" in html and "(right)" not in html


def test_report_lorenz_gini_equals_metrics(rep, fitted):
    for split in ("train", "test"):
        assert rep.splits[split].data.gini == pytest.approx(fitted.metrics[split]["gini"], abs=1e-9)
    html = rep.section("lorenz").html
    assert f"Gini {fmt(rep.splits['train'].data.gini, 4)}" in html


def test_report_lift_has_ten_equal_exposure_bins(rep):
    lift = rep.splits["train"].data.lift
    assert lift["bin"].tolist() == list(range(1, 11))
    np.testing.assert_allclose(lift["exposure"], lift["exposure"].iloc[0], rtol=1e-9)
    assert "lift (train)" in rep.section("lift").html


def test_report_convergence_lists_each_iteration(rep, fitted):
    text = rep.section("convergence").text
    assert len(text.splitlines()) == len(fitted.convergence) + 1


def test_report_has_text_and_html_mimebundle(rep, fitted):
    bundle = rep._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert "-- Coefficients --" in bundle["text/plain"]
    summary = bundle["text/plain"].split("-- Coefficients --")[0]
    assert fmt(fitted.metrics["train"]["gini"], 4) in summary  # the compact table: 4 digits
    assert "<div class='smglm-coefficients'>" in bundle["text/html"]
    tabs = re.findall(r"<label class='smglm-tab' [^>]*>([^<]*)</label>", bundle["text/html"])
    assert tabs == [html.escape(s.title) for s in rep.sections]
    assert repr(rep).startswith("Report('GLM poisson/log: claim_count ~ driver_age + area'")


def test_report_widget_has_one_tab_per_section(rep):
    tab = rep.widget()
    assert list(tab.titles) == [s.title for s in rep.sections]
    # the first tab is filled; another when it is first selected (its figures drawn then)
    pages = tab.children
    assert "smglm-key-metrics" in pages[0].value and "<style>" in pages[0].value
    one_way = [s.key for s in rep.sections].index("one_way")
    assert pages[one_way].value == ""
    tab.selected_index = one_way
    assert pages[one_way].value.count("<figure class='smglm-figure'>") == 2


def test_report_save_writes_html_and_text(rep, tmp_path):
    out = rep.save(tmp_path / "saved")
    assert (out / "report.html").read_text().count("data:image/png") >= 10
    assert "-- Balance --" in (out / "report.txt").read_text()


def test_report_save_to_an_html_file_writes_that_one_page(rep, tmp_path):
    out = rep.save(tmp_path / "shared" / "model.html")
    assert out == tmp_path / "shared" / "model.html"
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.html"]
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>")
    assert "<style>" in page and "label.smglm-tab" in page  # its own styles
    assert page.count("data:image/png;base64,") >= 10  # the figures inside
    # nothing loaded from elsewhere: no script, no external source or stylesheet
    assert "<script" not in page
    assert not re.search(r"(src|href)=['\"](?!data:)", page)


def test_report_figures_are_matplotlib_figures(rep):
    figures = rep.figures()
    assert {"train/one_way_area", "test/lift", "train/lorenz", "convergence"} <= set(figures)
    assert type(figures["train/lift"]).__name__ == "Figure"


def test_report_fit_without_data_has_metrics_coefficients_and_convergence(fitted):
    keys = [s.key for s in report(fitted).sections]
    assert keys == ["summary", "coefficients", "convergence"]


def test_report_identity_link_has_no_relativities(data):
    cfg = {"target": "claim_count", "predictors": ["area"], "family": "gaussian"}
    rep = report(smglm.fit(cfg, data.head(500)))
    assert "relativity" not in rep.coefficients.columns
    assert "relativity" not in rep.section("coefficients").html


def test_report_rejects_other_objects():
    with pytest.raises(TypeError, match="takes a FitResult; got int"):
        report(3)


# -- a job's report, through a fake backend (the Backend seam) ---------------------------------
def fake_backend(home: Path, state: dict[str, Any], log: list[str]) -> FakeBackend:
    """A backend whose one job, ``fake-job``, ended as ``state`` says."""
    backend = FakeBackend(home)
    backend.add_job("fake-job", state, log=log)
    return backend


def _state(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": "fake-job",
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "CreationTime": "2026-01-02T03:04:05+00:00",
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
        **extra,
    }


@pytest.fixture(scope="module")
def fake_job(fitted, rep, tmp_path_factory) -> Job:
    output_dir = next(iter(rep.splits.values())).folder.parent
    return _completed_job(fitted, output_dir, tmp_path_factory.mktemp("fakejob"))


def _completed_job(fitted: Any, output_dir: Path, root: Path) -> Job:
    """A completed fake job whose artifacts are ``fitted``'s model and ``output_dir``."""
    model_dir = fitted.save(root / "model")
    model_tar = pack_dir(model_dir, root / "store" / "model.tar.gz")
    output_tar = pack_dir(output_dir, root / "store" / "output.tar.gz")
    state = _state(
        "Completed",
        BillableTimeInSeconds=12,
        ModelArtifacts={"S3ModelArtifacts": f"file://{model_tar}"},
        OutputArtifacts={"S3OutputArtifacts": f"file://{output_tar}"},
    )
    log = [f"line {i}" for i in range(60)]
    return Job("fake-job", fake_backend(root / "home", state, log))


def test_report_job_has_status_log_and_the_model_report(fake_job, fitted):
    rep = fake_job.report()
    assert [s.key for s in rep.sections][-1] == "log"
    assert rep.section("log").text.splitlines() == [f"line {i}" for i in range(20, 60)]
    summary = rep.section("summary").text
    assert "fake-job" in summary and "Completed (Completed)" in summary
    assert "billable seconds  12" in summary
    assert rep.metrics.loc["deviance", "test"] == fitted.metrics["test"]["deviance"]
    assert rep.splits["train"].folder is not None  # the job's own PNGs are used


def _layout(page: str) -> str:
    """A report's HTML without what changes between two displays: ids and the PNG bytes."""
    page = re.sub(r"smglm-[0-9a-f]{12}", "ID", page)
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "PNG", page)


def test_report_job_without_pngs_looks_the_same(fake_job, fitted, rep, tmp_path):
    import shutil

    output_dir = next(iter(rep.splits.values())).folder.parent
    bare = shutil.copytree(output_dir, tmp_path / "output")
    pngs = list(bare.rglob("*.png"))
    assert len(pngs) > 10
    for png in pngs:
        png.unlink()
    without = _completed_job(fitted, bare, tmp_path / "job").report()
    with_pngs = fake_job.report()
    assert with_pngs.splits["train"].folder is not None
    assert without.to_text() == with_pngs.to_text()
    page = without.to_html()
    assert page.count("data:image/png;base64,") == with_pngs.to_html().count("data:image/png")
    # the same page, image by image shown at the same size (drawn at another resolution)
    assert _layout(page) == _layout(with_pngs.to_html())


def test_report_job_with_pngs_draws_nothing(fake_job, monkeypatch):
    from matplotlib.figure import Figure

    drawn: list[int] = []
    monkeypatch.setattr(Figure, "savefig", lambda *a, **k: drawn.append(1))
    page = fake_job.report().to_html()
    assert page.count("<figure class='smglm-figure'>") > 10
    assert drawn == []  # every figure, the train/test one-ways too, is the job's PNG


def test_report_failed_job_shows_reason_and_log_only(tmp_path):
    state = _state("Failed", FailureReason="AlgorithmError: target: column 'y' is missing")
    job = Job("fake-job", fake_backend(tmp_path, state, ["boom"]))
    rep = job.report()
    assert [s.key for s in rep.sections] == ["summary", "log"]
    reason = "AlgorithmError: target: column 'y' is missing"
    assert html.escape(reason) in rep.to_html() and reason in rep.to_text()
    assert rep.result is None and rep.metrics is None


def test_job_bundle_completed_holds_status_and_report(fake_job):
    bundle = live.job_bundle(fake_job)
    # the status line (the fake backend runs here: not remote, so it costs nothing), then
    # the report (a remote job's price and cost: test_panel.py)
    assert bundle["text/html"].startswith(
        "<div class='smglm-panel smglm-status-line' data-status='Completed'"
    )
    assert "<div class='smglm-coefficients'>" in bundle["text/html"]
    first = bundle["text/plain"].splitlines()[0]
    assert first.startswith("✓ Completed in ") and " · $0 · " in first


def test_job_bundle_running_shows_steps_and_log_tail(tmp_path):
    state = _state(
        "InProgress",
        SecondaryStatus="Training",
        SecondaryStatusTransitions=[{"Status": "Starting"}, {"Status": "Downloading"}],
    )
    job = Job("fake-job", fake_backend(tmp_path, state, [f"step {i}" for i in range(20)]))
    bundle = live.job_bundle(job)
    html = bundle["text/html"]
    assert html.startswith("<div class='smglm-panel' data-status='InProgress'")
    assert "✓ Downloading" in html and "● Training" in html and "○ Uploading" in html
    assert "step 19" in html and "step 11" not in html  # the last 8 lines, in a closed area
    assert "<details class='smglm-log'>" in html
    assert "<details open" not in html  # no report before the job completes
    assert "● Training" in bundle["text/plain"] and "step 19" in bundle["text/plain"]


class ScriptedJob:
    """A job whose states follow a script, one per describe()."""

    name = "scripted"

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.calls = 0

    def describe(self) -> dict[str, Any]:
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        if status == "error":
            raise OSError("unreachable")
        return _state(status, SecondaryStatus=status)

    def logs(self) -> str:
        return "log"

    def _repr_html_(self) -> str:
        return "<b>job</b>"

    def __repr__(self) -> str:
        return "ScriptedJob()"


def test_follow_updates_on_change_until_the_job_ends():
    job = ScriptedJob(["InProgress", "InProgress", "error", "InProgress", "Failed"])
    shown: list[str] = []
    status = live.follow(job, lambda b, raw: shown.append(b["text/html"]), sleep=lambda s: None)
    assert status == "Failed"
    assert len(shown) == 2  # InProgress once (unchanged polls and an error show nothing), Failed


def test_follow_gives_up_after_repeated_errors():
    job = ScriptedJob(["error"])
    assert live.follow(job, lambda b, raw: None, max_errors=3, sleep=lambda s: None) is None
    assert job.calls == 3


def test_follow_polls_at_the_backends_pace(tmp_path):
    from smglm.launch.local import LocalBackend

    job = ScriptedJob(["InProgress", "InProgress", "Completed"])
    pauses: list[float] = []
    live.follow(job, lambda b, raw: None, sleep=pauses.append)
    assert pauses == [1.0, 1.0]  # no backend: once a second
    job = ScriptedJob(["InProgress", "Completed"])
    job.backend = LocalBackend(tmp_path, warm=False)  # type: ignore[attr-defined]
    pauses.clear()
    live.follow(job, lambda b, raw: None, sleep=pauses.append)
    assert pauses == [0.25]  # local: its state is a file here, but not more than 4 times a second
    assert live.poll_interval(job) == 0.25
