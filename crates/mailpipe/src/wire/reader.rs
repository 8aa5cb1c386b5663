//! `WireReader`: the buffered reader over a server connection. Every read of
//! a reply is bounded twice: in bytes by the caller's limit, and in time by
//! one `Deadline` for the whole reply. After each reply the socket gets its
//! full --timeout back, for what reads it next (the imap crate, a TLS handshake).

use std::io::{self, Read, Write};
use std::time::Duration;

use super::deadline::{Deadline, Timed};
use super::failure::{peer_error, Failure};
use crate::exit::Error;

/// Bytes read from the socket at a time.
const CAPACITY: usize = 64 * 1024;

/// How `read_until_lf` stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// At a line end, which was appended.
    Line,
    /// After `max` bytes without a line end.
    Full,
    /// The server closed the connection (what came before was appended).
    Closed,
}

/// A buffered reader of a server's bytes; writes go straight through.
#[derive(Debug)]
pub struct WireReader<S> {
    inner: S,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    timeout: Duration,
    /// The read timeout this reader last gave the socket (`None`: unknown).
    /// Setting it is a system call, and setting it before every read cost
    /// imap-dump 10-15% on loopback (24,594 calls for 2,000 messages), so a
    /// bound close to the one set is not set again.
    read_timeout: Option<Duration>,
}

impl<S> WireReader<S> {
    /// `timeout` is --timeout: each reply's deadline, and the socket's read
    /// timeout between replies.
    pub fn new(inner: S, timeout: Duration) -> WireReader<S> {
        WireReader::with_capacity(inner, timeout, CAPACITY)
    }

    pub fn with_capacity(inner: S, timeout: Duration, capacity: usize) -> WireReader<S> {
        WireReader {
            inner,
            buf: vec![0; capacity.max(1)].into_boxed_slice(),
            pos: 0,
            end: 0,
            timeout,
            read_timeout: None,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A deadline of one --timeout from now, for one reply.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.timeout)
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// What was read from the server and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// The stream, refusing when the server sent more than was read: after a
    /// STARTTLS/STLS reply, such bytes would be plaintext injected into the
    /// TLS session (CVE-2011-0411).
    pub fn into_inner_checked(self, command: &str) -> Result<S, Error> {
        if self.pos < self.end {
            return Err(Error::protocol(format!(
                "TLS: the server sent data after its reply to {command}, before the handshake \
                 (a plaintext injection?)"
            )));
        }
        Ok(self.inner)
    }

    /// The same reader, buffer and all, over `f(stream)`.
    pub fn map_inner<T>(self, f: impl FnOnce(S) -> T) -> WireReader<T> {
        WireReader {
            inner: f(self.inner),
            buf: self.buf,
            pos: self.pos,
            end: self.end,
            timeout: self.timeout,
            // The new stream (TLS after STARTTLS) may have set its own.
            read_timeout: None,
        }
    }

    /// Takes what was read and not yet consumed: after the OK to COMPRESS,
    /// those are the first compressed bytes, for the layer below to inflate.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let rest = self.buf[self.pos..self.end].to_vec();
        self.pos = self.end;
        rest
    }

    /// Drops `n` buffered bytes (after `peek`).
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }
}

