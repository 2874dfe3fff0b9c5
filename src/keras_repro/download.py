"""Fetch a dataset from the first source that works, verifying every file before accepting it.

A source is a format (``npz`` or ``idx``), a location (an http(s):// or file:// URL prefix, or
a local folder) and its files by role, each with a sha256 (or null when the dataset's content
identity vouches for it instead: mirrors may recompress). Files land in a temporary folder
that is renamed into place only when everything is verified.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keras_repro.config import defaults, load_config
from keras_repro.dataset import (
    ROLES,
    DatasetError,
    content_identity,
    read_source_arrays,
    validate_arrays,
)
from keras_repro.errors import ReproError
from keras_repro.files import staging_dir, write_json_atomic
from keras_repro.logs import configure_logging

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
PROGRESS_EVERY_SECONDS = 5.0
TRANSIENT_HTTP_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(ReproError):
    """Every source failed; the message lists each one and why."""


class SourceFailed(Exception):
    """This source cannot deliver verified data (no point retrying)."""


class TransientFailure(Exception):
    """This attempt failed in a way that a later attempt may not."""


def file_location(location: str, name: str) -> str:
    """Where one file of a source lives: a URL, or a local path."""
    if urllib.parse.urlparse(location).scheme in ("http", "https", "file"):
        return urllib.parse.urljoin(location if location.endswith("/") else location + "/", name)
    return str(Path(location).expanduser() / name)


def _fetch_url(url: str, target: Path, timeout: float) -> str:
    """One attempt at downloading ``url`` to ``target``; returns the sha256 of what arrived."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
            expected = response.headers.get("Content-Length")
            total = int(expected) if expected is not None else None
            received, last_report = 0, time.monotonic()
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS:
                    last_report = time.monotonic()
                    share = f" ({100 * received / total:.0f} %)" if total else ""
                    log.info("  %s: %.1f MB%s", url, received / 1e6, share)
    except urllib.error.HTTPError as error:
        failure = TransientFailure if error.code in TRANSIENT_HTTP_STATUS else SourceFailed
        raise failure(f"HTTP {error.code} {error.reason}") from None
    except http.client.IncompleteRead as error:
        raise TransientFailure(f"truncated body ({len(error.partial)} bytes then EOF)") from None
    except (
        TimeoutError,
        urllib.error.URLError,
        ConnectionError,
        http.client.HTTPException,
    ) as error:
        reason = getattr(error, "reason", error)
        if urllib.parse.urlparse(url).scheme == "file":
            raise SourceFailed(f"cannot read: {reason}") from None
        raise TransientFailure(f"{type(error).__name__}: {reason}") from None
    if total is not None and received != total:
        raise TransientFailure(f"truncated body: {received} of {total} bytes")
    return digest.hexdigest()


def _copy_local(path: str, target: Path) -> str:
    source = Path(path)
    if not source.is_file():
        raise SourceFailed(f"no such file: {source}")
    digest = hashlib.sha256()
    with source.open("rb") as src, target.open("wb") as out:
        while chunk := src.read(CHUNK_BYTES):
            out.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(
    where: str,
    target: Path,
    timeout: float,
    attempts: int,
    backoff_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Copy or download one file, retrying transient failures with exponential backoff."""
    is_url = urllib.parse.urlparse(where).scheme in ("http", "https", "file")
    for attempt in range(1, attempts + 1):
        try:
            return _fetch_url(where, target, timeout) if is_url else _copy_local(where, target)
        except TransientFailure as failure:
            target.unlink(missing_ok=True)
            if attempt == attempts:
                raise SourceFailed(f"{failure} (after {attempts} attempts)") from None
            delay = backoff_seconds * 2 ** (attempt - 1)
            log.warning(
                "  attempt %d/%d failed: %s; retrying in %.1f s", attempt, attempts, failure, delay
            )
            sleep(delay)
    raise AssertionError("unreachable")


def _try_source(
    source: dict[str, Any],
    content_sha256: dict[str, str] | None,
    expected_counts: dict[str, int] | None,
    staging: Path,
    timeout: float,
    attempts: int,
    backoff_seconds: float,
) -> dict[str, Any]:
    files: dict[str, Path] = {}
    recorded: dict[str, dict[str, str | None]] = {}
    for role, entry in source["files"].items():
        where = file_location(source["location"], entry["name"])
        target = staging / entry["name"]
        log.info("%s: fetching %s", source["name"], where)
        actual = fetch_file(where, target, timeout, attempts, backoff_seconds)
        if entry.get("sha256") and actual != entry["sha256"]:
            raise SourceFailed(
                f"{entry['name']}: sha256 {actual}, expected {entry['sha256']} (wrong or corrupt file)"
            )
        files[role] = target
        recorded[role] = {"name": entry["name"], "sha256": actual}
    try:
        arrays = read_source_arrays(source["format"], files)
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
) -> dict[str, Any]:
    """Fetch the dataset from the first source whose files all verify.

    The verified files and ``record_path`` (source.json: which source, each file's sha256, the
    content identity) fill the folder ``record_path`` lies in; returns the record.
    """
    record_path = Path(record_path)
    output_dir = record_path.parent
    failures = []
    for source in sources:
        staging = staging_dir(output_dir)
        try:
            verified = _try_source(
                source, content_sha256, expected_counts, staging, timeout, attempts, backoff_seconds
            )
        except SourceFailed as failure:
            shutil.rmtree(staging)
            log.warning("%s: failed: %s", source["name"], failure)
            failures.append(f"  - {source['name']} ({source['location']}): {failure}")
            continue
        except BaseException:
            shutil.rmtree(staging)
            raise
        record = {
            "dataset": dataset,
            "name": source["name"],
            "format": source["format"],
            "location": source["location"],
            **verified,
        }
        write_json_atomic(record, staging / record_path.name)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        staging.rename(output_dir)
        log.info("%s: verified and accepted (content %s)", source["name"], record["content_sha256"])
        return record
    raise DownloadError(
        f"could not get dataset {dataset!r}; every source failed:\n"
        + "\n".join(failures)
        + f"\nTo use a copy you already have, add it as the first entry of "
        f"datasets.{dataset}.sources in config.yaml (a local folder or file:// URL as "
        "'location', with 'format' and 'files' as in the other entries)."
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
            timeout=settings["timeout"],
            attempts=settings["attempts"],
            backoff_seconds=settings["backoff_seconds"],
        )
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main()
