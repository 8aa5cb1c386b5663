//! smtp-send: submit a message on stdin to an SMTP server, sendmail-style.
//!
//! Input: one RFC 5322 message on stdin (or, with `--mbox`, an mbox of them).
//! Output: nothing on success; per-recipient results and errors on stderr, one
//! line each; with `--report json` a JSON object per message on stdout;
//! `--check` and `--dry-run` print what they found on stdout.
//! Exit status (sysexits, as msmtp): `mailpipe::exit`'s table, shown by
//! `--help`. With `--mbox`, the worst of all messages.

use std::process::ExitCode;

use smtp_send::cli::Args;
use smtp_send::deliver::TOOL;

fn main() -> ExitCode {
    mailpipe::cli::main_with::<Args>(TOOL, smtp_send::run)
}
