//! `cargo xtask bench pull`: cold `msb pull` of the python fixture from the local registry,
//! against `skopeo copy` (download only) and `skopeo copy` + `umoci unpack` (what a user would
//! otherwise do), interleaved in the same run; then tar → EROFS conversion throughput of the
//! image's merged root filesystem, single core, against `mkfs.erofs` of the same tree.

use super::console;
use crate::{demo, registry, util};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// The fixture pulled: Debian minbase + python3, three gzip layers.
const REPO: &str = "msb-test/python";
/// The issue's goal: `msb pull` within this factor of `skopeo copy`.
pub(super) const GOAL: f64 = 1.4;
/// The original microsandbox's time on this image relative to `skopeo copy`, as quoted in the
/// issue (not measured here).
pub(super) const ISSUE_ORIGINAL: f64 = 2.8;
/// Throughputs are in decimal megabytes.
pub(super) const MB: f64 = 1e6;

/// What the runs share: the tools, the registry and a temp dir removed at the end.
struct Setup {
    tmp: tempfile::TempDir,
    msb: PathBuf,
    tar2erofs: PathBuf,
    addr: String,
}

/// One layer of the image, as the registry serves it and as tar.
#[derive(Debug, Clone)]
pub(super) struct Layer {
    pub(super) digest: String,
    pub(super) diff_id: String,
    pub(super) media_type: String,
    pub(super) compressed: u64,
    pub(super) tar: u64,
}

/// When one layer's EROFS file was created and last written, from the start of `msb pull`.
#[derive(Debug, Clone)]
pub(super) struct LayerSpan {
    pub(super) diff_id: String,
    /// (birth, last write); `None` where the file system keeps no birth time.
    pub(super) times: Option<(Duration, Duration)>,
    pub(super) erofs: u64,
}

/// Conversion figures: our writer (release `tar2erofs` example) and `mkfs.erofs`.
#[derive(Debug, Default)]
pub(super) struct Conversion {
    pub(super) tar_bytes: u64,
    pub(super) dir_bytes: u64,
    pub(super) entries: u64,
    pub(super) erofs_bytes: u64,
    pub(super) mkfs_bytes: u64,
    pub(super) ours: Vec<Duration>,
    pub(super) mkfs: Vec<Duration>,
}

/// Everything measured.
#[derive(Debug, Default)]
pub(super) struct Figures {
    pub(super) reference: String,
    pub(super) load: (String, String),
    pub(super) layers: Vec<Layer>,
    pub(super) ours: Vec<Duration>,
    pub(super) spans: Vec<Vec<LayerSpan>>,
    pub(super) skopeo: Vec<Duration>,
    pub(super) skopeo_umoci: Vec<Duration>,
    pub(super) umoci_part: Vec<Duration>,
    pub(super) conversion: Conversion,
}

/// Runs the benchmark with `runs` rounds after a warm-up; prints text or one JSON object.
pub fn run(runs: usize, json: bool) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    // Build and registry output goes to stderr so that `--json` leaves stdout to the JSON.
    let setup = console::stdout_to_stderr(prepare)??;
    let mut f = Figures {
        reference: format!("{}/{REPO}:latest", setup.addr),
        ..Figures::default()
    };
    let load_start = console::loadavg();
    let measured = measure(&setup, runs, &mut f);
    console::progress_done();
    // Bundles hold root-owned files; `rm -rf` them rather than trusting TempDir's drop.
    let cleaned = rm_rf(setup.tmp.path());
    measured?;
    cleaned?;
    f.load = (load_start, console::loadavg());
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&super::pull_report::to_json(&f, runs))?
        );
    } else {
        super::pull_report::print(&f);
    }
    Ok(())
}

/// Starts the registry, builds release `msb` and the `tar2erofs` example, makes a temp dir.
fn prepare() -> Result<Setup> {
    let addr = registry::ensure()?;
    let msb = demo::build_msb(true)?;
    let tar2erofs = util::release_example("msb-erofs", "tar2erofs")?;
    let tmp = tempfile::Builder::new()
        .prefix("msb-bench-pull-")
        .tempdir()
        .context("creating a temp dir")?;
    Ok(Setup {
        tmp,
        msb,
        tar2erofs,
        addr,
    })
}

