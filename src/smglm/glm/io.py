"""Reading data files: CSV, gzip CSV, TSV and Parquet, one file or a folder of them, all of
their columns or only those a model uses.

What a folder means is decided in one place, :func:`data_files`: the visible files of one data
format. The local data checks, the upload of a folder and the training job's channels all read
a folder through it, so the job fits exactly the rows that were checked before launch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from smglm.errors import DataError, Issue

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DATA_SUFFIXES",
    "EXACT_FLOATS",
    "SOURCE_COLUMNS",
    "data_files",
    "folder_files",
    "is_hidden",
    "read_table",
    "source_columns",
]

log = logging.getLogger(__name__)

#: ``pandas.read_csv`` options that read every float back exactly as it was written (``repr``,
#: ``%.17g``): pandas 2's default parser is off in the last bit for about half of such numbers;
#: pandas 3's is exact (and deprecates the option).
EXACT_FLOATS: dict[str, Any] = (
    {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
)
#: The file names smglm reads as data (case-insensitive), by format.
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
DATA_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
#: A file or folder whose name starts with one of these is hidden: skipped in a data folder
#: (as pyarrow's datasets do: ``.cache/``, ``.DS_Store``, Spark's ``_SUCCESS`` and
#: ``_temporary/``).
HIDDEN_PREFIXES = (".", "_")


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    return None


def is_hidden(path: Path, folder: Path) -> bool:
    """Whether ``path`` (inside ``folder``) is hidden: a part of its name below ``folder``
    starts with ``.`` or ``_``."""
    return any(part.startswith(HIDDEN_PREFIXES) for part in path.relative_to(folder).parts)


def folder_files(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """Sort a folder's files (recursively) into (data files, hidden files, other files), each
    sorted; no check, no log. See :func:`data_files`."""
    data: list[Path] = []
    hidden: list[Path] = []
    other: list[Path] = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        if is_hidden(p, folder):
            hidden.append(p)
        elif _kind(p) is None:
            other.append(p)
        else:
            data.append(p)
    return data, hidden, other


def data_files(folder: str | Path, *, what: str = "data") -> list[Path]:
    """The data files a folder means, sorted: its visible files (recursively) of one format.

    Hidden files and folders (a name starting with ``.`` or ``_``: ``.cache/old.csv``,
    ``_SUCCESS``) and files of no data format (``notes.txt``) are skipped, with a log line
    naming them. CSV-like files (``.csv``, ``.csv.gz``, ``.csv.bz2``, ``.tsv``) and Parquet
    files (``.parquet``, ``.pq``) in one folder are refused, as is a folder with no data file:
    :class:`~smglm.errors.DataError`, naming the files found.
    """
    folder = Path(folder)
    files, hidden, other = folder_files(folder)

    def names(paths: list[Path]) -> list[str]:
        shown = [p.relative_to(folder).as_posix() for p in paths[:10]]
        return shown + ([f"... {len(paths) - 10} more"] if len(paths) > 10 else [])

    if hidden:
        log.info(
            "%s: skipping %d hidden file(s) in %s: %s", what, len(hidden), folder, names(hidden)
        )
    if other:
        log.info(
            "%s: skipping %d file(s) that are not data (suffixes %s) in %s: %s",
            what,
            len(other),
            list(DATA_SUFFIXES),
            folder,
            names(other),
        )
    if not files:
        skipped = (f"; skipped hidden {names(hidden)}" if hidden else "") + (
            f"; skipped {names(other)}" if other else ""
        )
        raise DataError(
            [
                Issue(
                    what,
                    f"folder {str(folder)!r} holds no CSV or Parquet file "
                    f"(suffixes {list(DATA_SUFFIXES)}){skipped or '; it is empty'}",
                    str(folder),
                )
            ]
        )
    kinds = {_kind(p) for p in files}
    if len(kinds) > 1:
        csv = [p for p in files if _kind(p) == "csv"]
        parquet = [p for p in files if _kind(p) == "parquet"]
        raise DataError(
            [
                Issue(
                    what,
                    f"folder {str(folder)!r} mixes CSV files {names(csv)} and Parquet files "
                    f"{names(parquet)}; a data folder holds files of one format: move the "
                    "others out",
                    str(folder),
                )
            ]
        )
    return files


#: ``DataFrame.attrs`` key of the columns a file had when :func:`read_table` read fewer of them;
#: :func:`prepare` suggests names from it when a column is missing.
SOURCE_COLUMNS = "smglm.source_columns"


def read_table(
    source: pd.DataFrame | str | Path,
    *,
    what: str = "data",
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a DataFrame from a CSV/Parquet file, or from the files of a folder (concatenated;
    which files, :func:`data_files` says).

    String columns are read as such; :func:`prepare` turns them into categoricals. With
    ``columns``, only those of them that the files have are read (in the files' order): a
    model of 10 columns from a file of 200 reads 10. A DataFrame is returned as it is.
    """
    if isinstance(source, pd.DataFrame):
        return source
    wanted = None if columns is None else set(columns)
    path = Path(source)
    if path.is_dir():
        files = data_files(path, what=what)
        frames = [_read_file(p, what, wanted) for p in files]
        if len(frames) == 1:
            return frames[0]
        cols = source_columns(frames[0])
        for p, f in zip(files[1:], frames[1:], strict=True):
            if source_columns(f) != cols:
                raise DataError(
                    [
                        Issue(
                            what,
                            f"{p.name} has columns {source_columns(f)}, but {files[0].name} "
                            f"has {cols}; every file of a folder must have the same columns",
                            p.name,
                        )
                    ]
                )
        # a file of a header only has untyped (object) columns, which would make every
        # column of the concatenation object: leave it out
        with_rows = [f for f in frames if len(f)] or frames[:1]
        combined = pd.concat(with_rows, ignore_index=True)
        if SOURCE_COLUMNS in frames[0].attrs:
            combined.attrs[SOURCE_COLUMNS] = cols
        return combined
    if not path.exists():
        raise DataError([Issue(what, f"no such file or folder: {str(path)!r}", str(path))])
    return _read_file(path, what, wanted)


