"""msb's MCP server driven by a real MCP client (the Python `mcp` package).

    MSB_BIN=target/debug/msb pytest crates/msb-server/tests/mcp_client

- over stdio (`msb mcp`): the tool list; with MSB_TEST_ROOTFS set (a rootfs directory,
  copied with `cp -a` before use, never booted in place), one sandbox through its life:
  create, exec, shell, file write/read/list/stat, stop, remove.
- over streamable HTTP (`msb serve --listen 127.0.0.1:0`, path /mcp): the tool list with the
  token, and 401 without it.

MSB_HOME is used as set (a VM needs lib/vmlinux and lib/initramfs.cpio there); unset, each
test gets an empty temporary one (enough without VMs).
"""

import asyncio
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

TOOLS = {
    "sandbox_create",
    "sandbox_exec",
    "sandbox_shell",
    "sandbox_fs_read",
    "sandbox_fs_write",
    "sandbox_fs_list",
    "sandbox_fs_mkdir",
    "sandbox_fs_remove",
    "sandbox_fs_stat",
    "sandbox_stop",
    "sandbox_remove",
    "sandbox_list",
    "sandbox_metrics",
    "volume_create",
    "volume_list",
    "volume_remove",
}


def msb_bin() -> str:
    path = os.environ.get("MSB_BIN")
    if not path:
        pytest.skip("MSB_BIN (the msb binary) is not set")
    return str(Path(path).resolve())


@pytest.fixture
def msb_home():
    home = os.environ.get("MSB_HOME")
    if home:
        yield home
        return
    # Short: a sandbox's unix sockets live under it, and their paths are limited to 108 bytes.
    home = tempfile.mkdtemp(prefix="msbmcp", dir="/tmp")
    yield home
    shutil.rmtree(home, ignore_errors=True)


def field(obj, snake: str, camel: str):
    """A result field under either spelling (mcp 2.x snake_case, 1.x camelCase)."""
    return getattr(obj, snake, None) if hasattr(obj, snake) else getattr(obj, camel, None)


def text_of(result) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def call(session, tool: str, **arguments):
    """Calls `tool`; fails the test on a tool error; answers the result."""
    result = await session.call_tool(tool, arguments)
    assert not field(result, "is_error", "isError"), f"{tool} failed: {text_of(result)}"
    return result


def structured(result) -> dict:
    return field(result, "structured_content", "structuredContent") or {}


