//! imap-dump's command line: the clap definitions behind `--help`, the man
//! page and the completions, public so that tests can parse and inspect them.

use std::path::PathBuf;

use clap::Parser;
use mailpipe::{ByteSize, ServerArgs};

use crate::when::When;

/// The examples and notes `--help` shows after the options and before the exit table.
pub const EXAMPLES: &str = "\
Examples:
  imap-dump --account work > inbox.mbox
  imap-dump --account work --mailbox INBOX --state ~/.cache/inbox.state >> inbox.mbox
  imap-dump --server imaps://alice@imap.example.org --password-command 'pass mail' --list
  imap-dump --account work --mailbox 已发送 --search 'SINCE 1-Nov-2026' | mail2json
  imap-dump --account work --search 'SUBJECT 周报 FROM 张伟' > reports.mbox
  imap-dump --account work --all --output-dir backup/ --state backup/.state
  imap-dump --account qq --state ~/.cache/qq.state --exec 'mail2json --extract ~/att >> ~/mail.jsonl'

Incremental runs: --state FILE remembers, per account (user@host) and mailbox,
the UIDVALIDITY, the highest UID written and the UIDs below it that --max-size
skipped (fetched by a later run whose limit allows them); accounts may share
one file, and an empty file is an empty state. The file is replaced only after
the output it describes was flushed (and synced, for files); on a pipe, only
after the reader has taken every byte (a reader that exits first: 74, the
state unmoved, run again). --state with stdout on /dev/null or closed (>&-)
is refused (74). A run killed at any moment therefore never
skips a message next time; it may write some again (a duplicate is better than
a loss). If the server renumbers a mailbox (UIDVALIDITY changes), imap-dump
matches its messages against keys the state keeps of each message written
(Message-ID, size, INTERNALDATE, in FILE.keys) and dumps only the others; a
state from before the keys means dumping it all again, with a warning.
A server that stops the export for now (* BYE, NO [LIMIT]) or a lost
connection ends the run with 75: what was whole is written and in the
state; run again to resume. When appending to a file whose last
message a killed run cut short, imap-dump first ends it with a blank line, so
the next message is never swallowed. The state is per mailbox, not per
--search: a later run with other criteria still starts after the saved UID.

--exec CMD: each message goes to its own run of sh -c CMD on stdin, in UID
order (MDA style, as fetchmail and getmail do): the bytes exactly as the server
holds them (CRLF, no From_ line, no >From quoting). CMD's stdout and stderr are
imap-dump's. Its environment: MAILPIPE_TOOL=imap-dump, MAILPIPE_ACCOUNT
(user@host), MAILPIPE_SERVER, MAILPIPE_MAILBOX, MAILPIPE_UID,
MAILPIPE_UIDVALIDITY, MAILPIPE_SIZE (bytes on stdin), MAILPIPE_DATE
(INTERNALDATE, RFC 3339), MAILPIPE_SENDER and SENDER (the envelope sender). A
message counts as done only when CMD exits 0: with --state the state advances
after each one; a CMD that fails (non-zero, or killed by a signal) ends the
run with 75 naming the UID and the status, and the next run gives it again.

