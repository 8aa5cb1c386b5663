//! The SMTP envelope: who the message is from (MAIL FROM) and to (RCPT TO),
//! from the command line, the message's header fields (`-t`) and the account.
//!
//! An internationalized domain goes in its IDNA form (`user@例子.中国` as
//! `user@xn--fsqu00a.xn--fiqs8s`), which needs no SMTPUTF8, and which servers
//! route by even when SMTPUTF8 is used; a UTF-8 local part has no ASCII form,
//! and needs SMTPUTF8 (RFC 6531).

use lettre::Address;
use mailpipe::message::{envelope as header, header_block, idna};
use mailpipe::{Endpoint, Error, Exit};

use crate::dsn::{Dsn, DsnArgs};

/// MAIL FROM and RCPT TO of one transaction, and the DSN requests that go
/// with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `None` is the null reverse-path `<>` (bounces).
    pub sender: Option<Address>,
    /// In order, without duplicates.
    pub recipients: Vec<Address>,
    /// A header address with a UTF-8 local part (field, address): the
    /// message itself then needs SMTPUTF8 (RFC 6532).
    pub utf8_header: Option<(String, String)>,
    pub dsn: Dsn,
}

impl Envelope {
    /// Why the session must use SMTPUTF8, if it must: an envelope address
    /// or a header address with a UTF-8 local part (no ASCII form exists).
    pub fn smtputf8_reason(&self) -> Option<String> {
        let envelope = self
            .sender
            .iter()
            .map(|a| ("sender", a))
            .chain(self.recipients.iter().map(|a| ("recipient", a)))
            .find(|(_, a)| !a.to_string().is_ascii());
        if let Some((role, address)) = envelope {
            return Some(format!("the {role} {address} has a UTF-8 local part"));
        }
        self.utf8_header
            .as_ref()
            .map(|(field, address)| format!("the {field} header has {address}, a UTF-8 local part"))
    }

    /// Non-ASCII in an address needs the server's SMTPUTF8.
    pub fn needs_smtputf8(&self) -> bool {
        self.smtputf8_reason().is_some()
    }

    /// The sender for a From_ line (dead-letter file), `MAILER-DAEMON` for `<>`.
    pub fn sender_text(&self) -> String {
        self.sender
            .as_ref()
            .map_or_else(|| "MAILER-DAEMON".to_string(), |a| a.to_string())
    }
}

/// What the command line says about the envelope.
#[derive(Debug, Clone, Default)]
pub struct EnvelopeArgs {
    pub from: Option<String>,
    pub recipients: Vec<String>,
    pub read_recipients: bool,
    pub dsn: DsnArgs,
}

/// Builds the envelope of one message: recipients from the arguments and,
/// with `-t`, from To, Cc and Bcc (Resent-To/Cc/Bcc when the message has
/// Resent-* fields); the sender from `-f`, else From (Resent-From), else the
/// account's `from`, else the login name if it is an address.
pub fn derive_envelope(
    args: &EnvelopeArgs,
    raw: &[u8],
    endpoint: Option<&Endpoint>,
) -> Result<Envelope, Error> {
    let (block, _) = header_block(raw);
    let resent = header::is_resent(&block);
    let mut recipients: Vec<Address> = Vec::new();
    for text in &args.recipients {
        push_unique(
            &mut recipients,
            parse_address(text, Exit::Usage, "recipient")?,
        );
    }
    if args.read_recipients {
        for (field, text) in header::recipients(&block) {
            let what = format!("{field} header: recipient");
            push_unique(&mut recipients, parse_address(&text, Exit::Data, &what)?);
        }
        if recipients.is_empty() {
            return Err(Error::data(format!(
                "-t: the message has no {} recipients",
                if resent {
                    "Resent-To, Resent-Cc or Resent-Bcc"
                } else {
                    "To, Cc or Bcc"
                }
            )));
        }
    }
    if recipients.is_empty() {
        return Err(Error::usage(
            "no recipients: give addresses as arguments, or -t to read To, Cc and Bcc",
        ));
    }
    let sender = match &args.from {
        Some(text) if text.trim() == "<>" || text.is_empty() => None,
        Some(text) => Some(parse_address(text, Exit::Usage, "sender (-f)")?),
        None => Some(default_sender(&block, endpoint)?),
    };
    Ok(Envelope {
        sender,
        recipients,
        utf8_header: header::utf8_address(&block),
        dsn: args.dsn.resolve(endpoint)?,
    })
}

