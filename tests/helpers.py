"""What several test modules need, written once: a free port, a Jupyter kernelspec that runs
this interpreter, an ``/opt/ml`` tree as SageMaker lays it out, tar archives with one odd
member, statsmodels' design matrix of smglm's terms, and a strict check of a SageMaker request
against botocore's service model.

Imported as ``helpers`` (``tests/`` is on ``sys.path``, as for ``aws_harness``).
"""

from __future__ import annotations

import io
import json
import re
import socket
import sys
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: ``resourceconfig.json`` of a one-instance job, in the extended form of current platforms
#: (``sagemaker-contract.md`` §1.5).
RESOURCE_CONFIG = {
    "current_host": "algo-1",
    "current_instance_type": "ml.m5.xlarge",
    "current_group_name": "homogeneousCluster",
    "hosts": ["algo-1"],
    "instance_groups": [
        {
            "instance_group_name": "homogeneousCluster",
            "instance_type": "ml.m5.xlarge",
            "hosts": ["algo-1"],
        }
    ],
    "network_interface_name": "eth0",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_kernelspec(
    folder: Path, name: str = "python3", display_name: str = "Python 3 (ipykernel)"
) -> Path:
    """A kernelspec ``name`` in ``folder/kernels`` that runs this interpreter; return ``folder``
    (to put first on ``JUPYTER_PATH``)."""
    spec = folder / "kernels" / name
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    body = {"argv": argv, "display_name": display_name, "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(body), encoding="utf-8")
    return folder


#: What a channel's file may be given as: a DataFrame (written by the file's suffix), text or
#: bytes, or a file to copy.
FileContent = pd.DataFrame | str | bytes | Path


def write_frame(df: pd.DataFrame, path: Path) -> None:
    """``df`` as Parquet or CSV by ``path``'s suffix (``.csv.gz`` compressed)."""
    if path.name.endswith(".parquet"):
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)


def ml_tree(
    root: Path,
    channels: Mapping[str, Mapping[str, FileContent]],
    *,
    channel_config: Mapping[str, Mapping[str, str]] | None = None,
    hyperparameters: Mapping[str, str] | None = None,
    resource_config: Mapping[str, object] = RESOURCE_CONFIG,
) -> Path:
    """Lay out ``root`` as SageMaker's ``/opt/ml`` (``sagemaker-contract.md`` §1.2).

    ``channels`` maps each channel to its files (``{"train": {"part-1.csv": df}}``); its entry in
    ``inputdataconfig.json`` is ``TrainingInputMode: File`` plus ``channel_config[channel]``.
    Returns ``root``.
    """
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(dict(hyperparameters or {})))
    (config / "resourceconfig.json").write_text(json.dumps(dict(resource_config)))
    described: dict[str, dict[str, str]] = {}
    for channel, files in channels.items():
        folder = root / "input" / "data" / channel
        folder.mkdir(parents=True)
        for name, content in files.items():
            path = folder / name
            if isinstance(content, pd.DataFrame):
                write_frame(content, path)
            elif isinstance(content, Path):
                path.write_bytes(content.read_bytes())
            elif isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        extra = (channel_config or {}).get(channel, {})
        described[channel] = {"TrainingInputMode": "File", **extra}
    (config / "inputdataconfig.json").write_text(json.dumps(described))
    return root


def tar_bytes(members: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A .tar.gz of ``members`` (a file member's size is set from its bytes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, data in members:
            if member.isfile():
                member.size = len(data or b"")
                tar.addfile(member, io.BytesIO(data or b""))
            else:
                tar.addfile(member)
    return buffer.getvalue()


def design(
    df: pd.DataFrame, terms: Mapping[str, Sequence[object] | None], *, intercept: bool = True
) -> pd.DataFrame:
    """statsmodels' design matrix of smglm's terms, with smglm's term names.

    ``terms`` maps each column, in order, to ``None`` (numeric: the column as float) or its
    levels, reference first (one 0/1 column ``column[level]`` per other level, compared as
    text); ``intercept`` adds the column ``intercept``.
    """
    columns: dict[str, np.ndarray] = {"intercept": np.ones(len(df))} if intercept else {}
    for name, levels in terms.items():
        if levels is None:
            columns[name] = df[name].to_numpy(dtype=float)
            continue
        values = df[name].astype(str).to_numpy()
        for level in list(levels)[1:]:
            columns[f"{name}[{level}]"] = (values == str(level)).astype(float)
    return pd.DataFrame(columns, index=df.index)


def check_against_model(
    request: dict[str, Any], operation: str, service: str = "sagemaker"
) -> None:
    """Assert ``request`` is valid for ``operation`` of ``service``: botocore's validation
    (required members, types, minimums), then what it leaves out: maximum lengths and sizes,
    ranges, enums and the patterns Python's ``re`` can read (not those with ``\\p{...}``)."""
    import botocore.session
    from botocore.validate import validate_parameters

    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    validate_parameters(request, shape)
    problems: list[str] = []
    _walk(request, shape, operation, problems)
    assert not problems, problems


def _walk(value: Any, shape: Any, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        for name, inner in value.items():
            _walk(inner, shape.members[name], f"{path}.{name}", problems)
    elif kind == "list":
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} items > {meta['max']}")
        for i, item in enumerate(value):
            _walk(item, shape.member, f"{path}[{i}]", problems)
    elif kind == "map":
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} entries > {meta['max']}")
        for key, item in value.items():
            _walk(key, shape.key, f"{path} key {key!r}", problems)
            _walk(item, shape.value, f"{path}[{key!r}]", problems)
    elif kind == "string":
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} characters > {meta['max']}")
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} not in {shape.enum}")
        pattern = meta.get("pattern")
        if pattern and "\\p" not in pattern and not re.fullmatch(pattern, value):
            problems.append(f"{path}: {value!r} does not match {pattern}")
    elif kind in ("integer", "long") and "max" in meta and value > meta["max"]:
        problems.append(f"{path}: {value} > {meta['max']}")
