//! A tiny fake OCI registry for the error paths of `msb pull`: an HTTP/1.1 server on
//! 127.0.0.1 that answers each path with a canned response (status, headers, body), optionally
//! misbehaving (closing early, stalling, sleeping), plus a builder for one-layer images whose
//! digests are right unless a test corrupts one piece on purpose.
//!
//! Only what msb asks for is served: `GET /v2/`, `GET|HEAD /v2/<name>/manifests/<ref>`,
//! `GET /v2/<name>/blobs/<digest>`. Every response carries `Connection: close`, so each
//! request gets a fresh connection and a misbehaving response cannot poison a pooled one.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// OCI media types used by the builder.
pub mod media {
    /// OCI image manifest.
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image config.
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Uncompressed tar layer.
    pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// Gzip-compressed tar layer.
    pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// A tar archive of regular files (`path`, content), mode 0644.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, *content).expect("tar entry");
    }
    builder.into_inner().expect("tar finish")
}

/// `bytes`, gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// How a response is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Headers and the whole body.
    Normal,
    /// Announce the full `Content-Length`, send only this many body bytes, then close.
    CloseAfter(usize),
    /// Wait this long, then answer normally.
    Sleep(Duration),
    /// Announce the full body, send this many bytes, then go silent (connection open) for the
    /// duration before closing.
    StallAfter(usize, Duration),
    /// Answer only once this many requests for the path have arrived (at most 20 s; a
    /// timeout is logged as `HOLD TIMED OUT <path>`).
    HoldUntil(usize),
    /// Answer only once a request for this other path has arrived (same bound and log).
    AwaitRequestFor(String),
}

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Extra headers (`Content-Length` and `Connection` are added).
    pub headers: Vec<(String, String)>,
    /// The body (also what `Content-Length` announces).
    pub body: Vec<u8>,
    /// How it is delivered.
    pub behaviour: Behaviour,
}

impl Response {
    /// `status` with `body` and no extra headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
            behaviour: Behaviour::Normal,
        }
    }

    /// 200 with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Response {
        Response::new(200, body)
    }

    /// An OCI error response (`{"errors":[{"code":…}]}`).
    pub fn oci_error(status: u16, code: &str, message: &str) -> Response {
        let body = json!({"errors": [{"code": code, "message": message}]});
        Response::new(status, body.to_string()).header("Content-Type", "application/json")
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Delivers it with `behaviour`.
    pub fn with(mut self, behaviour: Behaviour) -> Response {
        self.behaviour = behaviour;
        self
    }
}

