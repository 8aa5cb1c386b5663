//! One message's bytes to one [`Record`].
//!
//! Which parts are text, HTML and attachments is RFC 8621's body model
//! (`mailpipe::message::body`); `text` and `html` join the text/plain and
//! text/html parts of its `textBody` and `htmlBody`. An attached message
//! (message/rfc822 or message/global, any transfer encoding) also gets its
//! own record, `message`, bounded by [`MAX_NESTING`] and [`MAX_NESTED_BYTES`].

use std::panic::{catch_unwind, AssertUnwindSafe};

use sha2::{Digest, Sha256};

use crate::schema::{Attachment, FieldSet, HeaderField, PartNode, Record, Source};
use mailpipe::message::body::BodyParts;
use mailpipe::message::decode::{charset, transfer, Charset, HeaderDecoder, TransferEncoding};
use mailpipe::message::parse::mime::is_message;
use mailpipe::message::parse::{address, header, params};
use mailpipe::message::parse::{HeaderBlock, Mailbox, ParamValue, Part, Walker};

/// What to produce for each message.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub fields: FieldSet,
    /// Keep attachment contents in the record (for `--extract`).
    pub keep_content: bool,
}

/// Converts one message; a panic (a bug) becomes an error record instead of
/// ending the run.
pub fn convert_safely(data: &[u8], source: Source, options: &Options) -> Record {
    let fallback_source = source.clone();
    match catch_unwind(AssertUnwindSafe(|| convert(data, source, options))) {
        Ok(record) => record,
        Err(_) => {
            let mut r = Record::new(options.fields, fallback_source, data.len() as u64);
            r.error = Some("internal error while converting this message".to_string());
            r.defects
                .push("internal-error: panic in mail2json".to_string());
            r
        }
    }
}

pub fn convert(data: &[u8], source: Source, options: &Options) -> Record {
    let mut nesting = Nesting {
        depth: 0,
        budget: MAX_NESTED_BYTES,
    };
    convert_nested(data, source, options, &mut nesting)
}

fn convert_nested(data: &[u8], source: Source, options: &Options, nesting: &mut Nesting) -> Record {
    let fields = options.fields;
    let mut record = Record::new(fields, source, data.len() as u64);
    if data.iter().all(u8::is_ascii_whitespace) {
        record.error = Some("empty message".to_string());
        return record;
    }
    let mut defects = Vec::new();
    let wants_body = fields.has("text")
        || fields.has("html")
        || fields.has("attachments")
        || fields.has("parts")
        || fields.has("delivery_status");
    let top_header;
    let tree;
    if wants_body {
        let part = Walker::new(&mut defects, fields.has("parts")).parse(data);
        top_header = None;
        tree = Some(part);
    } else {
        top_header = Some(header::split(data, &mut defects));
        tree = None;
    }
    let Some(header) = tree.as_ref().map(|p| &p.header).or(top_header.as_ref()) else {
        return record;
    };
    if header.fields.is_empty() {
        record.error = Some("not an email message: no header fields".to_string());
        record.defects = defects;
        return record;
    }
    let hint = tree.as_ref().and_then(charset_hint).or_else(|| {
        let f = header.first("content-type")?;
        let mut scratch = Vec::new();
        let mut d = HeaderDecoder {
            hint: None,
            defects: &mut scratch,
        };
        hint_from(&params::parse(&f.unfolded(), &mut d))
    });
    let mut decoder = HeaderDecoder {
        hint,
        defects: &mut defects,
    };
    fill_headers(&mut record, header, &mut decoder);
    let mut decoded = Vec::new();
    if let Some(part) = &tree {
        fill_body(
            &mut record,
            part,
            &mut decoder,
            options,
            nesting,
            &mut decoded,
        );
        if fields.has("delivery_status") {
            record.delivery_status = crate::delivery_status::find(part, decoder.defects);
        }
        if fields.has("parts") {
            record.parts = Some(part_node(part, &mut decoder));
        }
    }
    crate::hidden::fill(
        &mut record,
        header,
        tree.as_ref(),
        &mut decoder,
        options,
        &decoded,
    );
    record.defects = defects;
    record
}

