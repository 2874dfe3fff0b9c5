"""Decode MNIST-format data (Keras npz or the IDX .gz quartet) and build the one dataset file.

The dataset file is an uncompressed ``.npz`` written with fixed zip timestamps, so the same
input gives the same bytes; ``np.load`` reads it without pickles. Beside it, a JSON manifest
records what went in (source, content identity) and what came out (sha256 of each array).

Every read is bounded by what the dataset's counts allow (``max_file_sizes``): gzip and zip
members are inflated as streams and cut off past their bound, so a decompression bomb costs
no more memory than a genuine file.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import math
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from keras_repro.digest import arrays_sha256, file_sha256
from keras_repro.errors import ReproError
from keras_repro.files import atomic_write, human_size, path_inside, write_json_atomic
from keras_repro.logs import configure_logging

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
# The array names inside Keras' mnist.npz, which the dataset file keeps.
NPZ_KEYS = {
    "train_images": "x_train",
    "train_labels": "y_train",
    "test_images": "x_test",
    "test_labels": "y_test",
}
IMAGE_SHAPE = (28, 28)
IDX_UBYTE = 0x08
# A zip entry's timestamp is part of its bytes; a fixed one makes rebuilds byte-identical.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
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


def array_bytes(role: str, examples: int) -> int:
    """Bytes of the uint8 data of ``examples`` images (28×28) or labels."""
    return examples * (IMAGE_SHAPE[0] * IMAGE_SHAPE[1] if role.endswith("images") else 1)


def max_array_bytes(
    role: str, expected_counts: dict[str, int] | None, max_bytes: int | None = None
) -> int:
    """The bound on one array: ``max_bytes`` (the dataset's max_megabytes) when given, else
    what the counts allow 28×28 uint8 images."""
    if max_bytes is not None:
        return max_bytes
    return array_bytes(role, max_examples(expected_counts, role.split("_")[0]))


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
            members = sum(NPY_HEADER_LIMIT + max_array_bytes(r, expected_counts) for r in ROLES)
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


def content_identity(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """sha256 of each array's uncompressed IDX encoding (uint8 arrays, as in MNIST), or of
    its .npy encoding (other dtypes): equal from every mirror and format."""
    return {role: array_identity(arrays[role]) for role in ROLES}


def array_identity(array: np.ndarray) -> str:
    if array.dtype == np.uint8:
        return hashlib.sha256(encode_idx(array)).hexdigest()
    buffer = io.BytesIO()
    little_endian = array.astype(array.dtype.newbyteorder("<"), copy=False)
    np.lib.format.write_array(buffer, np.ascontiguousarray(little_endian), allow_pickle=False)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


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
            f"{human_size(max_bytes)} the dataset's max_megabytes allows"
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
                bound = NPY_HEADER_LIMIT + max_array_bytes(role, expected_counts, max_bytes)
                if info.file_size > bound:
                    allowed = (
                        "max_megabytes allows"
                        if max_bytes
                        else "counts allow (784 bytes per example: for other data, set the "
                        "dataset's max_megabytes)"
                    )
                    raise DatasetError(
                        f"{where}: {key} inflates to {human_size(info.file_size)}, more than "
                        f"the {human_size(bound)} the dataset's {allowed}"
                    )
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


def validate_arrays(
    arrays: dict[str, np.ndarray], expected_counts: dict[str, int] | None = None
) -> None:
    """What any data needs: inputs uint8 or float (finite), one sample shape in both splits,
    one integer label >= 0 per example, the promised counts. MNIST is 28×28 uint8 images."""
    shapes = {}
    for split in ("train", "test"):
        inputs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        _check_inputs(split, inputs)
        shapes[split] = inputs.shape[1:]
        _check_labels(split, labels)
        if len(inputs) != len(labels):
            raise DatasetError(f"{split}: {len(inputs)} examples but {len(labels)} labels")
        if expected_counts and expected_counts.get(split) not in (None, len(inputs)):
            raise DatasetError(
                f"{split}: {len(inputs)} examples, the dataset promises {expected_counts[split]}"
            )
    if shapes["train"] != shapes["test"]:
        raise DatasetError(
            f"train examples are shaped {shapes['train']}, test examples {shapes['test']}: "
            "both splits need one sample shape"
        )


def _check_inputs(split: str, inputs: np.ndarray) -> None:
    if inputs.dtype != np.uint8 and inputs.dtype.kind != "f":
        raise DatasetError(
            f"{split} inputs: expected uint8 or float, got {inputs.dtype} {inputs.shape}"
        )
    if inputs.ndim < 2:
        raise DatasetError(
            f"{split} inputs: expected (N, ...) with a shape per example (e.g. (N, 28, 28) "
            f"images, (N, 20) vectors), got {inputs.shape}"
        )
    if inputs.dtype.kind == "f" and inputs.size and not np.isfinite(inputs).all():
        raise DatasetError(f"{split} inputs: hold NaN or infinite values")


def _check_labels(split: str, labels: np.ndarray) -> None:
    if labels.dtype.kind not in "ui" or labels.ndim != 1:
        raise DatasetError(
            f"{split} labels: expected integers (N,), got {labels.dtype} {labels.shape}"
        )
    if labels.size and labels.min() < 0:
        raise DatasetError(
            f"{split} labels: {int(labels.min())} found, expected class numbers >= 0"
        )


def take_subset(
    arrays: dict[str, np.ndarray], subset: dict[str, int | None]
) -> dict[str, np.ndarray]:
    """The first N examples of each split (None: all of them)."""
    result = {}
    for split in ("train", "test"):
        n = subset.get(split)
        available = len(arrays[f"{split}_images"])
        if n is not None and n > available:
            raise DatasetError(
                f"subset.{split} = {n}, but the {split} split has only {available} examples"
            )
        for kind in ("images", "labels"):
            result[f"{split}_{kind}"] = arrays[f"{split}_{kind}"][:n]
    return result


def write_npz_deterministic(arrays: dict[str, np.ndarray], path: Path) -> None:
    """An uncompressed npz with fixed entry order and timestamps, written atomically."""
    with atomic_write(path, binary=True) as handle, zipfile.ZipFile(handle, "w") as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]))
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compress_type=zipfile.ZIP_STORED)


def load_dataset(path: Path) -> dict[str, np.ndarray]:
    """The dataset file as arrays by role (the training runs' one way in): build_dataset's
    own file, bounded by its size."""
    return read_npz_arrays(Path(path), max_bytes=Path(path).stat().st_size)


def data_spec(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """What a model is built for, from the data: the shape of one input as stored and the
    number of classes (the highest label + 1)."""
    labels = [arrays[f"{split}_labels"] for split in ("train", "test")]
    return {
        "input_shape": list(arrays["train_images"].shape[1:]),
        "num_classes": max((int(array.max()) for array in labels if array.size), default=-1) + 1,
    }


def recorded_spec(manifest_path: Path) -> dict[str, Any] | None:
    """The data spec build_dataset recorded (None in manifests written before it did)."""
    return json.loads(Path(manifest_path).read_text()).get("spec")


def recorded_sha256(manifest_path: Path) -> str:
    """The dataset file's sha256 as build_dataset recorded it in the manifest."""
    return json.loads(Path(manifest_path).read_text())["dataset_sha256"]


def verify_dataset_file(path: Path, expected_sha256: str | None) -> str:
    """The file's sha256, refused when it is not what build_dataset wrote."""
    actual = file_sha256(path)
    if expected_sha256 is not None and actual != expected_sha256:
        raise DatasetError(
            f"{path}: sha256 {actual}, but build_dataset recorded {expected_sha256}: the file "
            "was replaced after it was built. Delete its folder and run the workflow again."
        )
    return actual


def build_dataset(
    source_record: Path,
    dataset_path: Path,
    manifest_path: Path,
    subset: dict[str, int | None],
    expected_counts: dict[str, int] | None = None,
    max_megabytes: float | None = None,
) -> dict[str, Any]:
    """Decode the downloaded source, validate it, take the subset, write dataset + manifest."""
    source_record = Path(source_record)
    source = json.loads(source_record.read_text())
    files = {
        role: path_inside(source_record.parent, entry["name"])
        for role, entry in source["files"].items()
    }
    arrays = read_source_arrays(
        source["format"], files, expected_counts, max_bytes=max_bytes_of(max_megabytes)
    )
    validate_arrays(arrays, expected_counts)
    identity = content_identity(arrays)
    if identity != source["content_sha256"]:
        raise DatasetError(
            f"{source_record.parent}: the data decodes to content {identity}, but {source_record.name} "
            f"recorded {source['content_sha256']}; the download was changed after it was "
            "verified. Delete the folder and run the workflow again."
        )
    subset_arrays = take_subset(arrays, subset)
    keyed = {NPZ_KEYS[role]: subset_arrays[role] for role in ROLES}
    manifest = {
        "dataset_file": Path(dataset_path).name,
        "arrays": {
            key: {
                "sha256": arrays_sha256((key, array)),
                "dtype": array.dtype.str,
                "shape": list(array.shape),
            }
            for key, array in keyed.items()
        },
        "counts": {
            "train": len(keyed["x_train"]),
            "test": len(keyed["x_test"]),
            "available_train": len(arrays["train_images"]),
            "available_test": len(arrays["test_images"]),
        },
        "source": {k: source[k] for k in ("dataset", "name", "format", "location")},
        "source_content_sha256": identity,
        # Of the whole source, so that a subset missing a class builds the same model.
        "spec": data_spec(arrays),
        "preprocessing": {
            "subset": {"train": subset.get("train"), "test": subset.get("test")},
            "description": "first N examples of each split, in the source's order; "
            "arrays kept as stored (the recipe's model scales its images in its pipeline)",
        },
    }
    write_npz_deterministic(keyed, dataset_path)
    manifest["dataset_sha256"] = file_sha256(dataset_path)
    write_json_atomic(manifest, manifest_path)
    return manifest


def parse_subset(value: str) -> int | None:
    return None if value.lower() in ("all", "none", "null") else int(value)


def main(argv: list[str] | None = None) -> None:
    from keras_repro.config import defaults  # here: config imports this module

    parser = argparse.ArgumentParser(description=build_dataset.__doc__)
    parser.add_argument(
        "source_record", type=Path, help="source.json written by keras-repro-download"
    )
    parser.add_argument("dataset", type=Path, help="dataset file to write (.npz)")
    parser.add_argument("manifest", type=Path, help="manifest to write (.json)")
    subset = defaults()["subset"]
    for split in ("train", "test"):
        parser.add_argument(
            f"--{split}",
            type=parse_subset,
            default=subset[split],
            help=f"first N {split} examples, or all (default {subset[split] or 'all'})",
        )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        build_dataset(
            args.source_record,
            args.dataset,
            args.manifest,
            {"train": args.train, "test": args.test},
        )
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main()
