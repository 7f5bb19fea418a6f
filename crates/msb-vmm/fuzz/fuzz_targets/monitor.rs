//! QEMU's side of the monitor socket as arbitrary bytes: greeting, replies and events
//! that are not JSON, not what was asked, endless lines. The monitor must answer each with
//! an error or a result, never panic, never hang (the bytes end, so the socket closes).

#![no_main]

use libfuzzer_sys::fuzz_target;
use msb_vmm::Monitor;
use std::sync::OnceLock;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let data = data.to_vec();
    runtime().block_on(async move {
        let (ours, mut qemu) = UnixStream::pair().expect("a socket pair");
        let writer = tokio::spawn(async move {
            let _ = qemu.write_all(&data).await;
            // Dropped: the monitor sees the end of what QEMU says.
        });
        if let Ok(mut monitor) = Monitor::connect(ours).await {
            let _ = monitor.resume().await;
            let _ = monitor.wait_agent_port_open().await;
            let _ = monitor.resume_loaded(None).await;
        }
        let _ = writer.await;
    });
});
