//! Images: storing, reading, listing, removing, shared layers and atomic failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{diff_ids, image, layer};
use msb_store::{Store, StoreError};
use msb_types::Paths;

/// Row counts of the image tables, to compare whole states.
fn counts(paths: &Paths) -> [i64; 4] {
    let raw = common::raw(paths);
    ["image_ref", "manifest", "layer", "manifest_layer"].map(|t| {
        raw.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    })
}

fn assert_consistent(paths: &Paths) {
    let raw = common::raw(paths);
    let ok: String = raw.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let mut stmt = raw.prepare("PRAGMA foreign_key_check").unwrap();
    assert!(!stmt.exists([]).unwrap(), "dangling foreign keys");
}

#[test]
fn put_then_get_round_trips_and_missing_is_none() {
    let (_dir, _paths, store) = common::store();
    let img = image("python:3.12", "py", &["base", "py"], 1_700_000_000);
    store.put_image(&img).unwrap();
    assert_eq!(store.get_image("python:3.12").unwrap(), Some(img.clone()));
    assert_eq!(
        store.get_image("python").unwrap(),
        None,
        "no normalisation of references"
    );
    assert_eq!(
        store.get_image("python:3.12").unwrap().unwrap().platform,
        common::platform()
    );
    // Putting the same record again is a no-op.
    store.put_image(&img).unwrap();
    assert_eq!(store.get_image("python:3.12").unwrap(), Some(img));
}

#[test]
fn a_layer_may_repeat_within_one_manifest() {
    let (_dir, paths, store) = common::store();
    let img = image("empty-layers", "e", &["base", "empty", "app", "empty"], 5);
    store.put_image(&img).unwrap();
    assert_eq!(store.get_image("empty-layers").unwrap(), Some(img));
    let listed = store.list_images().unwrap();
    let distinct: u64 = ["base", "empty", "app"].iter().map(|l| layer(l).erofs_size).sum();
    assert_eq!(listed[0].1, distinct, "a repeated layer is counted once");
    let orphans = store.remove_image("empty-layers", false).unwrap();
    assert_eq!(
        diff_ids(&orphans),
        diff_ids(&[layer("base"), layer("empty"), layer("app")])
    );
    assert_consistent(&paths);
}

#[test]
fn images_sharing_layers_list_and_remove_correctly() {
    let (_dir, paths, store) = common::store();
    let old = image("alpine:3.19", "alpine19", &["base", "musl", "a19"], 100);
    let new = image("alpine:3.20", "alpine20", &["base", "musl", "a20"], 200);
    store.put_image(&old).unwrap();
    store.put_image(&new).unwrap();
    assert_eq!(counts(&paths), [2, 2, 4, 6]);

    let listed = store.list_images().unwrap();
    let refs: Vec<&str> = listed.iter().map(|(i, _)| i.reference.as_str()).collect();
    assert_eq!(refs, ["alpine:3.20", "alpine:3.19"], "newest first");
    let size: u64 = new.layers.iter().map(|l| l.erofs_size).sum();
    assert_eq!(listed[0], (new.clone(), size));

    // Only the layer that alpine:3.19 alone used comes back.
    let orphans = store.remove_image("alpine:3.19", false).unwrap();
    assert_eq!(orphans, vec![layer("a19")]);
    assert_eq!(store.get_image("alpine:3.19").unwrap(), None);
    assert_eq!(store.get_image("alpine:3.20").unwrap(), Some(new));
    assert_eq!(store.orphan_layers().unwrap(), vec![layer("a19")]);
    assert_eq!(counts(&paths), [1, 1, 4, 3], "layer rows wait for delete_layer");
    assert_consistent(&paths);

    // The caller deleted the file; now the row goes. Shared layers refuse to go.
    assert!(!store.delete_layer(&layer("base").diff_id).unwrap());
    assert!(store.delete_layer(&layer("a19").diff_id).unwrap());
    assert!(!store.delete_layer(&layer("a19").diff_id).unwrap());
    assert!(store.orphan_layers().unwrap().is_empty());

    let orphans = store.remove_image("alpine:3.20", false).unwrap();
    assert_eq!(
        orphans,
        vec![layer("base"), layer("musl"), layer("a20")],
        "bottom first"
    );
    assert_eq!(counts(&paths), [0, 0, 3, 0]);
    assert!(matches!(
        store.remove_image("alpine:3.20", false),
        Err(StoreError::ImageNotFound { reference }) if reference == "alpine:3.20"
    ));
    assert_consistent(&paths);
}

#[test]
fn two_references_to_one_manifest_keep_it_until_both_are_gone() {
    let (_dir, paths, store) = common::store();
    let a = image("busybox", "bb", &["bb"], 1);
    let b = common::image("busybox:latest", "bb", &["bb"], 2);
    store.put_image(&a).unwrap();
    store.put_image(&b).unwrap();
    assert_eq!(counts(&paths), [2, 1, 1, 1]);
    assert!(store.remove_image("busybox", false).unwrap().is_empty());
    assert_eq!(store.get_image("busybox:latest").unwrap(), Some(b));
    assert_eq!(store.remove_image("busybox:latest", false).unwrap(), vec![layer("bb")]);
    assert_eq!(counts(&paths), [0, 0, 1, 0]);
}

