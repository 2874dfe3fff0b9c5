"""Writing files so that a reader never sees half of one, with the permissions umask asks for.

This is also the one place where a failed write (full disk, read-only file system, no
permission) becomes a one-line ``WriteError`` that names the file the user asked for.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from keras_repro.errors import ReproError

# Errors that only writing raises: caught anywhere inside a write.
WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this file system or process limit",
    errno.EROFS: "the file system is read-only",
}
# These can come from reading too, so only from the steps that create or rename files.
CREATE_ERRNOS = {
    **WRITE_ERRNOS,
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


class WriteError(ReproError):
    """A file or folder could not be written; the message names it and why."""


class UnsafePath(ReproError, ValueError):
    """A name that would reach outside the folder it is meant for."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def human_size(size: int) -> str:
    return f"{size:,} bytes" if size < 1_000_000 else f"{size / 1e6:,.1f} MB"


def write_error(
    error: OSError,
    path: Path,
    needed: int | None = None,
    *,
    at_least: bool = False,
    known: dict[int, str] = WRITE_ERRNOS,
) -> WriteError | None:
    """The one-line error for ``error`` while writing ``path``; None if it is not a known one."""
    reason = known.get(error.errno or 0)
    if reason is None:
        return None
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        amounts = []
        if needed is not None:
            amounts.append(f"{'at least ' if at_least else ''}{human_size(needed)} needed")
        folder = next((p for p in Path(path).parents if p.exists()), None)
        if folder is not None:
            amounts.append(f"{human_size(shutil.disk_usage(folder).free)} free in {folder}")
        if amounts:
            reason += f" ({', '.join(amounts)})"
    elif error.errno in (errno.EACCES, errno.EPERM):
        reason += f" for user {os.getuid()}"
    return WriteError(f"cannot write {path}: {reason}")


@contextmanager
def reported_as(path: Path, known: dict[int, str] = CREATE_ERRNOS) -> Iterator[None]:
    """Turn a known write error inside the block into a WriteError naming ``path``."""
    try:
        yield
    except OSError as error:
        raise (write_error(error, path, known=known) or error) from None


def plain_name(name: str) -> str:
    """``name``, refused unless it names an entry of a folder rather than a path elsewhere."""
    if name in ("", ".", "..") or os.path.basename(name) != name or "\0" in name or "\\" in name:
        raise UnsafePath(f"{name!r} is not a plain file name (no folders, '..' or '/')")
    return name


def path_inside(folder: Path, name: str) -> Path:
    """``folder / name``, refused unless it is a plain entry of ``folder``, symlinks resolved."""
    folder = Path(folder)
    path = folder / plain_name(name)
    if path.resolve().parent != folder.resolve():
        raise UnsafePath(f"{name!r} leads outside {folder}")
    return path


def path_below(folder: Path, relative: object) -> Path:
    """``folder / relative`` for a relative path of plain names ("runs/seed1/history.json"),
    refused unless it stays inside ``folder`` with no symlink on the way."""
    if not isinstance(relative, str) or relative.startswith("/"):
        raise UnsafePath(f"{relative!r} is not a relative path of plain names")
    path = Path(folder)
    for part in relative.split("/"):
        try:
            path = path / plain_name(part)
        except UnsafePath as error:
            raise UnsafePath(f"{relative!r}: {error}") from None
        if path.is_symlink():
            raise UnsafePath(f"{relative!r}: {path} is a symlink")
    return path


def _position(handle: IO[Any]) -> int | None:
    try:
        return getattr(handle, "buffer", handle).tell()
    except (OSError, ValueError):
        return None


@contextmanager
def atomic_write(
    path: Path, binary: bool = False, *, shown_as: Path | None = None
) -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path``, renamed onto it only if the block succeeds.

    A full disk, a read-only file system or a missing permission becomes a WriteError naming
    ``shown_as`` (default ``path``).
    """
    path = Path(path)
    shown = Path(shown_as or path)
    with reported_as(shown):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    handle = os.fdopen(fd, "wb" if binary else "w")
    try:
        needed = None
        try:
            yield handle
            needed = _position(handle)
            handle.close()
        except OSError as error:
            at = needed if needed is not None else _position(handle)
            problem = write_error(error, shown, at, at_least=True)
            if problem is None:
                raise
            raise problem from None
        finally:
            with suppress(OSError):
                handle.close()
        with reported_as(shown):
            # mkstemp creates 0600; the finished file gets what any other new file would.
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(data: Any, path: Path, *, shown_as: Path | None = None) -> None:
    with atomic_write(path, shown_as=shown_as) as handle:
        json.dump(data, handle, indent=1, sort_keys=True, allow_nan=False)
        handle.write("\n")


class NewFile:
    """A file created for writing, never one that exists (O_EXCL, no symlinks followed).

    Write errors name ``shown_as``, the path the user knows, and how much was ``expected``.
    """

    def __init__(self, path: Path, shown_as: Path | None = None, expected: int | None = None):
        self.shown = Path(shown_as or path)
        self.expected = expected
        self.written = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with reported_as(self.shown):
            self._fd = os.open(path, flags, 0o666)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                done = os.write(self._fd, view)
                self.written += done
                view = view[done:]
        except OSError as error:
            needed = self.expected if self.expected else self.written + len(view)
            problem = write_error(error, self.shown, needed, at_least=not self.expected)
            raise (problem or error) from None

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> NewFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def staging_dir(final: Path) -> Path:
    """A new empty folder beside ``final``, to be renamed onto it once complete."""
    final = Path(final)
    with reported_as(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
        folder.chmod(0o777 & ~_umask())
    return folder
