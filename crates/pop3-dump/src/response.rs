//! POP3 replies as they come off the wire (RFC 1939, RFC 2449): the status
//! line (`+OK ...` / `-ERR [CODE] ...`), multi-line replies with their
//! dot-stuffing undone byte for byte, and the limits that keep a hostile
//! server from exhausting memory or holding us past the deadline.
//!
//! Status lines and short multi-line replies (CAPA, LIST, UIDL) must arrive
//! whole within a deadline; a message body has no line-length limit, only a
//! bound on its total size, which the caller derives from the LIST size.

use std::io::{self, BufRead};
use std::time::Instant;

use mailpipe::{Error, Exit};

/// Longest status line accepted. RFC 1939 allows 512 octets; servers add
/// long texts, so we are generous, but a 1 MB greeting is an attack.
pub const MAX_STATUS_LINE: usize = 8 * 1024;

/// A status line: `+OK text`, or `-ERR [CODE] text` (RFC 2449 response codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub ok: bool,
    /// The extended response code in brackets after `-ERR` / `+OK`, e.g. `AUTH`, `SYS/TEMP`.
    pub code: Option<String>,
    /// The human-readable rest of the line.
    pub text: String,
}

impl Status {
    /// Parses one status line (without its line end).
    pub fn parse(line: &[u8]) -> Result<Status, Error> {
        let (ok, rest) = if let Some(rest) = line.strip_prefix(b"+OK") {
            (true, rest)
        } else if let Some(rest) = line.strip_prefix(b"-ERR") {
            (false, rest)
        } else {
            return Err(Error::protocol(format!(
                "server reply is neither +OK nor -ERR: {}",
                shown(line)
            )));
        };
        if !rest.is_empty() && rest[0] != b' ' {
            return Err(Error::protocol(format!(
                "malformed server reply: {}",
                shown(line)
            )));
        }
        let rest = String::from_utf8_lossy(rest.strip_prefix(b" ").unwrap_or(rest));
        let (code, text) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((code, text)) => (Some(code.to_ascii_uppercase()), text.trim_start()),
            None => (None, rest.as_ref()),
        };
        Ok(Status {
            ok,
            code,
            text: text.to_string(),
        })
    }

    /// The exit code a `-ERR` means when authentication was refused:
    /// RFC 3206's `SYS/TEMP` and `IN-USE`, RFC 2449's `LOGIN-DELAY` are
    /// temporary (75), anything else is a refusal of the credentials (77).
    pub fn auth_failure_exit(&self) -> Exit {
        match self.code.as_deref() {
            Some("SYS/TEMP" | "IN-USE" | "LOGIN-DELAY") => Exit::TempFail,
            Some("SYS/PERM") => Exit::Unavailable,
            _ => Exit::NoPerm,
        }
    }

    /// What a refused login means, for the error message: the response
    /// codes of RFC 2449 and RFC 3206 say when the password is not to blame.
    pub fn auth_failure_reason(&self, user: &str) -> String {
        let reason = match self.code.as_deref() {
            Some("IN-USE") => format!(
                "the maildrop of {user} is in use (locked by another POP3 session); \
                 run again when that session has ended"
            ),
            Some("LOGIN-DELAY") => format!(
                "the server refuses a login for {user} this soon after the last one \
                 (LOGIN-DELAY); run again later"
            ),
            Some("SYS/TEMP") => format!("the server cannot log in {user} just now; run again"),
            Some("SYS/PERM") => format!("the server cannot log in {user}"),
            _ => format!("authentication failed for {user}"),
        };
        format!("{reason}: {}", self.describe())
    }

    /// `-ERR [CODE] text` for messages.
    pub fn describe(&self) -> String {
        let head = if self.ok { "+OK" } else { "-ERR" };
        match &self.code {
            Some(code) => format!("{head} [{code}] {}", self.text),
            None if self.text.is_empty() => head.to_string(),
            None => format!("{head} {}", self.text),
        }
    }
}

