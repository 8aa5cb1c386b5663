//! The header fields of the message being made, whichever input they come
//! from, checked on the way in: no line break or other control character in
//! a value (header injection), addresses that parse (an internationalized
//! domain put in its IDNA form), message identifiers that are identifiers,
//! dates that are dates.

use chrono::{DateTime, FixedOffset};
use lettre::message::{Mailbox, Mailboxes};
use lettre::Address;
use mailpipe::message::idna;
use mailpipe::Error;

use crate::header_encode;

/// Every header field of the message except the MIME ones, which mkmime
/// derives from the parts.
#[derive(Debug, Default)]
pub struct Fields {
    pub from: Vec<Mailbox>,
    pub sender: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub subject: Option<String>,
    pub date: Option<DateTime<FixedOffset>>,
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Any other field, in input order; repeats are kept.
    pub extra: Vec<(String, String)>,
}

/// What a header name means to mkmime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    From,
    Sender,
    To,
    Cc,
    Bcc,
    ReplyTo,
    Subject,
    Date,
    MessageId,
    InReplyTo,
    References,
    /// MIME-Version and Content-*: mkmime writes these from the parts.
    Mime,
    Other,
}

impl Kind {
    pub fn of(name: &str) -> Kind {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "from" => Kind::From,
            "sender" => Kind::Sender,
            "to" => Kind::To,
            "cc" => Kind::Cc,
            "bcc" => Kind::Bcc,
            "reply-to" => Kind::ReplyTo,
            "subject" => Kind::Subject,
            "date" => Kind::Date,
            "message-id" => Kind::MessageId,
            "in-reply-to" => Kind::InReplyTo,
            "references" => Kind::References,
            "mime-version" => Kind::Mime,
            _ if lower.starts_with("content-") => Kind::Mime,
            _ => Kind::Other,
        }
    }
}

/// Rejects a value that would break out of its header line. `label` names
/// where it came from (`--subject`, `json field "to"`, `draft header Cc`).
pub fn check_value<'a>(label: &str, value: &'a str) -> Result<&'a str, Error> {
    if value.contains(['\r', '\n']) {
        return Err(Error::data(format!(
            "{label}: line break in a header value (header injection refused)"
        )));
    }
    if let Some(c) = value.chars().find(|&c| c.is_control() && c != '\t') {
        return Err(Error::data(format!(
            "{label}: control character U+{:04X} in a header value",
            c as u32
        )));
    }
    Ok(value.trim_matches([' ', '\t']))
}

/// RFC 5322 field name: printable ASCII except colon.
pub fn check_name(label: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() || !name.bytes().all(|b| (33..127).contains(&b) && b != b':') {
        return Err(Error::data(format!(
            "{label}: {name:?} is not a header name (printable ASCII, no spaces or colon)"
        )));
    }
    if name.len() > 76 {
        return Err(Error::data(format!(
            "{label}: header name longer than 76 characters"
        )));
    }
    Ok(())
}

/// Parses `Name <a@b>, c@d`. An address with an ASCII local part and a
/// UTF-8 domain gets the domain's IDNA form (`user@xn--fsqu00a.xn--fiqs8s`):
/// every reader and server takes it, no SMTPUTF8 needed. An address with a
/// UTF-8 local part has no ASCII form: it stays as written, raw UTF-8 in the
/// header (RFC 6532), and smtp-send will need the server's SMTPUTF8.
pub fn parse_addresses(label: &str, value: &str) -> Result<Vec<Mailbox>, Error> {
    let value = check_value(label, value)?;
    let value = value.trim_end_matches(',').trim();
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let parsed: Mailboxes = value
        .parse()
        .map_err(|e| Error::data(format!("{label}: cannot parse address {value:?}: {e}")))?;
    parsed
        .into_iter()
        .map(|m| internationalize(label, m))
        .collect()
}

/// One address from a JSON object `{"name": ..., "address": ...}`.
pub fn mailbox_from_parts(
    label: &str,
    name: Option<&str>,
    address: &str,
) -> Result<Mailbox, Error> {
    let address = check_value(label, address)?;
    let email = address
        .parse()
        .map_err(|e| Error::data(format!("{label}: cannot parse address {address:?}: {e}")))?;
    let name = match name {
        Some(n) => Some(check_value(label, n)?.to_string()).filter(|n| !n.is_empty()),
        None => None,
    };
    internationalize(label, Mailbox::new(name, email))
}

