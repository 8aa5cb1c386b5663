//! Assembling the message. lettre builds every leaf part (its Content-Type,
//! Content-Transfer-Encoding and encoded body) and every multipart's
//! Content-Type with the boundary mkmime chose; mkmime writes the top-level
//! header block itself and walks the tree out, so a 100 MB attachment is
//! encoded once and never copied into a second buffer.
//!
//! Structure: text, or multipart/alternative(text, html); the html wrapped in
//! multipart/related with the inline files; all of it first in a
//! multipart/mixed with the attachments.

use std::io::{self, Write};

use lettre::message::header::{
    ContentId, ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Body, MultiPart, MultiPartKind, SinglePart};
use mailpipe::progress::Progress;
use mailpipe::Error;
use sha2::{Digest, Sha256};

use crate::attach::FilePart;
use crate::header_encode::{self, HeaderLine};
use crate::headers::{format_date, Fields};
use crate::reproducible::{self, Ids};

/// What goes into the body.
#[derive(Debug, Default)]
pub struct Content {
    /// The text/plain part; left out only when there is HTML and no text.
    pub text: Option<String>,
    pub html: Option<String>,
    /// Files the HTML shows (`cid:`), or shown inline when there is no HTML.
    pub inline: Vec<FilePart>,
    pub attachments: Vec<FilePart>,
    /// Bytes of the files encoded, for large attachments on a terminal.
    pub progress: Progress,
}

enum Node {
    Leaf(SinglePart),
    Multi {
        kind: MultiPartKind,
        /// `Content-Type: multipart/...; boundary=...` once boundaries are set.
        content_type: String,
        boundary: String,
        children: Vec<Node>,
    },
}

/// The whole message in memory, ready to be written.
pub struct Composed {
    head: String,
    tree: Node,
}

/// Content-Disposition written by mkmime (lettre's would always split a
/// non-ASCII file name into `filename*0*=` continuations).
#[derive(Clone)]
struct Disposition(HeaderValue);

impl Header for Disposition {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Disposition")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Err("mkmime writes Content-Disposition itself".into())
    }

    fn display(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl Disposition {
    fn new(kind: &str, filename: &str) -> Disposition {
        let mut line = HeaderLine::new("Content-Disposition");
        line.push(" ", kind);
        header_encode::push_param(&mut line, "filename", filename);
        let raw = format!("{kind}; filename=\"{filename}\"");
        Disposition(HeaderValue::dangerous_new_pre_encoded(
            Disposition::name(),
            raw,
            line.into_value("Content-Disposition"),
        ))
    }
}

/// Text as the body of a part: line ends made CRLF (lettre does that) after
/// lone CRs are made line ends too, so no bare CR reaches a 7bit part.
fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// 7bit for short-lined ASCII, quoted-printable when at most a third of the
/// bytes need escaping, base64 otherwise (Chinese text, say).
pub fn choose_text_encoding(text: &str) -> ContentTransferEncoding {
    let long_line = text.split('\n').any(|line| line.len() > 76);
    if text.is_ascii() && !text.contains('\0') && !long_line {
        return ContentTransferEncoding::SevenBit;
    }
    let escaped = text
        .bytes()
        .filter(|&b| b >= 0x7f || (b < 0x20 && b != b'\t' && b != b'\n'))
        .count();
    if escaped * 3 <= text.len() {
        ContentTransferEncoding::QuotedPrintable
    } else {
        ContentTransferEncoding::Base64
    }
}

fn text_body(
    label: &str,
    text: &str,
    forced: Option<ContentTransferEncoding>,
) -> Result<Body, Error> {
    let text = normalize_newlines(text);
    match forced {
        Some(encoding) => {
            let raw_ok = !matches!(
                encoding,
                ContentTransferEncoding::SevenBit | ContentTransferEncoding::EightBit
            ) || !text.contains('\0');
            let refused = || {
                Error::data(format!(
                    "--encoding {encoding}: the {label} cannot be sent {encoding} \
                     (NUL, non-ASCII text for 7bit, or lines over 76 characters)"
                ))
            };
            if !raw_ok {
                return Err(refused());
            }
            Body::new_with_encoding(text, encoding).map_err(|_| refused())
        }
        None => {
            let encoding = choose_text_encoding(&text);
            // lettre's 7bit line limit is a little stricter than ours: fall
            // back to quoted-printable rather than fail.
            Body::new_with_encoding(text, encoding).or_else(|buf| {
                Body::new_with_encoding(buf, ContentTransferEncoding::QuotedPrintable)
                    .map_err(|_| Error::data(format!("the {label} cannot be encoded")))
            })
        }
    }
}

/// True when the bytes are already what a 7bit part holds: ASCII without
/// NUL, CRLF line ends only, lines of at most 76 characters. Only then is an
/// attachment sent as it is; anything else is encoded so that it arrives
/// byte for byte.
pub fn is_canonical_7bit(bytes: &[u8]) -> bool {
    let mut line_len = 0;
    let mut previous = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            0 | 0x80..=0xff => return false,
            b'\r' if bytes.get(i + 1) != Some(&b'\n') => return false,
            b'\n' if previous != b'\r' => return false,
            b'\n' => line_len = 0,
            b'\r' => {}
            _ => {
                line_len += 1;
                if line_len > 76 {
                    return false;
                }
            }
        }
        previous = b;
    }
    true
}

