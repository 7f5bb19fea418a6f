//! Policy evaluation time per flow for `cargo xtask bench net`: [`Policy::check`] over a
//! realistic policy — the public-only preset behind twenty rules of every kind a user
//! writes (groups, address blocks, ports, ingress, domain and suffix rules) — for the kinds
//! of flow the stack asks about, each timed in a tight loop. Meaningful in an optimised
//! build only (see `net_host.rs`).

use super::stats::Summary;
use anyhow::{bail, Context, Result};
use microsandbox::{Direction, NetPolicy, Protocol, Rule};
use msb_net::policy::{FlowName, FlowQuery, Policy, Verdict};
use msb_net::stack::StackConfig;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// The rules in front of the public-only preset's `allow@public`, as `--net-rule` spells
/// them: what a user who pins the services a build needs might write.
const RULES: [&str; 20] = [
    "deny@metadata",
    "deny@link-local",
    "deny@suffix=ads.example.com",
    "deny@domain=tracker.example.net",
    "deny@*.doubleclick.net",
    "allow@host:tcp:8080",
    "allow@10.0.0.0/8:tcp:5432",
    "allow@192.168.1.0/24:tcp:22",
    "deny@198.51.100.0/24",
    "allow@domain=api.github.com:tcp:443",
    "allow@domain=github.com:tcp:443",
    "allow@suffix=githubusercontent.com:tcp:443",
    "allow@domain=pypi.org:tcp:443",
    "allow@suffix=pythonhosted.org:tcp:443",
    "allow@domain=registry.npmjs.org:tcp:443",
    "allow@suffix=crates.io:tcp:443",
    "allow@domain=index.docker.io:tcp:443",
    "allow@suffix=amazonaws.com:tcp:443",
    "allow@[2001:db8::]/32:tcp:443",
    "allow:ingress@10.0.0.0/8:tcp:8000-8100",
];

/// Checks per timed loop.
const CHECKS: u32 = 1_000_000;
/// Timed loops per kind of flow; the median is reported (the machine is shared).
const ROUNDS: usize = 3;

/// One kind of flow and its time per check.
#[derive(Debug, Clone)]
pub struct FlowTime {
    /// What the flow is.
    pub what: String,
    /// How the policy decided it: `allow`, `deny` or `need name`.
    pub verdict: String,
    /// Time per check, ns: the median of the rounds.
    pub ns: f64,
}

/// The policy figure.
#[derive(Debug, Clone)]
pub struct PolicyFigures {
    /// Rules in the policy (the preset's included).
    pub rules: usize,
    /// Checks per timed loop.
    pub checks: u32,
    /// Timed loops per kind of flow.
    pub rounds: usize,
    /// Each kind of flow.
    pub flows: Vec<FlowTime>,
}

impl PolicyFigures {
    /// Mean over the kinds of flow (each weighs the same), ns.
    pub fn mean_ns(&self) -> f64 {
        self.flows.iter().map(|f| f.ns).sum::<f64>() / self.flows.len().max(1) as f64
    }

    /// The slowest kind of flow, ns.
    pub fn max_ns(&self) -> f64 {
        self.flows.iter().map(|f| f.ns).fold(0.0, f64::max)
    }
}

/// A flow to time and the verdict it must get (so the loop measures the path it claims to).
struct Case<'a> {
    what: &'static str,
    flow: FlowQuery<'a>,
    expect: &'static str,
}

