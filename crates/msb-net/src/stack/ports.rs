//! Published ports' host sockets, bound before the VM boots so a port that is taken fails
//! the start with its name, not a running sandbox with a missing port.

use msb_types::{PublishedPort, Transport};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};

/// Pending connections each published TCP port queues while the stack accepts.
const BACKLOG: i32 = 1024;

/// A published port that could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Something else has it.
    #[error("host port {port}/{transport} on {ip} is already in use: publish another host port or stop what holds it")]
    InUse {
        /// Host address.
        ip: IpAddr,
        /// Host port.
        port: u16,
        /// `tcp` or `udp`.
        transport: &'static str,
        /// The bind error.
        #[source]
        source: io::Error,
    },
    /// Any other failure to bind or listen.
    #[error("cannot publish host port {port}/{transport} on {ip}")]
    Bind {
        /// Host address.
        ip: IpAddr,
        /// Host port.
        port: u16,
        /// `tcp` or `udp`.
        transport: &'static str,
        /// What failed.
        #[source]
        source: io::Error,
    },
}

/// Host sockets of a sandbox's published ports, in the order they were given.
#[derive(Debug, Default)]
pub struct BoundPorts {
    pub(crate) ports: Vec<PublishedPort>,
    pub(crate) sockets: Vec<Bound>,
}

/// One published port's host socket.
#[derive(Debug)]
pub(crate) enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

impl BoundPorts {
    /// The address each port is bound to, in order (a host port of 0 shows the one chosen).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter_map(|s| match s {
                Bound::Tcp(l) => l.local_addr().ok(),
                Bound::Udp(u) => u.local_addr().ok(),
            })
            .collect()
    }
}

/// Binds (and for TCP, listens on) every published port's host address.
pub fn bind_ports(ports: &[PublishedPort]) -> Result<BoundPorts, PortError> {
    let sockets = ports.iter().map(bind).collect::<Result<Vec<_>, _>>()?;
    Ok(BoundPorts {
        ports: ports.to_vec(),
        sockets,
    })
}

fn bind(port: &PublishedPort) -> Result<Bound, PortError> {
    let addr = SocketAddr::new(port.host_ip, port.host_port);
    let transport = match port.transport {
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
    };
    let fail = |source: io::Error| {
        let (ip, port) = (addr.ip(), addr.port());
        if source.kind() == io::ErrorKind::AddrInUse {
            PortError::InUse {
                ip,
                port,
                transport,
                source,
            }
        } else {
            PortError::Bind {
                ip,
                port,
                transport,
                source,
            }
        }
    };
    let (kind, protocol) = match port.transport {
        Transport::Tcp => (Type::STREAM, Protocol::TCP),
        Transport::Udp => (Type::DGRAM, Protocol::UDP),
    };
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol)).map_err(fail)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(fail)?;
    }
    if port.transport == Transport::Tcp {
        // Lets a restarted sandbox take its port back while old connections sit in TIME-WAIT;
        // a live listener still makes the bind fail.
        socket.set_reuse_address(true).map_err(fail)?;
    }
    socket.bind(&addr.into()).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(match port.transport {
        Transport::Tcp => {
            socket.listen(BACKLOG).map_err(fail)?;
            Bound::Tcp(socket.into())
        }
        Transport::Udp => Bound::Udp(socket.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn tcp(host_port: u16) -> PublishedPort {
        PublishedPort {
            host_ip: Ipv4Addr::LOCALHOST.into(),
            host_port,
            guest_port: 80,
            transport: Transport::Tcp,
        }
    }

    #[test]
    fn a_taken_port_is_named_in_the_error() {
        let taken = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind_ports(&[tcp(port)]).unwrap_err();
        assert!(matches!(err, PortError::InUse { port: p, .. } if p == port), "{err:?}");
        assert!(err.to_string().contains(&format!("{port}/tcp")), "{err}");
    }

    #[test]
    fn ports_bind_in_order_and_report_their_addresses() {
        let mut udp = tcp(0);
        udp.transport = Transport::Udp;
        let bound = bind_ports(&[tcp(0), udp]).unwrap();
        let addrs = bound.local_addrs();
        assert_eq!(addrs.len(), 2);
        assert!(addrs.iter().all(|a| a.ip() == Ipv4Addr::LOCALHOST && a.port() != 0));
    }
}
