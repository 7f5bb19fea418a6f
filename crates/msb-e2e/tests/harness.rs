//! The harness's own checks can fail: `assert_no_vm_left` sees a lingering supervisor,
//! and a world that goes away (a failed test) kills the supervisors it left.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::Sandbox as World;

#[test]
fn a_supervisor_of_this_world_counts_as_left_behind() {
    let w = World::new();
    assert!(w.vm_processes().is_empty());
    // Something that looks like this world's supervisor: its argv says `__supervise`, its
    // environment names the world's home.
    let mut fake = std::process::Command::new("bash")
        .args(["-c", "exec -a 'msb __supervise fake' sleep 30"])
        .env("MSB_HOME", w.home())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = w.vm_processes();
        if !seen.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = fake.kill();
    let _ = fake.wait();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains("__supervise"), "{seen:?}");
    // Another world's supervisor is not this one's.
    let other = World::new();
    assert!(other.vm_processes().is_empty());
}

#[test]
fn a_world_that_goes_away_takes_its_supervisors_with_it() {
    let w = World::new();
    let mut fake = std::process::Command::new("bash")
        .args(["-c", "exec -a 'msb __supervise left' sleep 30"])
        .env("MSB_HOME", w.home())
        .spawn()
        .unwrap();
    // Until bash has become the fake supervisor (mid-exec its /proc entries are unreadable).
    while !w.vm_processes().iter().any(|c| c.starts_with("msb __supervise left")) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // As when a test panics before cleaning up: the world is dropped with it running.
    drop(w);
    let status = fake.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
}
