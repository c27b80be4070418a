"""A notebook that uses the magics, executed top to bottom by nbclient on a real kernel."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

from helpers import write_kernelspec

CONFIG_A = """\
target: claim_count
predictors: [driver_age, vehicle_power, area]
exposure: exposure
family: poisson
test: {fraction: 0.2, seed: 0}
"""
CONFIG_C = CONFIG_A.replace("driver_age, vehicle_power, area", "driver_age, bonus_malus")

CELLS = [
    "%load_ext smglm",
    "from smglm.datasets import motor\ndf = motor(4000)",
    "%%sm_train --data df --new -o job\n" + CONFIG_A,  # --new: never a job of another test
    "job.report()",
    "%%sm_train --data df --no-wait --new -o live\n" + CONFIG_C,
    # wait for the job, then for the thread that updates its display (it ends with the job)
    "import threading\nlive.wait(logs=False)\n"
    "[t.join(120) for t in threading.enumerate() if t.name.startswith('smglm-follow-')];",
    "%sm_jobs",
]


def kernel_name(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``python3`` when its kernelspec runs this interpreter; else a spec written into ``tmp``
    (found through JUPYTER_PATH) that does."""
    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
        if spec.argv[0] in ("python", "python3", sys.executable):
            return "python3"  # jupyter_client runs a bare "python" as sys.executable
    except NoSuchKernel:
        pass
    write_kernelspec(tmp / "jupyter", "smglm-test", "smglm test")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp / "jupyter"))
    return "smglm-test"


def outputs(cell: Any) -> list[dict[str, Any]]:
    return [dict(o) for o in cell.outputs]


def html_of(cell: Any) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in outputs(cell))


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> Any:
    tmp = tmp_path_factory.mktemp("e2e")
    with pytest.MonkeyPatch.context() as mp:
        (tmp / "user-config.yaml").write_text("tracking: false\n")
        mp.setenv("SMGLM_CONFIG_FILE", str(tmp / "user-config.yaml"))
        mp.setenv("IPYTHONDIR", str(tmp / "ipython"))  # the kernel's profile and history
        mp.setenv("JUPYTER_RUNTIME_DIR", str(tmp / "runtime"))  # its connection file
        name = kernel_name(tmp, mp)
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
        client = NotebookClient(
            nb, kernel_name=name, timeout=300, resources={"metadata": {"path": str(tmp)}}
        )
        client.execute()  # raises CellExecutionError if a cell fails
    nbformat.validate(nb)
    return nb


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_runs_without_error(executed):
    errors = [o for c in executed.cells for o in outputs(c) if o["output_type"] == "error"]
    assert errors == []


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_train_cell_shows_the_job_and_its_report(executed):
    cell = executed.cells[2]
    shown = [o for o in outputs(cell) if o["output_type"] == "display_data"]
    printed = [o.get("text", "") for o in outputs(cell) if o["output_type"] == "stream"]
    assert len(shown) == 2, [o["output_type"] for o in outputs(cell)]  # the panel, the report
    # nothing else but, at most, a line the launcher prints on purpose (e.g. a tracking
    # failure under a loaded machine): never the job's log
    assert len("".join(printed).splitlines()) <= 2, printed
    panel, report = (o["data"] for o in shown)
    assert panel["text/html"].startswith(
        "<div class='smglm-panel smglm-status-line' data-status='Completed'"
    )
    assert panel["text/plain"].startswith("✓ Completed in ") and "\n" not in panel["text/plain"]
    assert "<div class='smglm-coefficients'>" in report["text/html"]
    assert "smglm-status-line" not in report["text/html"]  # the status once, not again


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_job_report_has_every_section_with_plots(executed):
    cell = executed.cells[3]
    assert [o["output_type"] for o in outputs(cell)] == ["execute_result"]
    html = html_of(cell)
    for key in ("summary", "coefficients", "one_way", "lift", "lorenz", "residuals", "log"):
        assert f"<div class='smglm-{key}'>" in html
    assert html.count("data:image/png;base64,") >= 10
    text = outputs(cell)[0]["data"]["text/plain"]
    assert "-- Coefficients --" in text and "driver_age" in text


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_no_wait_display_updated_in_place_to_the_report(executed):
    cell = executed.cells[4]
    shown = [o for o in outputs(cell) if o["output_type"] == "display_data"]
    # the live panel and the place of the report, each updated in place (not one per status)
    assert len(shown) == 2
    panel, report = (o["data"] for o in shown)
    assert panel["text/plain"].startswith("✓ Completed in ")  # it was InProgress at first
    assert "application/vnd.jupyter.widget-view+json" not in panel  # the plain line is saved
    assert "smglm-status-line" in panel["text/html"]
    assert "<div class='smglm-lorenz'>" in report["text/html"]


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_sm_jobs_lists_both_jobs(executed):
    html = html_of(executed.cells[6])
    assert html.count("<tr") >= 3 and "test Gini" in html and "★" in html  # the best marked
