"""Every endpoint of ``msb serve`` as a :class:`Call`: the request to send and how to read
its answer, with no I/O, so the sync and the async clients share all of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import (
    Any,
    AsyncIterable,
    Callable,
    Dict,
    Generic,
    Iterable,
    List,
    Literal,
    Mapping,
    Optional,
    TypeVar,
    Union,
)
from urllib.parse import quote

import httpx

from ._errors import ProtocolError
from ._models import ExecResult, FsEntry, SandboxInfo
from ._spec import JsonObject

T = TypeVar("T")

#: How long a call may wait for its answer: the client's ``timeout``, its ``boot_timeout``
#: (calls that may boot or stop a VM), or no limit (exec, pulls).
Wait = Literal["default", "boot", "unbounded"]
DEFAULT: Wait = "default"
BOOT: Wait = "boot"
UNBOUNDED: Wait = "unbounded"

Body = Union[bytes, Iterable[bytes], AsyncIterable[bytes]]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the reading of its (successful) answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Optional[Dict[str, str]] = None
    json: Any = None
    content: Optional[Body] = None
    wait: Wait = DEFAULT
    #: Seconds the server may take on top of ``wait`` (a stop's grace time).
    extra_wait: float = 0.0
    accept: str = "application/json"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as e:
        raise ProtocolError(f"not JSON: {response.text[:200]!r}", "protocol", response.status_code) from e


def _object(response: httpx.Response) -> Dict[str, Any]:
    data = _json(response)
    if not isinstance(data, dict):
        raise ProtocolError(f"expected a JSON object, got {data!r:.200}", "protocol")
    return data


def _array(response: httpx.Response) -> List[Any]:
    """Reads a listing: a JSON array."""
    data = _json(response)
    if not isinstance(data, list):
        raise ProtocolError(f"expected a JSON array, got {data!r:.200}", "protocol")
    return data


def _nothing(response: httpx.Response) -> None:
    return None


def _sandbox(name: str, rest: str = "") -> str:
    return f"/v1/sandboxes/{quote(name, safe='')}{rest}"


def _sandbox_info(response: httpx.Response) -> SandboxInfo:
    return SandboxInfo.from_json(_json(response))


def _sandbox_list(response: httpx.Response) -> List[SandboxInfo]:
    return [SandboxInfo.from_json(item) for item in _array(response)]


def _fs_entry(response: httpx.Response) -> FsEntry:
    return FsEntry.from_json(_json(response))


def _fs_list(response: httpx.Response) -> List[FsEntry]:
    return [FsEntry.from_json(item) for item in _array(response)]


def _exec_result(response: httpx.Response) -> ExecResult:
    return ExecResult.from_json(_json(response))


# Sandboxes.


def create_sandbox(spec: JsonObject) -> Call[SandboxInfo]:
    """``POST /v1/sandboxes``: create and start."""
    return Call("POST", "/v1/sandboxes", _sandbox_info, json=spec, wait=BOOT)


def get_sandbox(name: str) -> Call[SandboxInfo]:
    """``GET /v1/sandboxes/{name}``."""
    return Call("GET", _sandbox(name), _sandbox_info)


def list_sandboxes() -> Call[List[SandboxInfo]]:
    """``GET /v1/sandboxes``."""
    return Call("GET", "/v1/sandboxes", _sandbox_list)


def start_sandbox(name: str) -> Call[SandboxInfo]:
    """``POST …/start``; answers the sandbox."""
    return Call("POST", _sandbox(name, "/start"), _sandbox_info, wait=BOOT)


def stop_sandbox(name: str, timeout_secs: Optional[int] = None) -> Call[SandboxInfo]:
    """``POST …/stop`` with an optional grace time (the server's default is 10 s); answers
    the sandbox (``removed`` if it was ephemeral)."""
    body = {"timeout_secs": timeout_secs} if timeout_secs is not None else {}
    return Call("POST", _sandbox(name, "/stop"), _sandbox_info, json=body, wait=BOOT, extra_wait=timeout_secs or 0)


def kill_sandbox(name: str) -> Call[SandboxInfo]:
    """``POST …/kill``; answers the sandbox."""
    return Call("POST", _sandbox(name, "/kill"), _sandbox_info, wait=BOOT)


def remove_sandbox(name: str, force: bool = False) -> Call[None]:
    """``DELETE /v1/sandboxes/{name}`` (``force`` stops it first)."""
    params = {"force": "true"} if force else None
    return Call("DELETE", _sandbox(name), _nothing, params=params, wait=BOOT)


def sandbox_metrics(name: str) -> Call[Dict[str, Any]]:
    """``GET …/metrics``."""
    return Call("GET", _sandbox(name, "/metrics"), _object)


def sandbox_logs(
    name: str, source: Optional[str] = None, boot: Optional[int] = None, follow: bool = False
) -> Call[str]:
    """``GET …/logs`` as text (``follow``: answered until the sandbox stops)."""
    params = {"source": source, "boot": None if boot is None else str(boot), "follow": "true" if follow else None}
    return Call(
        "GET",
        _sandbox(name, "/logs"),
        lambda r: r.text,
        params={k: v for k, v in params.items() if v is not None},
        wait=UNBOUNDED if follow else DEFAULT,
        accept="text/plain",
    )


def exec_command(name: str, body: JsonObject) -> Call[ExecResult]:
    """``POST …/exec``: run, wait, answer the output."""
    return Call("POST", _sandbox(name, "/exec"), _exec_result, json=body, wait=UNBOUNDED)


def exec_stream(name: str, body: JsonObject) -> Call[None]:
    """``POST …/exec/stream``: its body is NDJSON events (read with ``ExecEventReader``)."""
    return Call(
        "POST",
        _sandbox(name, "/exec/stream"),
        _nothing,
        json=body,
        wait=UNBOUNDED,
        accept="application/x-ndjson",
    )


# Guest files.


def read_file(name: str, path: str) -> Call[bytes]:
    """``GET …/files?path=P``: the file's bytes."""
    return Call("GET", _sandbox(name, "/files"), lambda r: r.content, params={"path": path}, accept="*/*")


def write_file(name: str, path: str, content: Body, mode: Union[int, str, None] = None) -> Call[FsEntry]:
    """``PUT …/files?path=P[&mode=644]`` with ``content`` as the raw, streamed body; answers
    the file as written.

    ``mode`` is permission bits (``0o644``) or their octal text (``"644"``).
    """
    params = {"path": path}
    if mode is not None:
        params["mode"] = format(mode, "o") if isinstance(mode, int) else mode
    return Call("PUT", _sandbox(name, "/files"), _fs_entry, params=params, content=content, wait=UNBOUNDED)


def list_dir(name: str, path: str) -> Call[List[FsEntry]]:
    """``GET …/fs/list?path=P``."""
    return Call("GET", _sandbox(name, "/fs/list"), _fs_list, params={"path": path})


def stat_path(name: str, path: str) -> Call[FsEntry]:
    """``GET …/fs/stat?path=P``."""
    return Call("GET", _sandbox(name, "/fs/stat"), _fs_entry, params={"path": path})


def make_dir(name: str, path: str) -> Call[None]:
    """``POST …/fs/mkdir`` (with parents)."""
    return Call("POST", _sandbox(name, "/fs/mkdir"), _nothing, json={"path": path})


def remove_path(name: str, path: str, recursive: bool = False) -> Call[None]:
    """``POST …/fs/remove``."""
    return Call("POST", _sandbox(name, "/fs/remove"), _nothing, json={"path": path, "recursive": recursive})


def rename_path(name: str, src: str, dst: str) -> Call[None]:
    """``POST …/fs/rename``."""
    return Call("POST", _sandbox(name, "/fs/rename"), _nothing, json={"from": src, "to": dst})


# Images.


def pull_image(reference: str) -> Call[None]:
    """``POST /v1/images/pull``: its body is NDJSON progress, then the image (``PullReader``)."""
    return Call(
        "POST",
        "/v1/images/pull",
        _nothing,
        json={"reference": reference},
        wait=UNBOUNDED,
        accept="application/x-ndjson",
    )


def list_images() -> Call[List[Dict[str, Any]]]:
    """``GET /v1/images``."""
    return Call("GET", "/v1/images", _array)


def inspect_image(reference: str) -> Call[Dict[str, Any]]:
    """``GET /v1/images/inspect?reference=R``."""
    return Call("GET", "/v1/images/inspect", _object, params={"reference": reference})


def remove_image(reference: str, force: bool = False) -> Call[None]:
    """``DELETE /v1/images?reference=R[&force=true]``."""
    params = {"reference": reference}
    if force:
        params["force"] = "true"
    return Call("DELETE", "/v1/images", _nothing, params=params)


# Volumes.


def create_volume(
    name: str, quota_mib: Optional[int] = None, labels: Optional[Mapping[str, str]] = None
) -> Call[Dict[str, Any]]:
    """``POST /v1/volumes``."""
    body: JsonObject = {"name": name}
    if quota_mib is not None:
        body["quota_mib"] = quota_mib
    if labels is not None:
        body["labels"] = dict(labels)
    return Call("POST", "/v1/volumes", _object, json=body)


def list_volumes() -> Call[List[Dict[str, Any]]]:
    """``GET /v1/volumes``."""
    return Call("GET", "/v1/volumes", _array)


def get_volume(name: str) -> Call[Dict[str, Any]]:
    """``GET /v1/volumes/{name}``."""
    return Call("GET", f"/v1/volumes/{quote(name, safe='')}", _object)


def remove_volume(name: str, force: bool = False) -> Call[None]:
    """``DELETE /v1/volumes/{name}[?force=true]``."""
    params = {"force": "true"} if force else None
    return Call("DELETE", f"/v1/volumes/{quote(name, safe='')}", _nothing, params=params)


def health() -> Call[Dict[str, Any]]:
    """``GET /health`` (no token needed)."""
    return Call("GET", "/health", _object)
