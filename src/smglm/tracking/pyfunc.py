"""The MLflow ``python_function`` flavor of an smglm model, written and loaded without mlflow.

:func:`save_pyfunc_model` writes the folder MLflow's ``mlflow.pyfunc.load_model`` reads (the
container image carries no mlflow)::

    mlflow_model/
      MLmodel            flavors.python_function: loader_module smglm.tracking.pyfunc,
                         data model.json, python_version, env (conda.yaml, python_env.yaml)
      model.json         a copy of the portable model
      requirements.txt   smglm and its core dependencies, pinned to the versions installed
      python_env.yaml    MLflow's virtualenv spec (``-r requirements.txt``)
      conda.yaml         the same for conda

MLflow then calls :func:`_load_pyfunc` with the path of ``model.json``; the object it returns
scores a DataFrame with :class:`smglm.glm.model.PortableModel` (numpy only, no glum, no pickle).
"""

from __future__ import annotations

import json
import platform
import shutil
import uuid
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from smglm.glm.model import PortableModel

__all__ = ["CORE_REQUIREMENTS", "LOADER_MODULE", "PyfuncGLM", "save_pyfunc_model"]

LOADER_MODULE = "smglm.tracking.pyfunc"
#: Distributions a scoring environment needs besides smglm (pinned to the installed versions).
CORE_REQUIREMENTS = ("numpy", "pandas", "scipy", "pydantic", "pyyaml")
DATA_FILE = "model.json"


class PyfuncGLM:
    """What :func:`_load_pyfunc` returns: ``predict(DataFrame) -> numpy array`` of means."""

    def __init__(self, model: PortableModel) -> None:
        self.model = model

    def predict(
        self, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """The predicted mean of each row (offset or exposure used when its column is present).

        ``params`` may hold ``use_offset`` (default true): false predicts per unit exposure.
        """
        import pandas as pd

        use_offset = True if not params else bool(params.get("use_offset", True))
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return self.model.predict(model_input, use_offset=use_offset)


def _load_pyfunc(data_path: str) -> PyfuncGLM:
    """MLflow's loader hook: ``data_path`` is the ``model.json`` named by ``MLmodel``."""
    from smglm.glm.model import PortableModel

    return PyfuncGLM(PortableModel.load(data_path))


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _requirements() -> list[str]:
    from smglm._version import __version__

    lines = [f"smglm=={__version__}"]
    for dist in CORE_REQUIREMENTS:
        version = _version(dist)
        lines.append(f"{dist}=={version}" if version else dist)
    return lines


def save_pyfunc_model(path: str | Path, model_json: str | Path) -> Path:
    """Write the MLflow pyfunc folder ``path`` for the portable model file ``model_json``.

    Parameters
    ----------
    path
        The folder to create (e.g. ``<model dir>/mlflow_model``); replaced if it exists.
    model_json
        The ``model.json`` to copy in.

    Returns
    -------
    Path
        The folder written.
    """
    out = Path(path)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copyfile(model_json, out / DATA_FILE)
    python = platform.python_version()
    requirements = _requirements()
    (out / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    pip = _version("pip")
    build = [f"pip=={pip}" if pip else "pip", "setuptools", "wheel"]
    (out / "python_env.yaml").write_text(
        _yaml(
            {"python": python, "build_dependencies": build, "dependencies": ["-r requirements.txt"]}
        ),
        encoding="utf-8",
    )
    (out / "conda.yaml").write_text(
        _yaml(
            {
                "name": "smglm-env",
                "channels": ["conda-forge"],
                "dependencies": [f"python={python}", "pip", {"pip": requirements}],
            }
        ),
        encoding="utf-8",
    )
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    mlmodel = {
        "flavors": {
            "python_function": {
                "loader_module": LOADER_MODULE,
                "data": DATA_FILE,
                "python_version": python,
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "streamable": False,
            }
        },
        # only a params schema: MLflow passes ``params`` on only when the signature declares
        # them; no input schema, so MLflow does not coerce the columns (the model checks them)
        "signature": {
            "inputs": None,
            "outputs": None,
            "params": json.dumps(
                [{"name": "use_offset", "default": True, "shape": None, "type": "boolean"}]
            ),
        },
        "model_size_bytes": size,
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    (out / "MLmodel").write_text(_yaml(mlmodel), encoding="utf-8")
    return out


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)
