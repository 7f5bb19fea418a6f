//! The guest's network: `lo` always up, and the one interface the host gave it configured
//! with its address, MTU and default route (plain ioctls: a handful of calls do not justify
//! a netlink library in PID 1).

use msb_protocol::GuestNetwork;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Brings `lo` up and, if the guest has a network, its interface: address, netmask, MTU,
/// up, and a default route through the gateway.
pub fn configure(network: Option<&GuestNetwork>) -> io::Result<()> {
    let sock = control_socket()?;
    set_up(&sock, "lo")?;
    let Some(net) = network else {
        return Ok(());
    };
    let name = interface_with_mac(&net.mac)?;
    let at = |what: &'static str| {
        let name = name.clone();
        move |e: io::Error| io::Error::new(e.kind(), format!("{what} of {name}: {e}"))
    };
    set_addr(&sock, &name, libc::SIOCSIFADDR, Ipv4Addr::from(net.address)).map_err(at("setting the address"))?;
    set_addr(&sock, &name, libc::SIOCSIFNETMASK, netmask(net.prefix_len)).map_err(at("setting the netmask"))?;
    set_mtu(&sock, &name, net.mtu).map_err(at("setting the MTU"))?;
    set_up(&sock, &name).map_err(at("bringing up"))?;
    default_route(&sock, Ipv4Addr::from(net.gateway)).map_err(at("adding the default route"))
}

/// Brings every interface up, without an address (nothing is sent: the guest has no
/// IPv6 and no address to ARP for). Done at the agent's start, before its port opens, so a
/// template holds the links up and a resumed guest skips opening them, ~10 ms under TCG
/// (the NIC's receive buffers are allocated then); [`configure`] addresses them later.
pub fn bring_up_links() -> io::Result<()> {
    let sock = control_socket()?;
    for entry in std::fs::read_dir("/sys/class/net")?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        set_up(&sock, &name).map_err(|e| io::Error::new(e.kind(), format!("bringing up {name}: {e}")))?;
    }
    Ok(())
}

/// The name of the interface whose MAC is `mac`.
fn interface_with_mac(mac: &[u8; 6]) -> io::Result<String> {
    let want = mac.map(|b| format!("{b:02x}")).join(":");
    for entry in std::fs::read_dir("/sys/class/net")? {
        let entry = entry?;
        let address = std::fs::read_to_string(entry.path().join("address")).unwrap_or_default();
        if address.trim() == want {
            return Ok(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no network interface has MAC {want}"),
    ))
}

fn netmask(prefix_len: u8) -> Ipv4Addr {
    let bits = u32::MAX.checked_shl(32 - u32::from(prefix_len.min(32))).unwrap_or(0);
    Ipv4Addr::from(bits)
}

fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `ifreq` naming `name` (at most IFNAMSIZ - 1 bytes; kernel names always fit).
fn request(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"));
    }
    for (slot, byte) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    Ok(req)
}

fn ioctl<T>(sock: &OwnedFd, op: libc::Ioctl, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is the structure `op` expects (ifreq or rtentry), valid for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), op, arg as *mut T) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    const _: () = assert!(size_of::<libc::sockaddr_in>() == size_of::<libc::sockaddr>());
    // SAFETY: sockaddr_in and sockaddr have the same size (checked above) and both are
    // plain old data; this is how the sockets API means them to be used.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn set_addr(sock: &OwnedFd, name: &str, op: libc::Ioctl, ip: Ipv4Addr) -> io::Result<()> {
    let mut req = request(name)?;
    req.ifr_ifru.ifru_addr = sockaddr(ip);
    ioctl(sock, op, &mut req)
}

fn set_mtu(sock: &OwnedFd, name: &str, mtu: u16) -> io::Result<()> {
    let mut req = request(name)?;
    req.ifr_ifru.ifru_mtu = libc::c_int::from(mtu);
    ioctl(sock, libc::SIOCSIFMTU, &mut req)
}

fn set_up(sock: &OwnedFd, name: &str) -> io::Result<()> {
    let mut req = request(name)?;
    ioctl(sock, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    ioctl(sock, libc::SIOCSIFFLAGS, &mut req)
}

fn default_route(sock: &OwnedFd, gateway: Ipv4Addr) -> io::Result<()> {
    // SAFETY: rtentry is plain old data; all zeroes is a valid value.
    let mut route: libc::rtentry = unsafe { zeroed() };
    route.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_gateway = sockaddr(gateway);
    route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    match ioctl(sock, libc::SIOCADDRT, &mut route) {
        // A restarted agent finds the route it made before.
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r,
    }
}

/// The name the host's services are reached by (the gateway).
pub const HOST_NAME: &str = "host.microsandbox.internal";

/// Points the guest's resolver at the gateway: always on image roots; on a directory root
/// (the user's own files) only where it has none, since the gateway answers DNS sent to
/// any address anyway.
pub fn resolver(gateway: Ipv4Addr, image_root: bool) -> io::Result<()> {
    let path = Path::new("/etc/resolv.conf");
    if !image_root && (path.symlink_metadata().is_ok() || !Path::new("/etc").is_dir()) {
        return Ok(());
    }
    // An image's resolv.conf may be a symlink (systemd-resolved's): replace it, never
    // write through it.
    let _ = std::fs::remove_file(path);
    std::fs::write(path, format!("nameserver {gateway}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_follow_the_prefix_length() {
        assert_eq!(netmask(30), Ipv4Addr::new(255, 255, 255, 252));
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(netmask(32), Ipv4Addr::BROADCAST);
        assert_eq!(netmask(99), Ipv4Addr::BROADCAST);
    }
}
