"""The Studio lane's inputs, checked without installing anything: ``ci/studio-4.4.txt`` holds
SageMaker Distribution 4.4's versions, smglm's declared ranges admit every one of them (so
``pip install smglm`` in Studio has no reason to move one), and ``scripts/studio-lane`` runs
the same test selection as ``scripts/test --fast``. ``scripts/studio-lane`` itself installs
them and runs the tests (``scripts/test`` runs it in CI)."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "ci" / "studio-4.4.txt"
#: The extras scripts/studio-lane installs (what a Studio user takes).
STUDIO_EXTRAS = ("notebook", "aws", "tracking", "sagemaker-mlflow", "sdk", "points", "serve")


def _pins() -> dict[str, str]:
    pins = {}
    for line in PINS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_the_pins_are_sagemaker_distribution_4_4s_versions():
    pins = _pins()
    image = {
        "numpy": "1.26.4",
        "pandas": "2.3.3",
        "pyarrow": "21.0.0",
        "scipy": "1.16.3",
        "statsmodels": "0.14.6",
        "mlflow": "3.15.1",
        "ipywidgets": "8.1.8",
        "boto3": "1.43.46",
        "botocore": "1.43.46",
        "sagemaker": "3.12.0",
        "sagemaker-core": "2.18.0",
        "sagemaker-mlflow": "0.5.0",
        "jupyterlab": "4.5.10",
    }
    assert {n: pins.get(n) for n in image} == image


def test_smglms_declared_ranges_admit_every_pin():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in STUDIO_EXTRAS:
        requirements += project["optional-dependencies"][extra]
    pins = _pins()
    refused = []
    for text in requirements:
        req = Requirement(text)
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is not None and not req.specifier.contains(Version(pinned), prereleases=True):
            refused.append(f"{text!r} refuses the image's {req.name}=={pinned}")
    assert not refused, refused


def test_the_lane_runs_the_fast_selection_with_the_studio_extras():
    fast = re.search(r'-m "([^"]+)" "\$@"', (ROOT / "scripts" / "test").read_text())
    lane = (ROOT / "scripts" / "studio-lane").read_text()
    assert fast is not None
    assert f'fast_markers="{fast.group(1)}"' in lane
    assert f'extras="${{SMGLM_STUDIO_EXTRAS:-{",".join(STUDIO_EXTRAS)}}}"' in lane
