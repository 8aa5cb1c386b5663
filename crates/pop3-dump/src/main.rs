//! pop3-dump: a POP3 maildrop to mbox (mboxrd) on stdout, leaving the mail on
//! the server unless told otherwise.
//!
//! Input: a POP3 server (`pop3s://host[:995]`, or `pop3://host[:110]` with STLS
//! required), from `--server` or an account in the accounts file.
//! Output: stdout carries the mbox, each message byte for byte as the server
//! sends it (CRLF line ends, dot-stuffing undone), quoted only by mboxrd's
//! `>From ` rule; `--list` prints the maildrop instead. Diagnostics, and with
//! `-v` the POP3 dialogue (passwords redacted, bodies elided), go to stderr.
//! Exit status: `mailpipe::exit`'s table, shown by `--help`.

use std::process::ExitCode;

use pop3_dump::cli::Args;

fn main() -> ExitCode {
    mailpipe::cli::main_with::<Args>("pop3-dump", pop3_dump::run)
}
