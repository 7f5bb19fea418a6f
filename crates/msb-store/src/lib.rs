//! msb's state in SQLite: pulled images and their layers, sandboxes and their lifecycle (and,
//! outside the database, each sandbox's secret values: [`SecretValues`]).
//!
//! One [`Store`] is one connection to `$MSB_HOME/db/msb.db`. Every process (and every thread
//! that wants its own) opens its own `Store`; SQLite's WAL mode lets readers run beside one
//! writer, and every write is a single `BEGIN IMMEDIATE` transaction, retried while another
//! process holds the write lock, so a failure leaves the database as it was.

mod error;
mod images;
mod sandboxes;
mod schema;
mod secrets;
mod validate;
mod volumes;

pub use error::StoreError;
pub use sandboxes::{SandboxRecord, SandboxState};
pub use schema::SCHEMA_VERSION;
pub use secrets::{SecretValues, SECRETS_FILE};
pub use volumes::VolumeRecord;

use error::{is_busy, is_not_a_database};
use msb_types::Paths;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long SQLite itself waits for a lock before reporting "busy".
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);
/// Further tries after SQLite gave up waiting (covers the cases its busy handler skips).
const BUSY_RETRIES: u32 = 8;

/// The directory of the database and its write-ahead log: `home/db`.
pub fn db_dir(paths: &Paths) -> PathBuf {
    paths.home().join("db")
}

/// Where the database of a layout lives: `home/db/msb.db`.
pub fn db_path(paths: &Paths) -> PathBuf {
    db_dir(paths).join("msb.db")
}

/// An open connection to msb's state database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database of `paths` and brings its schema up to date.
    pub fn open(paths: &Paths) -> Result<Store, StoreError> {
        let path = db_path(paths);
        create_dirs(paths.home(), path.parent().unwrap_or(paths.home()))?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|source| {
            if is_not_a_database(&source) {
                StoreError::NotADatabase { path: path.clone() }
            } else {
                StoreError::Sqlite {
                    path: path.clone(),
                    action: "open it".into(),
                    source,
                }
            }
        })?;
        let store = Store { conn, path };
        store
            .conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(store.db_err("set the busy timeout"))?;
        store.retrying("configure the connection", || store.configure())?;
        schema::migrate(&store)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connection settings: enforced foreign keys, WAL journal, fsync only at checkpoints.
    ///
    /// A file that is not a database is refused by a first read, which SQLite answers with
    /// "not a database" before writing anything. (Checking the header with a file of our
    /// own would be wrong: closing any descriptor of the database file drops every POSIX
    /// lock this process holds on it, those of open connections included, and lets another
    /// process write under them.)
    fn configure(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get::<_, i64>(0))
            .map_err(self.db_err("read the schema"))?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(self.db_err("enable foreign keys"))?;
        let mode: String = self
            .conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(self.db_err("switch to WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::BadRow {
                path: self.path.clone(),
                what: format!("journal mode stays '{mode}' instead of 'wal'"),
            });
        }
        // Temporary tables and sorts in memory (the store is small): SQLite never writes a
        // file outside the home, which a serving supervisor may not (its Landlock view).
        self.conn
            .pragma_update(None, "temp_store", "MEMORY")
            .map_err(self.db_err("set temp_store=MEMORY"))?;
        // Safe in WAL mode: a power cut may lose the last commits, never corrupt the file.
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(self.db_err("set synchronous=NORMAL"))
    }

    /// Maps a rusqlite error to [`StoreError::Sqlite`] naming this database and `action`.
    pub(crate) fn db_err(&self, action: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        let action = action.to_string();
        move |source| {
            if is_not_a_database(&source) {
                StoreError::NotADatabase {
                    path: self.path.clone(),
                }
            } else {
                StoreError::Sqlite {
                    path: self.path.clone(),
                    action,
                    source,
                }
            }
        }
    }

    /// A [`StoreError::BadRow`] for this database.
    pub(crate) fn bad_row(&self, what: String) -> StoreError {
        StoreError::BadRow {
            path: self.path.clone(),
            what,
        }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committing on `Ok`, rolling back on `Err`.
    pub(crate) fn write<T>(
        &self,
        action: &str,
        mut f: impl FnMut(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.retrying(action, || {
            self.transaction(action, TransactionBehavior::Immediate, &mut f)
        })
    }

    /// Runs `f` in one read transaction, so that its queries see a single snapshot.
    pub(crate) fn read<T>(
        &self,
        action: &str,
        mut f: impl FnMut(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.retrying(action, || {
            self.transaction(action, TransactionBehavior::Deferred, &mut f)
        })
    }

    fn transaction<T>(
        &self,
        action: &str,
        behavior: TransactionBehavior,
        f: &mut impl FnMut(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // `Store` is not `Sync` and no method nests transactions, so the unchecked form is safe
        // here; it lets every method take `&self`.
        let tx = Transaction::new_unchecked(&self.conn, behavior)
            .map_err(self.db_err(&format!("begin a transaction to {action}")))?;
        let value = f(&tx)?; // dropping `tx` on error rolls back
        tx.commit().map_err(self.db_err(&format!("commit ({action})")))?;
        Ok(value)
    }

    /// Calls `f` again while it fails with "database is busy", with a short growing pause.
    pub(crate) fn retrying<T>(
        &self,
        action: &str,
        mut f: impl FnMut() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            match f() {
                Err(StoreError::Sqlite { source, .. }) if is_busy(&source) => {
                    if attempt >= BUSY_RETRIES {
                        return Err(StoreError::Busy {
                            path: self.path.clone(),
                            action: action.to_string(),
                            source,
                        });
                    }
                    attempt += 1;
                    std::thread::sleep(backoff(attempt));
                }
                other => return other,
            }
        }
    }
}

/// A pause of a few to a few tens of milliseconds, jittered so retrying processes spread out.
fn backoff(attempt: u32) -> Duration {
    let jitter = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 7)
        .unwrap_or(0);
    Duration::from_millis(u64::from(attempt * 5 + jitter))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Creates `home` and its `db/` directory, the latter private to the user (0700).
fn create_dirs(home: &Path, db_dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::create_dir_all(home).map_err(|source| StoreError::CreateDir {
        path: home.to_path_buf(),
        source,
    })?;
    match std::fs::DirBuilder::new().mode(0o700).create(db_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && db_dir.is_dir() => Ok(()),
        Err(source) => Err(StoreError::CreateDir {
            path: db_dir.to_path_buf(),
            source,
        }),
    }
}
