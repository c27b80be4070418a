"""The SageMaker Python SDK's configuration file ("intelligent defaults"), read without the SDK.

Admins of regulated SageMaker Studio domains put the settings every job must have (VPC subnets
and security groups, KMS keys, network isolation, tags, the execution role) in the SDK's
configuration file; users' notebooks that use the SDK pick them up. smglm reads the same files
with the SDK's rules, so its jobs follow the same policy, whether or not the SDK is installed:

- Files: the admin file, then the user file. Their default locations are the SDK's,
  ``platformdirs.site_config_dir("sagemaker")/config.yaml`` and
  ``platformdirs.user_config_dir("sagemaker")/config.yaml`` (on Linux
  ``/etc/xdg/sagemaker/config.yaml`` and ``~/.config/sagemaker/config.yaml``, following
  ``XDG_CONFIG_DIRS``/``XDG_CONFIG_HOME``). ``SAGEMAKER_ADMIN_CONFIG_OVERRIDE`` and
  ``SAGEMAKER_USER_CONFIG_OVERRIDE`` replace them: a file, or a folder holding
  ``config.yaml``. A default location that has no file is skipped; an override that names
  nothing is an error, as in the SDK. ``s3://`` locations (which the SDK reads) are refused
  with a clear error: copy the file to this machine and point the variable at it.
- Merging (botocore's ``merge_dicts``, as the SDK does): the user file's values replace the
  admin file's; mappings merge key by key (``Environment`` too); lists (``Tags``,
  ``Subnets``) are replaced whole.
- Applied (:func:`apply_sdk_defaults`, on the sagemaker backend only): a JobConfig field
  left at its default takes the file's value; ``tags`` and ``environment`` gain the file's
  keys they do not set (the JobConfig's value wins per key, as the SDK does for tags). The
  keys read, under ``SageMaker.TrainingJob`` (``SageMaker.ProcessingJob`` for ``engine:
  spark``, in its own shape):

  - ``RoleArn`` -> ``role`` (before Studio's role, :func:`smglm.launch.aws.resolve_role`);
  - ``VpcConfig.Subnets``, ``VpcConfig.SecurityGroupIds`` -> ``subnets``,
    ``security_group_ids`` (ProcessingJob: ``NetworkConfig.VpcConfig.*``);
  - ``EnableNetworkIsolation`` -> ``enable_network_isolation``,
    ``EnableInterContainerTrafficEncryption`` -> ``encrypt_inter_container_traffic``
    (ProcessingJob: under ``NetworkConfig``);
  - ``OutputDataConfig.KmsKeyId`` -> ``output_kms_key`` (ProcessingJob:
    ``ProcessingOutputConfig.KmsKeyId``);
  - ``ResourceConfig.VolumeKmsKeyId`` -> ``volume_kms_key`` (ProcessingJob:
    ``ProcessingResources.ClusterConfig.VolumeKmsKeyId``);
  - ``Tags`` -> ``tags``; ``Environment`` -> ``environment``;

  and ``SageMaker.PythonSDK.Modules.Session.DefaultS3Bucket``/``DefaultS3ObjectKeyPrefix``
  (:attr:`SdkDefaults.default_s3_bucket`, :attr:`SdkDefaults.default_s3_object_key_prefix`).

Every file must have ``SchemaVersion: '1.0'`` (the SDK refuses a file without it), and the
keys above must have the SDK schema's types: a wrong one is a ConfigError naming the file and
the key. Other keys are the SDK's business and are not checked. A boolean the file turns on
(network isolation, encryption) cannot be turned off by the JobConfig: its ``false`` is the
default, which the file's value fills.
"""

from __future__ import annotations

import copy
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from smglm.errors import ConfigError, Issue, short_repr

if TYPE_CHECKING:
    from smglm.config.job import JobConfig

__all__ = [
    "CONFIG_FILE_NAME",
    "SdkDefaults",
    "apply_sdk_defaults",
    "default_config_paths",
    "load_sdk_defaults",
]

#: The file the SDK looks for in a folder.
CONFIG_FILE_NAME = "config.yaml"
_APP_NAME = "sagemaker"
JobKind = Literal["TrainingJob", "ProcessingJob"]
_ROLE_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")

Path_ = tuple[str, ...]


def default_config_paths() -> tuple[Path, Path]:
    """The admin and user config files where the SDK looks by default: platformdirs'
    ``site_config_dir("sagemaker")`` and ``user_config_dir("sagemaker")`` + ``config.yaml``
    (platformdirs when it is installed, as it is wherever the SDK is; else the same rules for
    Linux, macOS and Windows)."""
    try:
        import platformdirs
    except ImportError:
        site, user = _fallback_dirs()
    else:
        site = Path(platformdirs.site_config_dir(_APP_NAME))
        user = Path(platformdirs.user_config_dir(_APP_NAME))
    return site / CONFIG_FILE_NAME, user / CONFIG_FILE_NAME


