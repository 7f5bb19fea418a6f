//! `msb pull` against a fake registry that serves bad input: every case must end in a clear
//! error (exit 125) and leave the store exactly as it was — no layer file, no partial file in
//! `cache/tmp`, no image record — and a later good pull must work. No VM and no fixture
//! registry needed, so these always run.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::fake_registry::{gzip, media, sha256, tar_of, Behaviour, FakeRegistry, Image, ImageBuilder, Layer};
use msb_e2e::stdout_of as ok;
use msb_e2e::Sandbox;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest any msb invocation may take before the test fails.
const MSB_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `cmd`, killing it and failing the test if it outlives [`MSB_TIMEOUT`].
fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning msb");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status = msb_e2e::wait_or_kill(&mut child, MSB_TIMEOUT, &format!("{cmd:?} did not finish"));
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn msb(sb: &Sandbox, args: &[&str]) -> Output {
    let mut cmd = sb.msb();
    cmd.args(args);
    run(cmd)
}

fn pull(sb: &Sandbox, reference: &str) -> Output {
    msb(sb, &["pull", reference])
}

/// Pulls, prints what happened and how long it took (for the report on hostile inputs),
/// and asserts msb did not panic; returns the output and its stderr.
fn pull_reported(sb: &Sandbox, reference: &str, label: &str) -> (Output, String) {
    let started = Instant::now();
    let out = pull(sb, reference);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "{label}: exit {:?} after {:?}: {stderr}{stdout}",
        out.status.code(),
        started.elapsed()
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out, stderr)
}

/// Asserts exit 125 and that stderr contains every needle (case-insensitively); returns stderr.
fn fails_with(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprint!("{stderr}");
    assert_eq!(out.status.code(), Some(125), "expected exit 125: {stderr}");
    let lower = stderr.to_lowercase();
    for needle in needles {
        assert!(
            lower.contains(&needle.to_lowercase()),
            "expected '{needle}' in: {stderr}"
        );
    }
    assert!(!stderr.contains("panicked"), "msb panicked: {stderr}");
    stderr
}

