//! `cargo xtask kernel`: builds the guest kernel from Debian's `linux-source-6.12` with
//! `guest/kernel/msb.fragment` on top of `allnoconfig`, cached by (source, fragment, recipe).
//!
//! Under `cache_dir()/kernel/`: `src-<version>/` (extracted once, shared by all configs) and
//! `<key>/` holding `build/` (make's O= dir, with `build.log`) and the finished `vmlinux`.

use crate::{paths, util};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian package; also the top-level directory inside its tarball.
const SOURCE_PKG: &str = "linux-source-6.12";
const TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
const FRAGMENT: &str = "guest/kernel/msb.fragment";
/// Bump when the build steps change in a way that changes the kernel produced.
const RECIPE_VERSION: &str = "msb-kernel-recipe-1";

/// Builds (or finds in the cache) the guest kernel, installs it as `$MSB_HOME/lib/vmlinux`
/// and returns that path.
pub fn build() -> Result<PathBuf> {
    let started = Instant::now();
    let fragment_path = paths::repo_root().join(FRAGMENT);
    let fragment =
        fs::read(&fragment_path).with_context(|| format!("reading kernel fragment {}", fragment_path.display()))?;
    let options = parse_fragment(&String::from_utf8_lossy(&fragment))
        .with_context(|| format!("parsing {}", fragment_path.display()))?;
    let version = source_version()?;
    let key = cache_key(&version, &fragment);
    let kdir = paths::cache_dir().join("kernel");
    let out_dir = kdir.join(&key[..16]);
    let vmlinux = out_dir.join("vmlinux");
    let how = if vmlinux.is_file() {
        "cached"
    } else {
        let short = &key[..16];
        println!("kernel: building {SOURCE_PKG} {version} (config {short})");
        let pb = spinner();
        let src = ensure_source(&kdir, &version, &pb)?;
        let build_dir = out_dir.join("build");
        compile(&src, &build_dir, &options, &pb)?;
        copy_atomic(&build_dir.join("vmlinux"), &vmlinux)?;
        pb.finish_and_clear();
        "built"
    };
    let installed = install(&vmlinux)?;
    let (secs, shown) = (started.elapsed().as_secs_f64(), installed.display());
    println!("kernel: {how} {} -> {shown} in {secs:.2} s", vmlinux.display());
    Ok(installed)
}

/// One wanted option: `name` (with `CONFIG_`) and its value (`y`, `n`, a number or a string).
type Opt = (String, String);

/// Reads `CONFIG_X=v` and `# CONFIG_X is not set` lines; other `#` lines are comments.
fn parse_fragment(text: &str) -> Result<Vec<Opt>> {
    let mut opts = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix("# ").and_then(|l| l.strip_suffix(" is not set")) {
            opts.push((name.to_string(), "n".to_string()));
        } else if line.is_empty() || line.starts_with('#') {
            continue;
        } else if let Some((name, value)) = line.split_once('=') {
            if !name.starts_with("CONFIG_") || value.is_empty() {
                bail!("line {}: expected CONFIG_NAME=value, got {line:?}", i + 1);
            }
            opts.push((name.to_string(), value.to_string()));
        } else {
            bail!("line {}: expected CONFIG_NAME=value or a comment, got {line:?}", i + 1);
        }
    }
    Ok(opts)
}

fn source_version() -> Result<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", SOURCE_PKG])
        .output()
        .context("running dpkg-query")?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || version.is_empty() || !Path::new(TARBALL).is_file() {
        bail!("{SOURCE_PKG} is not installed ({TARBALL} missing): run `cargo xtask setup`");
    }
    Ok(version)
}

