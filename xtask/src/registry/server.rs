//! Runs Debian's `docker-registry` (distribution v2) on 127.0.0.1, detached and reused.
//!
//! State lives in `cache_dir()/registry/`: `config.yml`, `storage/`, `registry.log`, and
//! `registry.pid` + `registry.addr` describing the running server. A recorded server is
//! reused only when its pid is still a `docker-registry` and `GET /v2/` answers 200.

use super::http;
use crate::paths;
use anyhow::{bail, Context, Result};
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Port tried first when the previously recorded one is not available.
const DEFAULT_PORT: u16 = 5000;
const BINARY: &str = "docker-registry";

/// `cache_dir()/registry`, the root of the registry's state and fixture caches.
pub fn dir() -> PathBuf {
    paths::cache_dir().join("registry")
}

fn pid_file() -> PathBuf {
    dir().join("registry.pid")
}

fn addr_file() -> PathBuf {
    dir().join("registry.addr")
}

fn log_file() -> PathBuf {
    dir().join("registry.log")
}

/// Returns the address of a running registry, starting one if none answers.
pub fn ensure_running() -> Result<String> {
    if let Some(addr) = running()? {
        return Ok(addr);
    }
    let storage = dir().join("storage");
    std::fs::create_dir_all(&storage).with_context(|| format!("creating registry storage {}", storage.display()))?;
    let mut last_err = None;
    for port in candidate_ports() {
        match start(port) {
            Ok(addr) => return Ok(addr),
            // Another process may have taken the port between our probe and the bind.
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no free port found for the registry")))
}

/// Stops the recorded registry if it is running; returns whether one was stopped.
pub fn stop() -> Result<bool> {
    let stopped = match recorded_pid() {
        Some(pid) if is_our_registry(pid) => {
            terminate(pid)?;
            true
        }
        _ => false,
    };
    for f in [pid_file(), addr_file()] {
        match std::fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", f.display())),
        }
    }
    Ok(stopped)
}

/// Whether `GET http://ADDR/v2/` answers 200, i.e. a v2 registry without auth is there.
pub fn answers(addr: &str) -> bool {
    matches!(http::request(addr, "GET", "/v2/", &[], &[]), Ok(r) if r.status == 200)
}

/// The recorded registry's address when its process is alive and answering.
fn running() -> Result<Option<String>> {
    let (Some(pid), Ok(addr)) = (recorded_pid(), std::fs::read_to_string(addr_file())) else {
        return Ok(None);
    };
    let addr = addr.trim().to_string();
    Ok((is_our_registry(pid) && answers(&addr)).then_some(addr))
}

fn recorded_pid() -> Option<i32> {
    std::fs::read_to_string(pid_file()).ok()?.trim().parse().ok()
}

/// True when `pid` is a live `docker-registry` serving our config (not a recycled pid).
fn is_our_registry(pid: i32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let cmdline = String::from_utf8_lossy(&cmdline);
    let config = dir().join("config.yml");
    cmdline.contains(BINARY) && cmdline.contains(&*config.to_string_lossy())
}

/// The recorded port (so clients keep their address), then 5000, then any free port.
fn candidate_ports() -> Vec<u16> {
    let recorded = std::fs::read_to_string(addr_file())
        .ok()
        .and_then(|a| a.trim().rsplit(':').next()?.parse::<u16>().ok());
    let mut ports: Vec<u16> = recorded.into_iter().chain([DEFAULT_PORT]).collect();
    ports.dedup();
    ports.retain(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok());
    for _ in 0..2 {
        if let Ok(port) = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            ports.push(port.port());
        }
    }
    ports
}

fn write_config(addr: &str) -> Result<PathBuf> {
    let config = dir().join("config.yml");
    let storage = dir().join("storage");
    // JSON strings are valid YAML double-quoted scalars, so this quotes any path safely.
    let root = serde_json::to_string(&storage.to_string_lossy())?;
    let yaml = format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n"
    );
    std::fs::write(&config, yaml).with_context(|| format!("writing {}", config.display()))?;
    Ok(config)
}

/// Starts a detached registry on `port` and waits until `/v2/` answers.
fn start(port: u16) -> Result<String> {
    let addr = format!("127.0.0.1:{port}");
    let config = write_config(&addr)?;
    let log_path = log_file();
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let log_err = log.try_clone().context("duplicating the registry log handle")?;
    let mut cmd = Command::new(BINARY);
    cmd.arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: setsid() is async-signal-safe and touches no memory of the parent; it only
    // detaches the child from our session so Ctrl-C and hangups do not reach the registry.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {BINARY} serve {}", config.display()))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if answers(&addr) {
            break;
        }
        if let Some(status) = child.try_wait().context("polling the registry process")? {
            bail!(
                "{BINARY} on {addr} exited with {status}; last log lines from {}:\n{}",
                log_path.display(),
                log_tail()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "{BINARY} on {addr} did not answer GET /v2/ within 20s; see {}:\n{}",
                log_path.display(),
                log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(pid_file(), format!("{}\n", child.id()))
        .with_context(|| format!("writing {}", pid_file().display()))?;
    std::fs::write(addr_file(), format!("{addr}\n")).with_context(|| format!("writing {}", addr_file().display()))?;
    println!("registry: started {BINARY} pid {} on {addr}", child.id());
    Ok(addr)
}

fn log_tail() -> String {
    let text = std::fs::read_to_string(log_file()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// SIGTERM, then SIGKILL after 5 s, and wait for the process to go.
fn terminate(pid: i32) -> Result<()> {
    for (signal, wait) in [(libc::SIGTERM, 5), (libc::SIGKILL, 2)] {
        // SAFETY: kill() only sends a signal; `pid` was just checked to be our registry.
        if unsafe { libc::kill(pid, signal) } == -1 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(err).with_context(|| format!("signalling registry pid {pid}"));
        }
        let deadline = Instant::now() + Duration::from_secs(wait);
        while Instant::now() < deadline {
            if !is_our_registry(pid) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    bail!("registry pid {pid} did not exit after SIGKILL")
}