def _fallback_dirs() -> tuple[Path, Path]:
    """platformdirs' answers, for when it is not installed."""
    if sys.platform == "darwin":
        return (
            Path("/Library/Application Support") / _APP_NAME,
            Path.home() / "Library/Application Support" / _APP_NAME,
        )
    if sys.platform == "win32":
        program_data = os.environ.get("ALLUSERSPROFILE") or r"C:\ProgramData"
        local = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData/Local")
        return Path(program_data) / _APP_NAME / _APP_NAME, Path(local) / _APP_NAME / _APP_NAME
    dirs = os.environ.get("XDG_CONFIG_DIRS", "").strip() or "/etc/xdg"
    home = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(dirs.split(os.pathsep)[0]) / _APP_NAME, Path(home) / _APP_NAME


# -- the shapes of the keys smglm reads (the SDK's config_schema) ---------------------------
_BOOL, _STR, _ROLE, _IDS, _TAGS, _ENV = "bool", "str", "role", "ids", "tags", "env"
_WORDS = {
    _BOOL: "true or false",
    _STR: "a string",
    _ROLE: "an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
    _IDS: "a list of strings",
    _TAGS: "a list of {Key: ..., Value: ...} mappings of strings",
    _ENV: "a mapping of variable names to strings",
}


def _job_keys(kind: JobKind) -> dict[str, Path_]:
    """JobConfig field -> the key under ``SageMaker.<kind>`` that fills it."""
    if kind == "TrainingJob":
        net: Path_ = ()
        out: Path_ = ("OutputDataConfig", "KmsKeyId")
        vol: Path_ = ("ResourceConfig", "VolumeKmsKeyId")
    else:
        net = ("NetworkConfig",)
        out = ("ProcessingOutputConfig", "KmsKeyId")
        vol = ("ProcessingResources", "ClusterConfig", "VolumeKmsKeyId")
    return {
        "role": ("RoleArn",),
        "subnets": (*net, "VpcConfig", "Subnets"),
        "security_group_ids": (*net, "VpcConfig", "SecurityGroupIds"),
        "enable_network_isolation": (*net, "EnableNetworkIsolation"),
        "encrypt_inter_container_traffic": (*net, "EnableInterContainerTrafficEncryption"),
        "output_kms_key": out,
        "volume_kms_key": vol,
        "tags": ("Tags",),
        "environment": ("Environment",),
    }


_FIELD_SHAPES = {
    "role": _ROLE,
    "subnets": _IDS,
    "security_group_ids": _IDS,
    "enable_network_isolation": _BOOL,
    "encrypt_inter_container_traffic": _BOOL,
    "output_kms_key": _STR,
    "volume_kms_key": _STR,
    "tags": _TAGS,
    "environment": _ENV,
}
_SESSION: Path_ = ("SageMaker", "PythonSDK", "Modules", "Session")


def _shapes() -> dict[Path_, str]:
    out: dict[Path_, str] = {
        (*_SESSION, "DefaultS3Bucket"): _STR,
        (*_SESSION, "DefaultS3ObjectKeyPrefix"): _STR,
    }
    kinds: tuple[JobKind, ...] = ("TrainingJob", "ProcessingJob")
    for kind in kinds:
        for name, key in _job_keys(kind).items():
            out[("SageMaker", kind, *key)] = _FIELD_SHAPES[name]
    return out


def _dotted(path: Path_) -> str:
    return ".".join(path)


def _shape_ok(shape: str, value: Any) -> bool:
    if shape == _BOOL:
        return isinstance(value, bool)
    if shape == _STR:
        return isinstance(value, str) and bool(value)
    if shape == _ROLE:
        return isinstance(value, str) and bool(_ROLE_RE.match(value))
    if shape == _IDS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if shape == _TAGS:
        return isinstance(value, list) and all(
            isinstance(t, dict)
            and set(t) == {"Key", "Value"}
            and isinstance(t["Key"], str)
            and isinstance(t["Value"], str)
            for t in value
        )
    if shape == _ENV:
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
    raise AssertionError(shape)


