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
