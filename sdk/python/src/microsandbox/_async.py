"""``AsyncSandbox``: the asyncio twin of :class:`~microsandbox.Sandbox`."""

from __future__ import annotations

from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Generator,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Union,
)

from . import _api
from ._client import AsyncClient, default_async_client
from ._errors import NotFoundError
from ._events import ExecEvent, ExecEventReader, TextReader
from ._fs import AsyncSandboxFs
from ._models import ExecResult, SandboxInfo
from ._spec import JsonObject, PathLike, PortsArg, Secret, exec_body, sandbox_spec, spec_settings
from ._streams import AsyncResponseStream

#: The events of ``AsyncSandbox.exec_stream`` (``async for``).
AsyncExecStream = AsyncResponseStream[ExecEvent]
#: The text chunks of ``AsyncSandbox.follow_logs``.
AsyncLogStream = AsyncResponseStream[str]


class AsyncSandboxCreation(Awaitable["AsyncSandbox"]):
    """What :meth:`AsyncSandbox.create` answers: ``await`` it for the sandbox, or use it as
    ``async with`` to stop it (and remove it if ephemeral) at the end."""

    def __init__(self, create: Callable[[], Awaitable["AsyncSandbox"]]) -> None:
        self._create = create
        self._sandbox: Optional[AsyncSandbox] = None

    def __await__(self) -> Generator[Any, None, "AsyncSandbox"]:
        return self._create().__await__()

    async def __aenter__(self) -> "AsyncSandbox":
        self._sandbox = await self._create()
        return self._sandbox

    async def __aexit__(self, *exc: object) -> None:
        assert self._sandbox is not None
        await self._sandbox.__aexit__(*exc)


