//! A small blocking POP3 client over any `Read + Write` (RFC 1939, CAPA from
//! RFC 2449, STLS from RFC 2595, AUTH from RFC 5034: PLAIN, XOAUTH2,
//! OAUTHBEARER). It speaks the
//! commands; choosing which, TLS and credentials belong to `session`.
//!
//! Commands can be pipelined (RFC 2449 PIPELINING): `send` queues a command
//! without waiting, and replies are read in order with `read_status` and
//! `read_message`. Nothing here buffers more than one message.

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine;
use mailpipe::wire::{self, Deadline, Timed, WireReader};
use mailpipe::{Error, Exit};
use zeroize::Zeroizing;

use crate::response::{self, Status};

/// Longest line in a CAPA, LIST or UIDL reply (a UIDL is at most 70 octets).
const MAX_LIST_LINE: usize = 1024;
/// Bytes of a CAPA reply.
const MAX_CAPA: usize = 64 * 1024;
/// Bytes beyond three times the LIST size that a message may take on the wire
/// before we call the reply endless: dot-stuffing adds up to one byte a line,
/// and servers that count LF line ends under-report by another.
const BODY_SLACK: u64 = 1 << 20;
/// Longest command line with an AUTH initial response (RFC 5034, section 4).
const MAX_AUTH_LINE: usize = 255;

/// What CAPA said, reduced to what we use.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The server answered CAPA at all (else everything below is unknown).
    pub known: bool,
    pub stls: bool,
    pub user: bool,
    pub uidl: bool,
    pub top: bool,
    pub pipelining: bool,
    /// SASL mechanisms, upper case.
    pub sasl: Vec<String>,
}

impl Capabilities {
    pub fn parse(lines: &[Vec<u8>]) -> Capabilities {
        let mut caps = Capabilities {
            known: true,
            ..Capabilities::default()
        };
        for line in lines {
            let text = String::from_utf8_lossy(line).to_ascii_uppercase();
            let mut words = text.split_ascii_whitespace();
            match words.next() {
                Some("STLS") => caps.stls = true,
                Some("USER") => caps.user = true,
                Some("UIDL") => caps.uidl = true,
                Some("TOP") => caps.top = true,
                Some("PIPELINING") => caps.pipelining = true,
                Some("SASL") => caps.sasl = words.map(str::to_string).collect(),
                _ => {}
            }
        }
        caps
    }
}

/// One line of a LIST reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub number: u32,
    pub size: u64,
}

/// One line of a UIDL reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unique {
    pub number: u32,
    pub uidl: String,
}

/// A POP3 connection. `S` is the stream, usually a `TranscriptStream` over TLS.
pub struct Client<S: Read + Write + Timed> {
    input: WireReader<S>,
    /// Commands written but not yet flushed, so that pipelined commands go out
    /// in one write (one TLS record) instead of one each.
    queued: Vec<u8>,
    timeout: Duration,
    /// QUIT was sent: the session is over, whatever the reply.
    quit_sent: bool,
}

impl<S: Read + Write + Timed> Client<S> {
    pub fn new(stream: S, timeout: Duration) -> Client<S> {
        Client::from_wire(WireReader::new(stream, timeout))
    }

    pub fn from_wire(input: WireReader<S>) -> Client<S> {
        Client {
            timeout: input.timeout(),
            input,
            queued: Vec::new(),
            quit_sent: false,
        }
    }

