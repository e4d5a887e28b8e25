"""An OpenAI-compatible chat-completions server on loopback that also streams (server-sent
events), for the SDK's wrapper tests: it answers ``"echo: <last user message>"`` with the id
``chatcmpl-<n>`` and the requested model, as whole completions or as a stream of deltas."""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self) -> None:
        self.server: ThreadingHTTPServer | None = None
        self.ids = itertools.count(1)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                cid = f"chatcmpl-{next(fake.ids)}"
                content = body["messages"][-1]["content"]
                if isinstance(content, list):
                    content = "".join(part.get("text", "") for part in content)
                text = f"echo: {content}"
                model = body.get("model", "fake") + "-2026-11"
                if body.get("stream"):
                    self._stream(cid, model, text, include_usage=bool(body.get("stream_options")))
                else:
                    self._json(
                        {
                            "id": cid,
                            "object": "chat.completion",
                            "created": 1764000000,
                            "model": model,
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {
                                "prompt_tokens": 9,
                                "completion_tokens": 3,
                                "total_tokens": 12,
                            },
                        }
                    )

            def _json(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, cid: str, model: str, text: str, *, include_usage: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
                base = {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": 1764000000,
                    "model": model,
                }
                chunks = [
                    {
                        **base,
                        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
                    }
                ]
                chunks += [
                    {**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces
                ]
                chunks.append(
                    {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                )
                if include_usage:
                    chunks.append(
                        {
                            **base,
                            "choices": [],
                            "usage": {
                                "prompt_tokens": 9,
                                "completion_tokens": 3,
                                "total_tokens": 12,
                            },
                        }
                    )
                for chunk in chunks:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
