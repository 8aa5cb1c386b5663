//! One message from input to outcome: checked and completed, its envelope
//! derived, sent over a session, reported, and kept in the dead-letter file
//! when it did not reach every recipient. Used for a single message and for
//! each message of `--mbox`.

use std::path::PathBuf;

use mailpipe::{Endpoint, Error};

use crate::envelope::{self, Envelope, EnvelopeArgs};
use crate::message;
use crate::reply::Transaction;
use crate::report::{self, MessageReport};
use crate::session::Session;

pub const TOOL: &str = "smtp-send";

/// What the command line says about every message.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub envelope: EnvelopeArgs,
    pub partial: bool,
    pub dead_letter: Option<PathBuf>,
    pub json: bool,
    pub quiet: bool,
    /// `--mbox`: a line per message on stderr, and `message N:` prefixes.
    pub batch: bool,
}

/// A message ready to send.
pub struct Prepared {
    pub envelope: Envelope,
    /// What DATA carries (before CRLF normalisation and dot-stuffing).
    pub data: Vec<u8>,
    pub message_id: Option<String>,
}

/// Checks the message (65), derives its envelope (64/65) and completes its
/// header (Bcc removed, Date and Message-ID added).
pub fn prepare(
    raw: &[u8],
    options: &Options,
    endpoint: Option<&Endpoint>,
) -> Result<Prepared, Error> {
    let block = message::parse_header_block(raw)?;
    let envelope = envelope::derive_envelope(&options.envelope, raw, endpoint)?;
    let domain = envelope
        .sender
        .as_ref()
        .map_or("localhost".to_string(), |a| a.domain().to_string());
    let data = message::prepare(raw, &block, &domain);
    let message_id = message::message_id(&data);
    Ok(Prepared {
        envelope,
        data,
        message_id,
    })
}

/// Sends a prepared message over `session`. Returns the result and the
/// session, if it is still usable; `Err` means it is not and nothing was
/// judged.
///
/// When the server ends the session with 421 while recipients are tried
/// (Postfix after `smtpd_hard_error_limit` refusals), `--partial` opens a new
/// session with `open` and sends to the recipients accepted or not yet tried
/// (never to the refused ones), as long as each new session judges at least
/// one more recipient. Without `--partial`, nothing is sent, as for any refusal.
///
/// `next` is the message the next call sends over the returned session
/// (`--mbox`): its first commands may go ahead (see `Session::send`).
pub fn send(
    session: Session,
    open: &dyn Fn() -> Result<Session, Error>,
    prepared: &Prepared,
    next: Option<&Prepared>,
    options: &Options,
) -> Result<(Transaction, Option<Session>), Error> {
    let mut session = session;
    let next = next.map(|p| (&p.envelope, p.data.as_slice()));
    let t = session.send(&prepared.envelope, &prepared.data, options.partial, next)?;
    if t.closed.is_none() {
        return Ok((t, Some(session)));
    }
    drop(session);
    Ok(resume(t, open, prepared, options))
}

/// After the server ended the session (421) while recipients were tried:
/// with `--partial`, the recipients accepted or not yet tried again over new
/// sessions (see `send`); the result, and the last session if it is usable.
pub fn resume(
    mut t: Transaction,
    open: &dyn Fn() -> Result<Session, Error>,
    prepared: &Prepared,
    options: &Options,
) -> (Transaction, Option<Session>) {
    while options.partial && t.closed.is_some() {
        let again: Vec<usize> = (0..t.recipients.len())
            .filter(|&i| !t.recipients[i].delivered)
            .filter(|&i| !t.recipients[i].tried || t.recipients[i].is_accepted())
            .collect();
        if again.is_empty() {
            break;
        }
        let envelope = Envelope {
            recipients: again
                .iter()
                .map(|&i| prepared.envelope.recipients[i].clone())
                .collect(),
            ..prepared.envelope.clone()
        };
        let mut session = match open() {
            Ok(s) => s,
            Err(e) => {
                t.closed = Some(e.context("reconnecting after the server ended the session"));
                break;
            }
        };
        let retried = match session.send(&envelope, &prepared.data, true, None) {
            Ok(r) => r,
            Err(e) => {
                t.closed = Some(e);
                break;
            }
        };
        let progress = retried.recipients.iter().any(|r| r.tried);
        for (&i, r) in again.iter().zip(retried.recipients) {
            t.recipients[i] = r;
        }
        t.accepted.extend(retried.accepted);
        t.failure = retried.failure;
        t.closed = retried.closed;
        if t.closed.is_none() {
            return (t, Some(session));
        }
        if !progress {
            break;
        }
    }
    (t, None)
}

/// Reports one message's outcome and keeps it in the dead-letter file when it
/// did not reach everyone. Returns the message's error, if any, with where it
/// was kept. `raw` is the message exactly as read.
pub fn finish(
    number: usize,
    raw: &[u8],
    prepared: Option<&Prepared>,
    result: Result<&Transaction, &Error>,
    options: &Options,
) -> Result<Option<Error>, Error> {
    let prefix = if options.batch {
        format!("message {number}: ")
    } else {
        String::new()
    };
    let error = match result {
        Ok(t) => {
            report::print_recipients(TOOL, &prefix, t);
            report::transaction_error(t, options.partial)
        }
        Err(e) => Some(Error::new(e.exit(), e.message())),
    };
    let mut kept_in = None;
    let error = match (error, &options.dead_letter) {
        (Some(e), Some(path)) => {
            let sender =
                prepared.map_or_else(|| "MAILER-DAEMON".to_string(), |p| p.envelope.sender_text());
            mailpipe::mbox::append_to_file(path, &sender, chrono::Utc::now(), raw).map_err(
                |io| {
                    Error::io(
                        format!(
                            "{}; and keeping it in {} failed",
                            e.message(),
                            path.display()
                        ),
                        io,
                    )
                },
            )?;
            kept_in = Some(path.display().to_string());
            Some(Error::new(
                e.exit(),
                format!("{}; kept in {}", e.message(), path.display()),
            ))
        }
        (e, _) => e,
    };
    if options.json {
        report::write_json(&MessageReport {
            number,
            message_id: prepared.and_then(|p| p.message_id.as_deref()),
            transaction: result.ok(),
            error: error.as_ref(),
            dead_letter: kept_in.as_deref(),
        })?;
    }
    if options.batch {
        let id = prepared
            .and_then(|p| p.message_id.as_deref())
            .map(|id| format!(" {id}"))
            .unwrap_or_default();
        // Each line whole, above the progress display.
        mailpipe::progress::suspend(|| match (&error, result) {
            (None, Ok(t)) if !options.quiet => {
                let to: Vec<&str> = t.delivered_to().map(|r| r.address.as_str()).collect();
                let reply = t.accepted_summary().unwrap_or_default();
                eprintln!(
                    "{TOOL}: message {number}{id}: sent to {} ({reply})",
                    to.join(", ")
                );
            }
            (Some(e), _) => eprintln!("{TOOL}: message {number}{id}: not sent: {e}"),
            _ => {}
        });
    }
    Ok(error)
}
