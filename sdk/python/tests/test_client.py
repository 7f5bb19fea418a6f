"""The sync client against a fake server: request shapes, answers, errors, streams."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Type

import httpx
import pytest
from fakes import ChunkedBody, FakeServer, entry_json, error_json, ndjson, sandbox_json, split_every

from microsandbox import (
    Client,
    ConflictError,
    ExecResult,
    ExecTimeoutError,
    Exit,
    InvalidError,
    MicrosandboxError,
    NotFoundError,
    ProtocolError,
    Sandbox,
    Started,
    Stdout,
    TransportError,
    UnauthorizedError,
)
from microsandbox._client import DEFAULT_BOOT_TIMEOUT, DEFAULT_TIMEOUT
from microsandbox._fs import CHUNK_SIZE

EXEC_OK = {"exit_code": 0, "success": True, "stdout": "1\n", "stderr": ""}


@pytest.fixture
def sb(client: Client) -> Sandbox:
    return Sandbox("sb-1", client)


def test_requests_carry_the_token_and_a_user_agent(fake: FakeServer, client: Client) -> None:
    fake.on_json("GET", "/health", {"status": "ok", "version": "0.1.0"})
    assert client.health() == {"status": "ok", "version": "0.1.0"}
    seen = fake.find("GET", "/health")
    assert seen.headers["authorization"] == "Bearer t0k"
    assert seen.headers["user-agent"].startswith("microsandbox-python/")


def test_create_posts_the_spec_and_answers_a_sandbox(fake: FakeServer, client: Client) -> None:
    fake.on_json("POST", "/v1/sandboxes", sandbox_json("py-7"), status=201)
    sb = Sandbox.create(image="python", cpus=2, memory_mib=1024, env={"A": "b"}, labels={"k": "v"}, client=client)
    assert sb.name == "py-7" and sb.client is client
    seen = fake.find("POST", "/v1/sandboxes")
    assert seen.json == {
        "image": "python",
        "cpus": 2,
        "memory_mib": 1024,
        "env": {"A": "b"},
        "labels": {"k": "v"},
        "ephemeral": True,
    }
    assert seen.headers["content-type"] == "application/json"
    timeout = seen.extensions["timeout"]
    assert timeout["read"] == DEFAULT_BOOT_TIMEOUT and timeout["connect"] <= 10


def test_get_list_and_info(fake: FakeServer, client: Client) -> None:
    fake.on_json("GET", "/v1/sandboxes/a", sandbox_json("a", "Stopped", ephemeral=True))
    fake.on_json("GET", "/v1/sandboxes", [sandbox_json("a"), sandbox_json("b")])
    sb = Sandbox.get("a", client=client)
    info = sb.info()
    assert (info.name, info.state, info.running, info.ephemeral, info.created_at) == (
        "a",
        "stopped",
        False,
        True,
        1,
    )
    assert [i.name for i in Sandbox.list(client=client)] == ["a", "b"]
    fake.on_json("GET", "/v1/sandboxes", {"sandboxes": []})
    with pytest.raises(ProtocolError):
        Sandbox.list(client=client)
    assert fake.find("GET", "/v1/sandboxes").extensions["timeout"]["read"] == DEFAULT_TIMEOUT


def test_lifecycle_requests(fake: FakeServer, sb: Sandbox) -> None:
    for verb in ("start", "stop", "kill"):
        fake.on_json("POST", f"/v1/sandboxes/sb-1/{verb}", sandbox_json("sb-1", "stopped"))
    fake.on("DELETE", "/v1/sandboxes/sb-1", httpx.Response(204))
    assert sb.start().name == "sb-1"
    assert sb.stop(timeout_secs=500).state == "stopped"
    seen = fake.find("POST", "/v1/sandboxes/sb-1/stop")
    assert seen.json == {"timeout_secs": 500}
    assert seen.extensions["timeout"]["read"] == DEFAULT_BOOT_TIMEOUT + 500
    sb.stop()
    assert fake.find("POST", "/v1/sandboxes/sb-1/stop").json == {}
    assert sb.kill().state == "stopped"
    sb.remove()
    assert fake.find("DELETE", "/v1/sandboxes/sb-1").params == {}
    sb.remove(force=True)
    assert fake.find("DELETE", "/v1/sandboxes/sb-1").params == {"force": "true"}


def test_names_are_quoted_in_paths() -> None:
    paths: List[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path)
        return httpx.Response(200, json=sandbox_json("x"))

    with Client("http://msb.test", token="t", transport=httpx.MockTransport(handler)) as client:
        Sandbox.get("a/../b c", client=client)
    assert paths == [b"/v1/sandboxes/a%2F..%2Fb%20c"]


def test_metrics_and_logs(fake: FakeServer, sb: Sandbox) -> None:
    fake.on_json("GET", "/v1/sandboxes/sb-1/metrics", {"cpu_percent": 1.5})
    fake.on(
        "GET",
        "/v1/sandboxes/sb-1/logs",
        lambda _: httpx.Response(200, stream=ChunkedBody([b"bo", b"ot \xc3", b"\xa9\n"])),
    )
    assert sb.metrics() == {"cpu_percent": 1.5}
    assert sb.logs(source="exec") == "boot é\n"
    assert fake.find("GET", "/v1/sandboxes/sb-1/logs").params == {"source": "exec"}
    sb.logs(source="console", boot=2)
    assert fake.find("GET", "/v1/sandboxes/sb-1/logs").params == {"source": "console", "boot": "2"}
    with sb.follow_logs() as chunks:
        assert "".join(chunks) == "boot é\n"
    seen = fake.find("GET", "/v1/sandboxes/sb-1/logs")
    assert seen.params == {"follow": "true"} and seen.extensions["timeout"]["read"] is None


def test_exec_and_shell(fake: FakeServer, sb: Sandbox) -> None:
    fake.on_json("POST", "/v1/sandboxes/sb-1/exec", EXEC_OK)
    result = sb.exec("python3", "-c", "print(1)", env={"X": "1"}, timeout=30)
    assert result == ExecResult(exit_code=0, success=True, stdout="1\n", stderr="", spawn_error=None)
    seen = fake.find("POST", "/v1/sandboxes/sb-1/exec")
    assert seen.json == {"cmd": ["python3", "-c", "print(1)"], "env": {"X": "1"}, "timeout_secs": 30}
    assert seen.extensions["timeout"]["read"] is None
    sb.shell("echo hi | wc -c", workdir="/tmp")
    assert fake.find("POST", "/v1/sandboxes/sb-1/exec").json == {
        "shell": "echo hi | wc -c",
        "workdir": "/tmp",
    }


@pytest.mark.parametrize(
    "status,kind,cls",
    [
        (404, "not_found", NotFoundError),
        (409, "conflict", ConflictError),
        (422, "invalid", InvalidError),
        (504, "timeout", ExecTimeoutError),
        (401, "unauthorized", UnauthorizedError),
    ],
)
def test_error_answers_raise_their_class(
    fake: FakeServer, sb: Sandbox, status: int, kind: str, cls: Type[MicrosandboxError]
) -> None:
    fake.on_json("POST", "/v1/sandboxes/sb-1/exec", error_json(kind, "said the server"), status=status)
    with pytest.raises(cls) as caught:
        sb.exec("true")
    assert caught.value.status == status and caught.value.message == "said the server"


def test_a_malformed_answer_is_a_protocol_error(fake: FakeServer, sb: Sandbox) -> None:
    fake.on("POST", "/v1/sandboxes/sb-1/exec", httpx.Response(200, text="not json"))
    with pytest.raises(ProtocolError):
        sb.exec("true")
    fake.on_json("POST", "/v1/sandboxes/sb-1/exec", {"stdout": ""})
    with pytest.raises(ProtocolError):
        sb.exec("true")


def test_connection_failures_are_transport_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with Client("http://msb.test", token="t", transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(TransportError) as caught:
            client.health()
    assert caught.value.kind == "transport" and caught.value.status is None


def test_exec_stream_reads_events_split_across_chunks(fake: FakeServer, sb: Sandbox) -> None:
    body = ndjson(
        {"type": "started", "pid": 42},
        {"type": "stdout", "data": "a"},
        {"type": "stdout", "data": "é"},
        {"type": "exit", "exit_code": 0, "success": True, "spawn_error": None},
    )
    stream = ChunkedBody(split_every(body, 3))
    fake.on("POST", "/v1/sandboxes/sb-1/exec/stream", httpx.Response(200, stream=stream))
    events = list(sb.exec_stream(["sh", "-c", "echo"], stdin="x"))
    assert events == [Started(42), Stdout("a"), Stdout("é"), Exit(0, True)]
    seen = fake.find("POST", "/v1/sandboxes/sb-1/exec/stream")
    assert seen.json == {"cmd": ["sh", "-c", "echo"], "stdin": "x"}
    assert seen.headers["accept"] == "application/x-ndjson"
    assert stream.closed


def test_exec_stream_is_sent_on_iteration_and_closed_early(fake: FakeServer, sb: Sandbox) -> None:
    stream = ChunkedBody([ndjson({"type": "started", "pid": 1}, {"type": "stdout", "data": "x"})], then_wait=True)
    fake.on("POST", "/v1/sandboxes/sb-1/exec/stream", httpx.Response(200, stream=stream))
    events = sb.exec_stream("sleep", "60")
    assert fake.seen == []
    with events:
        assert next(events) == Started(1)
    assert stream.closed
    with pytest.raises(StopIteration):
        next(events)


def test_breaking_out_of_an_exec_stream_closes_it(fake: FakeServer, sb: Sandbox) -> None:
    stream = ChunkedBody([ndjson({"type": "started", "pid": 1})], then_wait=True)
    fake.on("POST", "/v1/sandboxes/sb-1/exec/stream", httpx.Response(200, stream=stream))
    for event in sb.exec_stream("sleep", "60"):
        assert event == Started(1)
        break
    assert stream.closed


def test_exec_stream_errors(fake: FakeServer, sb: Sandbox) -> None:
    with pytest.raises(NotFoundError):
        next(sb.exec_stream("true"))
    body = ndjson({"type": "started", "pid": 1}, {"type": "error", "kind": "timeout", "message": "killed"})
    fake.on("POST", "/v1/sandboxes/sb-1/exec/stream", httpx.Response(200, content=body))
    with pytest.raises(ExecTimeoutError):
        list(sb.exec_stream("sleep", "9", timeout=1))
    fake.on("POST", "/v1/sandboxes/sb-1/exec/stream", httpx.Response(200, content=body[: body.index(b"\n") + 1]))
    with pytest.raises(ProtocolError):
        list(sb.exec_stream("true"))


def test_context_manager_stops_and_keeps_a_named_sandbox(fake: FakeServer, client: Client) -> None:
    fake.on_json("POST", "/v1/sandboxes", sandbox_json("keep"))
    fake.on_json("POST", "/v1/sandboxes/keep/stop", sandbox_json("keep", "Stopped"))
    with Sandbox.create(name="keep", client=client) as sb:
        assert sb.name == "keep"
    fake.find("POST", "/v1/sandboxes/keep/stop")
    assert not [s for s in fake.seen if s.method == "DELETE"]


def test_context_manager_removes_an_ephemeral_sandbox_even_if_gone(fake: FakeServer, client: Client) -> None:
    fake.on_json("POST", "/v1/sandboxes", sandbox_json("tmp"))
    fake.on_json("POST", "/v1/sandboxes/tmp/stop", sandbox_json("tmp", "removed", ephemeral=True))
    with pytest.raises(RuntimeError):
        with Sandbox.create(ephemeral=True, client=client):
            raise RuntimeError("body failed")
    assert fake.find("POST", "/v1/sandboxes/tmp/stop")
    assert fake.find("DELETE", "/v1/sandboxes/tmp").params == {"force": "true"}  # answered 404: tolerated


def test_context_manager_tolerates_a_sandbox_gone_at_stop(fake: FakeServer, client: Client) -> None:
    fake.on_json("POST", "/v1/sandboxes", sandbox_json("gone", ephemeral=True))
    with Sandbox.create(client=client):
        pass
    assert [s.path for s in fake.seen if s.method == "DELETE"] == []


def test_fs_reads(fake: FakeServer, sb: Sandbox, tmp_path: Path) -> None:
    fake.on(
        "GET",
        "/v1/sandboxes/sb-1/files",
        lambda s: httpx.Response(200, stream=ChunkedBody([b"ab", b"c\xc3", b"\xa9"])),
    )
    assert sb.fs.read("/f") == b"abc\xc3\xa9"
    assert fake.find("GET", "/v1/sandboxes/sb-1/files").params == {"path": "/f"}
    assert sb.fs.read_text("/f") == "abcé"
    assert list(sb.fs.read_stream("/f")) == [b"ab", b"c\xc3", b"\xa9"]
    assert sb.fs.download("/f", tmp_path / "out") == 5
    assert (tmp_path / "out").read_bytes() == b"abc\xc3\xa9"


def test_fs_download_of_a_missing_file_writes_nothing(fake: FakeServer, sb: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        sb.fs.download("/missing", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fs_write_bytes_and_text(fake: FakeServer, sb: Sandbox) -> None:
    fake.on_json("PUT", "/v1/sandboxes/sb-1/files", entry_json("a", size=4))
    assert sb.fs.write("/a", b"data", mode=0o755).size == 4
    seen = fake.find("PUT", "/v1/sandboxes/sb-1/files")
    assert (seen.body, seen.params, seen.headers["content-length"]) == (
        b"data",
        {"path": "/a", "mode": "755"},
        "4",
    )
    sb.fs.write("/b", "é", mode="600")
    seen = fake.find("PUT", "/v1/sandboxes/sb-1/files")
    assert (seen.body, seen.params) == ("é".encode(), {"path": "/b", "mode": "600"})


def test_fs_write_streams_a_generator_body(fake: FakeServer, sb: Sandbox) -> None:
    fake.on_json("PUT", "/v1/sandboxes/sb-1/files", entry_json())

    def chunks() -> Iterator[bytes]:
        for i in range(3):
            fake.events.append(f"made {i}")
            yield bytes([i]) * 1000

    sb.fs.write("/big", chunks())
    seen = fake.find("PUT", "/v1/sandboxes/sb-1/files")
    assert seen.headers.get("transfer-encoding") == "chunked" and "content-length" not in seen.headers
    assert seen.chunks == [b"\x00" * 1000, b"\x01" * 1000, b"\x02" * 1000]
    assert fake.events == ["made 0", "recv 1000", "made 1", "recv 1000", "made 2", "recv 1000"]


class CountingFile:
    """A binary file that records the sizes asked of it."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.asked: List[int] = []

    def read(self, n: int = -1) -> bytes:
        self.asked.append(n)
        take = self.left if n < 0 else min(n, self.left)
        self.left -= take
        return b"x" * take


