//! Copies between the host and a running sandbox, of files and whole trees alike: the side
//! that has the files packs them as a tar ([`msb_protocol::tree`]) and the other unpacks
//! it while it streams. On the host, what comes out of the guest is unpacked contained in
//! the one target named ([`msb_rootfs::unpack_contained`]).

use crate::fs::{FsReadStream, FsWriteSink, SandboxFs};
use crate::{MicrosandboxError, MicrosandboxResult};
use msb_protocol::fs::check_path;
use msb_protocol::tree::{pack, PackOptions};
use msb_protocol::{FsErrorKind, FsFailure, FsOp};
use msb_rootfs::{unpack_contained, UnpackOptions, UnpackStats};
use std::io::{self, Read, Write};
use std::path::Path;
use tokio::sync::mpsc;

/// How much of a tar is sent per write.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the packing or unpacking thread and the channel.
const AHEAD: usize = 4;

/// How a copy is made. Modes, symlinks (as symlinks, never followed), empty directories
/// and mtimes are always kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// Keep owners (uid, gid) as the source has them (`msb cp -a`); else the copies belong
    /// to the receiving user.
    pub keep_owners: bool,
    /// Copy a file met again under another name as a hard link, not a second file.
    pub hard_links: bool,
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Files, directories and links copied.
    pub entries: u64,
    /// Bytes of file contents.
    pub bytes: u64,
    /// What was left out and why it could not be copied (sockets; devices and FIFOs coming
    /// out of a guest), by path.
    pub skipped: Vec<String>,
}

impl SandboxFs<'_> {
    /// Copies host file or tree `host` to `guest`, which becomes its copy (missing parents
    /// are made; a directory there is merged into).
    pub async fn copy_from_host(&self, host: impl AsRef<Path>, guest: &str) -> MicrosandboxResult<CopyReport> {
        self.copy_from_host_with(host, guest, CopyOptions::default()).await
    }

    /// [`copy_from_host`](Self::copy_from_host) with options.
    pub async fn copy_from_host_with(
        &self,
        host: impl AsRef<Path>,
        guest: &str,
        opts: CopyOptions,
    ) -> MicrosandboxResult<CopyReport> {
        let host = host.as_ref().to_path_buf();
        let (dir, name) = split_guest(guest)?;
        std::fs::symlink_metadata(&host).map_err(MicrosandboxError::io(format!("reading {}", host.display())))?;
        let mut sink = self.write_tar(&dir, opts.keep_owners).await?;
        let (tx, mut rx) = mpsc::channel(AHEAD);
        let packer = tokio::task::spawn_blocking(move || {
            let mut out = ChannelWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            };
            pack(
                &host,
                &name,
                PackOptions {
                    hard_links: opts.hard_links,
                },
                &mut out,
            )
            .map_err(MicrosandboxError::io(format!("packing {}", host.display())))
        });
        let sent = async {
            while let Some(chunk) = rx.recv().await {
                sink.write(&chunk).await?;
            }
            Ok::<_, MicrosandboxError>(())
        }
        .await;
        // A failed send stops the packer (its channel is gone); the guest's reason wins.
        drop(rx);
        let packed = packer
            .await
            .map_err(|e| MicrosandboxError::io("packing")(io::Error::other(e)))?;
        sent?;
        let stats = packed?;
        sink.close().await?;
        Ok(CopyReport {
            entries: stats.entries,
            bytes: stats.bytes,
            skipped: stats.skipped,
        })
    }

    /// Copies guest file or tree `guest` to `host`, which becomes its copy (its parent must
    /// exist; a directory there is merged into). Nothing is written outside `host`,
    /// whatever names and links the guest planted.
    pub async fn copy_to_host(&self, guest: &str, host: impl AsRef<Path>) -> MicrosandboxResult<CopyReport> {
        self.copy_to_host_with(guest, host, CopyOptions::default()).await
    }

    /// [`copy_to_host`](Self::copy_to_host) with options.
    pub async fn copy_to_host_with(
        &self,
        guest: &str,
        host: impl AsRef<Path>,
        opts: CopyOptions,
    ) -> MicrosandboxResult<CopyReport> {
        let host = host.as_ref().to_path_buf();
        let mut stream = self.read_tree(guest, ".", opts.hard_links).await?;
        let (tx, rx) = mpsc::channel::<Vec<u8>>(AHEAD);
        let target = host.clone();
        let unpacker = tokio::task::spawn_blocking(move || {
            let tar = ChannelReader {
                rx,
                cur: Vec::new(),
                at: 0,
            };
            unpack_contained(
                &target,
                tar,
                UnpackOptions {
                    owners: opts.keep_owners,
                },
            )
        });
        let received = async {
            while let Some(chunk) = stream.recv().await? {
                if tx.send(chunk).await.is_err() {
                    break; // the unpacker stopped: its error says why
                }
            }
            Ok::<_, MicrosandboxError>(())
        }
        .await;
        drop(tx);
        let unpacked = unpacker
            .await
            .map_err(|e| MicrosandboxError::io("unpacking")(io::Error::other(e)))?;
        received?;
        unpacked_report(&host, unpacked)
    }

    /// File or tree `path` as a tar stream whose entries are named below its last name (as
    /// `docker cp NAME:PATH -` gives it).
    pub async fn read_tar(&self, path: &str) -> MicrosandboxResult<FsReadStream> {
        let (_, name) = split_guest(path)?;
        self.read_tree(path, &name, false).await
    }

    /// A sink for a tar stream that is unpacked into guest directory `dir` (made if
    /// missing) as it arrives; `keep_owners` keeps the owners the tar names.
    pub async fn write_tar(&self, dir: &str, keep_owners: bool) -> MicrosandboxResult<FsWriteSink> {
        let op = FsOp::WriteTree {
            dir: dir.to_string(),
            owners: keep_owners,
        };
        self.write_op(op).await
    }

    async fn read_tree(&self, path: &str, root: &str, hard_links: bool) -> MicrosandboxResult<FsReadStream> {
        let op = FsOp::ReadTree {
            path: path.to_string(),
            root: root.to_string(),
            hard_links,
        };
        self.read_op(op).await
    }
}

