//! Files of a running sandbox: `sandbox.fs()` reads, writes, lists and changes them through
//! the guest agent, streamed under flow control, as root or as a given user.

use crate::{MicrosandboxError, MicrosandboxResult, Sandbox};
use msb_protocol::client::{AgentClient, ClientError};
use msb_protocol::fs_client::{FsReader, FsWatch, FsWriter};
use msb_protocol::{FsErrorKind, FsOp, FsReply, FsRequest};

pub use msb_protocol::{FsEntry, FsEvent, FsEventKind, FsFailure, FsKind};

/// File operations on a running sandbox (see [`Sandbox::fs`]).
#[derive(Debug, Clone)]
pub struct SandboxFs<'a> {
    client: &'a AgentClient,
    user: Option<String>,
}

impl Sandbox {
    /// Its files (it must be running), acted on as root.
    pub fn fs(&self) -> SandboxFs<'_> {
        SandboxFs {
            client: self.client(),
            user: None,
        }
    }
}

impl<'a> SandboxFs<'a> {
    /// The same operations, as `user` (`uid[:gid]` or `name[:group]` of the guest): files it
    /// creates are its own, and it is refused what it may not do.
    pub fn as_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    async fn call(&self, op: FsOp) -> MicrosandboxResult<FsReply> {
        let req = FsRequest {
            op,
            user: self.user.clone(),
        };
        self.client.fs(req).await.map_err(fs_error)
    }