/// The server; stops accepting when dropped.
#[derive(Debug)]
pub struct FakeRegistry {
    addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Response>>>,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl FakeRegistry {
    /// Starts a server on a free loopback port; it answers `/v2/` and 404s everything else
    /// until routes are added.
    pub fn start() -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fake registry");
        let addr = listener.local_addr().expect("local addr");
        let routes = Arc::new(Mutex::new(HashMap::new()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let registry = FakeRegistry {
            addr,
            routes: routes.clone(),
            log: log.clone(),
            stop: stop.clone(),
        };
        registry.route("/v2/", Response::ok("{}").header("Content-Type", "application/json"));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (routes, log) = (routes.clone(), log.clone());
                std::thread::spawn(move || serve_connection(conn, &routes, &log));
            }
        });
        registry
    }

    /// `127.0.0.1:<port>`, the registry part of image references.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Answers `path` (e.g. `/v2/x/blobs/sha256:…`) with `response` from now on.
    pub fn route(&self, path: &str, response: Response) {
        self.routes.lock().unwrap().insert(path.to_string(), response);
    }

    /// Changes how the response at `path` is delivered.
    pub fn set_behaviour(&self, path: &str, behaviour: Behaviour) {
        let mut routes = self.routes.lock().unwrap();
        routes.get_mut(path).expect("no such route").behaviour = behaviour;
    }

    /// Forgets every route but `/v2/`.
    pub fn clear(&self) {
        self.routes.lock().unwrap().retain(|path, _| path == "/v2/");
    }

    /// Serves `image`: its manifest under its tag and digest, its config and layer blobs
    /// under the digests the manifest names (so a test that edits a digest in the manifest
    /// gets the old bytes served under the new digest).
    pub fn serve(&self, image: &Image) {
        let manifest = image.manifest_bytes();
        let digest = sha256(&manifest);
        let repo = &image.repository;
        let answer = Response::ok(manifest)
            .header("Content-Type", &image.manifest_content_type)
            .header("Docker-Content-Digest", &digest);
        self.route(&format!("/v2/{repo}/manifests/{}", image.tag), answer.clone());
        self.route(&format!("/v2/{repo}/manifests/{digest}"), answer);
        if let Some(config) = image.manifest["config"]["digest"].as_str() {
            self.route(&image.blob_path(config), Response::ok(image.config.clone()));
        }
        let layers = image.manifest["layers"].as_array().cloned().unwrap_or_default();
        for (desc, blob) in layers.iter().zip(&image.layer_blobs) {
            if let Some(d) = desc["digest"].as_str() {
                self.route(&image.blob_path(d), Response::ok(blob.clone()));
            }
        }
    }

    /// The reference `msb pull` takes for `image` on this registry.
    pub fn reference(&self, image: &Image) -> String {
        format!("{}/{}:{}", self.addr(), image.repository, image.tag)
    }

    /// Request lines received so far (`GET /v2/…`).
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads one request, writes the canned response, closes.
fn serve_connection(conn: TcpStream, routes: &Mutex<HashMap<String, Response>>, log: &Mutex<Vec<String>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    // Headers are read (up to the blank line) and ignored; requests have no body.
    let mut header_bytes = 0;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(n) => header_bytes += n,
        }
        if line == "\r\n" || line == "\n" || header_bytes > 64 * 1024 {
            break;
        }
    }
    let request_line = request_line.trim_end().to_string();
    log.lock().unwrap().push(request_line.clone());
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let path = if path == "/v2" { "/v2/" } else { path };
    let response = routes.lock().unwrap().get(path).cloned();
    match response.as_ref().map(|r| &r.behaviour) {
        Some(Behaviour::HoldUntil(n)) => hold_until(*n, path, log),
        Some(Behaviour::AwaitRequestFor(other)) => hold_until(1, other, log),
        _ => {}
    }
    let response = response.unwrap_or_else(|| {
        let code = if path.contains("/manifests/") {
            "MANIFEST_UNKNOWN"
        } else if path.contains("/blobs/") {
            "BLOB_UNKNOWN"
        } else {
            "NOT_FOUND"
        };
        Response::oci_error(404, code, &format!("no route for {path}"))
    });
    let _ = write_response(&conn, method == "HEAD", &response);
    let _ = conn.shutdown(Shutdown::Both);
}

