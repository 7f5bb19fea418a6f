//! Streams a process's output as it comes and feeds its stdin.
//!
//! `cargo run -p microsandbox --example stream -- IMAGE|ROOTFS_DIR`

use microsandbox::{ExecEvent, MicrosandboxResult, Sandbox};

#[tokio::main(flavor = "current_thread")]
async fn main() -> MicrosandboxResult<()> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "python".into());
    let builder = Sandbox::builder(microsandbox::generate_name()?).ephemeral();
    let builder = if std::path::Path::new(&root).is_dir() {
        builder.rootfs(root)
    } else {
        builder.image(root)
    };
    let sb = builder.create().await?;
    let mut proc = sb
        .exec_stream(
            "sh",
            ["-c", "while read line; do echo \"got: $line\"; done; echo done >&2"],
        )
        .await?;
    let stdin = proc.stdin();
    let feeder = tokio::spawn(async move {
        for word in ["one", "two", "three"] {
            stdin.write(format!("{word}\n").as_bytes()).await?;
        }
        stdin.close().await
    });
    while let Some(event) = proc.recv().await? {
        match event {
            ExecEvent::Started(pid) => println!("[started as pid {pid}]"),
            ExecEvent::Stdout(data) => print!("{}", String::from_utf8_lossy(&data)),
            ExecEvent::Stderr(data) => print!("[stderr] {}", String::from_utf8_lossy(&data)),
            ExecEvent::Exited(status) => println!("[exited: {status:?}]"),
            ExecEvent::SpawnFailed(f) => println!("[could not start: {}]", f.message),
        }
    }
    feeder.await.map_err(|e| microsandbox::MicrosandboxError::Io {
        context: "the stdin feeder task".into(),
        source: std::io::Error::other(e),
    })??;
    sb.stop().await?;
    Ok(())
}
