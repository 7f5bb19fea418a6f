//! `msb serve`: every capability of the SDK over HTTP (REST with an OpenAPI 3.1 document,
//! streamed exec output and pull progress, a WebSocket PTY) and MCP, for agents, Python and
//! anything that cannot embed the Rust SDK. Each handler calls the SDK; none re-implements
//! a sandbox operation.

pub mod api;
mod error;
mod extract;
mod listen;
pub mod mcp;
mod router;
mod state;
mod stream;
mod text;
mod token;

pub use error::{ApiError, ApiResult, ErrorBody};
pub use listen::{serve, tls_acceptor, Limits};
pub use router::{app, openapi, JSON_BODY_LIMIT};
pub use state::{AppState, Shared};
pub use token::{load_or_create as load_or_create_token, token_path, Loaded as LoadedToken};
pub mod e2b;
