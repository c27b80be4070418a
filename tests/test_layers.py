"""The import boundaries of DESIGN.md.

The layers are import-linter contracts (``.importlinter``, also run by ``scripts/test``): every
import counts, a function-level one too; only ``if TYPE_CHECKING:`` imports are left out. The
tests below run them, and prove on a tiny package that an upward import inside a function
breaks them under the same settings. Then, in fresh interpreters: the runtime and the GLM layer
load neither the notebook nor the launch layer nor their libraries (the container has no
IPython, ipywidgets or SageMaker SDK), and ``import smglm`` stays light.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"


def lint_imports(cwd: Path, config: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter's ``lint-imports`` on ``config``, with ``pythonpath`` first on the path."""
    exe = Path(sys.executable).with_name("lint-imports")
    command = str(exe) if exe.exists() else shutil.which("lint-imports")
    if command is None:
        pytest.fail("lint-imports not found: install the dev extra (pip install -e '.[dev]')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), *sys.path])}
    return subprocess.run(
        [command, str(config), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_import_linter_contracts_are_kept():
    proc = lint_imports(ROOT, CONFIG, ROOT / "src")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 4 kept, 0 broken." in proc.stdout


def test_contracts_count_function_level_imports():
    """Only TYPE_CHECKING imports are excluded, and no contract ignores an upward import."""
    config = configparser.ConfigParser()
    config.read(CONFIG)
    session = config["importlinter"]
    assert session.getboolean("exclude_type_checking_imports")
    assert session.get("root_package") == "smglm"
    ignored = {
        line.strip()
        for name in config.sections()
        for line in config[name].get("ignore_imports", "").splitlines()
        if line.strip()
    }
    # the root facade's load_ipython_extension (the facade sits above every layer; the
    # no-root-facade contract keeps the layers from importing it)
    assert ignored == {"smglm -> smglm.notebook"}
    types = {config[name]["type"] for name in config.sections() if name != "importlinter"}
    assert "layers" in types and "forbidden" in types


def test_an_upward_import_inside_a_function_breaks_the_layers(tmp_path):
    """The project's import-linter settings, on a two-layer package whose lower layer imports
    the upper one inside a function: broken. The same import under TYPE_CHECKING: kept."""
    package = tmp_path / "toy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "high.py").write_text("from toy import low\n")
    session = configparser.ConfigParser()
    session.read(CONFIG)
    options = {k: v for k, v in session["importlinter"].items() if k != "root_package"}
    toy = configparser.ConfigParser()
    toy["importlinter"] = {"root_package": "toy", **options}
    toy["importlinter:contract:layers"] = {
        "name": "toy layers",
        "type": "layers",
        "layers": "\ntoy.high\ntoy.low",
    }
    config = tmp_path / ".importlinter"
    with config.open("w") as f:
        toy.write(f)

    (package / "low.py").write_text("def upward():\n    from toy import high\n\n    return high\n")
    broken = lint_imports(tmp_path, config, tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "toy.low -> toy.high (l.2)" in broken.stdout

    (package / "low.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from toy import high\n"
    )
    kept = lint_imports(tmp_path, config, tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr


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
