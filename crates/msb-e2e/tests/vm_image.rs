//! `msb run IMAGE`: OCI images boot from their EROFS layers under a writable ext4 upper.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{image_world, registry, stdout_of, Sandbox};

#[test]
fn python_image_runs_python_and_honours_its_config() {
    let Some((sb, image)) = image_world("python") else {
        return;
    };
    // Not pulled yet: `run` pulls it.
    assert_eq!(
        stdout_of(&sb.run_output(&[&image, "--", "python3", "-c", "print(1)"])),
        "1\n"
    );
    assert!(stdout_of(&sb.run_output(&[&image])).starts_with("hello from msb-test/python"));
    let script = "echo \"$(pwd)|$PYTHONUNBUFFERED|$EXTRA|$(id -u)\"";
    let out = stdout_of(&sb.run_output(&["-e", "EXTRA=yes", &image, "--", "sh", "-c", script]));
    assert_eq!(out, "/app|1|yes|0\n");
    let out = stdout_of(&sb.run_output(&[
        "-w",
        "/tmp",
        "-u",
        "65534",
        "--entrypoint",
        "sh",
        &image,
        "--",
        "-c",
        "pwd; id -u",
    ]));
    assert_eq!(out, "/tmp\n65534\n");
    sb.assert_no_vm_left();
}

#[test]
fn layers_stack_with_whiteouts_and_opaque_dirs_and_writes_go_to_the_upper() {
    let Some((sb, image)) = image_world("tricky") else {
        return;
    };
    stdout_of(&sb.output(&["pull", "-q", &image]));
    let layers_before = layer_hashes(&sb);
    assert!(!layers_before.is_empty());
    let script = "ls /tricky/del; ls /tricky/opaque; test -e /tricky/deldir || echo deldir-gone; \
                  rm /tricky/lower-only.txt && echo removed; echo new > /tricky/opaque/mine && cat /tricky/opaque/mine";
    let out = stdout_of(&sb.run_output(&[&image, "--", "sh", "-c", script]));
    assert_eq!(out, "stays.txt\nnew.txt\ndeldir-gone\nremoved\nnew\n");
    // The layer files are untouched by the guest's writes, to the byte.
    assert_eq!(layer_hashes(&sb), layers_before, "a layer file changed");
    for layer in layers_before.keys() {
        let status = std::process::Command::new("fsck.erofs").arg(layer).output().unwrap();
        assert!(status.status.success());
    }
    let again = stdout_of(&sb.run_output(&[&image, "--", "cat", "/tricky/lower-only.txt"]));
    assert!(!again.is_empty(), "a new sandbox starts from the image again");
    sb.assert_no_vm_left();
}

#[test]
fn an_unknown_image_is_a_clear_error() {
    let Some(addr) = registry() else { return };
    let sb = Sandbox::new();
    let out = sb.run_output(&[&format!("{addr}/msb-test/nope"), "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = sb.run_output(&["--rootfs", "/", &format!("{addr}/msb-test/busybox")]);
    assert_eq!(
        out.status.code(),
        Some(125),
        "IMAGE and --rootfs together are a usage error, said as msb's own errors are"
    );
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("msb: error: "));
}

/// sha256 of every layer file of the store, by path.
fn layer_hashes(sb: &Sandbox) -> std::collections::BTreeMap<std::path::PathBuf, String> {
    use sha2::Digest;
    std::fs::read_dir(sb.home().join("cache/layers"))
        .unwrap()
        .flatten()
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap();
            (e.path(), format!("{:x}", sha2::Sha256::digest(&bytes)))
        })
        .collect()
}
