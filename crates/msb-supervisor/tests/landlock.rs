//! The supervisor's view of files once its VM is up, tried in a child process (Landlock
//! cannot be lifted, so the test process itself stays free): the child is this test binary
//! again, running only `probe`, which confines itself as a serving supervisor with the home
//! `PROBE_HOME` and reports by exit code what it could reach.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use msb_supervisor::landlock::{confine, Confined};
use msb_types::Paths;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The exit code of a child whose kernel has no Landlock.
const NO_LANDLOCK: i32 = 77;

/// Whether reading `path` was refused for lack of rights.
fn refused(path: &Path) -> bool {
    std::fs::read(path).is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
}

/// The child's side; does nothing in the parent's run.
#[test]
fn probe() {
    let (Ok(home), Ok(outside)) = (std::env::var("PROBE_HOME"), std::env::var("PROBE_OUTSIDE")) else {
        return;
    };
    let (home, outside) = (PathBuf::from(home), PathBuf::from(outside));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let confined = rt.block_on(confine(&Paths::new(&home), "s", None)).expect("confining");
    if confined == Confined::Off {
        std::process::exit(NO_LANDLOCK);
    }
    // The test harness's main thread, which only waits for this one, is left out.
    assert_eq!(confined, Confined::Threads { left_out: 1 });
    // Its home, read and written, files made and renamed, as the store and logs do.
    std::fs::create_dir_all(home.join("sandboxes/s/logs")).unwrap();
    std::fs::write(home.join("sandboxes/s/logs/exec.log.tmp"), b"ran").unwrap();
    std::fs::rename(
        home.join("sandboxes/s/logs/exec.log.tmp"),
        home.join("sandboxes/s/logs/exec.log"),
    )
    .unwrap();
    assert_eq!(std::fs::read(home.join("sandboxes/s/logs/exec.log")).unwrap(), b"ran");
    std::fs::read_to_string("/proc/self/status").unwrap();
    std::fs::write("/dev/null", b"x").unwrap();
    // Nothing else: not msb's programs, not another sandbox's disk, not a file beside the
    // home, not /etc's secrets, not from a new thread.
    assert!(refused(&home.join("bin/msb")), "msb's program was read");
    assert!(
        std::fs::write(home.join("bin/msb"), b"planted").is_err(),
        "msb's program was replaced"
    );
    assert!(
        refused(&home.join("sandboxes/other/upper.ext4")),
        "another sandbox's disk was read"
    );
    assert!(refused(&outside), "{} was read", outside.display());
    assert!(refused(Path::new("/etc/shadow")), "/etc/shadow was read");
    assert!(
        std::fs::write(outside.with_extension("new"), b"x").is_err(),
        "a file was made outside"
    );
    let from_thread = std::thread::spawn(move || refused(&outside)).join().unwrap();
    assert!(from_thread, "a thread started later reads outside");
    // An ephemeral sandbox's directory goes at the end.
    std::fs::remove_dir_all(home.join("sandboxes/s")).unwrap();
    std::process::exit(0);
}

#[test]
fn a_serving_supervisor_reaches_its_home_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    for made in ["db", "bin", "sandboxes/s", "sandboxes/other"] {
        std::fs::create_dir_all(home.join(made)).unwrap();
    }
    std::fs::write(home.join("bin/msb"), "the program").unwrap();
    std::fs::write(home.join("sandboxes/other/upper.ext4"), "their disk").unwrap();
    let outside = dir.path().join("private.txt");
    std::fs::write(&outside, "the user's").unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "probe", "--nocapture", "--test-threads=1"])
        .env("PROBE_HOME", &home)
        .env("PROBE_OUTSIDE", &outside)
        .env_remove("MSB_SUPERVISOR_LANDLOCK")
        .status()
        .unwrap();
    if status.code() == Some(NO_LANDLOCK) {
        eprintln!("this kernel has no Landlock: nothing to check");
        return;
    }
    assert!(status.success(), "the confined child: {status}");
}
