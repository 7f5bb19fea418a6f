//! Pulling an image: resolve the platform's manifest, fetch and verify the config, and bring
//! every layer into the store, several at once.

use crate::config::ImageConfigFile;
use crate::layer::{Fetch, LayerEvent, PulledLayer};
use crate::{manifest, LayerStore, OciError};
use futures::{StreamExt, TryStreamExt};
use msb_types::Platform;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError as DistributionError};
use oci_client::manifest::{OciImageManifest, OciManifest, IMAGE_CONFIG_MEDIA_TYPE, IMAGE_DOCKER_CONFIG_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Wanted platform.
    pub platform: Platform,
    /// Credentials for the registry.
    pub auth: RegistryAuth,
    /// Layers downloaded at once.
    pub concurrency: usize,
    /// Download and convert every layer again, even those already stored (to repair a
    /// damaged store).
    pub refetch: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: host_platform(),
            auth: RegistryAuth::Anonymous,
            concurrency: 3,
            refetch: false,
        }
    }
}

/// This host's platform in OCI terms.
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    Platform {
        os: "linux".into(),
        architecture: architecture.into(),
        variant: None,
    }
}

/// What a pull produced: everything needed to record and boot the image.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The full reference (`registry/repo:tag` or `@digest`).
    pub reference: String,
    /// Digest of the platform-specific manifest.
    pub manifest_digest: String,
    /// Digest of the config blob.
    pub config_digest: String,
    /// The parsed config.
    pub config: ImageConfigFile,
    /// Layers, bottom first.
    pub layers: Vec<PulledLayer>,
}

impl PulledImage {
    /// The record the state store keeps for this image, pulled for `platform`.
    pub fn into_record(self, platform: Platform, created_at: i64) -> msb_types::ImageRecord {
        let rc = self.config.config;
        let config = msb_types::ImageConfig {
            env: rc.env,
            entrypoint: rc.entrypoint,
            cmd: rc.cmd,
            working_dir: rc.working_dir.filter(|w| !w.is_empty()),
            user: rc.user.filter(|u| !u.is_empty()),
            exposed_ports: rc.exposed_ports.into_keys().collect(),
            labels: rc.labels,
            stop_signal: rc.stop_signal,
        };
        let layers = self
            .layers
            .into_iter()
            .map(|l| msb_types::LayerRecord {
                diff_id: l.diff_id,
                blob_digest: l.blob_digest,
                media_type: l.media_type,
                compressed_size: l.compressed_size,
                erofs_size: l.erofs_size,
            })
            .collect();
        let platform = Platform {
            os: non_empty(self.config.os, platform.os),
            architecture: non_empty(self.config.architecture, platform.architecture),
            variant: self.config.variant.or(platform.variant),
        };
        msb_types::ImageRecord {
            reference: self.reference,
            manifest_digest: self.manifest_digest,
            config_digest: self.config_digest,
            platform,
            config,
            layers,
            created_at,
        }
    }
}

fn non_empty(value: String, fallback: String) -> String {
    if value.is_empty() {
        fallback
    } else {
        value
    }
}

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a registry may send nothing in the middle of a response, unless set otherwise.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How a puller talks to registries.
#[derive(Debug, Clone)]
pub struct PullerConfig {
    /// Registries spoken to over plain HTTP (e.g. `127.0.0.1:5000`).
    pub insecure: Vec<String>,
    /// How long a registry may send nothing mid-response.
    pub read_timeout: Duration,
    /// Extra CA certificates (PEM) trusted for HTTPS.
    pub ca_certs: Vec<Vec<u8>>,
}

impl Default for PullerConfig {
    fn default() -> Self {
        PullerConfig {
            insecure: Vec::new(),
            read_timeout: DEFAULT_READ_TIMEOUT,
            ca_certs: Vec::new(),
        }
    }
}

/// A registry client bound to a layer store.
pub struct Puller {
    client: Client,
    store: LayerStore,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Puller {
    /// A puller into `store`, connecting as `config` says.
    pub fn new(store: LayerStore, config: PullerConfig) -> Self {
        let PullerConfig {
            insecure,
            read_timeout,
            ca_certs,
        } = config;
        let protocol = if insecure.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(insecure)
        };
        Puller {
            client: Client::new(ClientConfig {
                protocol,
                // Without these a registry that stops answering hangs the pull for ever.
                // The read timeout is per read (idle time), not for a whole layer.
                connect_timeout: Some(CONNECT_TIMEOUT),
                read_timeout: Some(read_timeout),
                extra_root_certificates: ca_certs
                    .into_iter()
                    .map(|pem| oci_client::client::Certificate {
                        encoding: oci_client::client::CertificateEncoding::Pem,
                        data: pem,
                    })
                    .collect(),
                ..Default::default()
            }),
            store,
        }
    }

    /// The layer store.
    pub fn store(&self) -> &LayerStore {
        &self.store
    }

