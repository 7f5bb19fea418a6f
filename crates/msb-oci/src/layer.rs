//! One layer: download → verify blob digest → decompress → hash diff_id → EROFS, streamed.

use crate::{LayerStore, OciError};
use bytes::Bytes;
use futures::StreamExt;
use oci_client::errors::DigestError;
use oci_client::manifest::OciDescriptor;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// A layer that is in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledLayer {
    /// Digest of the uncompressed tar (names the EROFS file).
    pub diff_id: String,
    /// Digest of the blob as stored on the registry.
    pub blob_digest: String,
    /// The blob's media type.
    pub media_type: String,
    /// Size of the blob on the registry.
    pub compressed_size: u64,
    /// Size of the EROFS image.
    pub erofs_size: u64,
    /// True when it was already in the store.
    pub cached: bool,
}

/// Progress of layer downloads, for progress bars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerEvent {
    /// The manifest is known: how many layers and how many bytes they are on the registry.
    Resolved {
        /// Number of layers.
        layers: usize,
        /// Sum of the layer blob sizes.
        bytes: u64,
    },
    /// A download started (`size` from the manifest).
    Started {
        /// Blob digest.
        digest: String,
        /// Expected bytes.
        size: u64,
    },
    /// More bytes arrived.
    Progress {
        /// Blob digest.
        digest: String,
        /// Bytes received in this chunk.
        bytes: u64,
    },
    /// The layer is in the store.
    Done {
        /// Blob digest.
        digest: String,
        /// True if nothing had to be downloaded.
        cached: bool,
        /// The blob's size.
        size: u64,
    },
}

#[derive(Debug, Clone, Copy)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

fn compression(media_type: &str) -> Option<Compression> {
    let t = media_type.trim();
    if t.ends_with("+gzip") || t.ends_with(".tar.gzip") {
        Some(Compression::Gzip)
    } else if t.ends_with("+zstd") {
        Some(Compression::Zstd)
    } else if t.ends_with(".tar") || t.ends_with("layer.v1.tar") {
        Some(Compression::None)
    } else {
        None
    }
}

/// Shared context of one image pull.
pub(crate) struct Fetch<'a> {
    pub client: &'a Client,
    pub image: &'a Reference,
    pub store: &'a LayerStore,
    pub events: &'a (dyn Fn(LayerEvent) + Send + Sync),
    /// Fetch stored layers again.
    pub refetch: bool,
}

impl Fetch<'_> {
    fn bad_layer(&self, digest: &str, reason: String) -> OciError {
        OciError::BadLayer {
            reference: self.image.whole(),
            digest: digest.to_string(),
            reason,
        }
    }

    /// The blob stream verifies the digest itself and reports a mismatch as a stream error.
    fn stream_error(&self, digest: &str, e: std::io::Error) -> OciError {
        if let Some(DigestError::VerificationError { expected, actual }) =
            e.get_ref().and_then(|inner| inner.downcast_ref::<DigestError>())
        {
            return OciError::DigestMismatch {
                reference: self.image.whole(),
                what: format!("layer {digest}"),
                expected: expected.clone(),
                actual: actual.clone(),
            };
        }
        // The top error is often just "error decoding response body"; the cause says why.
        let mut reason = format!("download interrupted: {e}");
        let mut cause = e.get_ref().and_then(|inner| inner.source());
        while let Some(c) = cause {
            reason = format!("{reason}: {c}");
            cause = c.source();
        }
        self.bad_layer(digest, reason)
    }

    /// Puts the layer `desc` (whose uncompressed digest must be `diff_id`) into the store.
    pub async fn layer(&self, desc: &OciDescriptor, diff_id: &str) -> Result<PulledLayer, OciError> {
        let done = |cached, erofs_size| PulledLayer {
            diff_id: diff_id.to_string(),
            blob_digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
            compressed_size: desc.size.max(0) as u64,
            erofs_size,
            cached,
        };
        let dest = self.store.layer_path(diff_id);
        // A refetched layer replaces the stored file by rename: a VM that has the old one
        // open keeps reading it.
        if let Some(meta) = std::fs::metadata(&dest).ok().filter(|_| !self.refetch) {
            (self.events)(LayerEvent::Done {
                digest: desc.digest.clone(),
                cached: true,
                size: desc.size.max(0) as u64,
            });
            return Ok(done(true, meta.len()));
        }
        let kind = compression(&desc.media_type).ok_or_else(|| OciError::UnsupportedMediaType {
            reference: self.image.whole(),
            media_type: desc.media_type.clone(),
        })?;
        let tmp = PartFile(self.store.temp_path(&desc.digest));
        let size = self.download_and_convert(desc, diff_id, kind, &tmp.0).await?;
        std::fs::rename(&tmp.0, &dest).map_err(OciError::io(format!("moving layer into {}", dest.display())))?;
        (self.events)(LayerEvent::Done {
            digest: desc.digest.clone(),
            cached: false,
            size: desc.size.max(0) as u64,
        });
        Ok(done(false, size))
    }

    async fn download_and_convert(
        &self,
        desc: &OciDescriptor,
        diff_id: &str,
        kind: Compression,
        tmp: &Path,
    ) -> Result<u64, OciError> {
        let registry = |source| OciError::registry(&self.image.whole(), source);
        let mut blob = self.client.pull_blob_stream(self.image, desc).await.map_err(registry)?;
        (self.events)(LayerEvent::Started {
            digest: desc.digest.clone(),
            size: desc.size.max(0) as u64,
        });
        // Created here, before the converter runs, so that the `PartFile` guard of a failed or
        // cancelled pull always finds (and removes) it; the converter writes through the handle.
        let file = std::fs::File::create(tmp).map_err(OciError::io(format!("creating {}", tmp.display())))?;
        let (tx, rx) = mpsc::channel::<Bytes>(32);
        let tmp_name = tmp.display().to_string();
        let converter = tokio::task::spawn_blocking(move || convert(rx, kind, file, &tmp_name));
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut sender = Some(tx);
        while let Some(chunk) = blob.stream.next().await {
            let chunk = chunk.map_err(|e| self.stream_error(&desc.digest, e))?;
            hasher.update(&chunk);
            received += chunk.len() as u64;
            (self.events)(LayerEvent::Progress {
                digest: desc.digest.clone(),
                bytes: chunk.len() as u64,
            });
            // If the converter gave up, keep hashing so a corrupt download is reported as such.
            if let Some(tx) = &sender {
                if tx.send(chunk).await.is_err() {
                    sender = None;
                }
            }
        }
        drop(sender);
        let converted = converter
            .await
            .map_err(|e| self.bad_layer(&desc.digest, format!("converter panicked: {e}")))?;
        if received != desc.size.max(0) as u64 {
            return Err(self.bad_layer(
                &desc.digest,
                format!("the manifest says {} bytes, the registry sent {received}", desc.size),
            ));
        }
        let actual = format!("sha256:{:x}", hasher.finalize());
        if actual != desc.digest {
            return Err(OciError::DigestMismatch {
                reference: self.image.whole(),
                what: format!("layer {}", desc.digest),
                expected: desc.digest.clone(),
                actual,
            });
        }
        let (uncompressed, size) = converted.map_err(|reason| self.bad_layer(&desc.digest, reason))?;
        if uncompressed != diff_id {
            return Err(OciError::DigestMismatch {
                reference: self.image.whole(),
                what: format!("uncompressed layer {}", desc.digest),
                expected: diff_id.to_string(),
                actual: uncompressed,
            });
        }
        Ok(size)
    }
}

