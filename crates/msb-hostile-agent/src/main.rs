//! `msb-hostile-agent`: a guest agent that misbehaves on request, for the tests that prove
//! the host treats its guest as hostile (`msb-e2e/tests/vm_hostile_guest.rs`). It is never
//! installed: `cargo xtask ci` packs it into an initramfs of its own for those tests.
//!
//! It shakes hands like the real agent and answers pings, metrics and shutdown. What it
//! does with an exec depends on the program asked for:
//!
//! | program | what the guest does |
//! |---|---|
//! | `echo WORDS…` | behaves: prints the words and exits 0 |
//! | `flood MIB` | sends MIB MiB of stdout without waiting for credit |
//! | `strangers` | sends thousands of frames on sessions that were never opened, then behaves |
//! | `liar STATUS` | prints a line, then reports an impossible exit (`code:N` or `signal:N`), then more output and a second exit |
//! | `garbage` | sends a frame whose payload is no message |
//! | `oversize` | announces a frame of 4 GiB |
//! | `mute` | from now on answers nothing, pings included |
//!
//! A sandbox named `hostile-version` is answered with another protocol version, one named
//! `hostile-handshake` with garbage.

use bytes::BytesMut;
use msb_protocol::{
    BootTimings, ExecRequest, ExitStatus, Frame, FrameCodec, Message, Ready, CONTROL_SESSION, MAX_CHUNK,
    PROTOCOL_VERSION,
};
use std::fs::File;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::codec::{Decoder, Encoder};

/// The write half of the port, shared so frames from several threads never interleave.
#[derive(Clone)]
struct Host(Arc<Mutex<File>>);

impl Host {
    fn raw(&self, bytes: &[u8]) {
        let mut port = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Nothing to do when the host is gone: the VM is about to be killed.
        let _ = port.write_all(bytes);
    }

    fn send(&self, id: u32, msg: Message) {
        let mut buf = BytesMut::new();
        if FrameCodec.encode(Frame::new(id, msg), &mut buf).is_ok() {
            self.raw(&buf);
        }
    }
}

fn main() {
    for (source, target, fstype) in [("devtmpfs", "/dev", "devtmpfs"), ("sysfs", "/sys", "sysfs")] {
        mount(source, target, fstype);
    }
    match serve() {
        Ok(()) => {}
        Err(e) => eprintln!("msb-hostile-agent: {e}"),
    }
    power_off();
}

fn mount(source: &str, target: &str, fstype: &str) {
    let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    let (source, target, fstype) = (c(source), c(target), c(fstype));
    // SAFETY: three NUL-terminated strings that outlive the call, and no mount data.
    let rc = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        eprintln!(
            "msb-hostile-agent: mounting {target:?}: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers; reboot only returns on failure.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_AUTOBOOT);
    }
    std::process::exit(1)
}