fn default_sender(
    block: &mailpipe::message::HeaderBlock<'_>,
    endpoint: Option<&Endpoint>,
) -> Result<Address, Error> {
    let field = header::originator_field(block);
    if let Some((_, first)) = header::addresses_in(block, &[field]).first() {
        return parse_address(first, Exit::Data, "sender (From)");
    }
    if let Some(from) = endpoint.and_then(|e| e.from.as_deref()) {
        let Some(first) = header::addresses(from.as_bytes()).into_iter().next() else {
            return Err(Error::config(format!(
                "account from {from:?}: no address in it"
            )));
        };
        return parse_address(&first, Exit::Config, "account's from");
    }
    if let Some(user) = endpoint.and_then(|e| e.user.as_deref()) {
        if let Ok(address) = user.parse::<Address>() {
            return Ok(address);
        }
    }
    Err(Error::usage(
        "no sender: give -f ADDRESS, a From header, or an account with from or user",
    ))
}

/// An address as SMTP carries it (`local@domain`, a UTF-8 domain in IDNA
/// form); `<a@b>` is accepted too.
pub fn parse_address(text: &str, exit: Exit, what: &str) -> Result<Address, Error> {
    let bare = text.trim();
    let bare = bare
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(bare);
    let invalid =
        |e: String| Error::new(exit, format!("{what} {text:?} is not a valid address: {e}"));
    idna::with_ascii_domain(bare)
        .map_err(invalid)?
        .parse::<Address>()
        .map_err(|e| invalid(e.to_string()))
}

