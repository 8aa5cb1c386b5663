//! Assembling the message. lettre builds every leaf part's headers (and the
//! encoded body of the text and HTML parts) and every multipart's
//! Content-Type with the boundary mkmime chose; mkmime writes the top-level
//! header block itself and walks the tree out. A file's body is never held
//! in memory: it is encoded a chunk at a time as it is written (`encode`),
//! and read once more before that when `SOURCE_DATE_EPOCH` needs a digest of
//! the encoded bytes. So is a large text (`text::TextSource`): its part is
//! built from its scan and its body streamed like a file's.
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
use crate::encode::{self, Base64Lines, Counter, Encoder, QuotedPrintable};
use crate::header_encode::{self, HeaderLine};
use crate::headers::{format_date, Fields};
use crate::reproducible::{self, Ids};
use crate::scan::Scan;
use crate::source::Source;
use crate::text::{Text, TextSource};

/// What goes into the body.
#[derive(Debug, Default)]
pub struct Content {
    /// The text/plain part; left out only when there is HTML and no text.
    pub text: Option<Text>,
    pub html: Option<Text>,
    /// Files the HTML shows (`cid:`), or shown inline when there is no HTML.
    pub inline: Vec<FilePart>,
    pub attachments: Vec<FilePart>,
    /// Bytes of the files encoded, for large attachments on a terminal.
    pub progress: Progress,
}

/// A leaf part: its headers (and a held text's body) from lettre; a file's
/// or a streamed text's body is read when it is needed.
struct Leaf {
    part: SinglePart,
    file: Option<(Stream, ContentTransferEncoding)>,
}

/// Where a streamed body comes from.
enum Stream {
    File(Source),
    Text(TextSource),
}

impl Stream {
    fn pass(&self, each: impl FnMut(&[u8]) -> Result<bool, Error>) -> Result<(), Error> {
        match self {
            Stream::File(source) => source.pass(each),
            Stream::Text(text) => text.pass(each),
        }
    }

    /// Bytes before encoding.
    fn len(&self) -> u64 {
        match self {
            Stream::File(source) => source.len(),
            Stream::Text(text) => text.len(),
        }
    }

    fn contains(&self, needle: &[u8]) -> Result<bool, Error> {
        match self {
            Stream::File(source) => source.contains(needle),
            Stream::Text(text) => text.contains(needle),
        }
    }

    /// Whether a body sent as it is still is what its scan found (7bit for
    /// a file, the same text for a text); an error if not.
    fn unchanged(&self, scan: &Scan) -> Result<(), Error> {
        match self {
            Stream::File(source) if !scan.finish().seven_bit => Err(source.changed_content()),
            Stream::Text(text) if scan.finish() != text.found() => Err(text.changed_content()),
            _ => Ok(()),
        }
    }
}

enum Node {
    Leaf(Leaf),
    Multi {
        kind: MultiPartKind,
        /// `Content-Type: multipart/...; boundary=...` once boundaries are set.
        content_type: String,
        boundary: String,
        children: Vec<Node>,
    },
}

