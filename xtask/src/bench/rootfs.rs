//! `cargo xtask bench rootfs`: how long the upper image of an OCI sandbox takes to build,
//! empty and with 1,000 patched files (over the python fixture's layers), against
//! `mke2fs` making the same filesystems; and what booting an image costs over booting the
//! same files as a directory root: `msb run IMAGE true` against `msb run --rootfs DIR true`,
//! interleaved in one run. VM times are QEMU TCG (software emulation) on hosts without
//! usable KVM, and say so.

use super::console;
use super::stats::Summary;
use crate::{demo, paths, registry, util};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const REPO: &str = "msb-test/python";
/// Patched files in the "full" upper.
const FILES: usize = 1000;

#[derive(Debug, Default)]
struct Figures {
    ours_empty: Vec<Duration>,
    ours_files: Vec<Duration>,
    mke2fs_empty: Vec<Duration>,
    mke2fs_files: Vec<Duration>,
    bytes_written: u64,
    run_image: Vec<Duration>,
    run_dir: Vec<Duration>,
    accel: String,
}

/// Runs the benchmark with `runs` rounds after a warm-up; prints text or one JSON object.
pub fn run(runs: usize, json: bool) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let tmp = tempfile::Builder::new().prefix("msb-bench-rootfs-").tempdir()?;
    let (msb, bake, image, layers, dir) = console::stdout_to_stderr(|| prepare(tmp.path()))??;
    let mut f = Figures {
        accel: super::accel_label(),
        ..Figures::default()
    };
    let measured = measure(&mut f, runs, tmp.path(), &msb, &bake, &image, &layers, &dir);
    console::progress_done();
    // The unpacked root holds root-owned files; remove it with rm -rf.
    let cleaned = util::run(Command::new("rm").arg("-rf").arg(tmp.path()));
    measured?;
    cleaned?;
    if json {
        println!("{}", serde_json::to_string_pretty(&to_json(&f))?);
    } else {
        print(&f);
    }
    Ok(())
}

/// Builds release `msb` and the bake example, pulls the image into a private home and
/// unpacks the same image into a directory. Returns (msb, bake, image, layers, dir root).
fn prepare(tmp: &Path) -> Result<(PathBuf, PathBuf, String, Vec<PathBuf>, PathBuf)> {
    let addr = registry::ensure()?;
    let msb = demo::build_msb(true)?;
    let bake = util::release_example("msb-rootfs", "bake_upper")?;
    let image = format!("{addr}/{REPO}");
    util::run(msb_cmd(&msb, tmp).args(["pull", "-q", &image]).stdout(Stdio::null()))?;
    let paths = microsandbox::Paths::new(tmp.join("home"));
    let record = microsandbox::image::inspect(&paths, &image)?;
    let layers = record
        .layers
        .iter()
        .map(|l| {
            paths
                .cache_dir()
                .join("layers")
                .join(format!("{}.erofs", l.diff_id.replacen(':', "_", 1)))
        })
        .collect::<Vec<_>>();
    let bundle = tmp.join("bundle");
    registry::unpack_fixture("python", &bundle)?;
    Ok((msb, bake, image, layers, bundle.join("rootfs")))
}

fn msb_cmd(msb: &Path, tmp: &Path) -> Command {
    let mut cmd = Command::new(msb);
    cmd.env("MSB_HOME", tmp.join("home"))
        .env("MSB_KERNEL", paths::msb_lib_dir().join("vmlinux"))
        .env("MSB_INITRAMFS", paths::msb_lib_dir().join("initramfs.cpio"))
        .stdin(Stdio::null());
    cmd
}

#[allow(clippy::too_many_arguments)]
fn measure(
    f: &mut Figures,
    runs: usize,
    tmp: &Path,
    msb: &Path,
    bake: &Path,
    image: &str,
    layers: &[PathBuf],
    dir: &Path,
) -> Result<()> {
    let stage = tmp.join("stage");
    stage_files(&stage)?;
    let img = tmp.join("upper.ext4");
    for round in 0..=runs {
        let keep = round > 0;
        console::progress(
            "rootfs",
            &format!("round {round}/{runs}{}", if keep { "" } else { " (warm-up)" }),
        );
        for files in [0, FILES] {
            let (secs, bytes) = bake_once(bake, &img, files, layers)?;
            let mke2fs = mke2fs(&img, (files > 0).then_some(stage.as_path()))?;
            if keep {
                let (ours, theirs) = if files == 0 {
                    (&mut f.ours_empty, &mut f.mke2fs_empty)
                } else {
                    f.bytes_written = bytes;
                    (&mut f.ours_files, &mut f.mke2fs_files)
                };
                ours.push(secs);
                theirs.push(mke2fs);
            }
        }
        // Alternate which boot goes first.
        for step in 0..2 {
            let on_image = (round + step) % 2 == 0;
            let mut cmd = msb_cmd(msb, tmp);
            cmd.arg("run");
            if on_image {
                cmd.arg(image);
            } else {
                cmd.arg("--rootfs").arg(dir);
            }
            cmd.args(["--", "true"]).stdout(Stdio::null()).stderr(Stdio::piped());
            let (wall, _) = util::timed(&mut cmd, "msb run")?;
            if keep {
                if on_image { &mut f.run_image } else { &mut f.run_dir }.push(wall);
            }
        }
    }
    Ok(())
}

