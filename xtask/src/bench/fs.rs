//! `cargo xtask bench fs`: moving files into and out of a running sandbox, through the file
//! API (`msb fs write|cat`, `sandbox.fs()` writes and tree copies), beside the two ways
//! there were before it:
//! piping through `msb exec … cat`/`tar`, and the sandbox's virtio-fs root (a bind mount of
//! a host directory). The guest side of every transfer is a tmpfs, so the figures measure
//! the paths, not a disk. VM figures are QEMU TCG on hosts without usable KVM, and say so.

use super::stats::Summary;
use super::{console, procs};
use crate::{demo, paths, rootfs, util};
use anyhow::{bail, Context, Result};
use microsandbox::Microsandbox;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The large file.
const BIG: usize = 256 << 20;
/// The small files, and the size of each.
const SMALL: usize = 10_000;
const SMALL_SIZE: usize = 4096;
const NAME: &str = "bench";

#[derive(Debug, Default)]
struct Figures {
    accel: String,
    api_in: Vec<Duration>,
    pipe_in: Vec<Duration>,
    share_in: Vec<Duration>,
    api_out: Vec<Duration>,
    pipe_out: Vec<Duration>,
    share_out: Vec<Duration>,
    small_api: Vec<Duration>,
    small_tree_in: Vec<Duration>,
    small_tar: Vec<Duration>,
    small_share: Vec<Duration>,
    small_tree_out: Vec<Duration>,
    small_tar_out: Vec<Duration>,
    small_share_out: Vec<Duration>,
}

/// Runs the benchmark and prints its figures.
pub fn run(runs: usize) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let tmp = tempfile::Builder::new().prefix("msb-bench-fs-").tempdir()?;
    let bench = console::stdout_to_stderr(|| Bench::prepare(tmp.path()))??;
    let mut f = Figures {
        accel: super::accel_label(),
        ..Figures::default()
    };
    let measured = (0..runs).try_for_each(|round| {
        console::progress("fs", &format!("round {}/{runs}", round + 1));
        bench.round(&mut f)
    });
    console::progress_done();
    let _ = bench.msb(&["rm", "-f", NAME]).status();
    let sweep = procs::sweep(tmp.path());
    measured?;
    if !sweep.leftovers.is_empty() {
        bail!("processes outlived the bench: {:?}", sweep.leftovers);
    }
    print(&f);
    Ok(())
}

struct Bench {
    msb: PathBuf,
    tmp: PathBuf,
    /// The sandbox's root directory on the host (its virtio-fs share).
    root: PathBuf,
    /// The large file on the host.
    big: PathBuf,
    /// The small files on the host, and as one tar.
    small_dir: PathBuf,
    small_tar: PathBuf,
}

impl Bench {
    fn prepare(tmp: &Path) -> Result<Bench> {
        let msb = demo::build_msb(true)?;
        let root = tmp.join("root");
        util::run(Command::new("cp").arg("-a").arg(rootfs::build()?).arg(&root))?;
        let big = tmp.join("big");
        util::run(
            Command::new("head")
                .args(["-c", &BIG.to_string(), "/dev/urandom"])
                .stdout(File::create(&big)?),
        )?;
        let small_dir = tmp.join("small");
        std::fs::create_dir(&small_dir)?;
        for i in 0..SMALL {
            std::fs::write(small_dir.join(format!("f{i}")), vec![(i % 251) as u8; SMALL_SIZE])?;
        }
        let small_tar = tmp.join("small.tar");
        util::run(
            Command::new("tar")
                .arg("-cf")
                .arg(&small_tar)
                .arg("-C")
                .arg(&small_dir)
                .arg("."),
        )?;
        let bench = Bench {
            msb,
            tmp: tmp.to_path_buf(),
            root,
            big,
            small_dir,
            small_tar,
        };
        let root = bench.root.to_string_lossy().into_owned();
        util::run(
            bench
                .msb(&["create", "-n", NAME, "--rootfs", &root, "-m", "2G"])
                .stdout(Stdio::null()),
        )?;
        bench.sh("mkdir -p /mnt/t && mount -t tmpfs -o size=1200m tmpfs /mnt/t")?;
        Ok(bench)
    }

