//! `msb registry logout`.

use microsandbox::{registry, Paths};

/// Arguments of `msb registry logout`.
#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// Registry host, e.g. `ghcr.io` or `127.0.0.1:5000`.
    host: String,
}

/// Removes the saved login; not being logged in is reported but is no error.
pub fn run(paths: &Paths, args: LogoutArgs) -> anyhow::Result<i32> {
    let host = registry::normalize_host(&args.host)?;
    if registry::logout(paths, &host)? {
        println!("Removed the credentials for {host}");
    } else {
        eprintln!("msb: not logged in to {host} (Docker's config.json, if any, is left alone)");
    }
    Ok(0)
}
