//! `--list`: the mailboxes on the server, names decoded from modified UTF-7;
//! with `--json`, one JSON object per line:
//! `{"name":"已发送","raw_name":"&XfJT0ZAB-","delimiter":"/","attributes":["\\Sent"],"messages":12}`
//! (`messages` is null for a mailbox that cannot be selected).

use std::io::Write;

use mailpipe::{Endpoint, Error};
use serde::Serialize;

use crate::fetch::{self, Value};
use crate::mutf7;
use crate::session::{imap_error, quoted, Session};

/// One mailbox as LIST reported it.
#[derive(Debug, Clone, Serialize)]
pub struct MailboxInfo {
    /// The name as users read it (UTF-8); the raw name if it does not decode.
    pub name: String,
    /// The name on the wire (modified UTF-7).
    pub raw_name: String,
    pub delimiter: Option<String>,
    pub attributes: Vec<String>,
    pub messages: Option<u32>,
}

impl MailboxInfo {
    /// Whether EXAMINE can open it.
    pub fn selectable(&self) -> bool {
        !self.attributes.iter().any(|a| {
            a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
        })
    }
}

/// All mailboxes (`LIST "" "*"`), in the server's order. The response is
/// read by `fetch.rs`: a quoted name's escapes (`"back\\slash"`, `"quo\"te"`)
/// are undone and a literal name is read whole, so the name is the one
/// EXAMINE must quote again.
pub fn mailboxes(session: &mut Session, endpoint: &Endpoint) -> Result<Vec<MailboxInfo>, Error> {
    let responses = session.untagged(endpoint, "LIST \"\" \"*\"")?;
    let mut list = Vec::new();
    for parts in &responses {
        let values = fetch::values(parts).map_err(|e| imap_error(endpoint, imap::Error::Io(e)))?;
        let mut values = values.into_iter();
        if !matches!(values.next(), Some(Value::Atom(a)) if a.eq_ignore_ascii_case("LIST")) {
            continue;
        }
        let (Some(Value::List(attributes)), Some(delimiter), Some(name)) =
            (values.next(), values.next(), values.next())
        else {
            return Err(Error::protocol(format!(
                "{}: a LIST response without attributes, delimiter and name",
                endpoint.url
            )));
        };
        let text = |v: Value| match v {
            Value::Atom(a) => Some(a),
            Value::Str(s) => Some(String::from_utf8_lossy(&s).into_owned()),
            Value::List(_) | Value::Nil => None,
        };
        let Some(mut raw_name) = text(name) else {
            return Err(Error::protocol(format!(
                "{}: a LIST response whose name is not a string",
                endpoint.url
            )));
        };
        if raw_name.eq_ignore_ascii_case("INBOX") {
            raw_name = "INBOX".to_string();
        }
        list.push(MailboxInfo {
            name: mutf7::decode(&raw_name).unwrap_or_else(|| raw_name.clone()),
            raw_name,
            delimiter: text(delimiter),
            attributes: attributes
                .into_iter()
                .filter_map(text)
                .map(attribute_name)
                .collect(),
            messages: None,
        });
    }
    Ok(list)
}

/// The attribute as the server wrote it, with RFC 3501's two spelled as
/// there (`\Noselect`, `\Noinferiors`).
fn attribute_name(a: String) -> String {
    for known in ["\\Noselect", "\\Noinferiors"] {
        if a.eq_ignore_ascii_case(known) {
            return known.to_string();
        }
    }
    a
}

/// MESSAGES of STATUS for `raw_name`; `None` for a name with a line break.
fn message_count(
    session: &mut Session,
    endpoint: &Endpoint,
    raw_name: &str,
) -> Result<Option<u32>, Error> {
    if raw_name.contains(['\r', '\n']) {
        return Ok(None);
    }
    let command = format!("STATUS {} (MESSAGES)", quoted(raw_name));
    for parts in session.untagged(endpoint, &command)? {
        let values = fetch::values(&parts).map_err(|e| imap_error(endpoint, imap::Error::Io(e)))?;
        let mut values = values.into_iter();
        if !matches!(values.next(), Some(Value::Atom(a)) if a.eq_ignore_ascii_case("STATUS")) {
            continue;
        }
        if let Some(Value::List(items)) = values.nth(1) {
            let mut items = items.into_iter();
            while let (Some(Value::Atom(key)), Some(Value::Atom(n))) = (items.next(), items.next())
            {
                if key.eq_ignore_ascii_case("MESSAGES") {
                    return Ok(n.parse().ok());
                }
            }
        }
    }
    Ok(None)
}

/// Prints the list on `out`: names, or JSON Lines with message counts.
pub fn print(
    session: &mut Session,
    endpoint: &Endpoint,
    json: bool,
    out: &mut impl Write,
) -> Result<(), Error> {
    let mut list = mailboxes(session, endpoint)?;
    for mailbox in &mut list {
        if json {
            if mailbox.selectable() {
                mailbox.messages = message_count(session, endpoint, &mailbox.raw_name)?;
            }
            let line = serde_json::to_string(&*mailbox)
                .map_err(|e| Error::new(mailpipe::Exit::Software, e.to_string()))?;
            writeln!(out, "{line}")
        } else {
            writeln!(out, "{}", mailbox.name)
        }
        .map_err(|e| Error::io("writing stdout", e))?;
    }
    out.flush().map_err(|e| Error::io("writing stdout", e))
}
