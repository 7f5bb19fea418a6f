//! Networking through real VMs, in the closed test world of `msb_e2e::networld` (needs root
//! for its namespaces; every `msb` runs inside its SBX namespace, so no packet of these tests
//! can leave the machine). Few boots, each checking many things: a guest script prints one
//! `@key value` line per check and the test parses them, then reads the world's request log
//! to confirm what the guest could not see (that a server was never reached).
//!
//! Guest-side checks busybox cannot make (raw DNS answers, UDP, a TLS ClientHello with a
//! chosen SNI, connection storms) are done by the std-only guest probe `msb-netprobe`
//! (`src/bin/msb-netprobe/`), built static with `rustc` once per test run and copied into
//! each sandbox's rootfs as `/bin/probe`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::networld::{self, Event, NetWorld, Service, Side};
use msb_e2e::{vm_available, Sandbox};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The bound on any one `msb` invocation (a boot under TCG plus a script).
const MSB_WAIT: Duration = Duration::from_secs(420);

/// One test's world: the closed network and a private `MSB_HOME` with a rootfs copy that
/// has the probe in `/bin/probe`.
struct Lab {
    sb: Sandbox,
    w: NetWorld,
}

impl Lab {
    /// A lab, or `None` when VMs or root are missing (failing instead under CI's
    /// `MSB_REQUIRE_VM=1`/`MSB_REQUIRE_ROOT=1`).
    fn new() -> Option<Lab> {
        if !vm_available() {
            return None;
        }
        let w = NetWorld::create()?;
        let sb = Sandbox::new();
        std::fs::copy(probe(), sb.rootfs.join("bin/probe")).expect("installing the probe");
        Some(Lab { sb, w })
    }

    /// `msb ARGS…` run inside SBX, bounded by [`MSB_WAIT`].
    fn msb(&self, args: &[&str]) -> Output {
        let mut cmd = self.sb.msb();
        cmd.args(args);
        msb_e2e::output_within(self.w.wrap(cmd), MSB_WAIT, &format!("msb {args:?}"))
    }

    /// `msb ARGS…` inside SBX, asserted to succeed: its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.msb(args);
        assert!(out.status.success(), "msb {args:?} failed: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// `msb run --rootfs <copy> FLAGS… -- sh -c SCRIPT` inside SBX: its `@` lines.
    fn run_script(&self, flags: &[&str], script: &str) -> Report {
        let root = self.sb.rootfs.to_str().unwrap();
        let args = [
            &["run", "--timeout", "360s", "--rootfs", root][..],
            flags,
            &["--", "sh", "-c", script],
        ]
        .concat();
        Report::of(&self.ok(&args))
    }

    /// `msb exec NAME -- sh -c SCRIPT` inside SBX: its `@` lines.
    fn exec_script(&self, name: &str, script: &str) -> Report {
        Report::of(&self.ok(&[
            "exec",
            "--no-start",
            "--timeout",
            "360s",
            name,
            "--",
            "sh",
            "-c",
            script,
        ]))
    }

    /// The `network` object of `msb metrics NAME --json`.
    fn net_metrics(&self, name: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["metrics", name, "--json"])).expect("metrics JSON");
        let one = if v.is_array() { v[0].clone() } else { v };
        assert!(one["network"].is_object(), "no network object: {one}");
        one["network"].clone()
    }

    /// The HTTP requests a server at `ip` answered, as (Host, path).
    fn http_hits(&self, ip: std::net::Ipv4Addr) -> Vec<(String, String)> {
        let hits = if ip == networld::HOST {
            self.w.hits().into_iter().filter(|h| h.side == Side::Sbx).collect()
        } else {
            self.w.hits_at(ip)
        };
        hits.into_iter()
            .filter_map(|h| match h.event {
                Event::Http { host, path, .. } => Some((host.unwrap_or_default(), path)),
                _ => None,
            })
            .collect()
    }

    /// The SNIs TLS servers at `ip` saw.
    fn snis(&self, ip: std::net::Ipv4Addr) -> Vec<Option<String>> {
        self.w
            .hits_at(ip)
            .into_iter()
            .filter_map(|h| match h.event {
                Event::TlsHello { sni } => Some(sni),
                _ => None,
            })
            .collect()
    }
}

