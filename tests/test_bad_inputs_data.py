"""The bad-input table, data: folders of files, single files and DataFrames, fed to
``smglm.fit``, the checks before launch, the upload and the training job's channel reader.

A data folder means the visible files of one data format (:func:`smglm.glm.io.data_files`).
Every folder case is read the four ways a folder is read, which must agree: ``smglm.fit``, the
local check before launch, the upload (which files reach the job) and the job's channel
reader. An accepted case names the rows the fit must see (a hidden ``.cache/old.csv`` or a
``notes.txt`` once doubled them); a refused one, the DataError fragment.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import smglm
from bad_inputs import Case, ids, time_limit
from smglm.errors import ConfigError, DataError

CONFIG: dict[str, Any] = {"target": "y", "predictors": ["x", "cat"], "family": "poisson"}
TIME_LIMIT = 60


def _frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "y": rng.poisson(1.0, n).astype(float),
            "x": rng.normal(size=n),
            "cat": rng.choice(["a", "b", "c"], n),
        }
    )


def _csv_text(n: int) -> str:
    return str(_frame(n).to_csv(index=False))


#: A folder's files: relative name -> rows of the frame (written by the name's suffix), or
#: the file's text or bytes.
Files = dict[str, int | str | bytes]


def _folder(case: str, files: Files, expect: str | None, rows: int | None = None) -> Case:
    return Case(case, "data folder", files, expect, {"rows": rows})


def _file(case: str, name: str, content: int | str | bytes, expect: str | None) -> Case:
    return Case(case, "data file", {name: content}, expect, {})


def _fit(
    case: str,
    make: Callable[[], pd.DataFrame],
    expect: str | None,
    field: str | None = None,
    config: dict[str, Any] | None = None,
) -> Case:
    return Case(case, "fit", make, expect, {"field": field, "config": config or {}})


def _periods(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``period`` column (4 periods) and weights ``w`` (the last period's 0)."""
    period = np.arange(len(frame)) % 4 + 2020
    return frame.assign(period=period, w=np.where(period == 2023, 0.0, 1.0))


def _train(case: str, make: Callable[[], pd.DataFrame], expect: str) -> Case:
    return Case(case, "train", make, expect, {})


