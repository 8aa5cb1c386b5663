//! The IMAP session: connect (implicit TLS, STARTTLS, or plain when the user
//! said so) with mailpipe's TLS helpers, wrap the stream in the `-v`
//! transcript, log in, switch on COMPRESS=DEFLATE when offered, and turn the
//! imap crate's errors into sysexits codes.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imap::Client;
use mailpipe::tls::GOODBYE_WAIT;
use mailpipe::wire::{self, Deflate, Timed, WireReader};
use mailpipe::{Dialect, Endpoint, Error, Exit, Security, Stream, TranscriptStream};

use crate::compress::{Meter, Verdict};
use crate::fetch::{self, FetchError, Fetched, Part};
use crate::id;
use crate::lineend::BareLf;
use crate::when::When;

/// The connection: TLS or plain, deflated after COMPRESS, logged for `-v`
/// (the transcript sees the protocol, not deflate), with a read budget while
/// a FETCH runs, read through the wire layer's buffer.
pub type Wire = WireReader<ReadBudget<TranscriptStream<Deflate<Stream>>>>;

/// The stream under the imap crate, shared so that `fetch.rs` can read the
/// bulk FETCH from it while the crate does everything else. Both read
/// through one buffer, so neither loses what the other read ahead.
#[derive(Debug, Clone)]
pub struct ImapStream(Arc<Mutex<Wire>>);

impl ImapStream {
    fn lock(&self) -> std::sync::MutexGuard<'_, Wire> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `user` and `secret` (and their SASL forms) out of the `-v`
    /// transcript; called for every secret fetched, a refreshed token too.
    pub fn add_credentials(&self, user: &str, secret: &mailpipe::Secret) {
        if let Some(t) = self.lock().get_mut().0.transcript() {
            t.add_credentials(user, secret);
        }
    }

    /// The replies kept so far, forgotten: those before login (a
    /// CAPABILITY) say nothing of the capabilities after it.
    pub fn take_seen(&self) -> Vec<u8> {
        self.lock()
            .get_mut()
            .1
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

impl Read for ImapStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.lock().read(buf)
    }
}

impl Write for ImapStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()
    }
}

thread_local! {
    /// Bytes the current thread's FETCH may still read; `u64::MAX`: no limit.
    static BUDGET: std::cell::Cell<u64> = const { std::cell::Cell::new(u64::MAX) };
}

/// Runs `f` (one UID FETCH) allowing it to read at most `bytes` bytes: a
/// batch is buffered whole, so a server that announces a literal
/// far beyond RFC822.SIZE, or never ends one, must not exhaust memory.
pub fn with_read_budget<T>(bytes: u64, f: impl FnOnce() -> T) -> T {
    BUDGET.with(|b| b.set(bytes));
    let result = f();
    BUDGET.with(|b| b.set(u64::MAX));
    result
}

/// Counts what is read against the thread's `BUDGET`; while `seen` is
/// set (logging in), keeps what the imap crate read (the reply to LOGIN and
/// its capabilities) and reads a bare LF as CRLF (`lineend.rs`); while a
/// `Meter` is set (`--compress auto` measuring), times what arrives.
#[derive(Debug)]
pub struct ReadBudget<S>(S, Option<Vec<u8>>, BareLf, Option<Meter>);

/// Bytes of server replies kept while logging in.
const SEEN_BYTES: usize = 16 * 1024;

impl<S: Read> Read for ReadBudget<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.1 {
            Some(_) => self.2.read(&mut self.0, buf)?,
            None => self.0.read(buf)?,
        };
        if let Some(meter) = self.3.as_mut() {
            meter.read(n, Instant::now());
        }
        if let Some(seen) = self.1.as_mut() {
            let room = SEEN_BYTES.saturating_sub(seen.len());
            seen.extend_from_slice(&buf[..n.min(room)]);
        }
        BUDGET.with(|b| {
            let left = b.get();
            if left == u64::MAX {
                return Ok(n);
            }
            if n as u64 > left {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the server sent far more than the messages' RFC822.SIZE",
                ));
            }
            b.set(left - n as u64);
            Ok(n)
        })
    }
}

impl<S: Timed> Timed for ReadBudget<S> {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }
}

