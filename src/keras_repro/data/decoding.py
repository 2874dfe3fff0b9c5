"""Decode MNIST-format files (Keras npz, or the IDX .gz quartet), bounded by the counts.

Every read is bounded by what the dataset's counts allow (``max_file_sizes``): gzip and zip
members are inflated as streams and cut off past their bound, so a decompression bomb costs
no more memory than a genuine file. The same bounds cap what a download may fetch.
"""

from __future__ import annotations

import gzip
import math
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from keras_repro.config import NPZ_KEYS, ROLES
from keras_repro.errors import ReproError
from keras_repro.files import human_size

IMAGE_SHAPE = (28, 28)
IMAGE_BYTES = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
# An npz's labels may be of any integer type: the widest (int64, uint64) bounds them all.
NPZ_LABEL_BYTES = 8
IDX_UBYTE = 0x08
# The bound on a split the dataset gives no count for (the schema's counts description says so).
MAX_EXAMPLES_WITHOUT_COUNTS = 1_000_000
IDX_HEADER_BYTES = {"images": 16, "labels": 8}
# numpy refuses longer .npy headers itself (np.lib.format's max_header_size), + magic and length.
NPY_HEADER_LIMIT = 10_000 + 12
# Compression may expand incompressible data a little: deflate's stored blocks, gzip and zip
# headers (which may carry a file name or comment). Generous, still within 1 % of the data.
COMPRESSION_SLACK = 64 * 1024
READ_CHUNK = 1 << 20


class DatasetError(ReproError, ValueError):
    """Input data that is not what the dataset promises."""


def max_examples(expected_counts: dict[str, int] | None, split: str) -> int:
    return (expected_counts or {}).get(split) or MAX_EXAMPLES_WITHOUT_COUNTS


def array_bytes(role: str, examples: int, label_bytes: int = 1) -> int:
    """Bytes of the data of ``examples`` 28×28 uint8 images, or labels of ``label_bytes``."""
    return examples * (IMAGE_BYTES if role.endswith("images") else label_bytes)


def max_array_bytes(
    role: str,
    expected_counts: dict[str, int] | None,
    max_bytes: int | None = None,
    label_bytes: int = 1,
) -> int:
    """The bound on one array: ``max_bytes`` (the dataset's max_megabytes) when given, else
    what the counts allow 28×28 uint8 images, or labels of ``label_bytes`` each."""
    if max_bytes is not None:
        return max_bytes
    return array_bytes(role, max_examples(expected_counts, role.split("_")[0]), label_bytes)


def max_bytes_of(max_megabytes: float | None) -> int | None:
    """A dataset entry's ``max_megabytes`` in bytes (None: the counts' bound)."""
    return None if max_megabytes is None else int(max_megabytes * 1_000_000)


def max_idx_bytes(
    role: str, expected_counts: dict[str, int] | None, max_bytes: int | None = None
) -> int:
    """The size of the uncompressed IDX file of ``role``: exact when the count is given."""
    return IDX_HEADER_BYTES[role.split("_")[1]] + max_array_bytes(role, expected_counts, max_bytes)


def _compressed_bound(size: int) -> int:
    return size + size // 100 + COMPRESSION_SLACK


def max_file_sizes(
    fmt: str, expected_counts: dict[str, int] | None, max_bytes: int | None = None
) -> dict[str, int]:
    """The most bytes each file of a source of ``fmt`` may hold, by role (``max_bytes``: the
    four arrays together, the dataset's max_megabytes)."""
    if fmt == "idx":
        return {
            role: _compressed_bound(max_idx_bytes(role, expected_counts, max_bytes))
            for role in ROLES
        }
    if fmt == "npz":
        if max_bytes is not None:
            members = 4 * NPY_HEADER_LIMIT + max_bytes
        else:
            members = sum(
                NPY_HEADER_LIMIT + max_array_bytes(r, expected_counts, label_bytes=NPZ_LABEL_BYTES)
                for r in ROLES
            )
        return {"archive": _compressed_bound(members) + COMPRESSION_SLACK}
    raise DatasetError(f"unknown source format {fmt!r}; known: npz, idx")


