//! The `-v` protocol transcript: the dialogue on stderr as `C: ...` / `S: ...`
//! lines, the way a student wants to read it, with credentials and message
//! bodies left out.
//!
//! This module is the shared core: splitting raw bytes into lines, the
//! `C:`/`S:` writer, the `<redacted>` marker, body elision, registered
//! secrets, escaping and cutting long lines. Each protocol's own rules (which
//! commands carry credentials, which replies carry a body) live in `smtp`,
//! `imap` and `pop3`, behind the `Rules` trait.
//!
//! Everywhere: registered secrets (`add_secret`, `add_credentials`) and their
//! base64 forms are replaced by `<redacted>` in any line. Bytes that are not
//! UTF-8 and control characters are shown as `\xNN`; long lines are cut.

mod imap;
mod pop3;
mod smtp;

use std::fmt;
use std::io::{self, Read, Write};

use base64::Engine;
use zeroize::Zeroizing;

use crate::oauth::OAuthMechanism;
use crate::secret::Secret;

/// Bytes of one line kept for redaction and display; the rest is only counted.
const KEEP: usize = 16 * 1024;
/// Characters of a line shown before the truncation marker.
const SHOW: usize = 1000;
const REDACTED: &[u8] = b"<redacted>";

/// Which protocol's rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Smtp,
    Imap,
    Pop3,
}

