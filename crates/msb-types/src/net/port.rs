//! Published ports: the `-p [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp]` syntax.

use super::{PublishedPort, Transport};
use crate::{Field, SpecError};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The host address ports are published on unless told otherwise: only this host can reach
/// them.
pub const DEFAULT_PUBLISH_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The syntax, for errors.
const FORM: &str = "[HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp]";

impl PublishedPort {
    /// `host_port` on [`DEFAULT_PUBLISH_IP`] forwarded to `guest_port`.
    pub fn new(host_port: u16, guest_port: u16, transport: Transport) -> PublishedPort {
        PublishedPort {
            host_ip: DEFAULT_PUBLISH_IP,
            host_port,
            guest_port,
            transport,
        }
    }

    /// Parses `[HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp]`: TCP and 127.0.0.1 unless given; an
    /// IPv6 host address is bracketed (`[::1]:8080:80`).
    pub fn parse(text: &str) -> Result<PublishedPort, SpecError> {
        parse(text).map_err(|problem| SpecError::new(Field::Ports, format!("'{text}': {problem}")))
    }
}

fn parse(text: &str) -> Result<PublishedPort, String> {
    let (body, transport) = match text.rsplit_once('/') {
        None => (text, Transport::Tcp),
        Some((body, t)) if t.eq_ignore_ascii_case("tcp") => (body, Transport::Tcp),
        Some((body, t)) if t.eq_ignore_ascii_case("udp") => (body, Transport::Udp),
        Some((_, t)) => return Err(format!("'/{t}' is not a transport: use /tcp or /udp")),
    };
    let (host_ip, ports) = match body.strip_prefix('[') {
        Some(bracketed) => {
            let (ip, rest) = bracketed
                .split_once(']')
                .ok_or("the IPv6 host address needs its closing ']'")?;
            let ip: Ipv6Addr = ip.parse().map_err(|_| format!("'{ip}' is not an IPv6 address"))?;
            let ports = rest
                .strip_prefix(':')
                .ok_or(format!("write {FORM}, with HOSTPORT after the ']'"))?;
            (IpAddr::V6(ip), ports)
        }
        None => match body.matches(':').count() {
            1 => (DEFAULT_PUBLISH_IP, body),
            2 => {
                let (ip, ports) = body.split_once(':').ok_or(format!("write {FORM}"))?;
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| format!("'{ip}' is not an IP address to listen on"))?;
                (ip, ports)
            }
            0 => return Err(format!("give both ports: {FORM}")),
            _ => {
                return Err(format!(
                    "write an IPv6 host address in brackets: [::1]:8080:80 ({FORM})"
                ))
            }
        },
    };
    let (host, guest) = ports.split_once(':').ok_or(format!("give both ports: {FORM}"))?;
    Ok(PublishedPort {
        host_ip,
        host_port: port(host, "host")?,
        guest_port: port(guest, "guest")?,
        transport,
    })
}

fn port(text: &str, side: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("'{text}' is not a {side} port (1 to 65535)"))
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        })
    }
}

/// The `-p` syntax, in full: `127.0.0.1:8080:80/tcp`, `[::1]:53:53/udp`.
impl fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            IpAddr::V4(ip) => write!(f, "{ip}")?,
            IpAddr::V6(ip) => write!(f, "[{ip}]")?,
        }
        write!(f, ":{}:{}/{}", self.host_port, self.guest_port, self.transport)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_parse() {
        let tcp = |host_ip: IpAddr, host_port, guest_port| PublishedPort {
            host_ip,
            host_port,
            guest_port,
            transport: Transport::Tcp,
        };
        assert_eq!(
            PublishedPort::parse("8080:80").unwrap(),
            tcp(DEFAULT_PUBLISH_IP, 8080, 80)
        );
        assert_eq!(
            PublishedPort::parse("0.0.0.0:8080:80/tcp").unwrap(),
            tcp("0.0.0.0".parse().unwrap(), 8080, 80)
        );
        assert_eq!(
            PublishedPort::parse("[::1]:53:5353/UDP").unwrap(),
            PublishedPort {
                transport: Transport::Udp,
                ..tcp("::1".parse().unwrap(), 53, 5353)
            }
        );
        assert_eq!(
            PublishedPort::parse("1:65535/udp").unwrap(),
            PublishedPort::new(1, 65535, Transport::Udp)
        );
    }

    #[test]
    fn bad_published_ports_say_why() {
        for (text, fragment) in [
            ("8080", "both ports"),
            ("0:80", "host port"),
            ("80:0", "guest port"),
            ("80:65536", "guest port"),
            ("x:80", "host port"),
            ("8080:80/sctp", "/tcp or /udp"),
            ("::1:8080:80", "brackets"),
            ("[::1:8080:80", "']'"),
            ("[::1]8080:80", "after the ']'"),
            ("[1.2.3.4]:1:2", "IPv6"),
            ("localhost:8080:80", "not an IP address"),
        ] {
            let err = PublishedPort::parse(text).unwrap_err();
            assert_eq!(err.field, Field::Ports);
            assert!(err.problem.contains(fragment), "{text}: {}", err.problem);
        }
    }

    #[test]
    fn display_is_the_flag_syntax() {
        for text in ["127.0.0.1:8080:80/tcp", "[::]:53:53/udp"] {
            assert_eq!(PublishedPort::parse(text).unwrap().to_string(), text);
        }
    }
}
