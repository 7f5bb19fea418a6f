//! OCI image layouts driven through `umoci`, and pushing them with `skopeo`.

use super::http;
use crate::util;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Media type of an OCI image index.
pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).
#[derive(Debug, Clone)]
pub struct Layout {
    /// The layout directory.
    pub dir: PathBuf,
}

impl Layout {
    /// Creates an empty layout at `dir` (`umoci init`).
    pub fn init(dir: &Path) -> Result<Self> {
        util::run(Command::new("umoci").arg("init").arg("--layout").arg(dir))?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// `DIR:TAG`, the image reference umoci takes.
    fn image(&self, tag: &str) -> String {
        format!("{}:{tag}", self.dir.display())
    }

    fn umoci(&self, verb: &str, tag: &str) -> Command {
        let mut cmd = Command::new("umoci");
        cmd.args([verb, "--image", &self.image(tag)]);
        cmd
    }

    /// Creates an empty image (no layers) tagged `tag` (`umoci new`).
    pub fn new_image(&self, tag: &str) -> Result<()> {
        util::run(&mut self.umoci("new", tag))
    }

    /// Unpacks `tag` into the runtime bundle `bundle` (`umoci unpack`).
    pub fn unpack(&self, tag: &str, bundle: &Path) -> Result<()> {
        util::run(self.umoci("unpack", tag).arg(bundle))
    }

    /// Adds the changes made in `bundle/rootfs` as a new layer (`umoci repack`); the bundle
    /// is refreshed so it can be changed and repacked again.
    pub fn repack(&self, tag: &str, bundle: &Path, created_by: &str) -> Result<()> {
        util::run(
            self.umoci("repack", tag)
                .args(["--refresh-bundle", "--history.created_by", created_by])
                .arg(bundle),
        )
    }

    /// Appends the uncompressed tar `tar` verbatim as a layer (`umoci raw add-layer`).
    pub fn add_layer(&self, tag: &str, tar: &Path, created_by: &str) -> Result<()> {
        let mut cmd = Command::new("umoci");
        cmd.args(["raw", "add-layer", "--image", &self.image(tag)])
            .args(["--history.created_by", created_by])
            .arg(tar);
        util::run(&mut cmd)
    }

    /// Changes the image config of `tag` (`umoci config ARGS`), without a history entry.
    pub fn config(&self, tag: &str, args: &[String]) -> Result<()> {
        util::run(self.umoci("config", tag).arg("--no-history").args(args))
    }

    /// Removes unreferenced blobs (`umoci gc`).
    pub fn gc(&self) -> Result<()> {
        util::run(Command::new("umoci").arg("gc").arg("--layout").arg(&self.dir))
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    fn index(&self) -> Result<Value> {
        let path = self.index_path();
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
    }

    fn write_index(&self, index: &Value) -> Result<()> {
        util::install_if_changed(&serde_json::to_vec(index)?, &self.index_path())
    }

    /// The descriptor `index.json` holds for `tag`.
    pub fn descriptor(&self, tag: &str) -> Result<Value> {
        let index = self.index()?;
        let found = refs(&index).find(|d| d["annotations"][REF_NAME] == tag).cloned();
        found.with_context(|| format!("no tag {tag:?} in {}", self.index_path().display()))
    }

    /// Drops every tag but those in `keep` from `index.json` (blobs stay until `gc`).
    pub fn keep_only(&self, keep: &[&str]) -> Result<()> {
        let mut index = self.index()?;
        let kept: Vec<Value> = refs(&index)
            .filter(|d| keep.iter().any(|t| d["annotations"][REF_NAME] == *t))
            .cloned()
            .collect();
        index["manifests"] = Value::Array(kept);
        self.write_index(&index)
    }

    /// Reads the blob `digest` ("sha256:HEX").
    pub fn blob(&self, digest: &str) -> Result<Vec<u8>> {
        let hex = digest
            .strip_prefix("sha256:")
            .with_context(|| format!("unsupported digest {digest}"))?;
        let path = self.dir.join("blobs/sha256").join(hex);
        std::fs::read(&path).with_context(|| format!("reading blob {}", path.display()))
    }

    /// Parses the JSON blob a descriptor points at.
    pub fn json_blob(&self, desc: &Value) -> Result<Value> {
        let digest = desc["digest"].as_str().context("descriptor without digest")?;
        serde_json::from_slice(&self.blob(digest)?)
            .with_context(|| format!("parsing blob {digest} in {}", self.dir.display()))
    }

    /// Tags an image index listing `(tag, platform)` manifests of this layout as `tag`.
    pub fn write_platform_index(&self, tag: &str, members: &[(&str, Value)]) -> Result<()> {
        let mut manifests = Vec::new();
        for (member, platform) in members {
            let mut desc = self.descriptor(member)?;
            desc.as_object_mut()
                .context("descriptor is not an object")?
                .remove("annotations");
            desc["platform"] = platform.clone();
            manifests.push(desc);
        }
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": manifests,
        }))?;
        let digest = self.put_blob(&body)?;
        let mut index = self.index()?;
        let mut entries: Vec<Value> = refs(&index)
            .filter(|d| d["annotations"][REF_NAME] != tag)
            .cloned()
            .collect();
        entries.push(json!({
            "mediaType": INDEX_TYPE, "digest": digest, "size": body.len(),
            "annotations": { REF_NAME: tag },
        }));
        index["manifests"] = Value::Array(entries);
        self.write_index(&index)
    }

    /// Tags as `new_tag` a copy of image `tag` whose gzip layers are stored as `to` instead
    /// (same content, so same diff_ids and config), for tests of every layer encoding.
    pub fn recompressed(&self, tag: &str, new_tag: &str, to: Encoding) -> Result<()> {
        let mut manifest = self.json_blob(&self.descriptor(tag)?)?;
        let layers = manifest["layers"].as_array_mut().context("manifest without layers")?;
        for layer in layers.iter_mut() {
            let digest = layer["digest"].as_str().context("layer without digest")?.to_string();
            let mut tar = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&self.blob(&digest)?[..]), &mut tar)
                .with_context(|| format!("gunzipping layer {digest}"))?;
            let (blob, media_type) = match to {
                Encoding::Zstd => (
                    zstd::encode_all(&tar[..], 3).context("zstd")?,
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                ),
                Encoding::Plain => (tar, "application/vnd.oci.image.layer.v1.tar"),
            };
            let digest = self.put_blob(&blob)?;
            *layer = json!({"mediaType": media_type, "digest": digest, "size": blob.len()});
        }
        let body = serde_json::to_vec(&manifest)?;
        let digest = self.put_blob(&body)?;
        let mut index = self.index()?;
        let mut entries: Vec<Value> = refs(&index)
            .filter(|d| d["annotations"][REF_NAME] != new_tag)
            .cloned()
            .collect();
        entries.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
            "size": body.len(), "annotations": { REF_NAME: new_tag },
        }));
        index["manifests"] = Value::Array(entries);
        self.write_index(&index)
    }

    /// Stores `bytes` as a blob and returns its digest.
    fn put_blob(&self, bytes: &[u8]) -> Result<String> {
        let digest = format!("sha256:{}", hex(&Sha256::digest(bytes)));
        util::install_if_changed(bytes, &self.dir.join("blobs/sha256").join(&digest[7..]))?;
        Ok(digest)
    }

    /// Bytes of the manifest (or index) for `tag`, its config and its layers, counting blobs
    /// shared between an index's members once per member.
    pub fn total_size(&self, desc: &Value) -> Result<u64> {
        let own = desc["size"].as_u64().unwrap_or(0);
        let doc = self.json_blob(desc)?;
        if desc["mediaType"] == INDEX_TYPE {
            let mut total = own;
            for m in doc["manifests"].as_array().into_iter().flatten() {
                total += self.total_size(m)?;
            }
            return Ok(total);
        }
        let layers = doc["layers"].as_array().into_iter().flatten();
        Ok(own + doc["config"]["size"].as_u64().unwrap_or(0) + layers.filter_map(|l| l["size"].as_u64()).sum::<u64>())
    }
}

