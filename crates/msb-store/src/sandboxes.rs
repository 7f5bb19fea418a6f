//! Sandboxes and their lifecycle: `Created → Running → Stopped | Crashed → Running …`.
//!
//! Every transition is one `UPDATE … WHERE state IN (…)`, so two processes racing to change
//! the same sandbox cannot both succeed from the same state; the loser learns the state the
//! winner left.

use crate::{Store, StoreError};
use rusqlite::{OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a sandbox is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SandboxState {
    /// Recorded, never started (or its start has not reported back yet).
    Created,
    /// Its supervisor and VMM are running.
    Running,
    /// It exited or was stopped.
    Stopped,
    /// Its processes died without recording an exit.
    Crashed,
}

impl SandboxState {
    /// The text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxState::Created => "Created",
            SandboxState::Running => "Running",
            SandboxState::Stopped => "Stopped",
            SandboxState::Crashed => "Crashed",
        }
    }

    /// The states a sandbox may move to `self` from.
    pub fn allowed_from(self) -> &'static [SandboxState] {
        use SandboxState::*;
        match self {
            Created => &[],
            Running => &[Created, Stopped, Crashed],
            Stopped => &[Created, Running],
            Crashed => &[Created, Running],
        }
    }
}

impl fmt::Display for SandboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SandboxState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Created" => Ok(SandboxState::Created),
            "Running" => Ok(SandboxState::Running),
            "Stopped" => Ok(SandboxState::Stopped),
            "Crashed" => Ok(SandboxState::Crashed),
            other => Err(format!("unknown sandbox state '{other}'")),
        }
    }
}

/// One sandbox as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// Unique name.
    pub name: String,
    /// The spec it was created with, as JSON (see [`SandboxRecord::spec`]).
    pub spec_json: String,
    /// Current state.
    pub state: SandboxState,
    /// Pid of its supervisor while running.
    pub supervisor_pid: Option<u32>,
    /// Pid of its VMM while running.
    pub vmm_pid: Option<u32>,
    /// Created, seconds since the Unix epoch.
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
    /// Last started.
    pub started_at: Option<i64>,
    /// Last stopped or found crashed.
    pub stopped_at: Option<i64>,
    /// Exit code of the last run, if it reported one.
    pub exit_code: Option<i32>,
    /// Why the last run ended.
    pub exit_reason: Option<String>,
}

impl SandboxRecord {
    /// The stored spec decoded as `T` (usually `msb_types::SandboxSpec`).
    pub fn spec<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_str(&self.spec_json).map_err(|source| StoreError::InvalidSpec {
            name: self.name.clone(),
            source,
        })
    }
}

const COLUMNS: &str = "name, spec, state, supervisor_pid, vmm_pid, created_at, updated_at, \
                       started_at, stopped_at, exit_code, exit_reason";

/// A sandbox row before its state text and pids are checked; columns are read by name.
struct RawSandbox {
    name: String,
    spec: String,
    state: String,
    supervisor_pid: Option<i64>,
    vmm_pid: Option<i64>,
    created_at: i64,
    updated_at: i64,
    started_at: Option<i64>,
    stopped_at: Option<i64>,
    exit_code: Option<i64>,
    exit_reason: Option<String>,
}

