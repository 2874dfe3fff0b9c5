"""Fetch a dataset from the first source that works, verifying every file before accepting it.

A source is a format (``npz`` or ``idx``), a location (an http(s):// or file:// URL prefix, or
a local folder) and its files by role, each with a sha256 (or null when the dataset's content
identity vouches for it instead: mirrors may recompress). Files land in a temporary folder
that replaces the output folder only when everything is verified.

Everything is bounded: file names are plain names, so nothing is written outside the output
folder and sources are only read; no file may exceed what the dataset's counts allow
(``decoding.max_file_sizes``), checked against Content-Length before the body and while it
arrives; each attempt has a wall-clock deadline, at which its connections are shut. Fetching
one file is ``downloaders``'s; what to fetch and what to accept, this module's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

from keras_repro.config import ROLES, ConfigError, check_dataset_entry, defaults, load_config
from keras_repro.data.dataset import content_identity, validate_arrays
from keras_repro.data.decoding import DatasetError, max_bytes_of, max_file_sizes, read_source_arrays
from keras_repro.data.downloaders import SourceFailed, fetch_file, file_location
from keras_repro.errors import ReproError
from keras_repro.files import path_inside, staging_dir, write_json_atomic
from keras_repro.logs import configure_logging

log = logging.getLogger(__name__)

# Lists what a download wrote into its folder, so that only that is ever replaced: Snakemake
# deletes source.json before a rerun, so the record alone cannot say it.
MARKER_NAME = ".keras-repro-download.json"


# The dataset with a source on disk once a Debian package is installed (the README's offline
# route).
OFFLINE_DATASET = "fashion_mnist"


class DownloadError(ReproError):
    """Every source failed, or the output folder is not ours to replace."""


def _try_source(
    source: dict[str, Any],
    content_sha256: dict[str, str] | None,
    expected_counts: dict[str, int] | None,
    staging: Path,
    output_dir: Path,
    timeout: float,
    attempts: int,
    backoff_seconds: float,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    limits = max_file_sizes(source["format"], expected_counts, max_bytes)
    files: dict[str, Path] = {}
    origins: dict[str, str] = {}
    recorded: dict[str, dict[str, str | None]] = {}
    for role, entry in source["files"].items():
        where = file_location(source["location"], entry["name"])
        log.info("%s: fetching %s", source["name"], where)
        target = path_inside(staging, entry["name"])
        shown_as = output_dir / entry["name"]
        actual = fetch_file(
            where, target, limits[role], timeout, attempts, backoff_seconds, shown_as
        )
        if entry.get("sha256") and actual != entry["sha256"]:
            raise SourceFailed(
                f"{where}: sha256 {actual}, expected {entry['sha256']} (wrong or corrupt file)"
            )
        files[role], origins[role] = target, where
        recorded[role] = {"name": entry["name"], "sha256": actual}
    try:
        arrays = read_source_arrays(source["format"], files, expected_counts, origins, max_bytes)
        validate_arrays(arrays, expected_counts)
    except DatasetError as error:
        raise SourceFailed(f"delivered files that do not decode: {error}") from None
    identity = content_identity(arrays)
    if content_sha256:
        wrong = [role for role in ROLES if identity[role] != content_sha256[role]]
        if wrong:
            details = "; ".join(f"{r}: {identity[r]} != {content_sha256[r]}" for r in wrong)
            raise SourceFailed(f"content identity differs from the dataset's ({details})")
    return {"files": recorded, "content_sha256": identity}


def _written_by_a_download(folder: Path, record_name: str) -> set[str] | None:
    """The entries a previous download wrote into ``folder``, or None if it cannot tell."""
    for listing, key in ((MARKER_NAME, "written"), (record_name, "files")):
        try:
            data = json.loads((folder / listing).read_text())
            names = data[key] if key == "written" else [f["name"] for f in data[key].values()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if isinstance(names, list) and all(isinstance(name, str) for name in names):
            return {*names, MARKER_NAME, record_name}
    return None


def previous_download(folder: Path, record_name: str) -> list[str]:
    """What ``folder`` holds, refused unless all of it is what a previous download wrote."""
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise DownloadError(f"{folder} is not a folder; the download needs one of its own")
    entries = sorted(os.listdir(folder))
    ours = _written_by_a_download(folder, record_name) if entries else set()
    foreign = [
        name
        for name in entries
        if ours is None
        or name not in ours
        or (folder / name).is_symlink()
        or not (folder / name).is_file()
    ]
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise DownloadError(
            f"{folder} holds {shown}, which no previous download wrote, and a download replaces "
            f"its whole folder: nothing was changed. Write {record_name} into a folder of its "
            "own (e.g. results/download/<dataset>/), or move those files away."
        )
    return entries


def _replace_folder(folder: Path, staging: Path, record_name: str) -> None:
    """Put ``staging`` in the place of ``folder``, deleting only a previous download's files."""
    # The lists of what was written go last: a folder left half-deleted stays recognisable.
    entries = previous_download(folder, record_name)
    for name in sorted(entries, key=lambda n: (n == record_name, n == MARKER_NAME)):
        (folder / name).unlink()
    if folder.exists():
        folder.rmdir()
    staging.rename(folder)


