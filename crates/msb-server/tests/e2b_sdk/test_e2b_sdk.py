"""The E2B Python SDK, unchanged, against ``msb serve --e2b-listen``: sandboxes, commands,
files, lifecycle and errors, as E2B's own documentation uses them."""

from __future__ import annotations

import hashlib
import io
import os
import time
from datetime import datetime, timezone
from typing import Any, List

import pytest
from conftest import LIFETIME, RUN, image_ref, metadata, page_items
from e2b import (
    AuthenticationException,
    CommandExitException,
    NotFoundException,
    Sandbox,
    SandboxException,
    TimeoutException,
)

BIG = 50 * 1024 * 1024


def pids(sbx: Any) -> List[int]:
    """The pids of the sandbox's running commands."""
    return [p.pid for p in sbx.commands.list()]


def wait_gone(sbx: Any, pid: int, within: float = 30.0) -> None:
    """Waits until ``pid`` is no longer among the sandbox's commands."""
    deadline = time.monotonic() + within
    while pid in pids(sbx):
        assert time.monotonic() < deadline, f"pid {pid} still listed after {within} s"
        time.sleep(0.2)


# Commands.


def test_run_echo(shared: Any) -> None:
    result = shared.commands.run("echo hi")
    assert (result.stdout, result.stderr, result.exit_code) == ("hi\n", "", 0)


def test_output_callbacks(shared: Any) -> None:
    out: List[str] = []
    err: List[str] = []
    result = shared.commands.run("echo one; echo two >&2", on_stdout=out.append, on_stderr=err.append)
    assert "".join(out) == "one\n" == result.stdout
    assert "".join(err) == "two\n" == result.stderr


def test_failing_command_raises(shared: Any) -> None:
    with pytest.raises(CommandExitException) as caught:
        shared.commands.run("echo partial; echo broken >&2; exit 3")
    assert caught.value.exit_code == 3
    assert "broken" in caught.value.stderr
    assert caught.value.stdout == "partial\n"


def test_envs_and_cwd(shared: Any) -> None:
    result = shared.commands.run("echo $GREETING-$SHARED_ENV; pwd", envs={"GREETING": "hello"}, cwd="/tmp")
    assert result.stdout == "hello-from-create\n/tmp\n"


def test_command_timeout(shared: Any) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutException):
        shared.commands.run("sleep 30", timeout=2)
    assert time.monotonic() - started < 20


def test_background_command_listed_and_killed(shared: Any) -> None:
    handle = shared.commands.run("sleep 600", background=True)
    assert handle.pid > 0
    listed = {p.pid: p for p in shared.commands.list()}
    assert handle.pid in listed
    assert "sleep 600" in " ".join([listed[handle.pid].cmd, *listed[handle.pid].args])
    assert shared.commands.kill(handle.pid) is True
    with pytest.raises(CommandExitException) as caught:
        handle.wait()
    assert caught.value.exit_code != 0
    wait_gone(shared, handle.pid)


def test_handle_kill(shared: Any) -> None:
    handle = shared.commands.run("sleep 600", background=True)
    assert handle.kill() is True
    with pytest.raises(CommandExitException):
        handle.wait()
    wait_gone(shared, handle.pid)


def test_kill_unknown_pid_is_false(shared: Any) -> None:
    assert shared.commands.kill(999_999) is False


def test_background_output_and_wait(shared: Any) -> None:
    handle = shared.commands.run("sleep 1; echo late", background=True)
    assert handle.wait().stdout == "late\n"


def test_stdin(shared: Any) -> None:
    handle = shared.commands.run("cat", background=True, stdin=True)
    shared.commands.send_stdin(handle.pid, "line one\n")
    handle.send_stdin("line two\n")
    shared.commands.close_stdin(handle.pid)
    assert handle.wait().stdout == "line one\nline two\n"


# Files.


def test_text_write_read(shared: Any) -> None:
    info = shared.files.write("/tmp/e2b-text/hello.txt", "hello, e2b\n")
    assert info.path == "/tmp/e2b-text/hello.txt" and info.name == "hello.txt"
    assert shared.files.read("/tmp/e2b-text/hello.txt") == "hello, e2b\n"
    assert shared.commands.run("cat /tmp/e2b-text/hello.txt").stdout == "hello, e2b\n"


