//! The IMAP session: connect (implicit TLS, STARTTLS, or plain when the user
//! said so) with mailpipe's TLS helpers, wrap the stream in the `-v`
//! transcript, log in, and turn the imap crate's errors into sysexits codes.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use imap::{Authenticator, Client};
use mailpipe::{Dialect, Endpoint, Error, Exit, Security, Stream, TranscriptStream};

/// The stream under the imap crate: TLS or plain, logged for `-v`.
pub type ImapStream = TranscriptStream<Stream>;
pub type Session = imap::Session<ImapStream>;

/// Connects, starts TLS as the URL says and logs in.
pub fn open(endpoint: &Endpoint) -> Result<Session, Error> {
    let config = endpoint.tls_config()?;
    let raw = endpoint.open(&config)?;
    let mut stream = TranscriptStream::new(raw, endpoint.transcript(Dialect::Imap));
    let url = &endpoint.url;
    // The greeting and STARTTLS by hand, a byte at a time: the imap crate
    // would buffer past them, and its own STARTTLS needs its own connector.
    let greeting = read_line(&mut stream, endpoint.timeout).map_err(|e| net_error(endpoint, e))?;
    check_greeting(endpoint, &greeting)?;
    if url.security == Security::StartTls {
        stream
            .write_all(b"s0 STARTTLS\r\n")
            .map_err(|e| net_error(endpoint, e))?;
        loop {
            let line =
                read_line(&mut stream, endpoint.timeout).map_err(|e| net_error(endpoint, e))?;
            if line.starts_with(b"s0 OK") {
                break;
            }
            if line.starts_with(b"s0 ") {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!(
                        "{url}: server refused STARTTLS ({}); use imaps:// or, only if you \
                         mean it, --tls none",
                        String::from_utf8_lossy(line.get(3..).unwrap_or_default()).trim()
                    ),
                ));
            }
        }
        stream = stream.map_inner(|s| s.start_tls(&url.host, &config))?;
        if let Some(t) = stream.transcript() {
            t.note("TLS started");
        }
    }
    endpoint.check_auth_allowed(stream.get_ref().is_tls())?;
    let user = endpoint.login()?.to_string();
    let secret = if endpoint.uses_oauth() {
        endpoint.oauth_token()?
    } else {
        endpoint.password()?
    };
    if let Some(t) = stream.transcript() {
        t.add_credentials(&user, &secret);
    }
    let client = Client::new(stream);
    let result = if endpoint.uses_oauth() {
        let auth = Sasl(format!(
            "user={user}\x01auth=Bearer {}\x01\x01",
            secret.expose()
        ));
        client.authenticate("XOAUTH2", &auth)
    } else {
        let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
        if printable(&user) && printable(secret.expose()) {
            // One round trip.
            client.login(&user, secret.expose())
        } else {
            // LOGIN's quoted strings are 7-bit; SASL PLAIN carries UTF-8.
            let auth = Sasl(format!("\0{user}\0{}", secret.expose()));
            client.authenticate("PLAIN", &auth)
        }
    };
    result.map_err(|(e, _)| match e {
        imap::Error::No(no) => Error::new(
            Exit::NoPerm,
            format!("{url}: authentication failed: {}", no.information),
        ),
        imap::Error::Bad(bad) => Error::new(
            Exit::NoPerm,
            format!("{url}: authentication refused: {}", bad.information),
        ),
        other => imap_error(endpoint, other),
    })
}

/// A SASL response computed in advance (PLAIN, XOAUTH2).
struct Sasl(String);

impl Authenticator for Sasl {
    type Response = String;
    fn process(&self, _challenge: &[u8]) -> String {
        self.0.clone()
    }
}

fn check_greeting(endpoint: &Endpoint, greeting: &[u8]) -> Result<(), Error> {
    let text = String::from_utf8_lossy(greeting);
    let text = text.trim_end();
    if text.starts_with("* OK") {
        return Ok(());
    }
    let exit = if text.starts_with("* BYE") {
        Exit::Unavailable
    } else {
        Exit::Protocol
    };
    Err(Error::new(
        exit,
        format!(
            "{}: unexpected greeting {text:?} (is this an IMAP server?)",
            endpoint.url
        ),
    ))
}

/// One line, read a byte at a time so that nothing after it is consumed.
/// `--timeout` bounds the whole line: a server dripping a byte at a time
/// would otherwise keep each read, and so the run, alive forever.
fn read_line(stream: &mut impl Read, timeout: Duration) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if Instant::now() > deadline {
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        if stream.read(&mut byte)? == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        line.push(byte[0]);
        if byte[0] == b'\n' || line.len() > 64 * 1024 {
            return Ok(line);
        }
    }
}

fn net_error(endpoint: &Endpoint, e: io::Error) -> Error {
    imap_error(endpoint, imap::Error::Io(e))
}

/// The imap crate's errors as sysexits: a lost or timed-out connection is a
/// temporary failure (75: run again, the state file resumes), a server that
/// breaks the protocol 76. Callers map NO replies they expect themselves.
pub fn imap_error(endpoint: &Endpoint, e: imap::Error) -> Error {
    let url = &endpoint.url;
    match e {
        imap::Error::Io(io) => match io.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::new(
                Exit::TempFail,
                format!(
                    "{url}: no answer within {} s (--timeout)",
                    endpoint.timeout.as_secs()
                ),
            ),
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Error::new(
                Exit::TempFail,
                format!("{url}: the server closed the connection"),
            ),
            _ => Error::new(
                Exit::TempFail,
                format!("{url}: {}", Error::from(io).message()),
            ),
        },
        imap::Error::ConnectionLost => Error::new(
            Exit::TempFail,
            format!("{url}: the server closed the connection"),
        ),
        imap::Error::Bye(bye) => Error::new(
            Exit::TempFail,
            format!("{url}: the server ended the session: {}", bye.information),
        ),
        imap::Error::No(no) => {
            Error::protocol(format!("{url}: server said NO: {}", no.information))
        }
        imap::Error::Bad(bad) => {
            Error::protocol(format!("{url}: server said BAD: {}", bad.information))
        }
        imap::Error::Validate(v) => Error::usage(format!("{url}: {v}")),
        other => Error::protocol(format!("{url}: {other}")),
    }
}
