//! Host side of file operations: one-shot calls, and reads and writes that stream the
//! contents under the same credit as a process's output and input.

use crate::client::{AgentClient, ClientError, SessionStream};
use crate::{FsEvent, FsFailure, FsOp, FsReply, FsRequest, Message};

impl AgentClient {
    /// Runs an operation that answers at once (everything but `Read` and `Write`).
    pub async fn fs(&self, req: FsRequest) -> Result<FsReply, ClientError> {
        let mut stream = self.open_stream(Message::Fs(req), "the file operation").await?;
        finish(&mut stream).await
    }

    /// Starts an operation that streams data out of the guest (`FsOp::Read`,
    /// `FsOp::ReadTree`); the data comes from [`FsReader`].
    pub async fn fs_read(&self, op: FsOp, user: Option<String>) -> Result<FsReader, ClientError> {
        let req = FsRequest { op, user };
        let stream = self.open_stream(Message::Fs(req), "the file operation").await?;
        Ok(FsReader { stream, done: false })
    }

    /// Starts an operation that streams data into the guest (`FsOp::Write`,
    /// `FsOp::WriteTree`); the data goes through [`FsWriter`].
    pub async fn fs_write(&self, op: FsOp, user: Option<String>) -> Result<FsWriter, ClientError> {
        let stream = self
            .open_stream(Message::Fs(FsRequest { op, user }), "the file operation")
            .await?;
        Ok(FsWriter { stream })
    }
}

impl AgentClient {
    /// Starts watching (`FsOp::Watch`) and returns once the watch is in place (or with
    /// why it could not be); the changes come from [`FsWatch`].
    pub async fn fs_watch(&self, op: FsOp, user: Option<String>) -> Result<FsWatch, ClientError> {
        let req = FsRequest { op, user };
        let mut stream = self.open_stream(Message::Fs(req), "the file operation").await?;
        match stream.recv().await? {
            Message::FsWatching => Ok(FsWatch { stream, done: false }),
            other => Err(failed(other)),
        }
    }
}

/// Changes seen by a watch in the guest, as they happen.
#[derive(Debug)]
pub struct FsWatch {
    stream: SessionStream,
    done: bool,
}

impl FsWatch {
    /// The next change; `Ok(None)` once the watch has ended (after [`FsWatch::stop`], or
    /// when the watched directory itself went away).
    pub async fn next_event(&mut self) -> Result<Option<FsEvent>, ClientError> {
        if self.done {
            return Ok(None);
        }
        match self.stream.recv().await? {
            Message::FsEvent(event) => Ok(Some(event)),
            Message::FsDone(_) => {
                self.done = true;
                Ok(None)
            }
            other => Err(failed(other)),
        }
    }

    /// Asks the guest to stop watching; events already on the way still arrive, then `None`.
    pub async fn stop(&self) -> Result<(), ClientError> {
        self.stream.control.close_stdin().await
    }
}

/// The contents of a guest file, chunk by chunk.
#[derive(Debug)]
pub struct FsReader {
    stream: SessionStream,
    done: bool,
}

impl FsReader {
    /// The next chunk; `Ok(None)` once the whole file has arrived.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        if self.done {
            return Ok(None);
        }
        match self.stream.recv().await? {
            Message::Stdout(data) => Ok(Some(data)),
            Message::FsDone(_) => {
                self.done = true;
                Ok(None)
            }
            other => Err(failed(other)),
        }
    }
}

/// A guest file being written.
#[derive(Debug)]
pub struct FsWriter {
    stream: SessionStream,
}

impl FsWriter {
    /// Sends `data`, waiting for credit while the guest is behind. If the guest gave up on
    /// the file (it could not be created, the disk is full), its reason is the error.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ClientError> {
        match self.stream.control.write_stdin(data).await {
            Ok(()) => Ok(()),
            // The session ended under us: its last message says why.
            Err(ClientError::Disconnected) => Err(self.reason().await),
            Err(e) => Err(e),
        }
    }

    /// Ends the contents and waits until the guest has written and closed the file.
    pub async fn finish(mut self) -> Result<(), ClientError> {
        if self.stream.control.close_stdin().await.is_err() {
            return Err(self.reason().await);
        }
        finish(&mut self.stream).await.map(drop)
    }

    async fn reason(&mut self) -> ClientError {
        match finish(&mut self.stream).await {
            Err(e) => e,
            Ok(_) => ClientError::Unexpected("the file was closed before its contents were sent".into()),
        }
    }
}

/// Waits for the session's last message: the reply, or the failure as an error.
async fn finish(stream: &mut SessionStream) -> Result<FsReply, ClientError> {
    loop {
        match stream.recv().await? {
            Message::FsDone(reply) => return Ok(reply),
            // Credit for our writes goes to the stdin semaphore; nothing else is expected.
            Message::Stdout(_) => {}
            other => return Err(failed(other)),
        }
    }
}

fn failed(msg: Message) -> ClientError {
    match msg {
        Message::FsFailed(failure) => ClientError::Fs(failure),
        Message::Error(e) => ClientError::Rejected(e),
        other => ClientError::Unexpected(format!("{other:?}")),
    }
}

impl std::fmt::Display for FsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FsFailure {}