def test_big_binary_round_trip(shared: Any) -> None:
    data = os.urandom(BIG)
    digest = hashlib.sha256(data).hexdigest()
    shared.files.write("/tmp/big.bin", data)
    assert shared.commands.run("sha256sum /tmp/big.bin", timeout=300).stdout.split()[0] == digest
    back = shared.files.read("/tmp/big.bin", format="bytes", request_timeout=600)
    assert len(back) == BIG
    assert hashlib.sha256(bytes(back)).hexdigest() == digest
    shared.files.remove("/tmp/big.bin")


def test_file_object_upload(shared: Any) -> None:
    """A file-like object goes up as ``application/octet-stream`` on SDKs that know it."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    shared.files.write("/tmp/stream.bin", io.BytesIO(data))
    assert bytes(shared.files.read("/tmp/stream.bin", format="bytes")) == data


def test_directory_operations(shared: Any) -> None:
    from e2b import FileType

    base = "/tmp/e2b-dirs"
    assert shared.files.make_dir(f"{base}/a/b") is True
    assert shared.files.make_dir(f"{base}/a/b") is False
    assert shared.files.exists(f"{base}/a/b")
    shared.files.write(f"{base}/a/file.txt", "12345")
    entries = {e.name: e for e in shared.files.list(f"{base}/a")}
    assert set(entries) == {"b", "file.txt"}
    assert entries["b"].type == FileType.DIR and entries["file.txt"].type == FileType.FILE
    assert entries["file.txt"].path == f"{base}/a/file.txt"
    info = shared.files.get_info(f"{base}/a/file.txt")
    assert (info.name, info.type, info.size) == ("file.txt", FileType.FILE, 5)
    assert shared.files.get_info(f"{base}/a").type == FileType.DIR
    renamed = shared.files.rename(f"{base}/a/file.txt", f"{base}/renamed.txt")
    assert renamed.path == f"{base}/renamed.txt"
    assert not shared.files.exists(f"{base}/a/file.txt")
    assert shared.files.read(f"{base}/renamed.txt") == "12345"
    shared.files.remove(f"{base}/renamed.txt")
    assert not shared.files.exists(f"{base}/renamed.txt")
    shared.files.remove(base)
    assert not shared.files.exists(base)


def test_list_depth(shared: Any) -> None:
    shared.files.write("/tmp/e2b-depth/x/y/z.txt", "z")
    shallow = {e.path for e in shared.files.list("/tmp/e2b-depth")}
    deep = {e.path for e in shared.files.list("/tmp/e2b-depth", depth=3)}
    assert shallow == {"/tmp/e2b-depth/x"}
    assert {"/tmp/e2b-depth/x", "/tmp/e2b-depth/x/y", "/tmp/e2b-depth/x/y/z.txt"} <= deep


def test_user_and_relative_paths(shared: Any) -> None:
    """``user=`` names the user; relative paths start at that user's home (root's here)."""
    assert shared.commands.run("id -u", user="root").stdout == "0\n"
    shared.files.write("e2b-relative.txt", "relative", user="root")
    assert shared.files.read("/root/e2b-relative.txt") == "relative"
    assert shared.files.read("e2b-relative.txt", user="root") == "relative"


def test_missing_file_not_found(shared: Any) -> None:
    with pytest.raises(NotFoundException):
        shared.files.read("/no/such/file")
    with pytest.raises(NotFoundException):
        shared.files.get_info("/no/such/file")
    assert shared.files.exists("/no/such/file") is False


# The sandbox itself.


def test_get_info_and_set_timeout(shared: Any) -> None:
    info = shared.get_info()
    assert info.sandbox_id == shared.sandbox_id
    assert info.metadata == metadata("shared")
    assert str(getattr(info.state, "value", info.state)) == "running"
    shared.set_timeout(LIFETIME + 600)
    end = shared.get_info().end_at
    end = end if end.tzinfo else end.replace(tzinfo=timezone.utc)
    left = (end - datetime.now(timezone.utc)).total_seconds()
    assert LIFETIME + 600 - 120 < left <= LIFETIME + 600 + 120


def test_list_shows_sandbox_and_metadata(shared: Any) -> None:
    from e2b import SandboxQuery

    listed = {s.sandbox_id: s for s in page_items(Sandbox.list())}
    assert shared.sandbox_id in listed
    assert listed[shared.sandbox_id].metadata == metadata("shared")
    filtered = page_items(Sandbox.list(query=SandboxQuery(metadata=metadata("shared"))))
    assert [s.sandbox_id for s in filtered] == [shared.sandbox_id]
    assert page_items(Sandbox.list(query=SandboxQuery(metadata={"run": "no-such-run"}))) == []


def test_connect_to_running_sandbox(shared: Any) -> None:
    shared.files.write("/tmp/e2b-connect.txt", "seen")
    other = Sandbox.connect(shared.sandbox_id)
    assert other.sandbox_id == shared.sandbox_id
    assert other.commands.run("cat /tmp/e2b-connect.txt").stdout == "seen"
    assert other.is_running()


def test_create_from_image_reference_then_kill() -> None:
    """A template id that is no alias is an image reference; a killed sandbox is gone."""
    sbx = Sandbox.create(template=image_ref(), timeout=LIFETIME, metadata=metadata("own"))
    try:
        assert sbx.commands.run("echo from-ref").stdout == "from-ref\n"
        assert sbx.commands.run("cat /proc/1/comm").exit_code == 0
    finally:
        assert sbx.kill() is True
    with pytest.raises(NotFoundException):
        Sandbox.get_info(sbx.sandbox_id)
    with pytest.raises(NotFoundException):
        Sandbox.connect(sbx.sandbox_id)
    assert Sandbox.kill(sbx.sandbox_id) is False
    assert sbx.sandbox_id not in {s.sandbox_id for s in page_items(Sandbox.list())}


def test_timeout_kills_sandbox() -> None:
    """A sandbox whose timeout passes is killed (here: shortened by ``set_timeout``)."""
    sbx = Sandbox.create(timeout=LIFETIME, metadata=metadata("own"))
    try:
        sbx.set_timeout(2)
        deadline = time.monotonic() + 60
        while sbx.is_running():
            assert time.monotonic() < deadline, "the sandbox outlived its timeout by a minute"
            time.sleep(0.5)
        with pytest.raises(NotFoundException):
            sbx.get_info()
    finally:
        Sandbox.kill(sbx.sandbox_id)


# Errors.


def test_wrong_api_key() -> None:
    """A key of E2B's format that is not the server's token: refused by the server."""
    wrong = "e2b_" + "0" * 40
    with pytest.raises(AuthenticationException):
        Sandbox.create(api_key=wrong)
    with pytest.raises(AuthenticationException):
        page_items(Sandbox.list(api_key=wrong))


def test_unknown_sandbox() -> None:
    with pytest.raises(NotFoundException):
        Sandbox.get_info("nosuchsandbox0000")
    with pytest.raises(NotFoundException):
        Sandbox.connect("nosuchsandbox0000")
    with pytest.raises(NotFoundException):
        Sandbox.set_timeout("nosuchsandbox0000", 60)
    assert Sandbox.kill("nosuchsandbox0000") is False


def test_a_paused_sandbox_resumes_where_it_stood() -> None:
    """``pause()`` saves the sandbox whole; ``connect()`` resumes it, processes and files
    as they were; a paused sandbox is listed as such and can be killed."""
    from e2b import SandboxQuery, SandboxState

    sbx = Sandbox.create(timeout=LIFETIME, metadata=metadata("paused"))
    try:
        sbx.commands.run("echo kept > /tmp/state")
        sbx.commands.run("sleep 600", background=True)
        assert sbx.pause() is True
        assert Sandbox.get_info(sbx.sandbox_id).state == SandboxState.PAUSED
        listed = page_items(Sandbox.list(query=SandboxQuery(state=[SandboxState.PAUSED])))
        assert sbx.sandbox_id in {s.sandbox_id for s in listed}
        running = page_items(Sandbox.list(query=SandboxQuery(state=[SandboxState.RUNNING])))
        assert sbx.sandbox_id not in {s.sandbox_id for s in running}
        assert Sandbox.pause(sbx.sandbox_id) is False, "pausing a paused sandbox"
        resumed = Sandbox.connect(sbx.sandbox_id, timeout=LIFETIME)
        assert resumed.sandbox_id == sbx.sandbox_id
        assert resumed.commands.run("cat /tmp/state").stdout == "kept\n"
        assert "sleep 600" in resumed.commands.run("ps").stdout
        assert Sandbox.get_info(sbx.sandbox_id).state == SandboxState.RUNNING
        assert resumed.pause() is True
    finally:
        Sandbox.kill(sbx.sandbox_id)
    with pytest.raises(NotFoundException):
        Sandbox.connect(sbx.sandbox_id)


def test_fork_makes_copies_that_go_on_from_where_it_stands() -> None:
    if not hasattr(Sandbox, "fork"):
        pytest.skip("this e2b version has no fork")
    sbx = Sandbox.create(timeout=LIFETIME, metadata=metadata("forked"))
    copies: List[Any] = []
    try:
        sbx.commands.run("echo original > /tmp/state")
        copies = sbx.fork(count=2, timeout=LIFETIME)
        assert len(copies) == 2 and all(isinstance(c, Sandbox) for c in copies), copies
        ids = {c.sandbox_id for c in copies}
        assert len(ids) == 2 and sbx.sandbox_id not in ids
        for copy in copies:
            assert copy.commands.run("cat /tmp/state").stdout == "original\n"
            assert Sandbox.get_info(copy.sandbox_id).metadata == metadata("forked")
        copies[0].commands.run("echo changed > /tmp/state")
        assert copies[1].commands.run("cat /tmp/state").stdout == "original\n"
        assert sbx.commands.run("cat /tmp/state").stdout == "original\n"
    finally:
        for copy in copies:
            if isinstance(copy, Sandbox):
                copy.kill()
        sbx.kill()


def test_pty_is_unsupported(shared: Any) -> None:
    from e2b import PtySize

    with pytest.raises(SandboxException) as caught:
        shared.pty.create(PtySize(rows=24, cols=80))
    assert "pty" in str(caught.value).lower()


def test_watch_dir_is_unsupported(shared: Any) -> None:
    with pytest.raises(SandboxException) as caught:
        shared.files.watch_dir("/tmp")
    assert "watch" in str(caught.value).lower()


def test_a_sandbox_of_msbs_own_api_is_no_e2b_sandbox() -> None:
    """A sandbox made through msb's REST API (running, booted) does not exist for the E2B
    listener: not for its control plane, nor for envd, even with a valid access token."""
    import hmac

    import httpx

    url, token = os.environ.get("MSB_TEST_SERVER_URL"), os.environ["MSB_TEST_SERVER_TOKEN"]
    if not url:
        pytest.skip("needs MSB_TEST_SERVER_URL (msb serve's own API)")
    auth = {"Authorization": f"Bearer {token}"}
    name = f"rest-{RUN}"
    created = httpx.post(f"{url}/v1/sandboxes", json={"name": name, "image": image_ref()}, headers=auth, timeout=600)
    assert created.status_code == 201, created.text
    try:
        assert httpx.post(f"{url}/v1/sandboxes/{name}/exec", json={"cmd": ["true"]}, headers=auth, timeout=120).is_success
        with pytest.raises(NotFoundException):
            Sandbox.get_info(name)
        with pytest.raises(NotFoundException):
            Sandbox.connect(name)
        assert Sandbox.kill(name) is False
        assert name not in {s.sandbox_id for s in page_items(Sandbox.list())}
        access = hmac.new(token.encode(), b"e2b envd access token\0" + name.encode(), hashlib.sha256).hexdigest()
        stat = httpx.post(
            f"{os.environ['MSB_TEST_E2B_URL']}/filesystem.Filesystem/Stat",
            json={"path": "/"},
            headers={"E2b-Sandbox-Id": name, "X-Access-Token": access},
        )
        assert (stat.status_code, stat.json().get("message")) == (503, f"sandbox {name} was not found")
    finally:
        httpx.delete(f"{url}/v1/sandboxes/{name}?force=true", headers=auth, timeout=120)


def test_no_sandbox_of_this_run_is_left() -> None:
    """Runs last (files run in name order): of this run's sandboxes, only the shared one
    remains."""
    ours = [s for s in page_items(Sandbox.list()) if s.metadata.get("run") == RUN]
    left = [s.sandbox_id for s in ours if s.metadata.get("role") != "shared"]
    assert left == []