def test_fs_write_reads_a_file_in_bounded_chunks(fake: FakeServer, sb: Sandbox, tmp_path: Path) -> None:
    fake.on_json("PUT", "/v1/sandboxes/sb-1/files", entry_json())
    file = CountingFile(3 * CHUNK_SIZE + 1)
    sb.fs.write("/f", file)  # type: ignore[arg-type]
    assert set(file.asked) == {CHUNK_SIZE}
    assert len(fake.find("PUT", "/v1/sandboxes/sb-1/files").body) == 3 * CHUNK_SIZE + 1
    (tmp_path / "up").write_bytes(b"uploaded")
    sb.fs.upload(tmp_path / "up", "/up", mode=0o600)
    seen = fake.find("PUT", "/v1/sandboxes/sb-1/files")
    assert (seen.body, seen.params) == (b"uploaded", {"path": "/up", "mode": "600"})
    with pytest.raises(TypeError):
        sb.fs.write("/f", 42)  # type: ignore[arg-type]


def test_fs_operations(fake: FakeServer, sb: Sandbox) -> None:
    entry = {
        "name": "d",
        "kind": "Dir",
        "size": 4096,
        "mode": 0o755,
        "uid": 0,
        "gid": 0,
        "modified_ns": 5,
        "nlink": 2,
    }
    fake.on_json("GET", "/v1/sandboxes/sb-1/fs/list", [entry, dict(entry, name="f", kind="File")])
    fake.on_json("GET", "/v1/sandboxes/sb-1/fs/stat", entry)
    for op in ("mkdir", "remove", "rename"):
        fake.on("POST", f"/v1/sandboxes/sb-1/fs/{op}", httpx.Response(204))
    listing = sb.fs.list("/")
    assert [(e.name, e.is_dir, e.is_file) for e in listing] == [("d", True, False), ("f", False, True)]
    assert fake.find("GET", "/v1/sandboxes/sb-1/fs/list").params == {"path": "/"}
    stat = sb.fs.stat("/d")
    assert (stat.kind, stat.mode, stat.nlink, stat.is_symlink) == ("dir", 0o755, 2, False)
    assert sb.fs.exists("/d")
    fake.on_json("GET", "/v1/sandboxes/sb-1/fs/stat", error_json("not_found"), status=404)
    assert not sb.fs.exists("/nope")
    sb.fs.mkdir("/a/b")
    assert fake.find("POST", "/v1/sandboxes/sb-1/fs/mkdir").json == {"path": "/a/b"}
    sb.fs.remove("/a", recursive=True)
    assert fake.find("POST", "/v1/sandboxes/sb-1/fs/remove").json == {"path": "/a", "recursive": True}
    sb.fs.rename("/x", "/y")
    assert fake.find("POST", "/v1/sandboxes/sb-1/fs/rename").json == {"from": "/x", "to": "/y"}


