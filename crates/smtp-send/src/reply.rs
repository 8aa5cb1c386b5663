//! SMTP replies as smtp-send judges them: the code, the enhanced status
//! (RFC 3463) and the text of a reply, what a transaction did for each
//! recipient, and which sysexits code a refusal at each stage means.

use lettre::transport::smtp::response::Response;
use mailpipe::{Error, Exit};

/// A server reply, as lettre parses it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub response: Response,
}

impl Reply {
    pub fn code(&self) -> u16 {
        u16::from(self.response.code())
    }

    /// The RFC 3463 enhanced status code the text starts with (`5.1.1`), if any.
    pub fn enhanced(&self) -> Option<&str> {
        let word = self.response.first_word()?;
        let mut parts = word.split('.');
        let valid = word.starts_with(['2', '4', '5'])
            && parts.clone().count() == 3
            && parts.all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
        valid.then_some(word)
    }

    /// The text of all lines, joined with spaces.
    pub fn text(&self) -> String {
        self.response.message().collect::<Vec<_>>().join(" ")
    }

    /// `550 5.1.1 <x@y>: Recipient address rejected`, for messages.
    pub fn summary(&self) -> String {
        format!("{} {}", self.code(), self.text())
            .trim_end()
            .to_string()
    }

    pub fn is_positive_completion(&self) -> bool {
        (200..300).contains(&self.code())
    }

    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code())
    }
}

/// What the server said about one recipient.
#[derive(Debug, Clone)]
pub struct RecipientResult {
    pub address: String,
    /// The reply to its RCPT TO; for a recipient never tried, the reply that
    /// stopped the transaction (a 421 that ended the session, a 452).
    pub reply: Reply,
    /// False when its RCPT TO was never answered: the server ended the
    /// session first, or a refusal stopped the remaining transactions.
    pub tried: bool,
    /// True once the message was accepted for this recipient.
    pub delivered: bool,
}

impl RecipientResult {
    pub fn new(address: String, reply: Reply, tried: bool) -> RecipientResult {
        RecipientResult {
            address,
            reply,
            tried,
            delivered: false,
        }
    }

    /// Refused for good (5xx at RCPT TO).
    pub fn is_refused(&self) -> bool {
        self.tried && self.reply.code() >= 500
    }

    /// Accepted at RCPT TO (whether or not the message followed).
    pub fn is_accepted(&self) -> bool {
        self.tried && self.reply.is_positive_completion()
    }
}

/// The result of sending one message: one MAIL/RCPT/DATA transaction, or
/// several when the server takes fewer recipients per transaction than the
/// message has (452 too many recipients). `Session::send` returns `Err` only
/// when the session is unusable before anything could be judged.
#[derive(Debug, Default)]
pub struct Transaction {
    pub recipients: Vec<RecipientResult>,
    /// A failure of the whole transaction (checks, MAIL FROM, DATA).
    pub failure: Option<Error>,
    /// The server ended the session (421) while recipients were being tried;
    /// the session is unusable.
    pub closed: Option<Error>,
    /// The server's replies accepting the message (`250 2.0.0 Ok: queued as
    /// ...`), one per transaction that carried it.
    pub accepted: Vec<Reply>,
}

impl Transaction {
    /// The worst of the failure and the recipients' refusals (4xx 75, 5xx 67),
    /// `None` when the message went to every recipient. When the server ended
    /// the session (421) after permanent refusals, the recipients it never
    /// judged do not make the run temporary: the same message would end the
    /// same way (Postfix's smtpd_hard_error_limit), so a retry wrapper must
    /// not retry it forever; the status is 67 and --partial sends to them.
    pub fn exit(&self) -> Option<Exit> {
        let mut outcome = mailpipe::Outcome::default();
        let permanent = self.recipients.iter().any(RecipientResult::is_refused);
        if let Some(e) = &self.failure {
            outcome.record(e.exit());
        }
        if let Some(e) = &self.closed {
            if !permanent {
                outcome.record(e.exit());
            }
        }
        for r in self.recipients.iter().filter(|r| !r.delivered) {
            if !r.tried {
                if !permanent {
                    outcome.record(Exit::TempFail);
                }
            } else if r.reply.is_temporary() {
                outcome.record(Exit::TempFail);
            } else if !r.reply.is_positive_completion() {
                outcome.record(Exit::NoUser);
            } else if self.failure.is_none() && (self.closed.is_none() || permanent) {
                // Accepted at RCPT but not sent: others were refused (strict mode).
                outcome.record(Exit::NoUser);
            }
        }
        outcome.worst()
    }

