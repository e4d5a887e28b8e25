"""A real OpenAI-compatible chat-completions server on loopback, for the judge tests and bench.

It answers deterministically from markers in the judged text (the prompt carries the response):
``[[score=7]]`` the score to give (default 5); ``[[429x2]]`` the first 2 requests for this text get
429 with ``Retry-After``; ``[[500x3]]`` the first 3 get 500; ``[[hang]]`` sleeps ``hang_s`` before
answering; ``[[malformed]]`` a 200 whose body is not JSON; ``[[text:...]]`` that reply text
verbatim (e.g. non-numeric); ``[[echo-auth]]`` a 400 whose error echoes the Authorization header
(``[[echo-auth-reply]]``: a 200 reply that does). Every request is recorded (path, headers, body,
time).

For the benchmarks: ``scores`` maps a judged text to its score (texts without a marker), every
request can wait ``delay_s`` first, ``record=False`` keeps only counts, and ``python -m
tests.judge_server PORT`` serves it from its own process.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_SCORE = re.compile(r"\[\[score=([-0-9.]+)\]\]")
_FAIL = re.compile(r"\[\[(429|500)x(\d+)\]\]")
_TEXT = re.compile(r"\[\[text:(.*?)\]\]", re.DOTALL)
_RESPONSE = re.compile(r"<<<\n(.*?)\n>>>", re.DOTALL)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    status: int = 0


@dataclass
class StubJudge:
    retry_after: str = "1"
    hang_s: float = 2.0
    always_status: int | None = None  # every request answers this status (an outage)
    logprobs_spread: bool = True
    scores: dict[str, float] = field(default_factory=dict)  # judged text -> score
    delay_s: float = 0.0  # every request waits this long (a slow endpoint)
    record: bool = True
    served: int = 0
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: dict[str, int] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self, port: int = 0) -> StubJudge:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                seen = Seen(self.path, dict(self.headers.items()), body, time.monotonic())
                with stub.lock:
                    stub.served += 1
                    if stub.record:
                        stub.requests.append(seen)
                if stub.delay_s:
                    time.sleep(stub.delay_s)
                status, payload, headers = stub.answer(
                    self.path, body, auth=self.headers.get("Authorization", "")
                )
                seen.status = status
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.request_queue_size = 256
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def judged_text(self, body: dict[str, Any]) -> str:
        messages = body.get("messages") or [{}]
        content = str(messages[-1].get("content", ""))
        match = _RESPONSE.search(content)
        return match.group(1) if match else content

    def requests_for(self, marker: str) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if marker in self.judged_text(r.body)]

    def answer(
        self, path: str, body: dict[str, Any], auth: str = ""
    ) -> tuple[int, Any, dict[str, str]]:
        if not path.endswith("/chat/completions"):
            return 404, {"error": {"message": "not found"}}, {}
        if self.always_status is not None:
            return self.always_status, {"error": {"message": "outage"}}, {}
        text = self.judged_text(body)
        with self.lock:
            n = self.counts[text] = self.counts.get(text, 0) + 1
        if "[[echo-auth" in text:  # a careless server that echoes the header it received
            message = f"bad request; you sent Authorization: {auth}"
            if "[[echo-auth-reply]]" in text:
                return 200, self._completion(f"no score. {message}", n), {}
            return 400, {"error": {"message": message}}, {}
        fail = _FAIL.search(text)
        if fail and n <= int(fail.group(2)):
            status = int(fail.group(1))
            headers = {"Retry-After": self.retry_after} if status == 429 else {}
            return status, {"error": {"message": f"stub {status}"}}, headers
        if "[[hang]]" in text:
            time.sleep(self.hang_s)
        if "[[malformed]]" in text:
            return 200, b'{"choices": [{"message": {"content": "{\\"score\\": 7', {}
        custom = _TEXT.search(text)
        if custom:
            content = custom.group(1)
        else:
            score_match = _SCORE.search(text)
            score = (
                float(score_match.group(1))
                if score_match
                else float(self.scores.get(text.strip(), 5.0))
            )
            shown = int(score) if score.is_integer() else score
            content = json.dumps({"score": shown, "reason": f"stub judged it {shown}"})
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }
        if body.get("logprobs") and not custom:
            choice["logprobs"] = {"content": self._logprobs(content)}
        return 200, self._completion(content, n, choice=choice, model=body.get("model")), {}

    def _completion(
        self, content: str, n: int, *, choice: dict[str, Any] | None = None, model: Any = None
    ) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "model": model or "stub",
            "choices": [
                choice
                or {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 12, "total_tokens": 112},
        }

    def _logprobs(self, content: str) -> list[dict[str, Any]]:
        """Tokens of the reply; the score token gets alternatives score-1 (20%) and score (80%)."""
        import math

        out = []
        for token in re.findall(r"\d+|\D+", content):
            entry: dict[str, Any] = {"token": token, "logprob": 0.0, "top_logprobs": []}
            if token.isdigit() and self.logprobs_spread:
                value = int(token)
                entry["logprob"] = math.log(0.8)
                entry["top_logprobs"] = [
                    {"token": token, "logprob": math.log(0.8)},
                    {"token": str(value - 1), "logprob": math.log(0.2)},
                    {"token": "x", "logprob": math.log(0.001)},
                ]
            out.append(entry)
        return out


if __name__ == "__main__":  # a stub in its own process: python -m tests.judge_server PORT [DELAY]
    import sys

    server = StubJudge(record=False, delay_s=float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
    server.start(int(sys.argv[1]))
    print(server.url, flush=True)
    threading.Event().wait()
