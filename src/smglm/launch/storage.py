"""Storage for data, configs and artifacts: ``s3://`` (boto3) and ``file://`` (a folder).

Uploads are content-addressed: data and configs go under ``<base>/inputs/<sha256[:20]>/``, so
identical inputs are uploaded once and a re-run cell reuses them. Uploads report their
progress in bytes to an :data:`UploadProgress` callback when given one (the notebook's upload
line); else multipart uploads (boto3's transfer manager) show a plain progress line when
asked. Model archives are extracted safely: absolute paths, ``..`` and links are refused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import sys
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeAlias
from urllib.parse import unquote, urlparse

from smglm.archive import safe_extract
from smglm.errors import BackendError, DataError, Issue
from smglm.redaction import redact

__all__ = [
    "FileStorage",
    "S3Storage",
    "Storage",
    "UploadProgress",
    "extract_tar",
    "hash_path",
    "open_storage",
    "pack_dir",
    "split_s3",
]

log = logging.getLogger(__name__)

_CHUNK = 8 * 1024 * 1024

#: ``progress(name, done, total)``: ``done`` of ``total`` bytes of the object ``name`` sent so
#: far; called with ``done == 0`` first and ``done == total`` last, possibly from boto3's
#: transfer threads (one at a time).
UploadProgress: TypeAlias = Callable[[str, int, int], None]


class Storage(Protocol):
    """A place for objects addressed by URI."""

    def exists(self, uri: str) -> bool: ...

    def upload_file(
        self, path: Path, uri: str, *, progress: bool | UploadProgress = False
    ) -> str: ...

    def upload_bytes(
        self, data: bytes, uri: str, *, progress: UploadProgress | None = None
    ) -> str: ...

    def download_file(self, uri: str, dest: Path) -> Path: ...

    def download_prefix(self, uri: str, dest: Path) -> list[Path]: ...


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise BackendError(f"not an s3:// URI: {redact(uri)!r}")
    if "@" in parsed.netloc:  # credentials come from the AWS session, never from a URI
        raise BackendError(
            f"an s3:// URI must not carry credentials (user:secret@); got {redact(uri)!r}: "
            "configure them for boto3 (`aws configure`, a role, AWS_* environment variables)"
        )
    return parsed.netloc, parsed.path.lstrip("/")


def file_path(uri: str) -> Path:
    """``file:///a/b`` or ``file://relative/b`` -> the local path."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise BackendError(f"not a file:// URI: {uri!r}")
    return Path(unquote(parsed.netloc + parsed.path))