/// The first charset the message declares that is not ASCII or UTF-8: the
/// best guess for raw 8-bit headers and unlabelled parts.
fn charset_hint(part: &Part<'_>) -> Option<Charset> {
    hint_from(&part.content_type).or_else(|| part.children.iter().find_map(charset_hint))
}

fn hint_from(ct: &ParamValue) -> Option<Charset> {
    let label = ct.get("charset")?;
    if charset::is_ascii_label(label) {
        return None;
    }
    charset::lookup(label).filter(|c| c.name() != "UTF-8")
}

fn msg_ids(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut ids = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start + 1..].find('>') else {
            break;
        };
        let id = rest[start + 1..start + 1 + len].trim();
        if !id.is_empty() {
            ids.push(id.to_string());
        }
        rest = &rest[start + 1 + len + 1..];
    }
    if ids.is_empty() {
        ids.extend(text.split_whitespace().map(str::to_string));
    }
    ids
}

fn fill_headers(record: &mut Record, header: &HeaderBlock<'_>, decoder: &mut HeaderDecoder<'_>) {
    let fields = record.fields;
    if fields.has("subject") {
        record.subject = header
            .first("subject")
            .map(|f| decoder.decode(&f.unfolded()));
    }
    if fields.has("message_id") {
        record.message_id = header
            .first("message-id")
            .and_then(|f| msg_ids(&f.unfolded()).into_iter().next());
    }
    if fields.has("in_reply_to") {
        record.in_reply_to = header
            .first("in-reply-to")
            .and_then(|f| msg_ids(&f.unfolded()).into_iter().next());
    }
    if fields.has("references") {
        record.references = header
            .first("references")
            .map(|f| msg_ids(&f.unfolded()))
            .unwrap_or_default();
    }
    if fields.has("date") || fields.has("date_raw") {
        let raw = header
            .first("date")
            .map(|f| String::from_utf8_lossy(&f.unfolded()).into_owned());
        record.date = raw
            .as_deref()
            .and_then(mailpipe::message::parse::date::to_rfc3339);
        if raw.is_some() && record.date.is_none() {
            decoder.defects.push("invalid-date".to_string());
        }
        record.date_raw = raw;
    }
    let lists: [(&str, &str, &mut Vec<Mailbox>); 6] = [
        ("from", "from", &mut record.from),
        ("sender", "sender", &mut record.sender),
        ("reply_to", "reply-to", &mut record.reply_to),
        ("to", "to", &mut record.to),
        ("cc", "cc", &mut record.cc),
        ("bcc", "bcc", &mut record.bcc),
    ];
    for (field, name, list) in lists {
        if fields.has(field) {
            // The first field only, as Python and most readers do: a second
            // From or To is a broken message, not more recipients.
            if let Some(f) = header.first(name) {
                list.extend(address::parse_list(&f.unfolded(), decoder));
            }
        }
    }
    if fields.has("headers") {
        record.headers = header
            .fields
            .iter()
            .map(|f| HeaderField {
                name: String::from_utf8_lossy(f.name).into_owned(),
                value: decoder.decode(&f.unfolded()),
            })
            .collect();
    }
}

pub(crate) fn transfer_encoding(part: &Part<'_>, defects: &mut Vec<String>) -> TransferEncoding {
    let Some(f) = part.header.first("content-transfer-encoding") else {
        return TransferEncoding::Identity;
    };
    let label = String::from_utf8_lossy(&f.unfolded()).into_owned();
    let (encoding, known) = TransferEncoding::from_label(&label);
    if !known {
        defects.push(format!(
            "unknown-transfer-encoding: {}",
            label.chars().take(40).collect::<String>()
        ));
    }
    encoding
}

