//! The E2B compatibility suite: real, unchanged E2B programs (the stock `e2b` package from
//! PyPI, a current and an older release) against the E2B listener of `msb serve`.

use crate::{paths, python, util};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The SDK releases the suite runs with, by the name of their venv under `~/.cache/msb`:
/// the current client stack (connectrpc over pyqwest) and an older one (the vendored
/// `e2b_connect` over httpcore), which send envd different requests.
pub const SDKS: &[(&str, &str)] = &[("e2b-venv-current", "2.63.0"), ("e2b-venv-2.30", "2.30.0")];

/// The suite, under the repository.
const SUITE: &str = "crates/msb-server/tests/e2b_sdk";

/// The template an E2B program gets when it names none.
pub const DEFAULT_TEMPLATE: &str = "base";

/// `E2B_*` variables of the caller's shell that would point the SDK elsewhere.
const FOREIGN_ENV: &[&str] = &["E2B_DEBUG", "E2B_DOMAIN", "E2B_ACCESS_TOKEN", "E2B_HTTP_VERSION"];

/// An SDK release installed in its own venv.
#[derive(Debug, Clone)]
pub struct Sdk {
    /// The `e2b` version.
    pub version: &'static str,
    /// The venv.
    pub venv: PathBuf,
}

/// The fixture registry's busybox, which the default template stands for in tests.
pub fn image(registry: &str) -> String {
    format!("{registry}/msb-test/busybox:latest")
}

/// Every venv of [`SDKS`], with pytest, made and filled once.
pub fn venvs() -> Result<Vec<Sdk>> {
    SDKS.iter()
        .map(|&(name, version)| {
            let e2b = format!("e2b=={version}");
            let venv = python::venv_with(name, &[&e2b, "pytest", "pytest-asyncio"])?;
            Ok(Sdk { version, venv })
        })
        .collect()
}

/// Makes the default template of the home at `home` the fixture registry's busybox, in its
/// `config.json` (other settings there are kept).
pub fn configure(home: &Path, registry: &str) -> Result<()> {
    let path = home.join("config.json");
    let mut config = match std::fs::read(&path) {
        Ok(text) => serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if !config.is_object() {
        bail!("{} is not a JSON object", path.display());
    }
    config["e2b"]["templates"][DEFAULT_TEMPLATE] = Value::String(image(registry));
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?).with_context(|| format!("writing {}", path.display()))
}

/// Runs the suite with every SDK of `sdks` against `server` (started with `--e2b-listen`, in
/// a home [`configure`]d for `registry`); fails naming the releases whose run failed.
pub fn test(sdks: &[Sdk], server: &msb_e2e::serve::Server, registry: &str) -> Result<()> {
    let url = server
        .e2b_url
        .as_deref()
        .context("msb serve announced no E2B listener (was it started with --e2b-listen?)")?;
    let mut failed = Vec::new();
    for sdk in sdks {
        println!("e2b: the suite with e2b {}", sdk.version);
        let mut pytest = Command::new(sdk.venv.join("bin/pytest"));
        pytest
            .current_dir(paths::repo_root())
            .args(["-q", "-p", "no:cacheprovider", SUITE])
            .env("MSB_TEST_E2B_URL", url)
            .env("MSB_TEST_SERVER_URL", &server.url)
            .env("MSB_TEST_SERVER_TOKEN", &server.token)
            .env("MSB_TEST_REGISTRY", registry)
            .env("MSB_REQUIRE_SERVER", "1");
        for name in FOREIGN_ENV {
            pytest.env_remove(name);
        }
        if let Err(e) = util::run(&mut pytest) {
            eprintln!("e2b {}: {e:#}", sdk.version);
            failed.push(sdk.version);
        }
    }
    if !failed.is_empty() {
        bail!("the E2B SDK suite failed with e2b {}", failed.join(", "));
    }
    Ok(())
}

/// `cargo xtask e2b`: the suite alone, against a fresh server whose default template is the
/// fixture registry's busybox (other sandboxes of that world boot copies of `rootfs`).
pub fn run(rootfs: &Path, registry: &str) -> Result<()> {
    let sdks = venvs()?;
    let world = msb_e2e::Sandbox::with_rootfs(rootfs);
    configure(world.home(), registry)?;
    let server = msb_e2e::serve::Server::start_in(world, &["--e2b-listen", "127.0.0.1:0"]);
    test(&sdks, &server, registry)
}
