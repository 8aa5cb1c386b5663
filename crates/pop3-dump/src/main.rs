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

use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mailpipe::{ByteSize, Error, Protocol, ServerArgs};

use pop3_dump::export::{self, ExportOptions, MaildropName};
use pop3_dump::maildrop::{self, Maildrop};
use pop3_dump::session::Session;

const EXAMPLES: &str = "\
Examples:
  pop3-dump --account qq > inbox.mbox
  pop3-dump --server pop3s://alice@pop.example.org --password-command 'pass show pop' \\
      --state ~/.cache/pop.state >> inbox.mbox
  pop3-dump --account work --list --json | jq -s 'map(.size) | add'
  pop3-dump --account work --delete >> archive.mbox      # move the mail off the server
  pop3-dump --account qq | mail2json --array > emails.json

The From_ line of each message takes its sender from Return-Path (else From)
and its time from the Date header (else the newest Received, else now), in UTC.
With --delete, DELE is sent only after every message was written and flushed
(and the state file saved), then QUIT commits; a failed or killed run deletes nothing.
With --delete or --state, stdout on /dev/null or closed (>&-) is refused, and on a
pipe DELE and the state wait until the reader has taken every byte: a reader that
exits first (| head -c 10) is exit 74, nothing deleted, the state unchanged.";

/// Dump a POP3 maildrop to mbox (mboxrd) on stdout; mail stays on the server.
#[derive(Debug, Parser)]
#[command(name = "pop3-dump", version, after_help = mailpipe::exit::after_help(EXAMPLES, "pop3-dump"))]
struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// Print number, size and UIDL of each message instead of downloading
    #[arg(long)]
    list: bool,

    /// With --list: JSON Lines ({"number":1,"size":1234,"uidl":"..."})
    #[arg(long, requires = "list")]
    json: bool,

    /// Delete the messages written, after the whole run succeeded (DELE, then QUIT)
    #[arg(long, conflicts_with_all = ["list", "headers_only"])]
    delete: bool,

    /// Remember exported UIDLs in FILE (per user@host); export only new messages
    #[arg(long, value_name = "FILE", conflicts_with = "list")]
    state: Option<PathBuf>,

    /// Export at most N messages (the oldest first)
    #[arg(long, value_name = "N")]
    limit: Option<usize>,

    /// Skip messages larger than this (as LIST reports); K, M, G suffixes
    /// (1024, 1024², 1024³) allowed
    #[arg(long, value_name = "BYTES")]
    max_size: Option<ByteSize>,

    /// Export only each message's header (TOP n 0)
    #[arg(long, conflicts_with = "list")]
    headers_only: bool,

    /// No progress display and no notices on stderr (skipped messages, missing
    /// UIDL); errors still show
    #[arg(short, long)]
    quiet: bool,
}

fn run(args: Args) -> Result<(), Error> {
    if args.delete {
        mailpipe::durable::refuse_discarded_stdout("--delete")?;
    } else if args.state.is_some() {
        mailpipe::durable::refuse_discarded_stdout("--state")?;
    }
    let endpoint = args.server.resolve(Protocol::Pop3)?;
    let mut session = Session::open(&endpoint).map_err(|e| e.context_once(&endpoint.url))?;
    if args.list {
        let listed = Maildrop::scan(&mut session, true)
            .map_err(|e| e.context_once(&endpoint.url))
            .and_then(|maildrop| {
                let mut out = BufWriter::new(io::stdout().lock());
                maildrop::print_list(&maildrop, args.json, &mut out)
            });
        if listed.is_ok() {
            let _ = session.client.quit();
        }
        return session.finish(listed);
    }
    let options = ExportOptions {
        limit: args.limit,
        max_size: args.max_size.map(ByteSize::bytes),
        headers_only: args.headers_only,
        delete: args.delete,
        state: args.state,
        quiet: args.quiet,
        verbose: endpoint.verbose,
    };
    let name = MaildropName {
        user: endpoint.login()?,
        host: &endpoint.url.host,
    };
    let exported = export::export(&mut session, name, &options).map_err(|e| {
        if e.exit() == mailpipe::Exit::Io {
            e
        } else {
            e.context_once(&endpoint.url)
        }
    });
    session.finish(exported)
}

fn main() -> ExitCode {
    mailpipe::cli::main_with::<Args>("pop3-dump", run)
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
    }
}
