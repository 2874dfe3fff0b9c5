"""The one way arrays are hashed: the dataset's arrays, the batches fed, the weights."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def update_with_arrays(digest: hashlib._Hash, named: Iterable[tuple[str, np.ndarray]]) -> None:
    """Feed each array framed by its name, dtype and shape, so that no two inputs hash alike."""
    for name, array in named:
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{name}|{contiguous.dtype.str}|{contiguous.shape}|".encode())
        digest.update(contiguous.reshape(-1).view(np.uint8))


def arrays_sha256(*named: tuple[str, np.ndarray]) -> str:
    """sha256 of ``(name, array)`` pairs, in the order given."""
    digest = hashlib.sha256()
    update_with_arrays(digest, named)
    return digest.hexdigest()


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks (no copy of the file in memory)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def batch_fingerprint(structure: object) -> np.ndarray:
    """8 bytes (blake2b) of the bytes of every array in ``structure`` (an array, or a dict,
    list or tuple of them, in order): how the JAX and torch step recorders and the NumPy
    input pipeline fingerprint a batch's inputs or labels, the same on every backend."""
    digest = hashlib.blake2b(digest_size=8)
    pending = [structure]
    while pending:
        item = pending.pop(0)
        if isinstance(item, dict):
            pending[:0] = [item[key] for key in sorted(item)]
        elif isinstance(item, list | tuple):
            pending[:0] = list(item)
        elif item is not None:
            digest.update(np.ascontiguousarray(item).reshape(-1).view(np.uint8))
    return np.frombuffer(digest.digest(), np.uint8)