impl<S: Read + Timed> WireReader<S> {
    /// Changes --timeout for the replies to come (a goodbye after an error
    /// waits less), and the socket's read timeout with it.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        self.set_read_timeout(timeout);
    }

    /// Gives the socket `timeout` unless it has it already. Only a bound for
    /// reads: a socket that refuses keeps its old one, and we forget what it has.
    fn set_read_timeout(&mut self, timeout: Duration) {
        if self.read_timeout != Some(timeout) {
            self.read_timeout = self
                .inner
                .set_read_timeout(Some(timeout))
                .ok()
                .map(|()| timeout);
        }
    }

    /// Reads more into an empty buffer before `deadline`; false at end of stream.
    fn fill(&mut self, deadline: &Deadline, doing: &str) -> Result<bool, Error> {
        debug_assert!(self.pos == self.end);
        self.pos = 0;
        self.end = 0;
        loop {
            let n = self.read_armed(deadline, doing)?;
            if let Some(n) = n {
                self.end = n;
                return Ok(n > 0);
            }
        }
    }

    /// One read into our buffer, with the socket armed for `deadline`;
    /// `None` when interrupted.
    fn read_armed(&mut self, deadline: &Deadline, doing: &str) -> Result<Option<usize>, Error> {
        let idle = self.timeout;
        let fail = |e: io::Error| {
            // A stall (no byte for --timeout) before a far deadline names --timeout.
            let stalled = Failure::of(&e) == Failure::Timeout && !deadline.left().is_zero();
            peer_error(e, doing, if stalled { idle } else { deadline.allowed() })
        };
        let bound = deadline.bound(idle).map_err(fail)?;
        // The socket's timeout may stand when it is the bound or a little
        // above it (a read then overshoots the deadline by at most a tenth of
        // the time that was left), never when below it (an early time-out).
        let close_enough = self
            .read_timeout
            .is_some_and(|t| t >= bound && t - bound <= bound / 10);
        if !close_enough {
            self.read_timeout = None;
            self.inner
                .set_read_timeout(Some(bound))
                .map_err(|_| fail(io::Error::from(io::ErrorKind::TimedOut)))?;
            self.read_timeout = Some(bound);
        }
        match self.inner.read(&mut self.buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(fail(e)),
        }
    }

    /// Runs `read` and then gives the socket its full --timeout back if a
    /// deadline shortened it, whatever the outcome.
    fn disarmed<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let result = read(self);
        let timeout = self.timeout;
        self.set_read_timeout(timeout);
        result
    }

    /// The next byte, not consumed; `None` at end of stream.
    pub fn peek(&mut self, deadline: &Deadline, doing: &str) -> Result<Option<u8>, Error> {
        self.disarmed(|r| {
            if r.pos == r.end && !r.fill(deadline, doing)? {
                return Ok(None);
            }
            Ok(Some(r.buf[r.pos]))
        })
    }

    /// Appends to `out` up to and including the next LF, at most `max` bytes.
    pub fn read_until_lf(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        deadline: &Deadline,
        doing: &str,
    ) -> Result<Chunk, Error> {
        self.disarmed(|r| {
            let mut room = max;
            loop {
                if room == 0 {
                    return Ok(Chunk::Full);
                }
                if r.pos == r.end && !r.fill(deadline, doing)? {
                    return Ok(Chunk::Closed);
                }
                let available = &r.buf[r.pos..r.end.min(r.pos + room)];
                let (take, done) = match memchr::memchr(b'\n', available) {
                    Some(i) => (i + 1, true),
                    None => (available.len(), false),
                };
                out.extend_from_slice(&available[..take]);
                r.pos += take;
                room -= take;
                if done {
                    return Ok(Chunk::Line);
                }
            }
        })
    }

    /// One line into `line` without its line end (CRLF, or a sloppy server's
    /// bare LF): at most `limit` bytes with it, complete before `deadline`.
    /// `what` names the reply in errors: "the greeting", "the reply to EHLO".
    pub fn read_line(
        &mut self,
        line: &mut Vec<u8>,
        limit: usize,
        deadline: &Deadline,
        what: &str,
    ) -> Result<(), Error> {
        line.clear();
        let doing = format!("waiting for {what}");
        match self.read_until_lf(line, limit, deadline, &doing)? {
            Chunk::Line => {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Ok(())
            }
            Chunk::Full => Err(Error::protocol(format!(
                "{what} is longer than {limit} bytes without a line end"
            ))),
            Chunk::Closed => Err(peer_error(
                io::Error::from(io::ErrorKind::UnexpectedEof),
                &doing,
                deadline.allowed(),
            )),
        }
    }

    /// Exactly `size` bytes (an IMAP literal) into `out` before `deadline`.
    /// A size over `max` (what the read budget still allows) can never arrive
    /// whole: the server broke the protocol (76), before anything is read.
    pub fn read_literal(
        &mut self,
        out: &mut Vec<u8>,
        size: u64,
        max: u64,
        deadline: &Deadline,
        what: &str,
    ) -> Result<(), Error> {
        literal_fits(size, max, what)?;
        out.clear();
        // Grows as bytes arrive: a huge announced size costs nothing until
        // the server sends it, and the read budget stops that.
        out.reserve(size.min(8 << 20) as usize);
        let doing = format!("reading {what}");
        self.disarmed(|r| r.literal(size, deadline, &doing, |b| out.extend_from_slice(b)))
    }

    /// Exactly `out.len()` bytes (an IMAP literal whose size the caller
    /// checked with `literal_fits`) into memory the caller allocated at that
    /// size, before `deadline`.
    pub fn read_literal_into(
        &mut self,
        out: &mut [u8],
        deadline: &Deadline,
        what: &str,
    ) -> Result<(), Error> {
        let doing = format!("reading {what}");
        let mut at = 0;
        self.disarmed(|r| {
            r.literal(out.len() as u64, deadline, &doing, |b| {
                out[at..at + b.len()].copy_from_slice(b);
                at += b.len();
            })
        })
    }

    /// Hands the next `size` bytes to `put`, a buffer's worth at a time.
    fn literal(
        &mut self,
        size: u64,
        deadline: &Deadline,
        doing: &str,
        mut put: impl FnMut(&[u8]),
    ) -> Result<(), Error> {
        let mut left = size;
        while left > 0 {
            if self.pos < self.end {
                let take = (self.end - self.pos).min(left.try_into().unwrap_or(usize::MAX));
                put(&self.buf[self.pos..self.pos + take]);
                self.pos += take;
                left -= take as u64;
            } else if !self.fill(deadline, doing)? {
                let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
                return Err(peer_error(eof, doing, deadline.allowed()));
            }
        }
        Ok(())
    }
}