def _check_file(data: Any, source: str) -> dict[str, Any]:
    """The file's mapping, its schema version and the shapes of the keys smglm reads."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            [
                Issue(
                    "",
                    f"the SageMaker SDK config file must be a mapping (SchemaVersion, "
                    f"SageMaker, ...); got {type(data).__name__} {short_repr(data, 60)}",
                    data,
                )
            ],
            source=source,
        )
    if not data:
        return {}
    issues = []
    version = data.get("SchemaVersion")
    if version != "1.0":
        issues.append(
            Issue(
                "SchemaVersion",
                f"must be '1.0' (the only version the SageMaker SDK knows, which it requires); "
                f"got {short_repr(version, 40)}",
                version,
            )
        )
    for path, shape in _shapes().items():
        node: Any = data
        for depth, key in enumerate(path):
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
            last = depth == len(path) - 1
            if not last and not isinstance(node, dict):
                issues.append(
                    Issue(
                        _dotted(path[: depth + 1]),
                        f"must be a mapping; got {type(node).__name__} {short_repr(node, 60)}",
                        node,
                    )
                )
                break
            if last and not _shape_ok(shape, node):
                issues.append(
                    Issue(
                        _dotted(path),
                        f"must be {_WORDS[shape]}; got {type(node).__name__} "
                        f"{short_repr(node, 60)}",
                        node,
                    )
                )
    if issues:
        unique = {(i.field, i.message): i for i in issues}
        raise ConfigError(list(unique.values()), source=source)
    return data


# -- loading ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SdkDefaults:
    """The merged SDK config files.

    Attributes
    ----------
    config
        The merged document (admin, then user).
    source
        The files read, in order (admin first); empty when there is none.
    origins
        For each value (a key path down to a scalar or list, and each ``Environment`` key),
        the file it came from.
    """

    config: dict[str, Any] = field(default_factory=dict)
    source: tuple[str, ...] = ()
    origins: dict[Path_, str] = field(default_factory=dict, repr=False)

    def get(self, *path: str) -> Any:
        """The value at ``path`` (``get("SageMaker", "TrainingJob", "RoleArn")``), else None."""
        node: Any = self.config
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    def origin(self, *path: str) -> str | None:
        """The file the value at ``path`` came from (for a mapping: the last file of its
        keys), else None."""
        if path in self.origins:
            return self.origins[path]
        files = [f for p, f in self.origins.items() if p[: len(path)] == path]
        return files[-1] if files else None

    @property
    def default_s3_bucket(self) -> str | None:
        """``SageMaker.PythonSDK.Modules.Session.DefaultS3Bucket``."""
        value = self.get(*_SESSION, "DefaultS3Bucket")
        return str(value) if value else None

    @property
    def default_s3_object_key_prefix(self) -> str | None:
        """``SageMaker.PythonSDK.Modules.Session.DefaultS3ObjectKeyPrefix``."""
        value = self.get(*_SESSION, "DefaultS3ObjectKeyPrefix")
        return str(value) if value else None


def _locate(value: str | None, default: Path, variable: str) -> Path | None:
    """The file to read for one layer (None: there is none)."""
    if value is None:
        return default if default.is_file() else None
    if value.startswith("s3://"):
        raise ConfigError(
            [
                Issue(
                    variable,
                    f"{value!r}: smglm reads the SageMaker SDK config from this machine only; "
                    "copy the file here (aws s3 cp) and point the variable at it",
                    value,
                )
            ]
        )
    path = Path(value).expanduser()
    if path.is_dir():
        path = path / CONFIG_FILE_NAME
    if path.is_file():
        return path
    if Path(value) == default or path == default:
        return None  # the default location, named explicitly: the SDK skips it too
    raise ConfigError(
        [
            Issue(
                variable,
                f"{value!r} is neither a SageMaker SDK config file nor a folder holding "
                f"{CONFIG_FILE_NAME}",
                value,
            )
        ]
    )


def _merge(
    into: dict[str, Any],
    new: Mapping[str, Any],
    origins: dict[Path_, str],
    file: str,
    path: Path_ = (),
) -> None:
    """botocore's ``merge_dicts``: mappings merge key by key, other values replace."""
    for key, value in new.items():
        here = (*path, key)
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, origins, file, here)
            continue
        into[key] = copy.deepcopy(value)
        for old in [p for p in origins if p[: len(here)] == here]:
            del origins[old]
        _mark(value, here, origins, file)


def _mark(value: Any, path: Path_, origins: dict[Path_, str], file: str) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _mark(inner, (*path, key), origins, file)
    else:
        origins[path] = file