fn images(sb: &Sandbox) -> Vec<Value> {
    serde_json::from_str(&ok(&msb(sb, &["image", "ls", "--json"]))).expect("json")
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn layer_files(sb: &Sandbox) -> Vec<PathBuf> {
    entries(&sb.home().join("cache/layers"))
}

fn tmp_files(sb: &Sandbox) -> Vec<PathBuf> {
    entries(&sb.home().join("cache/tmp"))
}

/// The store is as a fresh one: no layer, no partial file, no image.
fn assert_nothing_stored(sb: &Sandbox) {
    assert_eq!(layer_files(sb), Vec::<PathBuf>::new(), "layer files left behind");
    assert_eq!(tmp_files(sb), Vec::<PathBuf>::new(), "partial files left behind");
    assert_eq!(images(sb), Vec::<Value>::new(), "image recorded");
}

fn fsck(file: &Path) {
    let out = Command::new("fsck.erofs").arg(file).output().expect("fsck.erofs");
    assert!(
        out.status.success(),
        "fsck.erofs {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sample_tar() -> Vec<u8> {
    tar_of(&[
        ("hello.txt", b"hello from the fake registry\n"),
        ("bin/tool", &[7u8; 3000]),
    ])
}

/// A correct one-layer gzip image.
fn good_image(repo: &str) -> Image {
    ImageBuilder::new(repo, "v1")
        .layer(Layer::tar_gz(&sample_tar()))
        .build()
}

/// Pseudo-random bytes (xorshift), deterministic per seed.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn layer_digest_mismatch_is_reported_and_nothing_is_stored() {
    let registry = FakeRegistry::start();
    let mut image = good_image("test/mismatch");
    // The manifest names the right digest, but the registry serves other bytes under it.
    image.layer_blobs[0] = gzip(&tar_of(&[("other.txt", b"not what the manifest promised")]));
    registry.serve(&image);
    let sb = Sandbox::new();
    let out = pull(&sb, &registry.reference(&image));
    fails_with(&out, &["digest mismatch", &image.layer_digest(0)]);
    assert_nothing_stored(&sb);
}

#[test]
fn truncated_download_is_reported_and_nothing_is_stored() {
    let registry = FakeRegistry::start();
    let image = good_image("test/truncated");
    registry.serve(&image);
    let half = image.layer_blobs[0].len() / 2;
    registry.set_behaviour(&image.blob_path(&image.layer_digest(0)), Behaviour::CloseAfter(half));
    let sb = Sandbox::new();
    let out = pull(&sb, &registry.reference(&image));
    fails_with(&out, &["download interrupted", &image.layer_digest(0)]);
    assert_nothing_stored(&sb);
}

#[test]
fn corrupt_gzip_is_reported_and_nothing_is_stored() {
    let registry = FakeRegistry::start();
    let tar = sample_tar();
    // Right digests, right diff_id, but the blob is not gzip.
    let layer = Layer::raw(media::LAYER_GZIP, noise(4096, 1), sha256(&tar));
    let image = ImageBuilder::new("test/badgzip", "v1").layer(layer).build();
    registry.serve(&image);
    let sb = Sandbox::new();
    let out = pull(&sb, &registry.reference(&image));
    let stderr = fails_with(&out, &[&image.layer_digest(0)]);
    let lower = stderr.to_lowercase();
    assert!(
        lower.contains("gzip") || lower.contains("decompress"),
        "expected the error to name gzip/decompression: {stderr}"
    );
    assert_nothing_stored(&sb);
}

#[test]
fn gzip_of_something_that_is_not_a_tar_is_reported_and_nothing_is_stored() {
    let registry = FakeRegistry::start();
    let sb = Sandbox::new();
    let text: Vec<u8> = b"this is a text file, certainly not a tar archive\n".repeat(200);
    let short: &[u8] = b"not a tar\n";
    for (i, content) in [text.as_slice(), short].into_iter().enumerate() {
        let layer = Layer::raw(media::LAYER_GZIP, gzip(content), sha256(content));
        let image = ImageBuilder::new(&format!("test/nottar{i}"), "v1").layer(layer).build();
        registry.serve(&image);
        let out = pull(&sb, &registry.reference(&image));
        fails_with(&out, &[&image.layer_digest(0)]);
        assert_nothing_stored(&sb);
    }
}

#[test]
fn unsupported_media_types_are_reported_and_nothing_is_stored() {
    let registry = FakeRegistry::start();
    let sb = Sandbox::new();
    let tar = sample_tar();
    let cases = [
        ImageBuilder::new("test/mt-manifest", "v1")
            .layer(Layer::tar_gz(&tar))
            .manifest_media_type("application/vnd.example+json")
            .build(),
        ImageBuilder::new("test/mt-helm", "v1")
            .layer(Layer::tar_gz(&tar))
            .config_media_type("application/vnd.cncf.helm.config.v1+json")
            .build(),
        ImageBuilder::new("test/mt-bz2", "v1")
            .layer(Layer::raw(
                "application/vnd.oci.image.layer.v1.tar+bz2",
                b"BZh9 pretend".to_vec(),
                sha256(&tar),
            ))
            .build(),
    ];
    let expected_types = [
        "application/vnd.example+json",
        "application/vnd.cncf.helm.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar+bz2",
    ];
    for (image, media_type) in cases.iter().zip(expected_types) {
        registry.serve(image);
        let out = pull(&sb, &registry.reference(image));
        fails_with(&out, &["unsupported media type", media_type]);
        assert_nothing_stored(&sb);
    }
}

#[test]
fn config_digest_mismatch_is_reported_and_nothing_is_stored() {
    let registry = FakeRegistry::start();
    let mut image = good_image("test/badconfig");
    // Other config bytes served under the digest the manifest names.
    let claimed = image.manifest["config"]["digest"].as_str().unwrap().to_string();
    image.config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    registry.serve(&image);
    let sb = Sandbox::new();
    let out = pull(&sb, &registry.reference(&image));
    fails_with(&out, &["config", "digest mismatch", &claimed]);
    assert_nothing_stored(&sb);
}

#[test]
fn diff_id_mismatch_is_reported_and_nothing_is_stored() {
    let registry = FakeRegistry::start();
    let mut image = good_image("test/baddiffid");
    let wrong = sha256(b"some other tar");
    image.edit_config(|c| c["rootfs"]["diff_ids"] = json!([wrong]));
    registry.serve(&image);
    let sb = Sandbox::new();
    let out = pull(&sb, &registry.reference(&image));
    fails_with(&out, &["digest mismatch", &image.layer_digest(0), &wrong]);
    assert_nothing_stored(&sb);
}

#[test]
fn pull_after_a_failed_one_succeeds_once_the_registry_is_fixed() {
    let registry = FakeRegistry::start();
    let image = good_image("test/resume");
    let layer_path = image.blob_path(&image.layer_digest(0));
    registry.serve(&image);
    registry.set_behaviour(&layer_path, Behaviour::CloseAfter(100));
    let sb = Sandbox::new();
    let reference = registry.reference(&image);
    fails_with(&pull(&sb, &reference), &[]);
    assert_nothing_stored(&sb);

    registry.set_behaviour(&layer_path, Behaviour::Normal);
    let stdout = ok(&pull(&sb, &reference));
    assert!(stdout.contains("1 layer"), "{stdout}");
    let files = layer_files(&sb);
    assert_eq!(files.len(), 1, "{files:?}");
    let diff_id = sha256(&sample_tar());
    assert_eq!(
        files[0].file_name().unwrap().to_string_lossy(),
        format!("{}.erofs", diff_id.replace(':', "_"))
    );
    fsck(&files[0]);
    assert!(tmp_files(&sb).is_empty(), "{:?}", tmp_files(&sb));
    let listed = images(&sb);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["reference"], reference);
}

