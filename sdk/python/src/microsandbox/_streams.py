"""Iterators over streamed answers: exec events, file chunks.

The request is sent when iteration starts, and an error answer raises there. Closing the
stream, leaving its ``with`` block, or breaking out of the loop and dropping it closes the
HTTP response; for ``exec_stream`` the server then kills the command.
"""

from __future__ import annotations

from typing import AsyncContextManager, AsyncGenerator, Callable, ContextManager, Generator, Generic, TypeVar

import httpx

from ._events import ChunkReader

T = TypeVar("T")


class ResponseStream(Generic[T]):
    """An iterator over the items of a streamed answer."""

    def __init__(self, open_response: Callable[[], ContextManager[httpx.Response]], reader: ChunkReader[T]) -> None:
        self._items = self._run(open_response, reader)

    @staticmethod
    def _run(
        open_response: Callable[[], ContextManager[httpx.Response]], reader: ChunkReader[T]
    ) -> Generator[T, None, None]:
        with open_response() as response:
            for chunk in response.iter_bytes():
                yield from reader.feed(chunk)
                if reader.done:
                    return
            yield from reader.finish()

    def __iter__(self) -> "ResponseStream[T]":
        return self

    def __next__(self) -> T:
        return next(self._items)

    def close(self) -> None:
        """Closes the response (nothing happens if it was never sent or already ended)."""
        self._items.close()

    def __enter__(self) -> "ResponseStream[T]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncResponseStream(Generic[T]):
    """An async iterator over the items of a streamed answer."""

    def __init__(
        self, open_response: Callable[[], AsyncContextManager[httpx.Response]], reader: ChunkReader[T]
    ) -> None:
        self._items = self._run(open_response, reader)

    @staticmethod
    async def _run(
        open_response: Callable[[], AsyncContextManager[httpx.Response]], reader: ChunkReader[T]
    ) -> AsyncGenerator[T, None]:
        async with open_response() as response:
            async for chunk in response.aiter_bytes():
                for item in reader.feed(chunk):
                    yield item
                if reader.done:
                    return
            for item in reader.finish():
                yield item

    def __aiter__(self) -> "AsyncResponseStream[T]":
        return self

    async def __anext__(self) -> T:
        return await self._items.__anext__()

    async def aclose(self) -> None:
        """Closes the response (nothing happens if it was never sent or already ended)."""
        await self._items.aclose()

    async def __aenter__(self) -> "AsyncResponseStream[T]":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
