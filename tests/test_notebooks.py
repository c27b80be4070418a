"""The tutorials in ``notebooks/``: each one executed top to bottom by nbclient on a real kernel.

Each notebook runs in its own temporary working folder (its jobs, MLflow store and files go
there, never into the repository), with a kernel whose environment holds no AWS credentials,
so the SageMaker cells take their "no AWS" branch. ``scripts/run-notebooks`` uses the same
code (``python tests/test_notebooks.py --write``) to save the outputs back into the notebooks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import write_kernelspec

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = (
    "01_quickstart.ipynb",
    "02_widget_form.ipynb",
    "03_local_to_sagemaker.ipynb",
    "04_pricing_workflow.ipynb",
    "05_serving_and_batch.ipynb",
    "06_exploratory_frequency.ipynb",
    "07_beyond_one_machine.ipynb",
)
#: Seconds one cell may take (the longest cells wait for a local training job).
CELL_TIMEOUT = 180
#: Variables the kernel must not inherit: AWS credentials and settings, and smglm's and
#: MLflow's stores (the notebooks keep theirs in their working folder).
DROPPED_PREFIXES = ("AWS_", "SMGLM_", "MLFLOW_", "JUPYTER_", "IPYTHONDIR", "MPLBACKEND")
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


# -- running a notebook (shared with scripts/run-notebooks) ----------------------------------------
def kernel_env(work: Path) -> dict[str, str]:
    """The kernel's environment: this one without AWS credentials or smglm/MLflow stores.

    smglm's user config, IPython's folder and the AWS config files point into ``work`` (the
    AWS ones do not exist), and the EC2 metadata lookup is off, so boto3 finds no credentials
    anywhere and says so at once.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_PREFIXES)}
    env.update(
        SMGLM_CONFIG_FILE=str(work / ".config" / "smglm.yaml"),
        IPYTHONDIR=str(work / ".ipython"),
        AWS_CONFIG_FILE=str(work / ".aws" / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(work / ".aws" / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def execute(path: Path, work: Path, *, timeout: int = CELL_TIMEOUT) -> Any:
    """Execute the notebook at ``path`` top to bottom with ``work`` as the working folder.

    Returns the executed notebook; raises ``nbclient.exceptions.CellExecutionError`` at the
    first cell that fails. ``JUPYTER_PATH`` is set in this process for the kernelspec lookup.
    """
    nb = nbformat.read(path, as_version=4)
    work.mkdir(parents=True, exist_ok=True)
    os.environ["JUPYTER_PATH"] = str(write_kernelspec(work / ".jupyter"))
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=timeout,
        record_timing=False,
        resources={"metadata": {"path": str(work)}},
    )
    try:
        client.execute(env=kernel_env(work))
    finally:
        # the tutorials' local jobs started the working folder's warm worker: end it with them
        from smglm.launch.warm import shutdown_worker

        shutdown_worker(work / ".smglm")
    return nb


def scrub(value: Any, work: Path) -> Any:
    """``value`` with the working folder's absolute path made relative (in every string)."""
    if isinstance(value, str):
        for prefix in (str(work.resolve()), str(work)):
            value = value.replace(prefix + "/", "").replace(prefix, ".")
        return value
    if isinstance(value, list):
        return [scrub(v, work) for v in value]
    if isinstance(value, dict):
        return type(value)({k: scrub(v, work) for k, v in value.items()})
    return value


def run_in_place(names: Sequence[str]) -> int:
    """Execute the named notebooks (default: all) and save their outputs back; return 0/1."""
    failed = 0
    for name in names or NOTEBOOKS:
        path = NOTEBOOK_DIR / Path(name).name
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="smglm-tutorial-") as tmp:
            work = Path(tmp)
            try:
                nb = execute(path, work)
            except Exception as exc:
                print(f"[run-notebooks] {path.name}: FAILED: {exc}", file=sys.stderr)
                failed += 1
                continue
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs = scrub(cell.outputs, work)
            if "widgets" in nb.metadata:
                nb.metadata["widgets"] = scrub(nb.metadata["widgets"], work)
        nbformat.validate(nb)
        nbformat.write(nb, path)
        print(f"[run-notebooks] {path.name}: {time.monotonic() - start:.1f} s, outputs saved")
    return 1 if failed else 0


# -- reading an executed notebook ------------------------------------------------------------------
def cell(nb: Any, tag: str) -> Any:
    """The code cell tagged ``tag``."""
    found = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(found) == 1, f"expected one cell tagged {tag!r}, found {len(found)}"
    return found[0]


def text(c: Any) -> str:
    """All the text a cell showed: streams, plain text and HTML of its outputs."""
    parts = []
    for o in c.outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("execute_result", "display_data"):
            parts += [str(o.data.get("text/plain", "")), str(o.data.get("text/html", ""))]
    return "\n".join(parts)


def plain(c: Any) -> str:
    """The ``text/plain`` of a cell's results (and its streams)."""
    parts = [
        o.text if o.output_type == "stream" else str(o.data.get("text/plain", ""))
        for o in c.outputs
        if o.output_type != "error"
    ]
    return "\n".join(parts)


def widget_models(nb: Any) -> list[dict[str, Any]]:
    """The saved widget models: ``{"model_name": ..., "state": ...}`` each."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return list(state.values())


# -- the tests -------------------------------------------------------------------------------------
@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    def _run(name: str) -> Any:
        monkeypatch.setenv("JUPYTER_PATH", "")  # restored after the test (execute() sets it)
        nb = execute(NOTEBOOK_DIR / name, tmp_path / "work")
        for c in nb.cells:
            errors = [o for o in c.get("outputs", []) if o.output_type == "error"]
            assert not errors, f"{name}: a cell raised {errors[0].ename}: {errors[0].evalue}"
        return nb

    return _run


def test_notebooks_readme_lists_every_notebook():
    readme = (NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8")
    on_disk = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert on_disk == sorted(NOTEBOOKS)
    for name in NOTEBOOKS:
        assert f"]({name})" in readme, f"notebooks/README.md does not link {name}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_committed_with_outputs_and_no_machine_paths(name):
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "not run in order"
    assert sum(len(c.outputs) for c in code) >= len(code) // 2
    raw = (NOTEBOOK_DIR / name).read_text(encoding="utf-8")
    assert str(ROOT) not in raw and "smglm-tutorial-" not in raw, f"{name} holds a machine path"
    found = re.search(r"/(home|root|work|tmp)/", raw)
    assert found is None, f"{name} holds the machine path {found and found.group(0)!r}"
    assert '"output_type": "error"' not in raw


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_01_quickstart(run):
    nb = run("01_quickstart.ipynb")
    train = text(cell(nb, "train"))
    assert "✓ Completed in " in train and "smglm-status-line" in train  # the panel's last line
    assert "Creating initial MLflow database tables" not in train  # in the launcher log
    assert "Coefficients" in train and "One-way" in train and "Lorenz" in train
    assert "Coefficients" in text(cell(nb, "report"))
    assert "quickstart-report.html" in text(cell(nb, "save")) and " MB" in text(cell(nb, "save"))
    coefs = text(cell(nb, "relativities"))
    for term in ("driver_age", "vehicle_power", "bonus_malus", "area[A]", "relativity_upper"):
        assert term in coefs
    assert "gini" in text(cell(nb, "metrics"))
    assert "actual_rate" in text(cell(nb, "one_way"))
    assert "Gini on the test rows: 0." in text(cell(nb, "lift"))
    files = text(cell(nb, "artifacts"))
    assert "model/model.json" in files and "output/test/lift.csv" in files
    assert "Completed" in text(cell(nb, "jobs"))


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_02_widget_form(run):
    nb = run("02_widget_form.ipynb")
    assert text(cell(nb, "fill")).strip() == "[]"  # no problems
    assert text(cell(nb, "launch")).rstrip().endswith("Completed")
    assert "vehicle_power" in text(cell(nb, "result"))
    assert text(cell(nb, "cell-text")).startswith(
        "%%sm_train --data df --backend local --instance-type ml.m5.xlarge\ntarget: claim_count\n"
    )
    models = widget_models(nb)
    forms = [m for m in models if m["model_name"] == "VBoxModel"]
    assert len(forms) >= 2
    tabs = [m["state"] for m in models if m["model_name"] == "TabModel"]
    assert len(tabs) == 1 and list(tabs[0]["titles"])[:2] == ["Summary", "Coefficients"]
    status = [m["state"]["value"] for m in models if m["model_name"] == "HTMLModel"]
    assert any("smglm-status-line" in v and "✓" in v for v in status)  # the panel's last line
    assert "database tables" not in text(cell(nb, "launch"))  # MLflow's lines: launcher log
    views = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    shown = [o for o in views if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(shown) == 2  # the form, and the fresh one of %sm_form


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_03_local_to_sagemaker_without_aws(run):
    nb = run("03_local_to_sagemaker.ipynb")
    assert "Completed" in text(cell(nb, "local"))
    assert "No usable AWS credentials here" in text(cell(nb, "aws-check"))
    assert "Not launching on SageMaker" in text(cell(nb, "sagemaker"))
    request = text(cell(nb, "request"))
    body = json.loads(request[request.index("{") :])
    assert body["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    assert body["RoleArn"].startswith("arn:aws:iam::123456789012:role/")
    uris = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in body["InputDataConfig"]]
    assert [c["ChannelName"] for c in body["InputDataConfig"]] == ["train", "config"]
    assert all(u.startswith("s3://sagemaker-eu-west-1-123456789012/smglm/inputs/") for u in uris)
    assert body["OutputDataConfig"]["S3OutputPath"].startswith("s3://")
    cost = text(cell(nb, "cost"))
    assert "ml.m5.large x 1, up to 1.0 h: at most $" in cost and "over max_cost=$0.05" in cost


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_04_pricing_workflow(run):
    nb = run("04_pricing_workflow.ipynb")
    assert "Completed" in text(cell(nb, "freq-a"))
    runs = plain(cell(nb, "mlflow"))
    assert runs.count("FINISHED") == 3 and "gamma" in runs and "[null, 0.02]" in runs
    compare = text(cell(nb, "compare"))
    assert "Double lift" in compare and "Coefficients (relativity)" in compare
    sev = text(cell(nb, "severity"))
    assert "vehicle_age" in sev and "relativity" in sev
    balance = text(cell(nb, "balance"))
    ratio = float(balance.split("expected / actual = ")[1].split()[0])
    assert 0.85 < ratio < 1.15  # frequency x severity reproduces the portfolio's claims cost


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_05_serving_and_batch(run):
    nb = run("05_serving_and_batch.ipynb")
    assert "/ping -> 200" in text(cell(nb, "serve"))
    csv = text(cell(nb, "csv")).split("\n")
    assert "200" in csv and len([x for x in csv if x.startswith("0.")]) == 3
    assert '{"predictions": [' in text(cell(nb, "json"))
    assert text(cell(nb, "bad-request")).startswith("400")
    served, direct = text(cell(nb, "same")).strip().splitlines()
    assert served == direct
    assert "exit status 0" in text(cell(nb, "stop"))
    assert "exit status 0" in text(cell(nb, "batch"))
    assert "5000 predictions" in text(cell(nb, "batch-output"))
    assert "largest difference: 0.0" in text(cell(nb, "portable"))
    deployed = text(cell(nb, "deploy"))
    assert "InService" in deployed and "port" in deployed and "freed" in deployed
    assert "5000 predictions; largest difference: 0.0" in text(cell(nb, "transform"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Execute the tutorials and save their outputs.")
    parser.add_argument("--write", action="store_true", help="save the outputs into the .ipynb")
    parser.add_argument("notebooks", nargs="*", help=f"default: all of {list(NOTEBOOKS)}")
    args = parser.parse_args()
    if not args.write:
        parser.error("--write is required (the tests run through pytest)")
    sys.exit(run_in_place(args.notebooks))


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_06_exploratory_frequency(run):
    nb = run("06_exploratory_frequency.ipynb")
    explore = text(cell(nb, "explore"))
    assert "driver_age" in explore and "spread" in explore
    assert "Completed" in text(cell(nb, "m1")) and "Completed" in text(cell(nb, "m2"))
    terms = plain(cell(nb, "terms"))
    assert "bonus_malus[[60,80)]" in terms and "area[E]:region[east]" in terms
    assert "Double lift" in text(cell(nb, "compare"))
    assert "Completed" in text(cell(nb, "search"))
    choice = plain(cell(nb, "search-choice"))
    assert "'alpha'" in choice and "'rule': '1se'" in choice
    fixed = plain(cell(nb, "fixed"))
    assert fixed.count("fixed") >= 5 and "1.15" in fixed
    assert "MLflow tracking failed" not in text(cell(nb, "fixed"))


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_notebook_07_beyond_one_machine(run):
    nb = run("07_beyond_one_machine.ipynb")
    assert "'cells'" in text(cell(nb, "points-config"))
    compare = text(cell(nb, "points-compare"))
    coef = float(re.search(r"max \|Δ coefficient\| +([0-9.e+-]+)", compare).group(1))
    se = float(re.search(r"max relative Δ std error ([0-9.e+-]+)", compare).group(1))
    assert coef < 1e-8 and se < 1e-8, compare
    assert "aggregate" in text(cell(nb, "points-refused"))
    assert "Completed" in text(cell(nb, "points-job"))
    assert "Completed" in text(cell(nb, "spark-job"))
    spark = text(cell(nb, "spark-compare"))
    assert float(re.search(r"max \|Δ coefficient\| +([0-9.e+-]+)", spark).group(1)) < 1e-6
    refused = text(cell(nb, "spark-refused"))
    assert "negative_binomial" in refused and "l1" in refused
    request = text(cell(nb, "spark-request"))
    assert "smspark-submit" in request and "InstanceCount" in request
    assert "nothing is sent to AWS" in text(cell(nb, "spark-aws"))
