//! The schema and a small migration runner.
//!
//! Migrations are numbered from 1 and never edited once released; a new one is appended.
//! Applied versions are rows of `schema_version`, each written in the same `BEGIN IMMEDIATE`
//! transaction as the migration itself, so a crash or a concurrent `open` never leaves half a
//! migration or applies one twice.
//!
//! Why not `rusqlite_migration`: it keeps the version in `PRAGMA user_version` and runs its
//! steps in a deferred transaction, so two processes opening a new database at once can both
//! start migrating; its versions are tied to rusqlite's (one more lockstep upgrade); and the
//! "newer than this msb" refusal with our own error is the part we most need. Forty lines here
//! do exactly that, with the re-check under the write lock.

use crate::{Store, StoreError};
use rusqlite::OptionalExtension;

/// One schema step.
struct Migration {
    version: i64,
    sql: &'static str,
}

/// All migrations, oldest first; versions are 1, 2, 3… in order.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: V1 },
    Migration { version: 2, sql: V2 },
    Migration { version: 3, sql: V3 },
];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 3;

/// Named volumes (their contents are directories under `$MSB_HOME/volumes`).
const V3: &str = r#"
CREATE TABLE volume (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    labels     TEXT    NOT NULL CHECK (json_valid(labels)),
    created_at INTEGER NOT NULL
) STRICT;
"#;

/// Sandboxes pin the manifest they were created from: its layers stay while they exist.
const V2: &str = r#"
ALTER TABLE sandbox ADD COLUMN manifest_digest TEXT;
CREATE INDEX sandbox_manifest ON sandbox(manifest_digest);
"#;

/// Images, layers and sandboxes.
///
/// Compared with the reference schema: the OCI config lives as JSON in `manifest.config_json`
/// (it is 1:1 with the manifest and always read whole), the total size is computed rather than
/// stored, and one `sandbox` row carries the current run (pids, exit) instead of a `run` table.
const V1: &str = r#"
CREATE TABLE manifest (
    id            INTEGER PRIMARY KEY,
    digest        TEXT    NOT NULL UNIQUE,
    config_digest TEXT    NOT NULL,
    os            TEXT    NOT NULL,
    architecture  TEXT    NOT NULL,
    variant       TEXT,
    config_json   TEXT    NOT NULL CHECK (json_valid(config_json))
) STRICT;

CREATE TABLE image_ref (
    reference    TEXT    PRIMARY KEY,
    manifest_id  INTEGER NOT NULL REFERENCES manifest(id),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;
CREATE INDEX image_ref_manifest ON image_ref(manifest_id);

-- One row per uncompressed layer (one EROFS file). The descriptor columns hold the values of
-- the latest put, so that a layer no manifest uses any more can still be reported in full.
CREATE TABLE layer (
    id              INTEGER PRIMARY KEY,
    diff_id         TEXT    NOT NULL UNIQUE,
    blob_digest     TEXT    NOT NULL,
    media_type      TEXT    NOT NULL,
    compressed_size INTEGER NOT NULL CHECK (compressed_size >= 0),
    erofs_size      INTEGER NOT NULL CHECK (erofs_size >= 0),
    last_used_at    INTEGER
) STRICT;

-- The ordered layers of a manifest (0 = bottom), with the descriptor as that manifest has it.
CREATE TABLE manifest_layer (
    manifest_id     INTEGER NOT NULL REFERENCES manifest(id) ON DELETE CASCADE,
    position        INTEGER NOT NULL CHECK (position >= 0),
    layer_id        INTEGER NOT NULL REFERENCES layer(id),
    blob_digest     TEXT    NOT NULL,
    media_type      TEXT    NOT NULL,
    compressed_size INTEGER NOT NULL CHECK (compressed_size >= 0),
    PRIMARY KEY (manifest_id, position)
) STRICT;
CREATE INDEX manifest_layer_layer ON manifest_layer(layer_id);

CREATE TABLE sandbox (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    spec           TEXT    NOT NULL CHECK (json_valid(spec)),
    state          TEXT    NOT NULL CHECK (state IN ('Created', 'Running', 'Stopped', 'Crashed')),
    supervisor_pid INTEGER,
    vmm_pid        INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    started_at     INTEGER,
    stopped_at     INTEGER,
    exit_code      INTEGER,
    exit_reason    TEXT
) STRICT;
"#;

/// Brings the schema of `store` up to [`SCHEMA_VERSION`], or refuses a newer one.
pub(crate) fn migrate(store: &Store) -> Result<(), StoreError> {
    // Fast path: an up-to-date database costs one read.
    let current = store.read("read the schema version", |tx| current_version(store, tx))?;
    check_not_newer(store, current)?;
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        let action = format!("apply schema migration v{}", migration.version);
        store.write(&action, |tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_version (
                     version    INTEGER PRIMARY KEY,
                     applied_at INTEGER NOT NULL
                 ) STRICT;",
            )
            .map_err(store.db_err("create the schema_version table"))?;
            // Another process may have migrated while we waited for the write lock.
            let now_at = current_version(store, tx)?;
            check_not_newer(store, now_at)?;
            if now_at >= migration.version {
                return Ok(());
            }
            tx.execute_batch(migration.sql).map_err(store.db_err(&action))?;
            tx.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
                (migration.version, crate::now()),
            )
            .map_err(store.db_err("record the schema version"))?;
            Ok(())
        })?;
    }
    Ok(())
}

/// The newest applied migration, 0 for a new database.
fn current_version(store: &Store, tx: &rusqlite::Transaction<'_>) -> Result<i64, StoreError> {
    let has_table: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')",
            [],
            |row| row.get(0),
        )
        .map_err(store.db_err("look for the schema_version table"))?;
    if !has_table {
        return Ok(0);
    }
    let version: Option<i64> = tx
        .query_row("SELECT max(version) FROM schema_version", [], |row| row.get(0))
        .optional()
        .map_err(store.db_err("read the schema version"))?
        .flatten();
    Ok(version.unwrap_or(0))
}

fn check_not_newer(store: &Store, found: i64) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: store.path().to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_and_end_at_the_schema_version() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }
}