/// A line a server sent, shortened and made printable for an error message.
pub fn shown(line: &[u8]) -> String {
    let cut = &line[..line.len().min(200)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if line.len() > cut.len() {
        text.push_str(&format!("... ({} bytes)", line.len()));
    }
    text
}

/// What an I/O error while reading a reply means for the user: a timeout or
/// a connection the server (or the network) cut is temporary (75, run again,
/// as in smtp-send and imap-dump); anything else, such as TLS records that
/// do not decrypt, is the server breaking the protocol (76).
pub fn read_error(what: &str, err: io::Error) -> Error {
    match err.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::new(
            Exit::TempFail,
            format!("timed out waiting for the server's {what}"),
        ),
        kind if is_cut(kind) => Error::new(
            Exit::TempFail,
            format!(
                "the server closed the connection during its {what}: {}",
                Error::from(err).message()
            ),
        ),
        _ => Error::new(
            Exit::Protocol,
            format!(
                "reading the server's {what}: {}",
                Error::from(err).message()
            ),
        ),
    }
}

/// Whether an I/O error means the connection is gone (closed, reset, a TLS
/// stream ended without close_notify), not that the data was bad.
pub fn is_cut(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected
    )
}

/// The connection ended before a reply was complete: temporary (75).
fn closed(what: &str) -> Error {
    Error::new(
        Exit::TempFail,
        format!("the server closed the connection during its {what}"),
    )
}

fn too_slow(what: &str) -> Error {
    Error::new(
        Exit::TempFail,
        format!("timed out: the server's {what} did not arrive in time"),
    )
}

/// Reads one line, up to `limit` bytes including its line end, before
/// `deadline`. Returns it without the line end (CRLF, or a bare LF from a
/// sloppy server).
pub fn read_line<R: BufRead>(
    input: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
    deadline: Instant,
    what: &str,
) -> Result<(), Error> {
    line.clear();
    loop {
        let available = input.fill_buf().map_err(|e| read_error(what, e))?;
        if available.is_empty() {
            return Err(closed(what));
        }
        let (take, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if line.len() + take > limit {
            return Err(Error::protocol(format!(
                "the server's {what} is longer than {limit} bytes without a line end"
            )));
        }
        line.extend_from_slice(&available[..take]);
        input.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(too_slow(what));
        }
    }
}

/// Reads a status line and parses it.
pub fn read_status<R: BufRead>(
    input: &mut R,
    deadline: Instant,
    what: &str,
) -> Result<Status, Error> {
    let mut line = Vec::new();
    read_line(input, &mut line, MAX_STATUS_LINE, deadline, what)?;
    Status::parse(&line).map_err(|e| e.context(format!("in the {what}")))
}

/// Reads the lines of a short multi-line reply (CAPA, LIST, UIDL) after its
/// `+OK`, dot-stuffing undone, until the terminating `.`. Each line must fit
/// `line_limit`; together at most `total_limit` bytes; all before `deadline`.
pub fn read_lines<R: BufRead>(
    input: &mut R,
    line_limit: usize,
    total_limit: usize,
    deadline: Instant,
    what: &str,
) -> Result<Vec<Vec<u8>>, Error> {
    let mut lines = Vec::new();
    let mut total = 0usize;
    loop {
        let mut line = Vec::new();
        read_line(input, &mut line, line_limit, deadline, what)?;
        if line == b"." {
            return Ok(lines);
        }
        total += line.len() + 2;
        if total > total_limit {
            return Err(Error::protocol(format!(
                "the server's {what} goes on past {total_limit} bytes without its final \".\""
            )));
        }
        if line.first() == Some(&b'.') {
            line.remove(0);
        }
        lines.push(line);
        if Instant::now() > deadline {
            return Err(too_slow(what));
        }
    }
}

