"""``AsyncSandbox``, the E2B SDK's asyncio flavour, against ``msb serve --e2b-listen``."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from conftest import LIFETIME, apage_items, metadata
from e2b import AsyncSandbox, CommandExitException, NotFoundException


async def test_async_lifecycle() -> None:
    """Create (default template), commands, files, a background command, kill."""
    sbx = await AsyncSandbox.create(timeout=LIFETIME, metadata=metadata("own"))
    try:
        result = await sbx.commands.run("echo async")
        assert (result.stdout, result.exit_code) == ("async\n", 0)
        with pytest.raises(CommandExitException) as caught:
            await sbx.commands.run("echo nope >&2; exit 7")
        assert caught.value.exit_code == 7 and "nope" in caught.value.stderr

        data = os.urandom(1024 * 1024)
        await sbx.files.write("/tmp/async.bin", data)
        back = await sbx.files.read("/tmp/async.bin", format="bytes")
        assert hashlib.sha256(bytes(back)).digest() == hashlib.sha256(data).digest()
        assert "async.bin" in [e.name for e in await sbx.files.list("/tmp")]

        handle = await sbx.commands.run("sleep 600", background=True)
        assert handle.pid in [p.pid for p in await sbx.commands.list()]
        assert await handle.kill() is True
        with pytest.raises(CommandExitException):
            await handle.wait()
    finally:
        assert await sbx.kill() is True
    with pytest.raises(NotFoundException):
        await AsyncSandbox.get_info(sbx.sandbox_id)


async def test_async_connect_and_list(shared: Any) -> None:
    """Connects to the shared sandbox (made by the sync SDK) and finds it in the list."""
    sbx = await AsyncSandbox.connect(shared.sandbox_id)
    assert (await sbx.commands.run("echo $SHARED_ENV")).stdout == "from-create\n"
    info = await sbx.get_info()
    assert info.metadata == metadata("shared")
    listed = {s.sandbox_id: s for s in await apage_items(AsyncSandbox.list())}
    assert listed[shared.sandbox_id].metadata == metadata("shared")
