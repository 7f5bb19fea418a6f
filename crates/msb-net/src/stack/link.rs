//! smoltcp's view of the guest link: at most one IPv4 packet in (borrowed from the read
//! buffer, never copied), packets out appended as frames to the output buffer.
//!
//! smoltcp runs on a plain-IP medium: the engine strips and adds the Ethernet header and
//! answers ARP itself, so smoltcp needs no neighbour cache for the guest.

use super::wire::Out;
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetProtocol;

/// One poll's device: `rx` is the packet to ingest, if any.
#[derive(Debug)]
pub(crate) struct Link<'a> {
    rx: Option<&'a [u8]>,
    out: &'a mut Out,
    mtu: usize,
}

impl<'a> Link<'a> {
    pub(crate) fn new(rx: Option<&'a [u8]>, out: &'a mut Out, mtu: usize) -> Link<'a> {
        Link { rx, out, mtu }
    }
}

/// The packet being ingested.
#[derive(Debug)]
pub(crate) struct Rx<'a>(&'a [u8]);

/// A slot for one packet to the guest.
#[derive(Debug)]
pub(crate) struct Tx<'a>(&'a mut Out);

impl Device for Link<'_> {
    type RxToken<'b>
        = Rx<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = Tx<'b>
    where
        Self: 'b;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        let packet = self.rx.take()?;
        Some((Rx(packet), Tx(self.out)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        // Past the high-water mark smoltcp keeps its segments queued until the guest reads.
        if self.out.has_room() {
            Some(Tx(&mut *self.out))
        } else {
            None
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.0.frame(EthernetProtocol::Ipv4, len, f)
    }
}
