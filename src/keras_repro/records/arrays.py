"""Arrays in a zip of ``.npy`` members, as traces and checkpoints store them: written without
pickles, read back with each member's header checked before a byte of its data is inflated."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import IO

import numpy as np

NPY_HEADER_BYTES = 10_000  # numpy's own limit for a .npy header
ZIP_OVERHEAD_BYTES = 64 * 2**10
# A fixed timestamp: the same arrays give the same bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_members(
    handle: IO[bytes], arrays: dict[str, np.ndarray], extra: dict[str, bytes] | None = None
) -> None:
    """``arrays`` as ``<name>.npy`` members of a zip written to ``handle`` (no pickle), after
    the ``extra`` members (name → bytes)."""
    with zipfile.ZipFile(handle, "w") as archive:
        for name, data in (extra or {}).items():
            archive.writestr(zipfile.ZipInfo(name, ZIP_EPOCH), data)
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", ZIP_EPOCH), buffer.getvalue())


def read_member(
    archive: zipfile.ZipFile,
    member: str,
    limit: int,
    refuse: Callable[[str], Exception],
    expected: Callable[[np.dtype, tuple[int, ...]], str | None],
) -> np.ndarray:
    """Member ``<member>.npy``, its header checked before a byte of its data is inflated: its
    version, ``expected(dtype, shape)`` (None when they are what the archive must hold, else
    why not), and at most ``limit`` bytes. Every refusal is ``refuse(reason)``."""
    with archive.open(f"{member}.npy") as stream:
        version = np.lib.format.read_magic(stream)
        read_header = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }.get(version)
        if read_header is None:
            raise refuse(f"{member}: .npy format version {version} is not one numpy writes")
        shape, fortran_order, dtype = read_header(stream, max_header_size=NPY_HEADER_BYTES)
        if dtype.hasobject:
            raise refuse(f"{member}: holds Python objects (a pickle), which are never read")
        problem = expected(dtype, shape) or ("stored in Fortran order" if fortran_order else None)
        if problem:
            raise refuse(f"{member}: {problem}")
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if size > limit:
            raise refuse(f"{member}: {shape} holds {size:,} bytes, more than the {limit:,} allowed")
        data = stream.read(size)
        if len(data) != size or stream.read(1):
            raise refuse(f"{member}: its data is not the {size:,} bytes its header announces")
    return np.frombuffer(bytearray(data), dtype=dtype).reshape(shape)
