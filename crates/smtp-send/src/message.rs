//! The message as smtp-send checks, completes and transmits it: its header
//! block (split by the shared message library, byte-exactly, so that
//! everything not changed is sent as read), Bcc removal, Date and Message-ID
//! when missing, and the DATA encoding (bare LF and bare CR to CRLF, then
//! dot-stuffing, then the final `.` in the same buffer).

use chrono::Local;
use mailpipe::message::parse::header::uses_crlf;
use mailpipe::message::{line_number, strict_header_block, Irregular};
use mailpipe::Error;

/// RFC 5322 section 2.1.1: a line longer than this is rewrapped or refused on
/// the way; better to say so than to have a server garble it.
const MAX_LINE: usize = 998;

/// One header field: its name and where its bytes are (continuation lines and
/// the line end included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub start: usize,
    pub end: usize,
}

/// The header block of a message.
#[derive(Debug, Clone)]
pub struct HeaderBlock {
    pub headers: Vec<Header>,
    /// Where the header block ends: the blank line, or the end of the message.
    pub end: usize,
    /// The message's own line end, used for the headers we add.
    pub crlf: bool,
}

impl HeaderBlock {
    pub fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    }
}

/// Finds the header block and checks what a server would otherwise mangle:
/// the first line must be a header field, every header line a field or its
/// continuation, no NUL byte anywhere and no line over 998 bytes. Errors are 65.
/// The split is the message library's, strict: what it would repair is refused.
pub fn parse_header_block(raw: &[u8]) -> Result<HeaderBlock, Error> {
    if raw.starts_with(b"From ") {
        return Err(Error::data(
            "the message starts with an mbox From_ line: use --mbox to send an mbox",
        ));
    }
    check_lines(raw)?;
    let crlf = uses_crlf(raw);
    let block = strict_header_block(raw).map_err(|irregular| {
        Error::data(match irregular {
            Irregular::IndentedFirstLine => {
                "the message starts with an indented line, not a header field".to_string()
            }
            Irregular::NotAField { line } => format!(
                "line {line} of the message is neither a header field nor the blank line \
                 that ends the headers"
            ),
        })
    })?;
    let end = block.end();
    let headers = block
        .fields
        .iter()
        .map(|f| Header {
            name: String::from_utf8_lossy(f.name).into_owned(),
            start: f.start,
            end: f.end,
        })
        .collect::<Vec<_>>();
    Ok(HeaderBlock { headers, end, crlf })
}

