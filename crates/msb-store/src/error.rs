//! Errors of the state store: each names the database, image or sandbox and says what to do.

use crate::sandboxes::SandboxState;
use std::path::PathBuf;

/// Everything that can go wrong reading or writing msb's state.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A directory for the database could not be created.
    #[error("cannot create directory {path}: {source} (check that $MSB_HOME is writable)")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The database file exists but could not be read to check it.
    #[error("cannot read database {path}: {source} (check its permissions)")]
    ReadFile {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The file is not an SQLite database; it was left as it is.
    #[error(
        "{path} is not an SQLite database (corrupt or overwritten); it was left untouched: \
         move it aside to start with an empty state, or restore it from a backup"
    )]
    NotADatabase {
        /// The database file.
        path: PathBuf,
    },

    /// The database was written by a newer msb.
    #[error("database schema v{found} is newer than this msb (v{known}); upgrade msb (database: {path})")]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Schema version found in the file.
        found: i64,
        /// Newest schema version this build knows.
        known: i64,
    },

    /// Another msb process held the database lock for longer than we wait.
    #[error(
        "database {path} stayed locked by another msb process while trying to {action}; \
         retry, or look for a stuck msb process"
    )]
    Busy {
        /// The database file.
        path: PathBuf,
        /// What we were doing.
        action: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// SQLite reported an error.
    #[error("database {path}: failed to {action}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What we were doing.
        action: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// A stored row holds something this msb cannot read.
    #[error("database {path}: {what}; the database may have been edited by hand or damaged")]
    BadRow {
        /// The database file.
        path: PathBuf,
        /// What is wrong, naming the row.
        what: String,
    },

    /// No image under that reference.
    #[error("image '{reference}' not found (see `msb image ls`, or pull it)")]
    ImageNotFound {
        /// The reference looked up.
        reference: String,
    },

    /// An image record was rejected before anything was written.
    #[error("image '{reference}' cannot be stored: {reason}")]
    InvalidImage {
        /// The record's reference.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No sandbox by that name.
    #[error("sandbox '{name}' not found (see `msb ls`)")]
    SandboxNotFound {
        /// The name looked up.
        name: String,
    },

    /// A sandbox by that name exists already.
    #[error("sandbox '{name}' already exists; remove it (`msb rm {name}`), start it, or pick another name")]
    AlreadyExists {
        /// The name.
        name: String,
    },

    /// A volume by that name exists already.
    #[error("volume '{name}' already exists (see `msb volume ls`)")]
    VolumeExists {
        /// The name.
        name: String,
    },

    /// The sandbox name is not valid.
    #[error(transparent)]
    InvalidName(#[from] msb_types::NameError),

    /// The sandbox spec handed in is not valid JSON.
    #[error("sandbox '{name}': the spec is not valid JSON: {source}")]
    InvalidSpec {
        /// The sandbox.
        name: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// A state change that the state machine does not allow.
    #[error("sandbox '{name}' is {from}; it cannot become {to}")]
    InvalidTransition {
        /// The sandbox.
        name: String,
        /// Its state now.
        from: SandboxState,
        /// The state asked for.
        to: SandboxState,
    },

    /// A running sandbox cannot be removed.
    #[error("sandbox '{name}' is running; stop it first (`msb stop {name}`)")]
    SandboxRunning {
        /// The sandbox.
        name: String,
    },

    /// An image cannot be removed while sandboxes were created from it.
    #[error("image '{reference}' is used by sandbox(es) {}: remove them first, or force (their layers stay until they are gone)", sandboxes.join(", "))]
    ImageInUse {
        /// The image.
        reference: String,
        /// The sandboxes using it.
        sandboxes: Vec<String>,
    },

    /// No manifest with this digest is stored.
    #[error("manifest {digest} is not in the local store: pull the image again")]
    ManifestNotFound {
        /// The digest.
        digest: String,
    },
}

/// True for SQLite's "database is busy/locked", which a later try may get past.
pub(crate) fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// True when SQLite says the file is not a database or is damaged.
pub(crate) fn is_not_a_database(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}
