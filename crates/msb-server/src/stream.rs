//! Streamed answers: a stream of events as NDJSON (one JSON object per line), or as
//! Server-Sent Events for a client that accepts `text/event-stream`.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Serialize;
use std::convert::Infallible;

/// An event with a name, for SSE's `event:` field.
pub trait EventName {
    /// The name.
    fn event_name(&self) -> &'static str;
}

/// `events` as SSE when `headers` accept it, else as NDJSON.
pub fn respond<T>(headers: &HeaderMap, events: impl Stream<Item = T> + Send + 'static) -> Response
where
    T: Serialize + EventName + Send + 'static,
{
    let wants_sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_sse {
        let sse = events.map(|e| {
            let event = Event::default().event(e.event_name());
            Ok::<_, Infallible>(event.json_data(&e).unwrap_or_else(|_| Event::default().event("error")))
        });
        return Sse::new(sse).keep_alive(KeepAlive::default()).into_response();
    }
    let lines = events.map(|e| Ok::<_, Infallible>(bytes::Bytes::from(ndjson_line(&e))));
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}

/// `value` as one line of JSON.
fn ndjson_line(value: &impl Serialize) -> Vec<u8> {
    // Serializing our own event types cannot fail: no maps with non-string keys, no
    // fallible Serialize impls.
    let mut line = serde_json::to_vec(value).unwrap_or_else(|_| b"{\"type\":\"error\"}".to_vec());
    line.push(b'\n');
    line
}
