//! Where each fetched message goes: the mbox (stdout or `--output-dir`), or
//! with `--exec CMD` one run of CMD per message (mailpipe::exec). The dump
//! hands every whole message to `Sink::deliver`, then may advance the state:
//! after each committed batch for an mbox, after each message for `--exec`
//! (a command that fails stops the run, and what it was given before counts).

use chrono::{DateTime, Utc};
use mailpipe::exec::Target;
use mailpipe::Error;

use crate::output::MboxOutput;

/// One message as fetched, and what names it.
pub struct Message<'a> {
    pub mailbox: &'a str,
    pub uid: u32,
    pub uid_validity: u32,
    /// The From_ line's sender and time (INTERNALDATE).
    pub sender: &'a str,
    pub time: DateTime<Utc>,
    /// The bytes as the server holds them (with --tag-mailbox or --flags,
    /// the added header fields too).
    pub bytes: &'a [u8],
}

pub enum Sink<'o> {
    Mbox(&'o mut MboxOutput),
    Exec(&'o Target),
}

impl Sink<'_> {
    /// Writes `message` to the mbox, or runs the command on it and returns
    /// only once it exited 0.
    pub fn deliver(&mut self, message: &Message<'_>) -> Result<(), Error> {
        match self {
            Sink::Mbox(out) => out.write_message(message.sender, message.time, message.bytes),
            Sink::Exec(target) => {
                let delivery = target
                    .delivery("imap-dump")
                    .var("MAILBOX", message.mailbox)
                    .var("UID", message.uid)
                    .var("UIDVALIDITY", message.uid_validity)
                    .var("SIZE", message.bytes.len())
                    .var("DATE", message.time.to_rfc3339())
                    .sender(message.sender);
                let what = format!("UID {} in {}", message.uid, message.mailbox);
                target.run(message.bytes, &delivery, &what)
            }
        }
    }

    /// Makes what was delivered durable before the state may say so
    /// (`MboxOutput::commit`); a command that exited 0 has it already.
    pub fn commit(&mut self, sync: bool) -> Result<(), Error> {
        match self {
            Sink::Mbox(out) => out.commit(sync),
            Sink::Exec(_) => Ok(()),
        }
    }

    /// Whether the state advances after each message rather than each batch.
    pub fn per_message(&self) -> bool {
        matches!(self, Sink::Exec(_))
    }
}
