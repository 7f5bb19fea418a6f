//! E2B's envd wire protocol, as the E2B-compatible endpoint of `msb serve` speaks it: the
//! message types of the `process.Process` and `filesystem.Filesystem` services, generated
//! by `build.rs` from E2B's published `.proto` files (binary protobuf through prost, proto3
//! JSON through pbjson), and the Connect protocol's codecs, envelopes and errors. Pure
//! functions over bytes: no I/O, so every parser here is fuzzed on its own.

mod connect;

pub use connect::{end_of_stream, envelope, open_envelope, Code, Codec, ConnectError, Shape, COMPRESSED, END_STREAM};

/// A message of either service, in either codec.
pub trait Message: prost::Message + serde::Serialize + serde::de::DeserializeOwned + Default + Send + 'static {}

impl<T> Message for T where T: prost::Message + serde::Serialize + serde::de::DeserializeOwned + Default + Send + 'static
{}

/// `process.Process` messages.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod process {
    include!(concat!(env!("OUT_DIR"), "/process.rs"));
    include!(concat!(env!("OUT_DIR"), "/process.serde.rs"));
}

/// `filesystem.Filesystem` messages.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod filesystem {
    include!(concat!(env!("OUT_DIR"), "/filesystem.rs"));
    include!(concat!(env!("OUT_DIR"), "/filesystem.serde.rs"));
}

pub use pbjson_types::Timestamp;

/// `Start` and `Connect` stream the same events, each wrapped in its own response type.
impl From<process::ProcessEvent> for process::StartResponse {
    fn from(event: process::ProcessEvent) -> Self {
        process::StartResponse { event: Some(event) }
    }
}

impl From<process::ProcessEvent> for process::ConnectResponse {
    fn from(event: process::ProcessEvent) -> Self {
        process::ConnectResponse { event: Some(event) }
    }
}
