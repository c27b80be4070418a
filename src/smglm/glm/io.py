"""Reading data files: CSV, gzip CSV, TSV and Parquet, one file or a folder of them, all of
their columns or only those a model uses."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from smglm.errors import DataError, Issue

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["DATA_SUFFIXES", "SOURCE_COLUMNS", "read_table", "source_columns"]

DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".tsv")


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".tsv", ".txt", ".csv.bz2")):
        return "csv"
    return None


#: ``DataFrame.attrs`` key of the columns a file had when :func:`read_table` read fewer of them;
#: :func:`prepare` suggests names from it when a column is missing.
SOURCE_COLUMNS = "smglm.source_columns"


def read_table(
    source: pd.DataFrame | str | Path,
    *,
    what: str = "data",
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a DataFrame from a CSV/Parquet file, or every such file of a folder (concatenated).

    String columns are read as such; :func:`prepare` turns them into categoricals. With
    ``columns``, only those of them that the files have are read (in the files' order): a
    model of 10 columns from a file of 200 reads 10. A DataFrame is returned as it is.
    """
    if isinstance(source, pd.DataFrame):
        return source
    wanted = None if columns is None else set(columns)
    path = Path(source)
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".") and _kind(p)
        )
        if not files:
            found = sorted(p.name for p in path.iterdir())[:10]
            raise DataError(
                [
                    Issue(
                        what,
                        f"folder {str(path)!r} holds no CSV or Parquet file "
                        f"(suffixes {list(DATA_SUFFIXES)}); found {found}",
                        str(path),
                    )
                ]
            )
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
        combined = pd.concat(frames, ignore_index=True)
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
            if wanted is None:
                return pd.read_csv(path, sep=sep)
            names = [str(c) for c in pd.read_csv(path, sep=sep, nrows=0).columns]
            keep = [c for c in names if c in wanted]
            return _pruned(pd.read_csv(path, sep=sep, usecols=keep), names)
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


def _pruned(df: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    if len(names) != df.shape[1]:
        df.attrs[SOURCE_COLUMNS] = names
    return df
