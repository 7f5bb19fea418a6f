"""A fake ``msb serve`` behind an httpx transport, and answers shaped like the server's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Tuple, Union

import httpx


@dataclass
class Seen:
    """A request the fake server received, its body read."""

    method: str
    path: str
    params: Dict[str, str]
    headers: httpx.Headers
    body: bytes
    chunks: List[bytes]
    extensions: Dict[str, Any]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


Reply = Union[httpx.Response, Callable[[Seen], httpx.Response]]


@dataclass
class FakeServer:
    """Answers requests by method and path, and records them."""

    routes: Dict[Tuple[str, str], Reply] = field(default_factory=dict)
    seen: List[Seen] = field(default_factory=list)
    events: List[str] = field(default_factory=list)

    def on(self, method: str, path: str, reply: Reply) -> None:
        self.routes[(method, path)] = reply

    def on_json(self, method: str, path: str, body: Any, status: int = 200) -> None:
        self.on(method, path, lambda _: httpx.Response(status, json=body))

    def find(self, method: str, path: str) -> Seen:
        matches = [s for s in self.seen if (s.method, s.path) == (method, path)]
        assert matches, f"no {method} {path} among {[(s.method, s.path) for s in self.seen]}"
        return matches[-1]

    def _answer(self, request: httpx.Request, chunks: List[bytes]) -> httpx.Response:
        seen = Seen(
            request.method,
            request.url.path,
            dict(request.url.params),
            request.headers,
            b"".join(chunks),
            chunks,
            dict(request.extensions),
        )
        self.seen.append(seen)
        reply = self.routes.get((request.method, request.url.path))
        if reply is None:
            return httpx.Response(404, json={"error": {"kind": "not_found", "message": "no route"}})
        return reply(seen) if callable(reply) else reply

    def transport(self) -> "FakeTransport":
        return FakeTransport(self)


class FakeTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Hands requests to a fake server, reading their bodies chunk by chunk as a network
    transport would (``httpx.MockTransport`` reads them whole first)."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        chunks = []
        for chunk in request.stream:  # type: ignore[union-attr]
            self.server.events.append(f"recv {len(chunk)}")
            chunks.append(chunk)
        return self.server._answer(request, chunks)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        chunks = []
        async for chunk in request.stream:  # type: ignore[union-attr]
            self.server.events.append(f"recv {len(chunk)}")
            chunks.append(chunk)
        return self.server._answer(request, chunks)


class ChunkedBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body sent in the given chunks, which notes when it is closed."""

    def __init__(self, chunks: List[bytes], then_wait: bool = False) -> None:
        self.chunks = chunks
        self.then_wait = then_wait
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.then_wait:
            raise AssertionError("read past the chunks: the stream should have been closed")

    async def __aiter__(self):  # type: ignore[override]
        for chunk in self.chunks:
            yield chunk
        if self.then_wait:
            raise AssertionError("read past the chunks: the stream should have been closed")

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def sandbox_json(name: str = "sb-1", state: str = "Running", ephemeral: bool = False) -> Dict[str, Any]:
    """A sandbox as the server answers it."""
    return {"name": name, "state": state, "spec": {"name": name, "ephemeral": ephemeral}, "created_at": 1}


def entry_json(name: str = "f", kind: str = "file", size: int = 0) -> Dict[str, Any]:
    """A guest file as stat, list and write answer it."""
    return {
        "name": name,
        "kind": kind,
        "size": size,
        "mode": 0o644,
        "mode_octal": "644",
        "uid": 0,
        "gid": 0,
        "modified": "2026-01-01T00:00:00Z",
        "modified_ns": 1,
        "nlink": 1,
    }


def error_json(kind: str, message: str = "nope") -> Dict[str, Any]:
    return {"error": {"kind": kind, "message": message}}


def ndjson(*values: Any) -> bytes:
    return b"".join(json.dumps(v).encode() + b"\n" for v in values)


def split_every(data: bytes, size: int) -> List[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]