    /// Pulls `image` for `opts.platform`, reporting layer progress through `events`.
    pub async fn pull(
        &self,
        image: &Reference,
        opts: &PullOptions,
        events: &(dyn Fn(LayerEvent) + Send + Sync),
    ) -> Result<PulledImage, OciError> {
        let (manifest, manifest_digest, image) = self.resolve(image, opts).await?;
        manifest::check_manifest(&image, &manifest)?;
        let (config, config_digest) = self.config(&image, &manifest, opts).await?;
        manifest::check_config_layers(&image, &manifest, &config)?;
        let fetch = Fetch {
            client: &self.client,
            image: &image,
            store: &self.store,
            events,
            refetch: opts.refetch,
        };
        let bytes = manifest.layers.iter().map(|l| l.size.max(0) as u64).sum();
        events(LayerEvent::Resolved {
            layers: manifest.layers.len(),
            bytes,
        });
        // Collected first: a lazy `map` over borrowed iterators inside the stream makes the
        // pull's future not provably `Send` (rustc's higher-ranked lifetime limitation).
        let jobs: Vec<_> = manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(desc, diff_id)| fetch.layer(desc, diff_id))
            .collect();
        let layers: Vec<PulledLayer> = futures::stream::iter(jobs)
            .buffered(opts.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(PulledImage {
            reference: image.whole(),
            manifest_digest,
            config_digest,
            config,
            layers,
        })
    }

    /// Fetches the manifest, following an index to the platform's entry.
    async fn resolve(
        &self,
        image: &Reference,
        opts: &PullOptions,
    ) -> Result<(OciImageManifest, String, Reference), OciError> {
        let (manifest, digest) = self.manifest(image, opts).await?;
        let index = match manifest {
            OciManifest::Image(m) => return Ok((m, digest, image.clone())),
            OciManifest::ImageIndex(index) => index,
        };
        let entry = manifest::select_platform(image, &index, &opts.platform)?;
        let pinned = image.clone_with_digest(entry.digest.clone());
        match self.manifest(&pinned, opts).await? {
            (OciManifest::Image(m), digest) => Ok((m, digest, image.clone())),
            (OciManifest::ImageIndex(_), _) => Err(OciError::UnsupportedMediaType {
                reference: image.whole(),
                media_type: "nested image index".into(),
            }),
        }
    }

    /// Fetches one manifest (image or index) and parses it; one larger than
    /// [`MAX_MANIFEST_BYTES`] is refused.
    async fn manifest(&self, image: &Reference, opts: &PullOptions) -> Result<(OciManifest, String), OciError> {
        let registry = |source| OciError::registry(&image.whole(), source);
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(image, &opts.auth, manifest::MANIFEST_MEDIA_TYPES)
            .await
            .map_err(registry)?;
        let manifest = manifest::parse_manifest(image, &bytes)?;
        Ok((manifest, digest))
    }

    /// Fetches, verifies and parses the config blob, and checks its platform.
    async fn config(
        &self,
        image: &Reference,
        manifest: &OciImageManifest,
        opts: &PullOptions,
    ) -> Result<(ImageConfigFile, String), OciError> {
        let desc = &manifest.config;
        if desc.media_type != IMAGE_CONFIG_MEDIA_TYPE && desc.media_type != IMAGE_DOCKER_CONFIG_MEDIA_TYPE {
            return Err(OciError::UnsupportedMediaType {
                reference: image.whole(),
                media_type: desc.media_type.clone(),
            });
        }
        let mut bytes = Vec::new();
        let registry = |source| match source {
            // The client checks the digest itself; report it like every other mismatch.
            DistributionError::DigestError(DigestError::VerificationError { expected, actual }) => {
                OciError::DigestMismatch {
                    reference: image.whole(),
                    what: "config".into(),
                    expected,
                    actual,
                }
            }
            source => OciError::registry(&image.whole(), source),
        };
        self.client.pull_blob(image, desc, &mut bytes).await.map_err(registry)?;
        let actual = format!("sha256:{:x}", Sha256::digest(&bytes));
        if actual != desc.digest {
            return Err(OciError::DigestMismatch {
                reference: image.whole(),
                what: "config".into(),
                expected: desc.digest.clone(),
                actual,
            });
        }
        let config = manifest::parse_config(image, &bytes, &opts.platform)?;
        Ok((config, desc.digest.clone()))
    }
}

/// True for `sha256:` followed by 64 lowercase hex digits. Digests name files in the store,
/// so nothing else may get near a path.
pub(crate) fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::is_sha256_digest;

    #[test]
    fn only_well_formed_sha256_digests_pass() {
        assert!(is_sha256_digest(&format!("sha256:{}", "0a".repeat(32))));
        for bad in [
            "sha256:../../etc",
            "sha512:00",
            "sha256:",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert!(!is_sha256_digest(bad), "{bad}");
        }
    }
}
