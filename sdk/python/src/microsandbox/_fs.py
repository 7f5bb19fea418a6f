"""``sandbox.fs``: a running sandbox's files, read and written as streams.

Uploads send the data as the raw request body, chunk by chunk, so a big file never has to
be held in memory; downloads are read the same way.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, AsyncIterable, AsyncIterator, BinaryIO, Iterable, Iterator, List, Union

from . import _api
from ._errors import NotFoundError
from ._events import BytesReader
from ._models import FsEntry
from ._streams import AsyncResponseStream, ResponseStream

if TYPE_CHECKING:
    from ._client import AsyncClient, Client

#: Bytes read from a file-like object at a time.
CHUNK_SIZE = 64 * 1024

LocalPath = Union[str, "os.PathLike[str]"]
Mode = Union[int, str, None]
#: What ``write`` takes: bytes, text (UTF-8), a binary file, or chunks (sync or async).
WriteData = Union[bytes, bytearray, memoryview, str, BinaryIO, Iterable[bytes], AsyncIterable[bytes]]


def _as_bytes(chunk: Union[bytes, bytearray, memoryview, str]) -> bytes:
    return chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)


def _file_chunks(file: BinaryIO) -> Iterator[bytes]:
    while True:
        chunk = file.read(CHUNK_SIZE)
        if not chunk:
            return
        yield _as_bytes(chunk)


def sync_body(data: WriteData) -> Union[bytes, Iterator[bytes]]:
    """``data`` as a request body: whole bytes, or an iterator of chunks read as sent."""
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        return _as_bytes(data)
    if hasattr(data, "read"):
        return _file_chunks(data)  # type: ignore[arg-type]
    if isinstance(data, Iterable):
        return (_as_bytes(chunk) for chunk in data)
    raise TypeError(f"cannot write {type(data).__name__}: give bytes, str, a binary file or chunks")


async def _async_chunks(chunks: Union[Iterator[bytes], AsyncIterable[bytes]]) -> AsyncIterator[bytes]:
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield _as_bytes(chunk)
    else:
        for chunk in chunks:
            yield chunk


def async_body(data: WriteData) -> Union[bytes, AsyncIterator[bytes]]:
    """``data`` as an async request body (a sync file or iterator is read as it is sent)."""
    if isinstance(data, AsyncIterable):
        return _async_chunks(data)
    body = sync_body(data)
    return body if isinstance(body, bytes) else _async_chunks(body)


class SandboxFs:
    """The files of a running sandbox (``sandbox.fs``), acted on as root."""

    def __init__(self, client: "Client", name: str) -> None:
        self._client = client
        self._name = name

    def read(self, path: str) -> bytes:
        """The whole contents of file ``path``."""
        return self._client._call(_api.read_file(self._name, path))

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        """The contents of file ``path`` as text."""
        return self.read(path).decode(encoding)

    def read_stream(self, path: str) -> ResponseStream[bytes]:
        """File ``path`` chunk by chunk (close it to stop early)."""
        call = _api.read_file(self._name, path)
        return ResponseStream(lambda: self._client._stream(call), BytesReader())

    def download(self, path: str, local_path: LocalPath) -> int:
        """Copies guest file ``path`` to ``local_path``; answers the bytes copied."""
        with self._client._stream(_api.read_file(self._name, path)) as response:
            with open(local_path, "wb") as out:
                return sum(out.write(chunk) for chunk in response.iter_bytes())

    def write(self, path: str, data: WriteData, mode: Mode = None) -> FsEntry:
        """Writes file ``path`` (made whole or not at all, replacing one there, with missing
        parents made), streaming ``data``; ``mode`` is permission bits (``0o644``) or their
        octal text. Answers the file as written."""
        return self._client._call(_api.write_file(self._name, path, sync_body(data), mode))

    def upload(self, local_path: LocalPath, path: str, mode: Mode = None) -> FsEntry:
        """Copies local file ``local_path`` to guest file ``path``, streamed."""
        with open(local_path, "rb") as file:
            return self.write(path, file, mode)

    def list(self, path: str) -> List[FsEntry]:
        """The entries of directory ``path``."""
        return self._client._call(_api.list_dir(self._name, path))

    def stat(self, path: str) -> FsEntry:
        """The entry at ``path`` (``NotFoundError`` if there is none)."""
        return self._client._call(_api.stat_path(self._name, path))

    def exists(self, path: str) -> bool:
        """Whether anything is at ``path``."""
        try:
            self.stat(path)
        except NotFoundError:
            return False
        return True

    def mkdir(self, path: str) -> None:
        """Makes directory ``path`` and its missing parents."""
        self._client._call(_api.make_dir(self._name, path))

    def remove(self, path: str, recursive: bool = False) -> None:
        """Removes ``path`` (a directory with its contents only if ``recursive``)."""
        self._client._call(_api.remove_path(self._name, path, recursive))

    def rename(self, src: str, dst: str) -> None:
        """Moves ``src`` to ``dst``."""
        self._client._call(_api.rename_path(self._name, src, dst))


class AsyncSandboxFs:
    """The asyncio twin of :class:`SandboxFs` (``sandbox.fs`` of an ``AsyncSandbox``)."""

    def __init__(self, client: "AsyncClient", name: str) -> None:
        self._client = client
        self._name = name

    async def read(self, path: str) -> bytes:
        """See :meth:`SandboxFs.read`."""
        return await self._client._call(_api.read_file(self._name, path))

    async def read_text(self, path: str, encoding: str = "utf-8") -> str:
        """See :meth:`SandboxFs.read_text`."""
        return (await self.read(path)).decode(encoding)

    def read_stream(self, path: str) -> AsyncResponseStream[bytes]:
        """See :meth:`SandboxFs.read_stream` (``async for``)."""
        call = _api.read_file(self._name, path)
        return AsyncResponseStream(lambda: self._client._stream(call), BytesReader())

    async def download(self, path: str, local_path: LocalPath) -> int:
        """See :meth:`SandboxFs.download`."""
        async with self._client._stream(_api.read_file(self._name, path)) as response:
            with open(local_path, "wb") as out:
                return sum([out.write(chunk) async for chunk in response.aiter_bytes()])

    async def write(self, path: str, data: WriteData, mode: Mode = None) -> FsEntry:
        """See :meth:`SandboxFs.write` (also takes async iterables of chunks)."""
        return await self._client._call(_api.write_file(self._name, path, async_body(data), mode))

    async def upload(self, local_path: LocalPath, path: str, mode: Mode = None) -> FsEntry:
        """See :meth:`SandboxFs.upload`."""
        with open(local_path, "rb") as file:
            return await self.write(path, file, mode)

    async def list(self, path: str) -> List[FsEntry]:
        """See :meth:`SandboxFs.list`."""
        return await self._client._call(_api.list_dir(self._name, path))

    async def stat(self, path: str) -> FsEntry:
        """See :meth:`SandboxFs.stat`."""
        return await self._client._call(_api.stat_path(self._name, path))

    async def exists(self, path: str) -> bool:
        """See :meth:`SandboxFs.exists`."""
        try:
            await self.stat(path)
        except NotFoundError:
            return False
        return True

    async def mkdir(self, path: str) -> None:
        """See :meth:`SandboxFs.mkdir`."""
        await self._client._call(_api.make_dir(self._name, path))

    async def remove(self, path: str, recursive: bool = False) -> None:
        """See :meth:`SandboxFs.remove`."""
        await self._client._call(_api.remove_path(self._name, path, recursive))

    async def rename(self, src: str, dst: str) -> None:
        """See :meth:`SandboxFs.rename`."""
        await self._client._call(_api.rename_path(self._name, src, dst))
