"""Input channels: finding them, reading data and config channels, and unpacking a model channel.

A channel is a folder ``input/data/<name>/`` (File or FastFile mode; FastFile folders are
read-only, so nothing is written there). Data channels hold one or many CSV (``.csv``,
``.csv.gz``, ``.csv.bz2``, ``.tsv``) or Parquet files, concatenated by
:func:`smglm.glm.read_table`; which files of the folder, :func:`smglm.glm.io.data_files` says
(the visible files of one format: the same rule as the checks before launch). Pipe mode
(FIFOs ``<name>_<epoch>``) is not supported and says so. A model channel holds a model directory
(``model.json`` ...) or a ``model.tar.gz``, unpacked with :func:`safe_extract`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.archive import safe_extract
from smglm.config.environment import max_archive_bytes
from smglm.errors import ConfigError, DataError, Issue, ModelError
from smglm.runtime.paths import MLPaths

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONFIG_SUFFIXES",
    "channel_folder",
    "find_channel",
    "model_dir_from_channel",
    "read_config_channel",
    "read_data_channel",
    "safe_extract",
]

log = logging.getLogger(__name__)

#: File names of a GLMConfig in the ``config`` channel.
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def find_channel(
    paths: MLPaths, channels: Mapping[str, Any], names: Sequence[str], *, required: bool
) -> str | None:
    """The first of ``names`` that is a channel of this job (listed, or a folder), else None.

    Raises ConfigError when ``required`` and none is there, naming the channels the job has.
    """
    for name in names:
        if name in channels or paths.channel_dir(name).is_dir():
            return name
    if required:
        have = sorted(set(channels) | _folders(paths.data_dir))
        wanted = " or ".join(repr(n) for n in names)
        raise ConfigError(
            [
                Issue(
                    f"channels.{names[0]}",
                    f"the {wanted} channel is required but missing; the job has channels {have}",
                    None,
                )
            ]
        )
    return None


def _folders(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()


def channel_folder(paths: MLPaths, channels: Mapping[str, Any], name: str) -> Path:
    """The folder of channel ``name`` (File or FastFile mode; Pipe is refused)."""
    settings = channels.get(name) or {}
    mode = settings.get("TrainingInputMode", "File") if isinstance(settings, dict) else "File"
    if mode == "Pipe":
        raise ConfigError(
            [
                Issue(
                    f"channels.{name}",
                    "uses input mode 'Pipe'; smglm reads channels in 'File' or 'FastFile' mode",
                    mode,
                )
            ]
        )
    folder = paths.channel_dir(name)
    if not folder.is_dir():
        raise DataError(
            [Issue(f"channels.{name}", f"has no folder at {str(folder)!r}", str(folder))]
        )
    return folder


def read_data_channel(
    paths: MLPaths,
    channels: Mapping[str, Any],
    name: str,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read every data file of channel ``name`` into one DataFrame, logging rows and files;
    with ``columns``, only those (see :func:`smglm.glm.read_table`)."""
    from smglm.glm.io import SOURCE_COLUMNS, folder_files, read_table

    folder = channel_folder(paths, channels, name)
    files = folder_files(folder)[0]
    log.info("reading channel %r: %d file(s)", name, len(files))
    # read_table reads the files data_files() means, and logs those it skips
    df = read_table(folder, what=f"{name} channel", columns=columns)
    total = len(df.attrs.get(SOURCE_COLUMNS, df.columns))
    log.info(
        "channel %r: %d rows, %d columns from %d file(s)%s",
        name,
        len(df),
        total,
        len(files),
        f"; read the {df.shape[1]} the config uses" if total != df.shape[1] else "",
    )
    return df


def read_config_channel(paths: MLPaths, channels: Mapping[str, Any], name: str = "config") -> Any:
    """The GLMConfig mapping in channel ``name``: its single YAML or JSON file, parsed."""
    from smglm.config._base import read_mapping
    from smglm.glm.io import is_hidden

    folder = channel_folder(paths, channels, name)
    found = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not is_hidden(p, folder) and p.suffix.lower() in CONFIG_SUFFIXES
    )
    if len(found) != 1:
        others = sorted(p.name for p in folder.rglob("*") if p.is_file())[:10]
        what = "no" if not found else f"{len(found)}"
        raise ConfigError(
            [
                Issue(
                    f"channels.{name}",
                    f"holds {what} GLMConfig file(s) ({'/'.join(CONFIG_SUFFIXES)}); need exactly "
                    f"one; found {others}",
                    others,
                )
            ]
        )
    log.info("reading the config from channel %r: %s", name, found[0].name)
    try:
        return read_mapping(found[0])
    except ConfigError as exc:
        raise ConfigError(exc.issues, source=f"{name} channel file {found[0].name}") from None


def model_dir_from_channel(
    paths: MLPaths, channels: Mapping[str, Any], workdir: Path, name: str = "model"
) -> Path:
    """The model directory in channel ``name``: the folder holding ``model.json``, or the
    contents of the channel's ``model.tar.gz`` unpacked into ``workdir``."""
    folder = channel_folder(paths, channels, name)
    found = _find_model_json(folder)
    if found is not None:
        return found
    archives = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(_ARCHIVE_SUFFIXES)
    )
    if len(archives) != 1:
        listing = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        raise ModelError(
            f"channel {name!r} must hold a model directory (with model.json) or one "
            f"model.tar.gz; found {listing[:10]}"
        )
    log.info("unpacking %s", archives[0].name)
    safe_extract(archives[0], workdir, max_bytes=max_archive_bytes())
    found = _find_model_json(workdir)
    if found is None:
        raise ModelError(f"{archives[0].name} holds no model.json; is it an smglm model?")
    return found


def _find_model_json(folder: Path) -> Path | None:
    if (folder / "model.json").is_file():
        return folder
    hits = sorted(p.parent for p in folder.rglob("model.json") if "mlflow_model" not in p.parts)
    return hits[0] if len(hits) == 1 else None