impl Dialect {
    fn rules(self) -> Box<dyn Rules> {
        match self {
            Dialect::Smtp => Box::<smtp::Smtp>::default(),
            Dialect::Imap => Box::<imap::Imap>::default(),
            Dialect::Pop3 => Box::<pop3::Pop3>::default(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Client,
    Server,
}

/// One protocol's view of complete lines: what to show, redact or elide.
/// `line` is without its line end; `len` is its full size on the wire
/// (counted into elided bodies); `cut` is `Some(len)` when only the first
/// KEEP bytes of it were kept.
trait Rules: Send {
    fn client(&mut self, out: &mut Out, line: &[u8], len: u64, cut: Option<u64>);
    fn server(&mut self, out: &mut Out, line: &[u8], len: u64, cut: Option<u64>);

    /// A literal announced at the end of a line (IMAP's `{N}`): where it
    /// starts in the line and how many bytes follow that are not shown.
    fn literal(&self, _line: &[u8]) -> Option<(usize, u64)> {
        None
    }

    /// Data announced by a complete line (SMTP's `BDAT n`): how many bytes
    /// follow it, shown as one `<n bytes{what}>` line, and `what`.
    fn chunk(&self, _line: &[u8]) -> Option<(u64, &'static str)> {
        None
    }
}

/// Bytes of one direction that do not yet make a complete line.
#[derive(Default)]
struct Side {
    kept: Vec<u8>,
    /// Length of the (logical) line so far, including what was not kept.
    len: u64,
    /// Bytes of a literal still to come, counted and not shown.
    skip: u64,
    /// Some of the line was not kept (longer than KEEP).
    cut: bool,
    /// The `skip` bytes are a chunk of this size, shown as one line at its end.
    chunk: Option<(u64, &'static str)>,
}

impl Side {
    fn push(&mut self, bytes: &[u8]) {
        let room = KEEP.saturating_sub(self.kept.len());
        self.cut |= bytes.len() > room;
        self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.len += bytes.len() as u64;
    }
}

/// The writing end: the sink and the secrets no line may show.
struct Out {
    sink: Box<dyn Write + Send>,
    secrets: Vec<Zeroizing<Vec<u8>>>,
}

impl Out {
    /// Writes one line; `cut` is the full size of a line that was not all kept.
    fn emit(&mut self, dir: Dir, line: &[u8], cut: Option<u64>) {
        let redacted = redact(line, &self.secrets);
        let prefix = match dir {
            Dir::Client => "C: ",
            Dir::Server => "S: ",
        };
        let mut out = String::with_capacity(redacted.len().min(SHOW) + 8);
        out.push_str(prefix);
        out.push_str(&render(&redacted, cut));
        out.push('\n');
        let _ = self.sink.write_all(out.as_bytes());
    }

    /// A line of credentials, shown only as `<redacted>`.
    fn redacted(&mut self, dir: Dir) {
        self.emit(dir, REDACTED, None);
    }

    /// Shows the first `words` words of a client line and `<redacted>` for the
    /// rest, if there is a rest.
    fn redacted_after(&mut self, line: &[u8], words: usize) {
        let mut shown = Vec::new();
        let mut parts = line.splitn(words + 1, |&b| b == b' ');
        for _ in 0..words {
            if let Some(p) = parts.next() {
                if !shown.is_empty() {
                    shown.push(b' ');
                }
                shown.extend_from_slice(p);
            }
        }
        if parts.next().is_some_and(|rest| !rest.is_empty()) {
            shown.push(b' ');
            shown.extend_from_slice(REDACTED);
        }
        self.emit(Dir::Client, &shown, None);
    }

    /// The end of an elided message body: `<N bytes{what}>` and then the `.`
    /// that ends it.
    fn elided(&mut self, dir: Dir, bytes: u64, what: &str) {
        self.emit(dir, format!("<{bytes} bytes{what}>").as_bytes(), None);
        self.emit(dir, b".", None);
    }

    fn add_pattern(&mut self, pattern: Vec<u8>) {
        if !pattern.is_empty() && !self.secrets.iter().any(|p| **p == pattern) {
            self.secrets.push(Zeroizing::new(pattern));
            // Longest first, so that a secret inside a longer form is not cut short.
            self.secrets.sort_by_key(|p| std::cmp::Reverse(p.len()));
        }
    }
}

/// The transcript writer. Feed it whole protocol lines (`client`, `server`) or
/// raw wire bytes (`client_bytes`, `server_bytes`; `TranscriptStream` does that).
/// Write errors on the sink are ignored: a transcript must not end a transfer.
pub struct Transcript {
    out: Out,
    dialect: Dialect,
    rules: Box<dyn Rules>,
    sides: [Side; 2],
}

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transcript")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl Transcript {
    /// A transcript written to `out` (tests use a `Vec<u8>` behind a mutex).
    pub fn new(dialect: Dialect, out: impl Write + Send + 'static) -> Transcript {
        Transcript {
            out: Out {
                sink: Box::new(out),
                secrets: Vec::new(),
            },
            dialect,
            rules: dialect.rules(),
            sides: [Side::default(), Side::default()],
        }
    }

    /// A transcript on stderr, as `-v` uses it.
    pub fn stderr(dialect: Dialect) -> Transcript {
        Transcript::new(dialect, io::stderr())
    }

    /// Never show this secret, nor its base64 encoding at any byte offset,
    /// wherever it turns up. Call it as soon as the secret is fetched.
    pub fn add_secret(&mut self, secret: &Secret) {
        let raw = secret.expose().as_bytes();
        if raw.is_empty() {
            return;
        }
        self.out.add_pattern(raw.to_vec());
        let quoted = secret.expose().replace('\\', "\\\\").replace('"', "\\\"");
        self.out.add_pattern(quoted.into_bytes());
        for form in base64_forms(raw) {
            self.out.add_pattern(form);
        }
    }

    /// `add_secret`, plus the exact SASL strings built from user and secret:
    /// PLAIN (`\0user\0secret`, `user\0user\0secret`), XOAUTH2 and
    /// OAUTHBEARER, base64-encoded.
    pub fn add_credentials(&mut self, user: &str, secret: &Secret) {
        self.add_secret(secret);
        let s = secret.expose();
        let engine = base64::engine::general_purpose::STANDARD;
        for plain in [
            Zeroizing::new(format!("\0{user}\0{s}")),
            Zeroizing::new(format!("{user}\0{user}\0{s}")),
        ]
        .into_iter()
        .chain(
            [OAuthMechanism::Xoauth2, OAuthMechanism::Oauthbearer]
                .map(|m| m.initial_response(user, secret)),
        ) {
            let encoded = Zeroizing::new(engine.encode(plain.as_bytes()));
            self.out
                .add_pattern(encoded.trim_end_matches('=').as_bytes().to_vec());
        }
    }

    /// One line the client sent (without its line end), for tools that log by hand.
    pub fn client(&mut self, line: &str) {
        self.client_bytes(line.as_bytes());
        self.client_bytes(b"\r\n");
    }

    /// One line the server sent (without its line end).
    pub fn server(&mut self, line: &str) {
        self.server_bytes(line.as_bytes());
        self.server_bytes(b"\r\n");
    }

    /// Raw bytes as the client wrote them; lines are logged once complete.
    pub fn client_bytes(&mut self, bytes: &[u8]) {
        self.feed(Dir::Client, bytes);
    }

    /// Raw bytes as read from the server.
    pub fn server_bytes(&mut self, bytes: &[u8]) {
        self.feed(Dir::Server, bytes);
    }

    /// A remark that is not on the wire, e.g. `-- TLS started`.
    pub fn note(&mut self, text: &str) {
        let line = format!("-- {}\n", render(text.as_bytes(), None));
        let _ = self.out.sink.write_all(line.as_bytes());
    }

    /// Logs what is left of an unfinished server line (the peer closed).
    pub fn finish(&mut self) {
        for dir in [Dir::Client, Dir::Server] {
            let side = &mut self.sides[dir as usize];
            if let Some((bytes, what)) = side.chunk.take() {
                let sent = bytes - std::mem::replace(&mut side.skip, 0);
                let text = format!("<{sent} of {bytes} bytes{what}, cut>");
                self.out.emit(dir, text.as_bytes(), None);
            }
            let side = &mut self.sides[dir as usize];
            if side.len > 0 {
                let kept = std::mem::take(&mut side.kept);
                let len = std::mem::replace(&mut side.len, 0);
                let cut = std::mem::replace(&mut side.cut, false);
                side.skip = 0;
                self.line(dir, &kept, len, cut.then_some(len));
            }
        }
    }

    fn feed(&mut self, dir: Dir, mut data: &[u8]) {
        while !data.is_empty() {
            let side = &mut self.sides[dir as usize];
            if side.skip > 0 {
                let n = side.skip.min(data.len() as u64) as usize;
                side.skip -= n as u64;
                data = &data[n..];
                match side.chunk {
                    None => side.len += n as u64,
                    Some((bytes, what)) if side.skip == 0 => {
                        side.chunk = None;
                        self.out
                            .emit(dir, format!("<{bytes} bytes{what}>").as_bytes(), None);
                    }
                    Some(_) => {}
                }
                continue;
            }
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    side.push(&data[..=i]);
                    data = &data[i + 1..];
                    self.complete(dir);
                }
                None => {
                    side.push(data);
                    data = &[];
                }
            }
        }
    }

    fn complete(&mut self, dir: Dir) {
        let side = &mut self.sides[dir as usize];
        let mut kept = std::mem::take(&mut side.kept);
        if let Some((open, n)) = self.rules.literal(strip_line_end(&kept)) {
            // The line goes on after the literal; show its size in place.
            kept.truncate(open);
            kept.extend_from_slice(format!("{{{n} bytes}}").as_bytes());
            side.kept = kept;
            side.skip = n;
            return;
        }
        let len = std::mem::replace(&mut side.len, 0);
        let cut = std::mem::replace(&mut side.cut, false);
        // Judged before the line changes the rules' state (a BDAT line inside
        // DATA's message is message).
        let chunk = self.rules.chunk(strip_line_end(&kept));
        self.line(dir, &kept, len, cut.then_some(len));
        kept.clear();
        let side = &mut self.sides[dir as usize];
        side.kept = kept;
        if let Some((bytes, what)) = chunk.filter(|&(bytes, _)| bytes > 0) {
            side.skip = bytes;
            side.chunk = Some((bytes, what));
        }
    }

    /// One complete line (with its line end) of `len` bytes on the wire;
    /// `cut` is `Some(len)` when only its first KEEP bytes were kept.
    fn line(&mut self, dir: Dir, kept: &[u8], len: u64, cut: Option<u64>) {
        let line = strip_line_end(kept);
        match dir {
            Dir::Client => self.rules.client(&mut self.out, line, len, cut),
            Dir::Server => self.rules.server(&mut self.out, line, len, cut),
        }
    }
}

/// Base64 of the secret as sent alone, and the part of its encoding that is
/// the same at any offset inside a longer base64 string (SASL PLAIN, XOAUTH2).
fn base64_forms(raw: &[u8]) -> Vec<Vec<u8>> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut forms = vec![engine.encode(raw).trim_end_matches('=').as_bytes().to_vec()];
    for offset in 0..3usize {
        let mut padded = Zeroizing::new(vec![0u8; offset]);
        padded.extend_from_slice(raw);
        let encoded = Zeroizing::new(engine.encode(padded.as_slice()));
        // Characters mixing prefix bits at the start, or whatever follows at
        // the end, differ by context; the whole groups in between do not.
        let start = [0, 2, 3][offset];
        let whole = (offset + raw.len()) / 3 * 4;
        if whole > start + 1 {
            forms.push(encoded.as_bytes()[start..whole].to_vec());
        }
    }
    forms
}

