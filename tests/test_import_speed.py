"""``import smglm`` and ``%load_ext smglm`` stay fast: nothing heavy loads until it is used
(their times: ``benchmarks/responsiveness.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json, sys
import smglm
after_import = sorted(sys.modules)
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
before = set(sys.modules)
shell.extension_manager.load_extension("smglm")
result = shell.run_cell("%sm_config?", store_history=False)  # the magics answer
print(json.dumps({
    "after_import": after_import,
    "after_load": sorted(sys.modules),
    "loaded_by_extension": sorted(set(sys.modules) - before),
    "magics": sorted(shell.magics_manager.magics["line"]),
    "ok": result.success,
}))
"""

HEAVY = ["sagemaker", "boto3", "botocore", "mlflow", "glum", "matplotlib", "ipywidgets"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict:
    env = {**os.environ, "IPYTHONDIR": str(tmp_path_factory.mktemp("ipython"))}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def top_level(modules: list[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.mark.parametrize("module", HEAVY)
def test_import_smglm_loads_no_heavy_library(measured, module):
    assert module not in top_level(measured["after_import"])


@pytest.mark.parametrize("module", HEAVY)
def test_load_ext_loads_no_heavy_library(measured, module):
    assert module not in top_level(measured["after_load"])


def test_load_ext_registers_the_magics(measured):
    assert measured["ok"]
    assert {"sm_config", "sm_jobs", "sm_show", "sm_compare"} <= set(measured["magics"])


def test_load_ext_does_not_load_config_or_data_libraries(measured):
    new = measured["loaded_by_extension"]
    assert not top_level(new) & {"pandas", "numpy", "pydantic", "yaml"}, new
    assert not [m for m in new if m.startswith(("smglm.launch", "smglm.config", "smglm.glm"))]


def test_the_local_job_supervisor_imports_no_config_or_data_library():
    """Every local job starts a supervisor interpreter: it needs the spec, storage and the
    local backend, not pydantic, pandas or the fitting stack."""
    code = (
        "import sys, smglm.launch.supervisor, smglm.launch.warm\n"
        "heavy = ['pydantic', 'yaml', 'numpy', 'pandas', 'glum', 'mlflow', 'boto3', "
        "'smglm.config', 'smglm.launch.submit']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