/// Blocking side: decompress the byte chunks, hash them, and write the EROFS image.
/// Returns (diff_id, image size).
fn convert(
    rx: mpsc::Receiver<Bytes>,
    kind: Compression,
    file: std::fs::File,
    tmp: &str,
) -> Result<(String, u64), String> {
    let raw = ChannelReader {
        rx,
        current: Bytes::new(),
    };
    let decompressed: Box<dyn Read + Send> = match kind {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Zstd => Box::new(zstd::Decoder::new(raw).map_err(|e| format!("zstd: {e}"))?),
    };
    // Decompression runs on its own thread so that it overlaps with hashing and writing:
    // on a big layer they are the pull's critical path.
    let (tx, inflated) = mpsc::channel::<Bytes>(16);
    let inflater = std::thread::Builder::new()
        .name("layer-inflate".into())
        .spawn(move || pump_chunks(decompressed, tx))
        .map_err(|e| format!("starting the decompressor: {e}"))?;
    let reader = ChannelReader {
        rx: inflated,
        current: Bytes::new(),
    };
    let converted = write_layer(reader, file, tmp);
    // `reader` is gone, so a decompressor still sending has stopped by now.
    match inflater.join() {
        Ok(Err(e)) => Err(format!("decompressing: {e}")),
        Err(_) => Err("the decompressor panicked".into()),
        Ok(Ok(())) => converted,
    }
}

/// Reads `source` to the end in chunks and sends them on; stops quietly if nobody listens.
fn pump_chunks(mut source: Box<dyn Read + Send>, tx: mpsc::Sender<Bytes>) -> std::io::Result<()> {
    loop {
        let mut buf = vec![0u8; 256 * 1024];
        let n = match source.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.truncate(n);
        if tx.blocking_send(Bytes::from(buf)).is_err() {
            return Ok(());
        }
    }
}

/// Hashes the tar stream (the diff_id) while the EROFS writer consumes it.
fn write_layer(source: ChannelReader, file: std::fs::File, tmp: &str) -> Result<(String, u64), String> {
    let mut tar = HashingReader {
        inner: source,
        hasher: Sha256::new(),
    };
    let (writer, _stats) = msb_erofs::write_from_tar_into(&mut tar, BufWriter::new(file), &Default::default())
        .map_err(|e| format!("converting to EROFS: {e}"))?;
    // The diff_id covers every byte of the stream, including padding after the tar end.
    std::io::copy(&mut tar, &mut std::io::sink()).map_err(|e| format!("decompressing: {e}"))?;
    let file = writer.into_inner().map_err(|e| format!("writing {tmp}: {e}"))?;
    file.sync_all().map_err(|e| format!("syncing {tmp}: {e}"))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((format!("sha256:{:x}", tar.hasher.finalize()), size))
}

/// A scratch layer file that is deleted when dropped (error, or a pull cancelled mid-way)
/// unless it was renamed into the store first.
struct PartFile(PathBuf);

impl Drop for PartFile {
    fn drop(&mut self) {
        // After a successful rename the path is gone and this is a no-op.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `Read` over chunks arriving on a channel (the async download feeding blocking code).
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Hashes what passes through.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_map_to_compressions() {
        assert!(matches!(
            compression("application/vnd.oci.image.layer.v1.tar+gzip"),
            Some(Compression::Gzip)
        ));
        assert!(matches!(
            compression("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        ));
        assert!(matches!(
            compression("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Compression::Zstd)
        ));
        assert!(matches!(
            compression("application/vnd.oci.image.layer.v1.tar"),
            Some(Compression::None)
        ));
        assert!(compression("application/vnd.cncf.helm.chart.content.v1.tar+bz2").is_none());
    }
}
