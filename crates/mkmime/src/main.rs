//! mkmime: make an RFC 5322 / MIME message.
//!
//! Input: stdin is the body text (UTF-8) with headers from flags; or, with
//! `--draft`, a header block, a blank line and the body; or, with `--json`,
//! one JSON object with mail2json's field names. Files come from `--attach`,
//! `--inline` and `--html`.
//!
//! Output: the whole message on stdout, CRLF line ends (`--lf` for LF),
//! written only once it is complete; nothing is written on an error.
//!
//! Exit status: `mailpipe::exit`'s table, shown by `--help`.

use std::process::ExitCode;

use mkmime::cli::Args;

fn main() -> ExitCode {
    mailpipe::cli::main_with::<Args>("mkmime", mkmime::run)
}