    fn msb(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.msb);
        c.args(args)
            .env("MSB_HOME", self.tmp.join("home"))
            .env("MSB_BIN", &self.msb)
            .env("MSB_KERNEL", paths::msb_lib_dir().join("vmlinux"))
            .env("MSB_INITRAMFS", paths::msb_lib_dir().join("initramfs.cpio"))
            .stdin(Stdio::null());
        c
    }

    /// Runs `script` in the guest and waits for it.
    fn sh(&self, script: &str) -> Result<()> {
        util::run(
            self.msb(&["exec", NAME, "--", "sh", "-c", script])
                .stdout(Stdio::null()),
        )
    }

    /// Times `c` with stdin from `input` and stdout to `output` (or nowhere).
    fn timed(&self, mut c: Command, input: Option<&Path>, output: Option<&Path>) -> Result<Duration> {
        if let Some(input) = input {
            c.stdin(File::open(input)?);
        }
        c.stdout(match output {
            Some(out) => Stdio::from(File::create(out)?),
            None => Stdio::null(),
        });
        let t = Instant::now();
        let status = c.status().context("running msb")?;
        let took = t.elapsed();
        if !status.success() {
            bail!("{c:?} failed: {status}");
        }
        Ok(took)
    }

    fn round(&self, f: &mut Figures) -> Result<()> {
        self.sh("rm -rf /mnt/t/* /in.bin /out.bin /small /small-out")?;
        for stale in ["small-back", "small-back.tar", "small-share-back"] {
            let p = self.tmp.join(stale);
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
        // Host → guest, 256 MiB.
        f.api_in
            .push(self.timed(self.msb(&["fs", "write", NAME, "/mnt/t/api"]), Some(&self.big), None)?);
        let pipe = self.msb(&["exec", NAME, "--", "sh", "-c", "cat > /mnt/t/pipe"]);
        f.pipe_in.push(self.timed(pipe, Some(&self.big), None)?);
        let t = Instant::now();
        std::fs::copy(&self.big, self.root.join("in.bin"))?;
        self.sh("cat /in.bin > /mnt/t/share")?;
        f.share_in.push(t.elapsed());
        // Guest → host, 256 MiB.
        let out = self.tmp.join("out");
        f.api_out
            .push(self.timed(self.msb(&["fs", "cat", NAME, "/mnt/t/api"]), None, Some(&out))?);
        self.same(&out)?;
        f.pipe_out
            .push(self.timed(self.msb(&["exec", NAME, "--", "cat", "/mnt/t/pipe"]), None, Some(&out))?);
        self.same(&out)?;
        let t = Instant::now();
        self.sh("cat /mnt/t/share > /out.bin")?;
        std::fs::copy(self.root.join("out.bin"), &out)?;
        f.share_out.push(t.elapsed());
        self.same(&out)?;
        // The small files in: one API write each, one tree copy, one tar through a pipe,
        // the share.
        f.small_api.push(self.small_through_api()?);
        f.small_tree_in.push(self.small_tree(true)?);
        let tar = self.msb(&[
            "exec",
            NAME,
            "--",
            "sh",
            "-c",
            "mkdir -p /mnt/t/tar && tar -x -C /mnt/t/tar",
        ]);
        f.small_tar.push(self.timed(tar, Some(&self.small_tar), None)?);
        let t = Instant::now();
        util::run(
            Command::new("cp")
                .arg("-a")
                .arg(&self.small_dir)
                .arg(self.root.join("small")),
        )?;
        self.sh("cp -a /small /mnt/t/share-small")?;
        f.small_share.push(t.elapsed());
        // And out: a tree copy, a tar through a pipe, the share.
        f.small_tree_out.push(self.small_tree(false)?);
        let tar_out = self.msb(&["exec", NAME, "--", "tar", "-c", "-C", "/mnt/t/tar", "."]);
        f.small_tar_out
            .push(self.timed(tar_out, None, Some(&self.tmp.join("small-back.tar")))?);
        let t = Instant::now();
        self.sh("cp -a /mnt/t/tar /small-out")?;
        let back = self.tmp.join("small-share-back");
        util::run(Command::new("cp").arg("-a").arg(self.root.join("small-out")).arg(&back))?;
        f.small_share_out.push(t.elapsed());
        if std::fs::read_dir(&back)?.count() != SMALL {
            bail!("{} does not hold the {SMALL} files", back.display());
        }
        Ok(())
    }

    /// The small files as one tree copy: in (`copy_from_host`) or out (`copy_to_host`).
    fn small_tree(&self, inward: bool) -> Result<Duration> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let sb = Microsandbox::at(self.tmp.join("home")).connect(NAME).await?;
            let fs = sb.fs();
            let t = Instant::now();
            let copied = match inward {
                true => fs.copy_from_host(&self.small_dir, "/mnt/t/tree-small").await?,
                false => {
                    fs.copy_to_host("/mnt/t/tree-small", self.tmp.join("small-back"))
                        .await?
                }
            };
            let took = t.elapsed();
            if copied.entries != SMALL as u64 + 1 {
                bail!("the tree copy moved {} entries, not {}", copied.entries, SMALL + 1);
            }
            Ok(took)
        })
    }

    /// Whether `out` holds the large file's bytes.
    fn same(&self, out: &Path) -> Result<()> {
        if std::fs::read(out)? != std::fs::read(&self.big)? {
            bail!("{} differs from what was sent", out.display());
        }
        Ok(())
    }

    fn small_through_api(&self) -> Result<Duration> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let sb = Microsandbox::at(self.tmp.join("home")).connect(NAME).await?;
            let fs = sb.fs();
            let t = Instant::now();
            for i in 0..SMALL {
                let data = std::fs::read(self.small_dir.join(format!("f{i}")))?;
                fs.write(&format!("/mnt/t/api-small/f{i}"), data).await?;
            }
            Ok(t.elapsed())
        })
    }
}

