"""A real webhook receiver on loopback for the webhook tests and bench.

``Receiver(plan=[...])`` answers each request by the next entry of ``plan`` (then ``default``):
``"ok"`` 200, ``"fail"`` 500, ``"timeout"`` sleeps ``hang_s`` and then answers 200 (the sender has
given up by then: the receiver *did* get it), or a callable ``(request_number, headers, body) ->
mode``. Every request is recorded with its headers, raw body and the answer given.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Mode = str | Callable[[int, dict[str, str], bytes], str]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    mode: str
    at: float


@dataclass
class Receiver:
    plan: list[Mode] = field(default_factory=list)
    default: Mode = "ok"
    hang_s: float = 1.0
    host: str = "127.0.0.1"  # any address of 127.0.0.0/8 is loopback on Linux
    port: int = 0  # 0: a free one
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://{self.host}:{self.bound_port}/hooks/flywheel"

    @property
    def bound_port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def _mode(self, number: int, headers: dict[str, str], body: bytes) -> str:
        with self.lock:
            mode = self.plan.pop(0) if self.plan else self.default
        return mode(number, headers, body) if callable(mode) else mode

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict(self.headers.items())
                with receiver.lock:
                    number = len(receiver.requests) + 1
                mode = receiver._mode(number, headers, body)
                with receiver.lock:
                    receiver.requests.append(Seen(self.path, headers, body, mode, time.time()))
                if mode == "timeout":
                    time.sleep(receiver.hang_s)
                status = 500 if mode == "fail" else 200
                answer = b'{"error": "receiver is failing"}' if status == 500 else b"ok"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up (timeout)

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
