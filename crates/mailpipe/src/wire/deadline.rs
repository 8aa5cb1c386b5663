//! One deadline for a whole reply: before each read the socket's read timeout
//! is set to the time left, so a server dripping a byte a second runs out of
//! time instead of resetting a per-read timeout forever.

use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::tls::Stream;
use crate::transcript::TranscriptStream;

/// The slowest average rate, in bytes a second, at which a counted body (a
/// POP3 message, an IMAP literal) may arrive on top of --timeout: far below
/// any real link, a bound on a server trickling bytes.
pub const MIN_BODY_RATE: u64 = 8 * 1024;

const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// When a reply must be complete, and how long that allowed (for messages).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    allowed: Duration,
}

impl Deadline {
    /// `allowed` from now.
    pub fn after(allowed: Duration) -> Deadline {
        let now = Instant::now();
        // A size announced by a hostile server may make `allowed` absurd: a
        // century is as good as forever, and cannot overflow.
        let at = now
            .checked_add(allowed)
            .or_else(|| now.checked_add(CENTURY))
            .unwrap_or(now);
        Deadline { at, allowed }
    }

    /// For a body of `size` bytes: `timeout` plus `size` at `MIN_BODY_RATE`.
    pub fn for_body(timeout: Duration, size: u64) -> Deadline {
        Deadline::after(timeout.saturating_add(Duration::from_secs(size / MIN_BODY_RATE)))
    }

    /// What the deadline allowed in all, e.g. for "timed out after 3 s".
    pub fn allowed(&self) -> Duration {
        self.allowed
    }

    pub fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Sets `socket`'s read timeout to the time left; `TimedOut` when none is.
    pub fn arm(&self, socket: &(impl Timed + ?Sized)) -> io::Result<()> {
        self.arm_within(socket, self.allowed)
    }

    /// Like `arm`, but one read may wait at most `idle` (--timeout): a long
    /// body's deadline is far off, yet a server that stalls in the middle of
    /// it is given up on after --timeout, not at the deadline.
    pub fn arm_within(&self, socket: &(impl Timed + ?Sized), idle: Duration) -> io::Result<()> {
        let left = self.bound(idle)?;
        socket
            .set_read_timeout(Some(left))
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))
    }

    /// How long the next read may wait: the time left, at most `idle`;
    /// `TimedOut` when no time is left.
    pub fn bound(&self, idle: Duration) -> io::Result<Duration> {
        let left = self.left().min(idle);
        if left.is_zero() {
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        Ok(left)
    }
}

/// A stream whose reads can be bounded in time: a socket, or something over
/// one. In-memory readers (tests, fuzzing) ignore it.
pub trait Timed {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Timed for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl Timed for Stream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(timeout)
    }
}

impl<S: Timed> Timed for TranscriptStream<S> {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.get_ref().set_read_timeout(timeout)
    }
}

impl Timed for &[u8] {
    fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_sizes_do_not_overflow() {
        let d = Deadline::for_body(Duration::from_secs(u64::MAX), u64::MAX);
        assert!(d.left() > Duration::from_secs(3600));
        assert_eq!(
            Deadline::for_body(Duration::from_secs(3), 8192 * 10).allowed(),
            Duration::from_secs(13)
        );
    }
}