class AsyncSandbox:
    """A sandbox driven with asyncio; every method of :class:`~microsandbox.Sandbox`, awaited."""

    def __init__(self, name: str, client: AsyncClient, ephemeral: bool = False) -> None:
        self._name = name
        self._client = client
        self._ephemeral = ephemeral
        self.fs = AsyncSandboxFs(client, name)

    @property
    def name(self) -> str:
        """Its name."""
        return self._name

    @property
    def client(self) -> AsyncClient:
        """The client it is reached through."""
        return self._client

    @classmethod
    def create(
        cls,
        image: Optional[str] = None,
        *,
        rootfs: Optional[PathLike] = None,
        name: Optional[str] = None,
        cpus: Optional[int] = None,
        memory_mib: Optional[int] = None,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        user: Optional[str] = None,
        entrypoint: Optional[Union[str, Sequence[str]]] = None,
        command: Optional[Union[str, Sequence[str]]] = None,
        hostname: Optional[str] = None,
        shell: Optional[str] = None,
        scripts: Optional[Mapping[str, str]] = None,
        volumes: Optional[Iterable[str]] = None,
        mounts: Optional[Iterable[JsonObject]] = None,
        patches: Optional[Iterable[JsonObject]] = None,
        ports: Optional[PortsArg] = None,
        network: Optional[JsonObject] = None,
        no_network: bool = False,
        secrets: Optional[Iterable[Union[Secret, JsonObject]]] = None,
        labels: Optional[Mapping[str, str]] = None,
        idle_timeout_secs: Optional[int] = None,
        max_duration_secs: Optional[int] = None,
        upper_size_mib: Optional[int] = None,
        ephemeral: Optional[bool] = None,
        replace: bool = False,
        pull_policy: Optional[str] = None,
        extra: Optional[Mapping[str, Any]] = None,
        client: Optional[AsyncClient] = None,
    ) -> AsyncSandboxCreation:
        """Creates and starts a sandbox: ``sb = await AsyncSandbox.create(...)`` or
        ``async with AsyncSandbox.create(...) as sb:``. Arguments as :meth:`Sandbox.create`."""
        spec = sandbox_spec(**spec_settings(locals()))

        async def create() -> AsyncSandbox:
            connection = client or default_async_client()
            info = await connection._call(_api.create_sandbox(spec))
            return cls(info.name, connection, bool(spec.get("ephemeral")) or info.ephemeral)

        return AsyncSandboxCreation(create)

    @classmethod
    async def get(cls, name: str, *, client: Optional[AsyncClient] = None) -> "AsyncSandbox":
        """The existing sandbox ``name`` (``NotFoundError`` if there is none)."""
        client = client or default_async_client()
        info = await client._call(_api.get_sandbox(name))
        return cls(info.name, client, info.ephemeral)

    @classmethod
    async def list(cls, *, client: Optional[AsyncClient] = None) -> List[SandboxInfo]:
        """Every sandbox of the server."""
        return await (client or default_async_client())._call(_api.list_sandboxes())

    async def info(self) -> SandboxInfo:
        """What the server knows of it now."""
        return await self._client._call(_api.get_sandbox(self._name))

    async def start(self) -> SandboxInfo:
        """Starts it again after a stop; answers it as it is then."""
        return await self._client._call(_api.start_sandbox(self._name))

    async def stop(self, timeout_secs: Optional[int] = None) -> SandboxInfo:
        """Stops it, giving its processes ``timeout_secs`` (default 10) to end before they
        are killed; answers it as it is then (``removed`` if it was ephemeral)."""
        return await self._client._call(_api.stop_sandbox(self._name, timeout_secs))

    async def kill(self) -> SandboxInfo:
        """Stops it at once; answers it as it is then."""
        return await self._client._call(_api.kill_sandbox(self._name))

    async def remove(self, force: bool = False) -> None:
        """Removes it and its files (``force``: stopping it first if it runs)."""
        await self._client._call(_api.remove_sandbox(self._name, force))

    async def metrics(self) -> Dict[str, Any]:
        """Its resource use now."""
        return await self._client._call(_api.sandbox_metrics(self._name))

    async def logs(self, source: Optional[str] = None, boot: Optional[int] = None) -> str:
        """See :meth:`Sandbox.logs`."""
        return await self._client._call(_api.sandbox_logs(self._name, source, boot))

    def follow_logs(self, source: Optional[str] = None) -> AsyncLogStream:
        """See :meth:`Sandbox.follow_logs` (``async for``)."""
        call = _api.sandbox_logs(self._name, source, follow=True)
        return AsyncResponseStream(lambda: self._client._stream(call), TextReader())

    async def exec(
        self,
        cmd: Union[str, Sequence[str]],
        *args: str,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        user: Optional[str] = None,
        stdin: Union[str, bytes, None] = None,
        timeout: Optional[float] = None,
    ) -> ExecResult:
        """See :meth:`Sandbox.exec`."""
        body = exec_body(cmd, args, env=env, workdir=workdir, user=user, stdin=stdin, timeout=timeout)
        return await self._client._call(_api.exec_command(self._name, body))

    async def shell(
        self,
        script: str,
        *,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        user: Optional[str] = None,
        stdin: Union[str, bytes, None] = None,
        timeout: Optional[float] = None,
    ) -> ExecResult:
        """See :meth:`Sandbox.shell`."""
        body = exec_body(shell=script, env=env, workdir=workdir, user=user, stdin=stdin, timeout=timeout)
        return await self._client._call(_api.exec_command(self._name, body))

    def exec_stream(
        self,
        cmd: Union[str, Sequence[str]],
        *args: str,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        user: Optional[str] = None,
        stdin: Union[str, bytes, None] = None,
        timeout: Optional[float] = None,
    ) -> AsyncExecStream:
        """See :meth:`Sandbox.exec_stream`; iterate with ``async for`` (no ``await``)."""
        body = exec_body(cmd, args, env=env, workdir=workdir, user=user, stdin=stdin, timeout=timeout)
        call = _api.exec_stream(self._name, body)
        return AsyncResponseStream(lambda: self._client._stream(call), ExecEventReader())

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stops it, and removes it if it is ephemeral (gone already is fine)."""
        try:
            await self.stop()
            if self._ephemeral:
                await self.remove(force=True)
        except NotFoundError:
            pass

    def __repr__(self) -> str:
        return f"AsyncSandbox({self._name!r})"
