//! OCI images: resolve a reference on a registry, pick the platform's manifest, and turn
//! each layer into a verified EROFS image in a content-addressed layer store.
//!
//! Layers stream from the network through digest verification and decompression straight
//! into the EROFS writer; nothing is unpacked to disk, and a layer becomes visible in the
//! store only by an atomic rename after both its digests have been checked.

pub mod auth;
mod config;
mod error;
mod layer;
pub mod manifest;
mod pull;
mod reference;
mod store;

pub use auth::AuthError;
pub use config::ImageConfigFile;
pub use error::OciError;
pub use layer::{LayerEvent, PulledLayer};
pub use pull::{host_platform, PullOptions, PulledImage, Puller, PullerConfig, DEFAULT_READ_TIMEOUT};
pub use reference::normalize_reference;
pub use store::LayerStore;