fn push_unique(list: &mut Vec<Address>, address: Address) {
    if !list.contains(&address) {
        list.push(address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(args: &EnvelopeArgs, raw: &[u8]) -> Result<Envelope, Error> {
        derive_envelope(args, raw, None)
    }

    fn texts(e: &Envelope) -> Vec<String> {
        e.recipients.iter().map(|a| a.to_string()).collect()
    }

    const MSG: &[u8] = b"From: \"A, B\" <a@example.org>\nTo: b@example.org, Group: c@example.org, d@example.org;\nCc: <b@example.org>\nBcc: e@example.org\n\nx\n";

    #[test]
    fn t_reads_to_cc_bcc_and_merges_arguments() {
        let args = EnvelopeArgs {
            recipients: vec!["z@example.org".into(), "b@example.org".into()],
            read_recipients: true,
            ..Default::default()
        };
        let e = envelope(&args, MSG).expect("envelope");
        assert_eq!(
            texts(&e),
            [
                "z@example.org",
                "b@example.org",
                "c@example.org",
                "d@example.org",
                "e@example.org"
            ]
        );
        assert_eq!(e.sender.expect("sender").to_string(), "a@example.org");
    }

    #[test]
    fn resent_fields_win_and_f_overrides() {
        let raw = b"From: a@example.org\nTo: old@example.org\nResent-From: r@example.org\nResent-To: new@example.org\n\nx\n";
        let args = EnvelopeArgs {
            read_recipients: true,
            ..Default::default()
        };
        let e = envelope(&args, raw).expect("envelope");
        assert_eq!(texts(&e), ["new@example.org"]);
        assert_eq!(e.sender.expect("sender").to_string(), "r@example.org");
        let args = EnvelopeArgs {
            read_recipients: true,
            from: Some("<>".into()),
            ..Default::default()
        };
        assert_eq!(envelope(&args, raw).expect("envelope").sender, None);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = envelope(&EnvelopeArgs::default(), MSG).expect_err("no recipients");
        assert_eq!(e.exit(), Exit::Usage);
        let args = EnvelopeArgs {
            recipients: vec!["not an address".into()],
            ..Default::default()
        };
        assert_eq!(envelope(&args, MSG).expect_err("bad").exit(), Exit::Usage);
        let args = EnvelopeArgs {
            read_recipients: true,
            ..Default::default()
        };
        let e = envelope(&args, b"From: a@example.org\nSubject: x\n\n").expect_err("no To");
        assert_eq!(e.exit(), Exit::Data);
        let args = EnvelopeArgs {
            recipients: vec!["b@example.org".into()],
            ..Default::default()
        };
        let e = envelope(&args, b"Subject: x\n\n").expect_err("no sender");
        assert_eq!(e.exit(), Exit::Usage);
    }

    /// mailparse, an independent parser, finds the same recipients where it
    /// reads addresses at all (it drops a quoted local part: the reason -t
    /// no longer uses it).
    #[test]
    fn recipients_agree_with_mailparse() {
        for value in [
            "b@example.org",
            "\"Doe, J\" <j@example.org>, k@example.org (Kay)",
            "e@example.org, Group: c@example.org, <d@example.org>;",
            "=?utf-8?q?Z=C3=A9?= <z@example.org>",
        ] {
            let raw = format!("From: a@example.org\nTo: {value}\n\nx\n");
            let ours = texts(&envelope(&read_recipients(), raw.as_bytes()).expect("envelope"));
            let mut theirs = Vec::new();
            for entry in mailparse::addrparse(value)
                .expect("mailparse parses")
                .iter()
            {
                match entry {
                    mailparse::MailAddr::Single(s) => theirs.push(s.addr.clone()),
                    mailparse::MailAddr::Group(g) => {
                        theirs.extend(g.addrs.iter().map(|s| s.addr.clone()))
                    }
                }
            }
            assert_eq!(ours, theirs, "{value}");
        }
    }

    fn read_recipients() -> EnvelopeArgs {
        EnvelopeArgs {
            read_recipients: true,
            ..Default::default()
        }
    }

    #[test]
    fn non_ascii_needs_smtputf8() {
        let args = EnvelopeArgs {
            recipients: vec!["josé@example.org".into()],
            from: Some("a@example.org".into()),
            ..Default::default()
        };
        let e = envelope(&args, b"Subject: x\n\n").expect("envelope");
        assert!(e.needs_smtputf8());
    }

    /// An IDN domain alone goes as IDNA and needs nothing; a UTF-8 local
    /// part in the envelope or in a header needs SMTPUTF8; -t reads raw
    /// UTF-8 recipients.
    #[test]
    fn idna_domains_and_utf8_local_parts() {
        let msg = "From: a@example.org\nTo: user@例子.中国, 张三@例子.中国\n\nx\n";
        let e = envelope(&read_recipients(), msg.as_bytes()).expect("envelope");
        assert_eq!(
            texts(&e),
            ["user@xn--fsqu00a.xn--fiqs8s", "张三@xn--fsqu00a.xn--fiqs8s"]
        );
        assert_eq!(
            e.smtputf8_reason().as_deref(),
            Some("the recipient 张三@xn--fsqu00a.xn--fiqs8s has a UTF-8 local part")
        );
        let args = EnvelopeArgs {
            recipients: vec!["<user@例子.中国>".into()],
            ..Default::default()
        };
        let e = envelope(&args, "From: a@例子.中国\n\nx\n".as_bytes()).expect("envelope");
        assert_eq!(texts(&e), ["user@xn--fsqu00a.xn--fiqs8s"]);
        assert_eq!(
            e.sender.as_ref().map(|a| a.to_string()).as_deref(),
            Some("a@xn--fsqu00a.xn--fiqs8s")
        );
        assert!(!e.needs_smtputf8());
        let msg = "From: 张三 <张三@例子.中国>\nTo: b@example.org\n\nx\n";
        let args = EnvelopeArgs {
            from: Some("a@example.org".into()),
            read_recipients: true,
            ..Default::default()
        };
        let e = envelope(&args, msg.as_bytes()).expect("envelope");
        assert_eq!(
            e.smtputf8_reason().as_deref(),
            Some("the From header has 张三@例子.中国, a UTF-8 local part")
        );
    }
}
