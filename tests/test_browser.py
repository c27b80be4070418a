"""The widget form as a user meets it: notebook 02 in JupyterLab, driven in headless Chromium.

JupyterLab runs on 127.0.0.1 (a free port, a token) over a temporary root holding a copy of
``notebooks/02_widget_form.ipynb``, with temporary Jupyter/IPython folders and a ``python3``
kernelspec that runs this interpreter. Debian's Chromium (``scripts/browser-tools`` installs
it) is driven by Playwright for Python: Run All, then the last form of the notebook is filled
by clicking and typing in its widgets, launched, and its report tabs are checked. Screenshots
go to ``test-artifacts/browser/`` (or ``$SMGLM_TEST_ARTIFACTS``). See
``/work/shared/browser-testing.md`` for the recipe this follows.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from helpers import free_port, write_kernelspec

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "02_widget_form.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Bounds, in seconds: server start, kernel ready, Run All (one local job), the clicked job.
SERVER_START, KERNEL_READY, RUN_ALL, JOB = 60, 90, 240, 180
#: The model chosen by clicking (not the one notebook 02 launches from code, so that the
#: launch trains a new job instead of reusing that one).
PREDICTORS = ["driver_age", "density_log", "area"]


def artifacts_dir() -> Path:
    """Where screenshots go: ``$SMGLM_TEST_ARTIFACTS/browser``, else ``test-artifacts/browser``."""
    base = os.environ.get("SMGLM_TEST_ARTIFACTS") or str(ROOT / "test-artifacts")
    folder = Path(base) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Lab:
    """A running JupyterLab: its base URL, token, notebook folder and log file."""

    base: str
    token: str
    root: Path
    log: Path

    def url(self, path: str) -> str:
        return f"{self.base}{path}?token={self.token}"

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(self.url(path), timeout=5) as resp:
            return json.load(resp)

    def wait_for_kernel(self, timeout: float) -> None:
        """Wait until a kernel is idle with the page connected to it (Run All before that
        opens JupyterLab's "Select Kernel" dialog instead of running)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                kernels = self.api("/api/kernels")
            except urllib.error.HTTPError as exc:
                # jupyter_server answers 500 while a kernel it lists is still starting (its
                # last_activity is None: a TraitError in the listing); ask again
                if exc.code < 500:
                    raise
                time.sleep(0.3)
                continue
            if any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
                return
            time.sleep(0.3)
        pytest.fail(f"no kernel ready after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-n:])


def lab_env(tmp: Path) -> dict[str, str]:
    """The server's (and so the kernel's) environment: temporary Jupyter, JupyterLab and
    IPython folders, smglm's config in ``tmp``, and no AWS, smglm or MLflow variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "SMGLM_", "MLFLOW_", "JUPYTER", "IPYTHONDIR"))
    }
    for name in ("config", "data", "path", "runtime", "settings", "workspaces", "ipython"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_PATH=str(tmp / "path"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        IPYTHONDIR=str(tmp / "ipython"),
        SMGLM_CONFIG_FILE=str(tmp / "smglm-config.yaml"),
        AWS_CONFIG_FILE=str(tmp / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    # the python3 kernel runs this interpreter (JUPYTER_PATH comes first in the kernel search)
    write_kernelspec(tmp / "path")
    # no "Jupyter news?" toast over the notebook
    note = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    note.mkdir(parents=True, exist_ok=True)
    news = {"fetchNews": "false", "checkForUpdates": False}
    (note / "notification.jupyterlab-settings").write_text(json.dumps(news), encoding="utf-8")
    return env


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGINT twice (jupyter then shuts its kernels down and exits), then SIGKILL if needed."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    fresh = nbformat.read(NOTEBOOK, as_version=4)  # as a user runs it: no outputs yet
    for c in fresh.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    fresh.metadata.pop("widgets", None)
    yield from serve(tmp_path, fresh, NOTEBOOK.name)


def serve(tmp_path: Path, nb: Any, name: str) -> Iterator[Lab]:
    """JupyterLab over a temporary root holding ``nb`` saved as ``name``; stopped after."""
    root = tmp_path / "notebooks"
    root.mkdir()
    nbformat.write(nb, root / name)
    port, token = free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyterlab", f"--port={port}", "--ip=127.0.0.1", "--no-browser",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    log = tmp_path / "jupyterlab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=lab_env(tmp_path / "jupyter"), cwd=root, stdout=out, stderr=subprocess.STDOUT
        )
    server = Lab(f"http://127.0.0.1:{port}", token, root, log)
    try:
        deadline = time.monotonic() + SERVER_START
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab not up after {SERVER_START} s:\n{server.log_tail()}")
                time.sleep(0.3)
        yield server
    finally:
        stop(proc)
        # the notebook's local jobs started the folder's warm worker: end it with the server
        from smglm.launch.warm import shutdown_worker

        shutdown_worker(root / ".smglm")


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
            context = browser.new_context(viewport={"width": 1400, "height": 1600})
            pg = context.new_page()
            pg.set_default_timeout(30_000)
            pg.on("pageerror", lambda exc: errors.append(str(exc)))
            yield pg
            assert not errors, f"errors in the page: {errors}"
        finally:
            browser.close()


def code_cell_count() -> int:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return sum(1 for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
@pytest.mark.browser
def test_browser_form_filled_by_clicking_launches_and_shows_report(lab: Lab, page: Any):
    shots = artifacts_dir()
    try:
        drive_notebook_02(lab, page, shots)  # asserts each step; see below
    except BaseException:
        page.screenshot(path=str(shots / "failure.png"))
        print(f"JupyterLab's log (last lines):\n{lab.log_tail()}")
        raise
    shot = shots / "form_after_launch.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "no screenshot of the launched form"


def drive_notebook_02(lab: Lab, page: Any, shots: Path) -> None:
    """Run All, then fill the last form by clicking and typing, launch, check the report."""
    from playwright.sync_api import expect

    # the kernel is this interpreter
    spec = lab.api("/api/kernelspecs")["kernelspecs"]["python3"]["spec"]
    assert spec["argv"][0] == sys.executable

    page.goto(lab.url(f"/lab/tree/{NOTEBOOK.name}"), timeout=60_000)
    lab.wait_for_kernel(KERNEL_READY)
    idle = page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
    expect(idle).to_be_attached(timeout=KERNEL_READY * 1000)
    page.get_by_role("menubar").get_by_role("menuitem", name="Run", exact=True).click()
    page.locator('li.lm-Menu-item[data-command="runmenu:run-all"]').click()

    # Run All ran every cell: the last prompt shows the last execution count
    cells = page.locator(".jp-Notebook .jp-CodeCell")
    n = code_cell_count()
    last = cells.nth(n - 1)
    expect(last.locator(".jp-InputPrompt")).to_have_text(f"[{n}]:", timeout=RUN_ALL * 1000)

    # the form launched from code (cell "launch") shows its completed job and report tabs
    coded = cells.filter(has_text="form = smglm.form(df)")
    # off-screen cells are not rendered (content-visibility): bring each form into view
    coded.evaluate("el => el.scrollIntoView({block: 'start'})")
    expect(coded.locator(".widget-tab")).to_be_visible()
    expect(coded.locator(".smglm-status-line")).to_contain_text("Completed in")
    page.screenshot(path=str(shots / "run_all.png"))

    # the last form ("%sm_form df"), filled by clicking and typing
    form = last.locator(".jp-OutputArea-output .widget-vbox").first
    form.evaluate("el => el.scrollIntoView({block: 'start'})")
    expect(form).to_contain_text("smglm: new training job")
    expect(form).to_contain_text("target: choose the target column")
    for label in ("data", "or path", "target", "weights", "family", "link", "backend", "job name"):
        field = form.get_by_label(label, exact=True)
        expect(field, f"the fresh form's {label!r} field is not shown").to_be_visible()
    launch = form.get_by_role("button", name="Launch")
    expect(launch).to_be_disabled()
    form.get_by_label("target", exact=True).select_option("claim_count")
    form.get_by_role("button", name="exposure", exact=True).click()
    form.get_by_label("column", exact=True).select_option("exposure")
    form.get_by_label("family", exact=True).select_option("poisson")
    expect(form.get_by_label("link", exact=True)).to_have_value("log")
    picker = form.locator(".widget-select-multiple select")
    search = form.get_by_label("predictors", exact=True)
    search.press_sequentially("dens")  # the filter leaves only density_log
    expect(picker.locator("option")).to_have_count(1)
    picker.select_option("density_log")
    search.fill("")
    expect(picker.locator("option")).not_to_have_count(1)
    picker.select_option(PREDICTORS)
    test_fraction = form.get_by_label("test fraction", exact=True)
    test_fraction.fill("0.2")
    test_fraction.press("Enter")
    expect(form).to_contain_text("ready to launch")
    page.screenshot(path=str(shots / "form_filled.png"))

    expect(launch).to_be_enabled()
    launch.click()
    tabs = form.locator(".widget-tab")
    expect(tabs).to_be_visible(timeout=JOB * 1000)
    expect(form.locator(".smglm-status-line")).to_contain_text("Completed in")
    titles = tabs.locator(".lm-TabBar-tab")
    expect(titles.first).to_have_text("Summary")
    tabs.locator(".lm-TabBar-tab", has_text="Coefficients").click()
    panel = tabs.locator(".widget-tab-contents > .lm-Widget:visible")
    expect(panel).to_contain_text("driver_age")
    for term in ("density_log", "area[A]", "area[E]", "relativity"):
        expect(panel).to_contain_text(term)
    expect(panel).not_to_contain_text("vehicle_power")  # only the chosen predictors
    panel.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "report_coefficients.png"))

    # Insert cell shows the %%sm_train text equivalent to the clicks
    form.get_by_role("button", name="Insert cell").click()
    cell_text = form.locator("textarea")
    expect(cell_text).to_have_value(
        "%%sm_train --data df --backend local --instance-type ml.m5.xlarge\n"
        "target: claim_count\n"
        # in the order chosen: density_log (picked alone first), then the others in data order
        "predictors: [density_log, driver_age, area]\n"
        "exposure: exposure\n"
        "family: poisson\n"
        "test: {fraction: 0.2, seed: 0}\n"
    )
    form.screenshot(path=str(shots / "form_after_launch.png"))


# -- the live job panel of a %%sm_train cell ------------------------------------------------------
PANEL_CELLS = [
    "%load_ext smglm",
    "from smglm.datasets import motor\ndf = motor(200_000, seed=1)",
    "%%sm_train --data df -o job\n"
    "target: claim_count\n"
    "predictors: [driver_age, vehicle_power, bonus_malus, area, density_log]\n"
    "exposure: exposure\nfamily: poisson\ntest: {fraction: 0.2, seed: 3}",
    # a no-wait job: its display is the JobPanel widget, then the status line and the report
    "%%sm_train --data df --no-wait -o live\n"
    "target: claim_count\npredictors: [driver_age, area]\n"
    "exposure: exposure\nfamily: poisson\ntest: {fraction: 0.2, seed: 3}",
]
#: Records, in the page, every distinct state of the panels shown (a MutationObserver).
RECORD_PANELS = """() => {
  window.__panels = [];
  const seen = new Set();
  const look = () => {
    for (const el of document.querySelectorAll('.smglm-panel')) {
      const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
      const cell = cells.indexOf(el.closest('.jp-CodeCell'));
      const key = cell + '|' + el.getAttribute('data-status') + '|' + el.innerText;
      if (!seen.has(key)) { seen.add(key); window.__panels.push(
        {cell: cell, status: el.getAttribute('data-status'), text: el.innerText,
         line: el.classList.contains('smglm-status-line')}); }
    }
  };
  new MutationObserver(look).observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true});
}"""


@pytest.fixture
def panel_lab(tmp_path: Path) -> Iterator[Lab]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in PANEL_CELLS]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    yield from serve(tmp_path, nb, "panel.ipynb")


@pytest.mark.slow
@pytest.mark.browser
def test_browser_sm_train_cell_shows_a_live_panel_then_one_line_and_the_report(
    panel_lab: Lab, page: Any
):
    from playwright.sync_api import expect

    lab, shots = panel_lab, artifacts_dir()
    try:
        page.goto(lab.url("/lab/tree/panel.ipynb"), timeout=60_000)
        lab.wait_for_kernel(KERNEL_READY)
        idle = page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
        expect(idle).to_be_attached(timeout=KERNEL_READY * 1000)
        page.evaluate(RECORD_PANELS)
        page.get_by_role("menubar").get_by_role("menuitem", name="Run", exact=True).click()
        page.locator('li.lm-Menu-item[data-command="runmenu:run-all"]').click()

        cell = page.locator(".jp-Notebook .jp-CodeCell").nth(2)
        running = cell.locator(".smglm-panel[data-status='InProgress']")
        expect(running).to_be_visible(timeout=RUN_ALL * 1000)
        expect(running).to_contain_text("local · ml.m5.xlarge x 1")
        expect(running.locator(".smglm-steps")).to_contain_text("Starting")
        page.screenshot(path=str(shots / "panel_running.png"))

        line = cell.locator(".smglm-status-line[data-status='Completed']")
        expect(line).to_be_visible(timeout=JOB * 1000)
        expect(line).to_contain_text("Completed in")
        expect(line).to_contain_text("test Gini 0.")
        expect(cell.locator(".smglm-panel")).to_have_count(1)  # updated in place
        expect(cell).to_contain_text("Coefficients")  # the report, below the line
        line.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "panel_completed.png"))
        # the no-wait job's live widget (its Stop button) became the status line and report
        later = page.locator(".jp-Notebook .jp-CodeCell").nth(3)
        later.evaluate("el => el.scrollIntoView({block: 'start'})")
        done = later.locator(".smglm-status-line[data-status='Completed']")
        expect(done).to_be_visible(timeout=JOB * 1000)
        expect(later.locator(".smglm-panel")).to_have_count(1)
        expect(later.locator(".smglm-stop")).to_have_count(0)
        expect(later).to_contain_text("Coefficients")
        page.screenshot(path=str(shots / "panel_no_wait.png"))
    except BaseException:
        page.screenshot(path=str(shots / "panel_failure.png"))
        print(f"JupyterLab's log (last lines):\n{lab.log_tail()}")
        raise
    states = page.evaluate("() => window.__panels")
    first = [s for s in states if s["cell"] == 2]
    live = [s for s in first if s["status"] == "InProgress"]
    assert len(live) >= 2, first  # the panel changed while the job ran
    assert first[-1]["line"] and first[-1]["status"] == "Completed", first[-1]
    widget = [s for s in states if s["cell"] == 3 and s["status"] is None]
    assert any("Stop" in s["text"] for s in widget), states  # the JobPanel, while running
    assert [s for s in states if s["cell"] == 3][-1]["line"]