/// What an unpack into host path `target` did, as a copy's report.
pub(crate) fn unpacked_report(target: &Path, unpacked: io::Result<UnpackStats>) -> MicrosandboxResult<CopyReport> {
    let stats = unpacked
        .map_err(|e| MicrosandboxError::Fs(FsFailure::of_io(&format!("copying to {}", target.display()), &e)))?;
    Ok(CopyReport {
        entries: stats.files + stats.dirs + stats.symlinks + stats.hard_links,
        bytes: stats.bytes,
        skipped: stats.skipped,
    })
}

/// The directory and last name of guest path `path`.
pub(crate) fn split_guest(path: &str) -> MicrosandboxResult<(String, String)> {
    check_path(path).map_err(MicrosandboxError::Fs)?;
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        // The guest's root itself: a copy into it merges, entries relative to it.
        return Ok(("/".to_string(), ".".to_string()));
    }
    let (dir, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
    if name.is_empty() || name == "." || name == ".." {
        return Err(MicrosandboxError::Fs(FsFailure {
            kind: FsErrorKind::InvalidPath,
            message: format!("{path:?}: names no file or directory to copy"),
        }));
    }
    let dir = if dir.is_empty() { "/" } else { dir };
    Ok((dir.to_string(), name.to_string()))
}

/// The sending end of a packer: whole chunks into a channel.
struct ChannelWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the copy was abandoned"))
    }
}

/// The receiving end of an unpacker: chunks from a channel, read as one stream.
struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.cur.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.cur = chunk;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.at);
        buf[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_split_into_directory_and_name() {
        let split = |p: &str| split_guest(p).map_err(|e| e.to_string());
        assert_eq!(split("/a/b").unwrap(), ("/a".into(), "b".into()));
        assert_eq!(split("/a/b/").unwrap(), ("/a".into(), "b".into()));
        assert_eq!(split("/top").unwrap(), ("/".into(), "top".into()));
        assert_eq!(split("/").unwrap(), ("/".into(), ".".into()));
        for bad in ["relative", "/a/..", "/a/."] {
            assert!(split(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_channel_carries_a_stream_in_whole_chunks() {
        let (tx, rx) = mpsc::channel(AHEAD);
        let data: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| i as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            let mut w = ChannelWriter { tx, buf: Vec::new() };
            w.write_all(&sent).unwrap();
            w.flush().unwrap();
        });
        let mut got = Vec::new();
        ChannelReader {
            rx,
            cur: Vec::new(),
            at: 0,
        }
        .read_to_end(&mut got)
        .unwrap();
        writer.join().unwrap();
        assert_eq!(got, data);
    }
}