fn file_part(part: FilePart, disposition: &str, progress: &Progress) -> Result<SinglePart, Error> {
    let FilePart {
        filename,
        content_type,
        bytes,
        cid,
        explicit_type,
        essence,
    } = part;
    let size = bytes.len() as u64;
    let body = if is_canonical_7bit(&bytes) {
        Body::dangerous_pre_encoded(bytes, ContentTransferEncoding::SevenBit)
    } else if essence.starts_with("message/") || essence.starts_with("multipart/") {
        let how = if explicit_type { "given" } else { "guessed" };
        return Err(Error::data(format!(
            "{filename}: type {essence} ({how}) must be sent 7bit (RFC 2046), but the file is \
             not 7bit text with CRLF line ends; give ;type=application/octet-stream"
        )));
    } else if essence.starts_with("text/") && is_crlf_text(&bytes) {
        // CRLF text decodes exactly from quoted-printable's hard line breaks.
        Body::new_with_encoding(bytes, ContentTransferEncoding::QuotedPrintable)
            .map_err(|_| Error::data(format!("{filename}: cannot be encoded")))?
    } else {
        let encoded = base64_lines(&bytes, progress);
        drop(bytes);
        Body::dangerous_pre_encoded(encoded, ContentTransferEncoding::Base64)
    };
    if body.encoding() != ContentTransferEncoding::Base64 {
        // Base64 counted as it went; the rest is done at once.
        progress.advance(0, size);
    }
    let mut builder = SinglePart::builder().header(content_type);
    if let Some(cid) = cid {
        builder = builder.header(ContentId::from(format!("<{cid}>")));
    }
    Ok(builder
        .header(Disposition::new(disposition, &filename))
        .body(body))
}

/// Mostly-ASCII UTF-8 whose line ends are all CRLF (so quoted-printable keeps
/// it exact).
fn is_crlf_text(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let crlf_only = !text.bytes().enumerate().any(|(i, b)| match b {
        b'\n' => i == 0 || bytes[i - 1] != b'\r',
        b'\r' => bytes.get(i + 1) != Some(&b'\n'),
        _ => false,
    });
    crlf_only
        && choose_text_encoding(&text.replace("\r\n", "\n")) != ContentTransferEncoding::Base64
}

/// Base64 in 76-character CRLF lines, no CRLF after the last: what lettre's
/// `Body` makes, at several times its speed (lettre encodes 57 bytes per
/// call through `fmt::Write`, which dominated the 100 MB benchmark).
fn base64_lines(bytes: &[u8], progress: &Progress) -> Vec<u8> {
    use base64::Engine as _;
    const LINE_IN: usize = 57;
    const LINE_OUT: usize = 76;
    const BLOCK_LINES: usize = 1024;
    let lines = bytes.len().div_ceil(LINE_IN);
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4 + lines * 2);
    let mut scratch = vec![0u8; LINE_OUT * BLOCK_LINES];
    for block in bytes.chunks(LINE_IN * BLOCK_LINES) {
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(block, &mut scratch)
            .unwrap_or(0);
        for line in scratch[..n].chunks(LINE_OUT) {
            if !out.is_empty() {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(line);
        }
        progress.advance(0, block.len() as u64);
    }
    out
}

fn multi(kind: MultiPartKind, children: Vec<Node>) -> Node {
    Node::Multi {
        kind,
        content_type: String::new(),
        boundary: String::new(),
        children,
    }
}

fn leaves<'a>(node: &'a Node, out: &mut Vec<&'a SinglePart>) {
    match node {
        Node::Leaf(part) => out.push(part),
        Node::Multi { children, .. } => children.iter().for_each(|c| leaves(c, out)),
    }
}

