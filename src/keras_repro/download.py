"""Fetch a dataset from the first source that works, verifying every file before accepting it.

A source is a format (``npz`` or ``idx``), a location (an http(s):// or file:// URL prefix, or
a local folder) and its files by role, each with a sha256 (or null when the dataset's content
identity vouches for it instead: mirrors may recompress). Files land in a temporary folder
that replaces the output folder only when everything is verified.

Everything is bounded: file names are plain names, so nothing is written outside the output
folder and sources are only read; no file may exceed what the dataset's counts allow
(``dataset.max_file_sizes``), checked against Content-Length before the body and while it
arrives; each attempt has a wall-clock deadline, at which its connections are shut.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keras_repro.config import ConfigError, check_dataset_entry, defaults, load_config
from keras_repro.dataset import (
    ROLES,
    DatasetError,
    content_identity,
    max_bytes_of,
    max_file_sizes,
    read_source_arrays,
    validate_arrays,
)
from keras_repro.errors import ReproError
from keras_repro.files import (
    NewFile,
    human_size,
    path_inside,
    plain_name,
    staging_dir,
    write_json_atomic,
)
from keras_repro.logs import configure_logging

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16
PROGRESS_EVERY_SECONDS = 5.0
TRANSIENT_HTTP_STATUS = {408, 425, 429, 500, 502, 503, 504}
URL_SCHEMES = ("http", "https", "file")
MAX_REDIRECTS = 5
# Lists what a download wrote into its folder, so that only that is ever replaced: Snakemake
# deletes source.json before a rerun, so the record alone cannot say it.
MARKER_NAME = ".keras-repro-download.json"


class DownloadError(ReproError):
    """Every source failed, or the output folder is not ours to replace."""


class SourceFailed(Exception):
    """This source cannot deliver verified data (no point retrying)."""


class TransientFailure(Exception):
    """This attempt failed in a way that a later attempt may not."""


def file_location(location: str, name: str) -> str:
    """Where one file of a source lives: a URL, or a local path (``name`` must be plain; a
    source may be a symlink, as it is only read)."""
    if urllib.parse.urlparse(location).scheme in URL_SCHEMES:
        base = location if location.endswith("/") else location + "/"
        return urllib.parse.urljoin(base, plain_name(name))
    return str(Path(location).expanduser() / plain_name(name))


def _rate(size: float, seconds: float) -> str:
    per_second = size / max(seconds, 1e-9)
    return f"{per_second / 1e6:.2f} MB/s" if per_second >= 1e5 else f"{per_second:,.0f} bytes/s"


class Deadline:
    """The wall clock of one attempt: logs progress while it runs, and at the end shuts every
    connection the attempt opened, so that a stalled or dripping server is cut off."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.start = time.monotonic()
        self.received = 0
        self.expected: int | None = None
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)

    def remaining(self) -> float:
        return self.start + self.seconds - time.monotonic()

    def __enter__(self) -> Deadline:
        self._watcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._watcher.join()
        for sock in self._sockets:
            sock.close()

    def connected(self, sock: socket.socket) -> socket.socket:
        """Put a new connection under the deadline (a duplicate, so it outlives its owner)."""
        with self._lock:
            self._sockets.append(sock.dup())
            if self.expired:
                self._shut(self._sockets[-1])
        return sock

    def failure(self) -> TransientFailure:
        return TransientFailure(
            f"not complete within the {self.seconds:g} s deadline per attempt "
            f"({self._progress()}); download.timeout sets it"
        )

    def _progress(self) -> str:
        elapsed = time.monotonic() - self.start
        of = f" of {human_size(self.expected)}" if self.expected else ""
        return (
            f"{human_size(self.received)}{of} in {elapsed:.1f} s, {_rate(self.received, elapsed)}"
        )

    def _watch(self) -> None:
        interval = min(PROGRESS_EVERY_SECONDS, self.seconds / 4)
        while not self._stop.wait(max(0.0, min(interval, self.remaining()))):
            if self.remaining() <= 0:
                with self._lock:
                    self.expired = True
                    for sock in self._sockets:
                        self._shut(sock)
                log.warning("  %s: deadline of %g s reached, cut off", self.what, self.seconds)
                return
            log.info("  %s: %s", self.what, self._progress())

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        # shutdown, unlike close, wakes a read blocked in another thread.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _RefuseOtherSchemes(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        old = urllib.parse.urlparse(req.full_url).scheme
        new = urllib.parse.urlparse(newurl).scheme
        if new not in ("http", "https") or (old, new) == ("https", "http"):
            fp.close()
            raise SourceFailed(
                f"redirected to {newurl}; only http(s) redirects are followed, never https to http"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _connection_class(base: type[http.client.HTTPConnection], deadline: Deadline) -> type:
    class Connection(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            create = self._create_connection  # the TCP connect, before any TLS handshake
            self._create_connection = lambda *a, **k: deadline.connected(create(*a, **k))

    return Connection


def _opener(deadline: Deadline) -> urllib.request.OpenerDirector:
    """urllib's opener for http, https and file only, each connection under ``deadline``."""

    class Http(urllib.request.HTTPHandler):
        def do_open(self, http_class, req, **kwargs):  # type: ignore[no-untyped-def]
            return super().do_open(_connection_class(http_class, deadline), req, **kwargs)

    class Https(urllib.request.HTTPSHandler):
        def do_open(self, http_class, req, **kwargs):  # type: ignore[no-untyped-def]
            return super().do_open(_connection_class(http_class, deadline), req, **kwargs)

    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        Http(),
        Https(),
        urllib.request.FileHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        _RefuseOtherSchemes(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _too_big(size: int, limit: int) -> SourceFailed:
    return SourceFailed(
        f"{human_size(size)}, more than the {human_size(limit)} the dataset's counts allow "
        "for this file"
    )


def _receive(stream: Any, out: NewFile, deadline: Deadline, limit: int) -> str:
    """Copy ``stream`` to ``out`` chunk by chunk, within ``limit`` bytes; returns the sha256."""
    digest = hashlib.sha256()
    # read1 returns what has arrived, so the loop turns even while a server drips.
    while chunk := stream.read1(CHUNK_BYTES):
        if out.written + len(chunk) > limit:
            raise SourceFailed(
                f"sent more than the {human_size(limit)} the dataset's counts allow for this "
                "file; cut off"
            )
        out.write(chunk)
        digest.update(chunk)
        deadline.received = out.written
        if deadline.expired:
            raise deadline.failure()
    if deadline.expired:
        raise deadline.failure()
    return digest.hexdigest()


def _fetch_url(url: str, out: NewFile, deadline: Deadline, limit: int) -> str:
    """One attempt at downloading ``url`` into ``out``; returns the sha256 of what arrived."""
    try:
        with _opener(deadline).open(url, timeout=max(deadline.remaining(), 0.001)) as response:
            announced = response.headers.get("Content-Length")
            total = int(announced) if announced and announced.isdigit() else None
            if total is not None and total > limit:
                raise SourceFailed(f"announces {_too_big(total, limit)} (Content-Length)")
            out.expected = deadline.expected = total
            sha256 = _receive(response, out, deadline, limit)
    except urllib.error.HTTPError as error:
        failure = TransientFailure if error.code in TRANSIENT_HTTP_STATUS else SourceFailed
        raise failure(f"HTTP {error.code} {error.reason}") from None
    except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, TLS, resets
        if deadline.expired:
            raise deadline.failure() from None
        if isinstance(error, http.client.IncompleteRead):
            raise TransientFailure(
                f"truncated body ({len(error.partial)} bytes then EOF)"
            ) from None
        reason = getattr(error, "reason", error)
        if urllib.parse.urlparse(url).scheme == "file":
            raise SourceFailed(f"cannot read: {reason}") from None
        raise TransientFailure(f"{type(error).__name__}: {reason}") from None
    if total is not None and out.written != total:
        raise TransientFailure(f"truncated body: {out.written} of {total} bytes")
    return sha256


def _copy_local(path: str, out: NewFile, deadline: Deadline, limit: int) -> str:
    source = Path(path)
    if not source.exists():
        raise SourceFailed(f"no such file: {source}")
    if not source.is_file():
        raise SourceFailed(f"not a regular file: {source}")
    size = source.stat().st_size
    if size > limit:
        raise _too_big(size, limit)
    out.expected = deadline.expected = size
    with source.open("rb") as stream:
        return _receive(stream, out, deadline, limit)


def fetch_file(
    where: str,
    target: Path,
    limit: int,
    timeout: float,
    attempts: int,
    backoff_seconds: float,
    shown_as: Path | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Copy or download one file to the new file ``target``, at most ``limit`` bytes, each
    attempt within ``timeout`` seconds; transient failures are retried with backoff."""
    is_url = urllib.parse.urlparse(where).scheme in URL_SCHEMES
    for attempt in range(1, attempts + 1):
        try:
            with Deadline(timeout, where) as deadline, NewFile(target, shown_as) as out:
                fetch = _fetch_url if is_url else _copy_local
                return fetch(where, out, deadline, limit)
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
            max_megabytes=entry.get("max_megabytes"),
            timeout=settings["timeout"],
            attempts=settings["attempts"],
            backoff_seconds=settings["backoff_seconds"],
        )
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main()