/// Reads a message body (RETR, TOP) after its `+OK` into `message`, undoing
/// the dot-stuffing and keeping every other byte, line ends included, as
/// sent. Lines may be of any length; the whole reply (as sent, with stuffing)
/// may not exceed `limit` bytes, which bounds memory against a server that
/// never sends the final `.`, and must be complete by `deadline`, which
/// bounds the time a server trickling bytes can hold us.
pub fn read_body<R: BufRead>(
    input: &mut R,
    message: &mut Vec<u8>,
    limit: u64,
    deadline: Instant,
    what: &str,
) -> Result<(), Error> {
    /// Bytes read per step inside a long line, between deadline checks.
    const STEP: u64 = 64 * 1024;
    message.clear();
    let mut received = 0u64;
    // Where the current line starts in `message`, and whether it began with
    // a stuffing dot (removed): then it may be the terminating ".".
    let mut line_start = 0usize;
    let mut dotted = false;
    let mut at_line_start = true;
    loop {
        if at_line_start {
            let available = input.fill_buf().map_err(|e| read_error(what, e))?;
            if available.is_empty() {
                return Err(closed_before_dot(what));
            }
            line_start = message.len();
            dotted = available[0] == b'.';
            if dotted {
                input.consume(1);
                received += 1;
            }
        }
        let room = limit.saturating_sub(received);
        if room == 0 {
            return Err(Error::protocol(format!(
                "the server's {what} goes on past {limit} bytes without its final \".\""
            )));
        }
        let step = room.min(STEP);
        let n = io::Read::take(&mut *input, step)
            .read_until(b'\n', message)
            .map_err(|e| read_error(what, e))?;
        received += n as u64;
        let line_ended = n > 0 && message.last() == Some(&b'\n');
        if !line_ended && (n as u64) < step {
            return Err(closed_before_dot(what));
        }
        if line_ended && dotted {
            let line = &message[line_start..];
            if line == b"\r\n" || line == b"\n" {
                message.truncate(line_start);
                return Ok(());
            }
        }
        at_line_start = line_ended;
        if Instant::now() > deadline {
            return Err(too_slow(what));
        }
    }
}

