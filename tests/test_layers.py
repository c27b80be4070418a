"""The import boundaries of DESIGN.md, checked in fresh interpreters.

The runtime and the GLM layer must not pull in the notebook or launch layers (the container has
no IPython, ipywidgets or SageMaker SDK), and ``import smglm`` must stay light.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_after(code: str) -> set[str]:
    """The names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.fixture(scope="module")
def runtime_modules() -> set[str]:
    return loaded_after("import smglm.runtime, smglm.runtime.train, smglm.glm")


@pytest.mark.parametrize("forbidden", ["smglm.notebook", "smglm.launch"])
def test_runtime_does_not_import_upper_layers(runtime_modules, forbidden):
    assert not {m for m in runtime_modules if m == forbidden or m.startswith(forbidden + ".")}


@pytest.mark.parametrize("forbidden", ["IPython", "ipywidgets", "sagemaker", "mlflow", "boto3"])
def test_runtime_does_not_import_notebook_or_aws_libraries(runtime_modules, forbidden):
    assert forbidden not in top_level(runtime_modules)


def test_runtime_import_really_loaded_the_runtime(runtime_modules):
    assert {"smglm.runtime.train", "smglm.glm", "smglm.runtime.failure"} <= runtime_modules


def test_import_smglm_is_light():
    modules = top_level(loaded_after("import smglm"))
    assert "smglm" in modules
    heavy = {"glum", "matplotlib", "mlflow", "boto3", "sagemaker", "IPython", "ipywidgets"}
    assert not modules & heavy, modules & heavy
