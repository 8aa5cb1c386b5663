//! `--list`: the mailboxes on the server, names decoded from modified UTF-7;
//! with `--json`, one JSON object per line:
//! `{"name":"已发送","raw_name":"&XfJT0ZAB-","delimiter":"/","attributes":["\\Sent"],"messages":12}`
//! (`messages` is null for a mailbox that cannot be selected).

use std::io::Write;

use mailpipe::{Endpoint, Error};
use serde::Serialize;

use crate::mutf7;
use crate::session::{imap_error, Session};

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

/// All mailboxes (`LIST "" "*"`), in the server's order.
pub fn mailboxes(session: &mut Session, endpoint: &Endpoint) -> Result<Vec<MailboxInfo>, Error> {
    let names = session
        .list(Some(""), Some("*"))
        .map_err(|e| imap_error(endpoint, e))?;
    Ok(names
        .iter()
        .map(|n| MailboxInfo {
            name: mutf7::decode(n.name()).unwrap_or_else(|| n.name().to_string()),
            raw_name: n.name().to_string(),
            delimiter: n.delimiter().map(str::to_string),
            attributes: n.attributes().iter().map(attribute_name).collect(),
            messages: None,
        })
        .collect())
}

/// The attribute as the server wrote it. The imap crate does not export its
/// attribute type, so this goes by the variant names of its `Debug` form.
fn attribute_name(a: &impl std::fmt::Debug) -> String {
    let debug = format!("{a:?}");
    if let Some(inner) = debug
        .strip_prefix("Extension(\"")
        .and_then(|r| r.strip_suffix("\")"))
    {
        return inner.replace("\\\\", "\\");
    }
    match debug.as_str() {
        "NoInferiors" => "\\Noinferiors".to_string(),
        "NoSelect" => "\\Noselect".to_string(),
        other => format!("\\{other}"),
    }
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
                let status = session
                    .status(&mailbox.raw_name, "(MESSAGES)")
                    .map_err(|e| imap_error(endpoint, e))?;
                mailbox.messages = Some(status.exists);
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
