"""A saved report as a reader opens it: ``report.save("report.html")`` in headless Chromium from
``file://``, no kernel, no server. Its section tabs and one-way pills are clicked, and the
chart shown must change. Screenshots go where tests/test_browser.py saves its own.

Needs Debian's Chromium (``scripts/browser-tools``) and the playwright package (never
``playwright install``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import smglm
from smglm.datasets import motor
from smglm.glm.report import report
from test_browser import CHROMIUM, CHROMIUM_ARGS, artifacts_dir

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
