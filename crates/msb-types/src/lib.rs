//! Shared plain data: what a user asks of a sandbox, with validation, and where things live.

mod image;
mod name;
mod paths;
mod spec;

pub use image::{ImageConfig, ImageRecord, LayerRecord, Platform, PlatformError};
pub use name::{validate_name, NameError};
pub use paths::Paths;
pub use spec::{parse_env, ResourceError, Resources, RootSpec, SandboxSpec};