@asynccontextmanager
async def stdio_session(home: str):
    # MSB_BIN also tells the SDK which binary supervises the sandboxes it starts.
    env = {"MSB_HOME": home, "MSB_BIN": msb_bin(), "MSB_LOG": "warn"}
    # Where the guest kernel and agent are, when the caller says (else under MSB_HOME/lib).
    env.update({k: os.environ[k] for k in ("MSB_KERNEL", "MSB_INITRAMFS") if k in os.environ})
    params = StdioServerParameters(command=msb_bin(), args=["mcp"], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


async def tool_names(session) -> set:
    listed = await session.list_tools()
    for tool in listed.tools:
        assert tool.description and len(tool.description) > 20, tool.name
        schema = field(tool, "input_schema", "inputSchema")
        assert schema.get("type") == "object", tool.name
    return {tool.name for tool in listed.tools}


def test_stdio_lists_every_tool(msb_home):
    async def run():
        async with stdio_session(msb_home) as session:
            assert await tool_names(session) == TOOLS
            missing = await session.call_tool("sandbox_exec", {"name": "no-such-sandbox", "cmd": ["/bin/true"]})
            assert field(missing, "is_error", "isError")
            assert structured(missing)["error"]["kind"] == "not_found", text_of(missing)
            assert text_of(missing).startswith("not_found: ")

    asyncio.run(run())


def test_stdio_one_sandbox_through_its_life(msb_home):
    source = os.environ.get("MSB_TEST_ROOTFS")
    if not source:
        pytest.skip("MSB_TEST_ROOTFS (a rootfs directory to copy and boot) is not set")
    name = f"mcp-test-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="msb-mcp-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        # Boot a copy: the guest writes to its root, and the original must stay pristine.
        subprocess.run(["cp", "-a", source, str(rootfs)], check=True)

        async def run():
            async with stdio_session(msb_home) as session:
                created = await call(session, "sandbox_create", name=name, rootfs=str(rootfs), memory_mib=256)
                assert structured(created)["name"] == name
                assert structured(created)["state"] == "running", structured(created)
                try:
                    out = structured(await call(session, "sandbox_exec", name=name, cmd=["/bin/echo", "hi"]))
                    assert (out["exit_code"], out["stdout"]) == (0, "hi\n"), out
                    out = structured(await call(session, "sandbox_shell", name=name, script="echo err >&2; exit 3"))
                    assert (out["exit_code"], out["success"], out["stderr"]) == (3, False, "err\n"), out

                    written = await call(
                        session, "sandbox_fs_write", name=name, path="/tmp/mcp/hello.txt", content="héllo\n"
                    )
                    assert structured(written)["bytes_written"] == len("héllo\n".encode())
                    read = await call(session, "sandbox_fs_read", name=name, path="/tmp/mcp/hello.txt")
                    assert text_of(read) == "héllo\n"
                    listed = structured(await call(session, "sandbox_fs_list", name=name, path="/tmp/mcp"))
                    assert [e["name"] for e in listed["entries"]] == ["hello.txt"], listed
                    stat = structured(await call(session, "sandbox_fs_stat", name=name, path="/tmp/mcp/hello.txt"))
                    assert stat["size"] == 7 and stat["kind"] == "file", stat
                    await call(
                        session, "sandbox_fs_write", name=name, path="/tmp/bin", content="AP8=", encoding="base64"
                    )
                    binary = await session.call_tool("sandbox_fs_read", {"name": name, "path": "/tmp/bin"})
                    assert field(binary, "is_error", "isError") and text_of(binary).startswith("invalid: ")
                    as_b64 = await call(session, "sandbox_fs_read", name=name, path="/tmp/bin", encoding="base64")
                    assert text_of(as_b64) == "AP8="

                    await call(session, "sandbox_fs_mkdir", name=name, path="/tmp/mcp/sub/dir")
                    await call(session, "sandbox_fs_remove", name=name, path="/tmp/mcp/sub", recursive=True)
                    gone = await session.call_tool("sandbox_fs_stat", {"name": name, "path": "/tmp/mcp/sub"})
                    assert structured(gone)["error"]["kind"] == "not_found", text_of(gone)

                    metrics = structured(await call(session, "sandbox_metrics", name=name))["metrics"]
                    assert metrics["memory_limit_bytes"] > 0, metrics
                    names = [s["name"] for s in structured(await call(session, "sandbox_list"))["sandboxes"]]
                    assert name in names
                    stopped = structured(await call(session, "sandbox_stop", name=name))
                    assert stopped["state"] == "stopped", stopped
                finally:
                    await session.call_tool("sandbox_remove", {"name": name, "force": True})
                names = [s["name"] for s in structured(await call(session, "sandbox_list"))["sandboxes"]]
                assert name not in names

        asyncio.run(run())


@pytest.fixture
def server(msb_home):
    """`msb serve` on a free loopback port: (base URL, token)."""
    proc = subprocess.Popen(
        [msb_bin(), "serve", "--listen", "127.0.0.1:0"],
        env={**os.environ, "MSB_HOME": msb_home, "MSB_BIN": msb_bin()},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://"), line
        token = (Path(msb_home) / "server" / "token").read_text().strip()
        yield line.removeprefix("listening on "), token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@asynccontextmanager
async def http_session(url: str, token: str):
    headers = {"Authorization": f"Bearer {token}"}
    try:  # mcp >= 2
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client
    except ImportError:  # mcp 1.x
        from mcp.client.streamable_http import streamablehttp_client

        async with streamablehttp_client(url, headers=headers) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session
        return
    async with create_mcp_http_client(headers=headers) as client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


def test_http_lists_every_tool_with_the_token(server):
    base, token = server

    async def run():
        async with http_session(f"{base}/mcp", token) as session:
            assert await tool_names(session) == TOOLS
            listed = await call(session, "volume_list")
            assert isinstance(structured(listed)["volumes"], list)

    asyncio.run(run())


def test_http_without_the_token_is_401(server):
    base, _ = server
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
    request = urllib.request.Request(
        f"{base}/mcp",
        data=body,
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
    )
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(request, timeout=10)
    assert failed.value.code == 401


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))
