//! Secrets through real TLS clients in a Debian guest (curl, Python requests, Node fetch),
//! inside the closed network test world: the value reaches the allowed host's server and
//! nowhere else, the guest only ever sees the placeholder, and every way of sending the
//! placeholder elsewhere is refused (or, where nothing is intercepted — a raw IP, a CONNECT
//! proxy's tunnel — left alone).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::networld::{Event, Hit, NetWorld, INTERNET, INTERNET_2};
use msb_e2e::{debian, Sandbox};
use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The value; the guest must never see it.
const VALUE: &str = "sk-live-7c1e5b9a04d2f3e8";

/// The bound on one `msb run` (a boot under TCG plus the clients).
const MSB_WAIT: Duration = Duration::from_secs(420);

/// What the guest does: one `@key value` line per check.
const SCRIPT: &str = r#"
P="$API_KEY"
say() { printf '@%s %s\n' "$1" "$(echo "$2" | tr -d '\n')"; }
code() { curl -sS -o /dev/null -w '%{http_code}' "$@" 2>/dev/null; echo " rc=$?"; }
say placeholder "$P"
say curl "$(curl -sS https://allowed.test/curl -H "Authorization: Bearer $P")"
say basic "$(curl -sS -u "user:$P" https://allowed.test/basic)"
say python "$(python3 -c 'import os, requests; r = requests.get("https://allowed.test/python", headers={"X-Api-Key": os.environ["API_KEY"]}); print(r.status_code, r.text)' 2>&1 | tail -2)"
say node "$(node -e 'fetch("https://allowed.test/node", {headers: {"x-api-key": process.env.API_KEY}}).then(r => r.text()).then(t => console.log(t))')"
say slow "$(python3 -c 'import os, socket, ssl, time
s = socket.create_connection(("allowed.test", 443)); time.sleep(2)
t = ssl.create_default_context().wrap_socket(s, server_hostname="allowed.test")
t.sendall(("GET /slow HTTP/1.1\r\nHost: allowed.test\r\nX-Api-Key: %s\r\nConnection: close\r\n\r\n" % os.environ["API_KEY"]).encode())
print(t.recv(64).split(b"\r\n")[0].decode())' 2>&1 | tail -1)"
say wild "$(code https://x.wild.test/wild -H "Authorization: Bearer $P")"
say mismatch "$(code https://allowed.test/mismatch -H "Host: x.wild.test" -H "Authorization: Bearer $P")"
say spoofed "$(code --resolve allowed.test:443:203.0.113.11 https://allowed.test/spoofed -H "Authorization: Bearer $P")"
say rawip "$(code -k https://203.0.113.10/rawip -H "Authorization: Bearer $P")"
say plain "$(code http://allowed.test/plain -H "Authorization: Bearer $P")"
say proxied "$(code --proxy http://203.0.113.10:3128 --cacert /world-ca.pem https://allowed.test/proxied -H "Authorization: Bearer $P")"
say pinned "$(code --cacert /world-ca.pem https://denied.test/pinned)"
"#;

fn run(w: &NetWorld, sb: &Sandbox, flags: &[&str], script: &str) -> Output {
    let ca = w.tls_cert_path();
    let secret = format!("API_KEY={VALUE}@allowed.test");
    let mut cmd = sb.msb();
    cmd.args(["run", "--timeout", "360s", "--rootfs"])
        .arg(&sb.rootfs)
        .args(["--secret", &secret, "--tls-intercept", "*.wild.test"])
        .arg("--tls-upstream-ca-cert")
        .arg(&ca)
        .args(flags)
        .args(["--", "sh", "-c", script]);
    msb_e2e::output_within(w.wrap(cmd), MSB_WAIT, "msb run")
}

