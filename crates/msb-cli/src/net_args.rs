//! The network options of `msb run` and `msb create`: policy, published ports, DNS.

use microsandbox::{Action, DnsSpec, NetPolicy, PublishedPort, Rule, SandboxBuilder, DEFAULT_DNS_QUERY_TIMEOUT_MS};

/// How the sandbox's network is set up.
#[derive(clap::Args, Debug)]
pub struct NetArgs {
    /// Network policy preset: none, public-only (the default: out to public addresses, in
    /// through published ports), non-local (public and private) or allow-all.
    #[arg(long, value_name = "PRESET", value_parser = parse_preset)]
    network: Option<NetPolicy>,
    /// No network interface at all: the guest has only `lo`.
    #[arg(long, conflicts_with_all = ["network", "net_rules", "net_default_egress", "net_default_ingress", "ports"])]
    no_net: bool,
    /// A policy rule, ACTION[:DIRECTION]@TARGET[:PROTO[:PORTS]] (allow@public,
    /// deny@suffix=ads.example.com, allow@host:tcp:8080, allow:ingress@10.0.0.0/8);
    /// comma-separated or repeated; the first match wins, before the preset's rules.
    #[arg(long = "net-rule", value_name = "RULE", value_parser = parse_rules)]
    net_rules: Vec<Rules>,
    /// What happens to flows out of the guest no rule matches: allow or deny.
    #[arg(long, value_name = "ACTION", value_parser = parse_action)]
    net_default_egress: Option<Action>,
    /// What happens to flows into the guest no rule matches: allow or deny.
    #[arg(long, value_name = "ACTION", value_parser = parse_action)]
    net_default_ingress: Option<Action>,
    /// Forward a host port into the guest: [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp]; the host
    /// side listens on 127.0.0.1 unless HOSTIP is given ([::1] for IPv6); repeatable.
    #[arg(short = 'p', long = "port", value_name = "[HOSTIP:]HOSTPORT:GUESTPORT", value_parser = parse_port)]
    ports: Vec<PublishedPort>,
    /// Most flows the guest may have open at once [default: 1024].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// Answer this name NXDOMAIN at the sandbox's DNS; repeatable.
    #[arg(long = "dns-block-domain", value_name = "NAME", value_parser = parse_domain)]
    dns_block_domains: Vec<String>,
    /// Answer this name and every name under it NXDOMAIN; repeatable.
    #[arg(long = "dns-block-suffix", value_name = "NAME", value_parser = parse_domain)]
    dns_block_suffixes: Vec<String>,
    /// Let DNS answers point at private, loopback and link-local addresses.
    #[arg(long)]
    no_dns_rebind_protection: bool,
    /// Upstream DNS server, IP or IP:PORT ([IPv6]:PORT); repeatable [default: the host's
    /// resolv.conf].
    #[arg(long = "dns-nameserver", value_name = "IP[:PORT]", value_parser = parse_nameserver)]
    dns_nameservers: Vec<String>,
    /// How long one upstream DNS query may take, in milliseconds [default: 5000].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    dns_query_timeout_ms: Option<u64>,
}

/// The rules of one `--net-rule` argument, in order.
#[derive(Debug, Clone)]
struct Rules(Vec<Rule>);

impl NetArgs {
    /// The ports `-p` publishes.
    pub fn ports(&self) -> &[PublishedPort] {
        &self.ports
    }

    /// `b` with the network options applied.
    pub fn apply(&self, mut b: SandboxBuilder) -> SandboxBuilder {
        if self.no_net {
            b = b.no_network();
        }
        let rules: Vec<Rule> = self.net_rules.iter().flat_map(|r| r.0.iter().cloned()).collect();
        let (egress, ingress) = (self.net_default_egress, self.net_default_ingress);
        if self.network.is_some() || !rules.is_empty() || egress.is_some() || ingress.is_some() {
            b = b.net_policy(NetPolicy::compose(self.network.clone(), rules, egress, ingress));
        }
        for port in &self.ports {
            b = b.publish(*port);
        }
        if let Some(n) = self.max_connections {
            b = b.max_connections(n);
        }
        if let Some(dns) = self.dns() {
            b = b.dns(dns);
        }
        b
    }

    /// The DNS settings, if any DNS option was given.
    fn dns(&self) -> Option<DnsSpec> {
        let given = !self.dns_block_domains.is_empty()
            || !self.dns_block_suffixes.is_empty()
            || self.no_dns_rebind_protection
            || !self.dns_nameservers.is_empty()
            || self.dns_query_timeout_ms.is_some();
        given.then(|| DnsSpec {
            blocked_domains: self.dns_block_domains.clone(),
            blocked_suffixes: self.dns_block_suffixes.clone(),
            rebind_protection: !self.no_dns_rebind_protection,
            nameservers: self.dns_nameservers.clone(),
            query_timeout_ms: self.dns_query_timeout_ms.unwrap_or(DEFAULT_DNS_QUERY_TIMEOUT_MS),
        })
    }
}

fn parse_preset(text: &str) -> Result<NetPolicy, String> {
    NetPolicy::preset(text).map_err(|e| e.problem)
}

fn parse_rules(text: &str) -> Result<Rules, String> {
    Rule::parse_list(text).map(Rules).map_err(|e| e.problem)
}