    /// Changes --timeout for the replies to come (a goodbye waits less).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        self.input.set_timeout(timeout);
    }

    /// The reader, for STLS (`wire::start_tls` refuses bytes left in it).
    pub fn into_wire(self) -> WireReader<S> {
        self.input
    }

    pub fn get_mut(&mut self) -> &mut S {
        self.input.get_mut()
    }

    fn deadline(&self) -> Deadline {
        Deadline::after(self.timeout)
    }

    /// Queues a command line (CRLF added); `flush` sends what is queued.
    pub fn send(&mut self, command: &str) {
        self.queued.extend_from_slice(command.as_bytes());
        self.queued.extend_from_slice(b"\r\n");
    }

    pub fn flush(&mut self) -> Result<(), Error> {
        let written = self
            .input
            .get_mut()
            .write_all(&self.queued)
            .and_then(|()| self.input.get_mut().flush());
        self.queued.clear();
        written.map_err(|e| wire::peer_error(e, "sending a command to the server", self.timeout))
    }

    /// Reads the status line that answers a command (or the greeting).
    pub fn read_status(&mut self, what: &str) -> Result<Status, Error> {
        let deadline = self.deadline();
        response::read_status(&mut self.input, &deadline, what)
    }

    /// Sends one command and reads its status line.
    pub fn command(&mut self, command: &str, what: &str) -> Result<Status, Error> {
        self.send(command);
        self.flush()?;
        self.read_status(what)
    }

    /// Like `command`, but a `-ERR` is an error (76) quoting the reply.
    fn expect_ok(&mut self, command: &str, what: &str) -> Result<Status, Error> {
        self.send(command);
        self.flush()?;
        self.read_ok(what)
    }

    /// The status line of a command sent before; a `-ERR` is an error (76).
    fn read_ok(&mut self, what: &str) -> Result<Status, Error> {
        let status = self.read_status(what)?;
        if !status.ok {
            return Err(Error::protocol(format!(
                "the server refused {what}: {}",
                status.describe()
            )));
        }
        Ok(status)
    }

    /// The greeting; a `-ERR` greeting (server busy, refused) is temporary.
    pub fn greeting(&mut self) -> Result<Status, Error> {
        let status = self.read_status("greeting")?;
        if !status.ok {
            return Err(Error::new(
                Exit::TempFail,
                format!("the server refused the session: {}", status.describe()),
            ));
        }
        Ok(status)
    }

    /// CAPA; a server without it (`-ERR`) gives unknown capabilities.
    pub fn capa(&mut self) -> Result<Capabilities, Error> {
        if !self.command("CAPA", "reply to CAPA")?.ok {
            return Ok(Capabilities::default());
        }
        let deadline = self.deadline();
        let lines = response::read_lines(
            &mut self.input,
            MAX_LIST_LINE,
            MAX_CAPA,
            &deadline,
            "CAPA list",
        )?;
        Ok(Capabilities::parse(&lines))
    }

    /// USER and PASS. A refusal is returned as the `-ERR` status, for the
    /// caller to map (wrong password 77, temporary 75).
    pub fn user_pass(&mut self, user: &str, password: &str) -> Result<Status, Error> {
        check_no_line_break(user, "user name")?;
        check_no_line_break(password, "password")?;
        let status = self.command(&format!("USER {user}"), "reply to USER")?;
        if !status.ok {
            return Ok(status);
        }
        let line = Zeroizing::new(format!("PASS {password}"));
        self.command(&line, "reply to PASS")
    }

    /// AUTH PLAIN with the credentials in the initial response, or after an
    /// empty `+ ` challenge when the line would exceed 255 octets.
    pub fn auth_plain(&mut self, user: &str, password: &str) -> Result<Status, Error> {
        let plain = Zeroizing::new(format!("\0{user}\0{password}"));
        let (status, _) = self.auth("PLAIN", plain.as_bytes(), b"*", true)?;
        Ok(status)
    }

    /// AUTH `mechanism` with the client's first message `first` (before
    /// base64): as an initial response on the AUTH line (RFC 5034) when
    /// `initial_response` and the line fits 255 octets, else after the
    /// server's `+` (the two steps Microsoft's POP3 takes for XOAUTH2). A
    /// challenge after it is the server's error (OAuth's JSON), answered
    /// with `abort` (before base64; PLAIN's `*` cancels as is) and returned
    /// beside the final status.
    pub fn auth(
        &mut self,
        mechanism: &str,
        first: &[u8],
        abort: &[u8],
        initial_response: bool,
    ) -> Result<(Status, Option<String>), Error> {
        let engine = base64::engine::general_purpose::STANDARD;
        let encoded = Zeroizing::new(engine.encode(first));
        let what = format!("reply to AUTH {mechanism}");
        let line = Zeroizing::new(format!("AUTH {mechanism} {}", encoded.as_str()));
        let mut reply = Vec::new();
        if initial_response && line.len() + 2 <= MAX_AUTH_LINE {
            self.send(&line);
            self.flush()?;
        } else {
            self.send(&format!("AUTH {mechanism}"));
            self.flush()?;
            self.read_reply(&mut reply, &what)?;
            if challenge(&reply).is_none() {
                return Ok((Status::parse(&reply)?, None));
            }
            self.send(&encoded);
            self.flush()?;
        }
        self.read_reply(&mut reply, &what)?;
        let mut error = None;
        if let Some(text) = challenge(&reply) {
            error = Some(text.to_string());
            let abort = if abort == b"*" {
                "*".to_string()
            } else {
                engine.encode(abort)
            };
            self.send(&abort);
            self.flush()?;
            self.read_reply(&mut reply, &what)?;
        }
        Ok((Status::parse(&reply)?, error))
    }

    fn read_reply(&mut self, line: &mut Vec<u8>, what: &str) -> Result<(), Error> {
        let deadline = self.deadline();
        line.clear();
        response::read_reply_line(&mut self.input, line, &deadline, what)
    }

    pub fn stls(&mut self) -> Result<Status, Error> {
        self.command("STLS", "reply to STLS")
    }

    /// STAT: number of messages and their total size.
    pub fn stat(&mut self) -> Result<(u32, u64), Error> {
        self.send("STAT");
        self.flush()?;
        self.read_stat()
    }

    /// The reply to a STAT sent before (pipelined).
    pub fn read_stat(&mut self) -> Result<(u32, u64), Error> {
        let status = self.read_ok("STAT")?;
        let mut words = status.text.split_ascii_whitespace();
        match (
            words.next().and_then(|w| w.parse().ok()),
            words.next().and_then(|w| w.parse().ok()),
        ) {
            (Some(count), Some(size)) => Ok((count, size)),
            _ => Err(Error::protocol(format!(
                "malformed reply to STAT: {}",
                status.describe()
            ))),
        }
    }

    /// LIST for the whole maildrop; `count` (from STAT) bounds the reply.
    pub fn list(&mut self, count: u32) -> Result<Vec<Listed>, Error> {
        self.send("LIST");
        self.flush()?;
        self.read_list(count)
    }

    /// The reply to a LIST sent before (pipelined); `count` bounds it.
    pub fn read_list(&mut self, count: u32) -> Result<Vec<Listed>, Error> {
        self.read_ok("LIST")?;
        let lines = self.listing(count, "LIST")?;
        lines
            .iter()
            .map(|line| {
                let (number, size) = two_words(line, "LIST")?;
                let size = size
                    .parse()
                    .map_err(|_| malformed_line("LIST", line.as_bytes()))?;
                Ok(Listed { number, size })
            })
            .collect()
    }

    /// UIDL for the whole maildrop, or `None` when the server refuses it.
    pub fn uidl(&mut self, count: u32) -> Result<Option<Vec<Unique>>, Error> {
        self.send("UIDL");
        self.flush()?;
        self.read_uidl(count)
    }

    /// The reply to a UIDL sent before (pipelined).
    pub fn read_uidl(&mut self, count: u32) -> Result<Option<Vec<Unique>>, Error> {
        if !self.read_status("reply to UIDL")?.ok {
            return Ok(None);
        }
        let lines = self.listing(count, "UIDL")?;
        lines
            .iter()
            .map(|line| {
                let (number, uidl) = two_words(line, "UIDL")?;
                Ok(Unique {
                    number,
                    uidl: uidl.to_string(),
                })
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    fn listing(&mut self, count: u32, what: &str) -> Result<Vec<String>, Error> {
        let deadline = self.deadline();
        let total = (count as usize + 16) * 128;
        let lines = response::read_lines(&mut self.input, MAX_LIST_LINE, total, &deadline, what)?;
        Ok(lines
            .into_iter()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .collect())
    }

    /// Reads the reply to a queued `RETR n` or `TOP n 0` into `message`.
    /// `size` is the LIST size, which bounds how much we accept and for how
    /// long (--timeout plus `size` at the wire layer's MIN_BODY_RATE). A `-ERR` is
    /// returned as its status with `message` empty.
    pub fn read_message(
        &mut self,
        message: &mut Vec<u8>,
        size: u64,
        what: &str,
    ) -> Result<Status, Error> {
        message.clear();
        let status = self.read_status(&format!("reply to {what}"))?;
        if !status.ok {
            return Ok(status);
        }
        let limit = size.saturating_mul(3).saturating_add(BODY_SLACK);
        let deadline = Deadline::for_body(self.timeout, size);
        response::read_body(&mut self.input, message, limit, &deadline, what)?;
        Ok(status)
    }

    /// QUIT: ends the session, and commits DELEs (the UPDATE state).
    pub fn quit(&mut self) -> Result<(), Error> {
        self.quit_sent = true;
        self.expect_ok("QUIT", "QUIT").map(|_| ())
    }

    /// Whether QUIT was sent already.
    pub fn quit_sent(&self) -> bool {
        self.quit_sent
    }
}

/// The text of a `+ text` (or bare `+`) continuation, as a string.
fn challenge(line: &[u8]) -> Option<&str> {
    match line {
        b"+" => Some(""),
        _ => std::str::from_utf8(line.strip_prefix(b"+ ")?).ok(),
    }
}

fn check_no_line_break(value: &str, what: &str) -> Result<(), Error> {
    if value.contains(['\r', '\n', '\0']) {
        return Err(Error::config(format!(
            "the {what} contains a line break or NUL, which POP3 cannot send"
        )));
    }
    Ok(())
}

/// `number word` from a LIST or UIDL line.
fn two_words<'a>(line: &'a str, what: &str) -> Result<(u32, &'a str), Error> {
    let mut words = line.split_ascii_whitespace();
    match (words.next().and_then(|w| w.parse().ok()), words.next()) {
        (Some(number), Some(word)) if number > 0 => Ok((number, word)),
        _ => Err(malformed_line(what, line.as_bytes())),
    }
}

fn malformed_line(what: &str, line: &[u8]) -> Error {
    Error::protocol(format!(
        "malformed line in the reply to {what}: {}",
        response::shown(line)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{self, Cursor};

    /// A canned server: reads come from `input`, writes are collected.
    struct Scripted {
        input: Cursor<Vec<u8>>,
        sent: Vec<u8>,
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl mailpipe::wire::Timed for Scripted {
        fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn client(replies: &str) -> Client<Scripted> {
        Client::new(
            Scripted {
                input: Cursor::new(replies.as_bytes().to_vec()),
                sent: Vec::new(),
            },
            Duration::from_secs(5),
        )
    }

    #[test]
    fn capabilities_list_and_uidl() {
        let mut c = client(
            "+OK hi\r\n+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN LOGIN\r\nPIPELINING\r\nUSER\r\n.\r\n\
             +OK 2 30\r\n+OK\r\n1 10\r\n2 20\r\n.\r\n+OK\r\n1 aaa\r\n2 b.b\r\n.\r\n",
        );
        c.greeting().expect("greeting");
        let caps = c.capa().expect("capa");
        assert!(caps.known && caps.top && caps.uidl && caps.pipelining && caps.user);
        assert!(!caps.stls);
        assert_eq!(caps.sasl, ["PLAIN", "LOGIN"]);
        assert_eq!(c.stat().expect("stat"), (2, 30));
        let list = c.list(2).expect("list");
        assert_eq!(
            list[1],
            Listed {
                number: 2,
                size: 20
            }
        );
        let uidl = c.uidl(2).expect("uidl").expect("supported");
        assert_eq!(uidl[1].uidl, "b.b");
        assert_eq!(
            String::from_utf8_lossy(&c.get_mut().sent),
            "CAPA\r\nSTAT\r\nLIST\r\nUIDL\r\n"
        );
    }

    #[test]
    fn auth_plain_initial_response_and_uidl_refused() {
        let mut c = client("+OK\r\n-ERR no UIDL here\r\n");
        assert!(c.auth_plain("u", "p").expect("auth").ok);
        assert!(c.uidl(1).expect("reply").is_none());
        assert_eq!(
            String::from_utf8_lossy(&c.get_mut().sent),
            "AUTH PLAIN AHUAcA==\r\nUIDL\r\n"
        );
        let long = "x".repeat(300);
        let mut c = client("+ \r\n-ERR [AUTH] nope\r\n");
        let status = c.auth_plain("u", &long).expect("reply");
        assert_eq!(status.code.as_deref(), Some("AUTH"));
        assert!(String::from_utf8_lossy(&c.get_mut().sent).starts_with("AUTH PLAIN\r\nAHUAeHh4"));
    }

    #[test]
    fn auth_oauth_in_two_steps_and_its_error_challenge() {
        // Microsoft's POP3: AUTH XOAUTH2, +, the payload; a refusal comes as
        // a challenge, answered with an empty line, then -ERR.
        let mut c = client("+ \r\n+ eyJzdGF0dXMiOiI0MDEifQ==\r\n-ERR [AUTH] refused\r\n");
        let (status, error) = c.auth("XOAUTH2", b"user=u", b"", false).expect("reply");
        assert!(!status.ok);
        assert_eq!(error.as_deref(), Some("eyJzdGF0dXMiOiI0MDEifQ=="));
        assert_eq!(
            String::from_utf8_lossy(&c.get_mut().sent),
            "AUTH XOAUTH2\r\ndXNlcj11\r\n\r\n"
        );
        // RFC 5034's initial response; OAUTHBEARER aborts with %x01.
        let mut c = client("+ e30=\r\n-ERR nope\r\n");
        let (_, error) = c
            .auth("OAUTHBEARER", b"n,a=u,", b"\x01", true)
            .expect("reply");
        assert_eq!(error.as_deref(), Some("e30="));
        assert_eq!(
            String::from_utf8_lossy(&c.get_mut().sent),
            "AUTH OAUTHBEARER bixhPXUs\r\nAQ==\r\n"
        );
        let mut c = client("+OK\r\n");
        let (status, error) = c.auth("XOAUTH2", b"user=u", b"", true).expect("reply");
        assert!(status.ok && error.is_none());
    }

    #[test]
    fn pipelined_retrs_and_refused_message() {
        let mut c = client("+OK 5 octets\r\na\r\n..b\r\n.\r\n-ERR no such message\r\n");
        c.send("RETR 1");
        c.send("RETR 9");
        c.flush().expect("sent");
        let mut message = Vec::new();
        assert!(c.read_message(&mut message, 5, "RETR 1").expect("1").ok);
        assert_eq!(message, b"a\r\n.b\r\n");
        assert!(!c.read_message(&mut message, 5, "RETR 9").expect("9").ok);
        assert!(message.is_empty());
    }

    #[test]
    fn line_breaks_in_credentials_are_refused() {
        let mut c = client("");
        let e = c.user_pass("a\r\nDELE 1", "p").expect_err("injection");
        assert_eq!(e.exit(), Exit::Config);
        assert!(c.get_mut().sent.is_empty());
    }
}
