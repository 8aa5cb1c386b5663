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

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mailpipe::progress::Progress;
use mailpipe::{ByteSize, Error, Protocol, ServerArgs};

use imap_dump::dump::{self, DumpOptions, Sessions};
use imap_dump::output::{self, MboxOutput};
use imap_dump::state::StateFile;
use imap_dump::{list, session};

const EXAMPLES: &str = "\
Examples:
  imap-dump --account work > inbox.mbox
  imap-dump --account work --mailbox INBOX --state ~/.cache/inbox.state >> inbox.mbox
  imap-dump --server imaps://alice@imap.example.org --password-command 'pass mail' --list
  imap-dump --account work --mailbox 已发送 --search 'SINCE 1-Nov-2026' | mail2json
  imap-dump --account work --search 'SUBJECT 周报 FROM 张伟' > reports.mbox
  imap-dump --account work --all --output-dir backup/ --state backup/.state

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
says so and dumps the whole mailbox again. When appending to a file whose last
message a killed run cut short, imap-dump first ends it with a blank line, so
the next message is never swallowed. The state is per mailbox, not per
--search: a later run with other criteria still starts after the saved UID.

Output is mboxrd: lines matching >*From get one more '>', undone by readers
of mboxrd (mailpipe, Python's mailbox, mutt). A message that does not end in
a line end gets one (mbox cannot mark its end otherwise).";

/// Copy IMAP mailboxes to mbox without changing anything on the server.
#[derive(Parser, Debug)]
#[command(name = "imap-dump", version, after_help = mailpipe::exit::after_help(EXAMPLES, "imap-dump"))]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Mailbox to dump, as you read it (UTF-8; sent in modified UTF-7);
    /// repeat for several [default: INBOX]
    #[arg(short, long = "mailbox", value_name = "NAME")]
    mailboxes: Vec<String>,
    /// Dump every mailbox that can be selected
    #[arg(long, conflicts_with = "mailboxes")]
    all: bool,
    /// Print the mailboxes, one decoded name per line, and exit
    #[arg(long, conflicts_with_all = ["mailboxes", "all", "state", "output_dir"])]
    list: bool,
    /// With --list: JSON Lines with name, raw_name, delimiter, attributes, messages
    #[arg(long, requires = "list")]
    json: bool,
    /// IMAP SEARCH criteria for UID SEARCH, e.g. 'SINCE 1-Jan-2026 FROM bob';
    /// non-ASCII text may be typed as is ('SUBJECT 周报'): it is sent as
    /// UTF-8 literals under CHARSET UTF-8
    #[arg(long, value_name = "CRITERIA")]
    search: Option<String>,
    /// At most N messages per mailbox, the oldest (lowest UIDs) first
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Skip messages larger than BYTES (RFC822.SIZE), with a note on stderr;
    /// with --state they are remembered and fetched by a later run that allows them;
    /// K, M, G suffixes (1024, 1024², 1024³) allowed
    #[arg(long, value_name = "BYTES")]
    max_size: Option<ByteSize>,
    /// Remember what was dumped here (per user@host and mailbox); the next run
    /// fetches only newer messages
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Write DIR/<mailbox>.mbox per mailbox (nested names as folders) instead
    /// of stdout; appended to with --state, replaced without
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Add an X-Mailbox: header naming the mailbox to each message
    #[arg(long)]
    tag_mailbox: bool,
    /// Add Status, X-Status and X-Keywords headers from the IMAP flags
    #[arg(long)]
    flags: bool,
    /// Bytes of messages per UID FETCH (K, M, G suffixes); memory stays within
    /// about four times this
    #[arg(long, value_name = "BYTES", default_value_t = ByteSize::mib(8))]
    batch_size: ByteSize,
    /// Connections fetching batches in parallel: 2, or 1 for one connection
    /// (-v always uses one)
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    connections: u8,
    /// No progress display on stderr
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    mailpipe::cli::main_with::<Args>("imap-dump", run)
}

fn run(args: Args) -> Result<(), Error> {
    if let Some(search) = &args.search {
        if search.contains(['\r', '\n']) || search.trim().is_empty() {
            return Err(Error::usage(
                "--search must be IMAP SEARCH criteria on one line (no CR or LF)",
            ));
        }
    }
    if args
        .mailboxes
        .iter()
        .any(|m| m.contains(['\r', '\n']) || m.is_empty())
    {
        return Err(Error::usage(
            "--mailbox must be a non-empty name without CR or LF",
        ));
    }
    if args.batch_size.bytes() == 0 {
        return Err(Error::usage("--batch-size must be at least 1"));
    }
    if args.state.is_some() && args.output_dir.is_none() {
        mailpipe::durable::refuse_discarded_stdout("--state")?;
    }
    let endpoint = args.server.resolve(Protocol::Imap)?;
    let mut state = args.state.as_deref().map(StateFile::load).transpose()?;
    let mut session = session::open(&endpoint)?;
    if args.list {
        let listed = list::print(
            &mut session,
            &endpoint,
            args.json,
            &mut std::io::stdout().lock(),
        );
        return Sessions::new(session, &endpoint).finish(listed);
    }
    let mut sessions = Sessions::new(session, &endpoint);
    let dumped = dump_all(&args, &endpoint, &mut sessions, state.as_mut());
    sessions.finish(dumped)
}

/// The dump proper, once logged in: every mailbox asked for, in order.
fn dump_all(
    args: &Args,
    endpoint: &mailpipe::Endpoint,
    sessions: &mut Sessions<'_>,
    mut state: Option<&mut StateFile>,
) -> Result<(), Error> {
    // The mailboxes to dump, with their hierarchy delimiters for --output-dir.
    let needs_list = args.all || args.output_dir.is_some();
    let known = if needs_list {
        list::mailboxes(&mut sessions.main, endpoint)?
    } else {
        Vec::new()
    };
    let names: Vec<String> = if args.all {
        known
            .iter()
            .filter(|m| m.selectable())
            .map(|m| m.name.clone())
            .collect()
    } else if args.mailboxes.is_empty() {
        vec!["INBOX".to_string()]
    } else {
        args.mailboxes.clone()
    };
    let delimiters: HashMap<&str, Option<&str>> = known
        .iter()
        .map(|m| (m.name.as_str(), m.delimiter.as_deref()))
        .collect();

    let options = DumpOptions {
        search: args.search.clone(),
        limit: args.limit,
        max_size: args.max_size.map(ByteSize::bytes),
        batch_bytes: args.batch_size.bytes(),
        flags: args.flags,
        tag_mailbox: args.tag_mailbox,
        // Two transcripts interleaved on stderr would be unreadable.
        account: endpoint.state_key()?,
        connections: if endpoint.verbose {
            1
        } else {
            usize::from(args.connections)
        },
    };
    let progress = Progress::new(args.quiet, endpoint.verbose);
    let mut stdout = match args.output_dir {
        Some(_) => None,
        None => Some(MboxOutput::stdout()?),
    };
    for name in &names {
        let mut file_output;
        let out = match (&args.output_dir, stdout.as_mut()) {
            (Some(root), _) => {
                let delimiter = delimiters.get(name.as_str()).copied().flatten();
                let path = output::mailbox_path(root, name, delimiter);
                file_output = MboxOutput::file(&path, state.is_some())?;
                &mut file_output
            }
            (None, Some(out)) => out,
            (None, None) => unreachable!("stdout is open when there is no --output-dir"),
        };
        dump::dump_mailbox(
            sessions,
            endpoint,
            name,
            out,
            state.as_deref_mut(),
            &options,
            &progress,
        )?;
        out.commit(state.is_some())?;
    }
    Ok(())
}