fn count_multis(node: &Node) -> usize {
    match node {
        Node::Leaf(_) => 0,
        Node::Multi { children, .. } => 1 + children.iter().map(count_multis).sum::<usize>(),
    }
}

/// A boundary none of the raw (7bit/8bit) bodies contains; encoded bodies
/// cannot contain `=_`, which every boundary starts with.
fn pick_boundary(ids: &Ids, index: usize, raw_bodies: &[&[u8]]) -> String {
    let mut attempt = 0;
    loop {
        let candidate = format!("=_{}", ids.token(&format!("boundary {index} {attempt}")));
        let clash = raw_bodies.iter().any(|b| {
            b.windows(candidate.len())
                .any(|w| w == candidate.as_bytes())
        });
        if !clash {
            return candidate;
        }
        attempt += 1;
    }
}

fn set_boundaries(node: &mut Node, boundaries: &mut impl Iterator<Item = String>) {
    if let Node::Multi {
        kind,
        content_type,
        boundary,
        children,
    } = node
    {
        *boundary = boundaries.next().unwrap_or_default();
        let part = MultiPart::builder()
            .kind(kind.clone())
            .boundary(boundary.clone())
            .build();
        *content_type = part.headers().to_string();
        for child in children {
            set_boundaries(child, boundaries);
        }
    }
}

/// Builds the message for `fields` and `content`; nothing is written yet.
pub fn compose(
    fields: &Fields,
    content: Content,
    encoding: Option<ContentTransferEncoding>,
    epoch: Option<i64>,
) -> Result<Composed, Error> {
    let html = match content.html {
        Some(html) => Some(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(text_body("HTML part", &html, encoding)?),
        ),
        None => None,
    };
    let text = match (content.text, &html) {
        (Some(text), _) if !text.is_empty() => Some(text),
        (_, None) => Some(String::new()),
        _ => None,
    };
    let text = match text {
        Some(text) => Some(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text_body("text", &text, encoding)?),
        ),
        None => None,
    };
    let mut inline = Vec::new();
    for part in content.inline {
        inline.push(Node::Leaf(file_part(part, "inline", &content.progress)?));
    }
    let mut attachments = Vec::new();
    for part in content.attachments {
        attachments.push(Node::Leaf(file_part(
            part,
            "attachment",
            &content.progress,
        )?));
    }

    let html = html.map(|html| {
        if inline.is_empty() {
            Node::Leaf(html)
        } else {
            let mut children = vec![Node::Leaf(html)];
            children.append(&mut inline);
            multi(MultiPartKind::Related, children)
        }
    });
    let body = match (text, html) {
        (Some(text), Some(html)) => multi(MultiPartKind::Alternative, vec![Node::Leaf(text), html]),
        (Some(text), None) => Node::Leaf(text),
        (None, Some(html)) => html,
        (None, None) => Node::Leaf(SinglePart::plain(String::new())),
    };
    let mut mixed = inline;
    mixed.append(&mut attachments);
    let mut tree = if mixed.is_empty() {
        body
    } else {
        let mut children = vec![body];
        children.append(&mut mixed);
        multi(MultiPartKind::Mixed, children)
    };

    let rendered = fields.render();
    let mut all = Vec::new();
    leaves(&tree, &mut all);
    let date = match fields.date {
        Some(date) => date,
        None => reproducible::default_date(epoch)?,
    };
    let ids = match epoch {
        Some(seconds) => {
            let mut h = Sha256::new();
            h.update(rendered.as_bytes());
            h.update(format_date(&date).as_bytes());
            for part in &all {
                h.update(part.headers().to_string().as_bytes());
                h.update((part.raw_body().len() as u64).to_be_bytes());
                h.update(part.raw_body());
            }
            Ids::reproducible(seconds, &h.finalize())
        }
        None => Ids::random(),
    };
    let raw_bodies: Vec<&[u8]> = all
        .iter()
        .filter(|p| {
            !matches!(
                p.headers().get::<ContentTransferEncoding>(),
                Some(ContentTransferEncoding::Base64 | ContentTransferEncoding::QuotedPrintable)
            )
        })
        .map(|p| p.raw_body())
        .collect();
    let boundaries: Vec<String> = (0..count_multis(&tree))
        .map(|i| pick_boundary(&ids, i, &raw_bodies))
        .collect();
    drop(raw_bodies);
    drop(all);
    set_boundaries(&mut tree, &mut boundaries.into_iter());

    let message_id = match &fields.message_id {
        Some(id) => id.clone(),
        None => format!("<{}@{}>", ids.token("message-id"), fields.id_domain()),
    };
    let mut head = format!("Date: {}\r\n", format_date(&date));
    head.push_str(&rendered);
    head.push_str(&header_encode::id_list("Message-ID", &[message_id]));
    head.push_str("MIME-Version: 1.0\r\n");
    Ok(Composed { head, tree })
}

