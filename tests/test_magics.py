"""The magics, driven through a real IPython shell (errors re-raised) with the local backend."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from smglm.datasets import motor
from smglm.errors import ConfigError
from smglm.glm.fitting import split_train_test
from smglm.glm.report import Report
from smglm.launch import Job
from smglm.notebook import live
from smglm.notebook.cmd.common import resolve_data
from smglm.notebook.cmd.compare import Comparison, compare
from smglm.notebook.cmd.jobs import JobsTable
from smglm.notebook.settings import Settings, reset_session

pytestmark = pytest.mark.usefixtures("fresh_notebook_settings")

CONFIG_A = """\
target: claim_count
predictors: [driver_age, vehicle_power, area]
exposure: exposure
family: poisson
test: {fraction: 0.2, seed: 0}
"""
CONFIG_B = CONFIG_A.replace("driver_age, vehicle_power, area", "driver_age, area")
LINE_MAGICS = [
    "sm_jobs",
    "sm_logs",
    "sm_stop",
    "sm_show",
    "sm_compare",
    "sm_config",
    "sm_form",
    "sm_explore",
]


def run(shell: InteractiveShell, code: str) -> Any:
    """Run a cell; re-raise what it raised (as jupysql's TestingShell); return its value."""
    result = shell.run_cell(code, store_history=False)
    if result.error_before_exec is not None:
        raise result.error_before_exec
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


@pytest.fixture(scope="module")
def jobs(shell) -> SimpleNamespace:
    """Job A started with --no-wait, then job B with the default --wait (both run at once)."""
    job_a = run(shell, "%%sm_train --data df --no-wait --new -o job_a\n" + CONFIG_A)
    status_at_return = job_a.status
    printed = io.StringIO()
    with redirect_stdout(printed):
        job_b = run(shell, "%%sm_train --data df --new -o job_b\n" + CONFIG_B)
    job_a.wait(logs=False, timeout=300)
    return SimpleNamespace(a=job_a, b=job_b, status=status_at_return, printed=printed)


def test_load_ext_registers_every_magic(shell):
    magics = shell.magics_manager.magics
    assert set(LINE_MAGICS) <= set(magics["line"])
    assert "sm_train" in magics["cell"]


@pytest.mark.parametrize(
    ("kind", "name"), [("cell", "sm_train")] + [("line", m) for m in LINE_MAGICS]
)
def test_magic_every_flag_has_help(shell, kind, name):
    parser = shell.magics_manager.magics[kind][name].parser
    actions = [a for a in parser._actions if a.dest != "help"]
    assert actions
    assert all(a.help for a in actions), [a.dest for a in actions if not a.help]


@pytest.mark.slow
def test_sm_train_no_wait_returns_at_once(jobs):
    assert jobs.status == "InProgress"
    assert jobs.a.status == "Completed"


@pytest.mark.slow
def test_sm_train_waits_by_default_and_prints_statuses(jobs, shell):
    assert jobs.b.status == "Completed"
    text = jobs.printed.getvalue()
    assert f"[{jobs.b.name}] Completed - Completed" in text  # outside a kernel: the steps
    assert (
        "✓ Completed in " in text
        and f"test Gini {jobs.b.model.metrics['test']['gini']:.3f}" in text
    )
    before, _, report = text.partition(f"Training job {jobs.b.name}\n")
    assert "train:deviance=" not in before  # the log is not streamed into the cell
    assert "-- Coefficients --" in report and "✓" not in report  # then the report, once
    assert shell.user_ns["job_b"] is jobs.b


@pytest.mark.slow
def test_sm_train_quiet_and_verbose(jobs, shell):
    printed = io.StringIO()
    with redirect_stdout(printed):
        quiet = run(shell, "%%sm_train --data df --new --quiet\n" + CONFIG_B)
    text = printed.getvalue()
    assert quiet.status == "Completed"
    assert "✓ Completed in " in text and "Completed - Completed" not in text
    assert "train:deviance=" not in text.partition("Training job ")[0]
    printed = io.StringIO()
    with redirect_stdout(printed):
        loud = run(shell, "%%sm_train --data df --new --verbose\n" + CONFIG_B)
    text = printed.getvalue()
    assert loud.status == "Completed"
    assert f"[{loud.name}] Completed - Completed" in text
    assert "train:deviance=" in text  # the whole log, streamed as it came


@pytest.mark.slow
def test_sm_config_verbosity_is_the_cells_default(jobs, shell):
    run(shell, "%sm_config verbosity=quiet")
    printed = io.StringIO()
    try:
        with redirect_stdout(printed):
            job = run(shell, "%%sm_train --data df --new\n" + CONFIG_B)
    finally:
        run(shell, "%sm_config --unset verbosity")
    assert job.status == "Completed"
    text = printed.getvalue()
    assert "✓ Completed in " in text and "Completed - Completed" not in text
    with pytest.raises(
        UsageError, match=r"verbosity: must be one of \['quiet', 'normal', 'verbose'\]; got 'loud'"
    ):
        run(shell, "%sm_config verbosity=loud")


@pytest.mark.slow
def test_sm_train_reuses_a_completed_identical_job(jobs, shell, capsys):
    again = run(shell, "%%sm_train --data df\n" + CONFIG_A)
    assert again.name == jobs.a.name and again.reused
    assert f"reusing completed job {jobs.a.name}" in capsys.readouterr().out


@pytest.mark.slow
def test_sm_train_result_displays_status_and_report(jobs, shell):
    assert shell.display_formatter.ipython_display_formatter.lookup(jobs.a) is live.display_job
    bundle = live.job_bundle(jobs.a)
    assert bundle["text/plain"].startswith("✓ Completed in ")  # the status line, then the report
    assert "-- Coefficients --" in bundle["text/plain"]
    assert bundle["text/html"].startswith("<div class='smglm-panel smglm-status-line'")
    assert "<div class='smglm-one_way'>" in bundle["text/html"]
    # after the cell showed the panel, the job's value is the report only
    report = live.job_bundle(jobs.a, report_only=True)
    assert "smglm-status-line" not in report["text/html"] and "✓" not in report["text/plain"]
    assert "<div class='smglm-one_way'>" in report["text/html"]


BAD_CELLS = {
    "--data df\ntarget: claim_count\nfamily: poison\n": (
        r"family: 'poison' is not allowed.*Did you mean 'poisson'"
    ),
    "--data dff\ntarget: claim_count\n": r"--data 'dff' is neither a variable.*Did you mean 'df'",
    "--data df\ntarget: claim_count\nfamily: gamma\n": (
        r"target: column 'claim_count' has \d+ value\(s\) <= 0"
    ),
    "--data df --instance-count 2\ntarget: claim_count\n": (
        r"instance_count: a glum training job runs on one instance; got 2"
    ),
    "--data df --engine spark\ntarget: claim_count\nfamily: negative_binomial\n": (
        r"family: engine 'spark' cannot fit family 'negative_binomial'"
    ),
    "--data df --aggregate cells\ntarget: claim_count\npredictors: [driver_age]\n": (
        r"aggregate: aggregate 'cells' needs every estimated term categorical or banded"
    ),
    "--data df --instance-type big\ntarget: claim_count\n": (
        r"instance_type: 'big' is not a SageMaker instance type"
    ),
    "--data df\ntarget: claim_count\npredictors: [driver_agee]\n": (
        r"predictors: column 'driver_agee' is not in the data"
    ),
    "--data df --bogus\ntarget: claim_count\n": r"unrecognized arguments: --bogus",
    "\ntarget: claim_count\n": r"data: --data is required",
    "--data df -o 2x\ntarget: claim_count\n": r"-o: '2x' is not a Python variable name",
    "--data df\n  - not a mapping\n": r"a GLMConfig must be a mapping",
}


@pytest.mark.parametrize(("cell", "message"), BAD_CELLS.items())
def test_sm_train_invalid_input_is_one_usage_error(shell, cell, message):
    before = len(shell.user_ns)
    with pytest.raises(UsageError, match=message):
        run(shell, "%%sm_train " + cell)
    assert len(shell.user_ns) == before


@pytest.mark.slow
def test_sm_train_failed_job_is_a_usage_error_with_the_reason(shell, tmp_path):
    # a file:// URI is not checked before the launch: the runtime finds the problem
    path = tmp_path / "no-target.parquet"
    shell.user_ns["df"].drop(columns=["claim_count"]).to_parquet(path)
    with pytest.raises(UsageError, match=r"training job '.*' failed: .*claim_count"):
        run(shell, f"%%sm_train --data file://{path} --new -o job_f\n" + CONFIG_B)
    job = shell.user_ns["job_f"]  # stored before waiting, for job_f.logs()
    assert job.status == "Failed" and "claim_count" in job.failure_reason


def test_resolve_data_accepts_names_paths_and_uris(tmp_path):
    frame = motor(10)
    path = tmp_path / "d.parquet"
    frame.to_parquet(path)
    ns = {"frame": frame, "where": str(path)}
    assert resolve_data("frame", ns) is frame
    assert resolve_data(f"'{path}'", ns) == str(path)
    assert resolve_data("where", ns) == str(path)
    assert resolve_data("s3://bucket/key/", ns) == "s3://bucket/key/"


@pytest.mark.slow
def test_sm_jobs_wide_lists_jobs_with_status_and_metrics(jobs, shell):
    table = run(shell, "%sm_jobs --wide")
    assert isinstance(table, JobsTable)
    rows = {r[0]: r for r in table.rows}
    row = rows[jobs.a.name]
    assert row[1:3] == ["Completed", "Completed"]
    metrics = jobs.a.model.metrics
    assert row[5] == pytest.approx(metrics["train"]["deviance"], rel=1e-12)
    assert row[8] == pytest.approx(metrics["test"]["gini"], rel=1e-12)
    html = table.to_html()
    assert jobs.b.name in html and "train:gini" in html
    assert jobs.b.name in table.to_text()


@pytest.mark.slow
def test_sm_jobs_compact_table_marks_the_best_completed_job(jobs, shell):
    table = run(shell, "%sm_jobs")
    assert isinstance(table, JobsTable) and not table.wide
    assert table.headers == ["", "job", "status", "family", "terms", "test Gini", "cost", "age"]
    rows = {r[1]: r for r in table.rows}
    for job, terms in (
        (jobs.a, "driver_age + vehicle_power + area"),
        (jobs.b, "driver_age + area"),
    ):
        row = rows[job.name]
        assert row[2:5] == ["Completed", "poisson", terms]
        assert row[5] == pytest.approx(job.model.metrics["test"]["gini"], rel=1e-12)
        assert row[6] == "local"
        assert row[7].endswith((" s", " min"))
    # the best: the highest test Gini among the listed completed jobs with the same target
    # as the newest completed one (B's: claim_count)
    listed = [
        (r[5], r[1])
        for r, f in zip(table.rows, table.facts, strict=True)
        if r[2] == "Completed" and r[5] is not None and f.target == "claim_count"
    ]
    best = max(listed)[1]
    assert table.best == best and rows[best][0] == "★"
    assert [r[1] for r in table.rows if r[0] == "★"] == [best]
    better = max((jobs.a, jobs.b), key=lambda j: j.model.metrics["test"]["gini"])
    assert rows[better.name][5] <= rows[best][5]
    text = table.to_text()
    assert f"★ {best}: the best test Gini among the completed jobs with target claim_count" in text
    assert "font-weight:bold" in table.to_html() and "test Gini" in table.to_html()


@pytest.mark.slow
def test_sm_logs_prints_the_log(jobs, shell, capsys):
    run(shell, "%sm_logs job_a")
    assert "train:deviance=" in capsys.readouterr().out
    run(shell, f"%sm_logs {jobs.b.name} --tail 2")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == jobs.b.logs().splitlines()[-2:]


def test_sm_logs_unknown_job_names_it(shell):
    with pytest.raises(UsageError, match="no local training job named 'nope'"):
        run(shell, "%sm_logs nope")


@pytest.mark.slow
def test_sm_show_returns_the_report(jobs, shell):
    rep = run(shell, "%sm_show job_b")
    assert isinstance(rep, Report)
    assert rep.section("log").text
    assert rep.metrics.loc["gini", "test"] == jobs.b.model.metrics["test"]["gini"]


@pytest.mark.slow
def test_sm_stop_stops_a_running_job(shell, capsys):
    job = run(shell, "%%sm_train --data df --no-wait --new -o job_c\n" + CONFIG_B)
    run(shell, "%sm_stop job_c")
    assert f"stop requested for job {job.name}" in capsys.readouterr().out
    job.wait(logs=False, raise_on_failure=False, timeout=120)
    assert job.status == "Stopped"
    run(shell, "%sm_stop job_c")
    assert "has already ended (Stopped)" in capsys.readouterr().out


@pytest.fixture(scope="module")
def comparison(jobs, shell) -> Comparison:
    return run(shell, "%sm_compare job_a job_b")


@pytest.mark.slow
def test_sm_compare_metrics_side_by_side(jobs, comparison):
    for job in (jobs.a, jobs.b):
        for split in ("train", "test"):
            expected = job.model.metrics[split]["deviance"]
            assert comparison.metrics.loc["deviance", f"{job.name}:{split}"] == expected


@pytest.mark.slow
def test_sm_compare_relativities_side_by_side(jobs, comparison):
    coefs = comparison.coefficients
    assert comparison.coefficient_kind == "relativity"
    for job in (jobs.a, jobs.b):
        table = job.model.coefficients.set_index("term")
        np.testing.assert_allclose(
            coefs.loc[table.index, job.name], np.exp(table["estimate"]), rtol=1e-12
        )
    assert np.isnan(coefs.loc["vehicle_power", jobs.b.name])  # not in model B
    base = [
        t
        for t in coefs.index
        if t.startswith("area[") and t not in jobs.a.model.coefficients["term"].tolist()
    ]
    assert coefs.loc[base].to_numpy().tolist() == [[1.0, 1.0]]


@pytest.mark.slow
def test_sm_compare_one_ways_score_both_models_on_the_test_split(jobs, comparison, shell):
    assert set(comparison.one_ways) == {"driver_age", "area"}  # the shared predictors
    _, test = split_train_test(shell.user_ns["df"], 0.2, 0)
    table = comparison.one_ways["area"].set_index("bin")
    exposure = test.groupby("area", observed=True)["exposure"].sum()
    np.testing.assert_allclose(
        table.loc[exposure.index.astype(str), "exposure"], exposure, rtol=1e-12
    )
    for job in (jobs.a, jobs.b):
        predicted = test.assign(p=job.model.predict(test)).groupby("area", observed=True)["p"].sum()
        np.testing.assert_allclose(
            table.loc[predicted.index.astype(str), f"predicted_rate {job.name}"],
            predicted / exposure,
            rtol=1e-9,
        )
    assert comparison.data_label == f"the test split of {jobs.a.name}"


@pytest.mark.slow
def test_sm_compare_nested_test_of_b_in_a(jobs, comparison):
    from smglm.glm.compare import nested_test

    test = comparison.nested[(jobs.a.name, jobs.b.name)]
    assert not isinstance(test, str)
    assert (test.small, test.big) == (jobs.b.name, jobs.a.name)
    ma, mb = jobs.a.model.metrics["train"], jobs.b.model.metrics["train"]
    assert test.test == "chi2" and test.delta_df == 1 and test.dispersion == 1.0
    assert test.delta_deviance == pytest.approx(mb["deviance"] - ma["deviance"], rel=1e-12)
    assert test.delta_aic == pytest.approx(ma["aic"] - mb["aic"], rel=1e-12)
    assert test == nested_test(jobs.b.model, jobs.a.model, names=(jobs.b.name, jobs.a.name))
    line = f"{jobs.a.name} vs {jobs.b.name} (adds 1 coefficient; training rows): Δdeviance"
    assert "-- Nested-model test --" in comparison.to_text() and line in comparison.to_text()
    assert "<h4>Nested-model test</h4>" in comparison.to_html()
    assert f"χ²(1) = {test.statistic:.4g}, p = {test.p_value:.3g}" in comparison.to_text()


@pytest.mark.slow
def test_sm_compare_test_gini_with_bootstrap_intervals(jobs, comparison):
    assert comparison.bootstrap == 200 and set(comparison.ginis) == {jobs.a.name, jobs.b.name}
    for job in (jobs.a, jobs.b):
        interval = comparison.ginis[job.name]
        assert interval.n == 200 and interval.low < interval.gini < interval.high
    # scored on job A's test split: its Gini is A's test Gini
    own = comparison.ginis[jobs.a.name].gini
    assert own == pytest.approx(jobs.a.model.metrics["test"]["gini"], rel=1e-9)
    table = comparison.gini_table
    assert list(table.columns) == ["gini", "low", "high"]
    title = f"Gini on the test split of {jobs.a.name}, 95% bootstrap interval (200 resamples"
    assert title in comparison.to_text() and title in comparison.to_html()
    # the paired difference: both models scored on the same resampled rows
    ga, gb = comparison.ginis[jobs.a.name], comparison.ginis[jobs.b.name]
    diff = comparison.gini_difference
    assert diff.gini == pytest.approx(ga.gini - gb.gini, abs=1e-15)
    np.testing.assert_array_equal(diff.replicates, ga.replicates - gb.replicates)
    assert diff.low < diff.gini < diff.high
    line = f"Gini {jobs.a.name} - {jobs.b.name}: {diff.gini:+.4f} [{diff.low:+.4f}, "
    assert line in comparison.to_text() and "smglm-gini-difference" in comparison.to_html()


@pytest.mark.slow
def test_sm_compare_not_nested_says_why_and_bootstrap_option(jobs, shell):
    cell = CONFIG_A.replace("driver_age, vehicle_power, area", "driver_age, region")
    other = run(shell, "%%sm_train --data df --new -o job_n\n" + cell)
    assert other.status == "Completed"
    out = run(shell, "%sm_compare job_a job_n --bootstrap 0")
    reason = out.nested[(jobs.a.name, other.name)]
    assert reason == (
        "not nested: neither model's terms contain the other's "
        f"({jobs.a.name} has area, vehicle_power that {other.name} lacks; {other.name} has "
        f"region that {jobs.a.name} lacks)"
    )
    assert f"{other.name} vs {jobs.a.name}: {reason}" in out.to_text()
    assert all(g.n == 0 for g in out.ginis.values()) and out.gini_difference is None
    assert "bootstrap" not in out.to_text() and f"Gini on the test split of {jobs.a.name}" in (
        out.to_text()
    )
    again = run(shell, "%sm_compare job_a job_b --bootstrap 20")
    assert {g.n for g in again.ginis.values()} == {20}
    with pytest.raises(UsageError, match="--bootstrap: invalid int value"):
        run(shell, "%sm_compare job_a job_b --bootstrap many")


def test_sm_compare_negative_bootstrap_is_an_error():
    with pytest.raises(ConfigError, match=r"bootstrap: the number of resamples must be an "):
        compare([SimpleNamespace(), SimpleNamespace()], bootstrap=-1)  # type: ignore[list-item]


@pytest.mark.slow
def test_sm_compare_double_lift_of_the_first_two(jobs, comparison, shell):
    _, test = split_train_test(shell.user_ns["df"], 0.2, 0)
    dl = comparison.double_lift
    assert len(dl) == 10
    assert dl["exposure"].sum() == pytest.approx(test["exposure"].sum(), rel=1e-12)
    for column in ("actual_rate", "rate_a", "rate_b"):
        assert np.average(dl[column], weights=dl["exposure"]) == pytest.approx(1.0, rel=1e-9)
    assert f"double lift {jobs.a.name} vs {jobs.b.name}" in comparison.figures
    assert comparison.to_html().count("data:image/png;base64,") == 3


def test_sm_compare_needs_two_jobs(shell):
    with pytest.raises(UsageError, match="the following arguments are required: jobs"):
        run(shell, "%sm_compare")


def test_sm_compare_one_job_is_an_error():
    with pytest.raises(ConfigError, match="compare needs two jobs or more; got 0"):
        compare([])


# -- %sm_config -------------------------------------------------------------------------------
def test_sm_config_shows_every_setting_with_its_source(shell):
    view = run(shell, "%sm_config")
    rows = {r[0]: r for r in view.rows}
    assert rows["tracking"][1:3] == ["False", str(Path("user-config.yaml").absolute())]
    assert rows["instance_type"][1:3] == ["", "default"]
    assert "where jobs run" in view.to_html()


def test_sm_config_set_persists_to_the_user_file(shell, workdir):
    view = run(shell, "%sm_config instance_type=ml.m5.2xlarge bucket=my-bucket")
    rows = {r[0]: r for r in view.rows}
    assert rows["instance_type"][1:3] == ["ml.m5.2xlarge", "%sm_config (this session)"]
    saved = yaml.safe_load((workdir / "user-config.yaml").read_text())
    assert saved == {"tracking": False, "instance_type": "ml.m5.2xlarge", "bucket": "my-bucket"}
    reset_session()  # a new kernel reads the file
    rows = {r[0]: r for r in run(shell, "%sm_config").rows}
    assert rows["bucket"][1] == "my-bucket"
    run(shell, "%sm_config bucket= --unset instance_type")
    saved = yaml.safe_load((workdir / "user-config.yaml").read_text())
    assert saved == {"tracking": False}


BAD_SETTINGS = {
    "instnce_type=ml.m5.large": r"instnce_type: is not an smglm setting.*Did you mean 'instance_",
    "instance_type=large": r"instance_type: 'large' is not a SageMaker instance type",
    "backend=cloud": r"backend: 'cloud' is not allowed; choose one of \['local', 'sagemaker'\]",
    "tracking=maybe": r"tracking: must be auto, true or false; got 'maybe'",
    "instance_type": r"'instance_type' is not key=value",
}


@pytest.mark.parametrize(("line", "message"), BAD_SETTINGS.items())
def test_sm_config_rejects_bad_settings(shell, workdir, line, message):
    before = (workdir / "user-config.yaml").read_text()
    with pytest.raises(UsageError, match=message):
        run(shell, f"%sm_config {line}")
    assert (workdir / "user-config.yaml").read_text() == before


def test_sm_config_reads_pyproject_and_session_wins(shell, workdir):
    project = workdir / "project" / "sub"
    project.mkdir(parents=True)
    (workdir / "project" / "pyproject.toml").write_text(
        '[tool.smglm]\nregion = "eu-west-1"\ninstance_type = "ml.c5.xlarge"\n'
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        rows = {r[0]: r for r in run(shell, "%sm_config").rows}
        assert rows["region"][1:3] == [
            "eu-west-1",
            f"{workdir / 'project' / 'pyproject.toml'} [tool.smglm]",
        ]
        rows = {r[0]: r for r in run(shell, "%sm_config region=us-east-2").rows}
        assert rows["region"][1] == "us-east-2"
    run(shell, "%sm_config --unset region")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("false", False), ("yes", True), ("auto", None), (True, True), (None, None)],
)
def test_settings_tracking_accepts_hand_written_values(value, expected):
    assert Settings({"tracking": value}).tracking is expected


def test_settings_job_fields_use_jobconfig_names():
    settings = Settings({"image": "x.dkr.ecr/smglm:1", "mlflow_uri": "http://h", "tracking": False})
    assert settings.job_fields() == {
        "image_uri": "x.dkr.ecr/smglm:1",
        "mlflow_tracking_uri": "http://h",
    }


def test_sm_form_shows_the_form_for_a_dataframe(shell):
    form = run(shell, "%sm_form df")
    assert type(form).__name__ == "GLMForm"
    assert "claim_count" in [v for _, v in form._target.options]


def test_job_display_is_registered_under_the_class_module_name():
    assert (Job.__module__, Job.__name__) == ("smglm.launch.job", "Job")
