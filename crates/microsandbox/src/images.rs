//! The image store as an API in the reference's shape: `Image::list()`, `Image::pull(…)`,
//! or `msb.images().list()` for another `$MSB_HOME`. Thin over [`crate::image`].

use crate::image::{self, PullPolicy, PullProgress, PullSettings};
use crate::{Microsandbox, MicrosandboxResult};
use msb_types::ImageRecord;

/// The images of one home.
#[derive(Debug, Clone)]
pub struct Images {
    msb: Microsandbox,
}

/// An image with its size on disk, as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageInfo {
    /// Reference, manifest, config, platform, layers.
    #[serde(flatten)]
    pub record: ImageRecord,
    /// Bytes its layers take in the store.
    pub size_bytes: u64,
}

impl Images {
    pub(crate) fn of(msb: Microsandbox) -> Images {
        Images { msb }
    }

    /// The stored image `reference` (normalised: `python` is `docker.io/library/python:latest`).
    pub async fn get(&self, reference: &str) -> MicrosandboxResult<ImageRecord> {
        image::inspect(self.msb.paths(), reference)
    }

    /// Every stored image, newest first.
    pub async fn list(&self) -> MicrosandboxResult<Vec<ImageInfo>> {
        Ok(image::list(self.msb.paths())?
            .into_iter()
            .map(|(record, size_bytes)| ImageInfo { record, size_bytes })
            .collect())
    }

    /// Same as [`Images::get`]: the record holds the config and the layers.
    pub async fn inspect(&self, reference: &str) -> MicrosandboxResult<ImageRecord> {
        self.get(reference).await
    }

    /// Removes `reference`; refused while sandboxes were made from it unless `force`.
    /// Returns how many layer files were deleted.
    pub async fn remove(&self, reference: &str, force: bool) -> MicrosandboxResult<usize> {
        image::remove(self.msb.paths(), reference, force)
    }

    /// Deletes the layers no image and no sandbox uses; returns how many.
    pub async fn gc(&self) -> MicrosandboxResult<usize> {
        image::prune(self.msb.paths())
    }

    /// Pulls `reference` (always), reporting to `progress`.
    pub async fn pull(
        &self,
        reference: &str,
        progress: impl Fn(PullProgress) + Send + Sync,
    ) -> MicrosandboxResult<ImageRecord> {
        image::obtain(
            self.msb.paths(),
            reference,
            PullPolicy::Always,
            &PullSettings::default(),
            &progress,
        )
        .await
    }
}

/// The reference's `Image` namespace, on the home `$MSB_HOME` names.
#[derive(Debug, Clone, Copy)]
pub struct Image;

impl Image {
    /// See [`Images::get`].
    pub async fn get(reference: &str) -> MicrosandboxResult<ImageRecord> {
        Microsandbox::from_env().images().get(reference).await
    }

    /// See [`Images::list`].
    pub async fn list() -> MicrosandboxResult<Vec<ImageInfo>> {
        Microsandbox::from_env().images().list().await
    }

    /// See [`Images::inspect`].
    pub async fn inspect(reference: &str) -> MicrosandboxResult<ImageRecord> {
        Microsandbox::from_env().images().inspect(reference).await
    }

    /// See [`Images::remove`].
    pub async fn remove(reference: &str, force: bool) -> MicrosandboxResult<usize> {
        Microsandbox::from_env().images().remove(reference, force).await
    }

    /// See [`Images::gc`].
    pub async fn gc() -> MicrosandboxResult<usize> {
        Microsandbox::from_env().images().gc().await
    }

    /// See [`Images::pull`].
    pub async fn pull(
        reference: &str,
        progress: impl Fn(PullProgress) + Send + Sync,
    ) -> MicrosandboxResult<ImageRecord> {
        Microsandbox::from_env().images().pull(reference, progress).await
    }
}
