//! mail2json: messages, mbox streams and maildirs to JSON Lines.
//!
//! Input: files, maildirs and `-` as arguments, or stdin; each detected as an
//! mbox, a maildir or a single message (`--input` overrides).
//! Output: one JSON object per message on stdout, in input order (schema in
//! `schema.rs` and docs/mail2json-schema.md); `--array` for one JSON array.
//! Exit status: `mailpipe::exit`'s table, shown by `--help`. Empty input is
//! no message, no output and 0; a message that is not mail does not stop the
//! run; each failure is one line on stderr.

use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mail2json::{batch, extract};
use mailpipe::progress::Progress;
use mailpipe::Error;

use mail2json::convert::Options;
use mail2json::input::InputKind;
use mail2json::schema::FieldSet;

/// Messages, mbox streams and maildirs to JSON Lines.
///
/// Examples:
///   imap-dump --account work | mail2json | jq -r .subject
///   mail2json ~/Maildir > mail.jsonl
///   mail2json --array < msg.eml
///   mail2json --fields subject,from,date archive.mbox
///   mail2json --extract attachments/ inbox.mbox | jq .attachments
///
/// Empty input is no message: no output, exit 0. In a maildir, symlinks to
/// files are messages (mairix and notmuch search folders); a dangling or
/// looping link is reported and the exit status is 66, the rest still
/// converted.
#[derive(Parser, Debug)]
#[command(
    name = "mail2json",
    version,
    verbatim_doc_comment,
    after_help = mailpipe::exit::help_table("mail2json")
)]
struct Args {
    /// Files (mbox or message), maildirs, or `-` for stdin. Default: stdin.
    inputs: Vec<PathBuf>,

    /// Treat every input as this kind instead of detecting it.
    #[arg(long, value_enum, value_name = "KIND")]
    input: Option<InputKind>,

    /// Only these fields, comma-separated (e.g. `subject,from,date`); fields not
    /// asked for are not computed. `addresses` = from,sender,reply_to,to,cc,bcc;
    /// `body` = text,html.
    #[arg(long, value_name = "LIST")]
    fields: Option<String>,

    /// Add `headers`: every header field in order, decoded.
    #[arg(long)]
    headers: bool,

    /// Add `parts`: the MIME tree.
    #[arg(long)]
    parts: bool,

    /// Write one JSON array instead of JSON Lines.
    #[arg(long)]
    array: bool,

    /// Indent the JSON.
    #[arg(long)]
    pretty: bool,

    /// Write attachments into DIR under safe names; each attachment gets `path`.
    #[arg(long, value_name = "DIR")]
    extract: Option<PathBuf>,

    /// Parallel conversion threads, 1 to 256 (default: one per core).
    #[arg(short = 'j', long, value_name = "N")]
    jobs: Option<usize>,

    /// No progress display on stderr (shown only when stderr is a terminal).
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    mailpipe::cli::main_with::<Args>("mail2json", run)
}

fn run(args: Args) -> Result<(), Error> {
    if let Some(jobs) = args.jobs {
        if !(1..=batch::MAX_JOBS).contains(&jobs) {
            return Err(Error::usage(format!(
                "-j {jobs}: the number of threads must be 1 to {}",
                batch::MAX_JOBS
            )));
        }
    }
    let mut fields = match &args.fields {
        Some(list) => FieldSet::parse(list).map_err(Error::usage)?,
        None => FieldSet::default_set(),
    };
    if args.headers {
        fields.insert("headers");
    }
    if args.parts {
        fields.insert("parts");
    }
    if args.extract.is_some() {
        fields.insert("attachments");
    }
    batch::start_threads(args.jobs)?;
    let extractor = match &args.extract {
        Some(dir) => Some(
            extract::Extractor::new(dir)
                .map_err(|e| Error::io(format!("--extract {}", dir.display()), e))?,
        ),
        None => None,
    };
    let options = Options {
        fields,
        keep_content: extractor.is_some(),
    };
    let progress = Progress::new(args.quiet, false);
    progress.start("", None, mailpipe::progress::inputs_size(&args.inputs));
    let output = batch::Output {
        array: args.array,
        pretty: args.pretty,
        extract: extractor.as_ref(),
        progress: &progress,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let outcome = batch::run(&args.inputs, args.input, &options, &output, &mut out)?;
    outcome.into_result("some input could not be read as mail")
}
