"""Request bodies: the sandbox spec and the exec body, without a server."""

from __future__ import annotations

import inspect
import os

import pytest

from microsandbox import AsyncSandbox, Mount, Patch, Sandbox, Secret
from microsandbox._spec import exec_body, parse_port, sandbox_spec


def test_spec_defaults_to_the_python_image_and_sends_nothing_unset() -> None:
    assert sandbox_spec(name="n") == {"image": "python", "name": "n"}


def test_an_unnamed_sandbox_is_ephemeral_unless_asked_otherwise() -> None:
    assert sandbox_spec() == {"image": "python", "ephemeral": True}
    assert sandbox_spec(ephemeral=False) == {"image": "python"}
    assert sandbox_spec(name="kept") == {"image": "python", "name": "kept"}


def test_rootfs_is_made_absolute_and_excludes_image(tmp_path: object) -> None:
    assert sandbox_spec(rootfs="root", ephemeral=False) == {"rootfs": os.path.abspath("root")}
    with pytest.raises(ValueError):
        sandbox_spec(image="alpine", rootfs="/r")


def test_every_setting_maps_to_its_json_field() -> None:
    spec = sandbox_spec(
        image="alpine",
        name="web-1",
        cpus=2,
        memory_mib=1024,
        env={"A": "1"},
        workdir="/app",
        user="1000:1000",
        entrypoint="/bin/sh",
        command=["-c", "sleep 1"],
        hostname="h",
        shell="/bin/bash",
        scripts={"hello": "#!/bin/sh\necho hi\n"},
        volumes=["/data:/data:ro", "cache:/cache"],
        mounts=[Mount.tmpfs("/scratch", size_mib=64)],
        patches=[Patch.text("/etc/motd", "hi"), Patch.mkdir("/srv", mode=0o700)],
        ports={8080: 80},
        network={"enabled": True},
        no_network=True,
        secrets=[
            Secret("API_KEY", "s3cret", ["api.example.com"]),
            {"env": "B", "value": "v", "hosts": ["*"]},
        ],
        labels={"team": "x"},
        idle_timeout_secs=30,
        max_duration_secs=60,
        upper_size_mib=2048,
        ephemeral=True,
        replace=True,
        pull_policy="if-missing",
        extra={"stop_signal": "SIGINT"},
    )
    assert spec == {
        "image": "alpine",
        "name": "web-1",
        "cpus": 2,
        "memory_mib": 1024,
        "env": {"A": "1"},
        "workdir": "/app",
        "user": "1000:1000",
        "entrypoint": ["/bin/sh"],
        "command": ["-c", "sleep 1"],
        "hostname": "h",
        "shell": "/bin/bash",
        "scripts": {"hello": "#!/bin/sh\necho hi\n"},
        "mounts": [
            {"Bind": {"host": "/data", "guest": "/data", "readonly": True}},
            {"Volume": {"name": "cache", "guest": "/cache", "readonly": False}},
            {
                "Tmpfs": {
                    "guest": "/scratch",
                    "size_mib": 64,
                    "mode": None,
                    "noexec": False,
                    "readonly": False,
                }
            },
        ],
        "patches": [
            {"Text": {"path": "/etc/motd", "content": "hi", "mode": None, "replace": False}},
            {"Mkdir": {"path": "/srv", "mode": 0o700}},
        ],
        "ports": [{"host": 8080, "guest": 80, "protocol": "tcp"}],
        "network": {"enabled": True},
        "no_network": True,
        "secrets": [
            {"env": "API_KEY", "value": "s3cret", "hosts": ["api.example.com"]},
            {"env": "B", "value": "v", "hosts": ["*"]},
        ],
        "labels": {"team": "x"},
        "idle_timeout_secs": 30,
        "max_duration_secs": 60,
        "upper_size_mib": 2048,
        "ephemeral": True,
        "replace": True,
        "pull_policy": "if_missing",
        "stop_signal": "SIGINT",
    }


def test_bad_pull_policy_is_refused_before_sending() -> None:
    with pytest.raises(ValueError):
        sandbox_spec(pull_policy="sometimes")


def test_ports_and_volumes_parse_their_short_forms() -> None:
    assert parse_port("5353:53/udp") == {"host": 5353, "guest": 53, "protocol": "udp"}
    assert parse_port("0.0.0.0:80:8080") == {"host": 80, "guest": 8080, "protocol": "tcp", "host_ip": "0.0.0.0"}
    assert parse_port("[::1]:80:8080/tcp")["host_ip"] == "::1"
    assert sandbox_spec(ports=["1:2", {"host": 3, "guest": 4, "protocol": "tcp"}])["ports"] == [
        {"host": 1, "guest": 2, "protocol": "tcp"},
        {"host": 3, "guest": 4, "protocol": "tcp"},
    ]
    for bad in ("80", "a:b", "1:2/sctp"):
        with pytest.raises(ValueError):
            parse_port(bad)
    assert Mount.parse("./d:/g")["Bind"]["host"] == os.path.abspath("d")
    assert Mount.parse("vol:/g:rw") == {"Volume": {"name": "vol", "guest": "/g", "readonly": False}}
    for bad in ("/only", "a:b:c:d", ":/g"):
        with pytest.raises(ValueError):
            Mount.parse(bad)


def test_patch_and_mount_helpers_use_the_serde_shape() -> None:
    assert Patch.file("/b", b"\x00\xff", mode=0o600) == {
        "File": {"path": "/b", "content": [0, 255], "mode": 0o600, "replace": False}
    }
    assert Patch.symlink("/t", "/l") == {"Symlink": {"target": "/t", "link": "/l", "replace": False}}
    assert Patch.remove("/x") == {"Remove": {"path": "/x"}}
    assert Patch.append("/x", "y") == {"Append": {"path": "/x", "content": "y"}}
    assert Patch.copy_dir("/src", "/dst") == {"CopyDir": {"src": "/src", "dst": "/dst", "replace": False}}
    assert Patch.copy_file("/s", "/d")["CopyFile"]["src"] == "/s"
    assert Mount.disk("/d.qcow2", "/mnt", readonly=True) == {
        "Disk": {"image": "/d.qcow2", "guest": "/mnt", "readonly": True}
    }


def test_exec_body_takes_a_command_as_arguments_or_one_list() -> None:
    assert exec_body("python3", ("-c", "print(1)")) == {"cmd": ["python3", "-c", "print(1)"]}
    assert exec_body(["ls", "-l"]) == {"cmd": ["ls", "-l"]}
    with pytest.raises(TypeError):
        exec_body(["ls"], ("-l",))
    with pytest.raises(ValueError):
        exec_body([])
    assert exec_body(shell="echo hi | wc -c") == {"shell": "echo hi | wc -c"}


def test_exec_body_options() -> None:
    body = exec_body("cat", env={"K": "V"}, workdir="/w", user="nobody", stdin=b"in\xc3\xa9", timeout=1.2)
    assert body == {
        "cmd": ["cat"],
        "env": {"K": "V"},
        "workdir": "/w",
        "user": "nobody",
        "stdin": "iné",
        "timeout_secs": 2,
    }
    with pytest.raises(ValueError):
        exec_body("true", timeout=0)


@pytest.mark.parametrize("create", [Sandbox.create, AsyncSandbox.create])
def test_create_takes_exactly_the_spec_settings_and_a_client(create: object) -> None:
    settings = list(inspect.signature(sandbox_spec).parameters)
    params = list(inspect.signature(create).parameters)  # type: ignore[arg-type]
    assert params == ["image", "rootfs", *[p for p in settings if p not in ("image", "rootfs")], "client"]
