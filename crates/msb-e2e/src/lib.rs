//! Harness for the end-to-end tests in `tests/`: they boot real microVMs (TCG on hosts
//! without usable KVM) through the `msb` binary, each with its own `MSB_HOME` and rootfs copy.
//!
//! Without a built kernel, agent or rootfs the tests skip, unless `MSB_REQUIRE_VM=1` (set by
//! CI), in which case they fail.

// A test harness: failing loudly on a broken environment is its job.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod debian;
pub mod fake_registry;
pub mod http;
pub mod networld;
pub mod serve;

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The guest kernel and initramfs the tests use (`MSB_KERNEL`/`MSB_INITRAMFS`, else the
/// default install location of `cargo xtask kernel`/`agent`).
fn guest_artifacts() -> (PathBuf, PathBuf) {
    let lib = home_dir().join(".microsandbox/lib");
    let pick = |var: &str, default: PathBuf| std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
    (
        pick("MSB_KERNEL", lib.join("vmlinux")),
        pick("MSB_INITRAMFS", lib.join("initramfs.cpio")),
    )
}

/// The busybox rootfs built by `cargo xtask rootfs`.
pub fn base_rootfs() -> PathBuf {
    std::env::var_os("MSB_TEST_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| home_dir().join(".cache/msb/rootfs/busybox"))
}

/// A prerequisite of a test is missing (`msg` says which and how to make it): under
/// `MSB_REQUIRE_VM=1` (CI) that fails the test; elsewhere the test skips, saying so.
pub(crate) fn missing_prerequisite(msg: &str) {
    if std::env::var("MSB_REQUIRE_VM").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("skipping: {msg}");
}

/// True when VM tests can run; panics when they cannot but `MSB_REQUIRE_VM=1`.
pub fn vm_available() -> bool {
    let (kernel, initramfs) = guest_artifacts();
    let missing: Vec<String> = [(&kernel, "cargo xtask kernel"), (&initramfs, "cargo xtask agent")]
        .into_iter()
        .chain([(&base_rootfs(), "cargo xtask rootfs")])
        .filter(|(p, _)| !p.exists())
        .map(|(p, fix)| format!("{} (run `{fix}`)", p.display()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    missing_prerequisite(&format!("VM test prerequisites missing: {}", missing.join(", ")));
    false
}

/// The fixture registry's address (`MSB_TEST_REGISTRY`, set by `cargo xtask ci` after
/// `cargo xtask registry`); `None` skips the test, unless `MSB_REQUIRE_VM=1`.
pub fn registry() -> Option<String> {
    match std::env::var("MSB_TEST_REGISTRY") {
        Ok(addr) if !addr.is_empty() => Some(addr),
        _ => {
            missing_prerequisite("MSB_TEST_REGISTRY is not set: run `cargo xtask registry` and export its address");
            None
        }
    }
}

/// A fresh world and the fixture image `msb-test/<repo>` of the local registry, when both
/// the registry and VMs are available (else the test skips, or fails under CI).
pub fn image_world(repo: &str) -> Option<(Sandbox, String)> {
    let addr = registry()?;
    if !vm_available() {
        return None;
    }
    Some((Sandbox::new(), format!("{addr}/msb-test/{repo}")))
}

/// The `msb` binary: `MSB_BIN`, else `target/debug/msb`, rebuilt once per test process so a
/// stale binary is never tested (a no-op when it is up to date).
pub fn msb_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MSB_BIN") {
        return p.into();
    }
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "msb-cli"])
            .current_dir(workspace_root())
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building msb failed");
    });
    workspace_root().join("target/debug/msb")
}

/// Runs `cmd` to the end (stdin closed, output collected) and returns its output with the
/// peak resident memory of that one process, in KiB (from `wait4`, so nothing else's).
pub fn output_with_peak_rss(cmd: &mut Command) -> (std::process::Output, u64) {
    use std::io::Read;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning");
    let (mut out, mut err) = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = out.read_to_end(&mut bytes);
        bytes
    });
    let mut stderr = Vec::new();
    let _ = err.read_to_end(&mut stderr);
    let stdout = reader.join().expect("stdout reader");
    let (status, peak) = wait_with_peak_rss(child);
    (std::process::Output { status, stdout, stderr }, peak)
}