fn parse_action(text: &str) -> Result<Action, String> {
    text.parse().map_err(|e: microsandbox::SpecError| e.problem)
}

fn parse_port(text: &str) -> Result<PublishedPort, String> {
    PublishedPort::parse(text).map_err(|e| e.problem)
}

fn parse_domain(text: &str) -> Result<String, String> {
    microsandbox::normalize_domain(text)
}

/// Checks the nameserver now, but keeps it as written: the spec stores the text.
fn parse_nameserver(text: &str) -> Result<String, String> {
    DnsSpec::nameserver_addr(text)
        .map(|_| text.to_string())
        .map_err(|e| e.problem)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;
    use microsandbox::{Destination, Group, Microsandbox, NetworkSpec, Transport};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        net: NetArgs,
    }

    fn network(args: &[&str]) -> NetworkSpec {
        let cli = Cli::try_parse_from(std::iter::once("msb").chain(args.iter().copied())).unwrap();
        let builder = Microsandbox::at("/nonexistent").builder("net").rootfs("/r");
        cli.net.apply(builder).build().unwrap().network
    }

    fn error(args: &[&str]) -> String {
        Cli::try_parse_from(std::iter::once("msb").chain(args.iter().copied()))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn nothing_given_is_the_default_network() {
        assert_eq!(network(&[]), NetworkSpec::default());
    }

    #[test]
    fn presets_rules_and_defaults() {
        assert_eq!(network(&["--network", "allow_all"]).policy, NetPolicy::allow_all());
        let net = network(&[
            "--net-rule",
            "deny@domain=a.example.com,allow@host:tcp:8080",
            "--network",
            "non-local",
            "--net-rule",
            "deny@10.0.0.0/8",
            "--net-default-ingress",
            "deny",
        ]);
        let targets: Vec<_> = net.policy.rules.iter().map(|r| r.destination.clone()).collect();
        assert_eq!(targets[0], Destination::Domain("a.example.com".into()));
        assert_eq!(targets[1], Destination::Group(Group::Host));
        assert!(matches!(targets[2], Destination::Cidr(_)));
        assert_eq!(
            targets[3..],
            [Destination::Group(Group::Public), Destination::Group(Group::Private)]
        );
        assert_eq!(net.policy.default_ingress, Action::Deny);
        assert_eq!(net.policy.default_egress, Action::Deny);

        let bare = network(&["--net-rule", "allow@example.com"]).policy;
        assert_eq!(
            (bare.default_egress, bare.default_ingress, bare.rules.len()),
            (Action::Deny, Action::Allow, 1)
        );
        let open = network(&["--net-default-egress", "allow"]).policy;
        assert_eq!((open.default_egress, open.rules.len()), (Action::Allow, 0));
    }

    #[test]
    fn ports_dns_and_limits() {
        let net = network(&[
            "-p",
            "8080:80",
            "--port",
            "0.0.0.0:5353:53/udp",
            "--max-connections",
            "16",
            "--dns-block-domain",
            "Ads.Example.com.",
            "--dns-block-suffix",
            "tracker.io",
            "--no-dns-rebind-protection",
            "--dns-nameserver",
            "[::1]:5353",
            "--dns-query-timeout-ms",
            "250",
        ]);
        assert_eq!(net.ports[0], PublishedPort::new(8080, 80, Transport::Tcp));
        assert_eq!(net.ports[1].to_string(), "0.0.0.0:5353:53/udp");
        assert_eq!(net.max_connections, 16);
        assert_eq!(net.dns.blocked_domains, ["ads.example.com"]);
        assert_eq!(net.dns.blocked_suffixes, ["tracker.io"]);
        assert!(!net.dns.rebind_protection);
        assert_eq!(net.dns.nameservers, ["[::1]:5353"]);
        assert_eq!(net.dns.query_timeout_ms, 250);
    }

    #[test]
    fn no_net_means_no_interface() {
        let net = network(&["--no-net", "--max-connections", "4"]);
        assert!(!net.enabled);
        assert_eq!(net.policy, NetPolicy::none());
        for flag in [
            ["--net-rule", "allow@public"],
            ["--network", "none"],
            ["--net-default-egress", "allow"],
            ["--net-default-ingress", "deny"],
            ["-p", "8080:80"],
        ] {
            let err = error(&["--no-net", flag[0], flag[1]]);
            assert!(err.contains("cannot be used with"), "{flag:?}: {err}");
        }
    }

    #[test]
    fn bad_values_are_usage_errors_with_the_parsers_words() {
        for (args, fragment) in [
            (["--net-rule", "allow@host:443"], "write host:tcp:443"),
            (["--net-rule", "allow@localhost"], "loopback group"),
            (["--network", "public"], "did you mean 'public-only'"),
            (["--net-default-egress", "alow"], "did you mean 'allow'"),
            (["-p", "8080"], "both ports"),
            (["--max-connections", "0"], "0"),
            (["--dns-block-domain", "a..b"], "empty label"),
            (["--dns-nameserver", "dns.google"], "IP:PORT"),
            (["--dns-query-timeout-ms", "0"], "0"),
        ] {
            let err = error(&args);
            assert!(err.contains("invalid value"), "{args:?}: {err}");
            assert!(err.contains(fragment), "{args:?}: {err}");
        }
    }
}