fn redact(line: &[u8], secrets: &[Zeroizing<Vec<u8>>]) -> Vec<u8> {
    let mut out = line.to_vec();
    for secret in secrets {
        let finder = memchr::memmem::Finder::new(secret.as_slice());
        if finder.find(&out).is_none() {
            continue;
        }
        let mut next = Vec::with_capacity(out.len());
        let mut rest = out.as_slice();
        while let Some(i) = finder.find(rest) {
            next.extend_from_slice(&rest[..i]);
            next.extend_from_slice(REDACTED);
            rest = &rest[i + secret.len()..];
        }
        next.extend_from_slice(rest);
        out = next;
    }
    out
}

/// Printable text: UTF-8 as is, control characters and bad bytes as `\xNN`,
/// cut after SHOW characters (or when `cut` says the line was longer than
/// what was kept) with a marker.
fn render(bytes: &[u8], cut: Option<u64>) -> String {
    let mut out = String::new();
    let mut shown = 0usize;
    let mut shortened = false;
    'chunks: for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown >= SHOW {
                shortened = true;
                break 'chunks;
            }
            if c.is_control() {
                if (c as u32) < 0x100 {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                } else {
                    out.push_str(&format!("\\u{{{:x}}}", c as u32));
                }
            } else {
                out.push(c);
            }
            shown += 1;
        }
        for b in chunk.invalid() {
            if shown >= SHOW {
                shortened = true;
                break 'chunks;
            }
            out.push_str(&format!("\\x{b:02x}"));
            shown += 1;
        }
    }
    match cut {
        Some(len) => out.push_str(&format!(" [... cut, line of {len} bytes]")),
        None if shortened => out.push_str(" [... cut]"),
        None => {}
    }
    out
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Any stream, with its traffic logged to a `Transcript` when there is one.
/// Without one, `read` and `write` only forward: `-v` off costs a branch per call.
#[derive(Debug)]
pub struct TranscriptStream<S> {
    inner: S,
    transcript: Option<Transcript>,
}

impl<S> TranscriptStream<S> {
    pub fn new(inner: S, transcript: Option<Transcript>) -> TranscriptStream<S> {
        TranscriptStream { inner, transcript }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The transcript, e.g. to `add_secret` before authenticating.
    pub fn transcript(&mut self) -> Option<&mut Transcript> {
        self.transcript.as_mut()
    }

    /// Replaces the stream and keeps the transcript, e.g. for STARTTLS:
    /// `s.map_inner(|plain| plain.start_tls(host, &config))`.
    pub fn map_inner<T, E>(
        self,
        f: impl FnOnce(S) -> Result<T, E>,
    ) -> Result<TranscriptStream<T>, E> {
        let TranscriptStream { inner, transcript } = self;
        Ok(TranscriptStream {
            inner: f(inner)?,
            transcript,
        })
    }
}

impl<S: Read> Read for TranscriptStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(t) = &mut self.transcript {
            if n == 0 {
                t.finish();
            } else {
                t.server_bytes(&buf[..n]);
            }
        }
        Ok(n)
    }
}

impl<S: Write> Write for TranscriptStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(t) = &mut self.transcript {
            t.client_bytes(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
