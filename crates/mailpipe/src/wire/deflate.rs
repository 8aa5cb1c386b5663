//! COMPRESS=DEFLATE (RFC 4978): raw deflate in both directions, switched on
//! mid-session once the server said OK. It sits under the transcript (which
//! must show the protocol, not deflate) and above TLS (compressing after
//! encryption gains nothing). Each flush ends with a sync flush, so a
//! command written and flushed reaches the server whole. It also counts the
//! bytes on the wire and the bytes they stand for, for `-v`.

use std::io::{self, Read, Write};
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::deadline::Timed;

/// Compressed bytes read at a time.
const INPUT: usize = 64 * 1024;

/// Bytes each way: on the wire, and after decompressing (before compressing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireBytes {
    pub read_wire: u64,
    pub read_plain: u64,
    pub written_wire: u64,
    pub written_plain: u64,
}

impl std::fmt::Display for WireBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {} bytes on the wire ({} decompressed), wrote {} ({} before compression)",
            self.read_wire, self.read_plain, self.written_wire, self.written_plain
        )
    }
}

/// The deflate state of a compressing connection.
struct Codec {
    compress: Compress,
    decompress: Decompress,
    input: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Compressed bytes not yet written to the stream.
    output: Vec<u8>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

/// A stream that passes bytes through until `start` and deflates them after.
#[derive(Debug)]
pub struct Deflate<S> {
    inner: S,
    codec: Option<Box<Codec>>,
    bytes: WireBytes,
}

fn garbled(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the compressed stream does not inflate: {e}"),
    )
}

impl<S> Deflate<S> {
    /// Uncompressed until `start`.
    pub fn new(inner: S) -> Deflate<S> {
        Deflate {
            inner,
            codec: None,
            bytes: WireBytes::default(),
        }
    }

    /// Compresses from now on; `read_ahead` is what was already read past
    /// the server's OK (its first compressed bytes).
    pub fn start(&mut self, read_ahead: &[u8]) {
        let mut input = vec![0; INPUT.max(read_ahead.len())].into_boxed_slice();
        input[..read_ahead.len()].copy_from_slice(read_ahead);
        self.codec = Some(Box::new(Codec {
            compress: Compress::new(Compression::fast(), false),
            decompress: Decompress::new(false),
            input,
            pos: 0,
            end: read_ahead.len(),
            output: Vec::new(),
        }));
    }

    pub fn is_compressing(&self) -> bool {
        self.codec.is_some()
    }

    pub fn bytes(&self) -> WireBytes {
        self.bytes
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: Read> Read for Deflate<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(c) = self.codec.as_mut() else {
            let n = self.inner.read(buf)?;
            self.bytes.read_wire += n as u64;
            self.bytes.read_plain += n as u64;
            return Ok(n);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            // Inflate first: output may be pending from input already taken.
            let (before_in, before_out) = (c.decompress.total_in(), c.decompress.total_out());
            let status = c
                .decompress
                .decompress(&c.input[c.pos..c.end], buf, FlushDecompress::None)
                .map_err(garbled)?;
            let used = (c.decompress.total_in() - before_in) as usize;
            let made = (c.decompress.total_out() - before_out) as usize;
            c.pos += used;
            if made > 0 {
                self.bytes.read_plain += made as u64;
                return Ok(made);
            }
            if status == Status::StreamEnd {
                return Ok(0);
            }
            if c.pos < c.end {
                if used == 0 {
                    return Err(garbled("no progress"));
                }
                continue;
            }
            let n = self.inner.read(&mut c.input)?;
            if n == 0 {
                return Ok(0);
            }
            self.bytes.read_wire += n as u64;
            c.pos = 0;
            c.end = n;
        }
    }
}