/// A guest script's `@key value` lines.
struct Report {
    lines: HashMap<String, String>,
    raw: String,
}

impl Report {
    fn of(stdout: &str) -> Report {
        let lines = stdout
            .lines()
            .filter_map(|l| l.strip_prefix('@'))
            .map(|l| l.split_once(' ').unwrap_or((l, "")))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        Report {
            lines,
            raw: stdout.to_string(),
        }
    }

    /// The value of `key` (the test fails, showing the whole output, when it is missing).
    fn get(&self, key: &str) -> &str {
        self.lines
            .get(key)
            .unwrap_or_else(|| panic!("no @{key} line in the guest's output:\n{}", self.raw))
    }

    /// Asserts `key`'s value is `want`.
    fn is(&self, key: &str, want: &str) {
        assert_eq!(self.get(key), want, "@{key}; whole output:\n{}", self.raw);
    }

    /// Asserts `key`'s value contains every one of `needles`.
    fn has(&self, key: &str, needles: &[&str]) {
        let v = self.get(key);
        for n in needles {
            assert!(v.contains(n), "@{key} = {v:?} lacks {n:?}; whole output:\n{}", self.raw);
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The probe, built once per test process (static, like the agent: the guest has no libc).
fn probe() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vm-network-probe");
            std::fs::create_dir_all(&dir).unwrap();
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/msb-netprobe/main.rs");
            let bin = dir.join("probe");
            let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
            let out = Command::new(rustc)
                .args([
                    "--edition",
                    "2021",
                    "-O",
                    "-C",
                    "target-feature=+crt-static",
                    "-C",
                    "strip=symbols",
                    "-o",
                ])
                .arg(&bin)
                .arg(&src)
                .output()
                .expect("running rustc");
            assert!(out.status.success(), "building the guest probe: {}", text(&out.stderr));
            bin
        })
        .clone()
}

