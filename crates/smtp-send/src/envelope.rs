//! The SMTP envelope: who the message is from (MAIL FROM) and to (RCPT TO),
//! from the command line, the message's header fields (`-t`) and the account.

use lettre::Address;
use mailpipe::message::{envelope as header, header_block};
use mailpipe::{Endpoint, Error, Exit};

/// MAIL FROM and RCPT TO of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `None` is the null reverse-path `<>` (bounces).
    pub sender: Option<Address>,
    /// In order, without duplicates.
    pub recipients: Vec<Address>,
}

impl Envelope {
    /// Non-ASCII in an address needs the server's SMTPUTF8.
    pub fn needs_smtputf8(&self) -> bool {
        let sender = self
            .sender
            .as_ref()
            .is_some_and(|a| !a.to_string().is_ascii());
        sender || self.recipients.iter().any(|a| !a.to_string().is_ascii())
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
    Ok(Envelope { sender, recipients })
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

/// An address as SMTP carries it (`local@domain`); `<a@b>` is accepted too.
pub fn parse_address(text: &str, exit: Exit, what: &str) -> Result<Address, Error> {
    let bare = text.trim();
    let bare = bare
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(bare);
    bare.parse::<Address>()
        .map_err(|e| Error::new(exit, format!("{what} {text:?} is not a valid address: {e}")))
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
}