/// Image facts, `runs` interleaved rounds after a warm-up, then the conversion figures.
fn measure(s: &Setup, runs: usize, f: &mut Figures) -> Result<()> {
    console::progress(
        "pull",
        "reading the image (skopeo copy, umoci unpack, decompressing layers)",
    );
    let reference = s.tmp.path().join("reference");
    let (layout, bundle) = (reference.join("layout"), reference.join("bundle"));
    skopeo_copy(s, &layout)?;
    umoci_unpack(&layout, &bundle)?;
    f.layers = image_layers(&layout)?;
    for round in 0..=runs {
        console::progress(
            "pull",
            &format!("round {round}/{runs}{}", if round == 0 { " (warm-up)" } else { "" }),
        );
        let dir = s.tmp.path().join(format!("round-{round}"));
        // Each round starts with a different one so no tool always follows the same other.
        for step in 0..3 {
            match (round + step) % 3 {
                0 => {
                    let (wall, spans) = msb_pull(s, &dir.join("home"))?;
                    if round > 0 {
                        f.ours.push(wall);
                        f.spans.push(spans);
                    }
                }
                1 => {
                    let wall = skopeo_copy(s, &dir.join("copy"))?;
                    if round > 0 {
                        f.skopeo.push(wall);
                    }
                }
                _ => {
                    let layout = dir.join("unpack-layout");
                    let copy = skopeo_copy(s, &layout)?;
                    let unpack = umoci_unpack(&layout, &dir.join("bundle"))?;
                    if round > 0 {
                        f.skopeo_umoci.push(copy + unpack);
                        f.umoci_part.push(unpack);
                    }
                }
            }
            rm_rf(&dir)?;
        }
    }
    f.conversion = conversion(s, &bundle.join("rootfs"), runs)?;
    Ok(())
}

/// Wall time of `msb pull -q REF` into an empty `home`, and when each layer was written.
fn msb_pull(s: &Setup, home: &Path) -> Result<(Duration, Vec<LayerSpan>)> {
    let mut cmd = Command::new(&s.msb);
    cmd.args(["pull", "-q"])
        .arg(format!("{}/{REPO}", s.addr))
        .env("MSB_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t0 = SystemTime::now();
    let (wall, _) = util::timed(&mut cmd, "msb pull")?;
    let cache = microsandbox::Paths::new(home).cache_dir();
    Ok((wall, layer_spans(&cache, t0)?))
}

/// Each `*.erofs` under `dir`: birth time (the scratch file is created when the layer's
/// download starts and renamed into place) and mtime (its last write), relative to `t0`.
fn layer_spans(dir: &Path, t0: SystemTime) -> Result<Vec<LayerSpan>> {
    let mut spans = Vec::new();
    for path in files_under(dir)? {
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".erofs"))
        else {
            continue;
        };
        let meta = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        let since = |t: SystemTime| t.duration_since(t0).unwrap_or_default();
        let times = match (meta.created(), meta.modified()) {
            (Ok(born), Ok(written)) => Some((since(born), since(written))),
            _ => None,
        };
        spans.push(LayerSpan {
            diff_id: stem.replacen('_', ":", 1),
            times,
            erofs: meta.len(),
        });
    }
    Ok(spans)
}

/// Every regular file below `dir`.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let entry = entry.with_context(|| format!("listing {}", d.display()))?;
            let kind = entry
                .file_type()
                .with_context(|| format!("reading {}", entry.path().display()))?;
            if kind.is_dir() {
                todo.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    Ok(out)
}