pub(crate) fn decoded_text(part: &Part<'_>, decoder: &mut HeaderDecoder<'_>) -> String {
    let encoding = transfer_encoding(part, decoder.defects);
    let bytes = transfer::decode(part.body, encoding, decoder.defects);
    let (text, defect) =
        charset::decode_text(&bytes, part.content_type.get("charset"), decoder.hint);
    if let Some(d) = defect {
        decoder.defects.push(d);
    }
    if text.contains('\r') {
        text.replace("\r\n", "\n")
    } else {
        text.into_owned()
    }
}

/// Where a nested message is in its outermost message, and what is left of
/// the bytes nested messages may take.
struct Nesting {
    depth: usize,
    budget: usize,
}

/// Attached messages deeper than this are attachments without `message`.
pub const MAX_NESTING: usize = 8;
/// Bytes of attached messages (decoded, summed over all levels) parsed for
/// one message; beyond, an attached message is left unparsed.
pub const MAX_NESTED_BYTES: usize = 32 << 20;

/// A text/plain part decoded for `text`, kept so that hidden.rs looks for
/// uuencode in it without decoding it (and recording its defects) again.
pub(crate) struct DecodedText<'p, 'a> {
    pub part: &'p Part<'a>,
    pub text: String,
}

fn fill_body<'p, 'a>(
    record: &mut Record,
    top: &'p Part<'a>,
    decoder: &mut HeaderDecoder<'_>,
    options: &Options,
    nesting: &mut Nesting,
    decoded: &mut Vec<DecodedText<'p, 'a>>,
) {
    let body = BodyParts::of(top);
    if record.fields.has("text") {
        record.text = joined_text(&body.text, "text/plain", decoder, Some(decoded));
    }
    if record.fields.has("html") {
        record.html = joined_text(&body.html, "text/html", decoder, None);
    }
    if record.fields.has("attachments") {
        // RFC 8621's attachments, then the inline media it lists only as
        // body (shown inline in both bodies), so that nothing is lost.
        let media = body.inline_media();
        let mut list = Vec::new();
        for part in body.attachments.iter().chain(&media) {
            list.push(attachment(part, decoder, options, nesting));
        }
        // Files found inside parts (uuencode, TNEF) follow, from hidden.rs.
        record.attachments = list;
    }
}

/// The parts of `body` of type `mime_type`, decoded, in order; a line end
/// is put between two parts when the first does not end with one. With
/// `keep`, each part's own text is kept there too.
fn joined_text<'p, 'a>(
    body: &[&'p Part<'a>],
    mime_type: &str,
    decoder: &mut HeaderDecoder<'_>,
    mut keep: Option<&mut Vec<DecodedText<'p, 'a>>>,
) -> Option<String> {
    let mut joined: Option<String> = None;
    for part in body.iter().filter(|p| p.mime_type() == mime_type) {
        let text = decoded_text(part, decoder);
        let text = match keep.as_deref_mut() {
            Some(keep) => {
                keep.push(DecodedText { part, text });
                keep.last().map_or("", |d| d.text.as_str())
            }
            None => {
                push_text(&mut joined, text);
                continue;
            }
        };
        push_text(&mut joined, text.to_string());
    }
    joined
}

fn push_text(joined: &mut Option<String>, text: String) {
    match joined {
        None => *joined = Some(text),
        Some(j) => {
            if !j.is_empty() && !j.ends_with('\n') {
                j.push('\n');
            }
            j.push_str(&text);
        }
    }
}