/// The peak resident memory so far of process `pid` (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits for `child` (its streams as it was started with) and returns how it ended and its
/// peak resident memory in KiB: its `VmHWM`, sampled every 20 ms until it exits (the last
/// sample counts: the mark only grows). Not `wait4`'s `ru_maxrss`, which carries over the
/// high-water mark of the test process the child was spawned from (vfork shares its
/// memory until exec), so a busy test binary made every child look big.
pub fn wait_with_peak_rss(mut child: std::process::Child) -> (std::process::ExitStatus, u64) {
    let mut peak = 0;
    loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = kib;
        }
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            return (status, peak);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Asserts that msb succeeded and returns its stdout.
pub fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "msb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits for `child` to exit; past `timeout` kills it and fails the test with `what`.
pub fn wait_or_kill(
    child: &mut std::process::Child,
    timeout: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} (after {timeout:?})");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs `cmd` (stdin closed) to the end, reading its stdout and stderr as it goes; past
/// `timeout` kills it and fails the test with `what`.
pub fn output_within(mut cmd: Command, timeout: std::time::Duration, what: &str) -> std::process::Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning a command");
    let (mut out, mut err) = (
        child.stdout.take().expect("piped stdout"),
        child.stderr.take().expect("piped stderr"),
    );
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let mut stderr = Vec::new();
    let _ = err.read_to_end(&mut stderr);
    let status = wait_or_kill(&mut child, timeout, &format!("{what} did not finish"));
    std::process::Output {
        status,
        stdout: reader.join().unwrap_or_default(),
        stderr,
    }
}

/// The initramfs of the hostile test agent (`MSB_HOSTILE_INITRAMFS`, else where `cargo
/// xtask agent` puts it); `None` when it is not built, which fails under `MSB_REQUIRE_VM=1`.
pub fn hostile_initramfs() -> Option<PathBuf> {
    let path = std::env::var_os("MSB_HOSTILE_INITRAMFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/guest/hostile-initramfs.cpio"));
    if path.exists() {
        return Some(path);
    }
    missing_prerequisite(&format!("{} missing (run `cargo xtask agent`)", path.display()));
    None
}

/// One test's world: a private `MSB_HOME` and a private copy of the rootfs.
#[derive(Debug)]
pub struct Sandbox {
    home: tempfile::TempDir,
    /// The rootfs directory the guest boots from.
    pub rootfs: PathBuf,
    /// The initramfs (guest agent) its VMs boot.
    initramfs: PathBuf,
}

impl Sandbox {
    /// Makes a fresh home and a copy of the busybox rootfs.
    pub fn new() -> Sandbox {
        Sandbox::with_rootfs(&base_rootfs())
    }

    /// Makes a fresh home and a private copy of the root filesystem tree `base` (the guest
    /// writes to the tree it boots, so a cached fixture is never booted itself).
    pub fn with_rootfs(base: &Path) -> Sandbox {
        let home = tempfile::Builder::new()
            .prefix("msb-e2e")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let rootfs = home.path().join("rootfs");
        let status = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(base)
            .arg(&rootfs)
            .status()
            .expect("cp");
        assert!(status.success(), "copying the rootfs failed");
        // The SDK finds the guest kernel and agent under $MSB_HOME/lib.
        let lib = home.path().join("lib");
        std::fs::create_dir_all(&lib).expect("creating lib");
        let (kernel, initramfs) = guest_artifacts();
        std::os::unix::fs::symlink(kernel, lib.join("vmlinux")).expect("linking the kernel");
        std::os::unix::fs::symlink(&initramfs, lib.join("initramfs.cpio")).expect("linking the initramfs");
        Sandbox {
            home,
            rootfs,
            initramfs,
        }
    }

    /// A world whose VMs boot `initramfs` (another guest agent) instead.
    pub fn with_agent(initramfs: &Path) -> Sandbox {
        let mut world = Sandbox::new();
        let link = world.home().join("lib/initramfs.cpio");
        std::fs::remove_file(&link).expect("unlinking the initramfs");
        std::os::unix::fs::symlink(initramfs, link).expect("linking the initramfs");
        world.initramfs = initramfs.to_path_buf();
        world
    }

    /// The private MSB_HOME.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `msb` with this world's environment.
    pub fn msb(&self) -> Command {
        let (kernel, _) = guest_artifacts();
        let mut cmd = Command::new(msb_bin());
        cmd.env("MSB_HOME", self.home())
            .env("MSB_KERNEL", kernel)
            .env("MSB_INITRAMFS", &self.initramfs);
        cmd
    }

    /// Runs `msb ARGS…` (stdin closed) to the end.
    pub fn output(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = self.msb();
        cmd.args(args).stdin(std::process::Stdio::null());
        cmd.output().expect("running msb")
    }

    /// Runs `msb run ARGS…` (stdin closed) to the end.
    pub fn run_output(&self, args: &[&str]) -> std::process::Output {
        self.output(&[&["run"], args].concat())
    }

