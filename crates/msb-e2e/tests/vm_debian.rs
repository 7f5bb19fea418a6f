//! The Debian fixture boots as a directory root and its TLS clients run: curl, Python
//! with requests, Node.js, over the system CA bundle.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::debian;
use std::process::Stdio;

#[test]
fn curl_python_requests_and_node_run_in_a_private_copy() {
    let Some(w) = debian::world() else { return };
    let script = "curl --version | head -1 \
        && python3 -c 'import requests; print(\"requests\", requests.__version__)' \
        && node -e 'console.log(\"node\", process.version)' \
        && test -s /etc/ssl/certs/ca-certificates.crt \
        && touch /written-by-guest";
    let out = w
        .run(&["--no-net"], &["sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("running msb");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("curl "), "{stdout}");
    assert!(lines[1].starts_with("requests 2."), "{stdout}");
    assert!(lines[2].starts_with("node v"), "{stdout}");
    // The guest wrote to this test's copy, never to the cached tree.
    assert!(w.rootfs.join("written-by-guest").exists());
    assert!(!debian::rootfs().join("written-by-guest").exists());
    w.assert_no_vm_left();
}
