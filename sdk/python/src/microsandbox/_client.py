"""Connections to ``msb serve``: :class:`Client` (sync) and :class:`AsyncClient`.

Both send the same :class:`~microsandbox._api.Call` values and read answers the same way;
only the I/O differs. Without arguments they connect where ``MSB_SERVER_URL`` says, else
to a local ``msb serve`` started for the process.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from contextlib import asynccontextmanager, contextmanager
from typing import Any, AsyncIterator, Dict, Iterator, Optional, TypeVar, Union

import httpx

from . import _api
from ._api import BOOT, DEFAULT, UNBOUNDED, Call
from ._errors import TransportError, error_from_response
from ._resources import AsyncImages, AsyncVolumes, Images, Volumes
from ._server import resolve
from ._version import __version__

T = TypeVar("T")

#: Seconds an ordinary call may wait for its answer.
DEFAULT_TIMEOUT = 60.0
#: Seconds a call that may boot or stop a VM may wait (a boot under emulation takes ~30 s).
DEFAULT_BOOT_TIMEOUT = 300.0
#: Seconds to wait for a connection.
DEFAULT_CONNECT_TIMEOUT = 10.0


@contextmanager
def _transport_errors() -> Iterator[None]:
    """Raises httpx's connection failures as :class:`TransportError`."""
    try:
        yield
    except httpx.TransportError as e:
        raise TransportError(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, "transport") from e


def _checked(response: httpx.Response) -> httpx.Response:
    """``response`` (read), or the exception of its error body."""
    if response.is_error:
        raise error_from_response(response.status_code, response.content, response.reason_phrase)
    return response


class _Connection:
    """What both clients share: where the server is, the token, and the time limits."""

    def __init__(
        self,
        url: Optional[str],
        token: Optional[str],
        timeout: Optional[float],
        boot_timeout: Optional[float],
        connect_timeout: float,
    ) -> None:
        self.url, token = resolve(url, token)
        self.headers = {"User-Agent": f"microsandbox-python/{__version__}"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.timeouts = {
            DEFAULT: httpx.Timeout(timeout, connect=connect_timeout),
            BOOT: httpx.Timeout(boot_timeout, connect=connect_timeout),
            UNBOUNDED: httpx.Timeout(None, connect=connect_timeout),
        }

    def request(self, http: Union[httpx.Client, httpx.AsyncClient], call: Call[Any]) -> httpx.Request:
        """The HTTP request of ``call``."""
        timeout = self.timeouts[call.wait]
        if call.extra_wait and timeout.read is not None:
            timeout = httpx.Timeout(timeout.read + call.extra_wait, connect=timeout.connect)
        return http.build_request(
            call.method,
            call.path,
            params=call.params,
            json=call.json,
            content=call.content,
            headers={"Accept": call.accept},
            timeout=timeout,
        )


class Client:
    """A connection to ``msb serve`` (thread-safe; close it, or use it as a context manager).

    Args:
        url: the server, e.g. ``http://127.0.0.1:5555``; default ``$MSB_SERVER_URL``, else
            a local ``msb serve`` started for this process.
        token: the API token; default ``$MSB_API_TOKEN``, else for a loopback URL the one
            in ``$MSB_HOME/server/token``.
        timeout: seconds an ordinary call may wait for its answer (``None``: no limit).
        boot_timeout: seconds a create, start, stop, kill or remove may wait.
        connect_timeout: seconds to wait for a connection.
        transport: an httpx transport to use instead of the network (tests).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        boot_timeout: Optional[float] = DEFAULT_BOOT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self._connection = _Connection(url, token, timeout, boot_timeout, connect_timeout)
        self._http = httpx.Client(
            base_url=self.url,
            headers=self._connection.headers,
            timeout=self._connection.timeouts[DEFAULT],
            transport=transport,
        )
        self.images = Images(self)
        self.volumes = Volumes(self)

    @property
    def url(self) -> str:
        """The server's URL."""
        return self._connection.url

    def health(self) -> Dict[str, Any]:
        """``{"status": "ok", "version": …}`` when the server is up."""
        return self._call(_api.health())

    def close(self) -> None:
        """Closes the connections (a local server keeps running for the process)."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def _call(self, call: Call[T]) -> T:
        """Sends ``call`` and reads its answer."""
        with _transport_errors():
            response = self._http.send(self._connection.request(self._http, call))
        return call.parse(_checked(response))

    @contextmanager
    def _stream(self, call: Call[Any]) -> Iterator[httpx.Response]:
        """Sends ``call`` and yields its answer unread (an error answer raises first)."""
        with _transport_errors():
            response = self._http.send(self._connection.request(self._http, call), stream=True)
            try:
                if response.is_error:
                    response.read()
                    _checked(response)
                yield response
            finally:
                response.close()


class AsyncClient:
    """The asyncio twin of :class:`Client` (same arguments); use it on one event loop."""

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        boot_timeout: Optional[float] = DEFAULT_BOOT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        self._connection = _Connection(url, token, timeout, boot_timeout, connect_timeout)
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=self._connection.headers,
            timeout=self._connection.timeouts[DEFAULT],
            transport=transport,
        )
        self.images = AsyncImages(self)
        self.volumes = AsyncVolumes(self)

    @property
    def url(self) -> str:
        """The server's URL."""
        return self._connection.url

    async def health(self) -> Dict[str, Any]:
        """``{"status": "ok", "version": …}`` when the server is up."""
        return await self._call(_api.health())

    async def aclose(self) -> None:
        """Closes the connections (a local server keeps running for the process)."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"

    async def _call(self, call: Call[T]) -> T:
        """Sends ``call`` and reads its answer."""
        with _transport_errors():
            response = await self._http.send(self._connection.request(self._http, call))
        return call.parse(_checked(response))

    @asynccontextmanager
    async def _stream(self, call: Call[Any]) -> AsyncIterator[httpx.Response]:
        """Sends ``call`` and yields its answer unread (an error answer raises first)."""
        with _transport_errors():
            response = await self._http.send(self._connection.request(self._http, call), stream=True)
            try:
                if response.is_error:
                    await response.aread()
                    _checked(response)
                yield response
            finally:
                await response.aclose()


_default_lock = threading.Lock()
_default: Optional[Client] = None
_default_async: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient]" = weakref.WeakKeyDictionary()


def default_client() -> Client:
    """The client of calls given none: one per process, made on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def default_async_client() -> AsyncClient:
    """The async client of calls given none: one per event loop (httpx's connections
    belong to the loop that made them)."""
    loop = asyncio.get_running_loop()
    with _default_lock:
        if loop not in _default_async:
            _default_async[loop] = AsyncClient()
        return _default_async[loop]