@contextlib.contextmanager
def _partial(dest: Path) -> Iterator[Path]:
    """A ``.part`` file beside ``dest`` to write, renamed to ``dest`` once complete and removed
    if writing fails (a full disk, an interrupted copy): ``dest`` is whole or absent, and no
    ``.part`` file stays behind."""
    # a name of its own: processes writing the same content-addressed object never collide
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")
    try:
        yield tmp
        tmp.replace(dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            exc.filename, exc.filename2 = str(dest), None  # the file that did not fit
        elif isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(dest)
        raise


class FileStorage:
    """``file://`` URIs: a folder on this machine stands in for S3."""

    def exists(self, uri: str) -> bool:
        return file_path(uri).exists()

    def upload_file(self, path: Path, uri: str, *, progress: bool | UploadProgress = False) -> str:
        dest = file_path(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = path.stat().st_size
        if callable(progress):
            progress(path.name, 0, size)
        with _partial(dest) as tmp:
            shutil.copyfile(path, tmp)
        if callable(progress):
            progress(path.name, size, size)
        return uri

    def upload_bytes(self, data: bytes, uri: str, *, progress: UploadProgress | None = None) -> str:
        dest = file_path(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        name = dest.name
        if progress:
            progress(name, 0, len(data))
        with _partial(dest) as tmp:
            tmp.write_bytes(data)
        if progress:
            progress(name, len(data), len(data))
        return uri

    def download_file(self, uri: str, dest: Path) -> Path:
        src = file_path(uri)
        if not src.is_file():
            raise BackendError(f"no such object: {uri}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _partial(dest) as tmp:
            shutil.copyfile(src, tmp)
        return dest

    def download_prefix(self, uri: str, dest: Path) -> list[Path]:
        src = file_path(uri)
        dest.mkdir(parents=True, exist_ok=True)
        if src.is_file():
            return [self.download_file(uri, dest / src.name)]
        if not src.is_dir():
            raise BackendError(f"no such file or folder: {uri}")
        out = []
        for p in sorted(src.rglob("*")):
            if p.is_file():
                target = dest / p.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                with _partial(target) as tmp:
                    shutil.copyfile(p, tmp)
                out.append(target)
        return out


class S3Storage:
    """``s3://`` URIs through boto3 (client injectable, for tests and custom sessions)."""

    def __init__(self, client: Any | None = None, *, region: str | None = None) -> None:
        if client is None:
            try:
                import boto3
            except ImportError:
                from smglm.errors import MissingDependency

                raise MissingDependency("boto3", "aws", "s3:// storage") from None
            client = boto3.client("s3", region_name=region)
        self.client = client

    def exists(self, uri: str) -> bool:
        bucket, key = split_s3(uri)
        resp = self.client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        return bool(resp.get("KeyCount", 0))

    def upload_file(self, path: Path, uri: str, *, progress: bool | UploadProgress = False) -> str:
        from boto3.s3.transfer import TransferConfig

        bucket, key = split_s3(uri)
        size = path.stat().st_size
        callback: _BytesSent | _ProgressBar | None = None
        if callable(progress):
            callback = _BytesSent(path.name, size, progress)
        elif progress and size > _CHUNK:
            callback = _ProgressBar(path.name, size)
        config = TransferConfig(multipart_threshold=_CHUNK, multipart_chunksize=_CHUNK)
        self.client.upload_file(str(path), bucket, key, Config=config, Callback=callback)
        if callback:
            callback.close()
        return uri

    def upload_bytes(self, data: bytes, uri: str, *, progress: UploadProgress | None = None) -> str:
        bucket, key = split_s3(uri)
        if progress is None:
            self.client.put_object(Bucket=bucket, Key=key, Body=data)
            return uri
        import io

        from boto3.s3.transfer import TransferConfig

        sent = _BytesSent(key.rsplit("/", 1)[-1], len(data), progress)
        config = TransferConfig(multipart_threshold=_CHUNK, multipart_chunksize=_CHUNK)
        self.client.upload_fileobj(io.BytesIO(data), bucket, key, Config=config, Callback=sent)
        sent.close()
        return uri

    def download_file(self, uri: str, dest: Path) -> Path:
        bucket, key = split_s3(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _partial(dest) as tmp:
            self.client.download_file(bucket, key, str(tmp))
        return dest

    def download_prefix(self, uri: str, dest: Path) -> list[Path]:
        bucket, prefix = split_s3(uri)
        paginator = self.client.get_paginator("list_objects_v2")
        out = []
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                rel = key[len(prefix) :].lstrip("/") or Path(key).name
                if ".." in Path(rel).parts:
                    raise BackendError(f"refusing object key with '..': {key}")
                out.append(self.download_file(f"s3://{bucket}/{key}", dest / rel))
        if not out:
            raise BackendError(f"no objects under {uri}")
        return out


class _BytesSent:
    """boto3's transfer callback (bytes sent since the last call, from its threads) as an
    :data:`UploadProgress`: cumulative bytes, ``0`` first and ``total`` last, one call at a
    time. A retried part may report its bytes again: ``done`` never passes ``total``."""

    def __init__(self, name: str, total: int, progress: UploadProgress) -> None:
        import threading

        self.name, self.total, self.done, self.progress = name, total, 0, progress
        self.lock = threading.Lock()
        progress(name, 0, total)

    def __call__(self, n: int) -> None:
        with self.lock:
            self.done = min(self.total, self.done + n)
            if self.done < self.total:  # the last call is close()'s
                self.progress(self.name, self.done, self.total)

    def close(self) -> None:
        with self.lock:
            self.done = self.total
            self.progress(self.name, self.total, self.total)


class _ProgressBar:
    """A plain-text progress line for multipart uploads (boto3 calls it from threads)."""

    def __init__(self, name: str, total: int) -> None:
        import threading

        self.name, self.total, self.done = name, total, 0
        self.lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self.lock:
            self.done += n
            pct = 100 * self.done / max(self.total, 1)
            sys.stderr.write(f"\rupload {self.name}: {pct:5.1f}% of {self.total / 1e6:.1f} MB")
            sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def open_storage(uri: str, *, s3_client: Any | None = None) -> Storage:
    """The storage for a URI's scheme."""
    if uri.startswith("s3://"):
        return S3Storage(s3_client)
    if uri.startswith("file://"):
        return FileStorage()
    raise BackendError(f"storage URI must be s3:// or file://; got {redact(uri)!r}")


# --- content addressing -------------------------------------------------------------------


def _hash_file(path: Path, h: Any) -> None:
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)


def hash_path(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, sorted)."""
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(str(p.relative_to(path)).encode() + b"\0")
            _hash_file(p, h)
    elif path.is_file():
        _hash_file(path, h)
    else:
        raise DataError([Issue("data", f"no such file or folder: {str(path)!r}", str(path))])
    return h.hexdigest()


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- archives --------------------------------------------------------------------------


def pack_dir(folder: Path, dest: Path) -> Path:
    """``tar czf dest -C folder .`` (the model.tar.gz / output.tar.gz layout)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _partial(dest) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for p in sorted(folder.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(folder)), recursive=False)
    return dest


def extract_tar(archive: Path | bytes, dest: Path, *, replace: bool = False) -> list[Path]:
    """Extract a .tar.gz safely and atomically (see :func:`smglm.archive.safe_extract`):
    absolute paths, ``..``, links, devices, duplicate paths and more than
    ``SMGLM_MAX_ARCHIVE_MB`` are refused with a BackendError."""
    from smglm.config.environment import max_archive_bytes  # not in the supervisor's imports

    return safe_extract(
        archive, dest, error=BackendError, max_bytes=max_archive_bytes(), replace=replace
    )
