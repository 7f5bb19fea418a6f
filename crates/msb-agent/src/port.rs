//! The virtio-serial port to the host, found by name and driven by two blocking threads.
//!
//! A virtio console port is a character device whose `read` returns 0 while no host is
//! connected, and whose `write` blocks until one is. Plain blocking threads handle both
//! cases simply; the async side sees a byte stream in and a byte sink out.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Byte channels connected to the host port.
#[derive(Debug)]
pub struct Port {
    /// Bytes from the host.
    pub rx: mpsc::Receiver<Vec<u8>>,
    /// Bytes to the host.
    pub tx: mpsc::Sender<PortOut>,
}

/// What the writer thread is given.
#[derive(Debug)]
pub enum PortOut {
    /// Bytes to write.
    Data(Vec<u8>),
    /// Told once everything sent before it has been written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Finds the agent port (waiting up to `timeout` for it to appear) and starts its I/O threads.
pub fn open(timeout: Duration) -> io::Result<Port> {
    let path = find(timeout)?;
    let file = OpenOptions::new().read(true).write(true).open(&path)?;
    let writer = file.try_clone()?;
    let (in_tx, rx) = mpsc::channel(64);
    let (tx, out_rx) = mpsc::channel(64);
    std::thread::Builder::new()
        .name("port-rx".into())
        .spawn(move || read_loop(file, in_tx))?;
    std::thread::Builder::new()
        .name("port-tx".into())
        .spawn(move || write_loop(writer, out_rx))?;
    Ok(Port { rx, tx })
}

fn find(timeout: Duration) -> io::Result<PathBuf> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(entries) = std::fs::read_dir("/sys/class/virtio-ports") {
            for entry in entries.flatten() {
                let name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
                if name.trim() == msb_protocol::AGENT_PORT_NAME {
                    let dev = PathBuf::from("/dev").join(entry.file_name());
                    if dev.exists() {
                        return Ok(dev);
                    }
                }
            }
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no virtio port named {}", msb_protocol::AGENT_PORT_NAME),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn read_loop(mut file: File, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            // No host connected (yet, or any more): wait for one.
            Ok(0) => std::thread::sleep(Duration::from_millis(5)),
            Ok(n) => {
                if tx.blocking_send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                crate::log(&format!("port read: {e}"));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn write_loop(mut file: File, mut rx: mpsc::Receiver<PortOut>) {
    while let Some(out) = rx.blocking_recv() {
        match out {
            PortOut::Data(bytes) => {
                if let Err(e) = file.write_all(&bytes) {
                    crate::log(&format!("port write: {e}"));
                }
            }
            PortOut::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}
