//! Named volumes: a record per volume (its name, labels and when it was made). What a
//! volume holds lives in its directory (`$MSB_HOME/volumes/NAME`) and is measured there.

use crate::{Store, StoreError};
use rusqlite::OptionalExtension;
use std::collections::BTreeMap;

/// One named volume as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRecord {
    /// Unique name (the sandbox name rules).
    pub name: String,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
    /// When it was created (Unix seconds).
    pub created_at: i64,
}

impl Store {
    /// Records a new volume; a volume of that name already recorded is an error.
    pub fn insert_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<VolumeRecord, StoreError> {
        msb_types::validate_name(name)?;
        let now = crate::now();
        let labels_json = serde_json::to_string(labels).map_err(|e| StoreError::BadRow {
            path: self.path().to_path_buf(),
            what: format!("labels of volume '{name}' cannot be written: {e}"),
        })?;
        self.write(&format!("create volume '{name}'"), |tx| {
            let inserted = tx
                .execute(
                    "INSERT INTO volume (name, labels, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO NOTHING",
                    (name, &labels_json, now),
                )
                .map_err(self.db_err("insert the volume"))?;
            if inserted == 0 {
                return Err(StoreError::VolumeExists { name: name.to_string() });
            }
            Ok(())
        })?;
        Ok(VolumeRecord {
            name: name.to_string(),
            labels: labels.clone(),
            created_at: now,
        })
    }

    /// The volume named `name`, if recorded.
    pub fn get_volume(&self, name: &str) -> Result<Option<VolumeRecord>, StoreError> {
        self.read(&format!("read volume '{name}'"), |tx| {
            let raw = tx
                .query_row(
                    "SELECT name, labels, created_at FROM volume WHERE name = ?1",
                    [name],
                    raw_volume,
                )
                .optional()
                .map_err(self.db_err("read the volume"))?;
            raw.map(|r| self.volume(r)).transpose()
        })
    }

    /// Every volume, newest first.
    pub fn list_volumes(&self) -> Result<Vec<VolumeRecord>, StoreError> {
        self.read("list volumes", |tx| {
            let mut stmt = tx
                .prepare("SELECT name, labels, created_at FROM volume ORDER BY created_at DESC, name")
                .map_err(self.db_err("list volumes"))?;
            let rows = stmt.query_map([], raw_volume).map_err(self.db_err("list volumes"))?;
            let raw: Vec<RawVolume> = rows.collect::<Result<_, _>>().map_err(self.db_err("list volumes"))?;
            raw.into_iter().map(|r| self.volume(r)).collect()
        })
    }

    /// Forgets volume `name`; whether it was recorded.
    pub fn delete_volume(&self, name: &str) -> Result<bool, StoreError> {
        self.write(&format!("remove volume '{name}'"), |tx| {
            let n = tx
                .execute("DELETE FROM volume WHERE name = ?1", [name])
                .map_err(self.db_err("delete the volume"))?;
            Ok(n > 0)
        })
    }

    fn volume(&self, raw: RawVolume) -> Result<VolumeRecord, StoreError> {
        let labels = serde_json::from_str(&raw.1).map_err(|e| StoreError::BadRow {
            path: self.path().to_path_buf(),
            what: format!("volume '{}' has unreadable labels: {e}", raw.0),
        })?;
        Ok(VolumeRecord {
            name: raw.0,
            labels,
            created_at: raw.2,
        })
    }
}

type RawVolume = (String, String, i64);

fn raw_volume(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawVolume> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}
