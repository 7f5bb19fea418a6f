"""Fixtures of clients on the fake server, and the gates of the tests that need a real one."""

from __future__ import annotations

import os
from typing import Any, Iterator

import pytest
from fakes import FakeServer

from microsandbox import AsyncClient, Client

SERVER_ENV = ("MSB_TEST_SERVER_URL", "MSB_TEST_SERVER_TOKEN", "MSB_TEST_ROOTFS")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skips server tests without a server (fails them when ``MSB_REQUIRE_SERVER=1``)."""
    if item.get_closest_marker("server"):
        missing = [name for name in SERVER_ENV if not os.environ.get(name)]
        if missing:
            why = f"needs a running msb serve: set {', '.join(missing)}"
            if os.environ.get("MSB_REQUIRE_SERVER") == "1":
                pytest.fail(f"MSB_REQUIRE_SERVER=1 but {why}", pytrace=False)
            pytest.skip(why)
    if item.get_closest_marker("autostart"):
        if not (os.environ.get("MSB_BIN") and os.environ.get("MSB_TEST_AUTOSTART") == "1"):
            pytest.skip("needs MSB_BIN and MSB_TEST_AUTOSTART=1")


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
def client(fake: FakeServer) -> Iterator[Client]:
    with Client("http://msb.test", token="t0k", transport=fake.transport()) as c:
        yield c


@pytest.fixture
async def aclient(fake: FakeServer) -> Any:
    async with AsyncClient("http://msb.test", token="t0k", transport=fake.transport()) as c:
        yield c
