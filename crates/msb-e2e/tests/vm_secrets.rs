//! Secrets never enter the guest, and never land anywhere on the host but the sandbox's
//! 0600 secrets file: not the state DB, not a log, not a process's argv or environment.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{vm_available, Sandbox as World};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Every file under `dir` (not following links) whose bytes hold `needle`, except `skip`.
fn files_holding(dir: &Path, needle: &[u8], skip: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            found.extend(files_holding(&path, needle, skip));
        } else if kind.is_file() && path != skip {
            // Sockets and the like are skipped; big files (disk images) are read whole.
            if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}

#[test]
fn values_stay_in_the_secrets_file_and_the_guest_sees_placeholders() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let typed = "sk-typed-5f0c2a9e7d41";
    let from_env = "sk-env-83b1e6d0c4f2";
    let from_file = "sk-file-1a7d9e3c5b80";
    let file = w.home().join("key.txt");
    std::fs::write(&file, format!("{from_file}\n")).unwrap();
    let root = w.rootfs.to_string_lossy().into_owned();
    let typed_arg = format!("TYPED_KEY={typed}@api.example.com");
    let file_arg = format!("FILE_KEY={}@*.example.org", file.display());
    let out = w
        .msb()
        .env("ENV_KEY", from_env)
        .args(["create", "-n", "keys", "--rootfs", &root, "--secret", &typed_arg])
        .args(["--secret-env", "ENV_KEY@api.example.com", "--secret-file", &file_arg])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let guest_env = w.ok(&["exec", "keys", "--", "sh", "-c", "echo $TYPED_KEY $ENV_KEY $FILE_KEY"]);
    let placeholders: Vec<&str> = guest_env.split_whitespace().collect();
    assert_eq!(placeholders.len(), 3, "{guest_env}");
    for placeholder in &placeholders {
        assert!(
            placeholder.starts_with("msb_") && placeholder.len() == 44,
            "{guest_env}"
        );
    }
    // The guest trusts this run's interception CA, and its TLS clients are pointed at it.
    let tls = w.ok(&[
        "exec",
        "keys",
        "--",
        "sh",
        "-c",
        "head -1 /.msb/tls/ca.pem; echo $SSL_CERT_FILE",
    ]);
    assert_eq!(tls, "-----BEGIN CERTIFICATE-----\n/.msb/tls/ca-bundle.pem\n");
    // Nothing the guest can read holds a value: its files, its processes' environments.
    // (The values are looked for here, so that no guest command line carries them.)
    let dump = "cat /proc/[0-9]*/environ; find /etc /.msb /tmp -type f -exec cat {} +; true";
    let seen = w.ok(&["exec", "keys", "--", "sh", "-c", dump]);
    for value in [typed, from_env, from_file] {
        assert!(!seen.contains(value), "{value} is visible in the guest");
    }

    let secrets_file = w.home().join("sandboxes/keys/secrets.json");
    let mode = std::fs::metadata(&secrets_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    for value in [typed, from_env, from_file] {
        // On the host: nowhere under $MSB_HOME but the secrets file (the DB, logs, plans)…
        let holders = files_holding(w.home(), value.as_bytes(), &secrets_file);
        let holders: Vec<_> = holders.into_iter().filter(|p| !p.ends_with("key.txt")).collect();
        assert!(holders.is_empty(), "{value} found in {holders:?}");
        // …and in no argv or environment of the supervisor, QEMU or virtiofsd.
        let pids = w.vm_pids();
        assert!(!pids.is_empty());
        for pid in pids {
            for what in ["cmdline", "environ"] {
                let bytes = std::fs::read(format!("/proc/{pid}/{what}")).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes);
                assert!(!text.contains(value), "{value} in /proc/{pid}/{what}");
            }
        }
    }
    // A named sandbox keeps its secrets (and placeholders) across stop and start.
    w.ok(&["stop", "keys"]);
    w.ok(&["start", "keys"]);
    let again = w.ok(&["exec", "keys", "--", "sh", "-c", "echo $TYPED_KEY $ENV_KEY $FILE_KEY"]);
    assert_eq!(again, guest_env);
    // Removing the sandbox destroys them.
    w.ok(&["rm", "-f", "keys"]);
    assert!(!secrets_file.exists());
    w.assert_no_vm_left();
}

#[test]
fn bad_secrets_are_refused_before_anything_boots() {
    let w = World::new();
    let root = w.rootfs.to_string_lossy().into_owned();
    let refused = |extra: &[&str], code: i32, needle: &str| {
        let args: Vec<&str> = ["create", "-n", "bad", "--rootfs", &root]
            .iter()
            .chain(extra)
            .copied()
            .collect();
        w.fails(&args, code, needle);
    };
    // The value is never echoed back, not even in an error.
    let stderr_of = |extra: &[&str]| {
        let args: Vec<&str> = ["create", "-n", "bad", "--rootfs", &root]
            .iter()
            .chain(extra)
            .copied()
            .collect();
        String::from_utf8_lossy(&w.output(&args).stderr).into_owned()
    };
    let said = stderr_of(&["--secret", "KEY=hunter2-value"]);
    assert!(
        said.contains("--secret KEY") && said.contains("@HOST") && !said.contains("hunter2"),
        "{said}"
    );
    refused(&["--secret", "1KEY=v@a.example"], 125, "not a variable name");
    refused(&["--secret", "KEY=v@a.example", "--no-net"], 125, "cannot use secrets");
    refused(&["--secret", "KEY=v@a.example", "-e", "KEY=x"], 125, "both a secret");
    refused(
        &["--secret", "KEY=v@a.example", "--tls-bypass", "a.example"],
        125,
        "bypassed",
    );
    refused(&["--secret-env", "MSB_SURELY_UNSET_VAR@a.example"], 125, "is not set");
    assert_eq!(w.sandbox_dirs(), 0);
}
