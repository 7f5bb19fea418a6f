"""envd over the Connect protocol with the binary protobuf codec (``application/proto`` for
unary calls, ``application/connect+proto`` for streams), which the SDK itself does not use
(it speaks JSON) but other Connect clients do.

Three views: raw HTTP/1.1 from the standard library (so the wire format is checked without
any client library's help), and the SDK's own generated envd clients switched to binary —
connectrpc over pyqwest (HTTP/1.1 and h2c) in current SDKs, the vendored ``e2b_connect``
over httpcore (``json=False``) in older ones.
"""

from __future__ import annotations

import base64
import http.client
import json
import struct
import urllib.parse
from typing import Any, Dict, List, Tuple

import pytest

try:  # e2b >= 2.60: protobuf-py messages, connectrpc clients.
    from e2b.envd.filesystem import filesystem_pb as fs_pb
    from e2b.envd.process import process_pb as proc_pb

    NEW_STACK = True
except ImportError:  # older: google.protobuf messages, vendored e2b_connect clients.
    from e2b.envd.filesystem import filesystem_pb2 as fs_pb
    from e2b.envd.process import process_pb2 as proc_pb

    NEW_STACK = False

from e2b.envd.filesystem import filesystem_connect
from e2b.envd.process import process_connect


#: `FileType.DIRECTORY` (protobuf-py drops the enum's prefix, google.protobuf keeps it).
DIRECTORY = fs_pb.FileType.DIRECTORY if NEW_STACK else fs_pb.FileType.Value("FILE_TYPE_DIRECTORY")


def to_binary(message: Any) -> bytes:
    return message.to_binary() if NEW_STACK else message.SerializeToString()


def from_binary(cls: Any, data: bytes) -> Any:
    if NEW_STACK:
        return cls.from_binary(data)
    message = cls()
    message.ParseFromString(data)
    return message


def oneof(message: Any, name: str) -> Tuple[str, Any]:
    """The set field of oneof ``name`` and its value, in either protobuf runtime."""
    if NEW_STACK:
        value = getattr(message, name)
        return (value.field, value.value) if value is not None else ("", None)
    field = message.WhichOneof(name) or ""
    return field, getattr(message, field) if field else None


def envd_headers(sbx: Any) -> Dict[str, str]:
    """What the SDK sends envd: the sandbox id, its access token and the user."""
    headers = {
        "E2b-Sandbox-Id": sbx.sandbox_id,
        "Authorization": "Basic " + base64.b64encode(b"root:").decode(),
    }
    token = getattr(sbx, "_envd_access_token", None)
    if isinstance(token, str):
        headers["X-Access-Token"] = token
    return headers


def start_request(script: str) -> Any:
    return proc_pb.StartRequest(process=proc_pb.ProcessConfig(cmd="/bin/sh", args=["-c", script]))


def events_summary(responses: List[Any]) -> Tuple[int, bytes, int]:
    """(pid, stdout, exit code) of a Start stream's responses; the first must be start."""
    kinds = [oneof(r.event, "event") for r in responses]
    assert kinds[0][0] == "start", kinds
    stdout = b""
    exit_code = None
    for kind, value in kinds:
        if kind == "data":
            out_kind, chunk = oneof(value, "output")
            if out_kind == "stdout":
                stdout += chunk
        elif kind == "end":
            exit_code = value.exit_code
    assert exit_code is not None, f"no end event in {kinds}"
    return kinds[0][1].pid, stdout, exit_code


# Raw HTTP.


def raw_post(url: str, path: str, content_type: str, body: bytes, headers: Dict[str, str]) -> Tuple[int, str, bytes]:
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={**headers, "Content-Type": content_type, "Connect-Protocol-Version": "1"},
        )
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def envelopes(data: bytes) -> List[Tuple[int, bytes]]:
    """(flags, payload) of each Connect envelope in a stream body."""
    out = []
    while data:
        assert len(data) >= 5, f"truncated envelope header: {data!r}"
        flags, size = struct.unpack(">BI", data[:5])
        assert len(data) >= 5 + size, "truncated envelope"
        out.append((flags, data[5 : 5 + size]))
        data = data[5 + size :]
    return out


def test_raw_unary_stat_binary(shared: Any) -> None:
    status, ctype, body = raw_post(
        shared.envd_api_url,
        "/filesystem.Filesystem/Stat",
        "application/proto",
        to_binary(fs_pb.StatRequest(path="/tmp")),
        envd_headers(shared),
    )
    assert (status, ctype.split(";")[0]) == (200, "application/proto"), body
    entry = from_binary(fs_pb.StatResponse, body).entry
    assert (entry.name, entry.path, entry.type) == ("tmp", "/tmp", DIRECTORY)


