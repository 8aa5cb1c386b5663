//! The output record: one JSON object per message. Schema version 2.
//!
//! docs/mail2json-schema.md is the long form of this comment; keep both in step
//! and bump [`SCHEMA_VERSION`] when a field changes meaning or type.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use mailpipe::message::auth_results::{AuthResults, DkimSignature};
use mailpipe::message::Mailbox;

/// Bumped when a field changes meaning or type; adding a field does not bump it.
pub const SCHEMA_VERSION: u32 = 2;

/// The fields a record can hold, in output order. `headers` and `parts` are
/// only written when asked for (`--headers`, `--parts`, or `--fields`).
pub const FIELD_NAMES: [&str; 27] = [
    "schema",
    "source",
    "size",
    "message_id",
    "in_reply_to",
    "references",
    "date",
    "date_raw",
    "from",
    "sender",
    "reply_to",
    "to",
    "cc",
    "bcc",
    "subject",
    "text",
    "html",
    "attachments",
    "auth",
    "dkim_signatures",
    "headers",
    "parts",
    "defects",
    "error",
    // Only in a delivery report (crate::delivery_status).
    "delivery_status",
    // Aliases that select a group.
    "addresses",
    "body",
];

/// A set of field names, as a bit mask over [`FIELD_NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSet(u32);

impl FieldSet {
    pub fn default_set() -> FieldSet {
        let mut s = FieldSet(0);
        for name in &FIELD_NAMES[..25] {
            if *name != "headers" && *name != "parts" {
                s.insert(name);
            }
        }
        s
    }