/// Refuses a literal of `size` bytes in `what` over `max` (what the read
/// budget still allows): it can never arrive whole, the server broke the
/// protocol (76). Checked before anything is read or allocated.
pub fn literal_fits(size: u64, max: u64, what: &str) -> Result<(), Error> {
    if size > max {
        return Err(Error::protocol(format!(
            "the server announced a literal of {size} bytes in {what}, far more than \
             the messages' RFC822.SIZE"
        )));
    }
    Ok(())
}

/// Plain reads, buffer first, for code that reads the stream itself (the
/// imap crate): the socket's own --timeout bounds each read.
impl<S: Read> Read for WireReader<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.end {
            let n = (self.end - self.pos).min(out.len());
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(out)
    }
}

impl<S: Write> Write for WireReader<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;
    use std::net::{TcpListener, TcpStream};
    use std::thread;
    use std::time::Instant;

    fn later() -> Deadline {
        Deadline::after(Duration::from_secs(60))
    }

    /// Bytes in memory that count how often their read timeout is set.
    struct Counted<'a> {
        bytes: &'a [u8],
        timeouts_set: std::cell::Cell<usize>,
    }

    impl Read for Counted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.bytes.read(buf)
        }
    }

    impl Timed for Counted<'_> {
        fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            self.timeouts_set.set(self.timeouts_set.get() + 1);
            Ok(())
        }
    }

    #[test]
    fn the_read_timeout_is_not_set_again_before_every_read() {
        // 200 messages as an IMAP FETCH sends them, each a line and a
        // literal, read through a small buffer: thousands of reads.
        let mut wire = Vec::new();
        for i in 0..200 {
            wire.extend_from_slice(format!("* {i} FETCH (BODY[] {{4000}}\r\n").as_bytes());
            wire.extend(std::iter::repeat_n(b'x', 4000));
            wire.extend_from_slice(b")\r\n");
        }
        let input = Counted {
            bytes: &wire,
            timeouts_set: std::cell::Cell::new(0),
        };
        let timeout = Duration::from_secs(30);
        let mut r = WireReader::with_capacity(input, timeout, 512);
        let (mut line, mut body) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            r.read_line(&mut line, 1000, &Deadline::after(timeout), "a reply")
                .expect("line");
            let deadline = Deadline::for_body(timeout, 4000);
            r.read_literal(&mut body, 4000, 8000, &deadline, "a message")
                .expect("literal");
            assert_eq!(body.len(), 4000);
            r.read_line(&mut line, 1000, &Deadline::after(timeout), "a reply")
                .expect("end of item");
        }
        // Over 1,600 reads; before, as many settings of the timeout.
        let set = r.inner.timeouts_set.get();
        assert!(set <= 10, "read timeout set {set} times");
    }

    #[test]
    fn lines_without_their_ends_within_the_limit() {
        let wire = &b"220 a\r\n250-b\n250 c\r\nrest"[..];
        let mut r = WireReader::with_capacity(wire, Duration::from_secs(5), 3);
        let mut line = Vec::new();
        for want in [&b"220 a"[..], b"250-b", b"250 c"] {
            r.read_line(&mut line, 100, &later(), "the reply")
                .expect("line");
            assert_eq!(line, want);
        }
        let e = r
            .read_line(&mut line, 100, &later(), "the reply")
            .expect_err("cut");
        assert_eq!(e.exit(), Exit::TempFail);
        assert!(e.message().contains("closed the connection"), "{e}");
        let long = vec![b'x'; 10_000];
        let mut r = WireReader::new(&long[..], Duration::from_secs(5));
        let e = r
            .read_line(&mut line, 8192, &later(), "the greeting")
            .expect_err("long");
        assert_eq!(e.exit(), Exit::Protocol);
        assert_eq!(
            e.message(),
            "the greeting is longer than 8192 bytes without a line end"
        );
    }

    #[test]
    fn literals_are_exact_and_bounded() {
        let mut wire = b"hello".to_vec();
        wire.extend(vec![b'y'; 100_000]);
        wire.extend_from_slice(b")\r\n");
        let mut r = WireReader::with_capacity(&wire[..], Duration::from_secs(5), 7);
        let mut out = Vec::new();
        r.read_literal(&mut out, 100_005, u64::MAX, &later(), "BODY[]")
            .expect("literal");
        assert_eq!(out.len(), 100_005);
        assert_eq!(&out[..5], b"hello");
        // The same bytes into memory the caller sized (imap-dump's large bodies).
        let mut sized = WireReader::with_capacity(&wire[..], Duration::from_secs(5), 7);
        let mut into = vec![0; 100_005];
        sized
            .read_literal_into(&mut into, &later(), "BODY[]")
            .expect("literal");
        assert_eq!(into, out);
        let e = WireReader::new(&b"short"[..], Duration::from_secs(5))
            .read_literal_into(&mut [0; 100], &later(), "BODY[]")
            .expect_err("cut");
        assert_eq!(e.exit(), Exit::TempFail);
        assert!(literal_fits(1000, 1000, "BODY[]").is_ok());
        let mut line = Vec::new();
        r.read_line(&mut line, 10, &later(), "the rest")
            .expect("rest");
        assert_eq!(line, b")");
        let mut r = WireReader::new(&b"short"[..], Duration::from_secs(5));
        let e = r
            .read_literal(&mut out, 100, 1000, &later(), "BODY[]")
            .expect_err("cut");
        assert_eq!(e.exit(), Exit::TempFail);
        let e = r
            .read_literal(&mut out, u64::MAX, 1000, &later(), "BODY[]")
            .expect_err("over budget");
        assert_eq!(e.exit(), Exit::Protocol);
    }

    /// A server sending a byte every 200 ms keeps each read short of a 1 s
    /// timeout; one deadline for the reply still ends the wait at 1 s.
    #[test]
    fn a_dripping_server_times_out_once_for_the_whole_reply() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                for &b in b"220 a very slow greeting indeed\r\n" {
                    if s.write_all(&[b]).is_err() {
                        return;
                    }
                    thread::sleep(Duration::from_millis(200));
                }
            }
        });
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let timeout = Duration::from_secs(1);
        tcp.set_read_timeout(Some(timeout)).expect("timeout");
        let mut r = WireReader::new(tcp, timeout);
        let started = Instant::now();
        let mut line = Vec::new();
        let e = r
            .read_line(&mut line, 1000, &r.deadline(), "the greeting")
            .expect_err("drip");
        let took = started.elapsed();
        assert_eq!(e.exit(), Exit::TempFail, "{e}");
        assert_eq!(e.message(), "timed out after 1 s waiting for the greeting");
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        // The socket has its whole timeout again for the next reply.
        assert_eq!(r.get_ref().read_timeout().expect("get"), Some(timeout));
    }

    /// Regression (faults.rs, pop3 and imap stalled mid-body): a body's
    /// deadline is far off, but a stall is given up on after --timeout.
    #[test]
    fn a_stall_inside_a_long_body_times_out_after_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(b"part of a literal");
                thread::sleep(Duration::from_secs(5));
            }
        });
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let timeout = Duration::from_secs(1);
        let mut r = WireReader::new(tcp, timeout);
        let deadline = Deadline::for_body(timeout, 1 << 20);
        let started = Instant::now();
        let mut out = Vec::new();
        let e = r
            .read_literal(&mut out, 1 << 20, u64::MAX, &deadline, "BODY[]")
            .expect_err("stall");
        let took = started.elapsed();
        assert_eq!(e.exit(), Exit::TempFail, "{e}");
        assert_eq!(e.message(), "timed out after 1 s reading BODY[]");
        assert!(took < Duration::from_millis(1500), "took {took:?}");
    }

    #[test]
    fn bytes_after_a_starttls_reply_are_refused() {
        let mut r = WireReader::new(
            &b"220 go ahead\r\n\x16\x03\x01 injected"[..],
            Duration::from_secs(5),
        );
        let mut line = Vec::new();
        r.read_line(&mut line, 100, &later(), "the reply to STARTTLS")
            .expect("reply");
        let e = r.into_inner_checked("STARTTLS").expect_err("injection");
        assert_eq!(e.exit(), Exit::Protocol);
        assert!(e.message().contains("after its reply to STARTTLS"), "{e}");
        let mut r = WireReader::new(&b"+OK begin TLS\r\n"[..], Duration::from_secs(5));
        r.read_line(&mut line, 100, &later(), "the reply to STLS")
            .expect("reply");
        assert!(r.into_inner_checked("STLS").is_ok());
    }
}