def load_sdk_defaults() -> SdkDefaults:
    """Read and merge the SDK config files (module docstring): the admin file
    (``SAGEMAKER_ADMIN_CONFIG_OVERRIDE``, else the default location), then the user file
    (``SAGEMAKER_USER_CONFIG_OVERRIDE``, else the default location).

    Raises
    ------
    ConfigError
        Naming the variable when an override names no file or folder (or an ``s3://``
        location); naming the file and key when a file is not valid YAML, has no
        ``SchemaVersion: '1.0'`` or a key smglm reads has the wrong type.
    """
    from smglm.config._base import read_mapping
    from smglm.config.environment import (
        SAGEMAKER_ADMIN_CONFIG_OVERRIDE,
        SAGEMAKER_USER_CONFIG_OVERRIDE,
    )

    admin_default, user_default = default_config_paths()
    layers = (
        (SAGEMAKER_ADMIN_CONFIG_OVERRIDE, admin_default),
        (SAGEMAKER_USER_CONFIG_OVERRIDE, user_default),
    )
    merged: dict[str, Any] = {}
    origins: dict[Path_, str] = {}
    sources: list[str] = []
    for variable, default in layers:
        path = _locate(variable.get(), default, variable.name)
        if path is None:
            continue
        try:
            raw = read_mapping(path)
        except ConfigError as exc:
            raise ConfigError(exc.issues, source=str(path)) from None
        data = _check_file(raw, str(path))
        if data:
            _merge(merged, data, origins, str(path))
            sources.append(str(path))
    return SdkDefaults(merged, tuple(sources), origins)


# -- applying --------------------------------------------------------------------------------
def apply_sdk_defaults(
    jc: JobConfig, kind: JobKind | None = None, defaults: SdkDefaults | None = None
) -> tuple[JobConfig, list[str]]:
    """``jc`` with the SDK config's values where it left a field at its default, and one line
    per file saying what was applied from it.

    Parameters
    ----------
    jc
        The job's config.
    kind
        ``TrainingJob`` or ``ProcessingJob`` (default: ``ProcessingJob`` for ``engine:
        spark``, else ``TrainingJob``).
    defaults
        The files' values (default: :func:`load_sdk_defaults`).

    Raises
    ------
    ConfigError
        As :func:`load_sdk_defaults`; and naming the file's key (and the file) when its value
        is not one JobConfig accepts (e.g. a subnet id that is not ``subnet-...``).
    """
    from smglm.config.job import JobConfig

    kind = kind or ("ProcessingJob" if jc.engine == "spark" else "TrainingJob")
    d = defaults if defaults is not None else load_sdk_defaults()
    if not d.config:
        return jc, []
    keys = {name: ("SageMaker", kind, *key) for name, key in _job_keys(kind).items()}
    updates: dict[str, Any] = {}
    said: dict[str, list[str]] = {}  # file -> what was applied from it

    def applied(name: str, what: str | None = None) -> None:
        file = d.origin(*keys[name]) or d.source[-1]
        said.setdefault(file, []).append(f"{name} ({what or _dotted(keys[name][2:])})")

    for name in ("role", "output_kms_key", "volume_kms_key"):
        value = d.get(*keys[name])
        if value is not None and getattr(jc, name) is None:
            updates[name] = value
            applied(name)
    for name in ("enable_network_isolation", "encrypt_inter_container_traffic"):
        if d.get(*keys[name]) is True and not getattr(jc, name):
            updates[name] = True
            applied(name)
    subnets, groups = d.get(*keys["subnets"]), d.get(*keys["security_group_ids"])
    if (subnets or groups) and not jc.subnets and not jc.security_group_ids:
        for name, value in (("subnets", subnets), ("security_group_ids", groups)):
            if value:
                updates[name] = list(value)
                applied(name)
    file_tags = {t["Key"]: t["Value"] for t in d.get(*keys["tags"]) or []}
    added_tags = {k: v for k, v in file_tags.items() if k not in jc.tags}
    if added_tags:
        updates["tags"] = {**jc.tags, **added_tags}
        applied("tags", f"Tags: {', '.join(added_tags)}")
    file_env = d.get(*keys["environment"]) or {}
    added_env = {k: v for k, v in file_env.items() if k not in jc.environment}
    if added_env:
        updates["environment"] = {**jc.environment, **added_env}
        for file in dict.fromkeys(
            d.origin(*keys["environment"], k) or d.source[-1] for k in added_env
        ):
            names = [k for k in added_env if (d.origin(*keys["environment"], k) or "") == file]
            said.setdefault(file, []).append(f"environment (Environment: {', '.join(names)})")
    if not updates:
        return jc, []
    try:
        new = JobConfig.from_dict({**jc.to_dict(), **updates})
    except ConfigError as exc:
        issues = []
        # jc was valid: what is wrong now came from the files (e.g. Subnets without
        # SecurityGroupIds names the missing key, in the file that gave the other)
        given = [f for u in updates if (f := d.origin(*keys[u]))]
        for issue in exc.issues:
            if issue.field in keys:
                path = keys[issue.field]
                file = d.origin(*path) or (given[0] if given else d.source[-1])
                issues.append(Issue(_dotted(path), f"in {file}: {issue.message}", issue.value))
            else:
                issues.append(issue)
        raise ConfigError(issues) from None
    notes = [
        f"SageMaker SDK defaults (SageMaker.{kind}) from {file}: {'; '.join(items)}"
        for file, items in said.items()
    ]
    return new, notes
