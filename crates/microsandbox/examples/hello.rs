//! Creates a sandbox from an image, runs Python in it, and removes it.
//!
//! `cargo run -p microsandbox --example hello -- [IMAGE]` (default `python`; needs the `msb`
//! binary on the PATH or in `MSB_BIN`).

use microsandbox::{MicrosandboxResult, Sandbox};

#[tokio::main(flavor = "current_thread")]
async fn main() -> MicrosandboxResult<()> {
    let image = std::env::args().nth(1).unwrap_or_else(|| "python".into());
    let name = microsandbox::generate_name()?;
    let sb = Sandbox::builder(&name)
        .image(image)
        .memory(512)
        .ephemeral()
        .patch(|p| {
            p.text(
                "/opt/hello.py",
                "import sys\nprint('hello from', sys.platform)\n",
                None,
                false,
            )
        })
        .create()
        .await?;
    let out = sb.exec("python3", ["/opt/hello.py"]).await?;
    print!("{}", out.stdout_text());
    println!("exit status: {}", out.status.code());
    // Ephemeral: stopping it removes it too.
    sb.stop().await?;
    Ok(())
}