Output is mboxrd: lines matching >*From get one more '>', undone by readers
of mboxrd (mailpipe, Python's mailbox, mutt). A message that does not end in
a line end gets one (mbox cannot mark its end otherwise).

Live mail: --follow dumps as usual (from --state if given), then waits for
new messages in each --mailbox (one connection each) with IDLE, re-issued
every 10 minutes (servers end an IDLE after 30), or with NOOP every
--interval when the server lacks or refuses IDLE (or with --no-idle). Each new message
is written whole and flushed, and --state advanced after it, as in a dump.
A lost connection or a restarting server is retried after 1 s, doubling to
60 s, resuming from the state (a scratch one without --state): nothing lost,
nothing repeated. SIGINT or SIGTERM end it between messages: exit 0, the
state saved. In follow mode each From_ line ends in mailpipe-length=N, the
bytes of the entry after that line (the quoted message and its blank
separator line), so that mail2json, reading a pipe, emits each message as
soon as it is whole; other mbox readers see one more word on the From_ line.
  imap-dump --account work --follow | mail2json --fields from,subject | jq -r .subject";

/// Copy IMAP mailboxes to mbox without changing anything on the server.
#[derive(Parser, Debug)]
#[command(name = "imap-dump", version, after_help = mailpipe::exit::after_help(EXAMPLES, "imap-dump"))]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Mailbox to dump, as you read it (UTF-8; sent in modified UTF-7);
    /// repeat for several [default: INBOX]
    #[arg(short, long = "mailbox", value_name = "NAME")]
    pub mailboxes: Vec<String>,
    /// Dump every mailbox that can be selected
    #[arg(long, conflicts_with = "mailboxes")]
    pub all: bool,
    /// Print the mailboxes, one decoded name per line, and exit
    #[arg(long, conflicts_with_all = ["mailboxes", "all", "state", "output_dir"])]
    pub list: bool,
    /// With --list: JSON Lines with name, raw_name, delimiter, attributes, messages
    #[arg(long, requires = "list")]
    pub json: bool,
    /// IMAP SEARCH criteria for UID SEARCH, e.g. 'SINCE 1-Jan-2026 FROM bob';
    /// non-ASCII text may be typed as is ('SUBJECT 周报'): it is sent as
    /// UTF-8 literals under CHARSET UTF-8
    #[arg(long, value_name = "CRITERIA")]
    pub search: Option<String>,
    /// At most N messages per mailbox, the oldest (lowest UIDs) first
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Skip messages larger than BYTES (RFC822.SIZE), with a note on stderr;
    /// with --state they are remembered and fetched by a later run that allows them;
    /// K, M, G suffixes (1024, 1024², 1024³) allowed
    #[arg(long, value_name = "BYTES")]
    pub max_size: Option<ByteSize>,
    /// Stop cleanly once this much (RFC822.SIZE, over all mailboxes) was
    /// fetched, before the message that would cross it: exit 0, the state
    /// saved, a line on stderr; the next run with --state goes on from there.
    /// For a daily download cap (Gmail: 2,500 MB); account key max_bytes
    #[arg(long, value_name = "SIZE")]
    pub max_bytes: Option<ByteSize>,
    /// Remember what was dumped here (per user@host and mailbox); the next run
    /// fetches only newer messages
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Write DIR/<mailbox>.mbox per mailbox (nested names as folders) instead
    /// of stdout; appended to with --state, replaced without
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Give each message to CMD (run by `sh -c`) on its stdin instead of
    /// writing an mbox: one process per message, the bytes as the server
    /// holds them (no From_ line, no quoting), MAILPIPE_* variables naming it
    /// (see below); with --state a message counts as done only when CMD
    /// exits 0, and a failing CMD stops the run (75)
    #[arg(long, value_name = "CMD", conflicts_with_all = ["output_dir", "list"])]
    pub exec: Option<String>,
    /// Add an X-Mailbox: header naming the mailbox to each message
    #[arg(long)]
    pub tag_mailbox: bool,
    /// Add Status, X-Status and X-Keywords headers from the IMAP flags
    #[arg(long)]
    pub flags: bool,
    /// Bytes of messages per UID FETCH at most (K, M, G suffixes); batches are
    /// cut smaller on a short link and with more connections, and memory
    /// stays within about four times this
    #[arg(long, value_name = "BYTES", default_value_t = ByteSize::mib(8))]
    pub batch_size: ByteSize,
    /// Connections fetching in parallel at most, each with two UID
    /// FETCHes in flight; one more per twice --batch-size of mail. A server
    /// that refuses one (a limit per user) gets no more, and the dump goes on
    /// with those it has. -v always uses one
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub connections: u8,
    /// COMPRESS=DEFLATE (RFC 4978) when the server offers it: auto (when the
    /// link is slower than the server deflates: never on this machine or a
    /// LAN; on a far link, round trip 5 ms or more, the dump starts plain and
    /// switches it on if FETCH responses arrive under 20 MB/s), always, or
    /// never; account key `compress`
    #[arg(long, value_enum, value_name = "WHEN")]
    pub compress: Option<When>,
    /// The same as --compress never
    #[arg(long, conflicts_with = "compress")]
    pub no_compress: bool,
    /// Send IMAP ID (RFC 2971: the name "mailpipe" and the version, nothing
    /// else) after login even if the server does not list ID; by default it
    /// is sent when listed (163.com and 126.com refuse mailboxes without it)
    #[arg(long, conflicts_with = "no_id")]
    pub id: bool,
    /// Never send IMAP ID (account key: imap_id = "never")
    #[arg(long)]
    pub no_id: bool,
    /// After the dump, keep running: wait for new mail (IDLE, RFC 2177, else
    /// NOOP every --interval) and write each message as it arrives, whole and
    /// flushed, its From_ line carrying mailpipe-length=N (see below);
    /// reconnects after a lost connection; SIGINT or SIGTERM end it (exit 0)
    #[arg(long, conflicts_with_all = ["list", "all", "output_dir"])]
    pub follow: bool,
    /// With --follow: how often to poll (NOOP) when the server has no IDLE:
    /// seconds, or a number with ms, s, m or h [default: 60s; account key
    /// `interval`]
    #[arg(long, value_name = "DURATION", requires = "follow")]
    pub interval: Option<String>,
    /// With --follow: poll every --interval even if the server offers IDLE
    #[arg(long, requires = "follow")]
    pub no_idle: bool,
    /// Wait for the server's `+` before the first AUTHENTICATE response; by
    /// default it goes on the AUTHENTICATE line (SASL-IR, RFC 4959, one round
    /// trip less) where the server lists SASL-IR. For servers that list it
    /// and reject it (Coremail, NetEase); account key sasl_ir = false
    #[arg(long)]
    pub no_sasl_ir: bool,
    /// No progress display on stderr
    #[arg(short, long)]
    pub quiet: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_flags_go_together() {
        use clap::CommandFactory;
        Args::command().debug_assert();
        for refused in [
            &["imap-dump", "--follow", "--all"][..],
            &["imap-dump", "--follow", "--list"],
            &["imap-dump", "--follow", "--output-dir", "x"],
            &["imap-dump", "--interval", "5m"],
            &["imap-dump", "--no-idle"],
        ] {
            assert!(Args::try_parse_from(refused).is_err(), "{refused:?}");
        }
        let args = Args::try_parse_from(["imap-dump", "--follow", "-m", "a", "-m", "b"])
            .expect("several mailboxes");
        assert!(args.follow && args.mailboxes.len() == 2);
    }
}