    pub fn delivered_to(&self) -> impl Iterator<Item = &RecipientResult> {
        self.recipients.iter().filter(|r| r.delivered)
    }

    /// The accepting replies, `; `-joined (one per transaction).
    pub fn accepted_summary(&self) -> Option<String> {
        let all: Vec<String> = self.accepted.iter().map(Reply::summary).collect();
        (!all.is_empty()).then(|| all.join("; "))
    }
}

/// The error for a negative reply at `stage`: 4xx is 75 (try again); 5xx
/// is 67 for RCPT, 65 for size and content refusals, 77 for policy
/// (5.7.x), else 69.
pub fn refusal(stage: &str, reply: &Reply) -> Error {
    let code = reply.code();
    let enhanced = reply.enhanced().unwrap_or("");
    let exit = if reply.is_temporary() {
        Exit::TempFail
    } else if stage == "RCPT TO" {
        Exit::NoUser
    } else if code == 552
        || code == 554 && enhanced.starts_with("5.6.")
        || enhanced.starts_with("5.3.4")
    {
        Exit::Data
    } else if enhanced.starts_with("5.7.") {
        Exit::NoPerm
    } else if (200..400).contains(&code) {
        Exit::Protocol
    } else {
        Exit::Unavailable
    };
    Error::new(
        exit,
        format!("{stage}: the server replied {}", reply.summary()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn reply(text: &str) -> Reply {
        Reply {
            response: Response::from_str(text).expect("valid reply"),
        }
    }

    #[test]
    fn code_enhanced_and_text() {
        let r = reply("550-5.1.1 <x@example.org>: Recipient\r\n550 5.1.1 address rejected\r\n");
        assert_eq!(r.code(), 550);
        assert_eq!(r.enhanced(), Some("5.1.1"));
        assert_eq!(
            r.summary(),
            "550 5.1.1 <x@example.org>: Recipient 5.1.1 address rejected"
        );
        assert_eq!(reply("250 Ok\r\n").enhanced(), None);
        assert_eq!(reply("451 4.3.0.1 odd\r\n").enhanced(), None);
    }

    #[test]
    fn refusals_map_to_sysexits() {
        let exit = |stage, text| refusal(stage, &reply(text)).exit();
        assert_eq!(exit("RCPT TO", "550 5.1.1 no such user\r\n"), Exit::NoUser);
        assert_eq!(exit("RCPT TO", "451 4.3.0 later\r\n"), Exit::TempFail);
        assert_eq!(
            exit("end of message", "451 4.3.0 later\r\n"),
            Exit::TempFail
        );
        assert_eq!(exit("end of message", "552 5.3.4 too big\r\n"), Exit::Data);
        assert_eq!(
            exit("end of message", "554 5.6.0 bad content\r\n"),
            Exit::Data
        );
        assert_eq!(
            exit("MAIL FROM", "553 5.7.1 not owned by you\r\n"),
            Exit::NoPerm
        );
        assert_eq!(exit("greeting", "554 go away\r\n"), Exit::Unavailable);
        let e = refusal("DATA", &reply("554 5.5.1 no valid recipients\r\n"));
        assert_eq!(
            e.message(),
            "DATA: the server replied 554 5.5.1 no valid recipients"
        );
    }
}
