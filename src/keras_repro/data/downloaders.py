"""Fetching one file: from an http(s):// or file:// URL or a local path, bounded in size and time.

``fetch_file`` copies or downloads a file into a new file, at most ``limit`` bytes (checked
against Content-Length before the body and while it arrives), each attempt under a wall-clock
``Deadline`` that shuts the attempt's connections; transient failures are retried with
backoff. Only http(s) redirects are followed, never https to http. What to fetch and what to
accept is ``download``'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keras_repro.files import NewFile, human_size, plain_name

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16
PROGRESS_EVERY_SECONDS = 5.0
TRANSIENT_HTTP_STATUS = {408, 425, 429, 500, 502, 503, 504}
URL_SCHEMES = ("http", "https", "file")
MAX_REDIRECTS = 5


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
        # A name that does not resolve will not resolve on a retry (EAI_AGAIN might).
        if isinstance(reason, socket.gaierror) and reason.errno != socket.EAI_AGAIN:
            host = urllib.parse.urlparse(url).hostname
            raise SourceFailed(f"host name {host!r} does not resolve ({reason.strerror})") from None
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
