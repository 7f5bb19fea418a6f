//! The guest side of the network tests and benchmarks: a static, std-only binary (built for
//! the guest like the agent, by `cargo xtask bench net`, or by `rustc` in
//! `tests/vm_network.rs`) that runs one measurement or one check and prints one line.
//!
//! ```text
//! msb-netprobe upload   HOST:PORT BYTES        send BYTES to a sink, wait for its count (JSON)
//! msb-netprobe download HOST:PORT BYTES        ask a source for BYTES and read them (JSON)
//! msb-netprobe connect  HOST:PORT COUNT        COUNT sequential connects (JSON)
//! msb-netprobe dns      HOST:PORT NAME COUNT   COUNT sequential UDP A queries (JSON)
//! msb-netprobe resolve  NAME A|AAAA            one query to the resolv.conf server
//! msb-netprobe http     ADDR HOST PATH         GET PATH with that Host
//! msb-netprobe tls      ADDR SNI               a ClientHello naming SNI
//! msb-netprobe udp      ADDR MSG               one datagram and its echo
//! msb-netprobe udp-echo PORT SECS              echo datagrams for SECS
//! msb-netprobe serve-http PORT FILE SECS       serve FILE over HTTP, a thread per client
//! msb-netprobe churn    ADDR N                 N connects, each closed at once
//! msb-netprobe hold     ADDR N                 N connections held open together
//! ```
//!
//! Every wait is bounded (socket timeouts), so a broken network ends a run with an error
//! line instead of a hang.

mod checks;
mod measure;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let num = |s: &str| s.parse::<u64>().unwrap_or(0);
    let check = match words.as_slice() {
        ["resolve", name, ty] => Some(checks::resolve(name, ty)),
        ["http", addr, host, path] => Some(checks::http(checks::sa(addr), host, path)),
        ["tls", addr, sni] => Some(checks::tls(checks::sa(addr), sni)),
        ["udp", addr, msg] => Some(checks::udp(checks::sa(addr), msg)),
        ["udp-echo", port, secs] => Some(checks::udp_echo(num(port) as u16, num(secs))),
        ["serve-http", port, file, secs] => Some(checks::serve_http(num(port) as u16, file, num(secs))),
        ["churn", addr, n] => Some(checks::churn(checks::sa(addr), num(n))),
        ["hold", addr, n] => Some(checks::hold(checks::sa(addr), num(n))),
        _ => None,
    };
    if let Some(line) = check {
        println!("{line}");
        return ExitCode::SUCCESS;
    }
    use measure::{connect, dns, download, parse, upload};
    let result = match words.as_slice() {
        ["upload", addr, bytes] => parse(addr, bytes).and_then(|(a, n)| upload(a, n)),
        ["download", addr, bytes] => parse(addr, bytes).and_then(|(a, n)| download(a, n)),
        ["connect", addr, count] => parse(addr, count).and_then(|(a, n)| connect(a, n)),
        ["dns", addr, name, count] => parse(addr, count).and_then(|(a, n)| dns(a, name, n)),
        _ => Err("usage: see the module documentation of msb-netprobe".into()),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let test = words.first().copied().unwrap_or("");
            println!("{{\"test\":\"{test}\",\"error\":\"{}\"}}", e.replace(['"', '\\'], "'"));
            ExitCode::FAILURE
        }
    }
}

/// A standard query (recursion desired) for NAME's records of type QTYPE.
fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(64);
    q.extend(id.to_be_bytes());
    q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("bad name {name}"));
        }
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.push(0);
    q.extend(qtype.to_be_bytes());
    q.extend([0, 1]);
    Ok(q)
}