def _read_at_most(stream: Any, limit: int, after: bytes | bytearray = b"") -> bytearray:
    """``after`` followed by up to ``limit`` bytes of ``stream``, inflated chunk by chunk into
    one buffer (no second copy of the data)."""
    buffer = bytearray(len(after) + limit)
    buffer[: len(after)] = after
    filled = len(after)
    with memoryview(buffer) as view:
        while filled < len(buffer):
            got = stream.readinto(view[filled : filled + READ_CHUNK])
            if not got:
                break
            filled += got
    del buffer[filled:]
    return buffer


def _idx_header(raw: bytes | bytearray, where: str) -> tuple[int, tuple[int, ...]]:
    """The header size and shape an IDX file starts with (unsigned bytes only, as in MNIST)."""
    if len(raw) < 4:
        raise DatasetError(f"{where}: {len(raw)} bytes, too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != IDX_UBYTE or ndim < 1:
        raise DatasetError(
            f"{where}: not an unsigned-byte IDX file (magic {raw[:4].hex()}, expected 000008xx)"
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DatasetError(f"{where}: {len(raw)} bytes, too short for an IDX header")
    return header_size, struct.unpack(f">{ndim}I", raw[4:header_size])


def decode_idx(raw: bytes | bytearray, where: str = "IDX data") -> np.ndarray:
    """Decode an uncompressed IDX file (unsigned bytes only, as in MNIST)."""
    header_size, shape = _idx_header(raw, where)
    expected = header_size + math.prod(shape)
    if len(raw) != expected:
        raise DatasetError(f"{where}: {len(raw)} bytes, but header {shape} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def encode_idx(array: np.ndarray) -> bytes:
    """The canonical IDX encoding of a uint8 array: what the original MNIST files hold."""
    if array.dtype != np.uint8:
        raise DatasetError(f"IDX encoding needs uint8, got {array.dtype}")
    header = struct.pack(">HBB", 0, IDX_UBYTE, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + np.ascontiguousarray(array).tobytes()


def _read_npy(member: Any, size: int, where: str) -> np.ndarray:
    """One .npy zip member of ``size`` bytes (its zip entry's), checked before its data is read."""
    version = np.lib.format.read_magic(member)
    if version not in ((1, 0), (2, 0)):
        raise DatasetError(f"{where}: .npy format version {version} is not supported")
    read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
    shape, fortran_order, dtype = read_header(member)
    if dtype.hasobject:
        raise DatasetError(f"{where}: holds Python objects, which are not read (no pickles)")
    data_bytes = math.prod(shape) * dtype.itemsize
    if member.tell() + data_bytes != size:
        raise DatasetError(
            f"{where}: header {shape} {dtype} needs {data_bytes} bytes of data, "
            f"the entry holds {size - member.tell()}"
        )
    raw = _read_at_most(member, data_bytes)
    if len(raw) != data_bytes:
        raise DatasetError(f"{where}: {len(raw)} bytes of data, expected {data_bytes}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def check_total_size(entries: dict[str, Any], where: str, max_bytes: int | None) -> None:
    """Refuse an npz whose four arrays together inflate past ``max_bytes``."""
    if max_bytes is None:
        return
    total = sum(entries[f"{key}.npy"].file_size for key in NPZ_KEYS.values())
    if total > max_bytes + 4 * NPY_HEADER_LIMIT:
        raise DatasetError(
            f"{where}: its arrays inflate to {human_size(total)}, more than the "
            f"{human_size(max_bytes)} the dataset's max_megabytes allows; raise max_megabytes "
            f"to at least {megabytes_for(total)}"
        )


def megabytes_for(size: int) -> str:
    """The max_megabytes that allows ``size`` bytes, rounded up to 0.1 MB."""
    return f"{math.ceil(size / 100_000) / 10:g}"


def _declared(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], Any]:
    """The shape and dtype a .npy member's header declares (its header alone is inflated)."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise DatasetError(f"{info.filename}: .npy format version {version} is not supported")
        shape, _, dtype = getattr(np.lib.format, f"read_array_header_{version[0]}_0")(member)
    return shape, dtype


def _too_big(
    archive: zipfile.ZipFile, entries: dict[str, Any], key: str, where: str, bound: int
) -> DatasetError:
    """The refusal of member ``key``, larger than the counts allow: its dtype and shape, and
    the max_megabytes that would allow the four arrays together."""
    shape, dtype = _declared(archive, entries[f"{key}.npy"])
    per = f"{IMAGE_BYTES} bytes per example, MNIST's" if key[0] == "x" else "8 bytes per label"
    size = human_size(entries[f"{key}.npy"].file_size)
    total = sum(entries[f"{name}.npy"].file_size for name in NPZ_KEYS.values())
    return DatasetError(
        f"{where}: {key} is {dtype} {shape}: it inflates to {size}, more than the "
        f"{human_size(bound)} the dataset's counts allow ({per}); set the dataset's "
        f"max_megabytes to at least {megabytes_for(total)} (the four arrays together, "
        "uncompressed)"
    )


def read_npz_arrays(
    path: Path,
    expected_counts: dict[str, int] | None = None,
    where: str | None = None,
    max_bytes: int | None = None,
) -> dict[str, np.ndarray]:
    """The four arrays of a Keras-style npz; each entry's size is checked before it is read
    (``max_bytes``: the most the four may hold together; else the counts' bound)."""
    where = where or str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            entries = {info.filename: info for info in archive.infolist()}
            missing = [key for key in NPZ_KEYS.values() if f"{key}.npy" not in entries]
            if missing:
                has = sorted(name.removesuffix(".npy") for name in entries)
                raise DatasetError(f"{where}: missing arrays {missing} (has {has})")
            check_total_size(entries, where, max_bytes)
            arrays = {}
            for role, key in NPZ_KEYS.items():
                info = entries[f"{key}.npy"]
                bound = NPY_HEADER_LIMIT + max_array_bytes(
                    role, expected_counts, max_bytes, NPZ_LABEL_BYTES
                )
                if info.file_size > bound:
                    raise _too_big(archive, entries, key, where, bound)
                with archive.open(info) as member:
                    arrays[role] = _read_npy(member, info.file_size, f"{where}: {key}")
            return arrays
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as error:
        if isinstance(error, DatasetError):
            raise
        raise DatasetError(f"{where}: not a readable npz file ({error})") from None


def read_idx_gz(path: Path, max_bytes: int | None = None, where: str | None = None) -> np.ndarray:
    """Decode a gzipped IDX file, inflating no more than its header announces.

    The header may announce at most ``max_bytes`` (default: what 1,000,000 images need).
    """
    where = where or str(path)
    max_bytes = max_bytes or max_idx_bytes("train_images", None)
    try:
        with gzip.open(path, "rb") as stream:
            head = _read_at_most(stream, 4)
            if len(head) == 4:
                head = _read_at_most(stream, 4 * head[3], after=head)
            header_size, shape = _idx_header(head, where)
            size = header_size + math.prod(shape)
            if size > max_bytes:
                raise DatasetError(
                    f"{where}: header {shape} announces {human_size(size)}, more than the "
                    f"{human_size(max_bytes)} the dataset's counts allow"
                )
            # One byte more than announced tells a complete file from an endless one.
            raw = _read_at_most(stream, size - header_size + 1, after=head)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{where}: not a complete gzip file ({error})") from None
    if len(raw) > size:
        raise DatasetError(
            f"{where}: inflates to more than the {human_size(size)} its header {shape} announces"
        )
    return decode_idx(raw, where)


def read_source_arrays(
    fmt: str,
    files: dict[str, Path],
    expected_counts: dict[str, int] | None = None,
    shown: dict[str, str] | None = None,
    max_bytes: int | None = None,
) -> dict[str, np.ndarray]:
    """Arrays by role from a source's files: ``{"archive": npz}`` or one IDX .gz per role.

    Reads are bounded by ``expected_counts``; errors name each file as ``shown`` (e.g. the URL
    it came from) rather than where it lies now.
    """
    shown = shown or {role: str(path) for role, path in files.items()}
    if fmt == "npz":
        return read_npz_arrays(files["archive"], expected_counts, shown["archive"], max_bytes)
    if fmt == "idx":
        return {
            role: read_idx_gz(
                files[role], max_idx_bytes(role, expected_counts, max_bytes), shown[role]
            )
            for role in ROLES
        }
    raise DatasetError(f"unknown source format {fmt!r}; known: npz, idx")