/// How a layer blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// zstd-compressed tar.
    Zstd,
    /// The tar as it is.
    Plain,
}

fn refs(index: &Value) -> impl Iterator<Item = &Value> {
    index["manifests"].as_array().into_iter().flatten()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest the registry at `addr` holds for `repo:tag`, if any.
pub fn remote_digest(addr: &str, repo: &str, tag: &str) -> Result<Option<String>> {
    let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
                  application/vnd.docker.distribution.manifest.v2+json, \
                  application/vnd.docker.distribution.manifest.list.v2+json";
    let path = format!("/v2/{repo}/manifests/{tag}");
    let resp = http::request(addr, "HEAD", &path, &[("Accept", accept)], &[])?;
    match resp.status {
        200 => Ok(resp.header("docker-content-digest").map(str::to_string)),
        404 => Ok(None),
        other => bail!(
            "HEAD http://{addr}{path} answered {other}: {}",
            String::from_utf8_lossy(&resp.body)
        ),
    }
}

/// Pushes `tag` of `layout` to `addr/repo:tag` unless the registry already has that exact
/// digest; returns whether it pushed.
pub fn push(layout: &Layout, tag: &str, addr: &str, repo: &str) -> Result<bool> {
    let desc = layout.descriptor(tag)?;
    let local = desc["digest"].as_str().context("descriptor without digest")?;
    if remote_digest(addr, repo, tag)?.as_deref() == Some(local) {
        return Ok(false);
    }
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false"]);
    if desc["mediaType"] == INDEX_TYPE {
        cmd.arg("--all");
    }
    cmd.arg(format!("oci:{}", layout.image(tag)))
        .arg(format!("docker://{addr}/{repo}:{tag}"));
    util::output(&mut cmd).with_context(|| format!("pushing {repo}:{tag} to {addr}"))?;
    match remote_digest(addr, repo, tag)? {
        Some(d) if d == local => Ok(true),
        other => bail!("after pushing {repo}:{tag} the registry has {other:?}, expected {local}"),
    }
}
