//! What smtp-send tells the user about each message: per-recipient lines on
//! stderr, and with `--report json` one JSON object per message on stdout:
//!
//! ```json
//! {"message":1,"message_id":"<id@host>","sent":false,"exit":67,
//!  "error":"1 of 2 recipients refused; nothing sent",
//!  "recipients":[{"address":"a@example.org","status":"not-sent","code":250,"enhanced":"2.1.5","text":"2.1.5 Ok"},
//!                {"address":"x@example.org","status":"refused","code":550,"enhanced":"5.1.1","text":"5.1.1 <x@example.org>: ..."}],
//!  "server_reply":null,"dead_letter":"failed.mbox"}
//! ```
//!
//! `status` is `delivered`, `refused` (5xx), `deferred` (4xx), `not-sent`
//! (accepted at RCPT, but the message was not sent: another recipient was
//! refused, or the transaction failed later), or `not-tried` (the server ended
//! the session with 421 before its RCPT TO, or a refusal in an earlier
//! transaction stopped the next; `code` is that 421 or 452). `sent` is true when the server
//! took the message for at least one recipient; `server_reply` is the reply
//! that accepted it (with Postfix, `250 2.0.0 Ok: queued as QUEUEID`), the
//! replies `; `-joined when the recipients needed several transactions.

use std::io::Write;

use mailpipe::Error;
use serde_json::json;

use crate::reply::{RecipientResult, Transaction};

/// Where one message ended up.
pub struct MessageReport<'a> {
    /// 1-based position in the input (always 1 without --mbox).
    pub number: usize,
    pub message_id: Option<&'a str>,
    pub transaction: Option<&'a Transaction>,
    /// The failure of the whole message, if any (for a refused recipient this
    /// is the summary; the recipients say the rest).
    pub error: Option<&'a Error>,
    pub dead_letter: Option<&'a str>,
}

fn status(r: &RecipientResult) -> &'static str {
    let code = r.reply.code();
    if r.delivered {
        "delivered"
    } else if !r.tried {
        "not-tried"
    } else if (400..500).contains(&code) {
        "deferred"
    } else if code >= 500 {
        "refused"
    } else {
        "not-sent"
    }
}

/// The one-line summary error of a transaction that did not reach everyone,
/// or `None` when it did.
pub fn transaction_error(t: &Transaction, partial: bool) -> Option<Error> {
    let exit = t.exit()?;
    if let Some(e) = &t.failure {
        return Some(Error::new(exit, e.message()));
    }
    let refused = t
        .recipients
        .iter()
        .filter(|r| r.tried && r.reply.code() >= 400)
        .count();
    let untried = t.recipients.iter().filter(|r| !r.tried).count();
    let delivered = t.delivered_to().count();
    let total = t.recipients.len();
    let mut text = format!("{refused} of {total} recipients refused");
    if untried > 0 {
        text.push_str(&format!(", {untried} not tried"));
    }
    if let Some(e) = &t.closed {
        text.push_str(&format!(" ({})", e.message()));
    }
    if delivered > 0 {
        let others = if refused + untried + delivered == total {
            format!("the other {delivered}")
        } else {
            format!("{delivered}")
        };
        let how = if partial { " (--partial)" } else { "" };
        text.push_str(&format!("; sent to {others}{how}"));
    } else if partial || refused + untried == total || t.closed.is_some() {
        text.push_str("; nothing sent");
    } else {
        text.push_str("; nothing sent (--partial sends to the accepted ones)");
    }
    Some(Error::new(exit, text))
}

/// Per-recipient lines on stderr, when not everyone got the message:
/// `smtp-send: x@example.org: refused: 550 5.1.1 ...`.
pub fn print_recipients(tool: &str, prefix: &str, t: &Transaction) {
    if t.exit().is_none() {
        return;
    }
    // Above the progress display of --mbox, each line whole.
    mailpipe::progress::suspend(|| write_recipients(tool, prefix, t));
}

fn write_recipients(tool: &str, prefix: &str, t: &Transaction) {
    let mut err = std::io::stderr().lock();
    for r in &t.recipients {
        let line = format!(
            "{tool}: {prefix}{}: {}: {}",
            r.address,
            status(r),
            r.reply.summary()
        );
        // One line per recipient, whatever the server put in its text.
        let line: String = line
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let _ = writeln!(err, "{line}");
    }
}

/// The JSON object of one message (see the module documentation).
pub fn json_line(report: &MessageReport<'_>) -> String {
    let recipients: Vec<_> = report
        .transaction
        .map(|t| {
            t.recipients
                .iter()
                .map(|r| {
                    json!({
                        "address": r.address,
                        "status": status(r),
                        "code": r.reply.code(),
                        "enhanced": r.reply.enhanced(),
                        "text": r.reply.text(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let sent = report
        .transaction
        .is_some_and(|t| t.delivered_to().next().is_some());
    let exit = report.error.map_or(0, |e| e.exit().code());
    json!({
        "message": report.number,
        "message_id": report.message_id,
        "sent": sent,
        "exit": exit,
        "error": report.error.map(|e| e.message().to_string()),
        "recipients": recipients,
        "server_reply": report.transaction.and_then(Transaction::accepted_summary),
        "dead_letter": report.dead_letter,
    })
    .to_string()
}

/// Writes the JSON line on stdout.
pub fn write_json(report: &MessageReport<'_>) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", json_line(report))
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing the report", e))
}
