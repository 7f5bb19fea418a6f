//! Python: the SDK's tests, the MCP client's tests and the E2B SDK suite (pytest, against a
//! real `msb serve` and real VMs), the property test of the API from its OpenAPI document
//! (schemathesis), and the SDK's wheel.

use crate::{e2b, paths, setup, util};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the virtual environment holds.
const REQUIREMENTS: &[&str] = &["httpx", "pytest", "pytest-asyncio", "mcp", "schemathesis", "hatchling"];

/// The project's virtual environment (`~/.cache/msb/pyvenv`), made and filled once; refilled
/// only when the requirement list changes.
pub fn venv() -> Result<PathBuf> {
    venv_with("pyvenv", REQUIREMENTS)
}

/// The virtual environment `~/.cache/msb/NAME` holding `requirements` (pip specifiers), made
/// and filled once; refilled only when the list changes.
pub fn venv_with(name: &str, requirements: &[&str]) -> Result<PathBuf> {
    setup::ensure_packages(&["python3-venv", "python3-pip"])?;
    let dir = paths::cache_dir().join(name);
    let stamp = dir.join("msb-requirements");
    let wanted = requirements.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(dir);
    }
    util::run(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    let pip = dir.join("bin/pip");
    util::run(
        Command::new(&pip)
            .args(["install", "-q", "--disable-pip-version-check"])
            .args(requirements),
    )
    .with_context(|| format!("installing {} from PyPI into {}", requirements.join(" "), dir.display()))?;
    std::fs::write(&stamp, wanted)?;
    Ok(dir)
}

/// Runs every Python test against a fresh `msb serve` whose sandboxes boot `rootfs`
/// copies (and pull from the fixture `registry`) — the E2B SDK suite through its E2B
/// listener, with each SDK release of [`e2b::SDKS`] — then builds the SDK's wheel into
/// `target/wheels`.
pub fn test(rootfs: &Path, registry: &str) -> Result<()> {
    let venv = venv()?;
    let e2b_venvs = e2b::venvs()?;
    let world = msb_e2e::Sandbox::with_rootfs(rootfs);
    e2b::configure(world.home(), registry)?;
    let server = msb_e2e::serve::Server::start_in(world, &["--e2b-listen", "127.0.0.1:0"]);
    let repo = paths::repo_root();
    let mut pytest = Command::new(venv.join("bin/pytest"));
    pytest
        .current_dir(&repo)
        .args([
            "-q",
            "-p",
            "no:cacheprovider",
            "sdk/python/tests",
            "crates/msb-server/tests/mcp_client",
        ])
        .env("MSB_TEST_SERVER_URL", &server.url)
        .env("MSB_TEST_SERVER_TOKEN", &server.token)
        .env("MSB_TEST_ROOTFS", rootfs)
        .env("MSB_TEST_REGISTRY", registry)
        .env("MSB_REQUIRE_SERVER", "1")
        .env("MSB_TEST_AUTOSTART", "1")
        // Servers the tests start themselves (MCP over stdio, auto-start) find the guest here.
        .env("MSB_KERNEL", paths::msb_lib_dir().join("vmlinux"))
        .env("MSB_INITRAMFS", paths::msb_lib_dir().join("initramfs.cpio"))
        .env("MSB_BIN", msb_e2e::msb_bin());
    let ours = util::run(&mut pytest).context("the Python tests");
    let e2b = e2b::test(&e2b_venvs, &server, registry);
    drop(server);
    ours?;
    e2b?;
    let mut fuzz = Command::new("bash");
    fuzz.current_dir(&repo)
        .arg("crates/msb-server/tests/api_fuzz/run.sh")
        .env("ST", venv.join("bin/schemathesis"))
        .env("MSB_BIN", msb_e2e::msb_bin());
    util::run(&mut fuzz).context("the property test of the API (schemathesis)")?;
    wheel(&venv)?;
    Ok(())
}

/// Builds the SDK's wheel with the venv's build backend; returns its path.
pub fn wheel(venv: &Path) -> Result<PathBuf> {
    let out = paths::repo_root().join("target/wheels");
    std::fs::create_dir_all(&out)?;
    util::run(
        Command::new(venv.join("bin/pip"))
            .args(["wheel", "-q", "--no-deps", "--no-build-isolation", "-w"])
            .arg(&out)
            .arg(paths::repo_root().join("sdk/python")),
    )
    .context("building the Python SDK's wheel")?;
    let wheel = std::fs::read_dir(&out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("pip wheel made no .whl")?;
    println!("python: wheel {}", wheel.display());
    Ok(wheel)
}
