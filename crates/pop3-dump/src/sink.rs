//! Where each retrieved message goes: the mbox on stdout, or with `--exec
//! CMD` one run of CMD per message (mailpipe::exec). The export hands every
//! whole message to `Sink::deliver`; with `--exec` the state then advances
//! past it at once (a failing command stops the run, and what it was given
//! before counts), with the mbox only after the output was flushed.

use std::io::Write;

use chrono::{DateTime, Utc};
use mailpipe::exec::Target;
use mailpipe::mbox::MboxWriter;
use mailpipe::Error;

use crate::maildrop::Entry;

pub enum Sink<'o, W: Write> {
    Mbox(MboxWriter<W>),
    Exec(&'o Target),
}

impl<W: Write> Sink<'_, W> {
    /// Writes the message to the mbox, or runs the command on it and returns
    /// only once it exited 0.
    pub fn deliver(
        &mut self,
        entry: &Entry,
        sender: &str,
        time: DateTime<Utc>,
        message: &[u8],
    ) -> Result<(), Error> {
        match self {
            Sink::Mbox(out) => out
                .write_message(sender, time, message)
                .map_err(|e| Error::io("writing stdout", e)),
            Sink::Exec(target) => {
                let mut delivery = target
                    .delivery("pop3-dump")
                    .var("MAILBOX", "INBOX")
                    .var("NUMBER", entry.number)
                    .var("SIZE", message.len())
                    .var("DATE", time.to_rfc3339())
                    .sender(sender);
                let what = match &entry.uidl {
                    Some(uidl) => {
                        delivery = delivery.var("UIDL", uidl);
                        format!("message {} (UIDL {uidl})", entry.number)
                    }
                    None => format!("message {}", entry.number),
                };
                target.run(message, &delivery, &what)
            }
        }
    }

    /// Whether the state advances after each message rather than at the end.
    pub fn per_message(&self) -> bool {
        matches!(self, Sink::Exec(_))
    }

    /// Flushes the mbox (nothing to do for a command that exited 0).
    pub fn flush(&mut self) -> Result<(), Error> {
        match self {
            Sink::Mbox(out) => out.flush().map_err(|e| Error::io("writing stdout", e)),
            Sink::Exec(_) => Ok(()),
        }
    }
}