fn print(f: &Figures) {
    let s = |v: &[Duration]| Summary::of(v);
    let mbps = |v: &[Duration]| (BIG as f64 / (1 << 20) as f64) / s(v).median;
    let ratio = |a: &[Duration], b: &[Duration]| s(b).median / s(a).median;
    println!(
        "files in and out of a running sandbox (busybox directory root, guest tmpfs), release msb, {}:",
        f.accel
    );
    for (what, api, pipe, share) in [
        ("host → guest, 256 MiB", &f.api_in, &f.pipe_in, &f.share_in),
        ("guest → host, 256 MiB", &f.api_out, &f.pipe_out, &f.share_out),
    ] {
        println!("  {what}");
        println!(
            "    file API (msb fs)         {:>7.1} MB/s  {}",
            mbps(api),
            s(api).secs()
        );
        println!(
            "    msb exec … cat (pipe)     {:>7.1} MB/s  {}",
            mbps(pipe),
            s(pipe).secs()
        );
        println!(
            "    virtio-fs share (bind)    {:>7.1} MB/s  {}",
            mbps(share),
            s(share).secs()
        );
        println!(
            "    file API = {:.2}× the pipe, {:.2}× the share (throughput)",
            ratio(api, pipe),
            ratio(api, share)
        );
    }
    let small_mb = (SMALL * SMALL_SIZE) as f64 / (1 << 20) as f64;
    let files = |v: &[Duration]| {
        format!(
            "{:>7.1} MB/s {:>7.0} files/s  {}",
            small_mb / s(v).median,
            SMALL as f64 / s(v).median,
            s(v).secs()
        )
    };
    println!("  {SMALL} files of {} KiB, host → guest", SMALL_SIZE / 1024);
    println!("    file API, one write each  {}", files(&f.small_api));
    println!("    file API, one tree copy   {}", files(&f.small_tree_in));
    println!("    tar through msb exec      {}", files(&f.small_tar));
    println!("    virtio-fs share (cp -a)   {}", files(&f.small_share));
    println!(
        "    tree copy = {:.2}× the tar pipe, {:.2}× the share (throughput)",
        ratio(&f.small_tree_in, &f.small_tar),
        ratio(&f.small_tree_in, &f.small_share)
    );
    println!("  {SMALL} files of {} KiB, guest → host", SMALL_SIZE / 1024);
    println!("    file API, one tree copy   {}", files(&f.small_tree_out));
    println!("    tar through msb exec      {}", files(&f.small_tar_out));
    println!("    virtio-fs share (cp -a)   {}", files(&f.small_share_out));
    println!(
        "    tree copy = {:.2}× the tar pipe, {:.2}× the share (throughput)",
        ratio(&f.small_tree_out, &f.small_tar_out),
        ratio(&f.small_tree_out, &f.small_share_out)
    );
}