impl<S: Write> Write for ReadBudget<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
/// A logged-in session: the imap crate's, and the stream under it.
pub struct Session {
    imap: imap::Session<ImapStream>,
    stream: ImapStream,
    /// Number of the last pipelined command's tag (`p1`, `p2`, ...): its
    /// own prefix, so that no tag of the imap crate's (`a1`...) is reused.
    tag: u32,
    /// Whether the server took our IMAP ID (`id.rs`).
    id_sent: bool,
    /// The capabilities the LOGIN reply listed (upper case), if it did...
    capabilities: Option<Vec<String>>,
    /// ...else the answer to one CAPABILITY, shared by COMPRESS, ID and
    /// LITERAL+.
    asked_capabilities: Option<imap::types::Capabilities>,
    /// `--compress auto`: the round trip timed at login (COMPRESS offered).
    link_rtt: Option<Duration>,
}

impl std::ops::Deref for Session {
    type Target = imap::Session<ImapStream>;
    fn deref(&self) -> &Self::Target {
        &self.imap
    }
}

impl std::ops::DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.imap
    }
}

impl Session {
    /// Sends `UID FETCH set query` without waiting for the responses to
    /// those sent before (`alone`: there are none in flight); returns its
    /// tag. Responses come in the order sent (`read_fetch`).
    pub fn send_fetch(
        &mut self,
        endpoint: &Endpoint,
        set: &str,
        query: &str,
        alone: bool,
    ) -> Result<String, Error> {
        let tag = self.next_tag();
        {
            let mut wire = self.stream.lock();
            wire.write_all(format!("{tag} UID FETCH {set} {query}\r\n").as_bytes())
                .and_then(|()| wire.flush())
                .map_err(|e| {
                    wire::peer_error(e, "sending UID FETCH", endpoint.timeout)
                        .context(&endpoint.url)
                })?;
        }
        if alone {
            self.meter_sent();
        }
        Ok(tag)
    }

    /// Reads responses up to the next tagged OK of a FETCH in flight, within
    /// the thread's read budget (`with_read_budget`): the FETCH responses
    /// read (the server may interleave those of several commands, as Dovecot
    /// does) and that OK's tag.
    pub fn read_fetch(&mut self, endpoint: &Endpoint) -> Result<(Vec<Fetched>, String), Error> {
        let budget = BUDGET.with(|b| b.get());
        let mut wire = self.stream.lock();
        fetch::read_fetch_response(&mut wire, budget).map_err(|e| refused(endpoint, e))
    }

