//! `msb serve`: the HTTP API (and MCP at `/mcp`) over this machine's sandboxes.

use anyhow::{bail, Context, Result};
use microsandbox::Microsandbox;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `msb serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the first line printed says which).
    #[arg(long, default_value = "127.0.0.1:5555", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Make a new token (the old one stops working) and print it.
    #[arg(long)]
    rotate_token: bool,
    /// Serve without a token (loopback addresses only).
    #[arg(long)]
    no_auth: bool,
    /// TLS certificate chain (PEM); with --tls-key, the server speaks HTTPS.
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address (the token then crosses the network in
    /// clear text).
    #[arg(long)]
    insecure_http: bool,
    /// Connections served at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
}

/// Serves until interrupted (SIGINT or SIGTERM).
pub async fn run(args: ServeArgs) -> Result<i32> {
    let loopback = args.listen.ip().is_loopback();
    if !loopback && args.no_auth {
        bail!(
            "--no-auth is for loopback addresses only: {} is reachable from other machines",
            args.listen
        );
    }
    if !loopback && args.tls_cert.is_none() && !args.insecure_http {
        bail!(
            "{} is reachable from other machines: give --tls-cert and --tls-key, or --insecure-http to send the token in clear text",
            args.listen
        );
    }
    let msb = Microsandbox::from_env();
    msb.config()?;
    let token = if args.no_auth {
        None
    } else {
        let path = msb_server::token_path(msb.paths().home());
        let loaded = msb_server::load_or_create_token(&path, args.rotate_token)
            .with_context(|| format!("the API token at {}", path.display()))?;
        if loaded.created {
            // Printed this once; afterwards it is only in the 0600 file.
            eprintln!(
                "msb serve: new API token (kept in {}): {}",
                path.display(),
                loaded.token.as_str()
            );
        }
        Some(loaded.token)
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(msb_server::tls_acceptor(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut out = std::io::stdout();
    writeln!(out, "listening on {scheme}://{}", listener.local_addr()?)?;
    out.flush()?;
    let app = msb_server::app(msb_server::AppState::new(msb, token));
    let limits = msb_server::Limits {
        max_connections: args.max_connections.max(1),
        ..Default::default()
    };
    msb_server::serve(listener, app, tls, limits, interrupted(), Duration::from_secs(10)).await?;
    Ok(0)
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        // Without signal handlers the default action ends the process anyway.
        _ => std::future::pending().await,
    }
}
