//! pop3-dump's command line: the clap definitions behind `--help`, the man
//! page and the completions, public so that tests can parse and inspect them.

use std::path::PathBuf;

use clap::Parser;
use mailpipe::{ByteSize, ServerArgs};

/// The examples and notes `--help` shows after the options and before the exit table.
pub const EXAMPLES: &str = "\
Examples:
  pop3-dump --account qq > inbox.mbox
  pop3-dump --server pop3s://alice@pop.example.org --password-command 'pass show pop' \\
      --state ~/.cache/pop.state >> inbox.mbox
  pop3-dump --account work --list --json | jq -s 'map(.size) | add'
  pop3-dump --account work --delete >> archive.mbox      # move the mail off the server
  pop3-dump --account qq | mail2json --array > emails.json
  pop3-dump --account qq --state ~/.cache/qq.state --exec 'procmail'

The From_ line of each message takes its sender from Return-Path (else From)
and its time from the Date header (else the newest Received, else now), in UTC.
With --delete, DELE is sent only after every message was written and flushed
(and the state file saved), then QUIT commits; a failed or killed run deletes nothing.
With --delete or --state, stdout on /dev/null or closed (>&-) is refused, and on a
pipe DELE and the state wait until the reader has taken every byte: a reader that
exits first (| head -c 10) is exit 74, nothing deleted, the state unchanged.

--exec CMD: each message goes to its own run of sh -c CMD on stdin (MDA
style, as mpop and fetchmail do): the bytes as RETR gives them, dot-stuffing
undone, no From_ line, no quoting. CMD's stdout and stderr are pop3-dump's.
Its environment: MAILPIPE_TOOL=pop3-dump, MAILPIPE_ACCOUNT (user@host),
MAILPIPE_SERVER, MAILPIPE_MAILBOX=INBOX, MAILPIPE_NUMBER, MAILPIPE_UIDL (when
the server has UIDL), MAILPIPE_SIZE, MAILPIPE_DATE (the From_ line's time, RFC
3339), MAILPIPE_SENDER and SENDER. A message counts as done only when CMD
exits 0: with --state its UIDL is saved at once; a CMD that fails (non-zero,
or killed by a signal) ends the run with 75 naming the message and the status,
nothing is deleted, and the next run gives it again.

Live mail: --follow exports as usual, then logs in again every --interval
(POP3 has no push, and a session sees the maildrop as it was at login) and
writes what is new by UIDL (from --state, or a scratch state without it),
flushed, the state saved after each poll as after a run. A lost or refused
connection is retried after 1 s, doubling to 60 s. SIGINT or SIGTERM end it
between polls: exit 0, the state saved. In follow mode each From_ line ends
in mailpipe-length=N, the bytes of the entry after that line (the quoted
message and its blank separator line), so that mail2json, reading a pipe,
emits each message as soon as it is whole.
  pop3-dump --account qq --follow --interval 5m | mail2json --fields from,subject";

/// Dump a POP3 maildrop to mbox (mboxrd) on stdout; mail stays on the server.
#[derive(Debug, Parser)]
#[command(name = "pop3-dump", version, after_help = mailpipe::exit::after_help(EXAMPLES, "pop3-dump"))]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Print number, size and UIDL of each message instead of downloading
    #[arg(long)]
    pub list: bool,

    /// With --list: JSON Lines ({"number":1,"size":1234,"uidl":"..."})
    #[arg(long, requires = "list")]
    pub json: bool,

    /// Delete the messages written, after the whole run succeeded (DELE, then QUIT)
    #[arg(long, conflicts_with_all = ["list", "headers_only"])]
    pub delete: bool,

    /// Remember exported UIDLs in FILE (per user@host); export only new messages
    #[arg(long, value_name = "FILE", conflicts_with = "list")]
    pub state: Option<PathBuf>,

    /// Export at most N messages (the oldest first)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Skip messages larger than this (as LIST reports); K, M, G suffixes
    /// (1024, 1024², 1024³) allowed
    #[arg(long, value_name = "BYTES")]
    pub max_size: Option<ByteSize>,

    /// Give each message to CMD (run by `sh -c`) on its stdin instead of
    /// writing an mbox: one process per message, the bytes as RETR gives them
    /// (no From_ line, no quoting), MAILPIPE_* variables naming it (see
    /// below); with --state a message counts as done only when CMD exits 0,
    /// and a failing CMD stops the run (75)
    #[arg(long, value_name = "CMD", conflicts_with = "list")]
    pub exec: Option<String>,
    /// Stop cleanly once this much (by the LIST sizes) was exported, before
    /// the message that would cross it: exit 0, the state saved, a line on
    /// stderr; the next run with --state goes on from there. Account key max_bytes
    #[arg(long, value_name = "SIZE")]
    pub max_bytes: Option<ByteSize>,

    /// Export only each message's header (TOP n 0)
    #[arg(long, conflicts_with = "list")]
    pub headers_only: bool,

    /// No progress display and no notices on stderr (skipped messages, missing
    /// UIDL); errors still show
    #[arg(short, long)]
    pub quiet: bool,

    /// After the export, keep polling every --interval and write each new
    /// message (by UIDL), flushed, its From_ line carrying mailpipe-length=N
    /// (see below); SIGINT or SIGTERM end it (exit 0)
    #[arg(long, conflicts_with_all = ["list", "headers_only"])]
    pub follow: bool,

    /// With --follow: how often to poll: seconds, or a number with ms, s, m
    /// or h [default: 60s; account key `interval`]
    #[arg(long, value_name = "DURATION", requires = "follow")]
    pub interval: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicting_flags_are_usage_errors() {
        use clap::CommandFactory;
        Args::command().debug_assert();
        assert!(Args::try_parse_from(["pop3-dump", "--delete", "--headers-only"]).is_err());
        assert!(Args::try_parse_from(["pop3-dump", "--json"]).is_err());
        assert!(Args::try_parse_from(["pop3-dump", "--list", "--delete"]).is_err());
        assert!(Args::try_parse_from(["pop3-dump", "--follow", "--list"]).is_err());
        assert!(Args::try_parse_from(["pop3-dump", "--interval", "5m"]).is_err());
        assert!(Args::try_parse_from(["pop3-dump", "--follow", "--interval", "5m"]).is_ok());
    }
}