    /// Runs `msb ARGS…`, asserts it succeeded and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "msb {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `msb ARGS…`, asserts it exits with `code` and says `needle` on stderr; returns
    /// the stderr.
    pub fn fails(&self, args: &[&str], code: i32, needle: &str) -> String {
        let out = self.output(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "msb {args:?}: {stderr}");
        assert!(stderr.contains(needle), "msb {args:?}: expected '{needle}' in {stderr}");
        stderr
    }

    /// `msb create -n NAME --rootfs <copy> [extra…]`, asserting it printed nothing (the
    /// name was given).
    pub fn create(&self, name: &str, extra: &[&str]) {
        let root = self.rootfs.to_string_lossy().into_owned();
        let args = [&["create", "-n", name, "--rootfs", &root][..], extra].concat();
        assert_eq!(self.ok(&args), "");
    }

    /// The sandbox's record (`msb inspect NAME`).
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["inspect", name])).expect("inspect prints JSON")
    }

    /// Waits (at most `within`) until `name` is no longer running; returns its record.
    pub fn wait_stopped(&self, name: &str, within: std::time::Duration) -> serde_json::Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let info = self.inspect(name);
            if info["state"] != "Running" {
                return info;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} still running after {within:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// `msb run --rootfs <copy> [extra…] -- <command…>`.
    pub fn run(&self, extra: &[&str], command: &[&str]) -> Command {
        let mut cmd = self.msb();
        cmd.arg("run")
            .arg("--rootfs")
            .arg(&self.rootfs)
            .args(extra)
            .arg("--")
            .args(command);
        cmd
    }

    /// Live (non-zombie) processes of this world's sandboxes: the QEMU and virtiofsd of its
    /// VMs (their command lines name its home) and its supervisors (their environment does).
    pub fn vm_processes(&self) -> Vec<String> {
        let home = self.home().to_string_lossy().into_owned();
        let mut found = live_processes_mentioning(&home);
        found.extend(supervisors_of(&home).into_iter().map(|(_, cmdline)| cmdline));
        found
    }

    /// Pids of this world's live supervisors and VM processes (QEMU, virtiofsd).
    pub fn vm_pids(&self) -> Vec<i32> {
        let home = self.home().to_string_lossy().into_owned();
        let supervisors = supervisors_of(&home).into_iter();
        supervisors.chain(pids_mentioning(&home)).map(|(pid, _)| pid).collect()
    }

    /// How many sandbox directories this world has.
    pub fn sandbox_dirs(&self) -> usize {
        std::fs::read_dir(self.home().join("sandboxes")).map_or(0, |d| d.count())
    }

    /// Asserts that no VM or supervisor process of this world is alive, waiting up to 15 s
    /// for exits (well past a supervisor's own 2 s farewell and a VM's power-off).
    pub fn assert_no_vm_left(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if self.vm_processes().is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("VM processes outlived msb: {:?}", self.vm_processes());
    }
}

/// A test that failed midway leaves no sandbox of its world running: its supervisors and
/// VM processes are killed, so one failure does not slow every later test.
impl Drop for Sandbox {
    fn drop(&mut self) {
        let home = self.home().to_string_lossy().into_owned();
        for (pid, _) in supervisors_of(&home).into_iter().chain(pids_mentioning(&home)) {
            // SAFETY: kill(2) on a pid just read from /proc; the worst case is a signal to
            // a process that has already gone.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

/// Live `msb __supervise` processes started with `MSB_HOME=home` in their environment:
/// their pids and command lines.
fn supervisors_of(home: &str) -> Vec<(i32, String)> {
    let wanted = format!("MSB_HOME={home}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if !cmdline.contains("__supervise") {
                return None;
            }
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let state = stat.rsplit_once(')')?.1.split_whitespace().next()?.to_string();
            let environ = std::fs::read(e.path().join("environ")).ok()?;
            let ours = environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes());
            let pid = e.file_name().to_str()?.parse().ok()?;
            (state != "Z" && ours).then_some((pid, cmdline))
        })
        .collect()
}

/// Processes that are not zombies and whose argv contains `needle`.
pub fn live_processes_mentioning(needle: &str) -> Vec<String> {
    pids_mentioning(needle)
        .into_iter()
        .map(|(_, cmdline)| cmdline)
        .collect()
}

/// [`live_processes_mentioning`], with their pids.
fn pids_mentioning(needle: &str) -> Vec<(i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let state = stat.rsplit_once(')')?.1.split_whitespace().next()?.to_string();
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let pid = e.file_name().to_str()?.parse().ok()?;
            (state != "Z" && cmdline.contains(needle) && !cmdline.contains("cargo")).then_some((pid, cmdline))
        })
        .filter(|(_, c)| !c.contains("/msb run") && !c.starts_with("msb "))
        .collect()
}
