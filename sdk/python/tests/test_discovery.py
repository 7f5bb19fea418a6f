"""Finding the server: arguments, environment, and a local ``msb serve`` started on demand
(here a fake ``msb`` script that prints the ``listening on`` line)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from microsandbox import Client, ServerStartError, _server
from microsandbox._server import LocalServer, find_msb, parse_listening_line, resolve


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No server settings from the machine; ``MSB_HOME`` is a temporary directory."""
    for name in ("MSB_SERVER_URL", "MSB_API_TOKEN", "MSB_BIN"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("MSB_HOME", str(home))
    monkeypatch.setattr(_server, "_local", None)
    return home


def write_token(home: Path, token: str) -> None:
    (home / "server").mkdir(parents=True, exist_ok=True)
    (home / "server" / "token").write_text(token + "\n")


def fake_msb(tmp_path: Path, script: str) -> str:
    """An executable ``msb`` that runs ``script`` (sh) whatever its arguments."""
    path = tmp_path / "msb"
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.parametrize(
    "line,url",
    [
        ("listening on http://127.0.0.1:43817\n", "http://127.0.0.1:43817"),
        ("listening on https://[::1]:5555 (tls)", "https://[::1]:5555"),
    ],
)
def test_the_listening_line_gives_the_url(line: str, url: str) -> None:
    assert parse_listening_line(line) == url


@pytest.mark.parametrize(
    "line", ["", "token: abc", "listening on", "listening on 127.0.0.1:5555", "listening on http://"]
)
def test_other_lines_are_refused(line: str) -> None:
    with pytest.raises(ServerStartError):
        parse_listening_line(line)


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSB_SERVER_URL", "http://env:1")
    monkeypatch.setenv("MSB_API_TOKEN", "env-token")
    assert resolve("http://arg:2", "arg-token") == ("http://arg:2", "arg-token")
    assert resolve(None, None) == ("http://env:1", "env-token")


def test_a_loopback_url_without_token_uses_the_token_file(clean_env: Path) -> None:
    write_token(clean_env, "from-file")
    assert resolve("http://127.0.0.1:5555", None) == ("http://127.0.0.1:5555", "from-file")
    assert resolve("https://sandboxes.example.com", None) == ("https://sandboxes.example.com", None)


def test_the_client_sends_the_environment_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSB_SERVER_URL", "http://msb.test")
    monkeypatch.setenv("MSB_API_TOKEN", "env-token")
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"status": "ok"})

    with Client(transport=httpx.MockTransport(handler)) as client:
        assert client.url == "http://msb.test"
        client.health()
    assert seen == ["Bearer env-token"]


def test_the_binary_comes_from_msb_bin_then_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MSB_BIN", "/opt/msb")
    assert find_msb() == "/opt/msb"
    monkeypatch.delenv("MSB_BIN")
    on_path = fake_msb(tmp_path, "exit 0\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_msb() == on_path
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    with pytest.raises(ServerStartError):
        find_msb()


def test_a_local_server_is_started_read_and_terminated(tmp_path: Path, clean_env: Path) -> None:
    write_token(clean_env, "local-token")
    args = tmp_path / "args"
    binary = fake_msb(
        tmp_path,
        f"""\
        echo "$@" > {args}
        echo "starting"
        echo "listening on http://127.0.0.1:45678"
        echo "more output after the first line"
        exec sleep 60
        """,
    )
    server = LocalServer.start(binary, clean_env)
    try:
        assert (server.url, server.token) == ("http://127.0.0.1:45678", "local-token")
        assert args.read_text().split() == ["serve", "--listen", "127.0.0.1:0"]
        assert server.process.poll() is None
    finally:
        server.stop()
    assert server.process.poll() is not None


def test_a_server_that_fails_says_why(tmp_path: Path, clean_env: Path) -> None:
    binary = fake_msb(tmp_path, "echo 'error: no kernel found' >&2\nexit 3\n")
    with pytest.raises(ServerStartError) as caught:
        LocalServer.start(binary, clean_env)
    assert "exited (3)" in caught.value.message and "no kernel found" in caught.value.message


def test_a_server_that_never_listens_times_out(tmp_path: Path, clean_env: Path) -> None:
    binary = fake_msb(tmp_path, "echo 'listening soon'\nexec sleep 60\n")
    with pytest.raises(ServerStartError) as caught:
        LocalServer.start(binary, clean_env, startup_timeout=0.5)
    assert "in time" in caught.value.message


def test_a_missing_binary_is_a_server_start_error(clean_env: Path, tmp_path: Path) -> None:
    with pytest.raises(ServerStartError):
        LocalServer.start(str(tmp_path / "no-such-msb"), clean_env)


def test_without_a_url_the_client_starts_one_shared_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clean_env: Path
) -> None:
    write_token(clean_env, "shared-token")
    monkeypatch.setenv("MSB_BIN", fake_msb(tmp_path, "echo 'listening on http://127.0.0.1:45679'\nexec sleep 60\n"))
    first, second = Client(), Client()
    try:
        assert first.url == second.url == "http://127.0.0.1:45679"
        assert first._connection.headers["Authorization"] == "Bearer shared-token"
        assert _server._local is not None and _server._local.process.poll() is None
    finally:
        first.close()
        second.close()
        assert _server._local is not None
        _server._local.stop()


def test_the_local_server_ends_with_the_python_process(tmp_path: Path, clean_env: Path) -> None:
    binary = fake_msb(tmp_path, "echo 'listening on http://127.0.0.1:45680'\nexec sleep 60\n")
    program = "from microsandbox import _server\nprint(_server.local_server().process.pid, flush=True)\n"
    env = dict(os.environ, MSB_BIN=binary, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
