"""The data's upload in bytes: S3 uploads through moto's server report cumulative bytes to a
``progress`` callback (0 first, the object's size last, multipart included), ``smglm.train``
passes it down, and the notebook's :class:`~smglm.notebook.panel.UploadLine` draws it as one
line updated in place (nothing for a fast upload)."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from smglm.launch.inputs import upload_data
from smglm.launch.storage import FileStorage, S3Storage
from smglm.notebook.panel import UploadLine

BUCKET = "smglm-progress"


class Heard:
    """An UploadProgress callback that keeps what it heard."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, name: str, done: int, total: int) -> None:
        self.calls.append((name, done, total))

    def of(self, name: str) -> list[int]:
        return [done for n, done, _ in self.calls if n == name]


def _assert_cumulative(heard: Heard, name: str, size: int) -> list[int]:
    done = heard.of(name)
    assert done[0] == 0 and done[-1] == size, done
    assert all(b >= a for a, b in itertools.pairwise(done)), done
    assert all(total == size for n, _, total in heard.calls if n == name)
    return done


def test_s3_multipart_upload_reports_cumulative_bytes(boto_session: Any, tmp_path: Path) -> None:
    s3 = boto_session.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    path = tmp_path / "big.bin"
    size = 20 * 1024 * 1024 + 123  # three 8 MiB parts
    path.write_bytes(os.urandom(size))
    heard = Heard()
    S3Storage(s3).upload_file(path, f"s3://{BUCKET}/data/big.bin", progress=heard)
    done = _assert_cumulative(heard, "big.bin", size)
    assert len(done) >= 4  # 0, at least one call per part and the end
    assert s3.head_object(Bucket=BUCKET, Key="data/big.bin")["ContentLength"] == size


def test_a_dataframe_upload_reports_its_parquet_and_a_second_upload_nothing(
    boto_session: Any,
) -> None:
    s3 = boto_session.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    frame = pd.DataFrame({"y": range(50_000), "x": [f"level{i % 97}" for i in range(50_000)]})
    heard = Heard()
    up = upload_data(frame, f"s3://{BUCKET}/smglm", s3_client=s3, progress=heard)
    key = up.uri.removeprefix(f"s3://{BUCKET}/") + "train.parquet"
    size = s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    _assert_cumulative(heard, "train.parquet", size)
    again = Heard()
    assert upload_data(frame, f"s3://{BUCKET}/smglm", s3_client=s3, progress=again).reused
    assert again.calls == []  # the same content is not sent again, nor reported


def test_file_storage_reports_start_and_end(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("y,x\n1,2\n")
    heard = Heard()
    FileStorage().upload_file(path, f"file://{tmp_path}/store/data.csv", progress=heard)
    assert heard.calls == [("data.csv", 0, 8), ("data.csv", 8, 8)]
    assert (tmp_path / "store" / "data.csv").read_text() == "y,x\n1,2\n"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_upload_line_shows_slow_uploads_in_mb_and_keeps_one_line_per_object() -> None:
    shown: list[dict[str, str]] = []
    clock = Clock()
    line = UploadLine(shown.append, delay=0.5, interval=0.2, clock=clock)
    total = 40_000_000
    line("train.parquet", 0, total)
    clock.now += 0.3
    line("train.parquet", 8_000_000, total)
    assert shown == []  # under half a second: nothing yet
    clock.now += 0.3
    line("train.parquet", 16_000_000, total)
    assert shown[-1]["text/plain"] == (
        "upload train.parquet: [########------------] 16/40 MB · 26.7 MB/s"
    )
    assert "<progress value='16' max='40'>" in shown[-1]["text/html"]
    clock.now += 0.1
    line("train.parquet", 24_000_000, total)
    assert len(shown) == 1  # redrawn at most every 0.2 s
    clock.now += 0.6
    line("train.parquet", total, total)
    assert shown[-1]["text/plain"] == "uploaded train.parquet: 40 MB in 1.3 s (30.8 MB/s)"
    # the test data: fast, so it never shows, and the data's line stays
    line("test.parquet", 0, 1000)
    clock.now += 0.01
    line("test.parquet", 1000, 1000)
    assert shown[-1]["text/plain"] == "uploaded train.parquet: 40 MB in 1.3 s (30.8 MB/s)"
    assert len(shown) == 2


def test_upload_line_stays_silent_for_a_fast_upload() -> None:
    shown: list[dict[str, str]] = []
    clock = Clock()
    line = UploadLine(shown.append, clock=clock)
    line("train.parquet", 0, 5_000_000)
    clock.now += 0.2
    line("train.parquet", 5_000_000, 5_000_000)
    assert shown == []


@pytest.mark.slow
@pytest.mark.notebook
def test_in_a_kernel_the_upload_line_is_one_display_updated_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a real Jupyter kernel, ``%%sm_train``'s upload line is one display (with an id),
    updated in place, that ends as the finished upload's line."""
    from test_notebooks import execute

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import time\n"
            "from smglm.notebook.cmd.train import upload_line\n"
            "line = upload_line()\n"
            "assert line is not None\n"
            "line('train.parquet', 0, 30_000_000)\n"
            "time.sleep(0.6)\n"
            "line('train.parquet', 10_000_000, 30_000_000)\n"
            "time.sleep(0.3)\n"
            "line('train.parquet', 30_000_000, 30_000_000)\n"
        )
    ]
    path = tmp_path / "upload.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setenv("JUPYTER_PATH", "")  # restored after the test (execute() sets it)
    done = execute(path, tmp_path / "work")
    outputs = done.cells[0].outputs
    shown = [o for o in outputs if o.output_type == "display_data"]
    # nbclient applies each update to the display it names: the progress bar drawn at 0.6 s
    # was replaced in place, so the saved cell holds one display, the finished line
    assert len(shown) == 1, outputs
    text = shown[0].data["text/plain"]
    assert re.fullmatch(r"uploaded train\.parquet: 30 MB in \d+\.\d s \([\d.]+ MB/s\)", text), text
    assert "smglm-upload" in shown[0].data["text/html"]
    assert not [o for o in outputs if o.output_type == "error"]