impl<S: Write> Write for Deflate<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(c) = self.codec.as_mut() else {
            let n = self.inner.write(buf)?;
            self.bytes.written_wire += n as u64;
            self.bytes.written_plain += n as u64;
            return Ok(n);
        };
        let mut used = 0;
        while used < buf.len() {
            c.output.reserve(buf.len() - used + 64);
            let before = c.compress.total_in();
            c.compress
                .compress_vec(&buf[used..], &mut c.output, FlushCompress::None)
                .map_err(garbled)?;
            used += (c.compress.total_in() - before) as usize;
        }
        self.bytes.written_plain += buf.len() as u64;
        Ok(buf.len())
    }

    /// A sync flush: everything written so far reaches the server.
    fn flush(&mut self) -> io::Result<()> {
        if let Some(c) = self.codec.as_mut() {
            loop {
                c.output.reserve(256);
                c.compress
                    .compress_vec(&[], &mut c.output, FlushCompress::Sync)
                    .map_err(garbled)?;
                // Done when deflate left room: it had nothing more to say.
                if c.output.len() < c.output.capacity() {
                    break;
                }
            }
            self.inner.write_all(&c.output)?;
            self.bytes.written_wire += c.output.len() as u64;
            c.output.clear();
        }
        self.inner.flush()
    }
}

impl<S: Timed> Timed for Deflate<S> {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ends of a compressed conversation through in-memory pipes.
    #[test]
    fn what_one_side_writes_the_other_reads() {
        let mut client = Deflate::new(Vec::new());
        client.write_all(b"a1 COMPRESS DEFLATE\r\n").expect("plain");
        client.start(&[]);
        client
            .write_all(b"a2 UID FETCH 1:* BODY.PEEK[]\r\n")
            .expect("write");
        client.flush().expect("flush");
        let line = b"a3 NOOP\r\n".repeat(1000);
        client.write_all(&line).expect("write");
        client.flush().expect("flush");
        let sent = client.get_ref().clone();
        let b = client.bytes();
        assert_eq!(b.written_plain, 21 + 30 + line.len() as u64);
        assert_eq!(b.written_wire, sent.len() as u64);
        assert!(b.written_wire < b.written_plain / 5, "{b}");
        // The server's side: the plain part, then inflate the rest.
        let (plain, compressed) = sent.split_at(21);
        assert_eq!(plain, b"a1 COMPRESS DEFLATE\r\n");
        // Read ahead: the first 5 compressed bytes came with the OK.
        let mut server = Deflate::new(&compressed[5..]);
        server.start(&compressed[..5]);
        let mut got = Vec::new();
        server.read_to_end(&mut got).expect("inflate");
        let mut want = b"a2 UID FETCH 1:* BODY.PEEK[]\r\n".to_vec();
        want.extend_from_slice(&line);
        assert_eq!(got, want);
    }

    /// Regression: a read into a small buffer left inflated bytes pending
    /// inside deflate with all input taken; the next read waited for the
    /// server instead of returning them (imap-dump hung after COMPRESS).
    #[test]
    fn pending_output_is_returned_before_reading_more() {
        let mut client = Deflate::new(Vec::new());
        client.start(&[]);
        let text = b"* 1 FETCH (UID 1 RFC822.SIZE 1522504)\r\n".repeat(400);
        client.write_all(&text).expect("write");
        client.flush().expect("flush");
        let sent = client.get_ref().clone();
        // A stream that has nothing more to give: a further read would hang.
        struct Once<'a>(Option<&'a [u8]>);
        impl Read for Once<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some(rest) = self.0.take() else {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "would hang"));
                };
                buf[..rest.len()].copy_from_slice(rest);
                Ok(rest.len())
            }
        }
        let mut server = Deflate::new(Once(Some(&sent)));
        server.start(&[]);
        let mut got = vec![0; text.len()];
        let mut at = 0;
        while at < got.len() {
            let end = (at + 100).min(got.len());
            at += server.read(&mut got[at..end]).expect("pending output");
        }
        assert_eq!(got, text);
    }

    #[test]
    fn garbage_is_invalid_data() {
        let junk = [0xffu8; 64];
        let mut r = Deflate::new(&junk[..]);
        r.start(&[]);
        let e = r.read(&mut [0; 100]).expect_err("garbage");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
