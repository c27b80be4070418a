"""A training job's inputs: the data and the GLMConfig, checked here when the data is on this
machine, and uploaded content-addressed under ``<base>/inputs/<hash>/`` (``s3://`` or
``file://``), so that identical inputs are uploaded once.

``<base>`` is the backend's input base (:meth:`~smglm.launch.backend.Backend.default_input_base`:
``s3://<bucket>/<prefix>``, e.g. ``s3://sagemaker-<region>-<account>/smglm``, or
``file://<home>/storage``), not ``JobConfig.output_path``: that one holds the jobs' artifacts
only, ``<output_path>/<job>/output/model.tar.gz`` as the SageMaker SDK lays them out."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smglm.config import GLMConfig
from smglm.launch.storage import UploadProgress, hash_bytes, hash_path, open_storage, split_s3

__all__ = ["DataLike", "Upload", "frame_fingerprint", "upload_config", "upload_data"]

DataLike = Any  # a DataFrame, a local path, or an s3:// / file:// URI


@dataclass(frozen=True)
class Upload:
    """Where an input went, and the hash of its content."""

    uri: str
    sha256: str
    reused: bool


#: This process's memory of DataFrames it has serialized and checked, by content fingerprint
#: (:func:`frame_fingerprint`): the Parquet hash of each, and the (fingerprint, config hash)
#: pairs that passed the data checks. A notebook that launches several jobs on one DataFrame
#: writes and checks it once. Bounded; first in, first out.
_FRAME_DIGESTS: dict[str, str] = {}
_CHECKED: dict[tuple[str, str], None] = {}
_MEMORY = 64


def _remember(memory: dict[Any, Any], key: Any, value: Any) -> None:
    memory[key] = value
    while len(memory) > _MEMORY:
        del memory[next(iter(memory))]


def frame_fingerprint(df: Any) -> str | None:
    """A SHA-256 of a DataFrame's columns, dtypes (categories included) and row values, in
    order (pandas' row hashes; about 20x faster than writing the Parquet file); None when a
    column cannot be hashed."""
    import pandas as pd

    h = hashlib.sha256()
    for column, dtype in df.dtypes.items():
        h.update(repr((str(column), str(dtype))).encode())
        if isinstance(dtype, pd.CategoricalDtype):
            h.update(repr((list(dtype.categories), dtype.ordered)).encode())
    try:
        rows = pd.util.hash_pandas_object(df, index=False).to_numpy()
    except (TypeError, ValueError):
        return None
    h.update(len(df).to_bytes(8, "little"))
    h.update(rows.tobytes())
    return h.hexdigest()


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def upload_data(
    data: DataLike,
    base_uri: str,
    *,
    name: str = "train",
    s3_client: Any | None = None,
    fingerprint: str | None = None,
    progress: UploadProgress | None = None,
) -> Upload:
    """Upload a DataFrame (as Parquet), a file or a folder under ``<base>/inputs/<hash>/``;
    an ``s3://``/``file://`` URI is used as it is. Identical content is uploaded once.

    A DataFrame this process has uploaded before (same :func:`frame_fingerprint`, which is
    computed unless given) is not written to Parquet again when its file is still there.
    ``progress`` (see :data:`~smglm.launch.storage.UploadProgress`) hears the bytes of each
    object actually sent (``<name>.parquet`` for a DataFrame, each file of a folder); an
    object already there is not sent and not reported.
    """
    import pandas as pd

    if isinstance(data, str) and data.startswith(("s3://", "file://")):
        if data.startswith("s3://"):
            split_s3(data)  # a malformed URI, or one with credentials, is refused here
        return Upload(data, hashlib.sha256(data.encode()).hexdigest(), reused=True)
    if isinstance(data, pd.DataFrame):
        _check_writable(data, "test data" if name == "test" else "data")
        fingerprint = fingerprint or frame_fingerprint(data)
        known = _FRAME_DIGESTS.get(fingerprint) if fingerprint else None
        if known is not None:
            uri = _join(base_uri, "inputs", known[:20], f"{name}.parquet")
            if open_storage(uri, s3_client=s3_client).exists(uri):
                return Upload(_join(base_uri, "inputs", known[:20]) + "/", known, reused=True)
        buf = io.BytesIO()
        data.to_parquet(buf, index=False)
        payload = buf.getvalue()
        digest = hash_bytes(payload)
        if fingerprint:
            _remember(_FRAME_DIGESTS, fingerprint, digest)
        uri = _join(base_uri, "inputs", digest[:20], f"{name}.parquet")
        storage = open_storage(uri, s3_client=s3_client)
        if storage.exists(uri):
            return Upload(_join(base_uri, "inputs", digest[:20]) + "/", digest, reused=True)
        storage.upload_bytes(payload, uri, progress=progress)
        return Upload(_join(base_uri, "inputs", digest[:20]) + "/", digest, reused=False)
    path = Path(data)
    if path.is_dir():
        # the files the job will read, as the local checks read them: hidden files, other
        # formats and notes are not uploaded (data_files logs them, or refuses a mixed folder)
        from smglm.glm.io import data_files

        files = data_files(path, what="test data" if name == "test" else "data")
        digest = _hash_files(path, files)
    else:
        digest = hash_path(path)
        files = [path]
    prefix = _join(base_uri, "inputs", digest[:20])
    storage = open_storage(prefix, s3_client=s3_client)
    reused = True
    for f in files:
        rel = f.name if path.is_file() else str(f.relative_to(path))
        target = _join(prefix, rel)
        if not storage.exists(target):
            storage.upload_file(f, target, progress=progress or True)
            reused = False
    return Upload(prefix + "/", digest, reused=reused)


def _check_writable(df: Any, what: str) -> None:
    """A DataFrame goes to the job as Parquet, whose column names are unique strings."""
    from smglm.errors import DataError, Issue

    names = list(df.columns)
    not_str = [c for c in names if not isinstance(c, str)]
    if not_str:
        raise DataError(
            [
                Issue(
                    what,
                    f"column names must be strings to be sent to the job (as Parquet); got "
                    f"{not_str[:5]!r} ({type(not_str[0]).__name__}): rename them, e.g. "
                    "df.columns = df.columns.astype(str)",
                    not_str[:5],
                )
            ]
        )
    dupes = sorted(set(df.columns[df.columns.duplicated()]))
    if dupes:
        raise DataError(
            [
                Issue(
                    what,
                    f"column(s) {dupes} appear more than once in the DataFrame; column names "
                    "must be unique to be sent to the job: rename or drop the copies",
                    dupes,
                )
            ]
        )


def _hash_files(folder: Path, files: list[Path]) -> str:
    """SHA-256 of ``files`` of ``folder`` (their relative names and contents, in order), as
    :func:`~smglm.launch.storage.hash_path` hashes a whole folder."""
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(folder)).encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def upload_config(config: GLMConfig, base_uri: str, *, s3_client: Any | None = None) -> Upload:
    """Upload the resolved GLMConfig as ``glm.json`` under ``<base>/inputs/<hash>/``; one
    larger than the job reads (:data:`~smglm.config._base.MAX_CONFIG_BYTES`) is refused."""
    from smglm.config._base import MAX_CONFIG_BYTES
    from smglm.errors import ConfigError, Issue

    payload = config.to_json().encode()
    if len(payload) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                Issue(
                    "config",
                    f"is {len(payload):,} bytes as JSON, more than the {MAX_CONFIG_BYTES:,} "
                    "bytes a training job reads; use fewer predictors or bounds",
                    len(payload),
                )
            ]
        )
    digest = hash_bytes(payload)
    prefix = _join(base_uri, "inputs", digest[:20])
    uri = _join(prefix, "glm.json")
    storage = open_storage(uri, s3_client=s3_client)
    if storage.exists(uri):
        return Upload(prefix + "/", digest, reused=True)
    storage.upload_bytes(payload, uri)
    return Upload(prefix + "/", digest, reused=False)


def _check_local_data(
    config: GLMConfig,
    data: DataLike,
    what: str,
    fingerprint: str | None = None,
    *,
    split: bool = False,
) -> None:
    """Run the data checks here when the data is on this machine (before any upload); a
    DataFrame that passed them with the same config in this process is not checked again.

    Besides :func:`~smglm.glm.data.prepare`'s checks, the training data (``what="data"``)
    must have every term that ``constraints.bounds`` names, as the job resolves them; with
    ``split`` (no test data given) its ``test: {by, holdout}`` values must be present; and
    the folds of a penalty search must be possible (enough groups or periods).
    """
    import warnings

    import pandas as pd

    from smglm.glm.data import prepare
    from smglm.glm.fitting import _bounds, feature_names
    from smglm.glm.io import read_table

    if isinstance(data, str) and data.startswith(("s3://", "file://")):
        return
    key = (fingerprint, hash_bytes(config.to_json().encode()), split) if fingerprint else None
    if key is not None and key in _CHECKED:
        return
    frame = (
        data
        if isinstance(data, pd.DataFrame)
        else read_table(data, what=what, columns=config.columns)
    )
    if what == "data" and split and config.test is not None and config.test.by is not None:
        from smglm.glm.fitting import split_test

        frame, _ = split_test(frame, config.test)  # DataError on an absent holdout value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare(config, frame, what=what)
    if what == "data" and config.constraints.bounds:
        _bounds(config, prepared, feature_names(prepared))  # DataError on an unknown term
    if what == "data" and config.penalty.search is not None:
        from smglm.glm.search import check_folds

        check_folds(config, frame, prepared)  # DataError on too few groups or periods
    if key is not None:
        _remember(_CHECKED, key, None)
