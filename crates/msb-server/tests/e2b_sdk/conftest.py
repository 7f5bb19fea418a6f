"""Real, unchanged E2B programs (the stock ``e2b`` package from PyPI) against ``msb serve``'s
E2B-compatible listener.

Set ``MSB_TEST_E2B_URL`` (the ``e2b listening on`` URL) and ``MSB_TEST_SERVER_TOKEN`` (the
server's token, whose E2B form is the API key); the suite points the SDK at them the way a user
would, through ``E2B_API_URL``, ``E2B_SANDBOX_URL`` and ``E2B_API_KEY``. ``MSB_TEST_REGISTRY``
(``HOST:PORT`` of the fixture registry) names the image of the tests that pass a template
explicitly; the server maps the default template ``base`` to the same busybox image.

Without them every test is skipped, or failed when ``MSB_REQUIRE_SERVER=1``. Each VM boot
costs seconds under emulation, so the tests that leave their sandbox running share one.
"""

from __future__ import annotations

import importlib.metadata
import os
import uuid
from typing import Any, Dict, Iterator, List

import pytest
from packaging.version import Version

NEEDED = ("MSB_TEST_E2B_URL", "MSB_TEST_SERVER_TOKEN")

#: The installed SDK's version: the suite runs against the current and an older release.
E2B_VERSION = Version(importlib.metadata.version("e2b"))

#: Every sandbox of this run carries it in its metadata, so leftovers can be found.
RUN = f"pytest-{uuid.uuid4().hex[:8]}"

#: Seconds a test sandbox may live: generous, VMs run under emulation here.
LIFETIME = 1800


def _point_sdk_at_server() -> None:
    """Sets the three variables an E2B user sets to switch to msb (before any SDK call).

    The key is the token in E2B's form (``e2b_`` in place of ``msbt_``), which every
    release accepts: some check the format before sending it.
    """
    url, token = os.environ.get("MSB_TEST_E2B_URL"), os.environ.get("MSB_TEST_SERVER_TOKEN")
    if url and token:
        os.environ["E2B_API_URL"] = url
        os.environ["E2B_SANDBOX_URL"] = url
        os.environ["E2B_API_KEY"] = "e2b_" + token.removeprefix("msbt_")


_point_sdk_at_server()


def _missing_or_fail(why: str) -> None:
    """Skips with ``why``, or fails when ``MSB_REQUIRE_SERVER=1``."""
    if os.environ.get("MSB_REQUIRE_SERVER") == "1":
        pytest.fail(f"MSB_REQUIRE_SERVER=1 but {why}", pytrace=False)
    pytest.skip(why)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Every test here needs the E2B listener."""
    missing = [name for name in NEEDED if not os.environ.get(name)]
    if missing:
        _missing_or_fail(f"needs msb serve's E2B listener: set {', '.join(missing)}")


def pytest_report_header(config: pytest.Config) -> str:
    return f"e2b SDK {E2B_VERSION}, run {RUN}"


def image_ref() -> str:
    """The fixture registry's busybox, as a template id that is not an alias."""
    registry = os.environ.get("MSB_TEST_REGISTRY")
    if not registry:
        _missing_or_fail("needs MSB_TEST_REGISTRY (the fixture registry's HOST:PORT)")
    return f"{registry}/msb-test/busybox:latest"


def metadata(role: str) -> Dict[str, str]:
    """The metadata every sandbox of this run is created with."""
    return {"run": RUN, "role": role}


def page_items(listed: Any) -> List[Any]:
    """Every sandbox of a ``Sandbox.list()`` answer: a paginator in 2.x (walked to its
    end), a plain list in older releases."""
    if not hasattr(listed, "next_items"):
        return list(listed)
    items: List[Any] = []
    while listed.has_next:
        items.extend(listed.next_items())
    return items


async def apage_items(listed: Any) -> List[Any]:
    """``page_items`` for ``AsyncSandbox.list()``."""
    if not hasattr(listed, "next_items"):
        return list(await listed if hasattr(listed, "__await__") else listed)
    items: List[Any] = []
    while listed.has_next:
        items.extend(await listed.next_items())
    return items


@pytest.fixture(scope="session")
def shared() -> Iterator[Any]:
    """One sandbox of the default template (``base``) for every test that leaves it
    running; killed at the end of the session."""
    from e2b import Sandbox

    sbx = Sandbox.create(timeout=LIFETIME, metadata=metadata("shared"), envs={"SHARED_ENV": "from-create"})
    try:
        yield sbx
    finally:
        sbx.kill()