def test_images(fake: FakeServer, client: Client) -> None:
    image = {"reference": "docker.io/library/python:latest"}
    body = ndjson({"type": "resolving", "reference": "python"}, {"type": "done", "image": image})
    fake.on("POST", "/v1/images/pull", httpx.Response(200, stream=ChunkedBody(split_every(body, 5))))
    progress: List[object] = []
    assert client.images.pull("python", on_progress=progress.append) == image
    assert progress == [{"type": "resolving", "reference": "python"}]
    assert fake.find("POST", "/v1/images/pull").json == {"reference": "python"}
    fake.on_json("GET", "/v1/images", [image])
    fake.on_json("GET", "/v1/images/inspect", image)
    fake.on("DELETE", "/v1/images", httpx.Response(204))
    assert client.images.list() == [image]
    assert client.images.inspect("python") == image
    assert fake.find("GET", "/v1/images/inspect").params == {"reference": "python"}
    client.images.remove("python", force=True)
    assert fake.find("DELETE", "/v1/images").params == {"reference": "python", "force": "true"}


def test_volumes(fake: FakeServer, client: Client) -> None:
    volume = {"name": "data", "labels": {}, "created_at": 1}
    fake.on_json("POST", "/v1/volumes", volume, status=201)
    fake.on_json("GET", "/v1/volumes", [volume])
    fake.on_json("GET", "/v1/volumes/data", volume)
    fake.on("DELETE", "/v1/volumes/data", httpx.Response(204))
    assert client.volumes.create("data", quota_mib=100, labels={"a": "b"}) == volume
    assert fake.find("POST", "/v1/volumes").json == {"name": "data", "quota_mib": 100, "labels": {"a": "b"}}
    assert client.volumes.list() == [volume]
    assert client.volumes.get("data") == volume
    client.volumes.remove("data", force=True)
    assert fake.find("DELETE", "/v1/volumes/data").params == {"force": "true"}
