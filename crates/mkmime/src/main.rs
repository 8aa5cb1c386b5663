//! mkmime: make an RFC 5322 / MIME message.
//!
//! Input: stdin is the body text (UTF-8) with headers from flags; or, with
//! `--draft`, a header block, a blank line and the body; or, with `--json`,
//! one JSON object with mail2json's field names. Files come from `--attach`,
//! `--inline` and `--html`. A body over 1 MiB is spooled to a temporary
//! file and streamed (`spool`); JSON is held whole.
//!
//! Output: the message on stdout, CRLF line ends (`--lf` for LF), files
//! encoded as they are written; every check on the input is made before the
//! first byte, so nothing is written on a bad input. A file that changes
//! while it is read ends a partial message with exit 74.
//!
//! Exit status: `mailpipe::exit`'s table, shown by `--help`.

use std::process::ExitCode;

use mkmime::cli::Args;

fn main() -> ExitCode {
    mailpipe::cli::main_with::<Args>("mkmime", mkmime::run)
}