    /// From `a,b,c`; unknown names are an error naming them.
    pub fn parse(list: &str) -> Result<FieldSet, String> {
        let mut s = FieldSet(0);
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "addresses" => {
                    for n in ["from", "sender", "reply_to", "to", "cc", "bcc"] {
                        s.insert(n);
                    }
                }
                "body" => {
                    for n in ["text", "html"] {
                        s.insert(n);
                    }
                }
                _ if FIELD_NAMES.contains(&name) => s.insert(name),
                _ => {
                    return Err(format!(
                        "unknown field {name:?} in --fields (known: {})",
                        FIELD_NAMES.join(", ")
                    ))
                }
            }
        }
        Ok(s)
    }

    pub fn insert(&mut self, name: &str) {
        if let Some(i) = FIELD_NAMES.iter().position(|n| *n == name) {
            self.0 |= 1 << i;
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Some(i) = FIELD_NAMES.iter().position(|n| *n == name) {
            self.0 &= !(1 << i);
        }
    }

    pub fn has(&self, name: &str) -> bool {
        FIELD_NAMES
            .iter()
            .position(|n| *n == name)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

/// Where a message came from.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// The file or maildir file the message was read from, `-` for stdin.
    pub path: String,
    /// Byte offset of the message's From_ line, for messages of an mbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// One attachment: a part of RFC 8621's `attachments` (or inline media).
#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    pub filename: Option<String>,
    pub content_type: String,
    pub disposition: Option<String>,
    pub content_id: Option<String>,
    /// Size of the decoded content in bytes.
    pub size: u64,
    /// SHA-256 of the decoded content, lowercase hex.
    pub sha256: String,
    /// Absent for MIME parts; `uuencode` or `tnef` for a file found inside
    /// a part (see `hidden.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<&'static str>,
    /// The IMAP section number (`1`, `2.1`) of the part it was found in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_part: Option<String>,
    /// Where `--extract DIR` wrote the content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// An attached message's own record (without `schema`, `source`, `parts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Box<Record>>,
    /// The decoded content, kept only while `--extract` needs it.
    #[serde(skip)]
    pub content: Option<Vec<u8>>,
}

/// One header field, in message order, value unfolded and decoded.
#[derive(Debug, Clone, Serialize)]
pub struct HeaderField {
    pub name: String,
    pub value: String,
}

/// A node of the MIME tree (`--parts`).
#[derive(Debug, Clone, Serialize)]
pub struct PartNode {
    pub content_type: String,
    pub charset: Option<String>,
    pub transfer_encoding: Option<String>,
    pub disposition: Option<String>,
    pub filename: Option<String>,
    pub content_id: Option<String>,
    /// Bytes of the body as it is in the message (still transfer-encoded).
    pub encoded_size: u64,
    pub parts: Vec<PartNode>,
}

/// A message as JSON: schema 2.
///
/// | field | type | meaning |
/// |---|---|---|
/// | `schema` | number | 2 |
/// | `source` | `{path, offset?}` | file (`-` = stdin) and mbox byte offset |
/// | `size` | number | bytes of the message (mboxrd quoting undone) |
/// | `message_id`, `in_reply_to` | string/null | without angle brackets |
/// | `references` | [string] | without angle brackets |
/// | `date` | string/null | RFC 3339 with the original offset; `-00:00` when unknown |
/// | `date_raw` | string/null | the Date header as written |
/// | `from`, `sender`, `reply_to`, `to`, `cc`, `bcc` | [`{name, address}`] | names decoded, groups flattened |
/// | `subject` | string/null | decoded |
/// | `text`, `html` | string/null | the text/plain (text/html) parts of RFC 8621's `textBody` (`htmlBody`) joined, UTF-8, line ends LF |
/// | `attachments` | [`{filename, content_type, disposition, content_id, size, sha256, origin?, origin_part?, path?, message?}`] | RFC 8621's `attachments`, then inline media of both bodies, then files found inside them (`origin`: `uuencode`, `tnef`); `message`: an attached message's record |
/// | `auth` | [`{authserv_id, results: [{method, version?, result, reason, properties}]}`] | each Authentication-Results field, parsed, in order |
/// | `dkim_signatures` | [`{d, s, a}`] | the signer of each DKIM-Signature field (not verified) |
/// | `headers` | [`{name, value}`] | all fields in order, decoded (`--headers`) |
/// | `parts` | tree | the MIME structure (`--parts`) |
/// | `delivery_status` | object | only in a delivery report: see `delivery_status.rs` |
/// | `defects` | [string] | `code` or `code: detail`; never a reason to drop a message |
/// | `error` | string | only for input that is not mail at all |
///
/// Bytes that are not valid in their charset become U+FFFD; every string is
/// valid UTF-8, so any JSON reader can load the output.
#[derive(Debug, Clone)]
pub struct Record {
    pub fields: FieldSet,
    pub source: Source,
    pub size: u64,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub date: Option<String>,
    pub date_raw: Option<String>,
    pub from: Vec<Mailbox>,
    pub sender: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    pub auth: Vec<AuthResults>,
    pub dkim_signatures: Vec<DkimSignature>,
    pub headers: Vec<HeaderField>,
    pub parts: Option<PartNode>,
    pub defects: Vec<String>,
    pub error: Option<String>,
    pub delivery_status: Option<crate::delivery_status::DeliveryStatus>,
}

impl Record {
    pub fn new(fields: FieldSet, source: Source, size: u64) -> Record {
        Record {
            fields,
            source,
            size,
            message_id: None,
            in_reply_to: None,
            references: Vec::new(),
            date: None,
            date_raw: None,
            from: Vec::new(),
            sender: Vec::new(),
            reply_to: Vec::new(),
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            subject: None,
            text: None,
            html: None,
            attachments: Vec::new(),
            auth: Vec::new(),
            dkim_signatures: Vec::new(),
            headers: Vec::new(),
            parts: None,
            defects: Vec::new(),
            error: None,
            delivery_status: None,
        }
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let f = self.fields;
        let mut map = serializer.serialize_map(None)?;
        macro_rules! field {
            ($name:literal, $value:expr) => {
                if f.has($name) {
                    map.serialize_entry($name, $value)?;
                }
            };
        }
        field!("schema", &SCHEMA_VERSION);
        // A failed message always says where it came from.
        if f.has("source") || self.error.is_some() {
            map.serialize_entry("source", &self.source)?;
        }
        field!("size", &self.size);
        if let Some(error) = &self.error {
            map.serialize_entry("error", error)?;
            field!("defects", &self.defects);
            return map.end();
        }
        field!("message_id", &self.message_id);
        field!("in_reply_to", &self.in_reply_to);
        field!("references", &self.references);
        field!("date", &self.date);
        field!("date_raw", &self.date_raw);
        field!("from", &self.from);
        field!("sender", &self.sender);
        field!("reply_to", &self.reply_to);
        field!("to", &self.to);
        field!("cc", &self.cc);
        field!("bcc", &self.bcc);
        field!("subject", &self.subject);
        field!("text", &self.text);
        field!("html", &self.html);
        field!("attachments", &self.attachments);
        field!("auth", &self.auth);
        field!("dkim_signatures", &self.dkim_signatures);
        field!("headers", &self.headers);
        field!("parts", &self.parts);
        if let Some(status) = &self.delivery_status {
            field!("delivery_status", status);
        }
        field!("defects", &self.defects);
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_sets() {
        let d = FieldSet::default_set();
        assert!(d.has("subject") && d.has("defects") && !d.has("headers") && !d.has("parts"));
        assert!(d.has("auth") && d.has("dkim_signatures"));
        let s = FieldSet::parse("subject, addresses").expect("valid");
        assert!(s.has("subject") && s.has("cc") && !s.has("text"));
        assert!(FieldSet::parse("subjcet").is_err());
    }

    #[test]
    fn error_records_keep_source() {
        let mut r = Record::new(
            FieldSet::parse("subject").expect("valid"),
            Source {
                path: "x.mbox".into(),
                offset: Some(7),
            },
            3,
        );
        r.error = Some("not mail".into());
        let json = serde_json::to_string(&r).expect("serializes");
        assert_eq!(
            json,
            r#"{"source":{"path":"x.mbox","offset":7},"error":"not mail"}"#
        );
    }
}
