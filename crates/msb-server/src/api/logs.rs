//! `/v1/sandboxes/{name}/logs`: one of a sandbox's logs as text, streamed chunk by chunk
//! from the SDK's `LogReader` (bounded memory), and with `follow` until the sandbox stops.

use super::sandboxes::Named;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Path, Query};
use crate::state::Shared;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use microsandbox::LogSource;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new().routes(routes!(logs))
}

/// Which log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogName {
    /// Output of the sandbox's command.
    Output,
    /// One line per exec session, and the sandbox's starts and stops.
    Exec,
    /// The guest console: kernel and agent messages.
    Console,
    /// The supervisor's own diagnostics.
    Supervisor,
}

impl From<LogName> for LogSource {
    fn from(name: LogName) -> LogSource {
        match name {
            LogName::Output => LogSource::Output,
            LogName::Exec => LogSource::Exec,
            LogName::Console => LogSource::Console,
            LogName::Supervisor => LogSource::Supervisor,
        }
    }
}

/// What to read.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// The log (default: `output` when the sandbox has a command, else `exec`).
    #[param(inline)]
    pub source: Option<LogName>,
    /// Keep the answer open and send what is written until the sandbox stops.
    #[serde(default)]
    pub follow: bool,
    /// For the console: how many boots back from the last one (0, the default, is the
    /// last; five are kept).
    #[serde(default)]
    pub boot: usize,
}

/// A sandbox's log from its start: the bytes as written (text, not re-encoded).
#[utoipa::path(get, path = "/v1/sandboxes/{name}/logs", tag = "logs", params(Named, LogsQuery),
    responses((status = 200, description = "the log", body = String, content_type = "text/plain"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn logs(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    let reader = state
        .msb
        .logs(&name, q.source.map(LogSource::from), q.boot, q.follow)
        .await?;
    // One chunk (at most 64 KiB) is read ahead of what the client has taken.
    let chunks = futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(bytes::Bytes::from(chunk)), Some(reader))),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "reading a log failed midway");
                Some((Err(std::io::Error::other(e.to_string())), None))
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_named_as_the_sdk_names_them() {
        for (text, source) in [
            ("output", LogSource::Output),
            ("exec", LogSource::Exec),
            ("console", LogSource::Console),
            ("supervisor", LogSource::Supervisor),
        ] {
            let name: LogName = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(LogSource::from(name), source);
            assert_eq!(text.parse::<LogSource>().unwrap(), source);
        }
        assert!(serde_json::from_value::<LogName>(serde_json::json!("kernel")).is_err());
    }
}
