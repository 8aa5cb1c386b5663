//! Where each retrieved message goes: the mbox on stdout, or with `--exec
//! CMD` one run of CMD per message (mailpipe::exec). The export hands every
//! whole message to `Sink::deliver`; with `--exec` the state then advances
//! past it at once (a failing command stops the run, and what it was given
//! before counts), with the mbox only after the output was flushed.

use std::io::Write;

use chrono::{DateTime, Utc};
use mailpipe::exec::{self, Delivery};
use mailpipe::mbox::MboxWriter;
use mailpipe::Error;

use crate::maildrop::Entry;

/// `--exec CMD` and what its variables say about the account.
#[derive(Debug)]
pub struct ExecTarget {
    pub command: String,
    /// `user@host`, MAILPIPE_ACCOUNT.
    pub account: String,
    /// The server URL, MAILPIPE_SERVER.
    pub server: String,
}

pub enum Sink<'o, W: Write> {
    Mbox(MboxWriter<W>),
    Exec(&'o ExecTarget),
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
                let mut delivery = Delivery::default()
                    .var("TOOL", "pop3-dump")
                    .var("ACCOUNT", &target.account)
                    .var("SERVER", &target.server)
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
                mailpipe::progress::suspend(|| {
                    exec::run(&target.command, message, &delivery, &what)
                })
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