def _dup(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return pd.concat([frame, frame[[column]]], axis=1)


HEADER = "y,x,cat\n"

CASES: list[Case] = [
    # -- folders: what is read -----------------------------------------------------------
    _folder("one-csv", {"part-0.csv": 40}, None, rows=40),
    _folder("hidden-subfolder", {"part-0.csv": 40, ".cache/old.csv": 40}, None, rows=40),
    _folder("notes-txt", {"part-0.csv": 40, "notes.txt": _csv_text(40)}, None, rows=40),
    _folder("ds-store", {"part-0.csv": 40, ".DS_Store": b"\x00\x01\x02"}, None, rows=40),
    _folder("hidden-csv-file", {"part-0.csv": 40, ".part-0.csv": 40}, None, rows=40),
    _folder(
        "spark-layout",
        {
            "part-0.parquet": 30,
            "part-1.parquet": 30,
            "_SUCCESS": b"",
            "_temporary/0/part-2.parquet": 30,
            ".part-0.parquet.crc": b"crc",
        },
        None,
        rows=60,
    ),
    _folder("nested-visible", {"2024/a.csv": 20, "2025/b.csv": 25}, None, rows=45),
    _folder("csv-and-tsv", {"a.csv": 20, "b.tsv": 20}, None, rows=40),
    _folder("csv-and-gzip", {"a.csv": 20, "b.csv.gz": 15}, None, rows=35),
    _folder("upper-case-suffix", {"A.CSV": 20, "B.Parquet": 0}, "mixes CSV files"),
    _folder("readme-and-parquet", {"a.parquet": 20, "README.md": "# data"}, None, rows=20),
    _folder("header-only-and-data", {"a.csv": HEADER, "b.csv": 20}, None, rows=20),
    # -- folders: refused ----------------------------------------------------------------
    _folder("mixed-csv-parquet", {"a.csv": 20, "b.parquet": 20}, "mixes CSV files ['a.csv']"),
    _folder("mixed-in-subfolders", {"x/a.csv": 20, "y/b.pq": 20}, "Parquet files ['y/b.pq']"),
    _folder("empty-folder", {}, "it is empty"),
    _folder("only-hidden", {".cache/old.csv": 20}, "skipped hidden ['.cache/old.csv']"),
    _folder("only-text", {"notes.txt": _csv_text(5)}, "skipped ['notes.txt']"),
    _folder("header-only", {"a.csv": HEADER}, "has no rows"),
    _folder("zero-byte-csv", {"a.csv": b""}, "cannot read 'a.csv' as csv"),
    _folder("corrupt-parquet", {"a.parquet": b"not parquet"}, "cannot read 'a.parquet'"),
    _folder("corrupt-gzip", {"a.csv.gz": b"not gzip"}, "cannot read 'a.csv.gz'"),
    _folder(
        "other-columns",
        {"a.csv": 20, "b.csv": "y,x\n1,2\n"},
        "every file of a folder must have the same columns",
    ),
    _folder(
        "duplicate-header",
        {"a.csv": "y,x,x,cat\n1,2,3,a\n0,1,2,b\n"},
        "names column(s) ['x'] more than once",
    ),
    # -- single files --------------------------------------------------------------------
    _file("file-txt", "data.txt", _csv_text(10), "is not a data file smglm reads"),
    _file("file-json", "data.json", "[]", "is not a data file smglm reads"),
    _file("file-duplicate-header", "d.csv", "y,cat,cat\n1,a,b\n", "['cat'] more than once"),
    _file("file-empty", "d.csv", b"", "cannot read 'd.csv'"),
    _file("file-accept-bz2", "d.csv.bz2", 30, None),
    # -- DataFrames ----------------------------------------------------------------------
    _fit(
        "df-duplicate-target",
        lambda: _dup(_frame(), "y"),
        "column 'y' appears 2 times in the data",
        "target",
    ),
    _fit(
        "df-duplicate-predictor",
        lambda: _dup(_frame(), "x"),
        "column 'x' appears 2 times",
        "predictors",
    ),
    _fit("df-duplicate-unused-column", lambda: _dup(_frame().assign(z=1.0), "z"), None),
    _fit("df-unused-column-intercept", lambda: _frame().assign(intercept=1.0), None),
    _fit("df-no-rows", lambda: _frame().iloc[:0], "has no rows", "data"),
    _fit("df-missing-column", lambda: _frame().drop(columns="x"), "column 'x' is not in"),
    _fit("df-level-with-brackets", lambda: _frame().assign(cat=lambda d: d.cat + "[1]"), None),
    _train(
        "train-duplicate-unused-column",
        lambda: _dup(_frame().assign(z=1.0), "z"),
        "column(s) ['z'] appear more than once",
    ),
    _train(
        "train-integer-column-names",
        lambda: _frame().assign(**{"7": 1.0}).rename(columns={"7": 7}),
        "column names must be strings",
    ),
    # -- penalty search folds and the split by a column (the cv helper's cases) -------------
    _fit(
        "df-search-group-missing",
        lambda: _frame().assign(g=[None] + [f"p{i % 9}" for i in range(39)]),
        "column 'g' has 1 missing value(s); every row needs a group",
        "penalty.search.cv.group",
        {"penalty": {"search": {"cv": {"folds": 3, "group": "g"}}}},
    ),
    _fit(
        "df-search-period-without-weight",
        lambda: _periods(_frame()),
        "fold 2 of 2 (forward folds on 'period') has no validation rows with a positive weight",
        "penalty.search.cv",
        {"weights": "w", "penalty": {"search": {"cv": {"folds": 2, "by": "period"}}}},
    ),
    _fit(
        "df-search-period-missing",
        lambda: _periods(_frame()).assign(period=lambda d: d.period.where(d.index != 5)),
        "column 'period' has 1 missing value(s); forward folds need a value",
        "penalty.search.cv.by",
        {"penalty": {"search": {"cv": {"folds": 2, "by": "period"}}}},
    ),
    _fit(
        "df-holdout-float-year-absent",
        lambda: _periods(_frame()).assign(period=lambda d: d.period.astype(float)),
        "value 2030 is not in column 'period'; its values are ['2020', '2021', '2022', '2023']",
        "test.holdout",
        {"test": {"by": "period", "holdout": [2030]}},
    ),
]


@pytest.fixture(name="time_limit")
def _time_limit() -> Iterator[None]:
    """Fail a case that runs longer than TIME_LIMIT seconds (a hang, not a slow machine)."""
    with time_limit(TIME_LIMIT):
        yield


def _write(folder: Path, files: Files) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (name, content) in enumerate(files.items()):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            frame = _frame(content, seed)
            lower = name.lower()
            if lower.endswith((".parquet", ".pq")):
                frame.to_parquet(path, index=False)
            elif lower.endswith(".tsv"):
                frame.to_csv(path, sep="\t", index=False)
            else:
                frame.to_csv(path, index=False, compression="infer")
    return folder


def _error(run: Callable[[], Any]) -> DataError | ConfigError | None:
    try:
        run()
    except (DataError, ConfigError) as exc:
        return exc
    return None


def _folder_reads(folder: Path, tmp_path: Path) -> dict[str, Any]:
    """The folder read the four ways: each gives its row count, or its error."""
    from smglm.config import GLMConfig
    from smglm.glm.io import data_files
    from smglm.launch.inputs import _check_local_data, upload_data
    from smglm.runtime.channels import read_data_channel
    from smglm.runtime.paths import MLPaths

    config = GLMConfig.from_dict(CONFIG)
    out: dict[str, Any] = {}
    out["fit"] = _error(lambda: out.update(fit_rows=smglm.fit(config, folder).metrics["train"]))
    out["check"] = _error(lambda: _check_local_data(config, folder, "data"))

    def _upload() -> None:
        up = upload_data(folder, f"file://{tmp_path}/store")
        sent = Path(up.uri.removeprefix("file://"))
        out["uploaded"] = sorted(p.relative_to(sent).as_posix() for p in sent.rglob("*"))
        out["uploaded"] = [n for n in out["uploaded"] if (sent / n).is_file()]
        out["meant"] = [p.relative_to(folder).as_posix() for p in data_files(folder)]

    out["upload"] = _error(_upload)
    root = tmp_path / "ml"
    shutil.copytree(folder, root / "input" / "data" / "train")
    out["channel"] = _error(
        lambda: out.update(channel_rows=len(read_data_channel(MLPaths(root), {}, "train")))
    )
    return out


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_data(case: Case, tmp_path: Path, time_limit: None) -> None:
    config = {**CONFIG, **case.extra.get("config", {})}
    if case.entry == "data folder":
        reads = _folder_reads(_write(tmp_path / "data", case.given), tmp_path)
        errors = {k: reads[k] for k in ("fit", "check", "upload", "channel")}
        if case.accepted:
            assert not any(errors.values()), errors
            assert reads["fit_rows"]["n_obs"] == case.extra["rows"]
            assert reads["channel_rows"] == case.extra["rows"]
            assert reads["uploaded"] == reads["meant"]  # only the files the job will read
            return
        # a refusal comes from every reader that looks at the files (fit, check, channel),
        # and the upload refuses a folder the job could not read
        readers = ("fit", "check") if "no rows" in case.expect else ("fit", "check", "channel")
        for where in readers:
            assert isinstance(errors[where], DataError), (where, errors)
            assert case.expect in str(errors[where]), (where, str(errors[where]))
        if "skipped" in case.expect or "mixes" in case.expect or "empty" in case.expect:
            assert isinstance(errors["upload"], DataError)
        return
    if case.entry == "data file":
        (name,) = case.given
        path = _write(tmp_path / "data", case.given) / name
        if case.accepted:
            assert smglm.fit(config, path).metrics["train"]["n_obs"] == case.given[name]
            return
        with pytest.raises(DataError) as info:
            smglm.fit(config, path)
        assert case.expect in str(info.value)
        assert "data" in info.value.fields
        return
    frame = case.given()
    if case.entry == "train":
        from smglm.launch.testing import FakeBackend

        backend = FakeBackend(tmp_path / "home")
        with pytest.raises(DataError) as info:
            smglm.train(config, frame, backend=backend, tracking=False)
        assert case.expect in str(info.value)
        assert not backend.jobs
        return
    if case.accepted:
        assert smglm.fit(config, frame).metrics["train"]["n_obs"] == len(frame)
        return
    with pytest.raises(DataError) as info:
        smglm.fit(config, frame)
    assert case.expect in str(info.value), str(info.value)
    assert "Traceback" not in str(info.value)
    if case.extra.get("field"):
        assert case.extra["field"] in info.value.fields


def test_data_files_logs_what_it_skips(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from smglm.glm.io import data_files

    folder = _write(tmp_path / "d", {"a.csv": 5, ".cache/old.csv": 5, "notes.txt": "n"})
    with caplog.at_level("INFO", logger="smglm.glm.io"):
        assert [p.name for p in data_files(folder)] == ["a.csv"]
    text = caplog.text
    assert "skipping 1 hidden file(s)" in text and ".cache/old.csv" in text
    assert "not data" in text and "notes.txt" in text


def test_fit_and_train_read_only_the_visible_data_files_of_a_folder(tmp_path: Path) -> None:
    """Issue 12, defect 3: a hidden ``.cache/old.csv`` and a ``notes.txt`` were concatenated
    into the training data (twice the rows). Only ``part-0.csv`` is data, for the fit and
    for the files a job is sent."""
    from smglm.launch.testing import FakeBackend

    folder = _write(
        tmp_path / "data",
        {"part-0.csv": 40, ".cache/old.csv": 40, "notes.txt": _csv_text(40)},
    )
    assert smglm.fit(CONFIG, folder).metrics["train"]["n_obs"] == 40
    backend = FakeBackend(tmp_path / "home")
    smglm.train(CONFIG, folder, backend=backend, tracking=False)
    (job,) = backend.jobs.values()
    (train,) = [c for c in job.spec.channels if c.name == "train"]
    sent = Path(train.uri.removeprefix("file://"))
    assert sorted(p.name for p in sent.rglob("*") if p.is_file()) == ["part-0.csv"]
