"""The async client against a fake server: the same requests, awaited."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator, List

import httpx
import pytest
from fakes import ChunkedBody, FakeServer, entry_json, error_json, ndjson, sandbox_json, split_every

from microsandbox import (
    AsyncClient,
    AsyncSandbox,
    ExecResult,
    ExecTimeoutError,
    Exit,
    InvalidError,
    NotFoundError,
    Started,
    Stderr,
    TransportError,
)
from microsandbox._client import default_async_client


async def test_create_is_awaitable(fake: FakeServer, aclient: AsyncClient) -> None:
    fake.on_json("POST", "/v1/sandboxes", sandbox_json("a-1"), status=201)
    sb = await AsyncSandbox.create(rootfs="/srv/root", name="a-1", client=aclient)
    assert sb.name == "a-1" and sb.client is aclient
    assert fake.find("POST", "/v1/sandboxes").json == {"rootfs": "/srv/root", "name": "a-1"}


async def test_create_as_async_with_stops_and_removes_an_ephemeral_sandbox(
    fake: FakeServer, aclient: AsyncClient
) -> None:
    fake.on_json("POST", "/v1/sandboxes", sandbox_json("eph"), status=201)
    fake.on_json("POST", "/v1/sandboxes/eph/stop", sandbox_json("eph", "removed", ephemeral=True))
    fake.on_json("POST", "/v1/sandboxes/eph/exec", {"exit_code": 0, "success": True, "stdout": "hi\n", "stderr": ""})
    async with AsyncSandbox.create(ephemeral=True, client=aclient) as sb:
        assert await sb.exec("echo", "hi") == ExecResult(0, True, "hi\n", "")
    assert fake.find("POST", "/v1/sandboxes").json == {"image": "python", "ephemeral": True}
    fake.find("POST", "/v1/sandboxes/eph/stop")
    assert fake.find("DELETE", "/v1/sandboxes/eph").params == {"force": "true"}  # 404 tolerated


async def test_async_with_keeps_a_named_sandbox_and_errors_propagate(fake: FakeServer, aclient: AsyncClient) -> None:
    fake.on_json("POST", "/v1/sandboxes", sandbox_json("keep"), status=201)
    fake.on_json("POST", "/v1/sandboxes/keep/stop", sandbox_json("keep", "Stopped"))
    with pytest.raises(ValueError):
        async with AsyncSandbox.create(name="keep", client=aclient):
            raise ValueError("body")
    fake.find("POST", "/v1/sandboxes/keep/stop")
    assert not [s for s in fake.seen if s.method == "DELETE"]
    fake.on_json("POST", "/v1/sandboxes", error_json("invalid", "memory_mib: out of range"), status=422)
    with pytest.raises(InvalidError):
        await AsyncSandbox.create(memory_mib=1, client=aclient)


async def test_get_list_lifecycle(fake: FakeServer, aclient: AsyncClient) -> None:
    fake.on_json("GET", "/v1/sandboxes/s", sandbox_json("s"))
    fake.on_json("GET", "/v1/sandboxes", [sandbox_json("s")])
    fake.on_json("POST", "/v1/sandboxes/s/start", sandbox_json("s"))
    fake.on_json("POST", "/v1/sandboxes/s/kill", sandbox_json("s", "stopped"))
    fake.on_json("GET", "/v1/sandboxes/s/metrics", {"cpu_percent": 0})
    fake.on("GET", "/v1/sandboxes/s/logs", lambda _: httpx.Response(200, text="log"))
    sb = await AsyncSandbox.get("s", client=aclient)
    assert (await sb.info()).running
    assert [i.name for i in await AsyncSandbox.list(client=aclient)] == ["s"]
    await sb.start()
    await sb.kill()
    assert await sb.metrics() == {"cpu_percent": 0}
    assert await sb.logs() == "log"
    assert [chunk async for chunk in sb.follow_logs("output")] == ["log"]
    assert fake.find("GET", "/v1/sandboxes/s/logs").params == {"source": "output", "follow": "true"}
    with pytest.raises(NotFoundError):
        await AsyncSandbox.get("nope", client=aclient)


async def test_shell_and_exec_errors(fake: FakeServer, aclient: AsyncClient) -> None:
    fake.on_json("POST", "/v1/sandboxes/s/exec", error_json("timeout", "killed after 1 s"), status=504)
    sb = AsyncSandbox("s", aclient)
    with pytest.raises(ExecTimeoutError):
        await sb.shell("sleep 9", timeout=1)
    assert fake.find("POST", "/v1/sandboxes/s/exec").json == {"shell": "sleep 9", "timeout_secs": 1}


async def test_exec_stream_is_an_async_iterator(fake: FakeServer, aclient: AsyncClient) -> None:
    body = ndjson(
        {"type": "started", "pid": 3},
        {"type": "stderr", "data": "warn"},
        {"type": "exit", "exit_code": 1, "success": False},
    )
    stream = ChunkedBody(split_every(body, 2))
    fake.on("POST", "/v1/sandboxes/s/exec/stream", httpx.Response(200, stream=stream))
    sb = AsyncSandbox("s", aclient)
    events = [event async for event in sb.exec_stream("sh", "-c", "false")]
    assert events == [Started(3), Stderr("warn"), Exit(1, False)]
    assert stream.closed


async def test_exec_stream_closed_early(fake: FakeServer, aclient: AsyncClient) -> None:
    stream = ChunkedBody([ndjson({"type": "started", "pid": 3})], then_wait=True)
    fake.on("POST", "/v1/sandboxes/s/exec/stream", httpx.Response(200, stream=stream))
    sb = AsyncSandbox("s", aclient)
    async with sb.exec_stream("sleep", "60") as events:
        async for event in events:
            assert event == Started(3)
            break
    assert stream.closed


async def test_fs(fake: FakeServer, aclient: AsyncClient, tmp_path: Path) -> None:
    fake.on("GET", "/v1/sandboxes/s/files", lambda _: httpx.Response(200, stream=ChunkedBody([b"he", b"llo"])))
    fake.on_json("PUT", "/v1/sandboxes/s/files", entry_json())
    fake.on_json("GET", "/v1/sandboxes/s/fs/stat", error_json("not_found"), status=404)
    fake.on_json("GET", "/v1/sandboxes/s/fs/list", [{"name": "x", "kind": "File", "size": 1}])
    for op in ("mkdir", "remove", "rename"):
        fake.on("POST", f"/v1/sandboxes/s/fs/{op}", httpx.Response(204))
    fs = AsyncSandbox("s", aclient).fs
    assert await fs.read("/f") == b"hello"
    assert await fs.read_text("/f") == "hello"
    assert [chunk async for chunk in fs.read_stream("/f")] == [b"he", b"llo"]
    assert await fs.download("/f", tmp_path / "d") == 5 and (tmp_path / "d").read_bytes() == b"hello"

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(2):
            fake.events.append(f"made {i}")
            yield b"ab"

    fake.events.clear()
    await fs.write("/w", chunks(), mode=0o640)
    seen = fake.find("PUT", "/v1/sandboxes/s/files")
    assert (seen.body, seen.params) == (b"abab", {"path": "/w", "mode": "640"})
    assert fake.events == ["made 0", "recv 2", "made 1", "recv 2"]
    await fs.write("/w", iter([b"sync", b"chunks"]))
    assert fake.find("PUT", "/v1/sandboxes/s/files").chunks == [b"sync", b"chunks"]
    (tmp_path / "u").write_bytes(b"up")
    await fs.upload(tmp_path / "u", "/u")
    assert fake.find("PUT", "/v1/sandboxes/s/files").body == b"up"
    assert not await fs.exists("/nope")
    assert [e.name for e in await fs.list("/")] == ["x"]
    await fs.mkdir("/m")
    await fs.remove("/m")
    await fs.rename("/a", "/b")
    assert fake.find("POST", "/v1/sandboxes/s/fs/rename").json == {"from": "/a", "to": "/b"}


async def test_images_and_volumes(fake: FakeServer, aclient: AsyncClient) -> None:
    fake.on(
        "POST",
        "/v1/images/pull",
        httpx.Response(200, content=ndjson({"type": "p"}, {"type": "done", "image": {"reference": "r"}})),
    )
    fake.on_json("GET", "/v1/images", [{"reference": "r"}])
    fake.on_json("GET", "/v1/images/inspect", {"reference": "r"})
    fake.on("DELETE", "/v1/images", httpx.Response(204))
    fake.on_json("POST", "/v1/volumes", {"name": "v"})
    fake.on_json("GET", "/v1/volumes", [{"name": "v"}])
    fake.on_json("GET", "/v1/volumes/v", {"name": "v"})
    fake.on("DELETE", "/v1/volumes/v", httpx.Response(204))
    progress: List[object] = []
    assert await aclient.images.pull("r", on_progress=progress.append) == {"reference": "r"}
    assert progress == [{"type": "p"}]
    assert await aclient.images.list() == [{"reference": "r"}]
    assert await aclient.images.inspect("r") == {"reference": "r"}
    await aclient.images.remove("r")
    assert await aclient.volumes.create("v") == {"name": "v"}
    assert await aclient.volumes.list() == [{"name": "v"}]
    assert await aclient.volumes.get("v") == {"name": "v"}
    await aclient.volumes.remove("v")
    assert fake.find("DELETE", "/v1/volumes/v").params == {}


async def test_connection_failures_are_transport_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("too slow", request=request)

    async with AsyncClient("http://msb.test", transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(TransportError):
            await client.health()


def test_the_default_async_client_is_one_per_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSB_SERVER_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("MSB_API_TOKEN", "t")

    async def pair() -> List[AsyncClient]:
        return [default_async_client(), default_async_client()]

    first, second = asyncio.run(pair()), asyncio.run(pair())
    assert first[0] is first[1]
    assert second[0] is not first[0]
