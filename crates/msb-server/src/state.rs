//! What every handler shares: the SDK, the token, and open connections to running
//! sandboxes (so an exec does not pay for a new supervisor connection each time).

use crate::error::ApiResult;
use microsandbox::{Microsandbox, MicrosandboxError, MicrosandboxResult, Sandbox};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// The server's shared state.
#[derive(Debug)]
pub struct AppState {
    /// The SDK, at the server's `$MSB_HOME`.
    pub msb: Microsandbox,
    /// The bearer token every `/v1` and `/mcp` request must carry (none: `--no-auth`).
    pub token: Option<Zeroizing<String>>,
    connections: Mutex<HashMap<String, Sandbox>>,
}

/// State as handlers receive it.
pub type Shared = Arc<AppState>;

impl AppState {
    /// State over `msb`.
    pub fn new(msb: Microsandbox, token: Option<Zeroizing<String>>) -> Shared {
        Arc::new(AppState {
            msb,
            token,
            connections: Mutex::new(HashMap::new()),
        })
    }

    /// A connection to the running sandbox `name` (reused while it works).
    pub async fn sandbox(&self, name: &str) -> MicrosandboxResult<Sandbox> {
        if let Some(sb) = self.cached(name) {
            return Ok(sb);
        }
        let sb = self.msb.connect(name).await?;
        self.lock().insert(name.to_string(), sb.clone());
        Ok(sb)
    }

    /// Keeps `sb` for later requests (a sandbox this server just created or started).
    pub fn keep(&self, sb: &Sandbox) {
        self.lock().insert(sb.name().to_string(), sb.clone());
    }

    /// Drops the connection to `name` (it stopped, or the connection broke).
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Runs `op` on a connection to `name`; when the kept connection turns out to be broken
    /// (the sandbox was restarted by someone else), once more on a fresh one.
    pub async fn with_sandbox<T, F, Fut>(&self, name: &str, op: F) -> ApiResult<T>
    where
        F: Fn(Sandbox) -> Fut,
        Fut: Future<Output = MicrosandboxResult<T>>,
    {
        let was_cached = self.cached(name).is_some();
        let sb = self.sandbox(name).await?;
        match op(sb).await {
            Err(e) if was_cached && broken(&e) => {
                self.forget(name);
                Ok(op(self.sandbox(name).await?).await?)
            }
            Err(e) => {
                if broken(&e) {
                    self.forget(name);
                }
                Err(e.into())
            }
            Ok(value) => Ok(value),
        }
    }

    fn cached(&self, name: &str) -> Option<Sandbox> {
        self.lock().get(name).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sandbox>> {
        // A panic elsewhere cannot leave the map half-changed: every change is one call.
        self.connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether `e` says the connection to the supervisor is gone.
fn broken(e: &MicrosandboxError) -> bool {
    matches!(e, MicrosandboxError::Agent(microsandbox::ClientError::Disconnected))
}