/// Waits until `n` requests for `path` are in the log (20 s at most).
fn hold_until(n: usize, path: &str, log: &Mutex<Vec<String>>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let seen = || log.lock().unwrap().iter().filter(|l| l.contains(path)).count();
    while seen() < n {
        if std::time::Instant::now() > deadline {
            log.lock().unwrap().push(format!("HOLD TIMED OUT {path}"));
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn write_response(mut conn: &TcpStream, head: bool, r: &Response) -> std::io::Result<()> {
    if let Behaviour::Sleep(d) = r.behaviour {
        std::thread::sleep(d);
    }
    let mut out = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    for (name, value) in &r.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        r.body.len()
    ));
    conn.write_all(out.as_bytes())?;
    if head {
        return conn.flush();
    }
    match r.behaviour {
        Behaviour::Normal | Behaviour::Sleep(_) | Behaviour::HoldUntil(_) | Behaviour::AwaitRequestFor(_) => {
            conn.write_all(&r.body)?
        }
        Behaviour::CloseAfter(n) => conn.write_all(&r.body[..n.min(r.body.len())])?,
        Behaviour::StallAfter(n, d) => {
            conn.write_all(&r.body[..n.min(r.body.len())])?;
            conn.flush()?;
            std::thread::sleep(d);
        }
    }
    conn.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// One layer as the builder takes it: the blob as served, its media type, and the digest of
/// its uncompressed content (what the config's `rootfs.diff_ids` lists).
#[derive(Debug, Clone)]
pub struct Layer {
    /// The layer's media type.
    pub media_type: String,
    /// The blob bytes.
    pub blob: Vec<u8>,
    /// Digest of the uncompressed tar.
    pub diff_id: String,
}

impl Layer {
    /// A gzip-compressed tar layer.
    pub fn tar_gz(tar: &[u8]) -> Layer {
        Layer {
            media_type: media::LAYER_GZIP.into(),
            blob: gzip(tar),
            diff_id: sha256(tar),
        }
    }

    /// An uncompressed tar layer.
    pub fn tar(tar: &[u8]) -> Layer {
        Layer {
            media_type: media::LAYER_TAR.into(),
            blob: tar.to_vec(),
            diff_id: sha256(tar),
        }
    }

    /// Any bytes with any media type and diff_id.
    pub fn raw(media_type: &str, blob: Vec<u8>, diff_id: String) -> Layer {
        Layer {
            media_type: media_type.into(),
            blob,
            diff_id,
        }
    }
}

/// Builds a correct image; corrupt it afterwards through [`Image`]'s public fields.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    repository: String,
    tag: String,
    layers: Vec<Layer>,
    manifest_media_type: String,
    config_media_type: String,
    os: String,
    architecture: String,
}

impl ImageBuilder {
    /// An image `repository:tag` for this host's platform, no layers yet.
    pub fn new(repository: &str, tag: &str) -> ImageBuilder {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        ImageBuilder {
            repository: repository.into(),
            tag: tag.into(),
            layers: Vec::new(),
            manifest_media_type: media::MANIFEST.into(),
            config_media_type: media::CONFIG.into(),
            os: "linux".into(),
            architecture: architecture.into(),
        }
    }

    /// Adds a layer (bottom first).
    pub fn layer(mut self, layer: Layer) -> ImageBuilder {
        self.layers.push(layer);
        self
    }

    /// The manifest's `mediaType` (and the `Content-Type` it is served with).
    pub fn manifest_media_type(mut self, media_type: &str) -> ImageBuilder {
        self.manifest_media_type = media_type.into();
        self
    }

    /// The config descriptor's media type.
    pub fn config_media_type(mut self, media_type: &str) -> ImageBuilder {
        self.config_media_type = media_type.into();
        self
    }

    /// The image with digests and sizes computed.
    pub fn build(self) -> Image {
        let config = json!({
            "architecture": self.architecture,
            "os": self.os,
            "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": self.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        });
        let config = serde_json::to_vec(&config).expect("config json");
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|l| json!({"mediaType": l.media_type, "digest": sha256(&l.blob), "size": l.blob.len()}))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": self.manifest_media_type,
            "config": {"mediaType": self.config_media_type, "digest": sha256(&config), "size": config.len()},
            "layers": layers,
        });
        Image {
            repository: self.repository,
            tag: self.tag,
            manifest,
            manifest_content_type: self.manifest_media_type,
            config,
            layer_blobs: self.layers.into_iter().map(|l| l.blob).collect(),
        }
    }
}

/// An image as the fake registry serves it. Fields are public so a test can corrupt exactly
/// one piece; [`FakeRegistry::serve`] must be called again afterwards.
#[derive(Debug, Clone)]
pub struct Image {
    /// Repository (`test/img`).
    pub repository: String,
    /// Tag.
    pub tag: String,
    /// The manifest; the bytes served are this, serialised (its own digest is computed).
    pub manifest: Value,
    /// `Content-Type` of the manifest response.
    pub manifest_content_type: String,
    /// The config blob, served under the manifest's config digest.
    pub config: Vec<u8>,
    /// Layer blobs by index, served under the manifest's layer digests.
    pub layer_blobs: Vec<Vec<u8>>,
}

impl Image {
    /// The serialised manifest.
    pub fn manifest_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.manifest).expect("manifest json")
    }

    /// Digest of layer `i` as the manifest names it.
    pub fn layer_digest(&self, i: usize) -> String {
        self.manifest["layers"][i]["digest"]
            .as_str()
            .expect("layer digest")
            .to_string()
    }

    /// `/v2/<repo>/blobs/<digest>`.
    pub fn blob_path(&self, digest: &str) -> String {
        format!("/v2/{}/blobs/{digest}", self.repository)
    }

    /// Edits the config JSON and re-points the manifest at the new bytes (digest, size).
    pub fn edit_config(&mut self, edit: impl FnOnce(&mut Value)) {
        let mut config: Value = serde_json::from_slice(&self.config).expect("config json");
        edit(&mut config);
        self.config = serde_json::to_vec(&config).expect("config json");
        self.manifest["config"]["digest"] = json!(sha256(&self.config));
        self.manifest["config"]["size"] = json!(self.config.len());
    }
}
