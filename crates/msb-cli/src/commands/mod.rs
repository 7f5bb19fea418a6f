//! One module per CLI verb.

pub mod image;
pub mod pull;
pub mod registry;
pub mod run;
