//! The sandbox's userspace network stack, run by its supervisor: guest frames arrive over a
//! QEMU `-netdev stream` socket, every flow is checked against the sandbox's policy before
//! the host opens a socket for it, DNS is answered (and policed) at the gateway, and host
//! ports are published into the guest. Secrets can be kept out of the guest: placeholders in
//! its requests are replaced by the real values on the host, for allowed hosts only, with
//! narrow TLS interception ([`intercept`]).

pub mod dns;
pub mod intercept;
pub mod policy;
mod ratelimit;
pub mod sni;
pub mod stack;