/// The `@key value` lines.
fn report(out: &Output) -> HashMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix('@')?.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The headers of the request the world's servers got for `path`, if any.
fn request_headers(hits: &[Hit], path: &str) -> Option<Vec<(String, String)>> {
    hits.iter().find_map(|h| match &h.event {
        Event::Http { path: p, headers, .. } if p == path => Some(headers.clone()),
        _ => None,
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

#[test]
fn the_value_goes_only_to_its_host_through_real_clients() {
    let Some(sb) = debian::world() else { return };
    let Some(w) = NetWorld::create() else { return };
    std::fs::write(sb.rootfs.join("world-ca.pem"), w.tls_cert_pem()).unwrap();
    // Named, so it and its logs are kept after the run.
    let out = run(&w, &sb, &["-n", "tls"], SCRIPT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let r = report(&out);
    let placeholder = r["placeholder"].clone();
    assert!(placeholder.starts_with("msb_"), "{r:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(VALUE), "the guest saw the value: {stdout}");
    let hits = w.hits();

    // curl, Python and Node, trusting the sandbox's CA through the variables and bundles
    // the agent set: the server got the value; what they read back (the server echoes the
    // request) has the placeholder again.
    for (key, path, name) in [
        ("curl", "/curl", "authorization"),
        ("python", "/python", "x-api-key"),
        ("node", "/node", "x-api-key"),
        // A client that connects, then takes its time to start TLS, is still intercepted.
        ("slow", "/slow", "x-api-key"),
    ] {
        let headers = request_headers(&hits, path).unwrap_or_else(|| panic!("no request for {path}: {r:?}"));
        assert!(header(&headers, name).contains(VALUE), "{path}: {headers:?}");
        if key != "slow" {
            assert!(r[key].contains(&placeholder), "{key}: {}", r[key]);
        }
    }
    assert_eq!(r["slow"], "HTTP/1.1 200 OK", "{r:?}");
    let basic = request_headers(&hits, "/basic").expect("basic");
    let encoded = header(&basic, "authorization").trim_start_matches("Basic ").to_string();
    let decoded = String::from_utf8(base64_decode(&encoded)).unwrap();
    assert_eq!(decoded, format!("user:{VALUE}"));

    // Elsewhere, the placeholder is refused where it can be seen (403, never forwarded)…
    for key in ["wild", "mismatch", "spoofed"] {
        assert_eq!(r[key], "403 rc=0", "{key}: {r:?}");
        assert!(
            request_headers(&hits, &format!("/{key}")).is_none(),
            "{key} reached a server"
        );
    }
    // …in plain HTTP the connection is cut before it goes out…
    assert!(!r["plain"].starts_with("200"), "{r:?}");
    assert!(
        request_headers(&hits, "/plain").is_none(),
        "plain HTTP reached a server"
    );
    // …and TLS that is not intercepted (no name to intercept by) carries it unreplaced.
    assert_eq!(r["rawip"], "200 rc=0", "{r:?}");
    let raw = request_headers(&hits, "/rawip").expect("rawip");
    assert_eq!(header(&raw, "authorization"), format!("Bearer {placeholder}"));
    // Through a CONNECT proxy the TLS is the guest's own, end to end: nothing to intercept,
    // and the server gets the placeholder, never the value.
    assert_eq!(r["proxied"], "200 rc=0", "{r:?}");
    let proxied = request_headers(&hits, "/proxied").expect("proxied");
    assert_eq!(header(&proxied, "authorization"), format!("Bearer {placeholder}"));
    // A client that trusts only the real server's CA still reaches a host not intercepted.
    assert_eq!(r["pinned"], "200 rc=0", "{r:?}");
    // Nothing but the allowed requests ever carried the value.
    let carried: Vec<&Hit> = hits
        .iter()
        .filter(|h| format!("{:?}", h.event).contains(VALUE))
        .collect();
    assert!(carried.iter().all(|h| h.local.ip() == INTERNET), "{carried:?}");
    assert!(
        hits.iter().any(|h| h.local.ip() == INTERNET_2),
        "the spoofed SNI never left"
    );

    // The violations are in the sandbox's log, by host and secret name, never by value.
    let logs = std::fs::read_dir(sb.home().join("sandboxes")).unwrap().flatten();
    let mut text = String::new();
    for dir in logs {
        for file in std::fs::read_dir(dir.path().join("logs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            text.push_str(&std::fs::read_to_string(file.path()).unwrap_or_default());
        }
    }
    assert!(!text.contains(VALUE), "the value is in a log");
    assert!(text.contains("API_KEY") && text.contains("x.wild.test"), "{text}");
}

#[test]
fn block_and_terminate_stops_the_sandbox() {
    let Some(sb) = debian::world() else { return };
    let Some(w) = NetWorld::create() else { return };
    let script =
        r#"curl -sS -o /dev/null https://x.wild.test/ -H "Authorization: Bearer $API_KEY"; sleep 300; echo survived"#;
    let out = run(&w, &sb, &["--on-secret-violation", "block-and-terminate"], script);
    // Stopped mid-sleep: had it run on, the script would have said so.
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
}

/// Standard base64 (the Basic credentials the server logged).
fn base64_decode(text: &str) -> Vec<u8> {
    let out = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = out.unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    child.wait_with_output().unwrap().stdout
}
