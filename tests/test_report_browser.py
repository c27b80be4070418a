"""A report as a reader meets it, in headless Chromium: saved with ``report.save("report.html")``
and opened from ``file://`` (no kernel, no server), and shown by a notebook cell in JupyterLab
(its ``<style>`` kept in a live session's output). Its section tabs and one-way pills are
clicked, and the chart shown must change. Screenshots go where tests/test_browser.py saves its
own.

Needs Debian's Chromium (``scripts/browser-tools``) and the playwright package (never
``playwright install``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

import smglm
from smglm.datasets import motor
from smglm.glm.report import report
from test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Lab,
    artifacts_dir,
    serve,
)

pytestmark = pytest.mark.browser

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "area", "vehicle_power"],
    "exposure": "exposure",
    "family": "poisson",
    "test": {"fraction": 0.25, "seed": 3},
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    data = motor(3000, seed=5)
    rep = report(smglm.fit(CONFIG, data), data=data)
    return rep.save(tmp_path_factory.mktemp("shared") / "report.html")


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/browser-tools (apt-get install chromium)")
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            context = browser.new_context(viewport={"width": 1300, "height": 1100})
            context.route("**/*", _only_local)  # the page must need no network
            pg = context.new_page()
            pg.set_default_timeout(20_000)
            pg.on("pageerror", lambda exc: errors.append(str(exc)))
            yield pg
            assert not errors, f"errors in the page: {errors}"
        finally:
            browser.close()


def _only_local(route: Any) -> None:
    if route.request.url.startswith(("file://", "data:")):
        route.continue_()
    else:
        route.abort()


def _shown_figures(page: Any) -> Any:
    return page.locator("figure.smglm-figure:visible")


def test_saved_report_tabs_and_pills_switch_the_chart(saved: Path, page: Any):
    from playwright.sync_api import expect

    shots = artifacts_dir()
    page.goto(saved.as_uri())
    tabs = page.locator("label.smglm-tab")
    titles = tabs.all_inner_texts()
    assert titles[:4] == ["Summary", "Coefficients", "One-way", "Relativities by level"]
    # full titles: each label is as wide as its text (nothing cut or ellipsised)
    for i in range(tabs.count()):
        fits = tabs.nth(i).evaluate("el => el.scrollWidth <= el.clientWidth + 1")
        assert fits, f"tab {titles[i]!r} is truncated"

    # the summary shows the compact metrics; the full list is closed
    expect(page.locator("table.smglm-key-metrics")).to_be_visible()
    expect(page.locator("table.smglm-key-metrics")).to_contain_text("deviance explained")
    full = page.locator("details.smglm-all-metrics")
    expect(full).to_be_visible()
    expect(full.locator("table")).to_be_hidden()
    assert _shown_figures(page).count() == 0
    page.screenshot(path=str(shots / "report_summary.png"))

    # a section tab: the one-ways, one predictor's chart at a time
    page.locator("label.smglm-tab", has_text="One-way").click()
    expect(page.locator("table.smglm-key-metrics")).to_be_hidden()
    pills = page.locator("label.smglm-pill:visible")
    assert pills.all_inner_texts() == CONFIG["predictors"]
    figures = _shown_figures(page)
    expect(figures).to_have_count(1)
    first = figures.first.locator("img").get_attribute("src")
    expect(figures.first.locator("figcaption")).to_contain_text("Train (left) and test (right)")
    assert figures.first.locator("img").evaluate("el => el.naturalWidth") > 300
    page.screenshot(path=str(shots / "report_one_way_first.png"))

    # a pill: another predictor's chart replaces the first
    pills.filter(has_text="area").click()
    expect(figures).to_have_count(1)
    second = figures.first.locator("img").get_attribute("src")
    assert second != first
    expect(figures.first.locator("img")).to_have_attribute("alt", "area: actual vs predicted")
    page.screenshot(path=str(shots / "report_one_way_area.png"))

    # another tab: its own charts, the one-ways hidden
    page.locator("label.smglm-tab", has_text="Lorenz and Gini").click()
    expect(pills.first).to_be_hidden()
    expect(_shown_figures(page)).to_have_count(2)  # train and test
    page.screenshot(path=str(shots / "report_lorenz.png"))


# -- in JupyterLab: the report as a cell's output ---------------------------------------------
CELL = f"""import smglm
from smglm.datasets import motor
from smglm.glm.report import report
data = motor(3000, seed=5)
report(smglm.fit({CONFIG!r}, data), data=data)"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab serving one notebook whose one cell shows a report."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL)]
    spec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["kernelspec"] = spec
    yield from serve(tmp_path, nb, "report.ipynb")


@pytest.mark.slow
def test_report_in_jupyterlab_keeps_its_tabs_and_pills(lab: Lab, page: Any):
    from playwright.sync_api import expect

    shots = artifacts_dir()
    page.context.unroute("**/*")  # JupyterLab's own page is served over http
    page.goto(lab.url("/lab/tree/report.ipynb"), timeout=60_000)
    lab.wait_for_kernel(90)
    idle = page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
    expect(idle).to_be_attached(timeout=90_000)
    page.get_by_role("menubar").get_by_role("menuitem", name="Run", exact=True).click()
    page.locator('li.lm-Menu-item[data-command="runmenu:run-all"]').click()
    shown = page.locator(".jp-OutputArea-output .smglm-report")
    expect(shown).to_be_visible(timeout=120_000)
    # the report's <style> is applied: one tab's panel at a time, the radio inputs hidden
    expect(shown.locator("table.smglm-key-metrics")).to_be_visible()
    expect(shown.locator("figure.smglm-figure:visible")).to_have_count(0)
    expect(shown.locator("input.smglm-radio").first).to_have_css("opacity", "0")
    try:
        shown.locator("label.smglm-tab", has_text="One-way").click()
        figures = shown.locator("figure.smglm-figure:visible")
        expect(figures).to_have_count(1)
        first = figures.first.locator("img").get_attribute("src")
        shown.locator("label.smglm-pill:visible", has_text="vehicle_power").click()
        expect(figures).to_have_count(1)
        assert figures.first.locator("img").get_attribute("src") != first
        page.screenshot(path=str(shots / "report_in_jupyterlab.png"))
    except BaseException:
        page.screenshot(path=str(shots / "report_in_jupyterlab_failure.png"))
        print(f"JupyterLab's log (last lines):\n{lab.log_tail()}")
        raise
