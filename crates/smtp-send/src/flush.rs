//! `--flush DIR`, and the start of every `--queue DIR` run: sending what
//! the outbox holds, oldest first, over one connection, under the outbox's
//! lock (a second flush waits, then finds the sent messages gone).
//!
//! A message is removed only after the server's final 250 for every
//! recipient; one refused for good (a 5xx, or a message the server cannot
//! take) moves to `dead/` with the replies in its sidecar; a 4xx keeps it,
//! its sidecar then naming only the recipients not yet delivered to (after a
//! 452 "too many recipients" some may have been), and the error. A server
//! that cannot be reached ends the flush: every message stays.

use std::fs;
use std::io;

use lettre::transport::smtp::authentication::Mechanism;
use mailpipe::{Endpoint, Error, Exit, Outcome};

use crate::deliver::{self, Options, Prepared, TOOL};
use crate::message;
use crate::queue::{Entry, Queue};
use crate::reply::Transaction;
use crate::session::Session;

/// What the server's answer means for a queued message.
pub enum Verdict {
    /// Delivered to every recipient.
    Sent,
    /// Try again later (4xx, a cut connection): the error.
    Keep(Error),
    /// Refused for good: the error, with every refusing reply.
    Dead(Error),
}

/// Judges one attempt: a permanent refusal of any recipient (5xx) or of the
/// message (its checks, MAIL FROM, DATA) is dead; anything else that did not
/// reach everyone is kept.
pub fn judge(t: &Transaction) -> Verdict {
    let Some(error) = crate::report::transaction_error(t, false) else {
        return Verdict::Sent;
    };
    let permanent = t.recipients.iter().any(|r| r.is_refused())
        || t.failure
            .as_ref()
            .is_some_and(|e| e.exit() != Exit::TempFail);
    let mut text = error.message().to_string();
    for r in t
        .recipients
        .iter()
        .filter(|r| r.tried && r.reply.code() >= 400)
    {
        text.push_str(&format!("; {}: {}", r.address, r.reply.summary()));
    }
    let error = Error::new(error.exit(), text);
    if permanent {
        Verdict::Dead(error)
    } else {
        Verdict::Keep(error)
    }
}

/// How a flush ended.
pub enum Flushed {
    /// Every message was tried: `Err` when some stay or moved to `dead/`
    /// (the worst status: 75 kept, 67 and the like dead).
    Tried(Result<(), Error>),
    /// The server could not be reached (its error, `worth_queueing`):
    /// every message from the first not sent stays.
    Unreachable(Error),
}

impl Flushed {
    pub fn into_result(self) -> Result<(), Error> {
        match self {
            Flushed::Tried(result) => result,
            Flushed::Unreachable(e) => Err(e),
        }
    }
}

/// Sends every queued message (see the module documentation).
pub fn flush(
    queue: &Queue,
    endpoint: Result<&Endpoint, &Error>,
    mechanism: Option<Mechanism>,
    quiet: bool,
) -> Flushed {
    match flush_all(queue, endpoint, mechanism, quiet) {
        Err(e) if e.message().contains(STAY) && crate::queue::worth_queueing(&e) => {
            Flushed::Unreachable(e)
        }
        result => Flushed::Tried(result),
    }
}

/// What the error of a flush that could not reach the server says.
const STAY: &str = "messages stay in the outbox";

fn flush_all(
    queue: &Queue,
    endpoint: Result<&Endpoint, &Error>,
    mechanism: Option<Mechanism>,
    quiet: bool,
) -> Result<(), Error> {
    let _lock = queue.lock()?;
    let entries = queue.entries(false)?;
    if entries.is_empty() {
        return Ok(());
    }
    let outbox = queue.root().display().to_string();
    let endpoint = endpoint.map_err(|e| Error::new(e.exit(), e.message()))?;
    let config = endpoint.tls_config()?;
    let open = || Session::open(endpoint, &config, mechanism);
    let options = Options {
        quiet,
        ..Options::default()
    };
    let total = entries.len();
    let mut session: Option<Session> = None;
    let mut outcome = Outcome::default();
    let (mut kept, mut dead) = (0usize, 0usize);
    for (i, mut entry) in entries.into_iter().enumerate() {
        let data = match fs::read(&entry.path) {
            Ok(d) => d,
            // Removed by hand since the listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("reading {}", entry.path.display()), e)),
        };
        entry.meta.attempts += 1;
        let envelope = match entry.meta.envelope() {
            Ok(envelope) => envelope,
            Err(e) => {
                dead += 1;
                outcome.record(e.exit());
                bury(queue, &mut entry, &e)?;
                continue;
            }
        };
        let prepared = Prepared {
            envelope,
            message_id: message::message_id(&data),
            data,
        };
        let current = match session.take() {
            Some(s) => s,
            None => match open() {
                Ok(s) => s,
                Err(e) => {
                    let e = e.context_once(&endpoint.url);
                    entry.meta.last_error = Some(e.message().to_string());
                    queue.update(&entry)?;
                    let left = total - i;
                    return Err(Error::new(
                        e.exit(),
                        format!("{}; {left} {STAY} {outbox}", e.message()),
                    ));
                }
            },
        };
        let verdict = match deliver::send(current, &open, &prepared, None, &options) {
            Ok((t, s)) => {
                session = s;
                // Those delivered to are done, whatever happens to the rest.
                entry.meta.recipients = t
                    .recipients
                    .iter()
                    .filter(|r| !r.delivered)
                    .map(|r| r.address.clone())
                    .collect();
                let verdict = judge(&t);
                if let (Verdict::Sent, false) = (&verdict, quiet) {
                    let to: Vec<&str> = t.delivered_to().map(|r| r.address.as_str()).collect();
                    eprintln!(
                        "{TOOL}: outbox {}: sent to {} ({})",
                        entry.id,
                        to.join(", "),
                        t.accepted_summary().unwrap_or_default()
                    );
                }
                verdict
            }
            Err(e) => Verdict::Keep(e.context_once(&endpoint.url)),
        };
        match verdict {
            Verdict::Sent => queue.remove(&entry)?,
            Verdict::Keep(e) => {
                kept += 1;
                outcome.record(e.exit());
                eprintln!("{TOOL}: outbox {}: kept for later: {e}", entry.id);
                entry.meta.last_error = Some(e.message().to_string());
                queue.update(&entry)?;
            }
            Verdict::Dead(e) => {
                dead += 1;
                outcome.record(e.exit());
                bury(queue, &mut entry, &e)?;
            }
        }
    }
    if let Some(session) = session {
        session.quit();
    }
    outcome.into_result(format!(
        "outbox {outbox}: {kept} of {total} messages kept for later, {dead} refused for good \
         (in {outbox}/dead)"
    ))
}

/// Moves `entry` to `dead/` with `e` as its last error, and says so.
fn bury(queue: &Queue, entry: &mut Entry, e: &Error) -> Result<(), Error> {
    entry.meta.last_error = Some(e.message().to_string());
    let path = queue.bury(entry)?;
    eprintln!(
        "{TOOL}: outbox {}: refused for good, moved to {}: {e}",
        entry.id,
        path.display()
    );
    Ok(())
}
