//! HTTP over an intercepted flow: hyper serves the guest's TLS (HTTP/1.1 or HTTP/2, as
//! ALPN settled) and forwards each request over one upstream connection of the same
//! protocol, after `rewrite` has checked and rewritten it. Responses from hosts allowed for
//! a secret are scrubbed (`scrub`). Upgrades (WebSocket) are not relayed.

use super::body::Scanned;
use super::rewrite::{self, Facts};
use super::{scrub, Interception};
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONNECTION, CONTENT_LENGTH, HOST, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::{http1 as client1, http2 as client2};
use hyper::server::conn::{http1 as server1, http2 as server2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::io;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;

/// Largest request body buffered for substitution; a larger one is refused with `413`
/// (forwarding it with the placeholder would only fail later, less clearly).
pub(crate) const BODY_LIMIT: usize = 8 * 1024 * 1024;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// The upstream connection's request side.
enum Sender {
    /// HTTP/1.1: one request at a time.
    H1(Mutex<client1::SendRequest<Body>>),
    /// HTTP/2: requests side by side.
    H2(client2::SendRequest<Body>),
}

/// What every request of one intercepted connection shares.
struct Connection {
    interception: Arc<Interception>,
    sni: String,
    pinned: bool,
    sender: Sender,
}

/// Serves HTTP on `guest`, forwarding to `upstream`; `h2` when ALPN chose HTTP/2.
pub(crate) async fn serve<G, U>(
    guest: G,
    upstream: U,
    h2: bool,
    interception: &Arc<Interception>,
    facts: Facts<'_>,
) -> io::Result<()>
where
    G: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    U: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let upstream = TokioIo::new(upstream);
    let sender = if h2 {
        let (sender, conn) = client2::handshake(TokioExecutor::new(), upstream)
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(conn);
        Sender::H2(sender)
    } else {
        let (sender, conn) = client1::handshake(upstream).await.map_err(io::Error::other)?;
        tokio::spawn(conn);
        Sender::H1(Mutex::new(sender))
    };
    let connection = Arc::new(Connection {
        interception: interception.clone(),
        sni: facts.sni.to_string(),
        pinned: facts.pinned,
        sender,
    });
    let service = service_fn(move |request| {
        let connection = connection.clone();
        async move { Ok::<_, Infallible>(connection.handle(request).await) }
    });
    let guest = TokioIo::new(guest);
    let served = if h2 {
        server2::Builder::new(TokioExecutor::new())
            .serve_connection(guest, service)
            .await
    } else {
        server1::Builder::new().serve_connection(guest, service).await
    };
    served.map_err(io::Error::other)
}

/// A short plain-text response.
fn text(status: StatusCode, message: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(message)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The request's authority: Host (HTTP/1.1) or `:authority` (HTTP/2); when both are given
/// and name different hosts, none.
fn authority(head: &http::request::Parts) -> Option<String> {
    let host = head.headers.get(HOST).and_then(|v| v.to_str().ok());
    let uri = head.uri.authority().map(|a| a.as_str());
    match (host, uri) {
        (Some(host), Some(uri)) if rewrite::host_of(host) != rewrite::host_of(uri) => None,
        (_, Some(uri)) => Some(uri.to_string()),
        (Some(host), None) => Some(host.to_string()),
        (None, None) => None,
    }
}

/// Removes the headers that belong to one hop only.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    for name in listed {
        headers.remove(name.as_str());
    }
    for name in [CONNECTION, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    if headers.get(TE).is_some_and(|te| te != "trailers") {
        headers.remove(TE);
    }
}

