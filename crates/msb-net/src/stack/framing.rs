//! QEMU's `-netdev stream` framing: every Ethernet frame is a 4-byte big-endian length, then
//! the frame. The reader works in place over one buffer so a read of many frames costs one
//! syscall and no copy per frame.

/// The largest frame accepted: a 64 KiB IP packet and its Ethernet header.
pub const MAX_FRAME: usize = 65535 + 14;
/// Length prefix size.
pub(crate) const PREFIX: usize = 4;
/// Bytes read per syscall at most, on top of room for one whole frame.
const READ_BATCH: usize = 256 * 1024;

/// Splits a byte stream into frames; oversized and empty records are skipped whole, so a
/// bad length costs that record and never the stream's synchronisation or unbounded memory.
#[derive(Debug)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of an oversized record still to be discarded as they arrive.
    skip: usize,
}

impl FrameReader {
    pub(crate) fn new() -> FrameReader {
        FrameReader {
            buf: vec![0; READ_BATCH + PREFIX + MAX_FRAME],
            start: 0,
            end: 0,
            skip: 0,
        }
    }

    /// Free space to read into; never empty (a partial frame always fits).
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were read into [`spare`](Self::spare).
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Hands every complete frame to `frame`; returns how many records were dropped.
    pub(crate) fn drain(&mut self, mut frame: impl FnMut(&[u8])) -> u64 {
        let mut dropped = 0;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.end - self.start);
                self.start += n;
                self.skip -= n;
                if self.skip > 0 {
                    break;
                }
            }
            if self.end - self.start < PREFIX {
                break;
            }
            let Ok(prefix) = <[u8; PREFIX]>::try_from(&self.buf[self.start..self.start + PREFIX]) else {
                break;
            };
            let len = u32::from_be_bytes(prefix) as usize;
            if len == 0 || len > MAX_FRAME {
                dropped += 1;
                self.start += PREFIX;
                self.skip = len;
                continue;
            }
            let body = self.start + PREFIX;
            if body + len > self.end {
                break;
            }
            frame(&self.buf[body..body + len]);
            self.start = body + len;
        }
        self.compact();
        dropped
    }

    /// Keeps room for a whole frame after the buffered tail.
    fn compact(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < PREFIX + MAX_FRAME {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(reader: &mut FrameReader, bytes: &[u8]) -> (Vec<Vec<u8>>, u64) {
        let mut frames = Vec::new();
        let mut dropped = 0;
        for chunk in bytes.chunks(3) {
            reader.spare()[..chunk.len()].copy_from_slice(chunk);
            reader.filled(chunk.len());
            dropped += reader.drain(|f| frames.push(f.to_vec()));
        }
        (frames, dropped)
    }

    fn record(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn frames_split_across_reads_come_out_whole() {
        let mut stream = record(b"hello frame");
        stream.extend(record(b"second"));
        let (frames, dropped) = feed(&mut FrameReader::new(), &stream);
        assert_eq!(frames, vec![b"hello frame".to_vec(), b"second".to_vec()]);
        assert_eq!(dropped, 0);
    }

    #[test]
    fn empty_and_oversized_records_are_skipped_whole() {
        let mut stream = record(b"");
        let huge = MAX_FRAME + 10;
        stream.extend((huge as u32).to_be_bytes());
        stream.extend(vec![0xab; huge]);
        stream.extend(record(b"after"));
        let (frames, dropped) = feed(&mut FrameReader::new(), &stream);
        assert_eq!(frames, vec![b"after".to_vec()]);
        assert_eq!(dropped, 2);
    }

    #[test]
    fn a_stream_of_large_frames_never_runs_out_of_room() {
        let body = vec![7u8; MAX_FRAME];
        let mut reader = FrameReader::new();
        let mut count = 0;
        for _ in 0..10 {
            let rec = record(&body);
            let mut at = 0;
            while at < rec.len() {
                let spare = reader.spare();
                assert!(!spare.is_empty());
                let n = spare.len().min(rec.len() - at).min(100_000);
                spare[..n].copy_from_slice(&rec[at..at + n]);
                reader.filled(n);
                at += n;
                reader.drain(|f| {
                    assert_eq!(f.len(), MAX_FRAME);
                    count += 1;
                });
            }
        }
        assert_eq!(count, 10);
    }
}
