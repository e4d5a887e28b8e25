"""Log the OpenAI Python client's chat completions with one line of setup.

``client = wrap_openai(OpenAI(), fw)`` (or ``AsyncOpenAI()``) replaces
``client.chat.completions.create`` on that client object only: every call still goes to OpenAI
and returns what it returned, and each completion is queued to Flywheel with the request's
messages, the answer, the model that answered, the token usage and the latency. Streaming calls
(``stream=True``) are logged when the stream ends (or is closed), with the concatenated deltas.

Nothing here imports ``openai``: any object shaped like the client works. Logging never raises
into the caller; a completion with no text (a tool call) is logged with an empty response.
Per call, ``flywheel={"segment": {...}, "conversation_id": ..., "metadata": {...},
"external_id": ...}`` adds to what is logged (it is removed before the request is sent).
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

log = logging.getLogger("flywheel_sdk")

# Flywheel keeps system / user / assistant / tool; OpenAI's newer names map onto them.
_ROLES = {"developer": "system", "function": "tool"}
_REQUEST_PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "n")


class _Logger(Protocol):
    @property
    def log_interaction(self) -> Callable[..., str]: ...


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _text(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(_get(part, "text") or "") for part in content if _get(part, "type") == "text"
        )
    return str(content)


def _messages(raw: Any) -> list[dict[str, str]]:
    out = []
    for message in raw or []:
        role = str(_get(message, "role") or "user")
        out.append({"role": _ROLES.get(role, role), "content": _text(_get(message, "content"))})
    return out


def _usage(usage: Any) -> dict[str, Any]:
    if usage is None:
        return {}
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {k: _get(usage, k) for k in keys if _get(usage, k) is not None}


class _Call:
    """What one create() call knows: the request, then the answer."""

    def __init__(self, fw: _Logger, defaults: Mapping[str, Any], kwargs: dict[str, Any]) -> None:
        self.fw = fw
        self.extra = {**defaults, **(kwargs.pop("flywheel", None) or {})}
        self.request = kwargs
        self.started = time.monotonic()
        self.occurred_at = dt.datetime.now(dt.timezone.utc)
        self.parts: list[str] = []
        self.id: str | None = None
        self.model: str | None = None
        self.usage: Any = None
        self.finish_reason: str | None = None

    def chunk(self, chunk: Any) -> None:
        try:
            self.id = self.id or _get(chunk, "id")
            self.model = self.model or _get(chunk, "model")
            self.usage = _get(chunk, "usage") or self.usage
            for choice in _get(chunk, "choices") or []:
                if (_get(choice, "index") or 0) != 0:
                    continue
                delta = _get(choice, "delta")
                piece = _get(delta, "content") if delta is not None else None
                if piece:
                    self.parts.append(str(piece))
                self.finish_reason = _get(choice, "finish_reason") or self.finish_reason
        except Exception as exc:
            log.warning("Flywheel could not read a stream chunk: %s", exc)

    def completion(self, response: Any) -> None:
        try:
            self.id = _get(response, "id")
            self.model = _get(response, "model")
            self.usage = _get(response, "usage")
            choices = _get(response, "choices") or []
            if choices:
                self.parts = [_text(_get(_get(choices[0], "message"), "content"))]
                self.finish_reason = _get(choices[0], "finish_reason")
        except Exception as exc:
            log.warning("Flywheel could not read a completion: %s", exc)

    def send(self, *, streamed: bool) -> None:
        try:
            extra = self.extra
            metadata: dict[str, Any] = {
                "source": "openai.chat.completions",
                "latency_ms": round((time.monotonic() - self.started) * 1000, 1),
                "streamed": streamed,
                "request": {k: self.request[k] for k in _REQUEST_PARAMS if k in self.request},
            }
            if self.request.get("model"):
                metadata["request"]["model"] = self.request["model"]
            if self.usage is not None:
                metadata["usage"] = _usage(self.usage)
            if self.finish_reason:
                metadata["finish_reason"] = self.finish_reason
            metadata.update(extra.get("metadata") or {})
            self.fw.log_interaction(
                external_id=extra.get("external_id") or self.id,
                occurred_at=self.occurred_at,
                messages=_messages(self.request.get("messages")),
                response="".join(self.parts),
                model_version=self.model or self.request.get("model"),
                conversation_id=extra.get("conversation_id"),
                segment=extra.get("segment"),
                metadata=metadata,
                scores=extra.get("scores"),
            )
        except Exception as exc:
            log.warning("Flywheel could not log a completion: %s", exc)


class _Stream:
    """Wraps a sync stream: iterate it as before; logged once when it ends or is closed."""

    def __init__(self, inner: Any, call: _Call) -> None:
        self._inner = inner
        self._call = call
        self._iter = iter(inner)
        self._logged = False

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._iter)
        except StopIteration:
            self._finish()
            raise
        self._call.chunk(chunk)
        return chunk

    def _finish(self) -> None:
        if not self._logged:
            self._logged = True
            self._call.send(streamed=True)

    def close(self) -> None:
        self._finish()
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _AsyncStream:
    """Wraps an async stream the same way."""

    def __init__(self, inner: Any, call: _Call) -> None:
        self._inner = inner
        self._call = call
        self._iter = inner.__aiter__()
        self._logged = False

    def __aiter__(self) -> _AsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._iter.__anext__()
        except StopAsyncIteration:
            self._finish()
            raise
        self._call.chunk(chunk)
        return chunk

    def _finish(self) -> None:
        if not self._logged:
            self._logged = True
            self._call.send(streamed=True)

    async def close(self) -> None:
        self._finish()
        close = getattr(self._inner, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result

    async def __aenter__(self) -> _AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _finish_async(pending: Any, call: _Call, streamed: bool) -> Any:
    result = await pending
    if streamed:
        return _AsyncStream(result, call)
    call.completion(result)
    call.send(streamed=False)
    return result


def wrap_openai(
    client: Any,
    fw: _Logger,
    *,
    segment: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    conversation_id: str | None = None,
) -> Any:
    """Log every ``client.chat.completions.create`` call of ``client`` (sync or async, streamed
    or not) to ``fw``; returns ``client``. ``segment``, ``metadata`` and ``conversation_id``
    are defaults for every call."""
    completions = client.chat.completions
    original = completions.create
    if getattr(original, "__flywheel_wrapped__", False):
        return client
    defaults: dict[str, Any] = {}
    if segment:
        defaults["segment"] = dict(segment)
    if metadata:
        defaults["metadata"] = dict(metadata)
    if conversation_id:
        defaults["conversation_id"] = conversation_id

    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        call = _Call(fw, defaults, kwargs)
        result = original(*args, **kwargs)
        streamed = bool(kwargs.get("stream"))
        if inspect.isawaitable(result):  # AsyncOpenAI (its create returns a coroutine)
            return _finish_async(result, call, streamed)
        if streamed:
            return _Stream(result, call)
        call.completion(result)
        call.send(streamed=False)
        return result

    create.__flywheel_wrapped__ = True  # type: ignore[attr-defined]
    completions.create = create
    return client
