"""Request bodies: the sandbox spec of ``POST /v1/sandboxes`` and the body of an exec.

Mounts and patches travel in the serde form of the Rust types (``{"Bind": {...}}``);
:class:`Mount` and :class:`Patch` build them so callers need not spell it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]
JsonObject = Dict[str, Any]
PortsArg = Union[Mapping[int, int], Sequence[Union[str, Mapping[str, Any]]]]

DEFAULT_IMAGE = "python"
_PULL_POLICIES = {"if_missing", "always", "never"}


class Mount:
    """Mounts of a sandbox (the serde form of ``msb_types::Mount``)."""

    @staticmethod
    def bind(host: PathLike, guest: str, readonly: bool = False) -> JsonObject:
        """A host directory or file (a path on the server's host, made absolute here)."""
        return {"Bind": {"host": os.path.abspath(host), "guest": guest, "readonly": readonly}}

    @staticmethod
    def volume(name: str, guest: str, readonly: bool = False) -> JsonObject:
        """A named volume (see ``client.volumes``)."""
        return {"Volume": {"name": name, "guest": guest, "readonly": readonly}}

    @staticmethod
    def disk(image: PathLike, guest: str, readonly: bool = False) -> JsonObject:
        """The filesystem of a host disk image (``.raw``, ``.img``, ``.qcow2``, ``.vmdk``)."""
        return {"Disk": {"image": os.path.abspath(image), "guest": guest, "readonly": readonly}}

    @staticmethod
    def tmpfs(
        guest: str,
        size_mib: Optional[int] = None,
        mode: Optional[int] = None,
        noexec: bool = False,
        readonly: bool = False,
    ) -> JsonObject:
        """A filesystem in guest memory (``mode`` as bits, e.g. ``0o1777``)."""
        return {
            "Tmpfs": {
                "guest": guest,
                "size_mib": size_mib,
                "mode": mode,
                "noexec": noexec,
                "readonly": readonly,
            }
        }

    @staticmethod
    def parse(text: str) -> JsonObject:
        """docker's ``-v SOURCE:GUEST[:ro|:rw]``: a source starting with ``/``, ``./`` or
        ``../`` (or ``.``, ``..``) is a host path, anything else names a volume."""
        parts = text.split(":")
        readonly = False
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            readonly = parts.pop() == "ro"
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(f"volume {text!r}: expected SOURCE:GUEST[:ro]")
        source, guest = parts
        if source in (".", "..") or source.startswith(("/", "./", "../")):
            return Mount.bind(source, guest, readonly)
        return Mount.volume(source, guest, readonly)


class Patch:
    """Changes to the root filesystem before the first boot (serde form of
    ``msb_types::Patch``). Modes are permission bits, e.g. ``0o755``."""

    @staticmethod
    def text(path: str, content: str, mode: Optional[int] = None, replace: bool = False) -> JsonObject:
        """A text file (0644 unless ``mode``)."""
        return {"Text": {"path": path, "content": content, "mode": mode, "replace": replace}}

    @staticmethod
    def file(path: str, content: bytes, mode: Optional[int] = None, replace: bool = False) -> JsonObject:
        """A file with binary contents (0644 unless ``mode``)."""
        return {"File": {"path": path, "content": list(content), "mode": mode, "replace": replace}}

    @staticmethod
    def copy_file(src: PathLike, dst: str, mode: Optional[int] = None, replace: bool = False) -> JsonObject:
        """A copy of a file on the server's host."""
        return {"CopyFile": {"src": os.path.abspath(src), "dst": dst, "mode": mode, "replace": replace}}

    @staticmethod
    def copy_dir(src: PathLike, dst: str, replace: bool = False) -> JsonObject:
        """A recursive copy of a directory on the server's host."""
        return {"CopyDir": {"src": os.path.abspath(src), "dst": dst, "replace": replace}}

    @staticmethod
    def symlink(target: str, link: str, replace: bool = False) -> JsonObject:
        """A symbolic link at ``link`` pointing to ``target``."""
        return {"Symlink": {"target": target, "link": link, "replace": replace}}

    @staticmethod
    def mkdir(path: str, mode: Optional[int] = None) -> JsonObject:
        """A directory (0755 unless ``mode``); kept if it is there."""
        return {"Mkdir": {"path": path, "mode": mode}}

    @staticmethod
    def remove(path: str) -> JsonObject:
        """Removes a path, recursively."""
        return {"Remove": {"path": path}}

    @staticmethod
    def append(path: str, content: str) -> JsonObject:
        """Appends text to an existing file."""
        return {"Append": {"path": path, "content": content}}


@dataclass(frozen=True)
class Secret:
    """A secret: the guest's ``env`` holds a placeholder, and ``value`` replaces it only in
    requests to ``hosts`` (``api.example.com``, ``*.example.com``)."""

    env: str
    value: str
    hosts: Sequence[str]

    def to_json(self) -> JsonObject:
        """The ``secrets`` item of a sandbox spec."""
        return {"env": self.env, "value": self.value, "hosts": list(self.hosts)}


def parse_port(text: str) -> JsonObject:
    """``[IP:]HOST:GUEST[/tcp|/udp]`` (IPv6 in brackets: ``[::1]:8080:80``) as a ``ports`` item."""
    ports, _, protocol = text.partition("/")
    parts = ports.rsplit(":", 2)
    if len(parts) < 2 or protocol not in ("", "tcp", "udp"):
        raise ValueError(f"port {text!r}: expected [IP:]HOST:GUEST[/tcp|/udp]")
    try:
        port: JsonObject = {"host": int(parts[-2]), "guest": int(parts[-1]), "protocol": protocol or "tcp"}
    except ValueError:
        raise ValueError(f"port {text!r}: ports are numbers") from None
    if len(parts) == 3:
        port["host_ip"] = parts[0].strip("[]")
    return port


def _ports(ports: PortsArg) -> List[JsonObject]:
    if isinstance(ports, Mapping):
        return [{"host": int(h), "guest": int(g), "protocol": "tcp"} for h, g in ports.items()]
    return [parse_port(p) if isinstance(p, str) else dict(p) for p in ports]


def _argv(value: Union[str, Sequence[str]]) -> List[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def sandbox_spec(
    *,
    image: Optional[str] = None,
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
) -> JsonObject:
    """The JSON body of ``POST /v1/sandboxes``; unset settings are left to the server.

    ``image`` defaults to ``python`` unless ``rootfs`` (a directory or disk image on the
    server's host, made absolute here) is given. ``volumes`` are docker-style strings
    (:meth:`Mount.parse`) added before ``mounts``. ``ephemeral`` defaults to true for an
    unnamed sandbox (nothing could find it again once its handle is gone). ``extra`` adds
    spec fields this SDK has no argument for.
    """
    if ephemeral is None:
        ephemeral = name is None
    if image is not None and rootfs is not None:
        raise ValueError("give image or rootfs, not both")
    body: JsonObject = {}
    if rootfs is not None:
        body["rootfs"] = os.path.abspath(rootfs)
    else:
        body["image"] = image or DEFAULT_IMAGE
    all_mounts = [Mount.parse(v) for v in volumes or ()] + list(mounts or ())
    if pull_policy is not None:
        pull_policy = pull_policy.replace("-", "_")
        if pull_policy not in _PULL_POLICIES:
            raise ValueError(f"pull_policy {pull_policy!r}: one of if_missing, always, never")
    optional: JsonObject = {
        "name": name,
        "cpus": cpus,
        "memory_mib": memory_mib,
        "env": dict(env) if env is not None else None,
        "workdir": workdir,
        "user": user,
        "entrypoint": _argv(entrypoint) if entrypoint is not None else None,
        "command": _argv(command) if command is not None else None,
        "hostname": hostname,
        "shell": shell,
        "scripts": dict(scripts) if scripts is not None else None,
        "mounts": all_mounts or None,
        "patches": list(patches) if patches is not None else None,
        "ports": _ports(ports) if ports is not None else None,
        "network": network,
        "secrets": [s.to_json() if isinstance(s, Secret) else dict(s) for s in secrets]
        if secrets is not None
        else None,
        "labels": dict(labels) if labels is not None else None,
        "idle_timeout_secs": idle_timeout_secs,
        "max_duration_secs": max_duration_secs,
        "upper_size_mib": upper_size_mib,
        "pull_policy": pull_policy,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    for flag, on in (("no_network", no_network), ("ephemeral", ephemeral), ("replace", replace)):
        if on:
            body[flag] = True
    body.update(extra or {})
    return body


def spec_settings(scope: Dict[str, Any]) -> Dict[str, Any]:
    """The ``sandbox_spec`` arguments among the locals of a ``create`` (its settings are
    named as ``sandbox_spec``'s, which a test checks)."""
    return {key: value for key, value in scope.items() if key not in ("cls", "client")}


def timeout_secs(timeout: Optional[float]) -> Optional[int]:
    """Whole seconds for the server (rounded up, so a timeout never shrinks)."""
    if timeout is None:
        return None
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    return math.ceil(timeout)


def exec_body(
    cmd: Union[str, Sequence[str], None] = None,
    args: Sequence[str] = (),
    *,
    shell: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    workdir: Optional[str] = None,
    user: Optional[str] = None,
    stdin: Union[str, bytes, None] = None,
    timeout: Optional[float] = None,
) -> JsonObject:
    """The body of ``exec`` and ``exec/stream``: ``cmd`` with ``args`` (``exec("ls", "-l")``
    or ``exec(["ls", "-l"])``), or a ``shell`` script."""
    body: JsonObject
    if shell is not None:
        body = {"shell": shell}
    elif cmd is None:
        raise TypeError("exec needs a command")
    elif isinstance(cmd, str):
        body = {"cmd": [cmd, *(str(a) for a in args)]}
    elif args:
        raise TypeError("give the command as one list or as separate arguments, not both")
    else:
        body = {"cmd": _argv(cmd)}
    if not body.get("cmd", True):
        raise ValueError("exec needs a command")
    if isinstance(stdin, bytes):
        stdin = stdin.decode("utf-8")
    optional: JsonObject = {
        "env": dict(env) if env is not None else None,
        "workdir": workdir,
        "user": user,
        "stdin": stdin,
        "timeout_secs": timeout_secs(timeout),
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body