/// A pid that is not running (a reaped child's).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("spawning true");
    let pid = child.id();
    child.wait().expect("waiting for true");
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    pid
}

#[test]
fn partial_file_of_a_killed_pull_is_removed_by_the_next_pull() {
    let registry = FakeRegistry::start();
    let image = good_image("test/killed");
    registry.serve(&image);
    let sb = Sandbox::new();
    let tmp = sb.home().join("cache/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let digest = image.layer_digest(0).replace(':', "_");
    let dead = tmp.join(format!("{digest}.{}.0.part", dead_pid()));
    std::fs::write(&dead, b"half an erofs image").unwrap();
    // A part file of a live pull (this test's own pid) must be left alone.
    let live = tmp.join(format!("{digest}.{}.0.part", std::process::id()));
    std::fs::write(&live, b"in progress").unwrap();

    ok(&pull(&sb, &registry.reference(&image)));
    assert!(!dead.exists(), "stale part file survived the next pull");
    assert!(live.exists(), "a live pull's part file was removed");
    assert_eq!(layer_files(&sb).len(), 1);
    fsck(&layer_files(&sb)[0]);
    assert_eq!(images(&sb).len(), 1);
}

#[test]
fn a_failed_pull_leaves_an_earlier_image_intact() {
    let registry = FakeRegistry::start();
    let good = good_image("test/good");
    registry.serve(&good);
    let sb = Sandbox::new();
    ok(&pull(&sb, &registry.reference(&good)));
    let files_before = layer_files(&sb);
    assert_eq!(files_before.len(), 1);
    let bytes_before = std::fs::read(&files_before[0]).unwrap();
    let record_before = images(&sb);

    // The bad image shares the good layer and adds one whose blob does not match its digest.
    let extra = tar_of(&[("extra.txt", b"second layer")]);
    let mut bad = ImageBuilder::new("test/bad", "v1")
        .layer(Layer::tar_gz(&sample_tar()))
        .layer(Layer::tar_gz(&extra))
        .build();
    bad.layer_blobs[1] = gzip(b"tampered");
    registry.serve(&bad);
    fails_with(&pull(&sb, &registry.reference(&bad)), &["digest mismatch"]);

    assert_eq!(layer_files(&sb), files_before);
    assert_eq!(std::fs::read(&files_before[0]).unwrap(), bytes_before);
    assert_eq!(images(&sb), record_before);
    assert!(tmp_files(&sb).is_empty(), "{:?}", tmp_files(&sb));
    fsck(&files_before[0]);
}

#[test]
fn a_layer_still_downloading_when_another_fails_leaves_no_partial_file() {
    let registry = FakeRegistry::start();
    let bad = tar_of(&[("bad.txt", b"bad")]);
    let slow = tar_of(&[("slow.bin", &noise(256 * 1024, 3))]);
    let mut image = ImageBuilder::new("test/concurrent", "v1")
        .layer(Layer::tar_gz(&bad))
        .layer(Layer::tar_gz(&slow))
        .build();
    image.layer_blobs[0] = gzip(b"tampered");
    registry.serve(&image);
    // Layer 1 sends a little, then stalls; layer 0 is answered only once layer 1 has been
    // asked for (however loaded the machine, so the failure lands mid-download), fails its
    // digest check, and the pull gives up on layer 1.
    let slow_path = image.blob_path(&image.layer_digest(1));
    registry.set_behaviour(&slow_path, Behaviour::StallAfter(20_000, Duration::from_secs(60)));
    registry.set_behaviour(
        &image.blob_path(&image.layer_digest(0)),
        Behaviour::AwaitRequestFor(slow_path.clone()),
    );
    let sb = Sandbox::new();
    let started = Instant::now();
    fails_with(&pull(&sb, &registry.reference(&image)), &["digest mismatch"]);
    // The stall lasts a minute and the read timeout is 30 s: ending well before either
    // means msb gave up on the stalled layer as soon as the other one failed.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "msb waited for the stalled layer ({:?})",
        started.elapsed()
    );
    assert!(
        registry.requests().iter().any(|r| r.contains(&image.layer_digest(1))),
        "the second layer was never requested: {:?}",
        registry.requests()
    );
    assert_nothing_stored(&sb);
}

