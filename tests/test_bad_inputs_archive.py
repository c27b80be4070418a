"""The bad-input table, entry "archive": crafted model archives fed to every reader.

Each archive is fed to the three readers of a model archive: the model server
(``load_serving_model``: the root ``model.json`` read in memory), a batch job's model channel
(``model_dir_from_channel`` then ``PortableModel.load``, as ``predict`` and ``evaluate`` do) and
the launcher's download (``extract_tar``, as ``Job.artifacts`` does). An archive-level problem
is refused by all three with the same message; a model-level one (no ``model.json``, not JSON,
another format) is unpacked by the launcher and refused by the two that load the model. A
refusal leaves nothing behind (no destination folder, no temporary folder). Accepted archives
load the same model in the server and in a batch job.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

from bad_inputs import Case, ids
from helpers import ml_tree
from smglm.archive import MAX_MEMBERS
from smglm.errors import BackendError, ConfigError, ModelError
from smglm.glm import PortableModel
from smglm.launch.job import Job
from smglm.launch.spec import Channel, JobSpec
from smglm.launch.storage import extract_tar, file_path
from smglm.launch.testing import FakeBackend
from smglm.runtime.channels import model_dir_from_channel
from smglm.runtime.paths import MLPaths
from smglm.runtime.serve import load_serving_model

MODEL = {
    "format": "smglm.glm",
    "format_version": 1,
    "smglm_version": "0.1.0",
    "family": "poisson",
    "link": "log",
    "intercept": -1.5,
    "terms": [{"type": "numeric", "name": "x", "coefficient": 0.25}],
    "target": "y",
}
GOOD = json.dumps(MODEL).encode()
OTHER = json.dumps({**MODEL, "intercept": 9.0}).encode()
MiB = 1024 * 1024


# -- archive builders ------------------------------------------------------------------------
def _member(name: str, data: bytes | None = None, kind: bytes = tarfile.REGTYPE, **attrs: Any):
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    if kind == tarfile.REGTYPE:
        info.size = len(data or b"")
    return info, data


def _tar(*members: tuple[tarfile.TarInfo, bytes | None], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:  # type: ignore[call-overload]
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _good(*extra: tuple[tarfile.TarInfo, bytes | None], mode: str = "w:gz") -> bytes:
    return _tar(_member("model.json", GOOD), *extra, mode=mode)


def _declared(name: str, size: int) -> bytes:
    """A tar whose member declares ``size`` bytes but holds none (a lying header)."""
    info = tarfile.TarInfo(name)
    info.size = size
    raw = info.tobuf(format=tarfile.GNU_FORMAT)
    return gzip.compress(raw + b"\0" * 1024)


def _many(n: int) -> bytes:
    return _tar(
        _member("model.json", GOOD), *[_member(f"d{i}", kind=tarfile.DIRTYPE) for i in range(n)]
    )


def _bomb() -> bytes:
    # 2 MiB of zeros compress to about 2 KiB; the test lowers the limit to 1 MiB
    return _good(_member("data/zeros.bin", b"\0" * (2 * MiB)))


_TRUNCATED = _good(_member("coefficients.csv", bytes(range(256)) * 400))

# archive-level: every reader refuses with the fragment
ARCHIVE = "archive"
# model-level: extract_tar unpacks it; the server and a batch job refuse it
MODEL_LEVEL = "model"

CASES: list[Case] = [
    # unreadable files
    Case("empty-file", "archive", lambda: b"", "is empty (0 bytes)"),
    Case("plain-text", "archive", lambda: b"not an archive\n" * 20, "is not a tar archive"),
    Case("gzip-of-text", "archive", lambda: gzip.compress(b"x" * 1000), "is not a tar archive"),
    Case("truncated-half", "archive", lambda: _TRUNCATED[: len(_TRUNCATED) // 2], "truncated"),
    Case("truncated-10-bytes", "archive", lambda: _TRUNCATED[:10], "truncated"),
    Case("gzip-trailer-cut", "archive", lambda: _TRUNCATED[:-8], "truncated"),
    Case(
        "gzip-garbage-after",
        "archive",
        lambda: _TRUNCATED + b"garbage!" * 4,
        "corrupt",
    ),
    Case("lying-size-header", "archive", lambda: _declared("model.json", 10**12), "MiB"),
    # names outside the folder
    Case("absolute-name", "archive", lambda: _good(_member("/etc/evil", b"x")), "outside"),
    Case("dotdot-name", "archive", lambda: _good(_member("../evil", b"x")), "outside"),
    Case("nested-dotdot", "archive", lambda: _good(_member("a/../../evil", b"x")), "outside"),
    Case("backslash-dotdot", "archive", lambda: _good(_member("..\\evil", b"x")), "outside"),
    Case("drive-letter", "archive", lambda: _good(_member("C:/evil", b"x")), "outside"),
    Case("file-named-dot", "archive", lambda: _good(_member(".", b"x")), "without a name"),
    # links and special files
    Case(
        "symlink",
        "archive",
        lambda: _good(_member("link", kind=tarfile.SYMTYPE, linkname="/etc/passwd")),
        "a link",
    ),
    Case(
        "symlink-as-model-json",
        "archive",
        lambda: _tar(_member("model.json", kind=tarfile.SYMTYPE, linkname="/etc/passwd")),
        "a link",
    ),
    Case(
        "hardlink",
        "archive",
        lambda: _good(_member("hard", kind=tarfile.LNKTYPE, linkname="model.json")),
        "a link",
    ),
    Case("char-device", "archive", lambda: _good(_member("tty", kind=tarfile.CHRTYPE)), "special"),
    Case("block-device", "archive", lambda: _good(_member("sda", kind=tarfile.BLKTYPE)), "special"),
    Case("fifo", "archive", lambda: _good(_member("pipe", kind=tarfile.FIFOTYPE)), "special"),
    # the same path twice: every reader must see the same files
    Case(
        "two-model-json",
        "archive",
        lambda: _tar(_member("model.json", GOOD), _member("model.json", OTHER)),
        "same path",
    ),
    Case(
        "model-json-and-dot-slash",
        "archive",
        lambda: _tar(_member("model.json", GOOD), _member("./model.json", OTHER)),
        "same path",
    ),
    Case(
        "model-json-double-slash",
        "archive",
        lambda: _tar(_member("sub/model.json", GOOD), _member("sub//model.json", OTHER)),
        "same path",
    ),
    Case(
        "file-then-folder-under-it",
        "archive",
        lambda: _good(_member("a", b"x"), _member("a/b", b"y")),
        "which is a file",
    ),
    Case(
        "folder-under-a-later-file",
        "archive",
        lambda: _good(_member("a/b", b"y"), _member("a", b"x")),
        "which is a file",
    ),
    Case(
        "folder-then-file-same-name",
        "archive",
        lambda: _tar(_member("model.json", kind=tarfile.DIRTYPE), _member("model.json", GOOD)),
        "same path",
    ),
    # sizes
    Case("bomb-over-limit", "archive", _bomb, "more than 1 MiB", {"limit_mb": "1"}),
    Case(
        "many-members-over-limit",
        "archive",
        lambda: _good(*[_member(f"part{i}.bin", b"\0" * (300 * 1024)) for i in range(4)]),
        "more than 1 MiB",
        {"limit_mb": "1"},
    ),
    Case("too-many-members", "archive", lambda: _many(MAX_MEMBERS + 1), f"more than {MAX_MEMBERS}"),
    Case(
        "limit-zero",
        "archive",
        _good,
        "SMGLM_MAX_ARCHIVE_MB",
        {"limit_mb": "0", "error": ConfigError},
    ),
    Case(
        "limit-not-a-number",
        "archive",
        _good,
        "SMGLM_MAX_ARCHIVE_MB",
        {"limit_mb": "lots", "error": ConfigError},
    ),
    # model-level problems: the archive is sound, its model is not
    Case(
        "no-model-json",
        "archive",
        lambda: _tar(_member("coefficients.csv", b"term,estimate\n")),
        "model.json",
        {"level": MODEL_LEVEL},
    ),
    Case("empty-tar", "archive", lambda: _tar(), "model.json", {"level": MODEL_LEVEL}),
    Case(
        "model-json-is-a-folder",
        "archive",
        lambda: _tar(_member("model.json", kind=tarfile.DIRTYPE), _member("model.json/x", b"{}")),
        "model.json",
        {"level": MODEL_LEVEL},
    ),
    Case(
        "two-nested-model-json",
        "archive",
        lambda: _tar(_member("a/model.json", GOOD), _member("b/model.json", OTHER)),
        "model.json",
        {"level": MODEL_LEVEL},
    ),
    Case(
        "model-json-not-json",
        "archive",
        lambda: _tar(_member("model.json", b"{not json")),
        "not JSON",
        {"level": MODEL_LEVEL},
    ),
    Case(
        "model-json-not-utf8",
        "archive",
        lambda: _tar(_member("model.json", b'{"a": "\xff\xfe"}')),
        "not JSON",
        {"level": MODEL_LEVEL},
    ),
    Case(
        "model-json-a-list",
        "archive",
        lambda: _tar(_member("model.json", b"[1, 2]")),
        "not an smglm model",
        {"level": MODEL_LEVEL},
    ),
    Case(
        "wrong-format",
        "archive",
        lambda: _tar(_member("model.json", json.dumps({**MODEL, "format": "x"}).encode())),
        "not an smglm model",
        {"level": MODEL_LEVEL},
    ),
    Case(
        "future-format-version",
        "archive",
        lambda: _tar(_member("model.json", json.dumps({**MODEL, "format_version": 99}).encode())),
        "format_version 99",
        {"level": MODEL_LEVEL},
    ),
    Case(
        "terms-malformed",
        "archive",
        lambda: _tar(_member("model.json", json.dumps({**MODEL, "terms": [{}]}).encode())),
        "malformed",
        {"level": MODEL_LEVEL},
    ),
    # correct accepts
    Case("minimal", "archive", _good, None),
    Case(
        "dot-slash-names-and-root-entry",
        "archive",
        lambda: _tar(_member(".", kind=tarfile.DIRTYPE), _member("./model.json", GOOD)),
        None,
    ),
    Case(
        "with-mlflow-copy",
        "archive",
        lambda: _good(
            _member("mlflow_model/model.json", GOOD), _member("mlflow_model/MLmodel", b"x")
        ),
        None,
    ),
    Case(
        "folder-entries-twice",
        "archive",
        lambda: _good(
            _member("sub", kind=tarfile.DIRTYPE),
            _member("sub/", kind=tarfile.DIRTYPE),
            _member("sub/coefficients.csv", b"term\n"),
        ),
        None,
    ),
    Case("uncompressed-tar", "archive", lambda: _good(mode="w"), None),
    Case("bzip2-tar", "archive", lambda: _good(mode="w:bz2"), None),
    Case("xz-tar", "archive", lambda: _good(mode="w:xz"), None),
    Case(
        "just-under-the-limit",
        "archive",
        lambda: _good(_member("data/zeros.bin", b"\0" * (MiB - 4096))),
        None,
        {"limit_mb": "1"},
    ),
]


def _batch_load(archive: Path, root: Path) -> PortableModel:
    """What ``predict`` and ``evaluate`` do with a model channel holding ``archive``."""
    tree = ml_tree(root, {"model": {"model.tar.gz": archive}})
    paths = MLPaths(tree)
    channels = paths.read_input_data_config()
    with tempfile.TemporaryDirectory(prefix="smglm-model-") as tmp:
        return PortableModel.load(model_dir_from_channel(paths, channels, Path(tmp)))


def _leftovers(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_archive(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert case.entry == "archive"
    if "limit_mb" in case.extra:
        monkeypatch.setenv("SMGLM_MAX_ARCHIVE_MB", case.extra["limit_mb"])
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(case.given())
    dest = tmp_path / "out" / "model"
    if case.accepted:
        served = load_serving_model(archive)
        assert served == PortableModel.from_dict(MODEL)
        assert _batch_load(archive, tmp_path / "ml") == served  # the same model everywhere
        written = extract_tar(archive, dest)
        assert (dest / "model.json").read_bytes() == GOOD and dest / "model.json" in written
        assert _leftovers(dest.parent) == []
        return
    error = case.extra.get("error")
    level = case.extra.get("level", ARCHIVE)
    for reader in ("serve", "batch", "launch"):
        expected = error or (BackendError if reader == "launch" else ModelError)
        if level == MODEL_LEVEL and reader == "launch":
            extract_tar(archive, dest)  # a sound archive: unpacked
            continue
        with pytest.raises(expected) as raised:
            if reader == "serve":
                load_serving_model(archive)
            elif reader == "batch":
                _batch_load(archive, tmp_path / f"ml-{reader}")
            else:
                extract_tar(archive, dest)
        message = str(raised.value)
        assert case.expect in message, f"{reader}: {message}"
        assert "Traceback" not in message
        if reader == "launch":
            assert not dest.exists() and _leftovers(dest.parent) == []


def test_the_table_has_enough_cases() -> None:
    assert len(CASES) >= 25
    assert sum(c.accepted for c in CASES) >= 5


# -- the download cache ------------------------------------------------------------------------
def test_a_failed_extraction_is_never_served_from_the_cache(tmp_path: Path) -> None:
    """A model archive whose tail is cut: ``model.json`` comes first and would be written
    before the error; the next call must download and unpack again, not find it cached."""
    model_dir = tmp_path / "model-src"
    model_dir.mkdir()
    (model_dir / "model.json").write_bytes(GOOD)
    backend = FakeBackend(tmp_path / "home", script=["Completed"], model_dir=model_dir)
    spec = JobSpec(
        name="job-1",
        image_uri="smglm-fake",
        output_path=(tmp_path / "store").as_uri(),
        channels=(Channel("train", (tmp_path / "data").as_uri()),),
    )
    backend.launch(spec)
    stored = file_path(spec.model_artifacts_uri)
    stored.parent.mkdir(parents=True)
    stored.write_bytes(_TRUNCATED[: len(_TRUNCATED) * 3 // 4])  # model.json, then cut
    job = Job("job-1", backend)
    with pytest.raises(BackendError, match="truncated"):
        job.artifacts()
    folder = Path(backend.home) / "artifacts" / "job-1"
    assert not (folder / "model").exists()
    with pytest.raises(BackendError, match="truncated"):
        job.artifacts()  # still refused: nothing was cached
    stored.write_bytes(_good(_member("coefficients.csv", b"term\n")))
    fresh = Job("job-1", backend)
    assert fresh.artifacts() == folder
    assert (folder / "model" / "model.json").read_bytes() == GOOD
    assert (folder / ".smglm-artifacts.json").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".download")]


def test_cache_of_a_half_unpacked_folder_is_redone(tmp_path: Path) -> None:
    """A folder left by an older version (model.json there, no completeness marker) is
    unpacked again, not trusted."""
    model_dir = tmp_path / "model-src"
    model_dir.mkdir()
    (model_dir / "model.json").write_bytes(GOOD)
    (model_dir / "coefficients.csv").write_bytes(b"term\n")
    backend = FakeBackend(tmp_path / "home", script=["Completed"], model_dir=model_dir)
    spec = JobSpec(
        name="job-2",
        image_uri="smglm-fake",
        output_path=(tmp_path / "store").as_uri(),
        channels=(Channel("train", (tmp_path / "data").as_uri()),),
    )
    backend.launch(spec)
    folder = Path(backend.home) / "artifacts" / "job-2"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "model.json").write_bytes(OTHER)  # half of an older, failed unpacking
    Job("job-2", backend).artifacts()
    assert (folder / "model" / "model.json").read_bytes() == GOOD
    assert (folder / "model" / "coefficients.csv").exists()


@pytest.mark.parametrize("compress", [bz2.compress, lzma.compress])
def test_compressed_garbage_is_not_a_tar(compress: Any, tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(compress(b"hello" * 100))
    with pytest.raises(ModelError, match="not a tar archive"):
        load_serving_model(archive)