/// The message ready to be written: headers and texts in memory, files open.
pub struct Composed {
    head: String,
    tree: Node,
    progress: Progress,
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

/// The error for `--encoding` that the text cannot be sent in.
fn refused(label: &str, encoding: ContentTransferEncoding) -> Error {
    Error::data(format!(
        "--encoding {encoding}: the {label} cannot be sent {encoding} \
         (NUL, non-ASCII text for 7bit, or lines over 76 characters)"
    ))
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
            let refused = || refused(label, encoding);
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

/// The text or HTML part for `text`: a held text's body encoded by lettre,
/// a streamed one's encoded as it is written, the same bytes either way.
fn text_leaf(
    content_type: ContentType,
    label: &str,
    text: Text,
    forced: Option<ContentTransferEncoding>,
) -> Result<Node, Error> {
    let builder = SinglePart::builder().header(content_type);
    match text {
        Text::Held(text) => Ok(Leaf::text(builder.body(text_body(label, &text, forced)?))),
        Text::Streamed(text) => {
            let encoding = text
                .encoding(forced)
                .map_err(|encoding| refused(label, encoding))?;
            Ok(Node::Leaf(Leaf {
                part: builder.body(Body::dangerous_pre_encoded(Vec::new(), encoding)),
                file: Some((Stream::Text(text), encoding)),
            }))
        }
    }
}

/// True when the bytes are already what a 7bit part holds: ASCII without
/// NUL, CRLF line ends only, lines of at most 76 characters. Only then is an
/// attachment sent as it is; anything else is encoded so that it arrives
/// byte for byte.
pub fn is_canonical_7bit(bytes: &[u8]) -> bool {
    Scan::of(bytes).seven_bit
}

fn file_part(part: FilePart, disposition: &str) -> Result<Leaf, Error> {
    let FilePart {
        filename,
        content_type,
        source,
        found,
        cid,
        explicit_type,
        essence,
    } = part;
    let encoding = if found.seven_bit {
        ContentTransferEncoding::SevenBit
    } else if essence.starts_with("message/") || essence.starts_with("multipart/") {
        let how = if explicit_type { "given" } else { "guessed" };
        return Err(Error::data(format!(
            "{filename}: type {essence} ({how}) must be sent 7bit (RFC 2046), but the file is \
             not 7bit text with CRLF line ends; give ;type=application/octet-stream"
        )));
    } else if essence.starts_with("text/") && found.crlf_text {
        // CRLF text decodes exactly from quoted-printable's hard line breaks.
        ContentTransferEncoding::QuotedPrintable
    } else {
        ContentTransferEncoding::Base64
    };
    let mut builder = SinglePart::builder().header(content_type);
    if let Some(cid) = cid {
        builder = builder.header(ContentId::from(format!("<{cid}>")));
    }
    // The body comes from the file when written; lettre sets the
    // Content-Transfer-Encoding header from this empty one.
    let part = builder
        .header(Disposition::new(disposition, &filename))
        .body(Body::dangerous_pre_encoded(Vec::new(), encoding));
    Ok(Leaf {
        part,
        file: Some((Stream::File(source), encoding)),
    })
}

/// Writes `source` encoded with `encoding` to `sink`, counting progress; a
/// 7bit file that is no longer 7bit (changed since it was scanned) is an
/// error rather than a part that could break the message's structure.
fn stream_file(
    source: &Stream,
    encoding: ContentTransferEncoding,
    sink: &mut dyn Write,
    progress: Option<&Progress>,
) -> Result<(), Error> {
    let write_error = |e| Error::io("writing stdout", e);
    match encoding {
        ContentTransferEncoding::Base64 => encoded::<Base64Lines>(source, sink, progress),
        ContentTransferEncoding::QuotedPrintable => {
            encoded::<QuotedPrintable>(source, sink, progress)
        }
        _ => {
            let mut scan = Scan::default();
            source.pass(|chunk| {
                scan.feed(chunk);
                sink.write_all(chunk).map_err(write_error)?;
                if let Some(p) = progress {
                    p.advance(0, chunk.len() as u64);
                }
                Ok(true)
            })?;
            source.unchanged(&scan)
        }
    }
}

/// `source` through the encoder `E` into `sink`.
fn encoded<E: Encoder>(
    source: &Stream,
    sink: &mut dyn Write,
    progress: Option<&Progress>,
) -> Result<(), Error> {
    let write_error = |e| Error::io("writing stdout", e);
    let mut encoder = E::default();
    source.pass(|chunk| {
        encoder.push(chunk, sink).map_err(write_error)?;
        if let Some(p) = progress {
            p.advance(0, chunk.len() as u64);
        }
        Ok(true)
    })?;
    encoder.finish(sink).map_err(write_error)
}

impl Leaf {
    fn text(part: SinglePart) -> Node {
        Node::Leaf(Leaf { part, file: None })
    }

    /// The length of the encoded body (a pass over a quoted-printable file).
    fn body_len(&self) -> Result<u64, Error> {
        match &self.file {
            None => Ok(self.part.raw_body().len() as u64),
            Some((source, ContentTransferEncoding::Base64)) => Ok(encode::base64_len(source.len())),
            Some((source, ContentTransferEncoding::QuotedPrintable)) => {
                let mut counter = Counter::default();
                stream_file(
                    source,
                    ContentTransferEncoding::QuotedPrintable,
                    &mut counter,
                    None,
                )?;
                Ok(counter.0)
            }
            Some((source, _)) => Ok(source.len()),
        }
    }

    /// Writes the encoded body.
    fn write_body(&self, out: &mut dyn Write, progress: Option<&Progress>) -> Result<(), Error> {
        match &self.file {
            None => out
                .write_all(self.part.raw_body())
                .map_err(|e| Error::io("writing stdout", e)),
            Some((source, encoding)) => stream_file(source, *encoding, out, progress),
        }
    }

    /// Writes the body of the message's only part; true if a CRLF must
    /// follow it: always after a file, after text that does not end with
    /// one (lettre's rule, which a streamed text keeps).
    fn write_only_body(
        &self,
        out: &mut dyn Write,
        progress: Option<&Progress>,
    ) -> Result<bool, Error> {
        match &self.file {
            None => {
                self.write_body(out, progress)?;
                let body = self.part.raw_body();
                Ok(!body.is_empty() && !body.ends_with(b"\r\n"))
            }
            Some((Stream::File(_), _)) => {
                self.write_body(out, progress)?;
                Ok(true)
            }
            Some((Stream::Text(_), _)) => {
                let mut tail = Tail {
                    inner: out,
                    last: [0; 2],
                    written: 0,
                };
                self.write_body(&mut tail, progress)?;
                Ok(tail.written > 0 && (tail.written < 2 || tail.last != *b"\r\n"))
            }
        }
    }

    fn is_raw(&self) -> bool {
        !matches!(
            self.part.headers().get::<ContentTransferEncoding>(),
            Some(ContentTransferEncoding::Base64 | ContentTransferEncoding::QuotedPrintable)
        )
    }
}

/// Passes writes on, remembering the last two bytes.
struct Tail<'a> {
    inner: &'a mut dyn Write,
    last: [u8; 2],
    written: u64,
}

impl Write for Tail<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let buf = &buf[..n];
        match buf {
            [.., a, b] => self.last = [*a, *b],
            [b] => self.last = [self.last[1], *b],
            [] => {}
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn multi(kind: MultiPartKind, children: Vec<Node>) -> Node {
    Node::Multi {
        kind,
        content_type: String::new(),
        boundary: String::new(),
        children,
    }
}

fn leaves<'a>(node: &'a Node, out: &mut Vec<&'a Leaf>) {
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
fn pick_boundary(ids: &Ids, index: usize, raw_bodies: &[&Leaf]) -> Result<String, Error> {
    let mut attempt = 0;
    loop {
        let candidate = format!("=_{}", ids.token(&format!("boundary {index} {attempt}")));
        let mut clash = false;
        for leaf in raw_bodies {
            clash = match &leaf.file {
                None => leaf
                    .part
                    .raw_body()
                    .windows(candidate.len())
                    .any(|w| w == candidate.as_bytes()),
                Some((source, _)) => source.contains(candidate.as_bytes())?,
            };
            if clash {
                break;
            }
        }
        if !clash {
            return Ok(candidate);
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
        Some(html) => Some(text_leaf(
            ContentType::TEXT_HTML,
            "HTML part",
            html,
            encoding,
        )?),
        None => None,
    };
    let text = match (content.text, &html) {
        (Some(text), _) if !text.is_empty() => Some(text),
        (_, None) => Some(Text::Held(String::new())),
        _ => None,
    };
    let text = match text {
        Some(text) => Some(text_leaf(ContentType::TEXT_PLAIN, "text", text, encoding)?),
        None => None,
    };
    let mut inline = Vec::new();
    for part in content.inline {
        inline.push(Node::Leaf(file_part(part, "inline")?));
    }
    let mut attachments = Vec::new();
    for part in content.attachments {
        attachments.push(Node::Leaf(file_part(part, "attachment")?));
    }

    let html = html.map(|html| {
        if inline.is_empty() {
            html
        } else {
            let mut children = vec![html];
            children.append(&mut inline);
            multi(MultiPartKind::Related, children)
        }
    });
    let body = match (text, html) {
        (Some(text), Some(html)) => multi(MultiPartKind::Alternative, vec![text, html]),
        (Some(text), None) => text,
        (None, Some(html)) => html,
        (None, None) => Leaf::text(SinglePart::plain(String::new())),
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
            for leaf in &all {
                h.update(leaf.part.headers().to_string().as_bytes());
                h.update(leaf.body_len()?.to_be_bytes());
                leaf.write_body(&mut h, None)?;
            }
            Ids::reproducible(seconds, &h.finalize())
        }
        None => Ids::random(),
    };
    let raw_bodies: Vec<&Leaf> = all.iter().copied().filter(|l| l.is_raw()).collect();
    let boundaries = (0..count_multis(&tree))
        .map(|i| pick_boundary(&ids, i, &raw_bodies))
        .collect::<Result<Vec<String>, Error>>()?;
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
    Ok(Composed {
        head,
        tree,
        progress: content.progress,
    })
}

impl Composed {
    /// Writes the message with CRLF line ends; wrap `out` in [`LfWriter`] for
    /// LF. An error after the first byte leaves a partial message on `out`.
    pub fn write_to(&self, out: &mut dyn Write) -> Result<(), Error> {
        let failed = |e| Error::io("writing stdout", e);
        out.write_all(self.head.as_bytes()).map_err(failed)?;
        match &self.tree {
            Node::Leaf(leaf) => {
                write!(out, "{}\r\n", leaf.part.headers()).map_err(failed)?;
                if leaf.write_only_body(out, Some(&self.progress))? {
                    out.write_all(b"\r\n").map_err(failed)?;
                }
                Ok(())
            }
            multi => write_node(multi, out, &self.progress),
        }
    }
}

fn write_node(node: &Node, out: &mut dyn Write, progress: &Progress) -> Result<(), Error> {
    let failed = |e| Error::io("writing stdout", e);
    match node {
        Node::Leaf(leaf) => {
            write!(out, "{}\r\n", leaf.part.headers()).map_err(failed)?;
            leaf.write_body(out, Some(progress))?;
            out.write_all(b"\r\n").map_err(failed)
        }
        Node::Multi {
            content_type,
            boundary,
            children,
            ..
        } => {
            out.write_all(content_type.as_bytes()).map_err(failed)?;
            out.write_all(b"\r\n").map_err(failed)?;
            for child in children {
                write!(out, "--{boundary}\r\n").map_err(failed)?;
                write_node(child, out, progress)?;
            }
            write!(out, "--{boundary}--\r\n").map_err(failed)
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
    fn bare_cr_in_text_becomes_a_line_end() {
        assert_eq!(normalize_newlines("a\rb\r\nc\n"), "a\nb\nc\n");
    }
}