def download_dataset(
    dataset: str,
    sources: list[dict[str, Any]],
    record_path: Path,
    content_sha256: dict[str, str] | None = None,
    expected_counts: dict[str, int] | None = None,
    *,
    timeout: float,
    attempts: int,
    backoff_seconds: float,
    max_megabytes: float | None = None,
) -> dict[str, Any]:
    """Fetch the dataset from the first source whose files all verify (each file bounded by
    the counts, or by ``max_megabytes`` for the arrays together).

    The verified files and ``record_path`` (source.json: which source, each file's sha256, the
    content identity) fill the folder ``record_path`` lies in; returns the record. That folder
    must be absent, empty or a previous download: nothing else in it is ever replaced.
    """
    entry: dict[str, Any] = {"sources": sources, "content_sha256": content_sha256}
    if expected_counts is not None:
        entry["counts"] = expected_counts
    if max_megabytes is not None:
        entry["max_megabytes"] = max_megabytes
    check_dataset_entry(dataset, entry)
    record_path = Path(record_path)
    for index, source in enumerate(sources):
        for role, file in source["files"].items():
            if file["name"] == record_path.name:
                raise ConfigError(
                    f"datasets.{dataset}.sources[{index}].files.{role}.name: {file['name']!r} "
                    "is the name of the download's own record; rename the file or the record"
                )
    output_dir = record_path.parent.resolve()
    previous_download(output_dir, record_path.name)  # refuse before downloading anything
    failures = []
    for source in sources:
        staging = staging_dir(output_dir)
        try:
            verified = _try_source(
                source,
                content_sha256,
                expected_counts,
                staging,
                output_dir,
                timeout,
                attempts,
                backoff_seconds,
                max_bytes_of(max_megabytes),
            )
            record = {
                "dataset": dataset,
                "name": source["name"],
                "format": source["format"],
                "location": source["location"],
                **verified,
            }
            written = sorted(file["name"] for file in verified["files"].values())
            for name, data in ((MARKER_NAME, {"written": written}), (record_path.name, record)):
                write_json_atomic(data, staging / name, shown_as=output_dir / name)
            _replace_folder(output_dir, staging, record_path.name)
        except SourceFailed as failure:
            shutil.rmtree(staging)
            log.warning("%s: failed: %s", source["name"], failure)
            failures.append(f"  - {source['name']} ({source['location']}): {failure}")
            continue
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log.info("%s: verified and accepted (content %s)", source["name"], record["content_sha256"])
        return record
    raise DownloadError(
        f"could not get dataset {dataset!r}; every source failed:\n"
        + "\n".join(failures)
        + _what_to_do(dataset, sources)
    )


def _what_to_do(dataset: str, sources: list[dict[str, Any]]) -> str:
    """A copy to add and the offline route where a source is on the network; where every
    source is a file already here, what to check instead."""
    if all(urllib.parse.urlparse(s["location"]).scheme not in ("http", "https") for s in sources):
        return (
            f"\nEvery source of datasets.{dataset} is a file here: check that the files are "
            "where its entry says, and that the entry matches them (for an .npz, "
            f"keras-repro-add-dataset {dataset} FILE.npz prints a matching entry)."
        )
    return (
        f"\nTo use a copy you already have, add it as the first entry of "
        f"datasets.{dataset}.sources in config.yaml (a local folder or file:// URL as "
        "'location', with 'format' and 'files' as in the other entries)." + _offline_hint(dataset)
    )


def _offline_hint(dataset: str) -> str:
    """The README's offline route: real data from a Debian package."""
    install = "apt-get install dataset-fashion-mnist"
    if dataset == OFFLINE_DATASET:
        return f"\nOffline, {install} puts Fashion-MNIST where the debian source looks."
    return (
        f"\nOffline? Train on Fashion-MNIST from Debian instead: {install}, then "
        f"snakemake --cores all --config dataset={OFFLINE_DATASET}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=download_dataset.__doc__)
    parser.add_argument("dataset", help="which entry of the config's 'datasets' to fetch")
    parser.add_argument(
        "record", type=Path, help="source.json to write; the files land in its folder"
    )
    parser.add_argument(
        "--config", type=Path, help="a config file (default: the built-in datasets and settings)"
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        config = load_config(args.config) if args.config else defaults()
        if args.dataset not in config["datasets"]:
            raise DownloadError(
                f"no dataset {args.dataset!r}; known: {', '.join(sorted(config['datasets']))}"
            )
        entry, settings = config["datasets"][args.dataset], config["download"]
        download_dataset(
            args.dataset,
            entry["sources"],
            args.record,
            content_sha256=entry.get("content_sha256"),
            expected_counts=entry.get("counts"),
            max_megabytes=entry.get("max_megabytes"),
            timeout=settings["timeout"],
            attempts=settings["attempts"],
            backoff_seconds=settings["backoff_seconds"],
        )
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main()