    /// A tag of our own (`p1`, `p2`, ...) for a command sent past the imap crate.
    pub fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("p{}", self.tag)
    }

    /// The connection, for a command the imap crate cannot run (IDLE: follow.rs).
    pub fn wire(&self) -> std::sync::MutexGuard<'_, Wire> {
        self.stream.lock()
    }

    /// At login: `always` sends COMPRESS DEFLATE if the server offers it
    /// (`start_compress`); `auto` only times the link (`measured`: the ID
    /// command's round trip; without one, a NOOP's) for `Choice`, which
    /// decides later, from the rate FETCH responses arrive at.
    fn compress(
        &mut self,
        endpoint: &Endpoint,
        when: When,
        measured: Option<Duration>,
    ) -> Result<(), Error> {
        match when {
            When::Never => Ok(()),
            When::Always => self.start_compress(endpoint).map(|_| ()),
            When::Auto => {
                if self.has_capability(endpoint, "COMPRESS=DEFLATE")? {
                    self.link_rtt = Some(match measured {
                        Some(rtt) => rtt,
                        None => self.round_trip(endpoint)?,
                    });
                }
                Ok(())
            }
        }
    }

    /// Sends COMPRESS DEFLATE if the server offers it (after login, with
    /// nothing in flight: RFC 4978 allows nothing more until its reply) and
    /// deflates every later byte, the imap crate's and ours; whether it is
    /// on. A NO leaves the session as it was.
    pub fn start_compress(&mut self, endpoint: &Endpoint) -> Result<bool, Error> {
        if !self.has_capability(endpoint, "COMPRESS=DEFLATE")? {
            return Ok(false);
        }
        self.imap
            .run_command("COMPRESS DEFLATE")
            .map_err(|e| imap_error(endpoint, e))?;
        let mut wire = self.stream.lock();
        match fetch::read_responses(&mut wire, MAX_UNTAGGED_LITERAL, |_| Ok(())) {
            Ok(_) => {
                // The imap crate read nothing past its replies, and we
                // nothing past this one but what the server compressed.
                let ahead = wire.take_buffered();
                let transcript = &mut wire.get_mut().0;
                transcript.get_mut().start(&ahead);
                if let Some(t) = transcript.transcript() {
                    t.note("COMPRESS=DEFLATE from here on; the lines shown are inflated");
                }
                Ok(true)
            }
            Err(FetchError::Refused { .. }) => Ok(false),
            Err(FetchError::Failed(e)) => Err(e.context(&endpoint.url)),
        }
    }

    /// The round trip `--compress auto` timed at login, when the server
    /// offers COMPRESS=DEFLATE.
    pub fn link_round_trip(&self) -> Option<Duration> {
        self.link_rtt
    }

    /// Times what this connection reads with `meter` from now on (`None`:
    /// stops timing).
    pub fn set_meter(&self, meter: Option<Meter>) {
        self.stream.lock().get_mut().3 = meter;
    }

    /// Tells the meter a FETCH went out with nothing in flight (`Meter::sent`).
    fn meter_sent(&self) {
        if let Some(meter) = self.stream.lock().get_mut().3.as_mut() {
            meter.sent(Instant::now());
        }
    }

    /// The meter's verdict, once it has one.
    pub fn verdict(&self) -> Option<Verdict> {
        self.stream.lock().get_ref().3.as_ref()?.verdict()
    }

    /// A line of `text` in the `-v` transcript.
    pub fn note(&self, text: &str) {
        if let Some(t) = self.stream.lock().get_mut().0.transcript() {
            t.note(text);
        }
    }

    /// Notes in the `-v` transcript the bytes on the wire and what they
    /// stand for (inflated), so far.
    pub fn note_wire_bytes(&self) {
        let mut wire = self.stream.lock();
        let transcript = &mut wire.get_mut().0;
        let compressing = transcript.get_ref().is_compressing();
        let bytes = transcript.get_ref().bytes();
        if let Some(t) = transcript.transcript() {
            t.note(&if compressing {
                format!("COMPRESS=DEFLATE: {bytes}")
            } else {
                format!(
                    "no compression: read {} bytes, wrote {}",
                    bytes.read_wire, bytes.written_wire
                )
            });
        }
    }
}

/// The capabilities a LOGIN reply lists (`OK [CAPABILITY ...]` or an
/// untagged `* CAPABILITY`), upper case; `None` when it lists none.
pub(crate) fn listed_capabilities(replies: &[u8]) -> Option<Vec<String>> {
    let text = String::from_utf8_lossy(replies).to_ascii_uppercase();
    let mut listed: Option<Vec<String>> = None;
    for line in text.lines() {
        if let Some((_, rest)) = line.split_once("CAPABILITY ") {
            let list = rest.split(']').next().unwrap_or_default();
            listed
                .get_or_insert_with(Vec::new)
                .extend(list.split_ascii_whitespace().map(str::to_string));
        }
    }
    listed
}

/// A failed FETCH (or other command read by `fetch.rs`) as the tool's error.
fn refused(endpoint: &Endpoint, e: FetchError) -> Error {
    match e {
        FetchError::Failed(e) => e.context(&endpoint.url),
        FetchError::Refused { status, text } => {
            crate::throttle::refused(&endpoint.url, &status, &text)
        }
    }
}

impl Session {
    /// Runs `command` (sent through the imap crate, so its tags stay right)
    /// and returns its untagged responses as read by `fetch.rs`, which undoes
    /// the escapes of quoted strings and reads literals (the crate's parser
    /// hands quoted mailbox names back still escaped).
    pub fn untagged(
        &mut self,
        endpoint: &Endpoint,
        command: &str,
    ) -> Result<Vec<Vec<Part>>, Error> {
        self.imap
            .run_command(command)
            .map_err(|e| imap_error(endpoint, e))?;
        let mut responses = Vec::new();
        let mut wire = self.stream.lock();
        fetch::read_responses(&mut wire, MAX_UNTAGGED_LITERAL, |parts| {
            responses.push(parts);
            Ok(())
        })
        .map_err(|e| refused(endpoint, e))?;
        Ok(responses)
    }
}