#[test]
fn re_pulling_a_reference_drops_the_old_manifest() {
    let (_dir, paths, store) = common::store();
    store.put_image(&image("app:latest", "v1", &["base", "v1"], 1)).unwrap();
    let v2 = image("app:latest", "v2", &["base", "v2"], 2);
    store.put_image(&v2).unwrap();
    assert_eq!(store.get_image("app:latest").unwrap(), Some(v2));
    assert_eq!(counts(&paths), [1, 1, 3, 2]);
    assert_eq!(store.orphan_layers().unwrap(), vec![layer("v1")]);
    assert_consistent(&paths);
}

#[test]
fn touch_records_last_use() {
    let (_dir, _paths, store) = common::store();
    store.put_image(&image("t", "t", &["t"], 1)).unwrap();
    assert_eq!(store.image_last_used("t").unwrap(), None);
    store.touch_image("t").unwrap();
    let used = store.image_last_used("t").unwrap().unwrap();
    assert!(used > 1_600_000_000, "{used}");
    assert!(matches!(
        store.touch_image("nope"),
        Err(StoreError::ImageNotFound { .. })
    ));
}

#[test]
fn invalid_records_are_refused_before_writing() {
    let (_dir, paths, store) = common::store();
    store.put_image(&image("ok", "ok", &["a"], 1)).unwrap();
    let before = counts(&paths);

    let mut bad_digest = image("x", "x", &["b", "c"], 2);
    bad_digest.layers[1].diff_id = "sha256:short".into();
    let mut huge = image("x", "x", &["b", "c"], 2);
    huge.layers[1].erofs_size = u64::MAX;
    let mut no_ref = image("", "x", &["b"], 2);
    no_ref.reference = "with space".into();
    let mut bad_platform = image("x", "x", &["b"], 2);
    bad_platform.platform.architecture = "ARM/64".into();
    for bad in [bad_digest, huge, no_ref, bad_platform] {
        let err = store.put_image(&bad).unwrap_err();
        assert!(matches!(err, StoreError::InvalidImage { .. }), "{err:?}");
        assert!(err.to_string().contains("cannot be stored"), "{err}");
    }
    assert_eq!(counts(&paths), before);
}

/// A failure in the middle of put_image (forced by a trigger on the third layer link)
/// leaves everything as it was before, including the reference's old target.
#[test]
fn a_failed_put_leaves_the_previous_state() {
    let (_dir, paths, store) = common::store();
    let v1 = image("app", "v1", &["base", "v1"], 1);
    store.put_image(&v1).unwrap();
    let before = counts(&paths);
    let raw = common::raw(&paths);
    raw.execute_batch(
        "CREATE TRIGGER fail_third_layer BEFORE INSERT ON manifest_layer
         WHEN NEW.position = 2 BEGIN SELECT RAISE(ABORT, 'forced failure'); END;",
    )
    .unwrap();

    let v2 = image("app", "v2", &["base", "new1", "new2"], 2);
    let err = store.put_image(&v2).unwrap_err();
    assert!(matches!(err, StoreError::Sqlite { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("forced failure"), "{msg}");
    assert!(msg.contains("msb.db"), "names the database: {msg}");

    assert_eq!(counts(&paths), before, "no partial rows");
    assert_eq!(store.get_image("app").unwrap(), Some(v1.clone()));
    assert!(store.orphan_layers().unwrap().is_empty());

    raw.execute_batch("DROP TRIGGER fail_third_layer").unwrap();
    store.put_image(&v2).unwrap();
    assert_eq!(store.get_image("app").unwrap(), Some(v2));
    assert_consistent(&paths);
}

#[test]
fn images_survive_reopening() {
    let (_dir, paths, store) = common::store();
    let img = image("persist", "p", &["p1", "p2"], 9);
    store.put_image(&img).unwrap();
    drop(store);
    let store = Store::open(&paths).unwrap();
    assert_eq!(store.get_image("persist").unwrap(), Some(img));
}

#[test]
fn sandboxes_pin_their_manifest_and_its_layers() {
    let (_dir, paths, store) = common::store();
    let img = image("app:1", "app", &["base", "app"], 5);
    store.put_image(&img).unwrap();
    store.insert_sandbox("web", "{}").unwrap();
    store
        .set_sandbox_spec("web", "{\"pinned\":true}", Some(&img.manifest_digest))
        .unwrap();
    match store.remove_image("app:1", false) {
        Err(StoreError::ImageInUse { sandboxes, .. }) => assert_eq!(sandboxes, ["web"]),
        other => panic!("{other:?}"),
    }
    assert!(
        store.get_image("app:1").unwrap().is_some(),
        "a refused removal changes nothing"
    );
    // Forced: the reference goes, the pinned manifest and its layers stay for the sandbox.
    assert!(store.remove_image("app:1", true).unwrap().is_empty());
    assert!(store.get_image("app:1").unwrap().is_none());
    assert_eq!(store.manifest_layers(&img.manifest_digest).unwrap(), img.layers);
    assert!(store.drop_unused_manifests().unwrap().is_empty());
    assert!(store.remove_sandbox("web").unwrap());
    let orphans = store.drop_unused_manifests().unwrap();
    assert_eq!(diff_ids(&orphans), diff_ids(&img.layers));
    assert!(matches!(
        store.manifest_layers(&img.manifest_digest),
        Err(StoreError::ManifestNotFound { .. })
    ));
    assert!(matches!(
        store.set_sandbox_spec("gone", "{}", None),
        Err(StoreError::SandboxNotFound { .. })
    ));
    assert_consistent(&paths);
}
