"""``client.images`` and ``client.volumes``: the server's image store and named volumes.

Images and volumes are answered as the server's JSON objects (dicts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional

from . import _api
from ._events import PullReader

if TYPE_CHECKING:
    from ._client import AsyncClient, Client

Progress = Callable[[Dict[str, Any]], None]


class Images:
    """The server's images (``client.images``)."""

    def __init__(self, client: "Client") -> None:
        self._client = client

    def pull(self, reference: str, on_progress: Optional[Progress] = None) -> Dict[str, Any]:
        """Pulls ``reference`` (always), calling ``on_progress`` with each progress object
        (``{"type": "layer_progress", "digest", "received", "size"}`` …); answers the
        image's record. Leaving early (an exception in ``on_progress``) stops the pull."""
        reader = PullReader(on_progress)
        with self._client._stream(_api.pull_image(reference)) as response:
            for chunk in response.iter_bytes():
                reader.feed(chunk)
        return reader.finish()

    def list(self) -> List[Dict[str, Any]]:
        """The local images."""
        return self._client._call(_api.list_images())

    def inspect(self, reference: str) -> Dict[str, Any]:
        """One image's record (``NotFoundError`` if it is not local)."""
        return self._client._call(_api.inspect_image(reference))

    def remove(self, reference: str, force: bool = False) -> None:
        """Removes an image (``force``: even while sandboxes were made from it)."""
        self._client._call(_api.remove_image(reference, force))


class Volumes:
    """The server's named volumes (``client.volumes``)."""

    def __init__(self, client: "Client") -> None:
        self._client = client

    def create(
        self, name: str, quota_mib: Optional[int] = None, labels: Optional[Mapping[str, str]] = None
    ) -> Dict[str, Any]:
        """Creates volume ``name`` (at most ``quota_mib`` MiB when given)."""
        return self._client._call(_api.create_volume(name, quota_mib, labels))

    def list(self) -> List[Dict[str, Any]]:
        """Every volume."""
        return self._client._call(_api.list_volumes())

    def get(self, name: str) -> Dict[str, Any]:
        """One volume (``NotFoundError`` if there is none of that name)."""
        return self._client._call(_api.get_volume(name))

    def remove(self, name: str, force: bool = False) -> None:
        """Removes a volume and its files."""
        self._client._call(_api.remove_volume(name, force))


class AsyncImages:
    """The asyncio twin of :class:`Images`."""

    def __init__(self, client: "AsyncClient") -> None:
        self._client = client

    async def pull(self, reference: str, on_progress: Optional[Progress] = None) -> Dict[str, Any]:
        """See :meth:`Images.pull`."""
        reader = PullReader(on_progress)
        async with self._client._stream(_api.pull_image(reference)) as response:
            async for chunk in response.aiter_bytes():
                reader.feed(chunk)
        return reader.finish()

    async def list(self) -> List[Dict[str, Any]]:
        """See :meth:`Images.list`."""
        return await self._client._call(_api.list_images())

    async def inspect(self, reference: str) -> Dict[str, Any]:
        """See :meth:`Images.inspect`."""
        return await self._client._call(_api.inspect_image(reference))

    async def remove(self, reference: str, force: bool = False) -> None:
        """See :meth:`Images.remove`."""
        await self._client._call(_api.remove_image(reference, force))


class AsyncVolumes:
    """The asyncio twin of :class:`Volumes`."""

    def __init__(self, client: "AsyncClient") -> None:
        self._client = client

    async def create(
        self, name: str, quota_mib: Optional[int] = None, labels: Optional[Mapping[str, str]] = None
    ) -> Dict[str, Any]:
        """See :meth:`Volumes.create`."""
        return await self._client._call(_api.create_volume(name, quota_mib, labels))

    async def list(self) -> List[Dict[str, Any]]:
        """See :meth:`Volumes.list`."""
        return await self._client._call(_api.list_volumes())

    async def get(self, name: str) -> Dict[str, Any]:
        """See :meth:`Volumes.get`."""
        return await self._client._call(_api.get_volume(name))

    async def remove(self, name: str, force: bool = False) -> None:
        """See :meth:`Volumes.remove`."""
        await self._client._call(_api.remove_volume(name, force))