#[test]
fn a_registry_that_stops_sending_times_out() {
    let registry = FakeRegistry::start();
    let image = good_image("test/stall");
    registry.serve(&image);
    registry.set_behaviour(
        &image.blob_path(&image.layer_digest(0)),
        Behaviour::StallAfter(100, Duration::from_secs(120)),
    );
    let sb = Sandbox::new();
    let mut cmd = sb.msb();
    cmd.args(["pull", "--read-timeout", "2", &registry.reference(&image)]);
    let started = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("msb still waiting for a stalled registry after 60 s (read timeout 2 s)");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(125), "{stderr}");
    // The 2 s setting, not the 30 s default, ended it.
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert!(stderr.contains(&image.layer_digest(0)), "{stderr}");
    assert!(stderr.contains("timed out"), "{stderr}");
    assert_nothing_stored(&sb);
}

#[test]
fn a_slow_registry_is_waited_for() {
    let registry = FakeRegistry::start();
    let image = good_image("test/slow");
    registry.serve(&image);
    registry.set_behaviour(
        &image.blob_path(&image.layer_digest(0)),
        Behaviour::Sleep(Duration::from_millis(1500)),
    );
    let sb = Sandbox::new();
    ok(&pull(&sb, &registry.reference(&image)));
    assert_eq!(layer_files(&sb).len(), 1);
}