/// The agent's virtio port, found by name under `/sys/class/virtio-ports`.
fn open_port() -> std::io::Result<File> {
    for _ in 0..5000 {
        for entry in std::fs::read_dir("/sys/class/virtio-ports")?.flatten() {
            let name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
            if name.trim() == msb_protocol::AGENT_PORT_NAME {
                let dev = std::path::Path::new("/dev").join(entry.file_name());
                if let Ok(port) = File::options().read(true).write(true).open(dev) {
                    return Ok(port);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(std::io::Error::other("no agent port"))
}

fn serve() -> std::io::Result<()> {
    let mut port = open_port()?;
    let host = Host(Arc::new(Mutex::new(port.try_clone()?)));
    let mute = AtomicBool::new(false);
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match port.read(&mut chunk)? {
            // No host connected yet.
            0 => std::thread::sleep(Duration::from_millis(5)),
            n => buf.extend_from_slice(&chunk[..n]),
        }
        while let Some(frame) = FrameCodec.decode(&mut buf).map_err(std::io::Error::other)? {
            if !mute.load(Ordering::Relaxed) {
                answer(&host, frame, &mute);
            }
        }
    }
}

fn answer(host: &Host, frame: Frame, mute: &AtomicBool) {
    let id = frame.id;
    match frame.msg {
        Message::Hello(hello) if hello.config.hostname == "hostile-handshake" => garbage(host, CONTROL_SESSION),
        Message::Hello(hello) => {
            let version = if hello.config.hostname == "hostile-version" {
                PROTOCOL_VERSION + 1000
            } else {
                PROTOCOL_VERSION
            };
            let timings = BootTimings {
                agent_start_ns: 1,
                ready_ns: 2,
            };
            host.send(CONTROL_SESSION, Message::Ready(Ready { version, timings }));
        }
        Message::Ping => host.send(id, Message::Pong),
        Message::Shutdown(_) => {
            host.send(CONTROL_SESSION, Message::ShutdownComplete { killed: 0 });
            power_off();
        }
        Message::Exec(req) => exec(host, id, req, mute),
        Message::MetricsRequest | Message::Fs(_) => {
            host.send(id, Message::Error("the hostile test agent does not do that".into()))
        }
        _ => {}
    }
}

fn exec(host: &Host, id: u32, req: ExecRequest, mute: &AtomicBool) {
    let args = &req.argv[1.min(req.argv.len())..];
    match req.argv.first().map(String::as_str).unwrap_or_default() {
        "echo" => echo(host, id, &args.join(" ")),
        "flood" => {
            let mib: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(16);
            let host = host.clone();
            // Its own thread: pings are still answered while the flood goes out.
            std::thread::spawn(move || {
                host.send(id, Message::Started { pid: 2 });
                for _ in 0..mib * (1 << 20) / MAX_CHUNK {
                    host.send(id, Message::Stdout(vec![b'x'; MAX_CHUNK]));
                }
                host.send(id, Message::Exited(ExitStatus::Code(0)));
            });
        }
        "strangers" => {
            for n in 0..5000u32 {
                let stranger = 0x4000_0000 + n;
                let msg = match n % 5 {
                    0 => Message::Stdout(b"not yours\n".to_vec()),
                    1 => Message::Exited(ExitStatus::Code(3)),
                    2 => Message::Pong,
                    3 => Message::Started { pid: n },
                    _ => Message::Error("not yours".into()),
                };
                host.send(stranger, msg);
            }
            echo(host, id, "still here");
        }
        "liar" => {
            let status = match args.first().and_then(|a| a.split_once(':')) {
                Some(("signal", n)) => ExitStatus::Signal(n.parse().unwrap_or(i32::MAX)),
                Some((_, n)) => ExitStatus::Code(n.parse().unwrap_or(i32::MIN)),
                None => ExitStatus::Code(i32::MIN),
            };
            host.send(id, Message::Started { pid: 2 });
            host.send(id, Message::Stdout(b"before\n".to_vec()));
            host.send(id, Message::Exited(status));
            host.send(id, Message::Stdout(b"after\n".to_vec()));
            host.send(id, Message::Exited(ExitStatus::Code(0)));
        }
        "garbage" => garbage(host, id),
        "oversize" => host.raw(&u32::MAX.to_be_bytes()),
        "mute" => mute.store(true, Ordering::Relaxed),
        _ => host.send(id, Message::Error(format!("no such misdeed: {:?}", req.argv))),
    }
}

/// A frame for session `id` whose payload is no message.
fn garbage(host: &Host, id: u32) {
    let mut frame = 20u32.to_be_bytes().to_vec();
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&[0xff; 16]);
    host.raw(&frame);
}

fn echo(host: &Host, id: u32, line: &str) {
    host.send(id, Message::Started { pid: 2 });
    host.send(id, Message::Stdout(format!("{line}\n").into_bytes()));
    host.send(id, Message::Exited(ExitStatus::Code(0)));
}
