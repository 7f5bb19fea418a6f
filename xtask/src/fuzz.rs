//! `cargo xtask fuzz`: builds every `cargo fuzz` target of the workspace (`crates/*/fuzz`)
//! with coverage instrumentation, replays its saved crash inputs, then fuzzes each for a
//! while, several at once, and prints runs and coverage per target. CI runs it for a few
//! seconds per target so the targets cannot rot; `--minutes 60` is a campaign.
//!
//! `cargo fuzz` needs a nightly toolchain only for its sanitizer flag; the coverage
//! instrumentation libFuzzer steers by is made of stable codegen options (the SanitizerCoverage
//! pass and its LLVM arguments, the same ones cargo-fuzz passes), so this task builds the
//! targets with stable Rust and gets coverage-guided fuzzing without nightly. Without a
//! sanitizer, memory errors are caught only where safe Rust would panic, which for code
//! that has no `unsafe` of its own is everywhere.
//!
//! Inputs that once crashed a target live in `crates/<crate>/fuzz/regressions/<target>/`
//! and are replayed before every run, so a fixed bug stays fixed. Hand-made valid inputs
//! (a tar, an EROFS image, a manifest) in `fuzz/seeds/<target>/` start each run deep in the
//! format; what libFuzzer finds goes to the untracked `fuzz/corpus/<target>/`.

use crate::{paths, util};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Options of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds to fuzz each target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Minutes to fuzz each target (overrides `--seconds`).
    #[arg(long)]
    pub minutes: Option<u64>,
    /// Targets fuzzed at once (default: one per CPU).
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Only these targets (by name, e.g. `decode registry`); all when none are given.
    pub only: Vec<String>,
}

/// Compiler options of cargo-fuzz's instrumentation, all stable: SanitizerCoverage with
/// 8-bit counters, a PC table and comparison tracing, plus the `fuzzing` cfg and checks.
const INSTRUMENTATION: &str = "-Cpasses=sancov-module \
     -Cllvm-args=-sanitizer-coverage-level=4 \
     -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
     -Cllvm-args=-sanitizer-coverage-pc-table \
     -Cllvm-args=-sanitizer-coverage-trace-compares \
     --cfg fuzzing -Cdebug-assertions -Coverflow-checks";

/// The host triple: naming it keeps RUSTFLAGS off build scripts and proc macros.
const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// One fuzz target: its crate's fuzz directory and its binary name.
#[derive(Debug, Clone)]
struct Target {
    dir: PathBuf,
    name: String,
}

impl Target {
    fn label(&self) -> String {
        let crate_name = self.dir.parent().and_then(Path::file_name).unwrap_or_default();
        format!("{}/{}", crate_name.to_string_lossy(), self.name)
    }

    fn binary(&self) -> PathBuf {
        target_dir().join(TRIPLE).join("release").join(&self.name)
    }

    fn log(&self) -> PathBuf {
        target_dir().join("logs").join(format!("{}.log", self.name))
    }
}

/// What one run of a target reported.
#[derive(Debug, Default)]
struct Stats {
    runs: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
}

fn target_dir() -> PathBuf {
    paths::repo_root().join("target/fuzz")
}

/// Builds, replays and fuzzes every target; fails if any target crashed.
pub fn run(args: &Args) -> Result<()> {
    let targets: Vec<Target> = targets()?
        .into_iter()
        .filter(|t| args.only.is_empty() || args.only.contains(&t.name))
        .collect();
    if targets.is_empty() {
        bail!("no fuzz targets found under crates/*/fuzz (or none of {:?})", args.only);
    }
    let seconds = args.minutes.map_or(args.seconds, |m| m * 60);
    let mut dirs: Vec<&Path> = targets.iter().map(|t| t.dir.as_path()).collect();
    dirs.dedup();
    for dir in dirs {
        build(dir)?;
    }
    std::fs::create_dir_all(target_dir().join("logs"))?;
    for t in &targets {
        replay_regressions(t)?;
    }
    let parallel = args
        .parallel
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    println!("fuzz: {} targets, {seconds} s each, {parallel} at once", targets.len());
    let mut results = Vec::new();
    for batch in targets.chunks(parallel) {
        let children = batch
            .iter()
            .map(|t| start(t, seconds).map(|child| (t, child)))
            .collect::<Result<Vec<_>>>()?;
        for (t, mut child) in children {
            let status = child.wait()?;
            let log = std::fs::read_to_string(t.log()).unwrap_or_default();
            results.push((t.label(), status.success(), parse_stats(&log), t.log()));
        }
    }
    println!(
        "{:<28} {:>12} {:>8} {:>9} {:>8}  result",
        "target", "runs", "cov", "features", "corpus"
    );
    for (label, ok, s, _) in &results {
        let verdict = if *ok { "ok" } else { "CRASH" };
        println!(
            "{label:<28} {:>12} {:>8} {:>9} {:>8}  {verdict}",
            s.runs, s.coverage, s.features, s.corpus
        );
    }
    let crashed: Vec<_> = results.iter().filter(|r| !r.1).collect();
    if !crashed.is_empty() {
        for (label, _, _, log) in &crashed {
            eprintln!("{label} crashed: see {} (the input is under its fuzz/artifacts/; once fixed, keep it in fuzz/regressions/)", log.display());
        }
        bail!("{} fuzz targets crashed", crashed.len());
    }
    Ok(())
}

