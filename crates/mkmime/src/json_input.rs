//! `--json`: one JSON object on stdin, with the field names mail2json emits,
//! so that `mail2json | jq ... | mkmime --json` works. Fields mkmime does not
//! know (source, size, defects, sha256, ...) are ignored.
//!
//! - `from`, `sender`, `to`, `cc`, `bcc`, `reply_to`: a string `"Name <a@b>, c@d"`,
//!   an object `{"name": ..., "address": ...}`, or a list of either;
//! - `subject`, `text`, `html`, `message_id`: strings;
//! - `date`: an RFC 3339 or RFC 2822 string;
//! - `in_reply_to`, `references`: a string of ids or a list of them;
//! - `headers`: an object of name -> value (or list of values), or a list of
//!   `{"name": ..., "value": ...}`; applied first, so the named fields above
//!   win; MIME-Version and Content-* entries are skipped (mkmime writes those);
//! - `attachments`: a list of `{"path": ..., "filename": ..., "content_type": ...}`,
//!   `path` required.
//!
//! `null` is the same as an absent field.

use lettre::message::Mailbox;
use mailpipe::Error;
use serde_json::{Map, Value};

use crate::attach::FileSpec;
use crate::headers::{self, Fields};

/// The parts of the JSON object that are not header fields.
#[derive(Debug, Default)]
pub struct JsonInput {
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<FileSpec>,
}

fn label(field: &str) -> String {
    format!("json field \"{field}\"")
}

fn wrong_type(field: &str, expected: &str) -> Error {
    Error::data(format!("{}: expected {expected}", label(field)))
}

fn string<'a>(object: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, Error> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong_type(field, "a string")),
    }
}

fn one_address(field: &str, value: &Value) -> Result<Vec<Mailbox>, Error> {
    let label = label(field);
    match value {
        Value::String(s) => headers::parse_addresses(&label, s),
        Value::Object(o) => {
            let name = match o.get("name") {
                None | Some(Value::Null) => None,
                Some(Value::String(n)) => Some(n.as_str()),
                Some(_) => return Err(wrong_type(field, "\"name\" as a string")),
            };
            let Some(Value::String(address)) = o.get("address") else {
                return Err(wrong_type(field, "an object with an \"address\" string"));
            };
            Ok(vec![headers::mailbox_from_parts(&label, name, address)?])
        }
        _ => Err(wrong_type(
            field,
            "an address string, {\"name\",\"address\"}, or a list of them",
        )),
    }
}

fn addresses(object: &Map<String, Value>, field: &str) -> Result<Option<Vec<Mailbox>>, Error> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            let mut list = Vec::new();
            for item in items {
                list.extend(one_address(field, item)?);
            }
            Ok(Some(list))
        }
        Some(value) => one_address(field, value).map(Some),
    }
}

fn ids(object: &Map<String, Value>, field: &str) -> Result<Option<Vec<String>>, Error> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => headers::parse_ids(&label(field), s).map(Some),
        Some(Value::Array(items)) => {
            let mut list = Vec::new();
            for item in items {
                let Value::String(s) = item else {
                    return Err(wrong_type(field, "a string or a list of strings"));
                };
                list.extend(headers::parse_ids(&label(field), s)?);
            }
            Ok(Some(list))
        }
        Some(_) => Err(wrong_type(field, "a string or a list of strings")),
    }
}

fn apply_headers(value: &Value, fields: &mut Fields) -> Result<(), Error> {
    let label = label("headers");
    let mut apply = |name: &str, value: &Value| -> Result<(), Error> {
        match value {
            Value::String(v) => fields.apply(&label, name, v).map(|_| ()),
            Value::Array(values) => {
                for v in values {
                    let Value::String(v) = v else {
                        return Err(wrong_type("headers", "string values"));
                    };
                    fields.apply(&label, name, v)?;
                }
                Ok(())
            }
            _ => Err(wrong_type("headers", "string values")),
        }
    };
    match value {
        Value::Null => Ok(()),
        Value::Object(map) => map.iter().try_for_each(|(name, v)| apply(name, v)),
        Value::Array(items) => items.iter().try_for_each(|item| {
            let (Some(Value::String(name)), Some(v)) = (item.get("name"), item.get("value")) else {
                return Err(wrong_type(
                    "headers",
                    "a list of {\"name\": ..., \"value\": ...}",
                ));
            };
            apply(name, v)
        }),
        _ => Err(wrong_type(
            "headers",
            "an object or a list of {\"name\", \"value\"}",
        )),
    }
}

fn attachments(object: &Map<String, Value>) -> Result<Vec<FileSpec>, Error> {
    let items = match object.get("attachments") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(wrong_type("attachments", "a list")),
    };
    let mut specs = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("attachments[{i}]");
        let Value::Object(o) = item else {
            return Err(wrong_type(&field, "an object with a \"path\""));
        };
        let Some(path) =
            string(o, "path").map_err(|_| wrong_type(&field, "\"path\" as a string"))?
        else {
            return Err(Error::data(format!(
                "{}: no \"path\": mkmime attaches files by path",
                label(&field)
            )));
        };
        let name =
            string(o, "filename").map_err(|_| wrong_type(&field, "\"filename\" as a string"))?;
        let content_type = string(o, "content_type")
            .map_err(|_| wrong_type(&field, "\"content_type\" as a string"))?;
        specs.push(FileSpec {
            path: path.into(),
            name: name.map(str::to_string),
            content_type: content_type.map(str::to_string),
            cid: None,
        });
    }
    Ok(specs)
}