impl Composed {
    /// Writes the message with CRLF line ends; wrap `out` in [`LfWriter`] for LF.
    pub fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(self.head.as_bytes())?;
        match &self.tree {
            Node::Leaf(part) => {
                write!(out, "{}\r\n", part.headers())?;
                let body = part.raw_body();
                out.write_all(body)?;
                if !body.is_empty() && !body.ends_with(b"\r\n") {
                    out.write_all(b"\r\n")?;
                }
                Ok(())
            }
            multi => write_node(multi, out),
        }
    }
}

fn write_node(node: &Node, out: &mut dyn Write) -> io::Result<()> {
    match node {
        Node::Leaf(part) => {
            write!(out, "{}\r\n", part.headers())?;
            out.write_all(part.raw_body())?;
            out.write_all(b"\r\n")
        }
        Node::Multi {
            content_type,
            boundary,
            children,
            ..
        } => {
            out.write_all(content_type.as_bytes())?;
            out.write_all(b"\r\n")?;
            for child in children {
                write!(out, "--{boundary}\r\n")?;
                write_node(child, out)?;
            }
            write!(out, "--{boundary}--\r\n")
        }
    }
}

/// Turns the CRLF line ends of everything written through it into LF, for
/// local delivery agents and mbox files that want Unix line ends.
pub struct LfWriter<W: Write> {
    inner: W,
    pending_cr: bool,
}

impl<W: Write> LfWriter<W> {
    pub fn new(inner: W) -> LfWriter<W> {
        LfWriter {
            inner,
            pending_cr: false,
        }
    }
}

impl<W: Write> Write for LfWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut rest = buf;
        if std::mem::take(&mut self.pending_cr) && rest.first() != Some(&b'\n') {
            self.inner.write_all(b"\r")?;
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\r') {
            self.inner.write_all(&rest[..i])?;
            match rest.get(i + 1) {
                Some(b'\n') => {}
                Some(_) => self.inner.write_all(b"\r")?,
                None => self.pending_cr = true,
            }
            rest = &rest[i + 1..];
        }
        self.inner.write_all(rest)
    }

    fn flush(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.pending_cr) {
            self.inner.write_all(b"\r")?;
        }
        self.inner.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_encoding_choice() {
        use ContentTransferEncoding::*;
        assert_eq!(choose_text_encoding("hello\nworld\n"), SevenBit);
        assert_eq!(choose_text_encoding(&"x".repeat(200)), QuotedPrintable);
        assert_eq!(
            choose_text_encoding("Grüße aus Köln, bis bald\n"),
            QuotedPrintable
        );
        assert_eq!(choose_text_encoding("邮件测试邮件测试\n"), Base64);
        assert_eq!(choose_text_encoding("nul\0here"), QuotedPrintable);
    }

    #[test]
    fn canonical_7bit_needs_crlf_ascii_short_lines() {
        assert!(is_canonical_7bit(b"a\r\nb\r\n"));
        assert!(is_canonical_7bit(b""));
        assert!(!is_canonical_7bit(b"a\nb\n"));
        assert!(!is_canonical_7bit(b"a\rb"));
        assert!(!is_canonical_7bit(b"a\0b"));
        assert!(!is_canonical_7bit("é".as_bytes()));
        assert!(!is_canonical_7bit("x".repeat(77).as_bytes()));
    }

    #[test]
    fn lf_writer_handles_split_crlf() {
        let mut out = Vec::new();
        {
            let mut w = LfWriter::new(&mut out);
            w.write_all(b"a\r\nb\r").unwrap();
            w.write_all(b"\nc\rd").unwrap();
            w.flush().unwrap();
        }
        assert_eq!(out, b"a\nb\nc\rd");
    }

    #[test]
    fn base64_lines_match_lettre() {
        for len in [
            0,
            1,
            56,
            57,
            58,
            114,
            1000,
            57 * 1024,
            57 * 1024 + 1,
            200_000,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let ours = base64_lines(&bytes, &Progress::hidden());
            let theirs = Body::new_with_encoding(bytes, ContentTransferEncoding::Base64).unwrap();
            assert_eq!(ours, theirs.as_ref(), "length {len}");
        }
    }

    #[test]
    fn bare_cr_in_text_becomes_a_line_end() {
        assert_eq!(normalize_newlines("a\rb\r\nc\n"), "a\nb\nc\n");
    }
}
