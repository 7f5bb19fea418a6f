//! Many writers on one database: 8 threads and 8 processes at once, each with its own Store,
//! each opening and closing further connections meanwhile.
//!
//! The processes are this test binary itself, re-run with `MSB_STORE_CHILD` set so that only
//! `child_worker` does anything. Every worker opens the (fresh) database itself, creates,
//! starts, stops and removes sandboxes, and puts and removes images whose layers are shared
//! with every other worker. No error may escape any worker ("database is locked" included),
//! and the final state must be exactly what the workers left.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{image, layer};
use msb_store::{SandboxState, Store};
use msb_types::{ImageRecord, Paths};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "MSB_STORE_CHILD";
const HOME_ENV: &str = "MSB_STORE_CHILD_HOME";
const WORKERS: usize = 8;
const ROUNDS: usize = 12;

/// The image worker `id` puts in round `k`: a base every image has, one of three shared
/// middle layers, and one layer of its own.
fn worker_image(id: &str, k: usize) -> ImageRecord {
    let mid = format!("mid-{}", k % 3);
    let own = format!("own-{id}-{k}");
    image(
        &format!("img-{id}-{k}"),
        &format!("{id}-{k}"),
        &["base", &mid, &own],
        k as i64,
    )
}

fn worker(id: &str, paths: &Paths) {
    let store = Store::open(paths).unwrap_or_else(|e| panic!("{id}: open: {e}"));
    let ok = |what: &str, r: Result<(), msb_store::StoreError>| {
        r.unwrap_or_else(|e| panic!("{id}: {what}: {e} ({e:?})"));
    };
    for k in 0..ROUNDS {
        // Another connection of the same process comes and goes while `store` stays open,
        // as the SDK's nested calls do: it must not disturb `store`'s locks.
        drop(Store::open(paths).unwrap_or_else(|e| panic!("{id}: second open: {e}")));
        let name = format!("{id}-{k}");
        ok("insert", store.insert_sandbox(&name, &format!(r#"{{"round":{k}}}"#)));
        ok("running", store.set_running(&name, 1000 + k as u32, 2000 + k as u32));
        let img = worker_image(id, k);
        ok("put", store.put_image(&img));
        ok("touch", store.touch_image(&img.reference));
        assert_eq!(store.get_image(&img.reference).unwrap().as_ref(), Some(&img), "{id}");
        ok("stopped", store.set_stopped(&name, Some(0), "exited"));
        if k % 4 == 0 {
            store.list_images().unwrap_or_else(|e| panic!("{id}: list images: {e}"));
            store
                .list_sandboxes()
                .unwrap_or_else(|e| panic!("{id}: list sandboxes: {e}"));
        }
        if k % 2 == 1 {
            assert!(store.remove_sandbox(&name).unwrap(), "{id}: remove {name}");
            let orphans = store
                .remove_image(&img.reference, false)
                .unwrap_or_else(|e| panic!("{id}: remove image: {e}"));
            let own = layer(&format!("own-{id}-{k}"));
            assert!(orphans.contains(&own), "{id}: its own layer is orphaned");
            assert!(!orphans.contains(&layer("base")), "{id}: base is still used");
            for orphan in &orphans {
                // A shared middle layer may be taken up again by another worker meanwhile;
                // delete_layer then says no, which is the point of it.
                let deleted = store.delete_layer(&orphan.diff_id).unwrap();
                if *orphan == own {
                    assert!(deleted, "{id}: own layer deleted");
                }
            }
        }
    }
}

/// Runs only as a child of `eight_threads_and_eight_processes_share_one_database`.
#[test]
fn child_worker() {
    let (Ok(id), Ok(home)) = (std::env::var(CHILD_ENV), std::env::var(HOME_ENV)) else {
        return;
    };
    worker(&id, &Paths::new(home));
}

#[test]
fn eight_threads_and_eight_processes_share_one_database() {
    let (_dir, paths) = common::layout();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..WORKERS)
        .map(|i| {
            Command::new(&exe)
                .args(["--exact", "child_worker", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, format!("p{i}"))
                .env(HOME_ENV, paths.home())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::scope(|s| {
        for i in 0..WORKERS {
            let paths = &paths;
            s.spawn(move || worker(&format!("t{i}"), paths));
        }
    });
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "process worker p{i} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "p{i} did not run child_worker"
        );
    }

    // Exactly the even rounds of every worker are left, stopped, with their images.
    let store = Store::open(&paths).unwrap();
    let ids: Vec<String> = (0..WORKERS).flat_map(|i| [format!("t{i}"), format!("p{i}")]).collect();
    let kept = |id: &String| {
        let id = id.clone();
        (0..ROUNDS).step_by(2).map(move |k| (id.clone(), k))
    };
    let want_sandboxes: BTreeSet<String> = ids.iter().flat_map(kept).map(|(id, k)| format!("{id}-{k}")).collect();
    let sandboxes = store.list_sandboxes().unwrap();
    let got: BTreeSet<String> = sandboxes.iter().map(|s| s.name.clone()).collect();
    assert_eq!(got, want_sandboxes);
    assert_eq!(sandboxes.len(), want_sandboxes.len());
    for s in &sandboxes {
        assert_eq!(
            (s.state, s.exit_code, s.vmm_pid),
            (SandboxState::Stopped, Some(0), None),
            "{}",
            s.name
        );
    }

    let images = store.list_images().unwrap();
    let want_images: BTreeSet<String> = ids
        .iter()
        .flat_map(kept)
        .map(|(id, k)| format!("img-{id}-{k}"))
        .collect();
    let got: BTreeSet<String> = images.iter().map(|(i, _)| i.reference.clone()).collect();
    assert_eq!(got, want_images);
    for id in &ids {
        for (_, k) in kept(id) {
            let want = worker_image(id, k);
            assert_eq!(store.get_image(&want.reference).unwrap(), Some(want));
        }
    }
    assert!(store.orphan_layers().unwrap().is_empty(), "every orphan was deleted");

    let raw = common::raw(&paths);
    let layers: i64 = raw.query_row("SELECT count(*) FROM layer", [], |r| r.get(0)).unwrap();
    assert_eq!(
        layers as usize,
        1 + 3 + want_images.len(),
        "base + 3 shared + one per image"
    );
    let ok: String = raw.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    assert!(!raw.prepare("PRAGMA foreign_key_check").unwrap().exists([]).unwrap());
}
