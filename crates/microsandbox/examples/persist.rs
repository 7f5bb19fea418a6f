//! A named sandbox keeps what its guest writes across a stop and a start, until removed.
//!
//! `cargo run -p microsandbox --example persist -- IMAGE|ROOTFS_DIR`

use microsandbox::{Microsandbox, MicrosandboxResult};
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> MicrosandboxResult<()> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "python".into());
    let msb = Microsandbox::from_env();
    let name = microsandbox::generate_name()?;
    let builder = msb.builder(&name).idle_timeout(Duration::from_secs(600));
    let builder = if std::path::Path::new(&root).is_dir() {
        builder.rootfs(root)
    } else {
        builder.image(root)
    };
    let sb = builder.create_detached().await?;
    sb.shell("echo 'kept across restarts' > /root/note").await?;
    sb.stop().await?;
    println!("{name}: {:?}", msb.get(&name).await?.state);

    let sb = msb.start_detached(&name).await?;
    print!("after restart: {}", sb.shell("cat /root/note").await?.stdout_text());
    let m = sb.metrics().await?;
    println!(
        "memory used: {} MiB of {} MiB",
        m.memory_used_bytes >> 20,
        m.memory_limit_bytes >> 20
    );
    sb.stop().await?;
    msb.remove(&name, false).await?;
    println!("{name}: removed");
    Ok(())
}