    /// The whole contents of file `path`.
    pub async fn read(&self, path: &str) -> MicrosandboxResult<Vec<u8>> {
        let mut stream = self.read_stream(path).await?;
        let mut all = Vec::new();
        while let Some(chunk) = stream.recv().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    /// The contents of file `path` as text (UTF-8).
    pub async fn read_to_string(&self, path: &str) -> MicrosandboxResult<String> {
        String::from_utf8(self.read(path).await?).map_err(|_| {
            MicrosandboxError::Fs(FsFailure {
                kind: FsErrorKind::Other,
                message: format!("{path}: not UTF-8 text"),
            })
        })
    }

    /// File `path` chunk by chunk, as the guest reads it.
    pub async fn read_stream(&self, path: &str) -> MicrosandboxResult<FsReadStream> {
        self.read_op(FsOp::Read { path: path.to_string() }).await
    }

    /// Starts an operation whose data comes out of the guest.
    pub(crate) async fn read_op(&self, op: FsOp) -> MicrosandboxResult<FsReadStream> {
        let reader = self.client.fs_read(op, self.user.clone()).await?;
        Ok(FsReadStream { reader })
    }

    /// Starts an operation whose data goes into the guest.
    pub(crate) async fn write_op(&self, op: FsOp) -> MicrosandboxResult<FsWriteSink> {
        let writer = self.client.fs_write(op, self.user.clone()).await?;
        Ok(FsWriteSink { writer })
    }

    /// Creates or replaces file `path` (and its missing parent directories) with `data`.
    pub async fn write(&self, path: &str, data: impl AsRef<[u8]>) -> MicrosandboxResult<()> {
        let mut sink = self.write_stream(path, None).await?;
        sink.write(data.as_ref()).await?;
        sink.close().await
    }

    /// Creates or replaces file `path` (and its missing parents); a new file gets `mode`
    /// (default 0644). Its contents go through the returned sink.
    pub async fn write_stream(&self, path: &str, mode: Option<u32>) -> MicrosandboxResult<FsWriteSink> {
        let op = FsOp::Write {
            path: path.to_string(),
            mode,
            parents: true,
        };
        self.write_op(op).await
    }

    /// The entries of directory `path`, sorted by name.
    pub async fn list(&self, path: &str) -> MicrosandboxResult<Vec<FsEntry>> {
        match self.call(FsOp::List { path: path.into() }).await? {
            FsReply::Entries(entries) => Ok(entries),
            other => Err(unexpected(other)),
        }
    }

    /// The entry at `path` itself (a symlink is not followed).
    pub async fn stat(&self, path: &str) -> MicrosandboxResult<FsEntry> {
        match self.call(FsOp::Stat { path: path.into() }).await? {
            FsReply::Entry(entry) => Ok(entry),
            other => Err(unexpected(other)),
        }
    }

    /// Whether anything is at `path`. Only "not found" is `false`; any other failure (no
    /// permission to look, a file where a directory should be …) is an error.
    pub async fn exists(&self, path: &str) -> MicrosandboxResult<bool> {
        match self.stat(path).await {
            Ok(_) => Ok(true),
            Err(MicrosandboxError::Fs(FsFailure {
                kind: FsErrorKind::NotFound,
                ..
            })) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates directory `path` and its missing parents (`mkdir -p`, mode 0755).
    pub async fn mkdir(&self, path: &str) -> MicrosandboxResult<()> {
        let op = FsOp::Mkdir {
            path: path.into(),
            mode: None,
            parents: true,
        };
        self.call(op).await.map(drop)
    }

    /// Removes a file, symlink or other non-directory.
    pub async fn remove(&self, path: &str) -> MicrosandboxResult<()> {
        self.call(FsOp::Remove { path: path.into() }).await.map(drop)
    }

    /// Removes directory `path` and everything below it.
    pub async fn remove_dir(&self, path: &str) -> MicrosandboxResult<()> {
        self.call(FsOp::RemoveDir { path: path.into() }).await.map(drop)
    }

    /// Renames `from` to `to`.
    pub async fn rename(&self, from: &str, to: &str) -> MicrosandboxResult<()> {
        let op = FsOp::Rename {
            from: from.into(),
            to: to.into(),
        };
        self.call(op).await.map(drop)
    }

    /// Copies file or tree `from` to `to` (which must not exist) inside the guest.
    pub async fn copy(&self, from: &str, to: &str) -> MicrosandboxResult<()> {
        let op = FsOp::Copy {
            from: from.into(),
            to: to.into(),
        };
        self.call(op).await.map(drop)
    }

    /// Sets the permission bits of `path`.
    pub async fn chmod(&self, path: &str, mode: u32) -> MicrosandboxResult<()> {
        let op = FsOp::Chmod {
            path: path.into(),
            mode,
        };
        self.call(op).await.map(drop)
    }

    /// The target of symlink `path`.
    pub async fn read_link(&self, path: &str) -> MicrosandboxResult<String> {
        match self.call(FsOp::ReadLink { path: path.into() }).await? {
            FsReply::Target(target) => Ok(target),
            other => Err(unexpected(other)),
        }
    }

    /// Creates symlink `link` pointing at `target`.
    pub async fn symlink(&self, target: &str, link: &str) -> MicrosandboxResult<()> {
        let op = FsOp::Symlink {
            target: target.into(),
            link: link.into(),
        };
        self.call(op).await.map(drop)
    }
}

impl SandboxFs<'_> {
    /// Watches `path` (with `recursive`, every directory below it too, including ones made
    /// later) and reports each change as it happens: created, written, removed, renamed,
    /// permissions changed. Writes in a row to one file are reported once. Events are
    /// held back, not dropped, while the caller does not take them; the guest kernel's own
    /// queue overflowing is reported as [`FsEventKind::Overflow`].
    pub async fn watch(&self, path: &str, recursive: bool) -> MicrosandboxResult<FsWatcher> {
        let op = FsOp::Watch {
            path: path.to_string(),
            recursive,
        };
        let watch = self.client.fs_watch(op, self.user.clone()).await.map_err(fs_error)?;
        Ok(FsWatcher { watch })
    }
}

/// Changes in a guest directory as they happen (see [`SandboxFs::watch`]).
#[derive(Debug)]
pub struct FsWatcher {
    watch: FsWatch,
}

impl FsWatcher {
    /// The next change; `None` once the watch has ended (stopped, or the watched path
    /// itself removed, which is reported first).
    pub async fn next(&mut self) -> MicrosandboxResult<Option<FsEvent>> {
        self.watch.next_event().await.map_err(fs_error)
    }

    /// Stops watching; changes already seen still arrive from [`FsWatcher::next`], then
    /// `None`.
    pub async fn stop(&self) -> MicrosandboxResult<()> {
        self.watch.stop().await.map_err(fs_error)
    }
}

/// A guest file arriving chunk by chunk.
#[derive(Debug)]
pub struct FsReadStream {
    reader: FsReader,
}

impl FsReadStream {
    /// The next chunk, or `None` at the end of the file.
    pub async fn recv(&mut self) -> MicrosandboxResult<Option<Vec<u8>>> {
        self.reader.next_chunk().await.map_err(fs_error)
    }
}

/// A guest file being written; [`FsWriteSink::close`] waits until the guest has it.
#[derive(Debug)]
pub struct FsWriteSink {
    writer: FsWriter,
}

impl FsWriteSink {
    /// Sends more of the contents.
    pub async fn write(&mut self, data: &[u8]) -> MicrosandboxResult<()> {
        self.writer.write(data).await.map_err(fs_error)
    }

    /// Ends the contents and waits for the guest to confirm the file is written.
    pub async fn close(self) -> MicrosandboxResult<()> {
        self.writer.finish().await.map_err(fs_error)
    }
}

fn fs_error(e: ClientError) -> MicrosandboxError {
    match e {
        ClientError::Fs(failure) => MicrosandboxError::Fs(failure),
        e => e.into(),
    }
}

fn unexpected(reply: FsReply) -> MicrosandboxError {
    MicrosandboxError::Agent(ClientError::Unexpected(format!("{reply:?}")))
}
