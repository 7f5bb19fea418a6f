//! What the E2B endpoint keeps: the server's state, template aliases, each sandbox's
//! deadline (E2B's `timeout`) and the processes started through envd's API.

use super::connect::{Code, ConnectError};
use super::process_table::ProcessTable;
use crate::state::Shared;
use hmac::{Hmac, Mac};
use microsandbox::Sandbox;
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Label marking a sandbox made through the E2B endpoint; its value is the `templateID`.
pub const TEMPLATE_LABEL: &str = "e2b.template";
/// Label holding the deadline at creation (Unix seconds), so a restarted server still
/// enforces it.
pub const END_AT_LABEL: &str = "e2b.end-at";
/// Prefix of the labels holding E2B metadata.
pub const METADATA_PREFIX: &str = "e2b.metadata.";

/// The E2B endpoint's state.
#[derive(Debug)]
pub struct E2bState {
    /// The server's own state (the SDK, the token, open connections).
    pub app: Shared,
    /// `templateID` aliases → image references.
    pub templates: BTreeMap<String, String>,
    deadlines: Mutex<HashMap<String, SystemTime>>,
    /// Sandboxes being killed: gone to E2B's clients from the kill's start, though their
    /// VM takes a moment to stop and their record to go.
    dying: Mutex<HashSet<String>>,
    processes: Mutex<HashMap<String, Arc<ProcessTable>>>,
    shells: Mutex<HashMap<String, &'static str>>,
}

/// A sandbox marked dying until this is dropped, however its removal ends.
struct Dying {
    state: E2bShared,
    id: String,
}

impl Drop for Dying {
    fn drop(&mut self) {
        lock(&self.state.dying).remove(&self.id);
    }
}

/// State as handlers receive it.
pub type E2bShared = Arc<E2bState>;

impl E2bState {
    /// State over the server's; `templates` maps `templateID`s to image references.
    pub fn new(app: Shared, templates: BTreeMap<String, String>) -> E2bShared {
        Arc::new(E2bState {
            app,
            templates,
            deadlines: Mutex::new(HashMap::new()),
            dying: Mutex::new(HashSet::new()),
            processes: Mutex::new(HashMap::new()),
            shells: Mutex::new(HashMap::new()),
        })
    }

    /// The image a `templateID` names: an alias's image, else the id itself.
    pub fn image_of(&self, template: &str) -> String {
        self.templates
            .get(template)
            .cloned()
            .unwrap_or_else(|| template.to_string())
    }

    /// The envd access token of sandbox `id`: an HMAC of its id under the server's token,
    /// so it is never stored and a token for one sandbox opens no other. `None` without
    /// authentication (`--no-auth`).
    pub fn access_token(&self, id: &str) -> Option<String> {
        let key = self.app.token.as_ref()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).ok()?;
        mac.update(b"e2b envd access token\0");
        mac.update(id.as_bytes());
        Some(hex(&mac.finalize().into_bytes()))
    }

    /// Sets when sandbox `id` is killed.
    pub fn set_deadline(&self, id: &str, at: SystemTime) {
        lock(&self.deadlines).insert(id.to_string(), at);
    }

    /// When sandbox `id` is to be killed, if this server knows.
    pub fn deadline(&self, id: &str) -> Option<SystemTime> {
        lock(&self.deadlines).get(id).copied()
    }

    /// Kills sandbox `id` and forgets everything about it. From the call on, the sandbox
    /// is gone to [`is_dying`](Self::is_dying)'s callers, so no client sees it stopped but
    /// not yet removed. A sandbox already gone is no error. The removal runs to its end
    /// even if the caller stops waiting; if it fails, the sandbox is visible again with
    /// its deadline, so the deadline keeper tries again.
    pub async fn kill(self: &Arc<Self>, id: &str) -> microsandbox::MicrosandboxResult<()> {
        lock(&self.dying).insert(id.to_string());
        let deadline = lock(&self.deadlines).remove(id);
        lock(&self.shells).remove(id);
        if let Some(table) = lock(&self.processes).remove(id) {
            table.close();
        }
        self.app.forget(id);
        let dying = Dying {
            state: self.clone(),
            id: id.to_string(),
        };
        let removal = tokio::spawn(async move {
            let removed = match dying.state.app.msb.remove(&dying.id, true).await {
                Err(e) if e.kind() == microsandbox::ErrorKind::NotFound => Ok(()),
                other => other,
            };
            if let (Err(_), Some(at)) = (&removed, deadline) {
                dying.state.set_deadline(&dying.id, at);
            }
            removed
        });
        removal.await.unwrap_or_else(|e| {
            Err(microsandbox::MicrosandboxError::Supervisor(format!(
                "killing {id}: {e}"
            )))
        })
    }

    /// Whether sandbox `id` is being killed.
    pub fn is_dying(&self, id: &str) -> bool {
        lock(&self.dying).contains(id)
    }

    /// Sandboxes whose deadline has passed.
    pub fn expired(&self, now: SystemTime) -> Vec<String> {
        lock(&self.deadlines)
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The processes of sandbox `id`.
    pub fn processes(&self, id: &str) -> Arc<ProcessTable> {
        lock(&self.processes).entry(id.to_string()).or_default().clone()
    }

    /// A connection to the running E2B sandbox `id`, or envd's "not found".
    pub async fn sandbox(&self, id: &str) -> Result<Sandbox, ConnectError> {
        // Worded as E2B's proxy words it, which its clients recognise.
        let gone = || ConnectError::new(Code::Unavailable, format!("sandbox {id} was not found"));
        let info = self.app.msb.get(id).await.map_err(|_| gone())?;
        if !info.spec.labels.contains_key(TEMPLATE_LABEL) || self.is_dying(id) {
            return Err(gone());
        }
        self.app.sandbox(id).await.map_err(|e| match e.kind() {
            microsandbox::ErrorKind::NotFound | microsandbox::ErrorKind::Conflict => gone(),
            _ => ConnectError::new(Code::Unavailable, format!("sandbox {id:?}: {e}")),
        })
    }

    /// The shell E2B's commands run in on sandbox `id`: bash, as E2B runs them, or `/bin/sh`
    /// when the image has no bash. Looked up once per sandbox.
    pub async fn shell(&self, id: &str, sb: &Sandbox) -> &'static str {
        if let Some(shell) = lock(&self.shells).get(id) {
            return shell;
        }
        let shell = match sb.fs().exists("/bin/bash").await {
            Ok(true) => "/bin/bash",
            _ => "/bin/sh",
        };
        lock(&self.shells).insert(id.to_string(), shell);
        shell
    }
}

/// The deadline `timeout` seconds from now.
pub fn deadline_in(timeout: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(timeout)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every change under these locks is a single map operation: a panic cannot leave one
    // half-done.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