/// Builds every target of one fuzz crate, instrumented.
fn build(dir: &Path) -> Result<()> {
    util::run(
        Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--release",
                "--bins",
                "--target",
                TRIPLE,
                "--manifest-path",
            ])
            .arg(dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir())
            .env("RUSTFLAGS", INSTRUMENTATION),
    )
}

/// Runs a target once over each saved crash input; any of them crashing again fails.
fn replay_regressions(t: &Target) -> Result<()> {
    let dir = t.dir.join("regressions").join(&t.name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    let mut inputs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    if inputs.is_empty() {
        return Ok(());
    }
    inputs.sort();
    println!("fuzz: {} replays {} saved crash inputs", t.label(), inputs.len());
    util::output(Command::new(t.binary()).args(&inputs))
        .map(drop)
        .with_context(|| format!("{} crashes again on a saved input in {}", t.label(), dir.display()))
}

/// Starts fuzzing one target in the background, its output going to its log.
fn start(t: &Target, seconds: u64) -> Result<Child> {
    let corpus = t.dir.join("corpus").join(&t.name);
    let artifacts = t.dir.join("artifacts").join(&t.name);
    for d in [&corpus, &artifacts] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let log = std::fs::File::create(t.log())?;
    let seeds = t.dir.join("seeds").join(&t.name);
    let mut cmd = Command::new(t.binary());
    cmd.arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // New inputs go to the first directory; the seeds are only read.
        .arg(&corpus);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", t.binary().display()))
}

/// Runs, coverage and corpus size from libFuzzer's last status line and final stats.
fn parse_stats(log: &str) -> Stats {
    let mut s = Stats::default();
    let field = |line: &str, key: &str| -> Option<u64> {
        let rest = line.split(key).nth(1)?;
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    for line in log.lines() {
        if line.starts_with('#') && line.contains(" cov: ") {
            s.coverage = field(line, " cov:").unwrap_or(s.coverage);
            s.features = field(line, " ft:").unwrap_or(s.features);
            s.corpus = field(line, " corp:").unwrap_or(s.corpus);
        }
        if let Some(runs) = field(line, "stat::number_of_executed_units:") {
            s.runs = runs;
        }
    }
    s
}

/// Every `[[bin]]` of every `crates/*/fuzz/Cargo.toml`.
fn targets() -> Result<Vec<Target>> {
    let crates = paths::repo_root().join("crates");
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&crates)
        .with_context(|| format!("listing {}", crates.display()))?
        .flatten()
        .map(|e| e.path().join("fuzz"))
        .filter(|d| d.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))?;
        // `[[bin]]` sections name their target on a `name = "…"` line.
        let mut in_bin = false;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if let (true, Some(rest)) = (in_bin, line.strip_prefix("name")) {
                let name = rest.trim_start_matches([' ', '=']).trim().trim_matches('"');
                out.push(Target {
                    dir: dir.clone(),
                    name: name.to_string(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_stats;

    #[test]
    fn stats_come_from_the_last_status_line_and_the_final_stats() {
        let log = "#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #1480253\tNEW    cov: 2089 ft: 3922 corp: 1431/44Kb lim: 4096\n\
                   #1483725\tDONE   cov: 2090 ft: 3923 corp: 1432/44Kb lim: 4096\n\
                   stat::number_of_executed_units: 1483725\n";
        let s = parse_stats(log);
        assert_eq!((s.runs, s.coverage, s.features, s.corpus), (1483725, 2090, 3923, 1432));
    }
}
