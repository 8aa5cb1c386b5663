//! imap-dump: an IMAP mailbox to mbox (mboxrd) on stdout, read-only, resumable.
//!
//! Input: an IMAP server (`imaps://`, or `imap://` with STARTTLS) and the
//! mailboxes named by `--mailbox` (default INBOX) or `--all`.
//! Output: mboxrd on stdout, or one `<mailbox>.mbox` per mailbox under
//! `--output-dir`; each message byte for byte as the server holds it (except
//! `>From ` quoting), after a `From <sender> <INTERNALDATE in UTC>` line.
//! The server is never changed: EXAMINE and `BODY.PEEK[]` only.
//! Exit status: 0, or the code of the first error (`mailpipe::exit`'s table,
//! shown by `--help`). A closed stdout (`| head`) ends quietly with 0, except
//! with `--state`: stdout on /dev/null or closed, or a pipe whose reader exits
//! before reading everything, is 74 and the state does not move.

use std::process::ExitCode;

use imap_dump::cli::Args;

fn main() -> ExitCode {
    mailpipe::cli::main_with::<Args>("imap-dump", imap_dump::run)
}
