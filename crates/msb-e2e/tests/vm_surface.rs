//! The reference's exec options and guest details: stdin, timeouts, rlimits, scripts on
//! PATH, the sandbox's shell, config.json defaults, /tmp and /etc on image roots.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use microsandbox::{ExecOptions, Microsandbox, MicrosandboxError, RlimitResource};
use msb_e2e::{image_world, vm_available, Sandbox as World};
use std::time::{Duration, Instant};

#[tokio::test]
async fn exec_options_do_what_they_say() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let msb = Microsandbox::at(w.home());
    let sb = msb
        .builder("opts")
        .rootfs(&w.rootfs)
        .rlimit(RlimitResource::Nofile, 256)
        .script("hello", "#!/bin/sh\necho hello from a script \"$@\"\n")
        .shell("/bin/ash")
        .create()
        .await
        .unwrap();
    // A program that reads stdin gets end of file, instead of hanging.
    let started = Instant::now();
    let out = sb.exec("cat", Vec::<String>::new()).await.unwrap();
    assert!(out.success() && out.stdout.is_empty());
    assert!(started.elapsed() < Duration::from_secs(10));
    // Bytes on stdin.
    let out = sb
        .exec_with("wc", ["-c"], ExecOptions::new().stdin_bytes(vec![b'x'; 100_000]))
        .await
        .unwrap();
    assert_eq!(out.stdout_text().trim(), "100000");
    // A timeout kills and says so, about when it should.
    let started = Instant::now();
    match sb
        .exec_with("sleep", ["100"], ExecOptions::new().timeout(Duration::from_secs(2)))
        .await
    {
        Err(MicrosandboxError::ExecTimeout(d)) => assert_eq!(d, Duration::from_secs(2)),
        other => panic!("{other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Limits: the sandbox's, and one per exec over it.
    assert_eq!(sb.shell("ulimit -n").await.unwrap().stdout_text(), "256\n");
    let opts = ExecOptions::new()
        .rlimit(RlimitResource::Nofile, 64)
        .rlimit_range(RlimitResource::Nproc, 40, 50);
    let out = sb
        .exec_with("sh", ["-c", "ulimit -n; ulimit -u; ulimit -H -u"], opts)
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "64\n40\n50\n");
    // The script is on PATH; `shell` runs the sandbox's shell.
    assert_eq!(
        sb.exec("hello", ["there"]).await.unwrap().stdout_text(),
        "hello from a script there\n"
    );
    assert_eq!(sb.shell_program(), "/bin/ash");
    assert_eq!(sb.shell("echo $0").await.unwrap().stdout_text(), "/bin/ash\n");
    sb.stop().await.unwrap();
    w.assert_no_vm_left();
}

#[test]
fn the_cli_takes_the_same_options() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let root = w.rootfs.to_str().unwrap().to_string();
    let script = w.home().join("greet.sh");
    std::fs::write(&script, "#!/bin/sh\necho greetings\n").unwrap();
    let script_arg = format!("greet:{}", script.display());
    w.create("cli", &["--rlimit", "nofile=128", "--script", &script_arg]);
    assert_eq!(w.ok(&["exec", "cli", "--", "sh", "-c", "ulimit -n"]), "128\n");
    assert_eq!(
        w.ok(&[
            "exec",
            "cli",
            "--rlimit",
            "nofile=32:64",
            "--",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn"
        ]),
        "32\n64\n"
    );
    assert_eq!(w.ok(&["exec", "cli", "--", "greet"]), "greetings\n");
    let started = Instant::now();
    let out = w.output(&["exec", "cli", "--timeout", "1s", "--", "sleep", "100"]);
    assert_eq!(out.status.code(), Some(124), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not finish within"));
    assert!(started.elapsed() < Duration::from_secs(10));
    let out = w.output(&["run", "--rootfs", &root, "--timeout", "1s", "--", "sleep", "100"]);
    assert_eq!(out.status.code(), Some(124));
    w.ok(&["rm", "-f", "cli"]);
    w.assert_no_vm_left();
}

#[test]
fn config_json_gives_new_sandboxes_their_defaults() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    std::fs::write(
        w.home().join("config.json"),
        r#"{"log_level": "debug", "sandbox_defaults": {"cpus": 2, "memory_mib": 320, "workdir": "/tmp"}}"#,
    )
    .unwrap();
    w.create("defaulted", &[]);
    let info = w.inspect("defaulted");
    assert_eq!(
        (
            info["resources"]["cpus"].as_u64(),
            info["resources"]["memory_mib"].as_u64()
        ),
        (Some(2), Some(320))
    );
    // The supervisor logs at the configured level.
    assert_eq!(info["spec"]["log_level"], "debug", "{info}");
    let log = std::fs::read_to_string(w.home().join("sandboxes/defaulted/logs/supervisor.log")).unwrap();
    assert!(log.contains("DEBUG"), "{log}");
    assert_eq!(
        w.ok(&["exec", "defaulted", "--", "sh", "-c", "nproc; pwd"]),
        "2\n/tmp\n"
    );
    // Flags still win.
    w.create("flagged", &["--cpus", "1"]);
    assert_eq!(w.ok(&["exec", "flagged", "--", "nproc"]), "1\n");
    w.ok(&["rm", "-f", "defaulted", "flagged"]);
    w.assert_no_vm_left();
}

#[test]
fn an_image_root_gets_a_sized_tmp_identity_files_and_scripts_for_login_shells() {
    let Some((w, image)) = image_world("busybox") else {
        return;
    };
    // A login shell started with nothing inherited still finds the scripts (/etc/profile).
    let script = "stat -c '%a' /tmp; df -m /tmp | tail -1 | tr -s ' ' | cut -d' ' -f2; \
                  cat /etc/hostname; grep -c box1 /etc/hosts; grep -c localhost /etc/hosts; \
                  env -i /bin/sh -l -c 'command -v greet'";
    let greet = w.home().join("greet.sh");
    std::fs::write(&greet, "#!/bin/sh\necho hi\n").unwrap();
    let greet = format!("greet:{}", greet.display());
    let out = w.ok(&[
        "run",
        &image,
        "--memory",
        "400",
        "--hostname",
        "box1",
        "--script",
        &greet,
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out, "1777\n100\nbox1\n1\n2\n/.msb/scripts/greet\n", "{out}");
    // A directory root keeps its own /tmp (a file in it is seen) and /etc.
    std::fs::write(w.rootfs.join("tmp/mine"), "x").unwrap();
    let root = w.rootfs.to_str().unwrap().to_string();
    assert_eq!(w.ok(&["run", "--rootfs", &root, "--", "cat", "/tmp/mine"]), "x");
    w.assert_no_vm_left();
}
