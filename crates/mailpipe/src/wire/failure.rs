//! The one mapping from an I/O failure on a connection to a sysexits code and
//! a sentence: a cut or a timeout is temporary (75, run again), bytes that do
//! not decode (garbled TLS records, a reply over its bounds) are the server
//! breaking the protocol (76), anything else is local I/O (74).

use std::io;
use std::time::Duration;

use crate::exit::{Error, Exit};

/// What an I/O error on a connection means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection is gone: closed, reset, a TLS stream without close_notify.
    Cut,
    /// No bytes within the time allowed.
    Timeout,
    /// Bytes that are not the protocol (TLS records that do not decrypt).
    Garbage,
    /// Our side failed (out of memory, a bad descriptor).
    Local,
}

impl Failure {
    pub fn of(err: &io::Error) -> Failure {
        use io::ErrorKind::*;
        if tls_error(err).is_some() {
            return Failure::Garbage;
        }
        match err.kind() {
            TimedOut | WouldBlock => Failure::Timeout,
            UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected
            | NetworkDown | NetworkUnreachable | HostUnreachable => Failure::Cut,
            InvalidData => Failure::Garbage,
            _ => Failure::Local,
        }
    }

    pub fn exit(self) -> Exit {
        match self {
            Failure::Cut | Failure::Timeout => Exit::TempFail,
            Failure::Garbage => Exit::Protocol,
            Failure::Local => Exit::Io,
        }
    }
}

fn tls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
}

/// `err` while `doing` something on the connection (`waiting for the
/// greeting`, `sending DATA`), as the error the tool ends with; `timeout` is
/// what the user allowed (--timeout), named in the message.
pub fn peer_error(err: io::Error, doing: &str, timeout: Duration) -> Error {
    let failure = Failure::of(&err);
    let exit = failure.exit();
    if let Some(tls) = tls_error(&err) {
        return Error::new(exit, format!("TLS error {doing}: {tls}"));
    }
    let detail = || {
        Error::from(io::Error::new(err.kind(), err.to_string()))
            .message()
            .to_string()
    };
    let text = match failure {
        Failure::Timeout => format!("timed out after {} s {doing}", timeout.as_secs()),
        Failure::Cut if err.kind() == io::ErrorKind::UnexpectedEof => {
            format!("the server closed the connection while {doing}")
        }
        Failure::Cut => format!("connection lost while {doing}: {}", detail()),
        Failure::Garbage => format!("the server broke the protocol while {doing}: {}", detail()),
        Failure::Local => format!("I/O error while {doing}: {}", detail()),
    };
    Error::new(exit, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_and_timeouts_are_75_garbage_76_local_74() {
        let t = Duration::from_secs(3);
        for (kind, exit) in [
            (io::ErrorKind::TimedOut, 75),
            (io::ErrorKind::WouldBlock, 75),
            (io::ErrorKind::UnexpectedEof, 75),
            (io::ErrorKind::ConnectionReset, 75),
            (io::ErrorKind::BrokenPipe, 75),
            (io::ErrorKind::InvalidData, 76),
            (io::ErrorKind::OutOfMemory, 74),
        ] {
            let e = peer_error(io::Error::from(kind), "waiting for the greeting", t);
            assert_eq!(e.exit().code(), exit, "{kind:?}: {e}");
        }
        let e = peer_error(
            io::Error::from(io::ErrorKind::TimedOut),
            "waiting for the greeting",
            t,
        );
        assert_eq!(e.message(), "timed out after 3 s waiting for the greeting");
        let tls = io::Error::new(io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        let e = peer_error(tls, "waiting for the reply to EHLO", t);
        assert_eq!(e.exit(), Exit::Protocol);
        assert!(e.message().starts_with("TLS error waiting for"), "{e}");
    }
}