fn check_lines(raw: &[u8]) -> Result<(), Error> {
    if let Some(i) = memchr::memchr(0, raw) {
        let line = line_number(raw, i);
        return Err(Error::data(format!(
            "line {line} of the message contains a NUL byte, which SMTP cannot carry"
        )));
    }
    for (index, line) in raw.split_inclusive(|&b| b == b'\n').enumerate() {
        if strip_line_end(line).len() > MAX_LINE {
            return Err(Error::data(format!(
                "line {} of the message is longer than {MAX_LINE} bytes; encode the body \
                 (quoted-printable or base64, as mkmime does)",
                index + 1
            )));
        }
    }
    Ok(())
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The message as transmitted: Bcc and Resent-Bcc fields removed, and Date
/// and Message-ID added at the end of the header block when missing (msmtp's
/// `auto`). Everything else is byte for byte what was read.
pub fn prepare(raw: &[u8], block: &HeaderBlock, id_domain: &str) -> Vec<u8> {
    let hidden = |h: &Header| {
        h.name.eq_ignore_ascii_case("bcc") || h.name.eq_ignore_ascii_case("resent-bcc")
    };
    let eol: &[u8] = if block.crlf { b"\r\n" } else { b"\n" };
    let mut out = Vec::with_capacity(raw.len() + 128);
    let mut copied = 0;
    for header in block.headers.iter().filter(|h| hidden(h)) {
        out.extend_from_slice(&raw[copied..header.start]);
        copied = header.end;
    }
    out.extend_from_slice(&raw[copied..block.end]);
    if block.end > 0 && !raw[..block.end].ends_with(b"\n") {
        // A headers-only message whose last line has no line end.
        out.extend_from_slice(eol);
    }
    if !block.has("date") {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(Local::now().to_rfc2822().as_bytes());
        out.extend_from_slice(eol);
    }
    if !block.has("message-id") {
        out.extend_from_slice(format!("Message-ID: {}", new_message_id(id_domain)).as_bytes());
        out.extend_from_slice(eol);
    }
    if block.end == raw.len() {
        // No body: the blank line that ends the header block.
        out.extend_from_slice(eol);
    } else {
        out.extend_from_slice(&raw[block.end..]);
    }
    out
}

/// `<20261123T122501.123456789.4242.1@example.org>`: time to the nanosecond,
/// process id and a counter, so two messages of one run never share one.
fn new_message_id(domain: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = Local::now();
    format!(
        "<{}.{}.{}@{}>",
        now.format("%Y%m%dT%H%M%S%.9f"),
        std::process::id(),
        n,
        domain
    )
}

/// The value of the Message-ID field, for reports.
pub fn message_id(raw: &[u8]) -> Option<String> {
    let (block, _) = mailpipe::message::header_block(raw);
    let value = String::from_utf8_lossy(block.first("message-id")?.value);
    let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
    (!value.is_empty()).then_some(value)
}

/// True when the message has a byte above 127 (then the server must offer 8BITMIME).
pub fn has_8bit(message: &[u8]) -> bool {
    !message.is_ascii()
}

/// The DATA payload: every line ended by CRLF, a leading `.` doubled, and
/// the terminating `.` line in the same buffer, so that the end of the body
/// and the final `.` leave in one write. A bare LF and a bare CR each end a
/// line too (become CRLF, as Python's smtplib does): RFC 5321 2.3.8 allows CR
/// and LF only together, and a bare CR passed through would let `\r.\r\n`
/// end the data early at a lenient server (SMTP smuggling); a line after a
/// bare CR or LF that starts with `.` is stuffed like any other. Returns the
/// message size as RFC 1870 counts it for SIZE=: CRLF line ends, no
/// stuffing, no final `.`.
pub fn encode_data(message: &[u8], out: &mut Vec<u8>) -> usize {
    let stuffed = encode_lines(message, out, true);
    out.extend_from_slice(b".\r\n");
    out.len() - 3 - stuffed
}

/// The BDAT payload (RFC 3030): the same CRLF line ends as `encode_data`, so
/// both deliver the same bytes, but no dot-stuffing and no final `.`: BDAT
/// counts bytes. Returns the size (all of `out`).
pub fn encode_chunked(message: &[u8], out: &mut Vec<u8>) -> usize {
    encode_lines(message, out, false);
    out.len()
}

/// Every line of `message` into `out` with CRLF, a leading `.` doubled when
/// `stuff`; returns how many dots were added.
fn encode_lines(message: &[u8], out: &mut Vec<u8>, stuff: bool) -> usize {
    out.clear();
    let mut stuffed = 0;
    out.reserve(message.len() + message.len() / 32 + 8);
    let mut rest = message;
    while !rest.is_empty() {
        // The line ends at the first CR or LF; CRLF is one line end.
        let (content, next) = match memchr::memchr2(b'\r', b'\n', rest) {
            Some(i) if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') => (&rest[..i], i + 2),
            Some(i) => (&rest[..i], i + 1),
            None => (rest, rest.len()),
        };
        if stuff && content.first() == Some(&b'.') {
            out.push(b'.');
            stuffed += 1;
        }
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
        rest = &rest[next..];
    }
    stuffed
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: A <a@example.org>\nTo: b@example.org,\n  c@example.org\nBcc: secret@example.org\nSubject: hi\n\nbody\n";

    #[test]
    fn header_block_and_continuations() {
        let block = parse_header_block(MSG).expect("valid");
        let names: Vec<_> = block.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["From", "To", "Bcc", "Subject"]);
        assert_eq!(
            &MSG[block.headers[1].start..block.headers[1].end],
            b"To: b@example.org,\n  c@example.org\n"
        );
        assert_eq!(&MSG[block.end..], b"\nbody\n");
        assert!(!block.crlf);
    }

    #[test]
    fn prepare_removes_bcc_and_adds_date_and_id() {
        let block = parse_header_block(MSG).expect("valid");
        let out = prepare(MSG, &block, "example.org");
        let text = String::from_utf8(out).expect("utf8");
        assert!(!text.to_ascii_lowercase().contains("bcc"), "{text}");
        assert!(text.starts_with(
            "From: A <a@example.org>\nTo: b@example.org,\n  c@example.org\nSubject: hi\nDate: "
        ));
        assert!(
            text.contains("\nMessage-ID: <") && text.contains("@example.org>\n\nbody\n"),
            "{text}"
        );
        let again = parse_header_block(text.as_bytes()).expect("valid");
        let kept = prepare(text.as_bytes(), &again, "x");
        assert_eq!(kept, text.as_bytes(), "nothing added twice");
    }

    #[test]
    fn headers_only_message_gets_its_blank_line() {
        let raw = b"Subject: x\r\nDate: now\r\nMessage-ID: <1@x>";
        let block = parse_header_block(raw).expect("valid");
        assert!(block.crlf);
        assert_eq!(
            prepare(raw, &block, "x"),
            b"Subject: x\r\nDate: now\r\nMessage-ID: <1@x>\r\n\r\n"
        );
        assert_eq!(message_id(raw).as_deref(), Some("<1@x>"));
    }

    #[test]
    fn bad_messages_are_65() {
        for (raw, why) in [
            (&b"hello world\n\nbody\n"[..], "neither a header"),
            (
                b"From a@b Mon Nov 23 11:50:01 2026\nSubject: x\n\n",
                "--mbox",
            ),
            (b" indented: x\n\n", "indented"),
            (b"Subject: x\n\nnul \0 here\n", "NUL"),
        ] {
            let e = parse_header_block(raw).expect_err(why);
            assert_eq!(e.exit().code(), 65);
            assert!(e.message().contains(why), "{}", e.message());
        }
        let long = format!("Subject: x\n\n{}\n", "a".repeat(999));
        let e = parse_header_block(long.as_bytes()).expect_err("long line");
        assert!(e.message().contains("line 3"), "{}", e.message());
    }

    #[test]
    fn data_encoding_normalises_then_stuffs() {
        let mut out = Vec::new();
        let size = encode_data(b"a\n.b\r\n..c\rx\n.\nlast", &mut out);
        assert_eq!(out, b"a\r\n..b\r\n...c\r\nx\r\n..\r\nlast\r\n.\r\n");
        assert_eq!(size, b"a\r\n.b\r\n..c\r\nx\r\n.\r\nlast\r\n".len());
        // A bare CR ends a line: `\r.\r\n` is a stuffed dot line, not the end.
        encode_data(b"x\r.\r\ny\r\r\nz\r", &mut out);
        assert_eq!(out, b"x\r\n..\r\ny\r\n\r\nz\r\n.\r\n");
        encode_data(b"x\r\n", &mut out);
        assert_eq!(out, b"x\r\n.\r\n");
    }

    #[test]
    fn chunked_encoding_normalises_without_stuffing() {
        let mut out = Vec::new();
        let size = encode_chunked(b"a\n.b\r\n..c\rx\n.\nlast", &mut out);
        assert_eq!(out, b"a\r\n.b\r\n..c\r\nx\r\n.\r\nlast\r\n");
        let mut data = Vec::new();
        assert_eq!(size, encode_data(b"a\n.b\r\n..c\rx\n.\nlast", &mut data));
    }

    #[test]
    fn eight_bit() {
        let raw = b"Resent-To: r@example.org\nTo: t@example.org\n\n\xc3\xa9\n";
        assert!(has_8bit(raw));
        assert!(!has_8bit(MSG));
    }
}