/// The mailbox as it goes in the header: a UTF-8 domain in IDNA form when
/// the local part is ASCII (see [`parse_addresses`]).
fn internationalize(label: &str, mailbox: Mailbox) -> Result<Mailbox, Error> {
    let address: &str = mailbox.email.as_ref();
    let spelled = idna::ascii_domain_address(address)
        .map_err(|e| Error::data(format!("{label}: {address:?}: {e}")))?;
    if spelled == address {
        return Ok(mailbox);
    }
    let (user, domain) = idna::split(&spelled);
    let email = Address::new(user, domain).map_err(|e| {
        Error::data(format!(
            "{label}: cannot write {address:?} as {spelled:?}: {e}"
        ))
    })?;
    Ok(Mailbox::new(mailbox.name, email))
}

/// Parses one or more message identifiers: `<a@b> <c@d>`; a bare `a@b` is
/// given its angle brackets.
pub fn parse_ids(label: &str, value: &str) -> Result<Vec<String>, Error> {
    let value = check_value(label, value)?;
    let mut ids = Vec::new();
    for word in value.split([' ', '\t', ',']).filter(|w| !w.is_empty()) {
        let inner = word
            .strip_prefix('<')
            .and_then(|w| w.strip_suffix('>'))
            .unwrap_or(word);
        let ok = !inner.is_empty()
            && inner.len() < 900
            && inner
                .bytes()
                .all(|b| (33..127).contains(&b) && !b"<>\"\\".contains(&b))
            && inner.contains('@');
        if !ok {
            return Err(Error::data(format!(
                "{label}: {word:?} is not a message identifier like <id@host>"
            )));
        }
        ids.push(format!("<{inner}>"));
    }
    Ok(ids)
}

/// RFC 2822 (`Tue, 1 Jul 2025 10:00:00 +0800`) or RFC 3339 (`2025-07-01T10:00:00+08:00`).
pub fn parse_date(label: &str, value: &str) -> Result<DateTime<FixedOffset>, Error> {
    let value = check_value(label, value)?;
    DateTime::parse_from_rfc2822(value)
        .or_else(|_| DateTime::parse_from_rfc3339(value))
        .map_err(|_| {
            Error::data(format!(
                "{label}: {value:?} is not an RFC 2822 or RFC 3339 date"
            ))
        })
}

/// The Date field as RFC 5322 writes it.
pub fn format_date(date: &DateTime<FixedOffset>) -> String {
    date.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

impl Fields {
    /// Applies one `Name: value` field from a draft, `--header` or JSON
    /// `headers`. Address fields add to what is there; the others replace.
    /// MIME fields are not applied: the caller decides whether that is an error.
    pub fn apply(&mut self, label: &str, name: &str, value: &str) -> Result<Kind, Error> {
        check_name(label, name)?;
        let label = format!("{label} {name}");
        let kind = Kind::of(name);
        match kind {
            Kind::From => self.from.extend(parse_addresses(&label, value)?),
            Kind::To => self.to.extend(parse_addresses(&label, value)?),
            Kind::Cc => self.cc.extend(parse_addresses(&label, value)?),
            Kind::Bcc => self.bcc.extend(parse_addresses(&label, value)?),
            Kind::ReplyTo => self.reply_to.extend(parse_addresses(&label, value)?),
            Kind::Sender => {
                let mut list = parse_addresses(&label, value)?;
                if list.len() > 1 {
                    return Err(Error::data(format!("{label}: Sender takes one address")));
                }
                if let Some(sender) = list.pop() {
                    self.sender = Some(sender);
                }
            }
            Kind::Subject => self.subject = Some(check_value(&label, value)?.to_string()),
            Kind::Date => self.date = Some(parse_date(&label, value)?),
            Kind::MessageId => self.message_id = Some(one_id(&label, value)?),
            Kind::InReplyTo => self.in_reply_to = parse_ids(&label, value)?,
            Kind::References => self.references = parse_ids(&label, value)?,
            Kind::Mime => check_value(&label, value).map(|_| ())?,
            Kind::Other => {
                let value = check_value(&label, value)?;
                self.extra.push((name.to_string(), value.to_string()));
            }
        }
        Ok(kind)
    }

    /// Checks what RFC 5322 requires of the originator fields.
    pub fn check(&self) -> Result<(), Error> {
        if self.from.len() > 1 && self.sender.is_none() {
            return Err(Error::data(
                "From has several addresses: RFC 5322 then requires a Sender (--header 'Sender: ...')",
            ));
        }
        Ok(())
    }

    /// The domain Message-IDs are made in: the first From address's, in its
    /// IDNA form (a Message-ID is ASCII even in a UTF-8 header).
    pub fn id_domain(&self) -> String {
        self.from
            .first()
            .and_then(|m| idna::ascii_domain(m.email.domain()).ok())
            .unwrap_or_else(|| "localhost".to_string())
    }

    /// The header block except Date and Message-ID, which depend on it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut addresses = |name: &str, list: &[Mailbox]| {
            if !list.is_empty() {
                out.push_str(&header_encode::address_list(name, list));
            }
        };
        addresses("From", &self.from);
        if let Some(sender) = &self.sender {
            addresses("Sender", std::slice::from_ref(sender));
        }
        addresses("To", &self.to);
        addresses("Cc", &self.cc);
        addresses("Bcc", &self.bcc);
        addresses("Reply-To", &self.reply_to);
        if let Some(subject) = &self.subject {
            out.push_str(&header_encode::unstructured("Subject", subject));
        }
        if !self.in_reply_to.is_empty() {
            out.push_str(&header_encode::id_list("In-Reply-To", &self.in_reply_to));
        }
        if !self.references.is_empty() {
            out.push_str(&header_encode::id_list("References", &self.references));
        }
        for (name, value) in &self.extra {
            out.push_str(&header_encode::unstructured(name, value));
        }
        out
    }
}

