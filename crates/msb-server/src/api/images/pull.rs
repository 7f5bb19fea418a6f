//! `POST /v1/images/pull`: the SDK's pull, its progress callback bridged to a streamed
//! answer (NDJSON or SSE) through a channel.

use super::ImageDetail;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::state::Shared;
use crate::stream::EventName;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use microsandbox::image::{PullEvent as LayerEvent, PullProgress};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::mpsc;
use utoipa::ToSchema;

/// An image to pull.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// The image (`python`, `registry/repo:tag`); a loopback registry is spoken to over
    /// plain HTTP.
    pub reference: String,
}

/// One event of a pull.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PullEvent {
    /// Looking the reference up.
    Resolving {
        /// The image, canonical.
        reference: String,
    },
    /// The manifest is known.
    Resolved {
        /// Number of layers.
        layers: usize,
        /// Sum of their blob sizes.
        bytes: u64,
    },
    /// A layer's download started.
    LayerStarted {
        /// Its blob digest.
        digest: String,
        /// Its expected bytes.
        size: u64,
    },
    /// More of a layer arrived (sent at most once per MiB, and at its end).
    LayerProgress {
        /// Its blob digest.
        digest: String,
        /// Bytes received so far.
        received: u64,
        /// Its expected bytes.
        size: u64,
    },
    /// A layer is in the store.
    LayerDone {
        /// Its blob digest.
        digest: String,
        /// Nothing had to be downloaded.
        cached: bool,
        /// Its blob's size.
        size: u64,
    },
    /// The image is in the store; nothing follows.
    Done {
        /// Its record.
        image: Box<ImageDetail>,
    },
    /// The pull failed; nothing follows.
    Error {
        /// The error's kind (`not_found`, `upstream`, `invalid` …).
        kind: String,
        /// What went wrong.
        message: String,
    },
}

impl EventName for PullEvent {
    fn event_name(&self) -> &'static str {
        match self {
            PullEvent::Resolving { .. } => "resolving",
            PullEvent::Resolved { .. } => "resolved",
            PullEvent::LayerStarted { .. } => "layer_started",
            PullEvent::LayerProgress { .. } => "layer_progress",
            PullEvent::LayerDone { .. } => "layer_done",
            PullEvent::Done { .. } => "done",
            PullEvent::Error { .. } => "error",
        }
    }
}

/// Bytes of a layer between two progress events.
const PROGRESS_STEP: u64 = 1 << 20;

/// Turns the SDK's progress reports into events. The SDK reports each chunk received and
/// calls back synchronously, so it cannot wait for a slow client: progress is thinned to
/// one event per MiB per layer, which bounds what queues up at a few per MiB pulled.
#[derive(Debug, Default)]
struct Progress {
    /// Per layer: its size, bytes received, and bytes last reported.
    layers: Mutex<HashMap<String, (u64, u64, u64)>>,
}

impl Progress {
    /// The event `p` makes, if it makes one now.
    fn event(&self, p: PullProgress) -> Option<PullEvent> {
        let mut layers = self.layers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match p {
            PullProgress::Resolving { reference } => Some(PullEvent::Resolving { reference }),
            // The image's record follows in `done`.
            PullProgress::Complete { .. } => None,
            PullProgress::Layer(LayerEvent::Resolved { layers, bytes }) => Some(PullEvent::Resolved { layers, bytes }),
            PullProgress::Layer(LayerEvent::Started { digest, size }) => {
                layers.insert(digest.clone(), (size, 0, 0));
                Some(PullEvent::LayerStarted { digest, size })
            }
            PullProgress::Layer(LayerEvent::Progress { digest, bytes }) => {
                let (size, received, reported) = layers.entry(digest.clone()).or_default();
                *received += bytes;
                let due = *received - *reported >= PROGRESS_STEP || (*size > 0 && *received >= *size);
                if !due || *received == *reported {
                    return None;
                }
                *reported = *received;
                Some(PullEvent::LayerProgress {
                    digest,
                    received: *received,
                    size: *size,
                })
            }
            PullProgress::Layer(LayerEvent::Done { digest, cached, size }) => {
                layers.remove(&digest);
                Some(PullEvent::LayerDone { digest, cached, size })
            }
        }
    }
}

/// Aborts the pull when the client goes away (the answer's stream is dropped).
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Pulls an image from its registry, streaming progress: NDJSON, or Server-Sent Events
/// when the client accepts `text/event-stream`. The last event is `done` or `error`; a
/// client that goes away stops the pull.
#[utoipa::path(post, path = "/v1/images/pull", tag = "images", request_body = PullRequest,
    responses((status = 200, description = "one PullEvent per line", content(
        (PullEvent = "application/x-ndjson"), (PullEvent = "text/event-stream"))),
        (status = 422, body = ErrorBody)))]
pub(super) async fn pull_image(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<PullRequest>,
) -> ApiResult<Response> {
    // A reference that cannot be parsed is the request's fault: a status, not a stream.
    microsandbox::image::canonical(&req.reference)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let images = state.msb.images();
    let task = tokio::spawn(async move {
        let progress = Progress::default();
        let reporter = tx.clone();
        let pulled = images
            .pull(&req.reference, move |p| {
                if let Some(event) = progress.event(p) {
                    let _ = reporter.send(event);
                }
            })
            .await;
        let last = match pulled {
            Ok(record) => PullEvent::Done {
                image: Box::new(record.into()),
            },
            Err(e) => {
                let e = ApiError::from(e);
                PullEvent::Error {
                    kind: e.kind.to_string(),
                    message: e.message,
                }
            }
        };
        let _ = tx.send(last);
    });
    let events = futures::stream::unfold((rx, AbortOnDrop(task)), |(mut rx, task)| async move {
        rx.recv().await.map(|event| (event, (rx, task)))
    });
    Ok(crate::stream::respond(&headers, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(e: LayerEvent) -> PullProgress {
        PullProgress::Layer(e)
    }

    #[test]
    fn progress_is_thinned_to_a_mib_per_event_and_the_end_of_each_layer() {
        let p = Progress::default();
        let digest = || "sha256:a".to_string();
        let started = p.event(layer(LayerEvent::Started {
            digest: digest(),
            size: 3 << 20,
        }));
        assert!(matches!(started, Some(PullEvent::LayerStarted { .. })));
        let mut reported = Vec::new();
        for _ in 0..(3 * 64) {
            if let Some(PullEvent::LayerProgress { received, .. }) = p.event(layer(LayerEvent::Progress {
                digest: digest(),
                bytes: 16 << 10,
            })) {
                reported.push(received);
            }
        }
        assert_eq!(reported, vec![1 << 20, 2 << 20, 3 << 20]);
        let done = p.event(layer(LayerEvent::Done {
            digest: digest(),
            cached: false,
            size: 3 << 20,
        }));
        assert!(matches!(done, Some(PullEvent::LayerDone { .. })));
        assert!(p.layers.lock().unwrap().is_empty());
    }

    #[test]
    fn events_are_tagged_by_type() {
        let event = PullEvent::Error {
            kind: "upstream".into(),
            message: "down".into(),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "error", "kind": "upstream", "message": "down"})
        );
        assert_eq!(event.event_name(), "error");
        let complete = PullProgress::Complete {
            reference: "r".into(),
            manifest_digest: "d".into(),
            cached: false,
        };
        assert!(Progress::default().event(complete).is_none());
    }
}
