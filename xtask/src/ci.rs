//! `cargo xtask ci`: set up and run every test, as CI does.

use crate::{agent, debian_rootfs, demo, fuzz, kernel, paths, python, registry, rootfs, setup, unprivileged, util};
use anyhow::Result;
use std::process::Command;

/// Installs what is needed, builds guest artefacts and runs the whole test suite.
/// Under `CI`, VM tests are required to run (`MSB_REQUIRE_VM=1`): they fail rather than skip.
pub fn run() -> Result<()> {
    // Every supervisor the tests start dies on a system call its seccomp allow-list lacks
    // (instead of failing it with EPERM), so no suite passes with the list incomplete.
    std::env::set_var("MSB_SUPERVISOR_SECCOMP", "kill");
    setup::run()?;
    kernel::build()?;
    agent::build()?;
    let hostile = agent::build_hostile()?;
    let root = rootfs::build()?;
    let debian = debian_rootfs::build()?;
    let registry = registry::ensure()?;
    let msb = demo::build_msb(false)?;
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(paths::repo_root())
        .args(["test", "--workspace", "--no-fail-fast"])
        .env("MSB_TEST_ROOTFS", &root)
        .env("MSB_TEST_DEBIAN_ROOTFS", &debian)
        .env("MSB_BIN", &msb)
        .env("MSB_TEST_REGISTRY", &registry)
        .env("MSB_HOSTILE_INITRAMFS", &hostile);
    if std::env::var_os("CI").is_some() {
        // CI runs as root: nothing that needs VMs, mounts or root may skip there.
        cmd.env("MSB_REQUIRE_VM", "1")
            .env("MSB_REQUIRE_MOUNT", "1")
            .env("MSB_REQUIRE_ROOT", "1");
    }
    util::run(&mut cmd)?;
    unprivileged::test(&msb, &root, &registry)?;
    python::test(&root, &registry)?;
    // The fuzz targets are built and run briefly, so they cannot rot.
    fuzz::run(&fuzz::Args {
        seconds: 3,
        minutes: None,
        parallel: None,
        only: Vec::new(),
    })
}
