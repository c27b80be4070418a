"""Safe reading and unpacking of tar archives (model.tar.gz, output.tar.gz), shared by every layer.

An archive comes from storage or a channel that someone else may have written, so every member
is checked before anything is written or read:

- its name stays inside the destination (no absolute name, no ``..``, no drive letter);
- it is a plain file or a folder (no symbolic or hard link, device, FIFO or sparse file);
- no two members land on the same path (``model.json`` and ``./model.json`` are the same
  path), and no file is used as a folder by another member: every reader of the archive then
  sees the same files;
- the sizes the members declare add up to at most ``max_bytes`` (an archive bomb is refused
  from its headers, before its contents are inflated), with at most :data:`MAX_MEMBERS` members.

A truncated, empty or non-tar file, or one that fails while it is unpacked, is the caller's
error class naming the archive and the problem. :func:`safe_extract` fills its destination
atomically: the members go to a temporary folder beside it, renamed into place once all are
written, so a failed extraction leaves nothing that looks complete. The callers read the size
limit from ``SMGLM_MAX_ARCHIVE_MB`` (:mod:`smglm.config.environment`).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from smglm.errors import ModelError, SmglmError

__all__ = ["DEFAULT_MAX_BYTES", "MAX_MEMBERS", "ArchiveMember", "read_member", "safe_extract"]

#: The total size the members of an archive may declare, unless the caller says otherwise.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
#: Members (files and folders) an archive may hold.
MAX_MEMBERS = 10_000
_LIMIT_HINT = "raise SMGLM_MAX_ARCHIVE_MB (in MiB) if this archive is trusted"
#: What can go wrong while a compressed tar stream is read.
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError, ValueError)


@dataclass(frozen=True)
class ArchiveMember:
    """A checked member: its path inside the archive (``parts``), kind and declared size."""

    parts: tuple[str, ...]
    is_dir: bool
    size: int
    info: tarfile.TarInfo

    @property
    def path(self) -> str:
        return "/".join(self.parts)


def _label(archive: Path | bytes) -> str:
    return "archive" if isinstance(archive, bytes) else repr(str(archive))


@contextmanager
def _open(archive: Path | bytes, label: str, error: type[SmglmError]) -> Iterator[tarfile.TarFile]:
    if isinstance(archive, bytes) and not archive:
        raise error(f"{label} is empty (0 bytes); expected a tar archive (.tar.gz)")
    if not isinstance(archive, bytes):
        if archive.is_dir():
            raise error(f"{label} is a folder; expected a tar archive (.tar.gz)")
        try:
            size = archive.stat().st_size
        except OSError as exc:
            raise error(f"cannot read {label}: {exc.strerror or exc}") from None
        if size == 0:
            raise error(f"{label} is empty (0 bytes); expected a tar archive (.tar.gz)")
    try:
        if isinstance(archive, bytes):
            tar = tarfile.open(fileobj=io.BytesIO(archive), mode="r:*")  # noqa: SIM115
        else:
            tar = tarfile.open(archive, "r:*")  # noqa: SIM115 (closed below)
    except _READ_ERRORS as exc:
        why = _why(exc)
        if "could not be opened successfully" in why:  # every method was tried
            why = "its data is neither a tar archive nor a gzip, bzip2 or xz-compressed one"
        raise error(f"{label} is not a tar archive (.tar.gz, .tar): {why}") from None
    try:
        yield tar
    finally:
        tar.close()


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, EOFError) or "unexpected end" in text or "ended before" in text:
        return "it is truncated (the data ends early)"
    return text


def _check_members(
    tar: tarfile.TarFile, label: str, error: type[SmglmError], max_bytes: int
) -> list[ArchiveMember]:
    """Every member checked (module docstring), reading headers only; raise ``error`` at the
    first bad one."""
    members: list[ArchiveMember] = []
    files: dict[tuple[str, ...], str] = {}
    dirs: dict[tuple[str, ...], str] = {}
    total = 0
    while True:
        try:
            m = tar.next()
        except _READ_ERRORS as exc:
            raise error(f"{label} is not a readable tar archive: {_why(exc)}") from None
        if m is None:
            break
        if len(members) >= MAX_MEMBERS:
            raise error(f"{label} holds more than {MAX_MEMBERS} members; refusing it")
        name = m.name
        parts = PurePosixPath(name).parts
        loose = PurePosixPath(name.replace("\\", "/")).parts  # as Windows would read it
        if name.startswith(("/", "\\")) or ".." in loose or (parts and ":" in parts[0]):
            raise error(f"{label}: refusing member {name!r} (outside the folder)")
        if m.issym() or m.islnk():
            raise error(f"{label}: refusing member {name!r} (a link to {m.linkname!r})")
        if m.issparse() or not (m.isfile() or m.isdir()):
            raise error(f"{label}: refusing member {name!r} (a special file: device, FIFO, ...)")
        parts = tuple(p for p in parts if p != ".")
        if not parts:
            if m.isfile():
                raise error(f"{label}: refusing member {name!r} (a file without a name)")
            continue  # the root folder itself ("." or "./")
        shown = repr(name)
        if m.isfile():
            if parts in files or parts in dirs:
                first = files.get(parts) or dirs[parts]
                raise error(
                    f"{label}: members {first!r} and {name!r} are the same path "
                    f"{'/'.join(parts)!r}; an archive must hold each file once"
                )
            files[parts] = name
        elif parts in files:
            raise error(f"{label}: member {shown} is a folder and a file of the same name")
        else:
            dirs.setdefault(parts, name)
        total += m.size if m.isfile() else 0
        if total > max_bytes:
            raise error(
                f"{label}: its members declare more than {max_bytes / 2**20:g} MiB "
                f"(at {name!r}: {m.size:,} bytes, {total:,} in all); refusing to unpack it "
                f"({_LIMIT_HINT})"
            )
        members.append(ArchiveMember(parts, m.isdir(), m.size if m.isfile() else 0, m))
    try:  # read to the end: a compressed stream's checksum and length are checked there
        while tar.fileobj is not None and tar.fileobj.read(1024 * 1024):
            pass
    except _READ_ERRORS as exc:
        raise error(f"{label} is truncated or corrupt: {_why(exc)}") from None
    # a member under a path that another member makes a file, in either order
    for path, name in [*files.items(), *dirs.items()]:
        for i in range(1, len(path)):
            if path[:i] in files:
                raise error(
                    f"{label}: member {name!r} lies under {files[path[:i]]!r}, which is a file"
                )
    return members


def _copy(tar: tarfile.TarFile, member: ArchiveMember, out: BinaryIO) -> None:
    source = tar.extractfile(member.info)
    if source is None:  # a regular file always has a stream
        raise OSError(f"no data for {member.path!r}")
    with source:
        shutil.copyfileobj(source, out, 1024 * 1024)
    if out.tell() != member.size:
        raise EOFError(f"{member.path!r} holds {out.tell()} of its {member.size} bytes")


def safe_extract(
    archive: Path | bytes,
    dest: Path,
    *,
    error: type[SmglmError] = ModelError,
    max_bytes: int = DEFAULT_MAX_BYTES,
    replace: bool = False,
) -> list[Path]:
    """Unpack a tar archive (a file, or its bytes) into ``dest``; return the files written.

    Every member is checked first (module docstring). The files are written to a temporary
    folder beside ``dest``, which becomes ``dest`` once every member is written: ``dest``
    either holds the whole archive or is left as it was.

    Parameters
    ----------
    dest
        A folder that does not exist or is empty; with ``replace``, an existing ``dest`` is
        replaced (only after a successful extraction).
    error
        The error class raised (``ModelError`` in the runtime, ``BackendError`` in launch).
    max_bytes
        The total size the members may declare.
    """
    label = _label(archive)
    if max_bytes <= 0:
        raise error(f"the archive size limit must be positive; got {max_bytes} bytes")
    if dest.exists() and not dest.is_dir():
        raise error(f"cannot unpack {label} into {str(dest)!r}: it is a file")
    if not replace and dest.is_dir() and any(dest.iterdir()):
        raise error(f"cannot unpack {label} into {str(dest)!r}: the folder is not empty")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        with _open(archive, label, error) as tar:
            members = _check_members(tar, label, error, max_bytes)
            written = []
            try:
                for m in members:
                    target = staging.joinpath(*m.parts)
                    if m.is_dir:
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with target.open("xb") as out:
                        _copy(tar, m, out)
                    written.append(m.parts)
            except _READ_ERRORS as exc:
                if isinstance(exc, OSError) and exc.errno is not None:
                    why = f"{exc.strerror} ({exc.filename or dest})"
                else:
                    why = _why(exc)
                raise error(f"cannot unpack {label} into {str(dest)!r}: {why}") from None
        if replace and dest.exists():
            shutil.rmtree(dest)
        try:
            os.replace(staging, dest)  # onto a missing or empty folder
        except OSError as exc:
            raise error(f"cannot unpack {label} into {str(dest)!r}: {exc.strerror}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return [dest.joinpath(*parts) for parts in written]


def read_member(
    archive: Path | bytes,
    name: str,
    *,
    error: type[SmglmError] = ModelError,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_member_bytes: int | None = None,
) -> bytes:
    """The bytes of member ``name`` (a path from the archive's root, e.g. ``model.json``),
    read in memory after checking every member as :func:`safe_extract` does; nothing is
    written. Raises ``error`` when the archive is unsafe or unreadable or has no such file."""
    label = _label(archive)
    wanted = tuple(p for p in PurePosixPath(name).parts if p != ".")
    with _open(archive, label, error) as tar:
        members = _check_members(tar, label, error, max_bytes)
        found = [m for m in members if m.parts == wanted]
        if not found:
            names = [m.path for m in members][:10]
            raise error(f"{label} has no {name} at its root; it holds {names}")
        if found[0].is_dir:
            raise error(f"{label}: {name} at its root is a folder, not a file")
        member = found[0]
        if max_member_bytes is not None and member.size > max_member_bytes:
            raise error(
                f"{label}: {name} is {member.size:,} bytes; the limit is {max_member_bytes:,}"
            )
        buffer = io.BytesIO()
        try:
            _copy(tar, member, buffer)
        except _READ_ERRORS as exc:
            raise error(f"cannot read {name} from {label}: {_why(exc)}") from None
    return buffer.getvalue()