/// Wall time of `skopeo copy docker://REF oci:LAYOUT:latest` (download only).
fn skopeo_copy(s: &Setup, layout: &Path) -> Result<Duration> {
    // skopeo wants the parent to exist (it makes the layout dir itself).
    if let Some(parent) = layout.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{}/{REPO}:latest", s.addr))
        .arg(format!("oci:{}:latest", layout.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    util::timed(&mut cmd, "skopeo copy").map(|(t, _)| t)
}

/// Wall time of `umoci unpack --image LAYOUT:latest BUNDLE` (as root: real owners).
fn umoci_unpack(layout: &Path, bundle: &Path) -> Result<Duration> {
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    util::timed(&mut cmd, "umoci unpack").map(|(t, _)| t)
}

/// The layers of the single manifest in an OCI layout, with their uncompressed tar sizes.
fn image_layers(layout: &Path) -> Result<Vec<Layer>> {
    let index = read_json(&layout.join("index.json"))?;
    let manifest = read_json(&blob(layout, index["manifests"][0]["digest"].as_str())?)?;
    let config = read_json(&blob(layout, manifest["config"]["digest"].as_str())?)?;
    let descs = manifest["layers"].as_array().context("manifest without layers")?;
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .context("config without diff_ids")?;
    if descs.len() != diff_ids.len() {
        bail!("{} layers but {} diff_ids", descs.len(), diff_ids.len());
    }
    descs
        .iter()
        .zip(diff_ids)
        .map(|(d, diff_id)| {
            let digest = d["digest"].as_str().context("layer without digest")?.to_string();
            let media_type = d["mediaType"].as_str().unwrap_or_default().to_string();
            let path = blob(layout, Some(&digest))?;
            Ok(Layer {
                tar: tar_size(&path, &media_type)?,
                compressed: d["size"].as_u64().context("layer without size")?,
                diff_id: diff_id.as_str().unwrap_or_default().to_string(),
                digest,
                media_type,
            })
        })
        .collect()
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Where a blob lives in an OCI layout.
fn blob(layout: &Path, digest: Option<&str>) -> Result<PathBuf> {
    let digest = digest.context("descriptor without digest")?;
    let (algo, hex) = digest.split_once(':').context("digest without algorithm")?;
    Ok(layout.join("blobs").join(algo).join(hex))
}

/// Bytes of the tar inside a layer blob (decompressed by `gzip`/`zstd`, counted, dropped).
fn tar_size(path: &Path, media_type: &str) -> Result<u64> {
    let tool = match media_type {
        t if t.ends_with("gzip") => "gzip",
        t if t.ends_with("zstd") => "zstd",
        _ => {
            return Ok(std::fs::metadata(path)
                .with_context(|| format!("reading {}", path.display()))?
                .len())
        }
    };
    let mut child = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {tool}"))?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let n =
        std::io::copy(&mut stdout, &mut std::io::sink()).with_context(|| format!("{tool} -dc {}", path.display()))?;
    if !child.wait().with_context(|| format!("waiting for {tool}"))?.success() {
        bail!("{tool} -dc {} failed", path.display());
    }
    Ok(n)
}

/// Tars `rootfs` once, then per round converts it with our writer and the same tree with
/// `mkfs.erofs` (both single-threaded, both from the page cache, output on the same fs).
fn conversion(s: &Setup, rootfs: &Path, runs: usize) -> Result<Conversion> {
    console::progress("pull", "tar of the merged rootfs for the conversion figures");
    let dir = s.tmp.path().join("convert");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tar = dir.join("rootfs.tar");
    util::run(Command::new("tar").arg("-cf").arg(&tar).arg("-C").arg(rootfs).arg("."))?;
    let mut c = Conversion {
        tar_bytes: std::fs::metadata(&tar).context("reading the rootfs tar")?.len(),
        dir_bytes: files_under(rootfs)?
            .iter()
            .filter_map(|p| std::fs::symlink_metadata(p).ok())
            .map(|m| m.len())
            .sum(),
        ..Conversion::default()
    };
    let (ours_out, mkfs_out) = (dir.join("ours.erofs"), dir.join("mkfs.erofs"));
    for round in 0..=runs {
        console::progress("pull", &format!("conversion round {round}/{runs}"));
        let mut cmd = Command::new(&s.tar2erofs);
        cmd.arg(&tar).arg(&ours_out).stderr(Stdio::piped());
        let (wall, stdout) = util::timed(&mut cmd, "tar2erofs")?;
        let stats = String::from_utf8_lossy(&stdout);
        c.entries = stat_field(&stats, "entries")?;
        c.erofs_bytes = stat_field(&stats, "bytes_out")?;
        let mut cmd = Command::new("mkfs.erofs");
        cmd.arg("--quiet")
            .arg(&mkfs_out)
            .arg(rootfs)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let (mkfs, _) = util::timed(&mut cmd, "mkfs.erofs")?;
        c.mkfs_bytes = std::fs::metadata(&mkfs_out)
            .context("reading the mkfs.erofs image")?
            .len();
        for out in [&ours_out, &mkfs_out] {
            std::fs::remove_file(out).with_context(|| format!("removing {}", out.display()))?;
        }
        if round > 0 {
            c.ours.push(wall);
            c.mkfs.push(mkfs);
        }
    }
    Ok(c)
}

/// `name: N,` from the example's `{:#?}` of `WriteStats`.
fn stat_field(text: &str, name: &str) -> Result<u64> {
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(name)?
                .strip_prefix(':')?
                .trim()
                .trim_end_matches(',')
                .parse()
                .ok()
        })
        .with_context(|| format!("tar2erofs printed no {name}: {text}"))
}

fn rm_rf(path: &Path) -> Result<()> {
    util::run(Command::new("rm").arg("-rf").arg(path))
}
