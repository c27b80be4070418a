"""The notebook defaults shown and set by ``%sm_config``: bucket, role, instance type, backend...

Values come in layers, later ones winning: smglm's built-in defaults, the user config file
(``SMGLM_CONFIG_FILE``, default ``~/.config/smglm/config.yaml``), ``[tool.smglm]`` in the
``pyproject.toml`` nearest to the working folder, and values set with ``%sm_config`` in this
session (which are also written to the user file, so they are the user's defaults next time).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smglm.config.environment import SMGLM_CONFIG_FILE
from smglm.errors import ConfigError, Issue, did_you_mean

__all__ = [
    "KEYS",
    "VERBOSITY",
    "Setting",
    "Settings",
    "config_file",
    "load_settings",
    "reset_session",
    "set_values",
    "unset_values",
]


@dataclass(frozen=True)
class Setting:
    """One key of ``%sm_config``: the JobConfig field it fills (None: used by the magics only)."""

    key: str
    field: str | None
    doc: str


#: The keys ``%sm_config`` knows, in display order.
KEYS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting("backend", "backend", "where jobs run: a registered backend (local, sagemaker)"),
        Setting("instance_type", "instance_type", "training instance, e.g. ml.m5.xlarge"),
        Setting("engine", "engine", "fitting engine: glum (one machine) or spark"),
        Setting("aggregate", "aggregate", "model points: auto, cells or rows"),
        Setting(
            "report_images",
            "report_images",
            "report PNGs drawn in the job: auto (sagemaker only), true or false",
        ),
        Setting("bucket", "bucket", "S3 bucket for data, config and artifacts"),
        Setting("prefix", "prefix", "key prefix inside the bucket"),
        Setting("role", "role", "IAM role ARN SageMaker runs the job as"),
        Setting("region", "region", "AWS region of the jobs"),
        Setting("image", "image_uri", "training image URI (ECR)"),
        Setting("mlflow_uri", "mlflow_tracking_uri", "MLflow tracking URI"),
        Setting("mlflow_experiment", "mlflow_experiment", "MLflow experiment name"),
        Setting(
            "keep_alive_seconds",
            "keep_alive_seconds",
            "sagemaker warm pool: seconds the instances wait for the next job (0-3600, billed)",
        ),
        Setting("use_spot", "use_spot", "sagemaker managed spot training: true or false"),
        Setting("tracking", None, "track jobs in MLflow: auto, true or false"),
        Setting(
            "verbosity",
            None,
            "what %%sm_train shows: quiet (the end's status line), normal (a live panel) "
            "or verbose (the whole log)",
        ),
    )
}

#: The values of ``verbosity``.
VERBOSITY = ("quiet", "normal", "verbose")

_SESSION: dict[str, Any] = {}


def reset_session() -> None:
    """Forget the values set in this session (tests; a fresh kernel starts empty)."""
    _SESSION.clear()


def config_file() -> Path:
    """The user config file: ``SMGLM_CONFIG_FILE``, else ``~/.config/smglm/config.yaml``."""
    value = SMGLM_CONFIG_FILE.get()
    return Path(value).expanduser() if value else Path.home() / ".config/smglm/config.yaml"


@dataclass
class Settings:
    """The resolved defaults: ``values`` (key -> value) and where each came from."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def job_fields(self) -> dict[str, Any]:
        """The values that are JobConfig fields, under the JobConfig names."""
        out = {}
        for key, value in self.values.items():
            target = KEYS[key].field
            if target is not None and value is not None:
                out[target] = value
        return out

    @property
    def tracking(self) -> bool | None:
        """Whether to track jobs in MLflow (None: when mlflow is installed)."""
        value = self.values.get("tracking")
        if isinstance(value, str):  # as written by hand in a file: "false", "no", ...
            value = _parse_value("tracking", value)
        return None if value in (None, "auto") else bool(value)

    @property
    def verbosity(self) -> str:
        """What a ``%%sm_train`` cell shows while its job runs: ``quiet``, ``normal`` (the
        default) or ``verbose``."""
        value = self.values.get("verbosity")
        return "normal" if value is None else _parse_value("verbosity", value)


