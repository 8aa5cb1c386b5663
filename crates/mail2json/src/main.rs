//! mail2json: messages, mbox streams and maildirs to JSON Lines.
//!
//! Input: files, maildirs and `-` as arguments, or stdin; each detected as an
//! mbox, a maildir or a single message (`--input` overrides).
//! Output: one JSON object per message on stdout, in input order (schema in
//! `schema.rs` and docs/mail2json-schema.md); `--array` for one JSON array.
//! Exit status: `mailpipe::exit`'s table, shown by `--help`. Empty input is
//! no message, no output and 0; a message that is not mail does not stop the
//! run; each failure is one line on stderr.

use std::process::ExitCode;

use mail2json::cli::Args;

fn main() -> ExitCode {
    mailpipe::cli::main_with::<Args>("mail2json", mail2json::run)
}
