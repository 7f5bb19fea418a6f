//! The host ⇄ guest-agent wire protocol.
//!
//! A connection carries length-prefixed frames (see [`codec`]); each frame names a session id
//! and holds one postcard-encoded [`Message`]. Session 0 is the control session (handshake,
//! shutdown); every exec or file operation gets a fresh id chosen by the host. Output and input streams are
//! flow-controlled with per-stream credit windows so neither side can be made to buffer
//! without bound.

pub mod client;
pub mod codec;
pub mod fs;
pub mod fs_client;
pub mod message;
pub mod mux;
pub mod tree;

pub use codec::{Frame, FrameCodec, ProtocolError};
pub use fs::{FsEntry, FsErrorKind, FsEvent, FsEventKind, FsFailure, FsKind, FsOp, FsReply, FsRequest};
pub use message::*;

/// Protocol version spoken by this build; the handshake rejects any other.
pub const PROTOCOL_VERSION: u32 = 11;

/// Largest frame body accepted (id + payload), in bytes. Bigger frames are a protocol error.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// Largest data chunk a sender puts into one stdin/stdout/stderr message (each message
/// costs a wake-up on both sides, which under TCG dominates small chunks).
pub const MAX_CHUNK: usize = 256 * 1024;

/// Bytes a sender may have in flight per stream before the receiver grants more credit
/// (a bandwidth-delay product: at a 10 ms round trip, up to 200 MB/s).
pub const STREAM_WINDOW: u32 = 2 << 20;

/// Session id of the control session (handshake, shutdown).
pub const CONTROL_SESSION: u32 = 0;

/// Name of the virtio-serial port the agent listens on.
pub const AGENT_PORT_NAME: &str = "msb.agent";