/// Builds the policy, checks each kind of flow gets its verdict, and times them.
pub fn measure() -> Result<PolicyFigures> {
    let mut rules = Vec::new();
    for text in RULES {
        rules.extend(Rule::parse_list(text).with_context(|| format!("rule {text}"))?);
    }
    let spec = NetPolicy::compose(Some(NetPolicy::public_only()), rules, None, None);
    let count = spec.rules.len();
    let policy = Policy::new(spec, IpAddr::V4(StackConfig::default().gateway_ip));
    let pypi = [String::from("pypi.org")];
    let wheels = [String::from("files.pythonhosted.org")];
    let mut flows = Vec::new();
    for case in cases(&pypi, &wheels) {
        let got = verdict_name(policy.check(&case.flow));
        if got != case.expect {
            bail!("policy bench: {} got {got}, not {}", case.what, case.expect);
        }
        let loops: Vec<Duration> = (0..ROUNDS).map(|_| timed_loop(&policy, &case.flow)).collect();
        flows.push(FlowTime {
            what: case.what.to_string(),
            verdict: got.to_string(),
            ns: Summary::of(&loops).median * 1e9 / f64::from(CHECKS),
        });
    }
    Ok(PolicyFigures {
        rules: count,
        checks: CHECKS,
        rounds: ROUNDS,
        flows,
    })
}

/// The kinds of flow timed; `pypi` and `wheels` are the names DNS pinned to their addresses.
fn cases<'a>(pypi: &'a [String], wheels: &'a [String]) -> Vec<Case<'a>> {
    let egress = |protocol, ip: [u8; 4], port, pinned_names, name| FlowQuery {
        direction: Direction::Egress,
        protocol,
        ip: IpAddr::V4(Ipv4Addr::from(ip)),
        port,
        pinned_names,
        name,
    };
    let tcp = Protocol::Tcp;
    vec![
        Case {
            what: "TLS to a pinned name (pypi.org, SNI pypi.org): domain allow",
            flow: egress(tcp, [151, 101, 0, 223], 443, pypi, FlowName::Name("pypi.org")),
            expect: "allow",
        },
        Case {
            what: "TLS under a suffix (files.pythonhosted.org): suffix allow",
            flow: egress(
                tcp,
                [151, 101, 64, 223],
                443,
                wheels,
                FlowName::Name("files.pythonhosted.org"),
            ),
            expect: "allow",
        },
        Case {
            what: "pinned address, SNI naming a denied suffix (spoof)",
            flow: egress(tcp, [151, 101, 0, 223], 443, pypi, FlowName::Name("x.ads.example.com")),
            expect: "deny",
        },
        Case {
            what: "SYN to a public address, first bytes not seen yet",
            flow: egress(tcp, [151, 101, 0, 223], 443, pypi, FlowName::NotYet),
            expect: "need name",
        },
        Case {
            what: "public address, no name: every rule, then allow@public",
            flow: egress(tcp, [203, 0, 113, 10], 80, &[], FlowName::Absent),
            expect: "allow",
        },
        Case {
            what: "UDP to a public address (NTP): every rule, then allow@public",
            flow: egress(Protocol::Udp, [203, 0, 113, 123], 123, &[], FlowName::Absent),
            expect: "allow",
        },
        Case {
            what: "cloud metadata: the first rule denies",
            flow: egress(tcp, [169, 254, 169, 254], 80, &[], FlowName::Absent),
            expect: "deny",
        },
        Case {
            what: "private database (10.1.2.3:5432): address-block allow",
            flow: egress(tcp, [10, 1, 2, 3], 5432, &[], FlowName::Absent),
            expect: "allow",
        },
        Case {
            what: "private address, other port: default deny",
            flow: egress(tcp, [10, 1, 2, 3], 6379, &[], FlowName::Absent),
            expect: "deny",
        },
        Case {
            what: "ingress from 10.0.0.5 to guest port 8080",
            flow: FlowQuery {
                direction: Direction::Ingress,
                ..egress(tcp, [10, 0, 0, 5], 8080, &[], FlowName::Absent)
            },
            expect: "allow",
        },
    ]
}

/// [`CHECKS`] decisions of `flow`, timed.
fn timed_loop(policy: &Policy, flow: &FlowQuery<'_>) -> Duration {
    let started = Instant::now();
    for _ in 0..CHECKS {
        black_box(policy.check(black_box(flow)));
    }
    started.elapsed()
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow(_) => "allow",
        Verdict::Deny(_) => "deny",
        Verdict::NeedName => "need name",
    }
}
