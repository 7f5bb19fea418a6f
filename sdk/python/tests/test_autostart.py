"""The two-line path: no URL configured, so the SDK starts ``msb serve`` itself from
``$MSB_BIN``. Runs when ``MSB_TEST_AUTOSTART=1``; boots one sandbox from a copy of
``$MSB_TEST_ROOTFS`` (or the ``python`` image without it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from microsandbox import Sandbox, _client, _server

pytestmark = pytest.mark.autostart


def test_a_local_server_is_started_and_runs_a_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("MSB_SERVER_URL", "MSB_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_client, "_default", None)
    source = os.environ.get("MSB_TEST_ROOTFS")
    settings = {}
    if source:
        subprocess.run(["cp", "-a", source, str(tmp_path / "root")], check=True)
        settings = {"rootfs": str(tmp_path / "root")}
    with Sandbox.create(ephemeral=True, **settings) as sb:  # type: ignore[arg-type]
        assert sb.exec("/bin/echo", "hi").stdout == "hi\n"
    assert _server.is_loopback(sb.client.url)
    assert sb.name not in [info.name for info in Sandbox.list()]


def test_the_local_server_ends_with_the_process() -> None:
    program = "from microsandbox import Client, _server\nClient().health()\nprint(_server.local_server().process.pid)\n"
    env = {k: v for k, v in os.environ.items() if k not in ("MSB_SERVER_URL", "MSB_API_TOKEN")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(int(done.stdout), 0)