impl Store {
    /// Records a new sandbox in state `Created`; `spec_json` must be valid JSON.
    pub fn insert_sandbox(&self, name: &str, spec_json: &str) -> Result<(), StoreError> {
        msb_types::validate_name(name)?;
        serde_json::from_str::<serde_json::Value>(spec_json).map_err(|source| StoreError::InvalidSpec {
            name: name.to_string(),
            source,
        })?;
        let now = crate::now();
        self.write(&format!("create sandbox '{name}'"), |tx| {
            let inserted = tx
                .execute(
                    "INSERT INTO sandbox (name, spec, state, created_at, updated_at)
                     VALUES (?1, ?2, 'Created', ?3, ?3) ON CONFLICT (name) DO NOTHING",
                    (name, spec_json, now),
                )
                .map_err(self.db_err("insert the sandbox"))?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists { name: name.to_string() });
            }
            Ok(())
        })
    }

    /// Replaces the spec of `name` and pins it to the manifest it boots from (an image's
    /// layers stay while a sandbox pins them).
    pub fn set_sandbox_spec(
        &self,
        name: &str,
        spec_json: &str,
        manifest_digest: Option<&str>,
    ) -> Result<(), StoreError> {
        serde_json::from_str::<serde_json::Value>(spec_json).map_err(|source| StoreError::InvalidSpec {
            name: name.to_string(),
            source,
        })?;
        let now = crate::now();
        self.write(&format!("update sandbox '{name}'"), |tx| {
            let n = tx
                .execute(
                    "UPDATE sandbox SET spec = ?2, manifest_digest = ?3, updated_at = ?4 WHERE name = ?1",
                    (name, spec_json, manifest_digest, now),
                )
                .map_err(self.db_err("update the sandbox spec"))?;
            if n == 0 {
                return Err(StoreError::SandboxNotFound { name: name.to_string() });
            }
            Ok(())
        })
    }

    /// The sandbox called `name`, if any.
    pub fn get_sandbox(&self, name: &str) -> Result<Option<SandboxRecord>, StoreError> {
        self.read(&format!("read sandbox '{name}'"), |tx| {
            let raw = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM sandbox WHERE name = ?1"),
                    [name],
                    raw_sandbox,
                )
                .optional()
                .map_err(self.db_err("read the sandbox"))?;
            raw.map(|r| self.sandbox(r)).transpose()
        })
    }

    /// All sandboxes, oldest first.
    pub fn list_sandboxes(&self) -> Result<Vec<SandboxRecord>, StoreError> {
        self.read("list sandboxes", |tx| {
            let mut stmt = tx
                .prepare(&format!("SELECT {COLUMNS} FROM sandbox ORDER BY created_at, name"))
                .map_err(self.db_err("list sandboxes"))?;
            let rows = stmt.query_map([], raw_sandbox).map_err(self.db_err("list sandboxes"))?;
            let raw: Vec<RawSandbox> = rows.collect::<Result<_, _>>().map_err(self.db_err("list sandboxes"))?;
            raw.into_iter().map(|r| self.sandbox(r)).collect()
        })
    }

    /// `Created`/`Stopped`/`Crashed` → `Running`, recording the new processes.
    pub fn set_running(&self, name: &str, supervisor_pid: u32, vmm_pid: u32) -> Result<(), StoreError> {
        let now = crate::now();
        self.transition(
            name,
            SandboxState::Running,
            "supervisor_pid = ?3, vmm_pid = ?4, started_at = ?2, stopped_at = NULL,
             exit_code = NULL, exit_reason = NULL",
            (name, now, supervisor_pid, vmm_pid),
        )
    }

    /// `Created`/`Running` → `Stopped`, with the exit code (if known) and why it ended.
    pub fn set_stopped(&self, name: &str, exit_code: Option<i32>, reason: &str) -> Result<(), StoreError> {
        let now = crate::now();
        self.transition(
            name,
            SandboxState::Stopped,
            "supervisor_pid = NULL, vmm_pid = NULL, stopped_at = ?2, exit_code = ?3, exit_reason = ?4",
            (name, now, exit_code, reason),
        )
    }

    /// `Created`/`Running` → `Crashed`: its processes died without recording an exit.
    pub fn set_crashed(&self, name: &str, reason: &str) -> Result<(), StoreError> {
        let now = crate::now();
        self.transition(
            name,
            SandboxState::Crashed,
            "supervisor_pid = NULL, vmm_pid = NULL, stopped_at = ?2, exit_code = NULL, exit_reason = ?3",
            (name, now, reason),
        )
    }

    /// Deletes a sandbox that is not running; false if there was none by that name.
    pub fn remove_sandbox(&self, name: &str) -> Result<bool, StoreError> {
        self.write(&format!("remove sandbox '{name}'"), |tx| {
            let n = tx
                .execute("DELETE FROM sandbox WHERE name = ?1 AND state <> 'Running'", [name])
                .map_err(self.db_err("delete the sandbox"))?;
            if n == 1 {
                return Ok(true);
            }
            match self.state_in(tx, name)? {
                None => Ok(false),
                Some(_) => Err(StoreError::SandboxRunning { name: name.to_string() }),
            }
        })
    }

    /// Moves `name` to `to` if its state is one `to` is allowed from, setting `set` as well.
    ///
    /// `params` starts with the name (`?1`) and the time (`?2`).
    fn transition(
        &self,
        name: &str,
        to: SandboxState,
        set: &str,
        params: impl rusqlite::Params + Copy,
    ) -> Result<(), StoreError> {
        let from_list = to
            .allowed_from()
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE sandbox SET state = '{to}', updated_at = ?2, {set}
             WHERE name = ?1 AND state IN ({from_list})"
        );
        self.write(&format!("mark sandbox '{name}' {to}"), |tx| {
            let n = tx
                .execute(&sql, params)
                .map_err(self.db_err("update the sandbox state"))?;
            if n == 1 {
                return Ok(());
            }
            match self.state_in(tx, name)? {
                None => Err(StoreError::SandboxNotFound { name: name.to_string() }),
                Some(from) => Err(StoreError::InvalidTransition {
                    name: name.to_string(),
                    from,
                    to,
                }),
            }
        })
    }

    /// The state of `name` inside `tx`, if it exists.
    fn state_in(&self, tx: &Transaction<'_>, name: &str) -> Result<Option<SandboxState>, StoreError> {
        let text: Option<String> = tx
            .query_row("SELECT state FROM sandbox WHERE name = ?1", [name], |row| row.get(0))
            .optional()
            .map_err(self.db_err("read the sandbox state"))?;
        text.map(|t| t.parse().map_err(|e| self.bad_row(format!("sandbox '{name}': {e}"))))
            .transpose()
    }

    /// A record from a raw row, checking the state text and pid ranges.
    fn sandbox(&self, raw: RawSandbox) -> Result<SandboxRecord, StoreError> {
        let RawSandbox {
            name,
            spec: spec_json,
            state,
            supervisor_pid,
            vmm_pid,
            created_at,
            updated_at,
            started_at,
            stopped_at,
            exit_code,
            exit_reason,
        } = raw;
        let bad = |what: String| self.bad_row(format!("sandbox '{name}': {what}"));
        let state = state.parse().map_err(bad)?;
        let pid = |v: Option<i64>, what: &str| {
            v.map(|p| u32::try_from(p).map_err(|_| bad(format!("{what} {p} is out of range"))))
                .transpose()
        };
        let supervisor_pid = pid(supervisor_pid, "supervisor pid")?;
        let vmm_pid = pid(vmm_pid, "VMM pid")?;
        let exit_code = exit_code
            .map(|c| i32::try_from(c).map_err(|_| bad(format!("exit code {c} is out of range"))))
            .transpose()?;
        Ok(SandboxRecord {
            name,
            spec_json,
            state,
            supervisor_pid,
            vmm_pid,
            created_at,
            updated_at,
            started_at,
            stopped_at,
            exit_code,
            exit_reason,
        })
    }
}

fn raw_sandbox(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawSandbox> {
    Ok(RawSandbox {
        name: row.get("name")?,
        spec: row.get("spec")?,
        state: row.get("state")?,
        supervisor_pid: row.get("supervisor_pid")?,
        vmm_pid: row.get("vmm_pid")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        started_at: row.get("started_at")?,
        stopped_at: row.get("stopped_at")?,
        exit_code: row.get("exit_code")?,
        exit_reason: row.get("exit_reason")?,
    })
}