/// Reads the object into `fields` and returns the body parts it names.
pub fn apply(input: &[u8], fields: &mut Fields) -> Result<JsonInput, Error> {
    let value: Value = serde_json::from_slice(input)
        .map_err(|e| Error::data(format!("stdin is not a JSON object: {e}")))?;
    let Value::Object(object) = value else {
        return Err(Error::data("stdin is not a JSON object"));
    };
    if let Some(h) = object.get("headers") {
        apply_headers(h, fields)?;
    }
    if let Some(list) = addresses(&object, "from")? {
        fields.from = list;
    }
    if let Some(mut list) = addresses(&object, "sender")? {
        if list.len() > 1 {
            return Err(wrong_type("sender", "one address"));
        }
        fields.sender = list.pop();
    }
    for (field, slot) in [
        ("to", &mut fields.to),
        ("cc", &mut fields.cc),
        ("bcc", &mut fields.bcc),
        ("reply_to", &mut fields.reply_to),
    ] {
        if let Some(list) = addresses(&object, field)? {
            *slot = list;
        }
    }
    if let Some(subject) = string(&object, "subject")? {
        fields.subject = Some(headers::check_value(&label("subject"), subject)?.to_string());
    }
    if let Some(date) = string(&object, "date")? {
        fields.date = Some(headers::parse_date(&label("date"), date)?);
    }
    if let Some(mut list) = ids(&object, "message_id")? {
        if list.len() != 1 {
            return Err(wrong_type("message_id", "one message identifier"));
        }
        fields.message_id = list.pop();
    }
    if let Some(list) = ids(&object, "in_reply_to")? {
        fields.in_reply_to = list;
    }
    if let Some(list) = ids(&object, "references")? {
        fields.references = list;
    }
    Ok(JsonInput {
        text: string(&object, "text")?.map(str::to_string),
        html: string(&object, "html")?.map(str::to_string),
        attachments: attachments(&object)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn both_address_shapes_and_unknown_fields() {
        let mut f = Fields::default();
        let input = r#"{
            "from": [{"name": "张三", "address": "zs@example.org"}],
            "to": ["Ann <a@x.org>", "b@x.org"],
            "cc": "c@x.org, d@x.org",
            "bcc": [{"name": null, "address": "e@x.org"}],
            "subject": "hi", "text": "body", "sha256": "abc", "size": 12, "defects": [],
            "references": ["<r1@x>", "<r2@x>"], "in_reply_to": "<r2@x>",
            "date": "2026-01-02T03:04:05Z",
            "headers": [{"name": "X-Tag", "value": "t"}, {"name": "Content-Type", "value": "x/y"}],
            "attachments": [{"path": "/tmp/a.pdf", "filename": "b.pdf"}]
        }"#;
        let j = apply(input.as_bytes(), &mut f).unwrap();
        assert_eq!(f.from[0].name.as_deref(), Some("张三"));
        assert_eq!(f.to.len(), 2);
        assert_eq!(f.cc.len(), 2);
        assert_eq!(f.bcc.len(), 1);
        assert_eq!(f.references, vec!["<r1@x>", "<r2@x>"]);
        assert_eq!(f.extra, vec![("X-Tag".to_string(), "t".to_string())]);
        assert_eq!(j.text.as_deref(), Some("body"));
        assert_eq!(j.attachments[0].name.as_deref(), Some("b.pdf"));
    }

    #[test]
    fn headers_object_loses_to_named_fields() {
        let mut f = Fields::default();
        let input = br#"{"headers": {"Subject": "old", "To": "old@x.org", "X-A": ["1", "2"]},
                         "subject": "new", "to": "new@x.org"}"#;
        apply(input, &mut f).unwrap();
        assert_eq!(f.subject.as_deref(), Some("new"));
        assert_eq!(f.to.len(), 1);
        assert_eq!(f.extra.len(), 2);
    }

    #[test]
    fn injection_in_any_field_is_65_and_named() {
        for input in [
            r#"{"subject": "a\r\nBcc: x@y.z"}"#,
            r#"{"to": "a@x.org\nBcc: x@y.z"}"#,
            r#"{"from": [{"name": "A\nB", "address": "a@x.org"}]}"#,
            r#"{"headers": {"X-A": "1\r\nX-B: 2"}}"#,
            r#"{"headers": {"X-A\nB": "1"}}"#,
            r#"{"in_reply_to": "<a@b>\r\n"}"#,
            r#"{"date": "Fri, 02 Jan 2026 03:04:05 +0000\n"}"#,
        ] {
            let e = apply(input.as_bytes(), &mut Fields::default()).unwrap_err();
            assert_eq!(e.exit().code(), 65, "{input}");
            assert!(e.message().starts_with("json field"), "{}", e.message());
        }
    }

    #[test]
    fn attachment_without_path_and_bad_types() {
        assert!(apply(
            br#"{"attachments": [{"filename": "a"}]}"#,
            &mut Fields::default()
        )
        .is_err());
        assert!(apply(br#"{"to": 5}"#, &mut Fields::default()).is_err());
        assert!(apply(br#"[1]"#, &mut Fields::default()).is_err());
    }
}
