"""``Sandbox``: one microVM sandbox of ``msb serve``, driven synchronously."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from . import _api
from ._client import Client, default_client
from ._errors import NotFoundError
from ._events import ExecEvent, ExecEventReader, TextReader
from ._fs import SandboxFs
from ._models import ExecResult, SandboxInfo
from ._spec import JsonObject, PathLike, PortsArg, Secret, exec_body, sandbox_spec, spec_settings
from ._streams import ResponseStream

#: The events of ``Sandbox.exec_stream``: ``Started``, ``Stdout``, ``Stderr``, ``Exit``.
ExecStream = ResponseStream[ExecEvent]
#: The text chunks of ``Sandbox.follow_logs``.
LogStream = ResponseStream[str]


class Sandbox:
    """A sandbox: a microVM with its own kernel, reached through ``msb serve``.

    Make one with :meth:`create` (``with Sandbox.create(...) as sb:`` stops it at the end,
    and removes it if it is ephemeral) or find one with :meth:`get`.
    """

    def __init__(self, name: str, client: Client, ephemeral: bool = False) -> None:
        self._name = name
        self._client = client
        self._ephemeral = ephemeral
        self.fs = SandboxFs(client, name)

    @property
    def name(self) -> str:
        """Its name."""
        return self._name

    @property
    def client(self) -> Client:
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
        client: Optional[Client] = None,
    ) -> "Sandbox":
        """Creates and starts a sandbox.

        Args:
            image: the OCI image (default ``python`` unless ``rootfs``).
            rootfs: a directory or disk image on the server's host to boot from instead.
            name: its name (1-63 of ``a-z0-9-``); generated when absent.
            cpus: virtual CPUs.
            memory_mib: guest RAM in MiB.
            env: environment of every process.
            workdir: working directory of processes.
            user: ``uid[:gid]`` or ``name[:group]`` processes run as.
            entrypoint: replaces the image's entrypoint.
            command: a main command; the sandbox stops when it ends.
            hostname: guest hostname (default: its name).
            shell: the shell of :meth:`shell` (default ``/bin/sh``).
            scripts: scripts put on the guest's ``PATH``, by name.
            volumes: docker-style ``SOURCE:GUEST[:ro]`` (see :meth:`Mount.parse`).
            mounts: :class:`Mount` values.
            patches: :class:`Patch` values, applied before the first boot.
            ports: ``{host: guest}``, or ``"[IP:]HOST:GUEST[/udp]"`` strings or port objects.
            network: the network spec (``msb_types::NetworkSpec`` JSON).
            no_network: no network interface at all.
            secrets: :class:`Secret` values.
            labels: free-form labels.
            idle_timeout_secs: stop after this long without exec.
            max_duration_secs: stop this long after each start.
            upper_size_mib: size of an image root's writable layer.
            ephemeral: remove it when it stops (default: yes when it has no ``name``).
            replace: replace an existing sandbox of that name.
            pull_policy: ``if_missing`` (default), ``always`` or ``never``.
            extra: further spec fields, sent as given.
            client: the connection (default: the process's, see :class:`Client`).
        """
        spec = sandbox_spec(**spec_settings(locals()))
        client = client or default_client()
        info = client._call(_api.create_sandbox(spec))
        return cls(info.name, client, bool(spec.get("ephemeral")) or info.ephemeral)

    @classmethod
    def get(cls, name: str, *, client: Optional[Client] = None) -> "Sandbox":
        """The existing sandbox ``name`` (``NotFoundError`` if there is none)."""
        client = client or default_client()
        info = client._call(_api.get_sandbox(name))
        return cls(info.name, client, info.ephemeral)

    @classmethod
    def list(cls, *, client: Optional[Client] = None) -> List[SandboxInfo]:
        """Every sandbox of the server."""
        return (client or default_client())._call(_api.list_sandboxes())

    def info(self) -> SandboxInfo:
        """What the server knows of it now."""
        return self._client._call(_api.get_sandbox(self._name))

    def start(self) -> SandboxInfo:
        """Starts it again after a stop; answers it as it is then."""
        return self._client._call(_api.start_sandbox(self._name))

    def stop(self, timeout_secs: Optional[int] = None) -> SandboxInfo:
        """Stops it, giving its processes ``timeout_secs`` (default 10) to end before they
        are killed; answers it as it is then (``removed`` if it was ephemeral)."""
        return self._client._call(_api.stop_sandbox(self._name, timeout_secs))

    def kill(self) -> SandboxInfo:
        """Stops it at once; answers it as it is then."""
        return self._client._call(_api.kill_sandbox(self._name))

    def remove(self, force: bool = False) -> None:
        """Removes it and its files (``force``: stopping it first if it runs)."""
        self._client._call(_api.remove_sandbox(self._name, force))

    def metrics(self) -> Dict[str, Any]:
        """Its resource use now (CPU, memory, disk, network)."""
        return self._client._call(_api.sandbox_metrics(self._name))

    def logs(self, source: Optional[str] = None, boot: Optional[int] = None) -> str:
        """A log: ``output`` (default when it has a command, else ``exec``), ``exec``,
        ``console`` (``boot``: how many boots back) or ``supervisor``."""
        return self._client._call(_api.sandbox_logs(self._name, source, boot))

    def follow_logs(self, source: Optional[str] = None) -> LogStream:
        """A log as text chunks, from its start and on as it is written, until the sandbox
        stops (close the stream to stop earlier)."""
        call = _api.sandbox_logs(self._name, source, follow=True)
        return ResponseStream(lambda: self._client._stream(call), TextReader())

    def exec(
        self,
        cmd: Union[str, Sequence[str]],
        *args: str,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        user: Optional[str] = None,
        stdin: Union[str, bytes, None] = None,
        timeout: Optional[float] = None,
    ) -> ExecResult:
        """Runs ``cmd`` with ``args`` (or ``cmd`` as one list) and waits for it.

        ``timeout`` (seconds) kills it when exceeded and raises ``ExecTimeoutError``.
        """
        body = exec_body(cmd, args, env=env, workdir=workdir, user=user, stdin=stdin, timeout=timeout)
        return self._client._call(_api.exec_command(self._name, body))

    def shell(
        self,
        script: str,
        *,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        user: Optional[str] = None,
        stdin: Union[str, bytes, None] = None,
        timeout: Optional[float] = None,
    ) -> ExecResult:
        """Runs ``script`` with the sandbox's shell and waits for it."""
        body = exec_body(shell=script, env=env, workdir=workdir, user=user, stdin=stdin, timeout=timeout)
        return self._client._call(_api.exec_command(self._name, body))

    def exec_stream(
        self,
        cmd: Union[str, Sequence[str]],
        *args: str,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        user: Optional[str] = None,
        stdin: Union[str, bytes, None] = None,
        timeout: Optional[float] = None,
    ) -> ExecStream:
        """Runs ``cmd`` like :meth:`exec`, answering its events as they happen:
        ``Started``, then ``Stdout``/``Stderr`` in order, then ``Exit``. Closing the stream
        early kills the command."""
        body = exec_body(cmd, args, env=env, workdir=workdir, user=user, stdin=stdin, timeout=timeout)
        call = _api.exec_stream(self._name, body)
        return ResponseStream(lambda: self._client._stream(call), ExecEventReader())

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        """Stops it, and removes it if it is ephemeral (gone already is fine)."""
        try:
            self.stop()
            if self._ephemeral:
                self.remove(force=True)
        except NotFoundError:
            pass

    def __repr__(self) -> str:
        return f"Sandbox({self._name!r})"
