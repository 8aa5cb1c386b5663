//! One message's bytes to one [`Record`].
//!
//! The body a reader would show is chosen as Python's `get_body` chooses it
//! (depth first, skipping parts with `Content-Disposition: attachment`, the
//! `start` part of multipart/related, never inside message/rfc822). Every
//! other leaf is an attachment, except alternative renderings: a text part
//! without a filename inside multipart/alternative that was not chosen.
//! message/rfc822 parts are attachments whole.

use std::panic::{catch_unwind, AssertUnwindSafe};

use sha2::{Digest, Sha256};

use crate::schema::{Attachment, FieldSet, HeaderField, PartNode, Record, Source};
use mailpipe::message::decode::{charset, transfer, Charset, HeaderDecoder, TransferEncoding};
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
    if let Some(part) = &tree {
        fill_body(&mut record, part, &mut decoder, options);
        if fields.has("delivery_status") {
            record.delivery_status = crate::delivery_status::find(part, decoder.defects);
        }
        if fields.has("parts") {
            record.parts = Some(part_node(part, &mut decoder));
        }
    }
    crate::hidden::fill(&mut record, header, tree.as_ref(), &mut decoder, options);
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

fn is_attachment(part: &Part<'_>) -> bool {
    part.header.first("content-disposition").is_some_and(|f| {
        let v = f.unfolded();
        let main = v.split(|&b| b == b';').next().unwrap_or(&[]);
        String::from_utf8_lossy(main)
            .trim()
            .eq_ignore_ascii_case("attachment")
    })
}

/// Python's `_find_body` for a one-subtype preference list.
fn find_body<'p, 'a>(part: &'p Part<'a>, subtype: &str) -> Option<&'p Part<'a>> {
    if is_attachment(part) {
        return None;
    }
    let (main, sub) = part
        .mime_type()
        .split_once('/')
        .unwrap_or(("text", "plain"));
    if main == "text" {
        return (sub == subtype).then_some(part);
    }
    if main != "multipart" || !part.is_multipart() {
        return None;
    }
    if sub != "related" {
        return part.children.iter().find_map(|c| find_body(c, subtype));
    }
    let start = part.content_type.get("start").map(|s| s.trim().to_string());
    let candidate = start
        .and_then(|s| {
            part.children.iter().find(|c| {
                c.header
                    .first("content-id")
                    .is_some_and(|f| String::from_utf8_lossy(&f.unfolded()) == s.as_str())
            })
        })
        .or_else(|| part.children.first())?;
    find_body(candidate, subtype)
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

fn fill_body(
    record: &mut Record,
    top: &Part<'_>,
    decoder: &mut HeaderDecoder<'_>,
    options: &Options,
) {
    let text_part = find_body(top, "plain");
    let html_part = find_body(top, "html");
    if record.fields.has("text") {
        record.text = text_part.map(|p| decoded_text(p, decoder));
    }
    if record.fields.has("html") {
        record.html = html_part.map(|p| decoded_text(p, decoder));
    }
    if record.fields.has("attachments") {
        let bodies = [text_part, html_part];
        collect_attachments(
            top,
            &bodies,
            false,
            decoder,
            options,
            &mut record.attachments,
        );
    }
}

fn same(a: &Part<'_>, b: Option<&Part<'_>>) -> bool {
    b.is_some_and(|b| std::ptr::eq(a, b))
}

fn collect_attachments(
    part: &Part<'_>,
    bodies: &[Option<&Part<'_>>; 2],
    in_alternative: bool,
    decoder: &mut HeaderDecoder<'_>,
    options: &Options,
    out: &mut Vec<Attachment>,
) {
    if part.is_multipart() {
        let alternative = part.mime_type() == "multipart/alternative";
        for child in &part.children {
            collect_attachments(child, bodies, alternative, decoder, options, out);
        }
        return;
    }
    if same(part, bodies[0]) || same(part, bodies[1]) {
        return;
    }
    let disposition = part
        .header
        .first("content-disposition")
        .map(|f| params::parse(&f.unfolded(), decoder));
    let filename = filename(part, disposition.as_ref(), decoder);
    if in_alternative
        && part.mime_type().starts_with("text/")
        && filename.is_none()
        && !is_attachment(part)
    {
        return;
    }
    let encoding = transfer_encoding(part, decoder.defects);
    let content = transfer::decode(part.body, encoding, decoder.defects);
    let sha256 = hex(&Sha256::digest(&content));
    out.push(Attachment {
        filename,
        content_type: part.mime_type().to_string(),
        disposition: disposition.map(|d| d.value).filter(|d| !d.is_empty()),
        content_id: content_id(part),
        size: content.len() as u64,
        sha256,
        origin: None,
        origin_part: None,
        path: None,
        content: options.keep_content.then(|| content.into_owned()),
    });
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
