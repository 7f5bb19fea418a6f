//! Images: pull from registries into the layer store, list, inspect, remove, prune.

use crate::{MicrosandboxError, MicrosandboxResult};
use msb_oci::{normalize_reference, LayerEvent, LayerStore, PullOptions, Puller};
use msb_store::Store;
use msb_types::{ImageRecord, Paths, Platform};
use std::time::{SystemTime, UNIX_EPOCH};

pub use msb_oci::LayerEvent as PullEvent;

/// Options for [`pull`]; also what a sandbox's create pulls with
/// ([`SandboxBuilder::registry`](crate::SandboxBuilder::registry)).
#[derive(Clone, Default)]
pub struct PullSettings {
    /// Platform to pull; the host's when absent.
    pub platform: Option<Platform>,
    /// Use plain HTTP for the image's registry (loopback registries always do).
    pub insecure: bool,
    /// How long a registry may send nothing mid-response before the pull fails (default
    /// 30 s).
    pub read_timeout: Option<std::time::Duration>,
    /// Credentials to use, before any stored ones.
    pub auth: Option<(String, String)>,
    /// PEM files of extra CAs to trust for the registry.
    pub ca_certs: Vec<std::path::PathBuf>,
    /// Download and convert every layer again, even those already stored.
    pub force: bool,
}

impl PullSettings {
    /// Logs in to the image's registry with these credentials (before any stored ones).
    pub fn auth(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some((username.into(), password.into()));
        self
    }

    /// Talks plain HTTP to the image's registry.
    pub fn insecure(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// Trusts the CA in this PEM file for the registry's HTTPS, beside the system's.
    pub fn ca_cert(mut self, pem: impl Into<std::path::PathBuf>) -> Self {
        self.ca_certs.push(pem.into());
        self
    }
}

/// The password never reaches a log: only whether there are credentials, and for whom.
impl std::fmt::Debug for PullSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullSettings")
            .field("platform", &self.platform)
            .field("insecure", &self.insecure)
            .field("read_timeout", &self.read_timeout)
            .field(
                "auth",
                &self.auth.as_ref().map(|(user, _)| format!("{user}:<redacted>")),
            )
            .field("ca_certs", &self.ca_certs)
            .field("force", &self.force)
            .finish()
    }
}

/// The canonical form under which an image is stored (`docker.io/library/python:latest`).
pub fn canonical(reference: &str) -> MicrosandboxResult<String> {
    Ok(normalize_reference(reference)?.whole())
}

/// Whether `registry` is on this host, where plain HTTP is the norm.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// Pulls `reference`, converts its layers, records the image and returns its record.
pub async fn pull(
    paths: &Paths,
    reference: &str,
    settings: &PullSettings,
    progress: &(dyn Fn(LayerEvent) + Send + Sync),
) -> MicrosandboxResult<ImageRecord> {
    let image = normalize_reference(reference)?;
    let registry = image.resolve_registry().to_string();
    let config = crate::config::Config::load(paths.home()).map_err(MicrosandboxError::Config)?;
    let entry = config.registry(&registry);
    let configured = entry
        .and_then(|e| e.auth.as_ref())
        .map(|a| a.credentials(crate::env::process_var))
        .transpose()
        .map_err(MicrosandboxError::Config)?;
    let docker = crate::env::docker_config(&crate::env::process_var);
    let sources = msb_oci::auth::AuthSources {
        explicit: settings.auth.clone(),
        configured,
        home: Some(paths.home()),
        docker_config: docker.as_deref(),
    };
    let auth = msb_oci::auth::resolve(&sources, &registry).map_err(msb_oci::OciError::from)?;
    let insecure = if settings.insecure || entry.is_some_and(|e| e.insecure) || is_loopback(&registry) {
        vec![registry]
    } else {
        Vec::new()
    };
    let ca_files = config
        .registries
        .ca_certs
        .iter()
        .chain(entry.iter().flat_map(|e| &e.ca_certs))
        .chain(&settings.ca_certs);
    let ca_certs = ca_files
        .map(|f| {
            std::fs::read(f).map_err(MicrosandboxError::io(format!(
                "reading the CA certificate {}",
                f.display()
            )))
        })
        .collect::<Result<_, _>>()?;
    let store = Store::open(paths)?;
    let puller_config = msb_oci::PullerConfig {
        insecure,
        read_timeout: settings.read_timeout.unwrap_or(msb_oci::DEFAULT_READ_TIMEOUT),
        ca_certs,
    };
    let puller = Puller::new(LayerStore::open(&paths.cache_dir())?, puller_config);
    let platform = settings.platform.clone().unwrap_or_else(msb_oci::host_platform);
    let opts = PullOptions {
        platform: platform.clone(),
        auth,
        refetch: settings.force,
        ..Default::default()
    };
    let pulled = puller.pull(&image, &opts, progress).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let record = pulled.into_record(platform, now);
    store.put_image(&record)?;
    Ok(record)
}

/// The record of `reference`, pulled first (reporting to `progress`) when it is not in the
/// local store.
pub async fn ensure_with(
    paths: &Paths,
    reference: &str,
    progress: &(dyn Fn(LayerEvent) + Send + Sync),
) -> MicrosandboxResult<ImageRecord> {
    match inspect(paths, reference) {
        Err(MicrosandboxError::ImageNotFound(_)) => pull(paths, reference, &PullSettings::default(), progress).await,
        other => other,
    }
}

