"""Safe unpacking of tar archives (model.tar.gz, output.tar.gz), shared by every layer.

An archive comes from storage or a channel that someone else may have written: a member that
could land outside the destination (an absolute name, ``..``) or that is a link, device or FIFO
is refused before anything is written.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from smglm.errors import ModelError, SmglmError

__all__ = ["safe_extract"]


def safe_extract(
    archive: Path | bytes, dest: Path, *, error: type[SmglmError] = ModelError
) -> list[Path]:
    """Unpack a tar archive (a file, or its bytes) into ``dest``; return the files written.

    Refused, with ``error``: absolute names, ``..`` components, symbolic and hard links,
    devices and FIFOs — all checked before anything is written.
    """
    name = "archive" if isinstance(archive, bytes) else archive.name
    try:
        if isinstance(archive, bytes):
            tar = tarfile.open(fileobj=io.BytesIO(archive), mode="r:*")  # noqa: SIM115
        else:
            tar = tarfile.open(archive, "r:*")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError) as exc:
        raise error(f"cannot open {name} as a tar archive: {exc}") from None
    written: list[Path] = []
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise error(f"{name} is not a readable tar archive: {exc}") from None
        for m in members:
            parts = PurePosixPath(m.name).parts
            if m.name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise error(f"{name}: refusing member {m.name!r} (outside the folder)")
            if not (m.isfile() or m.isdir()):
                kind = "link" if (m.issym() or m.islnk()) else "special file"
                raise error(f"{name}: refusing member {m.name!r} (a {kind})")
        dest.mkdir(parents=True, exist_ok=True)
        for m in members:
            target = dest.joinpath(*PurePosixPath(m.name).parts)
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(m)
            if source is None:
                continue
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out)
            written.append(target)
    return written
