"""The data: a dataset fetched from the first source whose files all verify (``download.py``;
fetching one file, bounded and retried when transient: ``downloaders.py``), decoded and capped
by its counts (``decoding.py``), built into the one deterministic ``dataset.npz`` with its
manifest (``dataset.py``), and a synthetic MNIST-format dataset for smoke tests
(``synthetic.py``).

Adding a dataset format: a reader in ``decoding.read_source_arrays`` and its roles in
``keras_repro.config.roles``.
"""

from keras_repro.data.dataset import (
    build_dataset,
    content_identity,
    data_spec,
    load_dataset,
    recorded_sha256,
    recorded_spec,
    verify_dataset_file,
)
from keras_repro.data.download import download_dataset

__all__ = [
    "build_dataset",
    "content_identity",
    "data_spec",
    "download_dataset",
    "load_dataset",
    "recorded_sha256",
    "recorded_spec",
    "verify_dataset_file",
]