/// When an image is pulled from its registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PullPolicy {
    /// Only when it is not in the local store.
    #[default]
    IfMissing,
    /// Every time (the tag may point elsewhere now).
    Always,
    /// Never: an image not in the store is an error.
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = msb_types::SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "if-missing" | "missing" | "ifmissing" | "if_missing" => Ok(PullPolicy::IfMissing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => Err(msb_types::SpecError::new(
                msb_types::Field::Root,
                format!("pull policy '{other}' is not one of always, if-missing, never"),
            )),
        }
    }
}

/// What a pull reports as it goes (the reference's `PullProgress`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullProgress {
    /// Looking the reference up.
    Resolving {
        /// The image.
        reference: String,
    },
    /// Manifest resolved, a layer started, bytes arrived, a layer is in the store.
    Layer(LayerEvent),
    /// The image is in the store.
    Complete {
        /// The image, canonical.
        reference: String,
        /// Its manifest.
        manifest_digest: String,
        /// Nothing had to be downloaded.
        cached: bool,
    },
}

/// The record of `reference` as `policy` says: pulled (reporting to `progress`) always, only
/// when missing, or never.
pub async fn obtain(
    paths: &Paths,
    reference: &str,
    policy: PullPolicy,
    settings: &PullSettings,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> MicrosandboxResult<ImageRecord> {
    let stored = match inspect(paths, reference) {
        Err(MicrosandboxError::ImageNotFound(_)) => None,
        other => Some(other?),
    };
    let record = match (policy, stored) {
        (PullPolicy::Never, None) => {
            return Err(MicrosandboxError::ImageNotFound(format!(
                "{} (and the pull policy is never)",
                canonical(reference)?
            )))
        }
        (PullPolicy::Never | PullPolicy::IfMissing, Some(record)) => {
            progress(PullProgress::Complete {
                reference: record.reference.clone(),
                manifest_digest: record.manifest_digest.clone(),
                cached: true,
            });
            return Ok(record);
        }
        (PullPolicy::Always | PullPolicy::IfMissing, _) => {
            progress(PullProgress::Resolving {
                reference: canonical(reference)?,
            });
            pull(paths, reference, settings, &|e| progress(PullProgress::Layer(e))).await?
        }
    };
    progress(PullProgress::Complete {
        reference: record.reference.clone(),
        manifest_digest: record.manifest_digest.clone(),
        cached: false,
    });
    Ok(record)
}

/// The record of `reference`, pulled quietly first when it is not in the local store.
pub async fn ensure(paths: &Paths, reference: &str) -> MicrosandboxResult<ImageRecord> {
    ensure_with(paths, reference, &|_| {}).await
}

/// All images with their on-disk size, newest first.
pub fn list(paths: &Paths) -> MicrosandboxResult<Vec<(ImageRecord, u64)>> {
    Ok(Store::open(paths)?.list_images()?)
}

/// One image's record.
pub fn inspect(paths: &Paths, reference: &str) -> MicrosandboxResult<ImageRecord> {
    let canonical = canonical(reference)?;
    Store::open(paths)?
        .get_image(&canonical)?
        .ok_or_else(|| MicrosandboxError::ImageNotFound(canonical))
}

/// Removes an image; layers no other image uses are deleted from disk. Refused while
/// sandboxes were created from it, or it is the last name of what snapshots resume,
/// unless `force` (sandboxes' layers then stay until they go; snapshots' do not).
pub fn remove(paths: &Paths, reference: &str, force: bool) -> MicrosandboxResult<usize> {
    let canonical = canonical(reference)?;
    let store = Store::open(paths)?;
    let Some(image) = store.get_image(&canonical)? else {
        return Err(MicrosandboxError::ImageNotFound(canonical));
    };
    if !force {
        let snapshots = snapshots_resuming(paths, &store, &image)?;
        if !snapshots.is_empty() {
            return Err(MicrosandboxError::ImageInUse {
                reference: canonical,
                sandboxes: snapshots,
            });
        }
    }
    let orphans = store.remove_image(&canonical, force)?;
    delete_layers(paths, &store, orphans.iter().map(|l| l.diff_id.as_str()))
}

/// The snapshots that resume `image` (as "snapshot 'NAME'"), where no other reference
/// names what it names.
fn snapshots_resuming(paths: &Paths, store: &Store, image: &ImageRecord) -> MicrosandboxResult<Vec<String>> {
    let digest = &image.manifest_digest;
    let named_otherwise = store
        .list_images()?
        .iter()
        .any(|(other, _)| other.manifest_digest == *digest && other.reference != image.reference);
    if named_otherwise {
        return Ok(Vec::new());
    }
    Ok(crate::snapshots::list_in(paths)?
        .into_iter()
        .filter(|s| s.spec.image.as_ref().is_some_and(|i| i.manifest_digest == *digest))
        .map(|s| format!("snapshot '{}'", s.name))
        .collect())
}

/// Deletes layers no image references and no sandbox pins; returns how many.
pub fn prune(paths: &Paths) -> MicrosandboxResult<usize> {
    let store = Store::open(paths)?;
    store.drop_unused_manifests()?;
    let orphans = store.orphan_layers()?;
    delete_layers(paths, &store, orphans.iter().map(|l| l.diff_id.as_str()))
}

fn delete_layers<'a>(
    paths: &Paths,
    store: &Store,
    diff_ids: impl Iterator<Item = &'a str>,
) -> MicrosandboxResult<usize> {
    let layers = LayerStore::open(&paths.cache_dir())?;
    let mut removed = 0;
    for diff_id in diff_ids {
        // The row goes only if still unused (checked in the same transaction); the file
        // follows. A crash in between leaves a stray file that a later pull reuses.
        if store.delete_layer(diff_id)? {
            layers.remove(diff_id)?;
            removed += 1;
        }
    }
    Ok(removed)
}
