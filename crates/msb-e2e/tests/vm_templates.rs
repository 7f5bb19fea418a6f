//! Templates: the first sandbox of a make records a saved guest, later ones resume it, and
//! each resumed guest is its own (randomness, boot id, name, clock, disks).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{image_world, Sandbox};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether sandbox `name`'s VM was resumed from a template, as its log says.
fn resumed(sb: &Sandbox, name: &str) -> bool {
    let log = std::fs::read_to_string(sb.home().join(format!("sandboxes/{name}/logs/exec.log"))).unwrap();
    assert!(log.contains("sandbox started"), "{log}");
    log.contains("resumed from a template")
}

/// The template files of the world's home.
fn templates(sb: &Sandbox) -> Vec<PathBuf> {
    let Ok(makes) = std::fs::read_dir(sb.home().join("cache/templates")) else {
        return Vec::new();
    };
    makes
        .flatten()
        .flat_map(|make| std::fs::read_dir(make.path()).unwrap().flatten())
        .map(|entry| entry.path())
        .collect()
}

/// The one template of the world's home.
fn the_template(sb: &Sandbox) -> PathBuf {
    match &templates(sb)[..] {
        [one] => one.clone(),
        many => panic!("not one template: {many:?}"),
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn resumed_sandboxes_are_each_their_own() {
    let Some((sb, image)) = image_world("busybox") else {
        return;
    };
    for name in ["a", "b"] {
        assert_eq!(sb.ok(&["create", "-n", name, &image]), "");
        assert!(resumed(&sb, name), "{name} booted cold");
    }
    let template = the_template(&sb);
    assert_eq!(template.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    let make = template.parent().unwrap();
    assert_eq!(make.metadata().unwrap().permissions().mode() & 0o777, 0o700);
    let script = "cat /proc/sys/kernel/random/boot_id; hostname; \
                  head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; date +%s; \
                  wc -c < /bin/busybox; ip -4 addr show eth0 | grep -o 'inet [0-9.]*'";
    let mut seen = Vec::new();
    for name in ["a", "b"] {
        let before = now();
        let out = sb.ok(&["exec", name, "--", "sh", "-c", script]);
        let after = now();
        let lines: Vec<&str> = out.lines().collect();
        let [boot_id, hostname, random, clock, busybox_bytes, address] = lines[..] else {
            panic!("{out}");
        };
        let clock: u64 = clock.parse().unwrap();
        assert!(
            before - 1 <= clock && clock <= after + 1,
            "{name}'s clock {clock}, host {before}..{after}"
        );
        // The image's files, not the template's empty placeholders.
        assert!(
            busybox_bytes.trim().parse::<u64>().unwrap() > 0,
            "{name}: {busybox_bytes}"
        );
        assert_eq!(address, "inet 100.96.0.2", "the address the host gave");
        assert_eq!(random.len(), 128);
        seen.push((boot_id.to_string(), hostname.to_string(), random.to_string()));
    }
    let (a, b) = (&seen[0], &seen[1]);
    assert_ne!(a.0, b.0, "the same boot id");
    assert_ne!(a.1, b.1, "the same hostname");
    assert_ne!(a.2, b.2, "the same random bytes");
    // Each has its own upper: what one writes, the other does not see.
    sb.ok(&["exec", "a", "--", "sh", "-c", "echo mine > /etc/only-a"]);
    let out = sb.ok(&["exec", "b", "--", "sh", "-c", "cat /etc/only-a 2>&1 || echo absent"]);
    assert!(out.ends_with("absent\n"), "{out}");
    // And it keeps it across a restart, which resumes again.
    sb.ok(&["stop", "a"]);
    sb.ok(&["start", "a"]);
    assert_eq!(sb.ok(&["exec", "a", "--", "cat", "/etc/only-a"]), "mine\n");
    sb.ok(&["rm", "-f", "a", "b"]);
    sb.assert_no_vm_left();
}

#[test]
fn a_broken_template_means_a_cold_boot_and_a_new_build_a_new_template() {
    let Some((plain, image)) = image_world("busybox") else {
        return;
    };
    // An agent of this test's own, to write anew below.
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = agent_dir.path().join("initramfs.cpio");
    std::fs::copy(plain.home().join("lib/initramfs.cpio"), &agent).unwrap();
    let sb = Sandbox::with_agent(&agent);
    sb.ok(&["create", "-n", "first", &image]);
    let template = the_template(&sb);
    // Truncated: the resume fails, the sandbox boots cold all the same, and says why.
    let len = template.metadata().unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&template)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    sb.ok(&["create", "-n", "cold", "--sandbox-log-level", "debug", &image]);
    assert!(!resumed(&sb, "cold"));
    let log = std::fs::read_to_string(sb.home().join("sandboxes/cold/logs/supervisor.log")).unwrap();
    assert!(log.contains("failed") && log.contains("booting cold"), "{log}");
    assert_eq!(sb.ok(&["exec", "cold", "--", "echo", "up"]), "up\n");
    assert!(templates(&sb).is_empty(), "the broken template is gone");
    // The next one records it again.
    sb.ok(&["create", "-n", "again", &image]);
    assert!(resumed(&sb, "again"));
    let recorded = the_template(&sb);
    // A new agent (the same bytes, written anew) is a new build: the old template is not
    // used but replaced.
    let bytes = std::fs::read(&agent).unwrap();
    std::fs::remove_file(&agent).unwrap();
    std::fs::write(&agent, bytes).unwrap();
    sb.ok(&["create", "-n", "rebuilt", &image]);
    assert!(resumed(&sb, "rebuilt"));
    let rebuilt = the_template(&sb);
    assert_ne!(rebuilt, recorded);
    assert_eq!(sb.ok(&["exec", "rebuilt", "--", "echo", "up"]), "up\n");
    sb.ok(&["rm", "-f", "first", "cold", "again", "rebuilt"]);
    sb.assert_no_vm_left();
}

#[test]
fn templates_can_be_turned_off_and_directory_roots_never_use_one() {
    let Some((sb, image)) = image_world("busybox") else {
        return;
    };
    let mut create = sb.msb();
    create.args(["create", "-n", "off", &image]).env("MSB_NO_TEMPLATE", "1");
    assert!(create.status().unwrap().success());
    assert!(!resumed(&sb, "off"));
    assert!(templates(&sb).is_empty());
    // A directory root is shared over virtio-fs, which QEMU cannot save.
    sb.create("dir", &[]);
    assert!(!resumed(&sb, "dir"));
    assert!(templates(&sb).is_empty());
    sb.ok(&["rm", "-f", "off", "dir"]);
    sb.assert_no_vm_left();
}

#[test]
fn resumed_sandboxes_keep_their_own_patches_and_volumes() {
    let Some((sb, image)) = image_world("busybox") else {
        return;
    };
    for name in ["p", "q"] {
        assert_eq!(
            sb.ok(&["volume", "create", &format!("vol-{name}"), "--size", "16M"]),
            format!("vol-{name}\n")
        );
        let volume = format!("vol-{name}:/data");
        let patch = format!("/etc/whoami={name}");
        sb.ok(&["create", "-n", name, "-v", &volume, "--text", &patch, &image]);
        sb.ok(&["exec", name, "--", "sh", "-c", &format!("echo {name} > /data/mine")]);
    }
    for name in ["p", "q"] {
        assert!(resumed(&sb, name), "{name} booted cold");
        let out = sb.ok(&["exec", name, "--", "sh", "-c", "cat /etc/whoami; echo; cat /data/mine"]);
        assert_eq!(out, format!("{name}\n{name}\n"));
    }
    // One template serves both: the same image, upper and volume sizes.
    the_template(&sb);
    sb.ok(&["rm", "-f", "p", "q"]);
    sb.assert_no_vm_left();
}

#[test]
fn a_resumed_sandbox_serves_on_its_published_port() {
    let Some((sb, image)) = image_world("busybox") else {
        return;
    };
    // A free port on the host's loopback: nothing leaves this machine.
    let port = msb_e2e::http::free_port();
    let publish = format!("127.0.0.1:{port}:8000");
    sb.ok(&["create", "-n", "web", "-p", &publish, &image]);
    assert!(resumed(&sb, "web"));
    let serve = "mkdir -p /www && echo resumed > /www/index.html && httpd -p 8000 -h /www";
    sb.ok(&["exec", "web", "--", "sh", "-c", serve]);
    let answer = msb_e2e::http::get_until(port, "/index.html", "resumed");
    assert!(answer.starts_with("HTTP/1."), "{answer}");
    sb.ok(&["rm", "-f", "web"]);
    sb.assert_no_vm_left();
}