fn one_id(label: &str, value: &str) -> Result<String, Error> {
    let mut ids = parse_ids(label, value)?;
    match (ids.pop(), ids.is_empty()) {
        (Some(id), true) => Ok(id),
        _ => Err(Error::data(format!(
            "{label}: expected one message identifier"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_controls_are_refused_with_the_label() {
        let e = check_value("--subject", "hi\r\nBcc: evil@x.org").unwrap_err();
        assert_eq!(e.exit().code(), 65);
        assert!(
            e.message().starts_with("--subject: line break"),
            "{}",
            e.message()
        );
        assert!(check_value("--subject", "a\nb").is_err());
        assert!(check_value("--subject", "a\rb").is_err());
        assert!(check_value("--subject", "a\0b").is_err());
        assert_eq!(
            check_value("--subject", "  tab\there ").unwrap(),
            "tab\there"
        );
    }

    #[test]
    fn addresses_parse_and_international_domains_become_idna() {
        let list =
            parse_addresses("--to", "Ann <a@x.org>, \"Lee, Bo\" <b@x.org>, c@x.org").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].name.as_deref(), Some("Lee, Bo"));
        assert!(parse_addresses("--to", "not an address").is_err());
        assert!(parse_addresses("--to", "a@x.org junk").is_err());
        let list = parse_addresses("--to", "用户@例子.中国, 张三 <user@例子.中国>").unwrap();
        let spelled: Vec<String> = list.iter().map(|m| m.email.to_string()).collect();
        assert_eq!(spelled, ["用户@例子.中国", "user@xn--fsqu00a.xn--fiqs8s"]);
        assert_eq!(list[1].name.as_deref(), Some("张三"));
        let one = mailbox_from_parts("json", Some("B"), "a@bücher.de").unwrap();
        assert_eq!(one.email.to_string(), "a@xn--bcher-kva.de");
        assert!(parse_addresses("--cc", "  ").unwrap().is_empty());
        let mut f = Fields::default();
        f.apply("h", "From", "张三 <张三@例子.中国>").unwrap();
        assert_eq!(f.id_domain(), "xn--fsqu00a.xn--fiqs8s");
    }

    #[test]
    fn ids_get_brackets_and_junk_is_refused() {
        assert_eq!(parse_ids("x", "a@b <c@d>").unwrap(), vec!["<a@b>", "<c@d>"]);
        assert!(parse_ids("x", "no-at-sign").is_err());
        assert!(parse_ids("x", "<a@b>>").is_err());
    }

    #[test]
    fn dates_in_both_forms() {
        let a = parse_date("x", "2026-01-02T03:04:05+08:00").unwrap();
        let b = parse_date("x", "Fri, 02 Jan 2026 03:04:05 +0800").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_date(&a), "Fri, 02 Jan 2026 03:04:05 +0800");
        assert!(parse_date("x", "yesterday").is_err());
    }

    #[test]
    fn apply_routes_known_names() {
        let mut f = Fields::default();
        f.apply("draft header", "to", "a@x.org").unwrap();
        f.apply("draft header", "To", "b@x.org").unwrap();
        f.apply("draft header", "Subject", "one").unwrap();
        f.apply("draft header", "SUBJECT", "two").unwrap();
        f.apply("draft header", "X-Tag", "a").unwrap();
        f.apply("draft header", "X-Tag", "b").unwrap();
        assert_eq!(
            f.apply("draft header", "Content-Type", "text/html")
                .unwrap(),
            Kind::Mime
        );
        assert_eq!(f.to.len(), 2);
        assert_eq!(f.subject.as_deref(), Some("two"));
        assert_eq!(f.extra.len(), 2);
        assert!(f.apply("draft header", "Bad Name", "x").is_err());
    }

    #[test]
    fn several_from_need_sender() {
        let mut f = Fields::default();
        f.apply("h", "From", "a@x.org, b@x.org").unwrap();
        assert!(f.check().is_err());
        f.apply("h", "Sender", "a@x.org").unwrap();
        assert!(f.check().is_ok());
    }
}
