"""A real HTTP server on 127.0.0.1 that misbehaves on purpose, for download tests."""

from __future__ import annotations

import contextlib
import http.server
import os
import ssl
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Server:
    """A real HTTP server on 127.0.0.1 serving ``root``, with faults planted per path.

    Faults, one per request, in the order planted:
    "500", "404", "truncate" (half the body, then EOF);
    "endless" (no Content-Length, bytes until the client hangs up), "endless-chunked";
    "huge-length" (announces 10**12 bytes, sends the file), "short-length" (announces 100 bytes,
    sends the whole file); "drip" (one byte every ``drip_seconds``), "slow" (the file in 8 parts,
    ``drip_seconds`` apart), "drip-headers" (the status
    line, then the headers one byte at a time), "silent" (accepts, never answers);
    "redirect:<url>" (302 to ``url``).
    """

    root: Path
    url: str = ""
    faults: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    requests: list[str] = field(default_factory=list)
    drip_seconds: float = 1.0
    # Bytes the misbehaving handlers managed to send, by path.
    sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    stopping: threading.Event = field(default_factory=threading.Event)

    def count(self, name: str) -> int:
        return sum(path.endswith("/" + name) for path in self.requests)


@contextmanager
def serving(root: Path, tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    """A real HTTP server on 127.0.0.1 serving ``root``, for as long as the block runs
    (HTTPS with the server context ``tls``)."""
    state = Server(root=root)
    state.root.mkdir(parents=True, exist_ok=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            planned = state.faults.get(self.path)
            fault = planned.pop(0) if planned else None
            target = state.root / self.path.lstrip("/")
            # The client hanging up is what a cut-off looks like from here.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.answer(fault, target)

        def answer(self, fault: str | None, target: Path) -> None:
            if fault == "500":
                self.send_error(500, "planted failure")
                return
            if fault and fault.startswith("redirect:"):
                self.send_response(302)
                self.send_header("Location", fault.removeprefix("redirect:"))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fault == "silent":
                state.stopping.wait(60)
                return
            if fault == "drip-headers":
                self.wfile.write(b"HTTP/1.0 200 OK\r\n")
                self.drip(b"X-Slow: " + b"a" * 10_000)
                return
            if fault in ("endless", "endless-chunked"):
                self.send_response(200)
                if fault == "endless-chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                block = os.urandom(1 << 16)
                framed = (
                    b"%x\r\n%s\r\n" % (len(block), block) if fault == "endless-chunked" else block
                )
                while not state.stopping.is_set():
                    self.wfile.write(framed)
                    state.sent[self.path] += len(block)
                return
            if fault == "404" or not target.is_file():
                self.send_error(404)
                return
            body = target.read_bytes()
            self.send_response(200)
            length = {"huge-length": 10**12, "short-length": 100}.get(fault or "", len(body))
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if fault == "drip":
                self.drip(body)
                return
            if fault == "slow":
                for start in range(0, len(body), len(body) // 8 + 1):
                    state.stopping.wait(state.drip_seconds)
                    self.wfile.write(body[start : start + len(body) // 8 + 1])
                return
            self.wfile.write(body[: len(body) // 2] if fault == "truncate" else body)

        def drip(self, data: bytes) -> None:
            for index in range(len(data)):
                if state.stopping.wait(state.drip_seconds):
                    return
                self.wfile.write(data[index : index + 1])
                state.sent[self.path] += 1

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    scheme = "https" if tls else "http"
    state.url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stopping.set()
        httpd.shutdown()
        httpd.server_close()