impl Connection {
    /// One guest request: checked, rewritten, forwarded, its response scrubbed.
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let (mut head, incoming) = request.into_parts();
        let version = head.version;
        let authority = authority(&head);
        let facts = Facts {
            sni: &self.sni,
            pinned: self.pinned,
        };
        let allowed = rewrite::allowed(self.interception.secrets(), facts, authority.as_deref());
        let authority = authority.unwrap_or_else(|| self.sni.clone());
        let (body, scanned) = match self.checked(&mut head, incoming, &allowed, &authority).await {
            Ok(checked) => checked,
            Err(refusal) => return refusal,
        };
        // A HEAD response declares a length it has no body for: nothing to scrub.
        let scrubber = self
            .interception
            .scrubber(&self.sni)
            .filter(|_| head.method != http::Method::HEAD);
        strip_hop_by_hop(&mut head.headers);
        if scrubber.is_some() {
            head.headers
                .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        }
        if let Err(error) = self.target(&mut head, &authority) {
            return text(StatusCode::BAD_REQUEST, format!("bad request target: {error}\n"));
        }
        let sent = self.send(Request::from_parts(head, body)).await;
        if let Some(&secret) = scanned.as_ref().and_then(|hit| hit.get()) {
            return self.refuse(&authority, secret);
        }
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(host = %self.sni, %error, "intercepted request failed upstream");
                return text(StatusCode::BAD_GATEWAY, format!("upstream request failed: {error}\n"));
            }
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.version = version;
        scrub::response(parts, body, scrubber, self.interception.secrets()).await
    }

    /// The request checked and rewritten (`rewrite`), and the body to forward: buffered when
    /// a secret is substituted in it, else streamed, scanned when some secret may not go
    /// (the cell tells whether the scan hit). `Err`: the answer instead of forwarding.
    async fn checked(
        &self,
        head: &mut http::request::Parts,
        incoming: Incoming,
        allowed: &[bool],
        authority: &str,
    ) -> Result<(Body, Option<Arc<OnceLock<usize>>>), Response<Body>> {
        let secrets = self.interception.secrets();
        let Some(placeholders) = self.interception.placeholders() else {
            return Ok((incoming.map_err(BoxError::from).boxed(), None));
        };
        if !rewrite::wants_body(secrets, allowed) {
            rewrite::rewrite(secrets, placeholders, allowed, head, None)
                .map_err(|violation| self.refuse(authority, violation.secret))?;
            if !allowed.contains(&false) {
                return Ok((incoming.map_err(BoxError::from).boxed(), None));
            }
            let forbidden = allowed.iter().map(|ok| !ok).collect();
            let (body, hit) = Scanned::new(incoming, placeholders.clone(), forbidden);
            return Ok((body.boxed(), Some(hit)));
        }
        let mut bytes = match Limited::new(incoming, BODY_LIMIT).collect().await {
            Ok(body) => body.to_bytes().to_vec(),
            Err(_) => {
                let message = format!("request body over {BODY_LIMIT} bytes: too large for secret substitution\n");
                return Err(text(StatusCode::PAYLOAD_TOO_LARGE, message));
            }
        };
        rewrite::rewrite(secrets, placeholders, allowed, head, Some(&mut bytes))
            .map_err(|violation| self.refuse(authority, violation.secret))?;
        head.headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        Ok((
            Full::new(Bytes::from(bytes)).map_err(|never| match never {}).boxed(),
            None,
        ))
    }

    /// Records a violation of `secret` towards `authority` and answers it with `403`.
    fn refuse(&self, authority: &str, secret: usize) -> Response<Body> {
        let host = rewrite::host_of(authority);
        self.interception.violation(&host, secret);
        let name = self.interception.secret_name(secret);
        let message = format!("blocked by microsandbox: secret {name} may not be sent to {host}\n");
        text(StatusCode::FORBIDDEN, message)
    }

    /// Sets the request's version, URI and Host for the upstream's protocol.
    fn target(&self, head: &mut http::request::Parts, authority: &str) -> Result<(), http::Error> {
        let path = head.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        if matches!(self.sender, Sender::H2(_)) {
            head.version = Version::HTTP_2;
            head.uri = Uri::builder()
                .scheme("https")
                .authority(authority)
                .path_and_query(path)
                .build()?;
            head.headers.remove(HOST);
        } else {
            head.version = Version::HTTP_11;
            head.uri = Uri::builder().path_and_query(path).build()?;
            if !head.headers.contains_key(HOST) {
                head.headers.insert(HOST, HeaderValue::from_str(authority)?);
            }
        }
        Ok(())
    }

    async fn send(&self, request: Request<Body>) -> hyper::Result<Response<Incoming>> {
        match &self.sender {
            Sender::H1(sender) => {
                let mut sender = sender.lock().await;
                sender.ready().await?;
                sender.send_request(request).await
            }
            Sender::H2(sender) => {
                let mut sender = sender.clone();
                sender.ready().await?;
                sender.send_request(request).await
            }
        }
    }
}