impl Session {
    /// Runs `command`, whose untagged responses nobody needs (ID), and
    /// returns the server's refusal (`NO text`, `BAD text`) instead of
    /// failing on it: the caller judges whether it matters.
    pub fn refusable(
        &mut self,
        endpoint: &Endpoint,
        command: &str,
    ) -> Result<Option<String>, Error> {
        self.imap
            .run_command(command)
            .map_err(|e| imap_error(endpoint, e))?;
        let mut wire = self.stream.lock();
        match fetch::read_responses(&mut wire, MAX_UNTAGGED_LITERAL, |_| Ok(())) {
            Ok(_tag) => Ok(None),
            Err(FetchError::Refused { status, text }) => Ok(Some(format!("{status} {text}"))),
            Err(FetchError::Failed(e)) => Err(e.context(&endpoint.url)),
        }
    }

    /// Whether the server lists `name` after login (asked at most once).
    pub fn has_capability(&mut self, endpoint: &Endpoint, name: &str) -> Result<bool, Error> {
        if let Some(listed) = &self.capabilities {
            return Ok(listed.iter().any(|c| c.eq_ignore_ascii_case(name)));
        }
        if self.asked_capabilities.is_none() {
            let caps = self
                .imap
                .capabilities()
                .map_err(|e| imap_error(endpoint, e))?;
            self.asked_capabilities = Some(caps);
        }
        Ok(self
            .asked_capabilities
            .as_ref()
            .is_some_and(|caps| caps.has_str(name)))
    }

    /// How long a NOOP takes: one round trip, the server doing next to nothing.
    fn round_trip(&mut self, endpoint: &Endpoint) -> Result<Duration, Error> {
        let sent = Instant::now();
        self.imap.noop().map_err(|e| imap_error(endpoint, e))?;
        Ok(sent.elapsed())
    }

    /// Whether COMPRESS=DEFLATE is on for this connection.
    pub fn compressing(&self) -> bool {
        self.stream.lock().get_ref().0.get_ref().is_compressing()
    }

    /// Whether the server took our IMAP ID after login.
    pub fn id_sent(&self) -> bool {
        self.id_sent
    }
}

impl Session {
    /// LOGOUT after an error, best-effort, so that the server sees a clean
    /// end instead of a dropped connection. Each read waits at most
    /// `GOODBYE_WAIT`, and at most `GOODBYE_BYTES` are read: after a garbled
    /// or endless response the reply to LOGOUT may never come.
    pub fn goodbye(&mut self) {
        {
            let mut wire = self.stream.lock();
            wire.get_ref().0.get_ref().get_ref().prepare_goodbye();
            wire.set_timeout(GOODBYE_WAIT);
        }
        let _ = with_read_budget(GOODBYE_BYTES, || self.imap.logout());
    }
}

/// Bytes read at most while waiting for the reply to a LOGOUT after an error.
const GOODBYE_BYTES: u64 = 64 * 1024;

/// Longest literal accepted outside a FETCH (a mailbox name in LIST).
const MAX_UNTAGGED_LITERAL: u64 = 64 * 1024;

/// `name` as an IMAP quoted string.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Connects, starts TLS as the URL says, logs in and, for `compress`
/// `always` when the server offers it, starts COMPRESS=DEFLATE (`auto`:
/// times the link for `compress::Choice`).
pub fn open(endpoint: &Endpoint, compress: When) -> Result<Session, Error> {
    let config = endpoint.tls_config()?;
    // Every error of a session names its server, as the others do.
    let raw = endpoint
        .open(&config)
        .map_err(|e| e.context(&endpoint.url))?;
    let stream = TranscriptStream::new(raw, endpoint.transcript(Dialect::Imap));
    let mut wire = WireReader::new(stream, endpoint.timeout);
    let url = &endpoint.url;
    let mut line = Vec::new();
    let deadline = wire.deadline();
    wire.read_line(&mut line, MAX_LINE, &deadline, "the greeting")
        .map_err(|e| e.context(url))?;
    check_greeting(endpoint, &line)?;
    let greeting_id = id::greeting_lists_id(&line);
    if url.security == Security::StartTls {
        wire.write_all(b"s0 STARTTLS\r\n")
            .and_then(|()| wire.flush())
            .map_err(|e| wire::peer_error(e, "sending STARTTLS", endpoint.timeout).context(url))?;
        let deadline = wire.deadline();
        loop {
            wire.read_line(&mut line, MAX_LINE, &deadline, "the reply to STARTTLS")
                .map_err(|e| e.context(url))?;
            if line.starts_with(b"s0 OK") {
                break;
            }
            if line.starts_with(b"s0 ") {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!(
                        "{url}: server refused STARTTLS ({}); use imaps:// or, only if you \
                         mean it, --tls none",
                        String::from_utf8_lossy(
                            line.get(3..200.min(line.len())).unwrap_or_default()
                        )
                        .trim()
                    ),
                ));
            }
        }
        wire = wire::start_tls(wire, "STARTTLS", &url.host, &config).map_err(|e| e.context(url))?;
    }
    endpoint.check_auth_allowed(wire.get_ref().get_ref().is_tls())?;
    let wire = wire.map_inner(|t| {
        let Ok(t) = t.map_inner(|s| Ok::<_, std::convert::Infallible>(Deflate::new(s)));
        ReadBudget(t, Some(Vec::new()), BareLf::default(), None)
    });
    let shared = ImapStream(Arc::new(Mutex::new(wire)));
    let client = Client::new(shared.clone());
    let sasl_ir = endpoint.sasl_ir.unwrap_or(true);
    let imap = crate::auth::log_in(client, &shared, endpoint, &line, sasl_ir)?;
    let mut session = Session {
        imap,
        stream: shared,
        tag: 0,
        id_sent: false,
        capabilities: None,
        asked_capabilities: None,
        link_rtt: None,
    };
    let seen = session.stream.lock().get_mut().1.take().unwrap_or_default();
    session.capabilities = listed_capabilities(&seen);
    // ID first: its round trip is the one `--compress auto` judges the link by.
    let asked = Instant::now();
    session.id_sent = id::introduce(&mut session, endpoint, greeting_id)?;
    let id_round_trip = session.id_sent.then(|| asked.elapsed());
    session.compress(endpoint, compress, id_round_trip)?;
    Ok(session)
}

