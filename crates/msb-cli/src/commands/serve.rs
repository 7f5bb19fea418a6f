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
    /// Also serve an E2B-compatible endpoint here (control plane and envd, for E2B's
    /// SDKs); the second line printed says where. Same token, TLS and address rules.
    #[arg(long, value_name = "ADDR:PORT")]
    e2b_listen: Option<SocketAddr>,
}

/// Serves until interrupted (SIGINT or SIGTERM).
pub async fn run(args: ServeArgs) -> Result<i32> {
    for addr in std::iter::once(args.listen).chain(args.e2b_listen) {
        check_address(&args, addr)?;
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
            if args.e2b_listen.is_some() {
                let key = zeroize::Zeroizing::new(msb_server::e2b::api_key(&loaded.token));
                eprintln!("msb serve: the same token as an E2B API key: {}", key.as_str());
            }
        }
        Some(loaded.token)
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(msb_server::tls_acceptor(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = bind(args.listen).await?;
    let e2b_listener = match args.e2b_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let mut out = std::io::stdout();
    writeln!(out, "listening on {scheme}://{}", listener.local_addr()?)?;
    if let Some(l) = &e2b_listener {
        writeln!(out, "e2b listening on {scheme}://{}", l.local_addr()?)?;
    }
    out.flush()?;
    let templates = msb.config()?.e2b.template_aliases();
    let state = msb_server::AppState::new(msb, token);
    let limits = msb_server::Limits {
        max_connections: args.max_connections.max(1),
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let drain = Duration::from_secs(10);
    let e2b = e2b_listener.map(|l| {
        let app = msb_server::e2b::app(msb_server::e2b::E2bState::new(state.clone(), templates));
        tokio::spawn(msb_server::serve(l, app, tls.clone(), limits, shutdown(), drain))
    });
    let main = msb_server::serve(listener, msb_server::app(state), tls, limits, shutdown(), drain);
    tokio::spawn(async move {
        interrupted().await;
        let _ = stop.send(true);
    });
    main.await?;
    if let Some(e2b) = e2b {
        e2b.await.context("the E2B endpoint")??;
    }
    Ok(0)
}

/// Refuses what would expose the token: no authentication, or plain HTTP, off loopback.
fn check_address(args: &ServeArgs, addr: SocketAddr) -> Result<()> {
    let loopback = addr.ip().is_loopback();
    if !loopback && args.no_auth {
        bail!("--no-auth is for loopback addresses only: {addr} is reachable from other machines");
    }
    if !loopback && args.tls_cert.is_none() && !args.insecure_http {
        bail!(
            "{addr} is reachable from other machines: give --tls-cert and --tls-key, or --insecure-http to send the token in clear text"
        );
    }
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))
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