def source_columns(df: pd.DataFrame) -> list[str]:
    """The columns of the file ``df`` was read from (all of them, also those not read)."""
    return list(df.attrs.get(SOURCE_COLUMNS, df.columns))


def _read_file(path: Path, what: str, wanted: set[str] | None = None) -> pd.DataFrame:
    kind = _kind(path)
    try:
        if kind == "parquet":
            if wanted is None:
                return pd.read_parquet(path)
            import pyarrow.parquet as pq

            names = [
                c
                for c in pq.ParquetFile(path).schema_arrow.names
                if not c.startswith("__index_level_")
            ]
            return _pruned(pd.read_parquet(path, columns=[c for c in names if c in wanted]), names)
        if kind == "csv":
            sep = "\t" if path.name.lower().endswith(".tsv") else ","
            _check_header(path, sep, what)
            if wanted is None:
                return pd.read_csv(path, sep=sep, **EXACT_FLOATS)
            names = [str(c) for c in pd.read_csv(path, sep=sep, nrows=0).columns]
            keep = [c for c in names if c in wanted]
            return _pruned(pd.read_csv(path, sep=sep, usecols=keep, **EXACT_FLOATS), names)
    except DataError:
        raise
    except Exception as exc:  # pyarrow/pandas raise many types; all mean "unreadable"
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            [Issue(what, f"cannot read {path.name!r} as {kind}: {msg}", str(path))]
        ) from None
    raise DataError(
        [
            Issue(
                what,
                f"{path.name!r} is not a data file smglm reads; use one of {list(DATA_SUFFIXES)}",
                str(path),
            )
        ]
    )


def _check_header(path: Path, sep: str, what: str) -> None:
    """A CSV header that names a column twice is refused (pandas would rename the second
    ``x.1`` and a model would silently use the first)."""
    header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
    names = [str(v) for v in header.iloc[0]] if len(header) else []
    dupes = sorted(set(pd.Index(names)[pd.Index(names).duplicated()]))
    if dupes:
        raise DataError(
            [
                Issue(
                    what,
                    f"the header of {path.name!r} names column(s) {dupes} more than once; "
                    "column names must be unique: rename or drop the copies",
                    dupes,
                )
            ]
        )


def _pruned(df: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    if len(names) != df.shape[1]:
        df.attrs[SOURCE_COLUMNS] = names
    return df
