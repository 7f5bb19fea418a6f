"""Against a real ``msb serve``: set ``MSB_TEST_SERVER_URL``, ``MSB_TEST_SERVER_TOKEN`` and
``MSB_TEST_ROOTFS`` (a busybox root, copied for each sandbox). Skipped without them, failed
instead when ``MSB_REQUIRE_SERVER=1``.

Every VM boot costs seconds under emulation, so read-only checks share one sandbox.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List

import pytest

from microsandbox import (
    AsyncClient,
    AsyncSandbox,
    Client,
    ConflictError,
    ExecTimeoutError,
    Exit,
    InvalidError,
    NotFoundError,
    Sandbox,
    Started,
    Stderr,
    Stdout,
    UnauthorizedError,
)

pytestmark = pytest.mark.server

#: Every sandbox of this run is named with it, so leftovers can be found.
PREFIX = f"pytest-{uuid.uuid4().hex[:8]}"
BIG = 20 * 1024 * 1024


def connect() -> Client:
    return Client(os.environ["MSB_TEST_SERVER_URL"], os.environ["MSB_TEST_SERVER_TOKEN"], boot_timeout=600)


def connect_async() -> AsyncClient:
    return AsyncClient(os.environ["MSB_TEST_SERVER_URL"], os.environ["MSB_TEST_SERVER_TOKEN"], boot_timeout=600)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with connect() as c:
        yield c


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], str]:
    """Makes a fresh copy of ``$MSB_TEST_ROOTFS`` (the original is never booted)."""

    def copy() -> str:
        target = tmp_path_factory.mktemp("rootfs") / "root"
        subprocess.run(["cp", "-a", os.environ["MSB_TEST_ROOTFS"], str(target)], check=True)
        return str(target)

    return copy


def pattern(size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """``size`` bytes that are not all alike, made chunk by chunk."""
    for offset in range(0, size, chunk):
        yield hashlib.sha256(str(offset).encode()).digest() * (min(chunk, size - offset) // 32)


@pytest.fixture(scope="class")
def sb(client: Client, rootfs: Callable[[], str]) -> Iterator[Sandbox]:
    """One sandbox for the checks of a class, removed after them."""
    sandbox = Sandbox.create(rootfs=rootfs(), name=f"{PREFIX}-shared", client=client)
    yield sandbox
    sandbox.remove(force=True)


class TestSharedSandbox:
    """Checks that one running sandbox serves."""

    def test_info(self, sb: Sandbox) -> None:
        info = sb.info()
        assert (info.name, info.state) == (f"{PREFIX}-shared", "running")
        assert sb.name in [i.name for i in Sandbox.list(client=sb.client)]

    def test_exec(self, sb: Sandbox) -> None:
        result = sb.exec("/bin/echo", "hi")
        assert (result.stdout, result.stderr, result.exit_code, result.success) == ("hi\n", "", 0, True)
        assert sb.exec(["/bin/sh", "-c", "exit 3"]).exit_code == 3

    def test_exec_options(self, sb: Sandbox) -> None:
        result = sb.exec(
            "/bin/sh", "-c", "echo $GREETING; pwd; cat", env={"GREETING": "hej"}, workdir="/tmp", stdin="in"
        )
        assert result.stdout == "hej\n/tmp\nin"

    def test_shell(self, sb: Sandbox) -> None:
        result = sb.shell("echo out; echo err >&2; exit 2")
        assert (result.stdout, result.stderr, result.exit_code, result.success) == (
            "out\n",
            "err\n",
            2,
            False,
        )

    def test_exec_timeout(self, sb: Sandbox) -> None:
        with pytest.raises(ExecTimeoutError):
            sb.exec("/bin/sleep", "30", timeout=1)

    def test_exec_stream(self, sb: Sandbox) -> None:
        events = list(sb.exec_stream("/bin/sh", "-c", "echo a; echo b >&2; echo c; exit 4"))
        assert isinstance(events[0], Started) and events[0].pid > 0
        assert events[-1] == Exit(4, False)
        assert "".join(e.data for e in events if isinstance(e, Stdout)) == "a\nc\n"
        assert "".join(e.data for e in events if isinstance(e, Stderr)) == "b\n"

    def test_closing_a_stream_kills_its_command(self, sb: Sandbox) -> None:
        started = time.monotonic()
        with sb.exec_stream("/bin/sh", "-c", "echo go; exec /bin/sleep 347") as events:
            for event in events:
                if isinstance(event, Stdout):
                    break
        assert time.monotonic() - started < 60
        for _ in range(40):
            if "sleep 347" not in sb.exec("/bin/ps").stdout:
                return
            time.sleep(0.5)
        pytest.fail("the streamed command still runs after its stream was closed")

    def test_fs_round_trip(self, sb: Sandbox) -> None:
        assert sb.fs.write("/tmp/hello.txt", "héllo\n", mode=0o600).size == 7
        assert sb.fs.read("/tmp/hello.txt") == "héllo\n".encode()
        assert sb.fs.read_text("/tmp/hello.txt") == "héllo\n"
        entry = sb.fs.stat("/tmp/hello.txt")
        assert (entry.name, entry.is_file, entry.size, entry.mode & 0o777) == ("hello.txt", True, 7, 0o600)
        assert sb.exec("/bin/cat", "/tmp/hello.txt").stdout == "héllo\n"

    def test_fs_big_file_streams(self, sb: Sandbox, tmp_path: Path) -> None:
        expected = hashlib.sha256()
        for chunk in pattern(BIG):
            expected.update(chunk)
        sb.fs.write("/tmp/big.bin", pattern(BIG))
        assert sb.fs.stat("/tmp/big.bin").size == BIG
        got = hashlib.sha256()
        with sb.fs.read_stream("/tmp/big.bin") as chunks:
            for chunk in chunks:
                got.update(chunk)
        assert got.hexdigest() == expected.hexdigest()
        local = tmp_path / "big.bin"
        assert sb.fs.download("/tmp/big.bin", local) == BIG
        sb.fs.upload(local, "/tmp/big-again.bin")
        assert sb.shell("cmp /tmp/big.bin /tmp/big-again.bin && echo same").stdout == "same\n"
        sb.fs.remove("/tmp/big-again.bin")

    def test_fs_directories(self, sb: Sandbox) -> None:
        base = "/tmp/tree"
        sb.fs.mkdir(f"{base}/a/b")
        sb.fs.write(f"{base}/a/b/f", b"x")
        assert sb.fs.stat(f"{base}/a").is_dir
        assert [e.name for e in sb.fs.list(f"{base}/a/b")] == ["f"]
        sb.fs.rename(f"{base}/a/b/f", f"{base}/g")
        assert sb.fs.exists(f"{base}/g") and not sb.fs.exists(f"{base}/a/b/f")
        assert sorted(e.name for e in sb.fs.list(base)) == ["a", "g"]
        with pytest.raises(NotFoundError):
            sb.fs.read(f"{base}/nothing")
        sb.fs.remove(base, recursive=True)
        assert not sb.fs.exists(base)

    def test_metrics_and_logs(self, sb: Sandbox) -> None:
        assert sb.metrics()["memory_limit_bytes"] > 0
        assert isinstance(sb.logs(source="exec"), str)

    def test_a_taken_name_is_a_conflict(self, sb: Sandbox, rootfs: Callable[[], str]) -> None:
        with pytest.raises(ConflictError) as caught:
            Sandbox.create(rootfs=rootfs(), name=sb.name, client=sb.client)
        assert caught.value.status == 409


def test_unknown_sandbox_is_not_found(client: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        Sandbox.get(f"{PREFIX}-nothing", client=client)
    assert caught.value.status == 404
    with pytest.raises(NotFoundError):
        Sandbox(f"{PREFIX}-nothing", client).exec("/bin/true")


def test_a_bad_spec_is_invalid(client: Client, rootfs: Callable[[], str]) -> None:
    with pytest.raises(InvalidError) as caught:
        Sandbox.create(rootfs=rootfs(), name=f"{PREFIX}-bad", memory_mib=1, client=client)
    assert caught.value.status == 422 and caught.value.kind == "invalid"


def test_a_wrong_token_is_unauthorized() -> None:
    with Client(os.environ["MSB_TEST_SERVER_URL"], "wrong-token") as client:
        with pytest.raises(UnauthorizedError):
            Sandbox.list(client=client)


def test_context_manager_stops_then_start_and_remove(client: Client, rootfs: Callable[[], str]) -> None:
    name = f"{PREFIX}-ctx"
    with Sandbox.create(rootfs=rootfs(), name=name, client=client) as sb:
        assert sb.exec("/bin/true").success
    assert Sandbox.get(name, client=client).info().state == "stopped"
    sb.start()
    assert sb.exec("/bin/echo", "again").stdout == "again\n"
    sb.remove(force=True)
    with pytest.raises(NotFoundError):
        sb.info()


async def test_async_sandbox(rootfs: Callable[[], str]) -> None:
    name = f"{PREFIX}-async"
    async with connect_async() as client:
        with pytest.raises(InvalidError):
            await AsyncSandbox.create(rootfs=rootfs(), name=f"{PREFIX}-bad", memory_mib=1, client=client)
        async with AsyncSandbox.create(rootfs=rootfs(), name=name, ephemeral=True, client=client) as sb:
            assert (await sb.exec("/bin/echo", "hi")).stdout == "hi\n"
            assert (await sb.shell("echo $((6 * 7))")).stdout == "42\n"
            events: List[object] = [event async for event in sb.exec_stream("/bin/echo", "streamed")]
            assert events[1:] == [Stdout("streamed\n"), Exit(0, True)]

            async def chunks() -> AsyncIterator[bytes]:
                for chunk in pattern(3 << 20):
                    yield chunk

            await sb.fs.write("/tmp/a.bin", chunks())
            assert await sb.fs.read("/tmp/a.bin") == b"".join(pattern(3 << 20))
        with pytest.raises(NotFoundError):
            await AsyncSandbox.get(name, client=client)


def test_volumes(client: Client) -> None:
    name = f"{PREFIX}-vol"
    assert client.volumes.create(name, labels={"by": "pytest"})["name"] == name
    assert name in [v["name"] for v in client.volumes.list()]
    assert client.volumes.get(name)["labels"] == {"by": "pytest"}
    client.volumes.remove(name)
    with pytest.raises(NotFoundError):
        client.volumes.get(name)


def test_image_pull(client: Client) -> None:
    """Pulls from the fixture registry of ``MSB_TEST_REGISTRY`` (``HOST:PORT``)."""
    registry = os.environ.get("MSB_TEST_REGISTRY")
    if not registry:
        pytest.skip("needs MSB_TEST_REGISTRY (the fixture registry's HOST:PORT)")
    reference = f"{registry}/msb-test/busybox:latest"
    progress: List[Dict[str, Any]] = []
    image = client.images.pull(reference, on_progress=progress.append)
    assert image["reference"] == reference and progress[0]["type"] == "resolving"
    assert reference in [i["reference"] for i in client.images.list()]
    assert client.images.inspect(reference)["manifest_digest"] == image["manifest_digest"]
    client.images.remove(reference)
    with pytest.raises(NotFoundError):
        client.images.inspect(reference)


def test_no_sandbox_of_this_run_is_left(client: Client) -> None:
    """Runs last: every sandbox made above is gone."""
    left = [info.name for info in Sandbox.list(client=client) if info.name.startswith(PREFIX)]
    assert left == []