/// The same files the bake example patches in, under `upper/` as in our image.
fn stage_files(stage: &Path) -> Result<()> {
    std::fs::create_dir_all(stage.join("work"))?;
    for i in 0..FILES {
        let d = stage.join(format!("upper/bench/d{}", i / 100));
        std::fs::create_dir_all(&d)?;
        let text = format!("# bench file {i}\n{}\n", "key = value\n".repeat(16));
        std::fs::write(d.join(format!("f{i}.txt")), text)?;
    }
    Ok(())
}

fn bake_once(bake: &Path, img: &Path, files: usize, layers: &[PathBuf]) -> Result<(Duration, u64)> {
    let _ = std::fs::remove_file(img);
    let out = util::output(Command::new(bake).arg(img).arg(files.to_string()).args(layers))?;
    let mut parts = out.split_whitespace();
    let secs: f64 = parts.next().context("bake_upper printed nothing")?.parse()?;
    let bytes: u64 = parts.next().context("bake_upper printed no size")?.parse()?;
    // Every image must be one e2fsck accepts; checked outside the timing.
    util::output(Command::new("e2fsck").arg("-fn").arg(img))?;
    Ok((Duration::from_secs_f64(secs), bytes))
}

/// Wall time of `mke2fs` making the same 4 GiB filesystem (from `stage` when given).
fn mke2fs(img: &Path, stage: Option<&Path>) -> Result<Duration> {
    let _ = std::fs::remove_file(img);
    std::fs::File::create(img)?.set_len(4 << 30)?;
    let mut cmd = Command::new("mke2fs");
    cmd.args([
        "-q",
        "-F",
        "-t",
        "ext4",
        "-m",
        "0",
        "-J",
        "size=8",
        "-E",
        "root_owner=0:0",
    ]);
    if let Some(stage) = stage {
        cmd.arg("-d").arg(stage);
    }
    cmd.arg(img);
    Ok(util::timed(&mut cmd, "mke2fs")?.0)
}

fn ratio(a: &Summary, b: &Summary) -> f64 {
    if b.median > 0.0 {
        a.median / b.median
    } else {
        0.0
    }
}

fn print(f: &Figures) {
    let s = |v: &[Duration]| Summary::of(v);
    let (oe, of, me, mf) = (
        s(&f.ours_empty),
        s(&f.ours_files),
        s(&f.mke2fs_empty),
        s(&f.mke2fs_files),
    );
    let (ri, rd) = (s(&f.run_image), s(&f.run_dir));
    println!("upper.ext4, 4 GiB sparse (msb-ext4 in-process, vs mke2fs wall time):");
    println!(
        "  empty             ours {}   mke2fs {}   ratio {:.2}x",
        oe.millis_p99(),
        me.millis_p99(),
        ratio(&oe, &me)
    );
    println!(
        "  {FILES} patched files ours {}   mke2fs -d {}   ratio {:.2}x  ({:.1} MB written)",
        of.millis_p99(),
        mf.millis_p99(),
        ratio(&of, &mf),
        f.bytes_written as f64 / 1e6
    );
    println!("boot, `msb run … true`, python fixture, {}:", f.accel);
    println!("  image (EROFS layers + fresh upper) {}", ri.secs());
    println!("  directory (--rootfs, virtio-fs)    {}", rd.secs());
    println!("  image / directory: {:.2}x", ratio(&ri, &rd));
}

fn to_json(f: &Figures) -> serde_json::Value {
    let s = |v: &[Duration]| Summary::of(v).json(true);
    json!({
        "accel": f.accel,
        "upper_empty": {"ours": s(&f.ours_empty), "mke2fs": s(&f.mke2fs_empty)},
        "upper_files": {"files": FILES, "bytes_written": f.bytes_written, "ours": s(&f.ours_files), "mke2fs_d": s(&f.mke2fs_files)},
        "run_true": {"image": s(&f.run_image), "directory": s(&f.run_dir),
                     "ratio": ratio(&Summary::of(&f.run_image), &Summary::of(&f.run_dir))},
    })
}
