//! What a message hides from a MIME reader: files uuencoded inside a text
//! part and files inside Outlook's winmail.dat (TNEF), which become
//! attachments of their own with an `origin`, and who vouched for the
//! message (`auth`, `dkim_signatures`). The parsers are the shared
//! library's (`mailpipe::message::{uuencode, tnef, auth_results}`); this is
//! the JSON side.
//!
//! The parts that carry hidden files are kept as they are: the text keeps
//! its uuencoded lines (mail2json never rewrites a body; `origin_part`
//! says where they are) and winmail.dat stays an attachment, so the found
//! files are additions and nothing is lost or moved.

use sha2::{Digest, Sha256};

use crate::convert::{decoded_text, hex, transfer_encoding, DecodedText, Options};
use crate::schema::{Attachment, Record};
use mailpipe::message::auth_results;
use mailpipe::message::decode::{transfer, HeaderDecoder};
use mailpipe::message::parse::{HeaderBlock, Part};
use mailpipe::message::{tnef, uuencode};

/// Fills `auth` and `dkim_signatures` from `header`, and appends the
/// hidden attachments of `tree` to `attachments`; `decoded` are the text
/// parts convert.rs already decoded.
pub(crate) fn fill(
    record: &mut Record,
    header: &HeaderBlock<'_>,
    tree: Option<&Part<'_>>,
    decoder: &mut HeaderDecoder<'_>,
    options: &Options,
    decoded: &[DecodedText<'_, '_>],
) {
    let fields = record.fields;
    for f in &header.fields {
        let name = f.name;
        if fields.has("auth") && name.eq_ignore_ascii_case(b"authentication-results") {
            let value = String::from_utf8_lossy(&f.unfolded()).into_owned();
            record
                .auth
                .push(auth_results::parse(&value, decoder.defects));
        }
        if fields.has("dkim_signatures") && name.eq_ignore_ascii_case(b"dkim-signature") {
            let value = String::from_utf8_lossy(&f.unfolded()).into_owned();
            record
                .dkim_signatures
                .push(auth_results::dkim_signature(&value));
        }
    }
    if let (true, Some(top)) = (fields.has("attachments"), tree) {
        let mut walker = Walk {
            decoder,
            options,
            decoded,
            out: &mut record.attachments,
        };
        walker.walk(top, String::new());
    }
}

/// What the walk over the leaves carries.
struct Walk<'w, 'd, 'p, 'a> {
    decoder: &'w mut HeaderDecoder<'d>,
    options: &'w Options,
    decoded: &'w [DecodedText<'p, 'a>],
    out: &'w mut Vec<Attachment>,
}

impl<'w> Walk<'w, '_, '_, '_> {
    /// Every leaf below `part` (not inside message/rfc822, which is an
    /// attachment whole), with its IMAP section number.
    fn walk(&mut self, part: &Part<'_>, section: String) {
        if part.is_multipart() {
            for (i, child) in part.children.iter().enumerate() {
                let child_section = if section.is_empty() {
                    (i + 1).to_string()
                } else {
                    format!("{section}.{}", i + 1)
                };
                self.walk(child, child_section);
            }
            return;
        }
        let section = if section.is_empty() {
            "1".to_string()
        } else {
            section
        };
        let text = (part.mime_type() == "text/plain" && may_hold_uuencode(part))
            .then(|| self.text_of(part));
        let (found, defects) =
            hidden_attachments(part, &section, text.as_deref(), self.options.keep_content);
        self.out.extend(found);
        self.decoder.defects.extend(defects);
    }

    /// The part's text: the one convert.rs decoded (whose defects are
    /// recorded already), else decoded now.
    fn text_of(&mut self, part: &Part<'_>) -> std::borrow::Cow<'w, str> {
        let decoded: &'w [DecodedText<'_, '_>] = self.decoded;
        let done = decoded.iter().find(|d| std::ptr::addr_eq(d.part, part));
        match done {
            Some(d) => std::borrow::Cow::Borrowed(d.text.as_str()),
            None => std::borrow::Cow::Owned(decoded_text(part, self.decoder)),
        }
    }
}

/// Whether a text part is worth decoding to look for `begin` lines: always
/// when base64 hides its bytes, else only when the raw body has `begin `.
fn may_hold_uuencode(part: &Part<'_>) -> bool {
    let encoded = part
        .header
        .first("content-transfer-encoding")
        .is_some_and(|f| f.unfolded().trim_ascii().eq_ignore_ascii_case(b"base64"));
    encoded || memchr::memmem::find(part.body, b"begin ").is_some()
}

/// The files hidden in one leaf part: uuencode blocks in `decoded_text`
/// (its text, when it is a text part) and the attachments of a TNEF part.
/// `section` is the part's IMAP section number; `keep_content` keeps the
/// bytes for `--extract`. Defects say what was repaired or cut.
pub fn hidden_attachments(
    part: &Part<'_>,
    section: &str,
    decoded_text: Option<&str>,
    keep_content: bool,
) -> (Vec<Attachment>, Vec<String>) {
    let mut defects = Vec::new();
    let mut out = Vec::new();
    if let Some(text) = decoded_text {
        for block in uuencode::find(text, &mut defects) {
            out.push(attachment(
                Some(block.name),
                None,
                &block.data,
                "uuencode",
                section,
                keep_content,
            ));
        }
    }
    if is_tnef_part(part) {
        let encoding = transfer_encoding(part, &mut defects);
        let content = transfer::decode(part.body, encoding, &mut defects);
        if tnef::is_tnef(&content) {
            for a in tnef::attachments(&content, &mut defects) {
                out.push(attachment(
                    a.name,
                    a.mime_type,
                    a.data,
                    "tnef",
                    section,
                    keep_content,
                ));
            }
        } else {
            defects.push(format!("tnef-bad-signature: part {section}"));
        }
    }
    (out, defects)
}

/// application/ms-tnef (or vnd.ms-tnef), or a part named winmail.dat.
fn is_tnef_part(part: &Part<'_>) -> bool {
    let t = part.mime_type();
    if t == "application/ms-tnef" || t == "application/vnd.ms-tnef" {
        return true;
    }
    ["content-type", "content-disposition"].iter().any(|name| {
        part.header.first(name).is_some_and(|f| {
            f.value
                .windows(11)
                .any(|w| w.eq_ignore_ascii_case(b"winmail.dat"))
        })
    })
}

fn attachment(
    filename: Option<String>,
    content_type: Option<String>,
    data: &[u8],
    origin: &'static str,
    section: &str,
    keep_content: bool,
) -> Attachment {
    Attachment {
        filename,
        content_type: content_type.unwrap_or_else(|| "application/octet-stream".to_string()),
        disposition: None,
        content_id: None,
        size: data.len() as u64,
        sha256: hex(&Sha256::digest(data)),
        origin: Some(origin),
        origin_part: Some(section.to_string()),
        path: None,
        message: None,
        content: keep_content.then(|| data.to_vec()),
    }
}
