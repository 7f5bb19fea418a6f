//! Opening the database: creation, migrations, re-opening, and refusing what it cannot use.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use msb_store::{db_path, Store, StoreError, SCHEMA_VERSION};
use std::os::unix::fs::PermissionsExt;

fn tables(conn: &rusqlite::Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    let names = stmt.query_map([], |r| r.get(0)).unwrap();
    names.collect::<Result<_, _>>().unwrap()
}

#[test]
fn migrates_an_empty_home_and_reopens_it() {
    let (_dir, paths) = common::layout();
    let store = Store::open(&paths).unwrap();
    assert_eq!(store.path(), db_path(&paths));
    assert_eq!(db_path(&paths), paths.home().join("db/msb.db"));
    let mode = std::fs::metadata(paths.home().join("db")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "db/ must be private");
    store.insert_sandbox("kept", "{}").unwrap();

    let raw = common::raw(&paths);
    let mode: String = raw.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(
        tables(&raw),
        [
            "image_ref",
            "layer",
            "manifest",
            "manifest_layer",
            "sandbox",
            "schema_version",
            "volume"
        ]
    );
    let versions: Vec<i64> = {
        let mut stmt = raw
            .prepare("SELECT version FROM schema_version ORDER BY version")
            .unwrap();
        let v = stmt.query_map([], |r| r.get(0)).unwrap();
        v.collect::<Result<_, _>>().unwrap()
    };
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    drop(store);

    // Re-opening applies nothing again and keeps the data; so does a second open beside it.
    let again = Store::open(&paths).unwrap();
    let beside = Store::open(&paths).unwrap();
    assert!(again.get_sandbox("kept").unwrap().is_some());
    assert!(beside.get_sandbox("kept").unwrap().is_some());
    let count: i64 = raw
        .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, SCHEMA_VERSION);
}

#[test]
fn refuses_a_database_from_a_newer_msb() {
    let (_dir, paths) = common::layout();
    drop(Store::open(&paths).unwrap());
    let newer = SCHEMA_VERSION + 1;
    common::raw(&paths)
        .execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, 0)",
            [newer],
        )
        .unwrap();
    let err = Store::open(&paths).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, known, .. } if found == newer && known == SCHEMA_VERSION),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "database schema v{newer} is newer than this msb (v{SCHEMA_VERSION}); upgrade msb"
        )),
        "{msg}"
    );
    assert!(msg.contains(&db_path(&paths).display().to_string()), "{msg}");
}

/// Files next to the database that SQLite would create.
fn siblings(paths: &msb_types::Paths) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(paths.home().join("db"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn refuses_a_file_that_is_not_a_database_and_leaves_it_alone() {
    let long: Vec<u8> = b"this is not a database, just some text\n".repeat(200);
    let short: Vec<u8> = b"garbage\n".to_vec();
    let mut damaged_header = vec![0u8; 8192];
    damaged_header[..16].copy_from_slice(b"SQLite format 2\0");
    for content in [long, short, damaged_header] {
        let (_dir, paths) = common::layout();
        let db = db_path(&paths);
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        std::fs::write(&db, &content).unwrap();
        let before = std::fs::metadata(&db).unwrap().modified().unwrap();

        let err = Store::open(&paths).unwrap_err();
        assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&db.display().to_string()), "{msg}");
        assert!(msg.contains("not an SQLite database"), "{msg}");

        assert_eq!(std::fs::read(&db).unwrap(), content, "the file must be left as it was");
        assert_eq!(std::fs::metadata(&db).unwrap().modified().unwrap(), before);
        assert_eq!(siblings(&paths), ["msb.db"], "no -wal/-shm/-journal left behind");
    }
}

#[test]
fn an_empty_file_becomes_a_database() {
    let (_dir, paths) = common::layout();
    let db = db_path(&paths);
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::write(&db, b"").unwrap();
    let store = Store::open(&paths).unwrap();
    assert!(store.list_sandboxes().unwrap().is_empty());
}

#[test]
fn many_first_opens_at_once_migrate_exactly_once() {
    let (_dir, paths) = common::layout();
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                barrier.wait();
                let store = Store::open(&paths).unwrap();
                assert!(store.list_images().unwrap().is_empty());
            });
        }
    });
    let count: i64 = common::raw(&paths)
        .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, SCHEMA_VERSION);
}