/// Item 1's guest script: what public-only lets through and what it refuses, and DNS.
const PUBLIC_SCRIPT: &str = r#"
echo "@resolv $(cat /etc/resolv.conf)"
echo "@fetch $(wget -q -O - http://allowed.test/hello 2>&1)"
echo "@big $(wget -q -O - http://allowed.test/bytes/104857600 | sha256sum)"
for t in lan:10.20.0.10 metadata:169.254.169.254 host:host.microsandbox.internal; do
  r=$(nc -w 3 ${t#*:} 80 </dev/null 2>&1); echo "@${t%%:*} rc=$? $r"
done
echo "@host-tls $(probe tls 100.96.0.1:443 localhost)"
echo "@a $(probe resolve allowed.test A)"
echo "@aaaa $(probe resolve allowed.test AAAA)"
echo "@rebind $(probe resolve rebind.test A)"
echo "@meta-name $(probe resolve meta.test A)"
echo "@blocked $(probe resolve denied.test A)"
echo "@gateway $(probe resolve host.microsandbox.internal A)"
echo "@udp $(probe udp 203.0.113.10:7 ping-public)"
echo "@udp-lan $(probe udp 10.20.0.10:7 ping-lan)"
"#;

#[test]
fn public_only_reaches_public_servers_and_nothing_else() {
    let Some(lab) = Lab::new() else { return };
    let root = lab.sb.rootfs.to_str().unwrap();
    let run = [
        "run",
        "-d",
        "-n",
        "pub",
        "--dns-block-domain",
        "denied.test",
        "--rootfs",
        root,
    ];
    lab.ok(&[&run[..], &["--", "sleep", "900"]].concat());
    let r = lab.exec_script("pub", PUBLIC_SCRIPT);

    r.is("resolv", "nameserver 100.96.0.1");
    let fetched: Value = serde_json::from_str(r.get("fetch")).expect("the fetch printed JSON");
    assert_eq!(
        (&fetched["host"], &fetched["path"], &fetched["server"]),
        (&"allowed.test".into(), &"/hello".into(), &"internet".into()),
        "{fetched}"
    );
    // 100 MiB byte-identical (the sum is computed in the guest, of what it received).
    r.is("big", &format!("{}  -", networld::pattern_sha256(104_857_600)));
    // Private, link-local and the host: refused at once (a RST, not a timeout).
    for key in ["lan", "metadata", "host"] {
        r.has(key, &["rc=1", "Connection refused"]);
    }
    r.is("host-tls", "refused");
    // DNS: answers for public names; AAAA empty; private and link-local answers dropped
    // (rebinding); a blocked name NXDOMAIN without asking upstream; the gateway's name.
    r.is("a", "rcode=0 addrs=203.0.113.10");
    r.is("aaaa", "rcode=0 addrs=");
    r.is("rebind", "rcode=0 addrs=");
    r.is("meta-name", "rcode=0 addrs=");
    r.is("blocked", "rcode=3 addrs=");
    r.is("gateway", "rcode=0 addrs=100.96.0.1");
    // UDP: public echoes, private gets an ICMP unreachable (so no timeout).
    r.is("udp", "reply ping-public");
    r.is("udp-lan", "refused");

    // The world's side: the refused ones were never reached.
    assert!(!lab.w.saw(networld::LAN), "{:?}", lab.w.hits_at(networld::LAN));
    assert!(!lab.w.saw(networld::METADATA));
    assert!(
        lab.w.hits().iter().all(|h| h.side == Side::World),
        "the host stand-in was reached"
    );
    assert!(lab
        .http_hits(networld::INTERNET)
        .contains(&("allowed.test".into(), "/hello".into())));
    let queries = lab.w.dns_queries();
    assert!(queries.iter().all(|(name, _)| name != "denied.test"), "{queries:?}");
    assert!(queries.contains(&("rebind.test".into(), "A".into())), "{queries:?}");

    // The counters moved.
    let net = lab.net_metrics("pub");
    let n = |k: &str| net[k].as_u64().unwrap_or_else(|| panic!("no {k} in {net}"));
    assert!(n("denied_policy") >= 5, "{net}");
    assert!(n("dns_denied") >= 1, "{net}");
    assert!(n("dns_rebinding_dropped") >= 2, "{net}");
    assert!(n("dns_queries") >= 6, "{net}");
    // `bytes_in` is the sandbox's view: what reached the guest.
    assert!(n("bytes_in") >= 104_857_600, "{net}");
    lab.ok(&["rm", "-f", "pub"]);
    lab.sb.assert_no_vm_left();
}

#[test]
fn a_domain_allow_under_none_lets_only_that_name_through() {
    let Some(lab) = Lab::new() else { return };
    let r = lab.run_script(
        &["--network", "none", "--net-rule", "allow@allowed.test:tcp:80"],
        r#"
echo "@fetch $(wget -q -O - http://allowed.test/by-name 2>&1)"
r=$(nc -w 3 203.0.113.11 80 </dev/null 2>&1); echo "@other-ip rc=$? $r"
echo "@unresolved $(probe http 203.0.113.11:80 allowed.test /unresolved)"
echo "@spoofed $(probe http 203.0.113.10:80 a.shared.test /spoofed)"
echo "@other-port $(probe tls 203.0.113.10:443 allowed.test)"
echo "@udp $(probe udp 203.0.113.10:7 x)"
"#,
    );
    let fetched: Value = serde_json::from_str(r.get("fetch")).expect("the fetch printed JSON");
    assert_eq!(fetched["path"], "/by-name", "{fetched}");
    // Another public address, and that address named as allowed.test without our DNS
    // having said so: refused at the SYN.
    r.has("other-ip", &["rc=1", "Connection refused"]);
    r.is("unresolved", "refused");
    // The allowed name's own address, asked for another name: reset once the Host is read.
    r.is("spoofed", "reset");
    // Ports and protocols the rule does not name.
    r.is("other-port", "refused");
    r.is("udp", "refused");

    assert!(
        !lab.w.saw(networld::INTERNET_2),
        "{:?}",
        lab.w.hits_at(networld::INTERNET_2)
    );
    let hits = lab.w.hits_at(networld::INTERNET);
    assert_eq!(
        lab.http_hits(networld::INTERNET),
        [("allowed.test".to_string(), "/by-name".to_string())],
        "{hits:?}"
    );
    assert!(hits.iter().all(|h| h.service == Service::Http), "{hits:?}");
    lab.sb.assert_no_vm_left();
}

#[test]
fn a_domain_deny_spares_other_names_on_its_ip_and_cidr_and_host_rules_open_their_ports() {
    let Some(lab) = Lab::new() else { return };
    let rules = [
        "--network",
        "public-only",
        "--net-rule",
        "deny@denied.test",
        "--net-rule",
        "allow@10.20.0.0/16:tcp:80",
        "--net-rule",
        "allow@host:tcp:80",
    ];
    let r = lab.run_script(
        &rules,
        r#"
echo "@deny-host $(probe http 203.0.113.11:80 denied.test /denied)"
echo "@shared-a $(probe http 203.0.113.11:80 a.shared.test /shared-a)"
echo "@shared-b $(wget -q -O - http://b.shared.test/shared-b 2>&1)"
echo "@deny-sni $(probe tls 203.0.113.11:443 denied.test)"
echo "@shared-sni $(probe tls 203.0.113.11:443 a.shared.test)"
echo "@deny-dns $(probe resolve denied.test A)"
echo "@lan $(wget -q -O - http://10.20.0.10/lan 2>&1)"
echo "@lan-udp $(probe udp 10.20.0.10:7 x)"
echo "@host $(wget -q -O - http://host.microsandbox.internal/host 2>&1)"
echo "@host-tls $(probe tls 100.96.0.1:443 localhost)"
echo "@meta $(probe http 169.254.169.254:80 x /meta)"
"#,
    );
    // One address, three names: the denied one is reset, by Host and by SNI; the others pass.
    r.is("deny-host", "reset");
    r.is("shared-a", "status 200");
    let b: Value = serde_json::from_str(r.get("shared-b")).expect("JSON from b.shared.test");
    assert_eq!(
        (&b["host"], &b["server"]),
        (&"b.shared.test".into(), &"internet-2".into()),
        "{b}"
    );
    r.is("deny-sni", "reset");
    r.is("shared-sni", "answer 22");
    r.is("deny-dns", "rcode=3 addrs=");
    // The CIDR rule opens the LAN's port 80 (TCP only); the host rule the host's port 80.
    let lan: Value = serde_json::from_str(r.get("lan")).expect("JSON from the LAN");
    assert_eq!(lan["server"], "lan", "{lan}");
    r.is("lan-udp", "refused");
    let host: Value = serde_json::from_str(r.get("host")).expect("JSON from the host");
    assert_eq!(host["server"], "host", "{host}");
    // Denied whatever name they carry: refused at the SYN even though a domain rule comes
    // first (no handshake that looks open), and never reached (checked below).
    r.is("host-tls", "refused");
    r.is("meta", "refused");

    let at2 = lab.w.hits_at(networld::INTERNET_2);
    let mut http2 = lab.http_hits(networld::INTERNET_2);
    http2.sort();
    assert_eq!(
        http2,
        [
            ("a.shared.test".to_string(), "/shared-a".to_string()),
            ("b.shared.test".to_string(), "/shared-b".to_string())
        ],
        "{at2:?}"
    );
    assert_eq!(lab.snis(networld::INTERNET_2), [Some("a.shared.test".to_string())]);
    // Denied flows never made a connection upstream: three allowed ones did.
    let connects = at2.iter().filter(|h| h.event == Event::Connected).count();
    assert_eq!(connects, 3, "{at2:?}");
    assert_eq!(
        lab.http_hits(networld::LAN),
        [("10.20.0.10".to_string(), "/lan".to_string())]
    );
    assert!(lab.w.hits_at(networld::LAN).iter().all(|h| h.service == Service::Http));
    assert_eq!(
        lab.http_hits(networld::HOST),
        [("host.microsandbox.internal".to_string(), "/host".to_string())]
    );
    assert!(lab
        .w
        .hits()
        .iter()
        .all(|h| h.service != Service::Https || h.side == Side::World));
    assert!(!lab.w.saw(networld::METADATA));
    lab.sb.assert_no_vm_left();
}

#[test]
fn no_net_leaves_the_guest_only_loopback() {
    let Some(lab) = Lab::new() else { return };
    let r = lab.run_script(
        &["--no-net"],
        r#"
echo "@links $(ip -o link | cut -d: -f2 | tr -d ' ' | tr '\n' ' ')"
r=$(nc -w 3 203.0.113.10 80 </dev/null 2>&1); echo "@tcp rc=$? $r"
echo "@dns $(probe resolve allowed.test A)"
"#,
    );
    r.is("links", "lo");
    r.has("tcp", &["rc=1", "unreachable"]);
    r.is("dns", "NetworkUnreachable");
    assert!(lab.w.hits().is_empty(), "{:?}", lab.w.hits());
    lab.sb.assert_no_vm_left();
}

/// The storm: connections held past `--max-connections`, then thousands opened and closed
/// one after another, allowed and denied.
const STORM_SCRIPT: &str = r#"
echo "@hold $(probe hold 203.0.113.10:80 100)"
echo "@allowed $(probe churn 203.0.113.10:80 6000)"
echo "@denied $(probe churn 10.20.0.10:80 4000)"
echo "@after $(probe http 203.0.113.10:80 allowed.test /after-storm)"
"#;

#[test]
fn published_ports_serve_many_clients_and_a_connection_storm_harms_no_one() {
    let Some(lab) = Lab::new() else { return };
    let root = lab.sb.rootfs.to_str().unwrap();
    std::fs::create_dir_all(lab.sb.rootfs.join("www")).unwrap();
    std::fs::write(lab.sb.rootfs.join("www/index.html"), "hello from the guest\n").unwrap();
    // A server with a thread per client: busybox httpd forks one process each, and 500 of
    // them at once can exhaust the guest's memory (fork fails, the connection is closed).
    let serve = "probe udp-echo 9000 900 & exec probe serve-http 8080 /www/index.html 900";
    let ports = ["-p", "127.0.0.1:18080:8080", "-p", "127.0.0.1:18081:9000/udp"];
    let run = ["run", "-d", "-n", "web", "--rootfs", root];
    lab.ok(&[&run[..], &ports, &["--", "sh", "-c", serve]].concat());
    let tcp: SocketAddr = "127.0.0.1:18080".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while lab.w.in_sbx(|| Ok(get(tcp))).unwrap().is_err() {
        assert!(
            Instant::now() < deadline,
            "the published port never served: {:?}",
            lab.w.in_sbx(|| Ok(get(tcp)))
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The port is taken: a second sandbox asking for it fails, naming the holder.
    let out = lab.msb(&[
        "run",
        "-n",
        "web2",
        "-p",
        "127.0.0.1:18080:8080",
        "--rootfs",
        root,
        "--",
        "true",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("18080") && err.contains("'web'"), "{err}");
    let ls = lab.ok(&["ls", "--no-trunc"]);
    for cell in ["127.0.0.1:18080->8080/tcp", "127.0.0.1:18081->9000/udp"] {
        assert!(ls.contains(cell), "{cell} not in\n{ls}");
    }

    // 500 clients at once, all served.
    let (served, failed) = lab.w.in_sbx(|| concurrent_gets(tcp, 500)).unwrap();
    assert_eq!(served, 500, "failures: {failed:?}");
    // UDP through the published port, echoed by the guest.
    let echoed = lab
        .w
        .in_sbx(|| udp_round_trip("127.0.0.1:18081".parse().unwrap()))
        .unwrap();
    assert_eq!(echoed.as_deref(), Some(&b"through a published port"[..]));
    let accepts = lab.net_metrics("web")["published_accepts"].as_u64().unwrap();
    assert!(accepts >= 500, "published_accepts = {accepts}");

    // A second sandbox storms the network.
    let root2 = lab.sb.home().join("rootfs-storm");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&lab.sb.rootfs)
        .arg(&root2)
        .status()
        .unwrap();
    assert!(copied.success());
    let run2 = [
        "run",
        "-d",
        "-n",
        "storm",
        "--max-connections",
        "64",
        "--rootfs",
        root2.to_str().unwrap(),
    ];
    lab.ok(&[&run2[..], &["--", "sleep", "900"]].concat());
    let r = lab.exec_script("storm", STORM_SCRIPT);
    r.is("hold", "ok=64 refused=36 other=0");
    r.is("allowed", "ok=6000 refused=0 other=0");
    r.is("denied", "ok=0 refused=4000 other=0");
    r.is("after", "status 200");
    let connects = lab
        .w
        .hits_at(networld::INTERNET)
        .iter()
        .filter(|h| h.event == Event::Connected)
        .count();
    assert!(connects >= 6064, "the world saw {connects} connections");
    assert!(!lab.w.saw(networld::LAN));

    // The storm's supervisor is up and its counters say what happened; its flows are gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    let net = loop {
        let net = lab.net_metrics("storm");
        if net["flows_open"] == 0 || Instant::now() > deadline {
            break net;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(net["flows_open"], 0, "{net}");
    assert!(net["denied_policy"].as_u64().unwrap() >= 4000, "{net}");
    assert!(net["denied_limit"].as_u64().unwrap() >= 36, "{net}");
    assert_eq!(
        lab.ok(&["exec", "--no-start", "storm", "--", "echo", "alive"]),
        "alive\n"
    );
    // The other sandbox never noticed.
    assert_eq!(lab.ok(&["exec", "--no-start", "web", "--", "echo", "alive"]), "alive\n");
    lab.w
        .in_sbx(|| Ok(get(tcp)))
        .unwrap()
        .expect("the published port after the storm");

    lab.ok(&["rm", "-f", "web", "storm"]);
    lab.sb.assert_no_vm_left();
}

/// `GET /` through `addr`: Ok when it answered 200 with the page.
fn get(addr: SocketAddr) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
    let mut b = Vec::new();
    s.read_to_end(&mut b).map_err(|e| e.to_string())?;
    let ok = b.starts_with(b"HTTP/1.") && text(&b).contains(" 200 ") && b.ends_with(b"hello from the guest\n");
    ok.then_some(()).ok_or_else(|| format!("answered {:?}", text(&b)))
}

/// `n` connections opened first and held, then a request on each, then every answer read:
/// how many were served, and what the others got.
fn concurrent_gets(addr: SocketAddr, n: usize) -> std::io::Result<(usize, Vec<String>)> {
    let mut socks = Vec::new();
    for _ in 0..n {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        socks.push(s);
    }
    for (i, s) in socks.iter_mut().enumerate() {
        write!(s, "GET /index.html?n={i} HTTP/1.0\r\n\r\n")?;
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    let (mut served, mut failed) = (0, Vec::new());
    for (i, s) in socks.iter_mut().enumerate() {
        if Instant::now() > deadline {
            failed.push(format!("#{i}: not read in time"));
            continue;
        }
        let mut b = Vec::new();
        match s.read_to_end(&mut b) {
            Ok(_)
                if b.starts_with(b"HTTP/1.")
                    && text(&b).contains(" 200 ")
                    && b.ends_with(b"hello from the guest\n") =>
            {
                served += 1
            }
            r => failed.push(format!("#{i}: {r:?} {:?}", text(&b))),
        }
    }
    Ok((served, failed))
}

/// One datagram to `addr` and its echo (a few tries: the echo server starts with the guest).
fn udp_round_trip(addr: SocketAddr) -> std::io::Result<Option<Vec<u8>>> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut b = [0u8; 256];
    for _ in 0..10 {
        s.send_to(b"through a published port", addr)?;
        if let Ok((n, _)) = s.recv_from(&mut b) {
            return Ok(Some(b[..n].to_vec()));
        }
    }
    Ok(None)
}