#[test]
fn huge_size_fields_do_not_break_the_pull() {
    let registry = FakeRegistry::start();
    let mut image = good_image("test/hugesize");
    image.manifest["layers"][0]["size"] = json!(i64::MAX);
    image.manifest["config"]["size"] = json!(i64::MAX);
    registry.serve(&image);
    let sb = Sandbox::new();
    let (out, stderr) = pull_reported(&sb, &registry.reference(&image), "huge sizes");
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("config blob of"), "{stderr}");
    assert_nothing_stored(&sb);

    // A layer whose size field lies is refused even though its digest matches.
    let mut image = good_image("test/hugelayer");
    image.manifest["layers"][0]["size"] = json!(i64::MAX);
    registry.serve(&image);
    fails_with(&pull(&sb, &registry.reference(&image)), &["the manifest says"]);
    assert_nothing_stored(&sb);

    // Sizes that do not fit the manifest's integer type are a parse error.
    let mut image = good_image("test/hugesize2");
    image.manifest["layers"][0]["size"] = json!(1e30);
    registry.serve(&image);
    let sb = Sandbox::new();
    fails_with(&pull(&sb, &registry.reference(&image)), &[]);
    assert_nothing_stored(&sb);
}

#[test]
fn ten_thousand_layers_are_bounded() {
    let registry = FakeRegistry::start();
    let mut image = good_image("test/manylayers");
    let layer = image.manifest["layers"][0].clone();
    let diff_id = sha256(&sample_tar());
    image.manifest["layers"] = json!(vec![layer; 10_000]);
    image.edit_config(|c| c["rootfs"]["diff_ids"] = json!(vec![diff_id; 10_000]));
    registry.serve(&image);
    let sb = Sandbox::new();
    let (_, stderr) = pull_reported(&sb, &registry.reference(&image), "10k layers");
    assert!(stderr.contains("at most 500 can be stacked"), "{stderr}");
    assert_nothing_stored(&sb);
}

#[test]
fn a_fifty_megabyte_manifest_is_bounded() {
    let registry = FakeRegistry::start();
    let mut image = good_image("test/bigmanifest");
    image.manifest["annotations"] = json!({"padding": "x".repeat(50 << 20)});
    registry.serve(&image);
    let sb = Sandbox::new();
    let mut cmd = sb.msb();
    cmd.args(["pull", &registry.reference(&image)]);
    let (out, peak_kib) = msb_e2e::output_with_peak_rss(&mut cmd);
    let stderr = fails_with(&out, &["manifest is", "the limit is 4194304"]);
    eprintln!("50 MB manifest: peak RSS {} MiB: {stderr}", peak_kib >> 10);
    // Read whole once by the registry client (about 50 MiB), never copied over and over.
    assert!(peak_kib < 192 << 10, "peak RSS {} MiB", peak_kib >> 10);
    assert_nothing_stored(&sb);
}

#[test]
fn digests_that_are_paths_are_rejected() {
    let registry = FakeRegistry::start();
    let sb = Sandbox::new();
    // A file outside the store that a diff_id like `../../…/victim` would name.
    let victim = tempfile::Builder::new()
        .suffix(".erofs")
        .tempfile_in(sb.home())
        .unwrap();
    let victim_path = victim.path().to_path_buf();
    let stem = victim_path.with_extension("");
    let ups = "../".repeat(sb.home().join("cache/layers").components().count());
    let hostile = format!("{ups}{}", stem.display().to_string().trim_start_matches('/'));

    let mut image = good_image("test/pathdiffid");
    image.edit_config(|c| c["rootfs"]["diff_ids"] = json!([hostile]));
    registry.serve(&image);
    fails_with(&pull(&sb, &registry.reference(&image)), &["not a sha256 digest"]);
    assert!(victim_path.exists());
    assert_nothing_stored(&sb);

    let mut image = good_image("test/pathdigest");
    let blob = image.layer_blobs[0].clone();
    let digest = format!("sha256:{ups}tmp/x");
    image.manifest["layers"][0]["digest"] = json!(digest);
    registry.serve(&image);
    registry.route(&image.blob_path(&digest), msb_e2e::fake_registry::Response::ok(blob));
    fails_with(&pull(&sb, &registry.reference(&image)), &[]);
    assert_nothing_stored(&sb);
}