fn cache_key(version: &str, fragment: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(format!("{RECIPE_VERSION}\n{SOURCE_PKG} {version}\n"));
    h.update(fragment);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Extracts the source tarball once into `kdir/src-<version>`, via a temp dir + rename so an
/// interrupted extraction is never mistaken for a finished one.
fn ensure_source(kdir: &Path, version: &str, pb: &ProgressBar) -> Result<PathBuf> {
    let src = kdir.join(format!("src-{version}"));
    if src.join("Makefile").is_file() {
        return Ok(src);
    }
    pb.set_prefix(format!("extracting {TARBALL}"));
    let tmp = kdir.join(format!(".src-{version}.tmp-{}", std::process::id()));
    remove_stale_extractions(kdir);
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    util::output(Command::new("tar").args(["-xf", TARBALL, "-C"]).arg(&tmp)).context("extracting the kernel source")?;
    match fs::rename(tmp.join(SOURCE_PKG), &src) {
        Ok(()) => {}
        // Another build finished extracting first: use its tree.
        Err(_) if src.join("Makefile").is_file() => {}
        Err(e) => return Err(e).with_context(|| format!("moving source to {}", src.display())),
    }
    let _ = fs::remove_dir_all(&tmp);
    Ok(src)
}

/// Removes `.src-*.tmp-<pid>` dirs left by extractions whose process is gone.
fn remove_stale_extractions(kdir: &Path) {
    for entry in fs::read_dir(kdir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((_, pid)) = name.strip_prefix(".src-").and_then(|n| n.rsplit_once(".tmp-")) {
            if !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Configures (allnoconfig + fragment + olddefconfig, then verifies) and builds `vmlinux`.
fn compile(src: &Path, build: &Path, opts: &[Opt], pb: &ProgressBar) -> Result<()> {
    fs::create_dir_all(build).with_context(|| format!("creating {}", build.display()))?;
    let log_path = build.join("build.log");
    let mut log = File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let jobs = jobs()?;
    let make = |args: &[&str]| {
        let mut c = Command::new("make");
        c.args(["--no-print-directory", "-C"]).arg(src).args(args);
        c.arg(format!("O={}", build.display()));
        // Fixed identity and time so the same config gives the same kernel.
        c.env("KBUILD_BUILD_USER", "msb")
            .env("KBUILD_BUILD_HOST", "microsandbox")
            .env("KBUILD_BUILD_TIMESTAMP", "Thu Jan  1 00:00:00 UTC 1970")
            .env("KBUILD_BUILD_VERSION", "1");
        c
    };
    let config_path = build.join(".config");
    let with_tail = |e: anyhow::Error| {
        pb.finish_and_clear();
        let (log, tail) = (log_path.display(), tail_lines(&log_path, 40));
        e.context(format!(
            "kernel build failed; full log: {log}\n--- last lines ---\n{tail}"
        ))
    };
    pb.set_prefix("configure");
    let mut sc = Command::new(src.join("scripts/config"));
    sc.arg("--file").arg(&config_path);
    for (name, value) in opts {
        match value.as_str() {
            "y" => sc.arg("--enable").arg(name),
            "n" => sc.arg("--disable").arg(name),
            "m" => sc.arg("--module").arg(name),
            v if v.starts_with('"') => sc.arg("--set-str").arg(name).arg(v.trim_matches('"')),
            v => sc.arg("--set-val").arg(name).arg(v),
        };
    }
    run_logged(&mut make(&["allnoconfig"]), &mut log, pb)
        .and_then(|()| run_logged(&mut sc, &mut log, pb))
        .and_then(|()| run_logged(&mut make(&["olddefconfig"]), &mut log, pb))
        .map_err(&with_tail)?;
    verify_config(&config_path, opts).inspect_err(|_| pb.finish_and_clear())?;
    pb.set_prefix(format!("make -j{jobs} vmlinux"));
    let jobs = format!("-j{jobs}");
    run_logged(&mut make(&[&jobs, "vmlinux"]), &mut log, pb).map_err(&with_tail)
}

/// `-j` for make: `MSB_KERNEL_JOBS` if set, else the number of CPUs.
fn jobs() -> Result<usize> {
    let Ok(j) = std::env::var("MSB_KERNEL_JOBS") else {
        return Ok(std::thread::available_parallelism().map_or(1, usize::from));
    };
    let n = j.trim().parse::<usize>().ok().filter(|&n| n > 0);
    n.ok_or_else(|| anyhow!("MSB_KERNEL_JOBS={j:?} is not a positive number"))
}

/// Fails listing every fragment option whose value in the final `.config` differs.
fn verify_config(config: &Path, opts: &[Opt]) -> Result<()> {
    let text = fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let actual: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let dropped: Vec<String> = opts
        .iter()
        .filter_map(|(name, want)| {
            let got = actual.get(name.as_str()).copied().unwrap_or("n");
            (got != want).then(|| format!("  {name}: wanted {want}, got {got}"))
        })
        .collect();
    if !dropped.is_empty() {
        bail!(
            "olddefconfig changed {} option(s) of {FRAGMENT} (usually a dependency that is off; \
             add it to the fragment). See {}:\n{}",
            dropped.len(),
            config.display(),
            dropped.join("\n")
        );
    }
    Ok(())
}

/// Runs `cmd` with stdout and stderr going to `log`, showing stdout lines on the spinner.
fn run_logged(cmd: &mut Command, log: &mut File, pb: &ProgressBar) -> Result<()> {
    writeln!(log, "$ {cmd:?}").context("writing build log")?;
    // stderr shares the log's file offset (dup), so it interleaves with what we copy.
    let stderr = log.try_clone().context("duplicating build log handle")?;
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).split(b'\n') {
            let line = line.with_context(|| format!("reading output of {cmd:?}"))?;
            log.write_all(&line)
                .and_then(|()| log.write_all(b"\n"))
                .context("writing build log")?;
            pb.set_message(String::from_utf8_lossy(&line).trim().to_string());
        }
    }
    let status = child.wait().with_context(|| format!("waiting for {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn tail_lines(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Copies `from` to `to` through a temp file in the same directory and a rename.
fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let dir = to.parent().ok_or_else(|| anyhow!("{} has no parent", to.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".vmlinux.tmp-{}", std::process::id()));
    fs::copy(from, &tmp).with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    fs::rename(&tmp, to).with_context(|| format!("renaming {} to {}", tmp.display(), to.display()))
}

/// Puts the kernel at `msb_lib_dir()/vmlinux` unless an identical copy is already there.
fn install(vmlinux: &Path) -> Result<PathBuf> {
    let dest = paths::msb_lib_dir().join("vmlinux");
    let new = fs::read(vmlinux).with_context(|| format!("reading {}", vmlinux.display()))?;
    util::install_if_changed(&new, &dest)?;
    Ok(dest)
}

/// A spinner showing the stage (prefix) and make's latest line on a TTY; hidden otherwise.
fn spinner() -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed}] {prefix}: {wide_msg}") {
        pb.set_style(style);
    }
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}
