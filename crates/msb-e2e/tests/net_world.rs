//! The network test world itself (no VM): from inside SBX, every stand-in answers as
//! documented, nothing but WORLD is reachable, and a dropped world leaves nothing behind.
//! Needs root (skips without it, fails under `MSB_REQUIRE_ROOT=1`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::networld::{self, Event, NetWorld, Service, Side};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `curl ARGS` inside SBX (bounded, no proxy): its stdout; panics when it fails.
fn curl(w: &NetWorld, args: &[&str]) -> Vec<u8> {
    let out = w
        .command("curl")
        .args(["-sS", "--fail", "--max-time", "20", "--noproxy", "*"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running curl (package curl)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_stand_in_answers_http_on_its_own_address() {
    let Some(w) = NetWorld::create() else { return };
    for (ip, name) in [
        (networld::INTERNET, "internet"),
        (networld::INTERNET_2, "internet-2"),
        (networld::LAN, "lan"),
        (networld::METADATA, "metadata"),
    ] {
        let info = json(&curl(&w, &["-H", "Host: allowed.test", &format!("http://{ip}/hello")]));
        assert_eq!(info["server"], name, "{info}");
        assert_eq!(info["local"], format!("{ip}:80"));
        assert_eq!(info["host"], "allowed.test");
        assert_eq!(info["path"], "/hello");
        assert_eq!(info["tls"], false);
        assert!(info["peer"].as_str().unwrap().starts_with("192.0.2.2:"), "{info}");
        let hits = w.hits_at(ip);
        assert_eq!(hits[0].event, Event::Connected);
        assert!(matches!(&hits[1].event, Event::Http { host: Some(h), .. } if h == "allowed.test"));
    }
}

#[test]
fn http_echoes_bodies_and_serves_pattern_bytes() {
    let Some(w) = NetWorld::create() else { return };
    let url = format!("http://{}", networld::INTERNET);
    // POST /echo: the body comes back.
    let echoed = curl(&w, &["--data-binary", "hello, world", &format!("{url}/echo")]);
    assert_eq!(echoed, b"hello, world");
    // Any other POST: length and hash, and the log has them too.
    let body = "x".repeat(300_000);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &body).unwrap();
    let from_file = format!("@{}", file.path().display());
    let info = json(&curl(&w, &["--data-binary", &from_file, &format!("{url}/upload")]));
    assert_eq!(info["body_len"], 300_000);
    assert_eq!(info["body_sha256"], sha256_hex(body.as_bytes()));
    let logged = w.hits().into_iter().find_map(|h| match h.event {
        Event::Http { path, body_len, .. } if path == "/upload" => Some(body_len),
        _ => None,
    });
    assert_eq!(logged, Some(300_000));
    // GET /bytes/N: N bytes whose hash the test can compute.
    let n = 5_000_003u64;
    let data = curl(&w, &[&format!("{url}/bytes/{n}")]);
    assert_eq!(data.len() as u64, n);
    assert_eq!(sha256_hex(&data), networld::pattern_sha256(n));
}

#[test]
fn tls_reports_the_sni_and_verifies_with_the_world_ca() {
    let Some(w) = NetWorld::create() else { return };
    let cacert = w.tls_cert_path();
    let cacert = cacert.to_str().unwrap();
    for name in ["allowed.test", "deep.wild.test"] {
        let resolve = format!("{name}:443:{}", networld::INTERNET);
        let info = json(&curl(
            &w,
            &["--cacert", cacert, "--resolve", &resolve, &format!("https://{name}/x")],
        ));
        assert_eq!(info["sni"], name, "{info}");
        assert_eq!(info["tls"], true);
        assert_eq!(info["host"], name);
        assert_eq!(info["server"], "internet");
    }
    // By address: no SNI is sent, the certificate still verifies (IP SAN).
    let info = json(&curl(
        &w,
        &["--cacert", cacert, &format!("https://{}/", networld::INTERNET_2)],
    ));
    assert_eq!(info["sni"], serde_json::Value::Null);
    assert!(w.hits_at(networld::INTERNET).iter().any(|h| h.service == Service::Https
        && h.event
            == Event::TlsHello {
                sni: Some("allowed.test".into())
            }));
}

#[test]
fn dns_answers_the_fixture_zone_over_udp_and_tcp() {
    let Some(w) = NetWorld::create() else { return };
    let server = w.dns_server();
    let expect = [
        ("allowed.test", Some((networld::INTERNET, 60))),
        ("foo.wild.test", Some((networld::INTERNET, 60))),
        ("rebind.test", Some((networld::LAN, 60))),
        ("ttl0.test", Some((networld::INTERNET_2, 0))),
        ("a.shared.test", Some((networld::INTERNET_2, 60))),
        ("b.shared.test", Some((networld::INTERNET_2, 60))),
        ("meta.test", Some((networld::METADATA, 60))),
        ("denied.test", Some((networld::INTERNET_2, 60))),
        ("nothing.test", None),
        ("example.com", None),
    ];
    for tcp in [false, true] {
        for (name, want) in expect {
            let got = w.in_sbx(|| networld::dns_query(server, name, "A", tcp)).unwrap();
            match want {
                Some(a) => assert_eq!(
                    (got.rcode.as_str(), got.addrs),
                    ("NoError", vec![a]),
                    "{name} tcp={tcp}"
                ),
                None => assert_eq!(
                    (got.rcode.as_str(), got.addrs.len()),
                    ("NXDomain", 0),
                    "{name} tcp={tcp}"
                ),
            }
        }
    }
    // A known name asked for AAAA: no error, no address.
    let aaaa = w
        .in_sbx(|| networld::dns_query(server, "allowed.test", "AAAA", false))
        .unwrap();
    assert_eq!((aaaa.rcode.as_str(), aaaa.addrs.len()), ("NoError", 0));
    // Changes to the zone apply at once.
    w.dns_set("late.test", networld::LAN, 5);
    let late = w
        .in_sbx(|| networld::dns_query(server, "late.test", "A", false))
        .unwrap();
    assert_eq!(late.addrs, vec![(networld::LAN, 5)]);
    assert!(w.dns_queries().contains(&("late.test".into(), "A".into())));
    // SBX's own resolver (resolv.conf via `ip netns exec`) asks the world's server.
    let out = w.command("getent").args(["ahostsv4", "allowed.test"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("203.0.113.10"), "{out:?}");
    let out = w.command("getent").args(["ahostsv4", "nothing.test"]).output().unwrap();
    assert!(!out.status.success());
    let resolv = w.command("cat").arg("/etc/resolv.conf").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&resolv.stdout), "nameserver 203.0.113.53\n");
}

#[test]
fn udp_echo_sink_and_source_work_from_sbx() {
    let Some(w) = NetWorld::create() else { return };
    let echo: SocketAddr = (networld::INTERNET, networld::UDP_ECHO_PORT).into();
    let back = w
        .in_sbx(|| {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.send_to(b"ping 123", echo)?;
            let mut buf = [0u8; 64];
            let n = s.recv(&mut buf)?;
            Ok(buf[..n].to_vec())
        })
        .unwrap();
    assert_eq!(back, b"ping 123");
    assert!(w
        .hits_at(networld::INTERNET)
        .iter()
        .any(|h| h.event == Event::Datagram { len: 8 }));
    // Sink counts what it got; source sends the pattern.
    let (count, data) = w
        .in_sbx(|| {
            use std::io::{Read, Write};
            let mut s = TcpStream::connect((networld::LAN, networld::SINK_PORT))?;
            s.write_all(&[1u8; 100_000])?;
            s.shutdown(std::net::Shutdown::Write)?;
            let mut c = [0u8; 8];
            s.read_exact(&mut c)?;
            let mut s = TcpStream::connect((networld::LAN, networld::SOURCE_PORT))?;
            s.write_all(&70_000u64.to_be_bytes())?;
            let mut data = Vec::new();
            s.read_to_end(&mut data)?;
            Ok((u64::from_be_bytes(c), data))
        })
        .unwrap();
    assert_eq!(count, 100_000);
    let mut want = vec![0u8; 70_000];
    networld::pattern_fill(0, &mut want);
    assert_eq!(data, want);
}

#[test]
fn the_host_stand_in_answers_on_loopback_inside_sbx() {
    let Some(w) = NetWorld::create() else { return };
    let info = json(&curl(&w, &["http://127.0.0.1/from-sandbox"]));
    assert_eq!(info["server"], "host");
    assert_eq!(info["local"], "127.0.0.1:80");
    let hit = w
        .hits()
        .into_iter()
        .find(|h| matches!(h.event, Event::Http { .. }))
        .unwrap();
    assert_eq!(hit.side, Side::Sbx);
    assert!(!w.saw(networld::INTERNET));
}

#[test]
fn sbx_reaches_nothing_but_world() {
    let Some(w) = NetWorld::create() else { return };
    let routes = Command::new("ip")
        .args(["-n", w.sbx(), "-4", "route"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    assert!(!routes.trim().is_empty());
    assert!(routes.lines().all(|l| l.contains("dev veth-world")), "{routes}");
    let links = Command::new("ip").args(["-n", w.sbx(), "-o", "link"]).output().unwrap();
    let names: Vec<String> = String::from_utf8_lossy(&links.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap().to_string())
        .collect();
    assert_eq!(names, ["lo", "veth-world"]);
    // WORLD has no route beyond itself either: just its own link.
    let routes = Command::new("ip")
        .args(["-n", w.world(), "-4", "route"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    assert!(!routes.contains("default via"), "{routes}");
    assert!(
        routes
            .lines()
            .all(|l| l.contains("dev veth-sbx") || l.starts_with("unreachable default")),
        "{routes}"
    );
    // An address outside the world is refused at once (host unreachable from WORLD), not
    // left to time out; and no server saw it.
    let started = Instant::now();
    let r = w.in_sbx(|| TcpStream::connect_timeout(&"198.51.100.7:80".parse().unwrap(), Duration::from_secs(10)));
    assert!(r.is_err(), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(9), "{:?}", started.elapsed());
    assert!(w.hits().is_empty(), "{:?}", w.hits());
}

#[test]
fn wrap_runs_a_command_inside_sbx_with_its_environment() {
    let Some(w) = NetWorld::create() else { return };
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo \"$GREETING\"; ip -4 -o addr show dev veth-world"])
        .env("GREETING", "hi from sbx")
        .current_dir("/tmp");
    let out = w.wrap(cmd).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("hi from sbx\n"), "{text}");
    assert!(text.contains("192.0.2.2/30"), "{text}");
}

#[test]
fn a_dropped_world_leaves_no_namespace_process_or_resolv_conf() {
    let Some(w) = NetWorld::create() else { return };
    let (sbx, world) = (w.sbx().to_string(), w.world().to_string());
    assert!(std::path::Path::new("/run/netns").join(&sbx).exists());
    assert!(std::path::Path::new("/etc/netns")
        .join(&sbx)
        .join("resolv.conf")
        .exists());
    // Something left running inside, as by a failed test.
    let mut left = w.command("sleep").arg("300").spawn().unwrap();
    let cert = w.tls_cert_path();
    std::thread::sleep(Duration::from_millis(200));
    drop(w);
    let status = msb_e2e::wait_or_kill(&mut left, Duration::from_secs(10), "the sleep outlived its world");
    assert!(!status.success());
    for ns in [&sbx, &world] {
        assert!(
            !std::path::Path::new("/run/netns").join(ns).exists(),
            "{ns} still there"
        );
    }
    assert!(!std::path::Path::new("/etc/netns").join(&sbx).exists());
    assert!(!cert.exists());
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(!listed.contains(&sbx) && !listed.contains(&world), "{listed}");
}

#[test]
fn worlds_of_dead_test_processes_are_swept() {
    let Some(w) = NetWorld::create() else { return };
    // A namespace named like a world of a process that cannot exist (pids stay below 2^22).
    let stale = "msbnet-999999999-0-sbx";
    let _ = Command::new("ip").args(["netns", "del", stale]).output();
    let added = Command::new("ip").args(["netns", "add", stale]).status().unwrap();
    assert!(added.success());
    let second = NetWorld::create().unwrap();
    assert!(!std::path::Path::new("/run/netns").join(stale).exists());
    // Live worlds (this process's) are left alone.
    assert!(std::path::Path::new("/run/netns").join(w.sbx()).exists());
    assert_ne!(second.sbx(), w.sbx());
}

#[test]
fn a_sandbox_run_through_wrap_lives_in_sbx_and_goes_with_the_world() {
    if !msb_e2e::vm_available() {
        return;
    }
    let Some(w) = NetWorld::create() else { return };
    let sb = msb_e2e::Sandbox::new();
    let mut child = w
        .wrap(sb.run(&[], &["sh", "-c", "echo up; exec sleep 600"]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 3];
        let _ = tx.send(std::io::Read::read_exact(&mut stdout, &mut buf).map(|_| buf));
    });
    match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(Ok(buf)) => assert_eq!(&buf, b"up\n"),
        other => {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the sandbox never said up: {other:?}; {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // msb, its supervisor and QEMU all run in SBX.
    let pids = Command::new("ip").args(["netns", "pids", w.sbx()]).output().unwrap();
    let comms: Vec<String> = String::from_utf8_lossy(&pids.stdout)
        .split_whitespace()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    assert!(comms.iter().any(|c| c.starts_with("qemu-system")), "{comms:?}");
    assert!(comms.iter().filter(|c| *c == "msb").count() >= 2, "{comms:?}");
    // A world dropped mid-run (a failed test) ends the sandbox with it.
    drop(w);
    let status = msb_e2e::wait_or_kill(&mut child, Duration::from_secs(20), "msb outlived its world");
    assert!(!status.success());
    sb.assert_no_vm_left();
}