def test_raw_unary_error_is_json(shared: Any) -> None:
    """Connect errors are JSON whatever the codec."""
    status, ctype, body = raw_post(
        shared.envd_api_url,
        "/filesystem.Filesystem/Stat",
        "application/proto",
        to_binary(fs_pb.StatRequest(path="/no/such/path")),
        envd_headers(shared),
    )
    assert (status, ctype.split(";")[0]) == (404, "application/json"), body
    assert json.loads(body)["code"] == "not_found"


def test_raw_wrong_access_token(shared: Any) -> None:
    if not isinstance(getattr(shared, "_envd_access_token", None), str):
        pytest.skip("the server gave this sandbox no envd access token")
    status, ctype, body = raw_post(
        shared.envd_api_url,
        "/filesystem.Filesystem/Stat",
        "application/proto",
        to_binary(fs_pb.StatRequest(path="/tmp")),
        {**envd_headers(shared), "X-Access-Token": "not-the-token"},
    )
    assert (status, ctype.split(";")[0]) == (401, "application/json"), body
    assert json.loads(body)["code"] == "unauthenticated"


def test_raw_stream_start_binary(shared: Any) -> None:
    request = to_binary(start_request("echo proto"))
    status, ctype, body = raw_post(
        shared.envd_api_url,
        "/process.Process/Start",
        "application/connect+proto",
        struct.pack(">BI", 0, len(request)) + request,
        envd_headers(shared),
    )
    assert (status, ctype.split(";")[0]) == (200, "application/connect+proto"), body
    frames = envelopes(body)
    assert [flags for flags, _ in frames[:-1]] == [0] * (len(frames) - 1)
    end_flags, trailer = frames[-1]
    assert end_flags == 2 and "error" not in json.loads(trailer), trailer
    responses = [from_binary(proc_pb.StartResponse, payload) for _, payload in frames[:-1]]
    pid, stdout, exit_code = events_summary(responses)
    assert pid > 0 and stdout == b"proto\n" and exit_code == 0


# The SDK's generated clients with the binary codec.


def sdk_clients(sbx: Any, http_version: str) -> Tuple[Any, Any]:
    """Process and filesystem clients of the installed SDK, speaking binary protobuf."""
    url = sbx.envd_api_url
    if NEW_STACK:
        from e2b.api.client_sync import get_pyqwest_transport
        from pyqwest import SyncClient

        common: Dict[str, Any] = {
            # No codec: connectrpc's default, binary protobuf.
            "http_client": SyncClient(get_pyqwest_transport(None, http_version=http_version)),
            "send_compression": None,
            "accept_compression": (),
        }
        return (
            process_connect.ProcessClientSync(url, **common),
            filesystem_connect.FilesystemClientSync(url, **common),
        )
    import httpcore

    pool = httpcore.ConnectionPool(http1=http_version == "1.1", http2=http_version == "2")
    return (
        process_connect.ProcessClient(url, pool=pool, json=False),
        filesystem_connect.FilesystemClient(url, pool=pool, json=False),
    )


@pytest.mark.parametrize("http_version", ["1.1", "2"])
def test_sdk_clients_binary(shared: Any, http_version: str) -> None:
    process, filesystem = sdk_clients(shared, http_version)
    headers = envd_headers(shared)
    call: Dict[str, Any] = {"headers": headers}

    responses = list(process.start(start_request("echo proto; echo err >&2"), **call))
    pid, stdout, exit_code = events_summary(responses)
    assert (stdout, exit_code) == (b"proto\n", 0) and pid > 0

    stat = filesystem.stat(fs_pb.StatRequest(path="/bin/sh"), **call)
    assert stat.entry.name == "sh" and stat.entry.path == "/bin/sh"

    listed = filesystem.list_dir(fs_pb.ListDirRequest(path="/", depth=1), **call)
    names = {e.name for e in listed.entries}
    assert {"bin", "tmp", "proc"} <= names, names

    running = process.list(proc_pb.ListRequest(), **call)
    assert all(p.pid > 0 for p in running.processes)

    with pytest.raises(Exception) as caught:
        filesystem.stat(fs_pb.StatRequest(path="/no/such/path"), **call)
    code = getattr(caught.value, "code", None) or getattr(caught.value, "status", None)
    assert "not_found" in str(code).lower().replace(".", "_"), caught.value