fn attachment(
    part: &Part<'_>,
    decoder: &mut HeaderDecoder<'_>,
    options: &Options,
    nesting: &mut Nesting,
) -> Attachment {
    let disposition = part
        .header
        .first("content-disposition")
        .map(|f| params::parse(&f.unfolded(), decoder));
    let filename = filename(part, disposition.as_ref(), decoder);
    let encoding = transfer_encoding(part, decoder.defects);
    let mut attachment = Attachment {
        filename,
        content_type: part.mime_type().to_string(),
        disposition: disposition.map(|d| d.value).filter(|d| !d.is_empty()),
        content_id: content_id(part),
        size: 0,
        sha256: String::new(),
        origin: None,
        origin_part: None,
        path: None,
        message: None,
        content: None,
    };
    if options.keep_content || is_message(part.mime_type()) {
        let content = transfer::decode(part.body, encoding, decoder.defects);
        attachment.size = content.len() as u64;
        attachment.sha256 = hex(&Sha256::digest(&content));
        if is_message(part.mime_type()) {
            attachment.message = nested(&content, options, nesting, decoder.defects);
        }
        attachment.content = options.keep_content.then(|| content.into_owned());
        return attachment;
    }
    // Only measured and hashed: decoded into this thread's buffer.
    SCRATCH.with_borrow_mut(|scratch| {
        let content = transfer::decode_in(part.body, encoding, decoder.defects, scratch);
        attachment.size = content.len() as u64;
        attachment.sha256 = hex(&Sha256::digest(&content));
        if scratch.capacity() > MAX_SCRATCH {
            *scratch = Vec::new();
        }
    });
    attachment
}

thread_local! {
    /// The decoded bytes of the attachment being hashed, reused: no
    /// allocation (and no fresh pages) per attachment.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A larger scratch buffer (one huge attachment) is not kept.
const MAX_SCRATCH: usize = 16 << 20;

/// The record of an attached message, within the depth and size bounds.
fn nested(
    data: &[u8],
    options: &Options,
    nesting: &mut Nesting,
    defects: &mut Vec<String>,
) -> Option<Box<Record>> {
    if nesting.depth >= MAX_NESTING {
        defects.push(format!(
            "nested-message-too-deep: not parsed beyond {MAX_NESTING} levels"
        ));
        return None;
    }
    if data.len() > nesting.budget {
        defects.push(format!(
            "nested-message-too-large: not parsed beyond {} MiB of attached messages",
            MAX_NESTED_BYTES >> 20
        ));
        return None;
    }
    nesting.budget -= data.len();
    let mut fields = options.fields;
    for f in ["schema", "source", "parts"] {
        fields.remove(f);
    }
    let inner = Options { fields, ..*options };
    let source = Source {
        path: String::new(),
        offset: None,
    };
    nesting.depth += 1;
    let record = convert_nested(data, source, &inner, nesting);
    nesting.depth -= 1;
    Some(Box::new(record))
}

/// Content-Disposition filename, else Content-Type name (Python's order).
fn filename(
    part: &Part<'_>,
    disposition: Option<&ParamValue>,
    decoder: &mut HeaderDecoder<'_>,
) -> Option<String> {
    if let Some(name) = disposition.and_then(|d| d.get("filename")) {
        return Some(name.to_string());
    }
    // Re-parse Content-Type with the message's charset hint for raw 8-bit names.
    let f = part.header.first("content-type")?;
    let ct = params::parse(&f.unfolded(), decoder);
    ct.get("name").map(str::to_string)
}

fn content_id(part: &Part<'_>) -> Option<String> {
    let f = part.header.first("content-id")?;
    msg_ids(&f.unfolded()).into_iter().next()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn part_node(part: &Part<'_>, decoder: &mut HeaderDecoder<'_>) -> PartNode {
    let disposition = part
        .header
        .first("content-disposition")
        .map(|f| params::parse(&f.unfolded(), decoder));
    let filename = filename(part, disposition.as_ref(), decoder);
    PartNode {
        content_type: part.mime_type().to_string(),
        charset: part.content_type.get("charset").map(str::to_string),
        transfer_encoding: part
            .header
            .first("content-transfer-encoding")
            .map(|f| String::from_utf8_lossy(&f.unfolded()).to_ascii_lowercase()),
        disposition: disposition.map(|d| d.value).filter(|d| !d.is_empty()),
        filename,
        content_id: content_id(part),
        encoded_size: part.body.len() as u64,
        parts: part
            .children
            .iter()
            .map(|c| part_node(c, decoder))
            .collect(),
    }
}