/// LOGOUT after a refused login, best-effort and within `GOODBYE_WAIT` as
/// `Session::goodbye`: a client that just hangs up is logged as an I/O error
/// by some servers (GNU Mailutils: "read error on control stream"). The
/// imap crate has no LOGOUT before login, so it is written here; its tag
/// is one the crate never uses.
pub fn logout_refused(stream: &ImapStream) {
    let mut wire = stream.lock();
    wire.get_ref().0.get_ref().get_ref().prepare_goodbye();
    wire.set_timeout(GOODBYE_WAIT);
    if wire
        .write_all(b"z0 LOGOUT\r\n")
        .and_then(|()| wire.flush())
        .is_err()
    {
        return;
    }
    let deadline = wire.deadline();
    let mut line = Vec::new();
    // `* BYE`, then the tagged OK; a few lines at most.
    for _ in 0..4 {
        if wire
            .read_line(&mut line, MAX_LINE, &deadline, "the reply to LOGOUT")
            .is_err()
            || line.starts_with(b"z0 ")
        {
            break;
        }
    }
}

fn check_greeting(endpoint: &Endpoint, greeting: &[u8]) -> Result<(), Error> {
    let text = String::from_utf8_lossy(&greeting[..greeting.len().min(200)]);
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

/// Longest greeting or STARTTLS reply line.
const MAX_LINE: usize = 64 * 1024;

/// The imap crate's errors as sysexits: a lost or timed-out connection is a
/// temporary failure (75: run again, the state file resumes), a server that
/// breaks the protocol 76. Callers map NO replies they expect themselves.
pub fn imap_error(endpoint: &Endpoint, e: imap::Error) -> Error {
    let url = &endpoint.url;
    match e {
        imap::Error::Io(io) => {
            wire::peer_error(io, "talking to the server", endpoint.timeout).context(url)
        }
        imap::Error::ConnectionLost => Error::new(
            Exit::TempFail,
            format!("{url}: the server closed the connection"),
        ),
        // The imap crate reports a response it cannot parse as a BYE
        // without text or code; a real BYE carries text.
        imap::Error::Bye(bye)
            if bye.code.is_none() && bye.information == "no explanation given" =>
        {
            Error::protocol(format!(
                "{url}: the server sent a response that does not parse"
            ))
        }
        imap::Error::Bye(bye) => Error::new(
            Exit::TempFail,
            format!("{url}: the server ended the session: {}", bye.information),
        ),
        imap::Error::No(no) => crate::throttle::refused(url, "NO", &no.information),
        imap::Error::Bad(bad) => {
            Error::protocol(format!("{url}: server said BAD: {}", bad.information))
        }
        imap::Error::Validate(v) => Error::usage(format!("{url}: {v}")),
        other => Error::protocol(format!("{url}: {other}")),
    }
}
