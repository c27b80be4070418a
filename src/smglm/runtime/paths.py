"""The ``/opt/ml`` tree a SageMaker training container sees, and the three JSON files under it.

Layout (``sagemaker-contract.md`` §1.2; the root moves with ``SMGLM_ML_ROOT``)::

    <root>/input/config/hyperparameters.json   flat JSON object, every value a string (§1.3)
    <root>/input/config/inputdataconfig.json   one entry per channel (§1.4)
    <root>/input/config/resourceconfig.json    hosts of the cluster (§1.5); the lower-case name,
                                               with a fallback to ``resourceConfig.json``
    <root>/input/data/<channel>/               a channel's files (File and FastFile modes, §1.6)
    <root>/model/                              the model; SageMaker packs it as model.tar.gz
    <root>/output/failure                      one-line failure reason (first 1024 chars, §1.8)
    <root>/output/data/                        extra outputs; SageMaker packs them as output.tar.gz
    <root>/checkpoints/                        CheckpointConfig's default local path (§1.10)

Nothing is computed at import time: :meth:`MLPaths.from_env` reads ``SMGLM_ML_ROOT`` when called.
Extra keys and extra files in ``input/config`` are tolerated.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smglm.errors import ConfigError, Issue

__all__ = ["MLPaths", "ResourceConfig", "usable_cores"]


@dataclass(frozen=True)
class ResourceConfig:
    """``resourceconfig.json``: which host this is, and all hosts (sorted as SageMaker sorts them).

    Missing keys take the toolkit's defaults; unknown keys (``instance_groups``, ``topology``, ...)
    are kept in ``raw``.
    """

    current_host: str = "algo-1"
    hosts: list[str] = field(default_factory=lambda: ["algo-1"])
    current_instance_type: str = "local"
    network_interface_name: str = "eth0"
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def is_master(self) -> bool:
        """Whether this host is the first of ``hosts`` (the one that writes the model)."""
        return not self.hosts or self.current_host == self.hosts[0]


@dataclass(frozen=True)
class MLPaths:
    """Every path of the ``/opt/ml`` tree, built from its root."""

    root: Path

    @classmethod
    def from_env(cls) -> MLPaths:
        """The tree at ``$SMGLM_ML_ROOT`` (default ``/opt/ml``)."""
        from smglm.config.environment import SMGLM_ML_ROOT

        return cls(Path(SMGLM_ML_ROOT.get() or "/opt/ml"))

    # -- input ---------------------------------------------------------------------------
    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def config_dir(self) -> Path:
        """``input/config``: the job's JSON configuration files."""
        return self.input_dir / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config_file(self) -> Path:
        """``resourceconfig.json``, or ``resourceConfig.json`` when only that one exists."""
        lower = self.config_dir / "resourceconfig.json"
        camel = self.config_dir / "resourceConfig.json"
        return camel if not lower.exists() and camel.exists() else lower

    @property
    def data_dir(self) -> Path:
        """``input/data``: one folder per channel."""
        return self.input_dir / "data"

    def channel_dir(self, name: str) -> Path:
        """The folder of channel ``name`` (it may not exist)."""
        return self.data_dir / name

    # -- output --------------------------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        """``model``: becomes the root of model.tar.gz."""
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        """``output/data``: becomes the root of output.tar.gz."""
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        """``output/failure``: SageMaker's FailureReason is its first 1024 characters."""
        return self.output_dir / "failure"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    # -- the JSON files ------------------------------------------------------------------
    def read_hyperparameters(self) -> dict[str, Any]:
        """The raw hyperparameters (strings, as SageMaker writes them); ``{}`` without the file."""
        data = _read_json(self.hyperparameters_file, "hyperparameters", default={})
        return _require_mapping(data, self.hyperparameters_file, "hyperparameters")

    def read_input_data_config(self) -> dict[str, dict[str, Any]]:
        """Channel name -> its settings (``TrainingInputMode``, ``ContentType``, ...).

        Without ``inputdataconfig.json`` (a hand-made local tree) every folder under
        ``input/data`` counts as a File-mode channel.
        """
        path = self.input_data_config_file
        if not path.exists():
            root = self.data_dir
            found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            return {name: {"TrainingInputMode": "File"} for name in found} if found else {}
        data = _require_mapping(_read_json(path, "channels", default={}), path, "channels")
        return {str(k): v if isinstance(v, dict) else {} for k, v in data.items()}

    def read_resource_config(self) -> ResourceConfig:
        """The cluster layout; a single host ``algo-1`` when the file is absent."""
        path = self.resource_config_file
        data = _require_mapping(_read_json(path, "resourceconfig", default={}), path, "resource")
        hosts = data.get("hosts") or [data.get("current_host", "algo-1")]
        return ResourceConfig(
            current_host=str(data.get("current_host", hosts[0])),
            hosts=[str(h) for h in hosts],
            current_instance_type=str(data.get("current_instance_type", "local")),
            network_interface_name=str(data.get("network_interface_name", "eth0")),
            raw=data,
        )


def _read_json(path: Path, what: str, *, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [Issue(what, f"cannot read {path.name}: {exc.strerror or exc}", str(path))]
        ) from None
    if not text.strip():
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [Issue(what, f"{path.name} is not valid JSON: {exc}", str(path))]
        ) from None


def _require_mapping(data: Any, path: Path, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(
            [Issue(what, f"{path.name} must hold a JSON object; got {type(data).__name__}", data)]
        )
    return data


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; all cores where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1