/// The connection ended inside a multi-line reply: temporary (75); the
/// partial message is dropped, never written.
fn closed_before_dot(what: &str) -> Error {
    Error::new(
        Exit::TempFail,
        format!("the server closed the connection in the middle of its {what} (no final \".\")"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;
    use std::time::Duration;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn status_lines_with_and_without_codes() {
        let s = Status::parse(b"+OK Dovecot ready.").expect("ok");
        assert!(s.ok && s.code.is_none() && s.text == "Dovecot ready.");
        let s = Status::parse(b"-ERR [AUTH] Authentication failed.").expect("err");
        assert!(!s.ok);
        assert_eq!(s.code.as_deref(), Some("AUTH"));
        assert_eq!(s.text, "Authentication failed.");
        assert_eq!(s.auth_failure_exit(), Exit::NoPerm);
        let s = Status::parse(b"-ERR [SYS/TEMP] try later").expect("err");
        assert_eq!(s.auth_failure_exit(), Exit::TempFail);
        assert_eq!(s.describe(), "-ERR [SYS/TEMP] try later");
        assert!(Status::parse(b"+OK").expect("bare").text.is_empty());
        assert_eq!(
            Status::parse(b"* OK imap").expect_err("not pop").exit(),
            Exit::Protocol
        );
        assert!(Status::parse(b"+OKAY").is_err());
    }

    #[test]
    fn a_cut_connection_is_temporary_and_garbage_is_protocol() {
        for wire in [&b""[..], b"+OK half a li"] {
            let e = read_status(&mut &wire[..], later(), "greeting").expect_err("cut");
            assert_eq!(e.exit(), Exit::TempFail, "{e}");
            assert!(e.message().contains("closed the connection"), "{e}");
        }
        let e = read_lines(&mut &b"1 100\r\n2 2"[..], 100, 1000, later(), "LIST").expect_err("cut");
        assert_eq!(e.exit(), Exit::TempFail, "{e}");
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::BrokenPipe,
        ] {
            let e = read_error("RETR 1", io::Error::from(kind));
            assert_eq!(e.exit(), Exit::TempFail, "{kind:?}");
        }
        let e = read_error(
            "RETR 1",
            io::Error::new(io::ErrorKind::InvalidData, "bad record"),
        );
        assert_eq!(e.exit(), Exit::Protocol);
    }

    #[test]
    fn long_line_without_newline_is_refused() {
        let greeting = vec![b'+'; 1 << 20];
        let mut input = BufReader::new(greeting.as_slice());
        let e = read_status(&mut input, later(), "greeting").expect_err("too long");
        assert_eq!(e.exit(), Exit::Protocol);
        assert!(e.message().contains("longer than 8192 bytes"), "{e}");
    }

    #[test]
    fn short_multiline_undoes_stuffing_and_is_bounded() {
        let mut input = &b"1 abc\r\n..dot\r\n.\r\nrest"[..];
        let lines = read_lines(&mut input, 100, 1000, later(), "UIDL").expect("lines");
        assert_eq!(lines, vec![b"1 abc".to_vec(), b".dot".to_vec()]);
        assert_eq!(input, b"rest");
        let endless = b"1 x\r\n".repeat(1000);
        let e = read_lines(&mut endless.as_slice(), 100, 500, later(), "LIST").expect_err("bound");
        assert!(e.message().contains("past 500 bytes"), "{e}");
    }

    #[test]
    fn body_is_byte_exact_with_any_line_length() {
        let long = vec![b'x'; 100_000];
        let mut wire = b"Subject: a\r\n\r\n..leading dot\r\n...two\r\nbare lf\nno cr".to_vec();
        wire.extend_from_slice(&long);
        wire.extend_from_slice(b"\r\n.\r\n+OK next");
        let mut input = BufReader::with_capacity(1024, wire.as_slice());
        let mut message = Vec::new();
        read_body(&mut input, &mut message, 1 << 20, later(), "RETR 1").expect("body");
        let mut expected = b"Subject: a\r\n\r\n.leading dot\r\n..two\r\nbare lf\nno cr".to_vec();
        expected.extend_from_slice(&long);
        expected.extend_from_slice(b"\r\n");
        assert_eq!(message, expected);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut input, &mut rest).expect("rest");
        assert_eq!(rest, "+OK next");
    }

    #[test]
    fn empty_body_and_missing_dot() {
        let mut message = Vec::new();
        read_body(&mut &b".\r\n"[..], &mut message, 100, later(), "TOP 1 0").expect("empty");
        assert!(message.is_empty());
        let e = read_body(&mut &b"line\r\n"[..], &mut message, 100, later(), "RETR 1")
            .expect_err("eof");
        assert!(e.message().contains("no final"), "{e}");
        assert_eq!(e.exit(), Exit::TempFail);
        let endless = b"data\r\n".repeat(1000);
        let e = read_body(
            &mut endless.as_slice(),
            &mut message,
            600,
            later(),
            "RETR 1",
        )
        .expect_err("big");
        assert!(e.message().contains("past 600 bytes"), "{e}");
        // A server too slow overall: the deadline is checked line by line
        // and inside long lines.
        let past = Instant::now() - Duration::from_millis(1);
        let long_line = vec![b'y'; 200_000];
        let e = read_body(
            &mut long_line.as_slice(),
            &mut message,
            1 << 20,
            past,
            "RETR 1",
        )
        .expect_err("slow");
        assert_eq!(e.exit(), Exit::TempFail);
        assert!(e.message().contains("did not arrive in time"), "{e}");
        // A line cut in the middle, then end of stream: temporary, like
        // every cut connection.
        let e = read_body(&mut &b"abc"[..], &mut message, 100, later(), "RETR 1").expect_err("cut");
        assert_eq!(e.exit(), Exit::TempFail);
        assert!(e.message().contains("in the middle of its RETR 1"), "{e}");
    }
}