def _read_yaml(path: Path) -> dict[str, Any]:
    """The user settings file as a mapping ({} when there is none), read by the same bounded
    parser as configs (size, alias expansion and nesting limits; a clear error otherwise)."""
    from smglm.config._base import read_mapping

    if not path.is_file():
        return {}
    data = read_mapping(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([Issue(str(path), f"must be a mapping; got {type(data).__name__}")])
    return data


def _find_pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _read_pyproject(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        warnings.warn(f"cannot read [tool.smglm] from {path}: {exc}", stacklevel=3)
        return {}
    section = data.get("tool", {}).get("smglm", {})
    return section if isinstance(section, dict) else {}


def _known(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if key in KEYS:
            out[key] = value
        else:
            hint = did_you_mean(key, list(KEYS))
            warnings.warn(f"{source}: unknown smglm setting {key!r} ignored.{hint}", stacklevel=3)
    return out


def load_settings(cwd: str | Path | None = None) -> Settings:
    """Resolve the defaults: user file, then the nearest pyproject.toml, then this session."""
    settings = Settings()
    path = config_file()
    layers: list[tuple[str, dict[str, Any]]] = [(str(path), _known(_read_yaml(path), str(path)))]
    pyproject = _find_pyproject(Path(cwd or os.getcwd()).absolute())
    if pyproject is not None:
        layers.append(
            (f"{pyproject} [tool.smglm]", _known(_read_pyproject(pyproject), "pyproject"))
        )
    layers.append(("%sm_config (this session)", dict(_SESSION)))
    for source, values in layers:
        for key, value in values.items():
            settings.values[key] = value
            settings.sources[key] = source
    return settings


def _check_key(key: str) -> None:
    if key not in KEYS:
        raise ConfigError(
            [
                Issue(
                    key,
                    f"is not an smglm setting; settings are {list(KEYS)}."
                    f"{did_you_mean(key, list(KEYS))}",
                    key,
                )
            ]
        )


def _parse_value(key: str, raw: Any) -> Any:
    """Check ``raw`` for ``key`` (JobConfig's rules) and return the value to store."""
    if key == "tracking":
        text = str(raw).strip().lower()
        table = {"auto": "auto", "true": True, "1": True, "yes": True, "on": True}
        table |= {"false": False, "0": False, "no": False, "off": False}
        if text not in table:
            raise ConfigError([Issue("tracking", f"must be auto, true or false; got {raw!r}", raw)])
        return table[text]
    if key == "verbosity":
        text = str(raw).strip().lower()
        if text not in VERBOSITY:
            raise ConfigError(
                [Issue("verbosity", f"must be one of {list(VERBOSITY)}; got {raw!r}", raw)]
            )
        return text
    value = str(raw).strip()
    target = KEYS[key].field
    assert target is not None
    if key == "backend":
        from smglm.launch.backend import backend_entry

        backend_entry(value)  # raises ConfigError naming the field and the registered names
    from smglm.config import JobConfig

    JobConfig.from_dict({target: value})  # raises ConfigError naming the field
    return value


def set_values(assignments: Mapping[str, Any]) -> Settings:
    """Check and set ``key -> value`` for this session and in the user config file."""
    for key in assignments:
        _check_key(key)
    parsed = {key: _parse_value(key, raw) for key, raw in assignments.items()}
    _write_user_file(lambda data: data.update(parsed))
    _SESSION.update(parsed)
    return load_settings()


def unset_values(keys: list[str]) -> Settings:
    """Remove ``keys`` from this session and from the user config file."""
    for key in keys:
        _check_key(key)

    def drop(data: dict[str, Any]) -> None:
        for key in keys:
            data.pop(key, None)

    _write_user_file(drop)
    for key in keys:
        _SESSION.pop(key, None)
    return load_settings()


def _write_user_file(change: Any) -> None:
    import yaml

    path = config_file()
    data = _read_yaml(path)
    change(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
