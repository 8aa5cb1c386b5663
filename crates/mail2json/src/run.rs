//! What mail2json does with its parsed command line.

use std::io::{self, BufWriter};

use mailpipe::progress::Progress;
use mailpipe::{Error, Exit};

use crate::cli::Args;
use crate::convert::Options;
use crate::schema::FieldSet;
use crate::{batch, extract};

/// Does what the command line asks; the error's kind is the exit status.
pub fn run(args: Args) -> Result<(), Error> {
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
        live: crate::input::is_live(&args.inputs),
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let outcome = batch::run(&args.inputs, args.input, &options, &output, &mut out)?;
    // 66 (a file or link that cannot be read) wins over 65 (not mail), so the
    // summary names what its code means.
    let summary = match outcome.worst() {
        Some(Exit::NoInput) => "some input could not be read",
        _ => "some input could not be read as mail",
    };
    outcome.into_result(summary)
}
