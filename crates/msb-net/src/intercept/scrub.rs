//! Response scrubbing: each real value in a textual response body of known length up to the
//! limit is replaced by its placeholder, so what the guest reads back never holds a value.
//! Larger, streamed (no length), compressed or binary bodies pass unscrubbed.

use super::proxy::{Body, BoxError};
use super::scan::Needles;
use super::Secret;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

/// Whether a Content-Type is text a value could be echoed in.
fn textual(headers: &HeaderMap) -> bool {
    let Some(kind) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let kind = kind.to_ascii_lowercase();
    kind.starts_with("text/")
        || ["json", "xml", "javascript", "x-www-form-urlencoded"]
            .iter()
            .any(|t| kind.contains(t))
}

/// The body's length when it is declared, uncompressed, textual and at most `limit`.
fn scrubbable(headers: &HeaderMap, limit: usize) -> Option<usize> {
    let identity = headers
        .get(CONTENT_ENCODING)
        .is_none_or(|e| e.as_bytes().eq_ignore_ascii_case(b"identity"));
    let len: usize = headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()?;
    (identity && textual(headers) && len <= limit).then_some(len)
}

/// The response for the guest: scrubbed with `scrubber` (values, limit) when it applies.
pub(crate) async fn response(
    mut parts: http::response::Parts,
    body: Incoming,
    scrubber: Option<(&Needles, usize)>,
    secrets: &[Secret],
) -> Response<Body> {
    let bodiless = parts.status.is_informational() || matches!(parts.status.as_u16(), 204 | 304);
    let applies = |(_, limit): &(&Needles, usize)| !bodiless && scrubbable(&parts.headers, *limit).is_some();
    let Some((values, limit)) = scrubber.filter(applies) else {
        return Response::from_parts(parts, body.map_err(BoxError::from).boxed());
    };
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::debug!(%error, "response body could not be read for scrubbing");
            parts.headers.remove(CONTENT_LENGTH);
            return Response::from_parts(
                parts,
                http_body_util::Empty::new().map_err(|never| match never {}).boxed(),
            );
        }
    };
    let placeholder = |i: usize| secrets.get(i).map(|s| s.placeholder.as_bytes());
    let bytes = match values.replace(&bytes, placeholder) {
        Some(scrubbed) => Bytes::from(scrubbed),
        None => bytes,
    };
    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Response::from_parts(parts, Full::new(bytes).map_err(|never| match never {}).boxed())
}
