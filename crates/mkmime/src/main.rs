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

use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use lettre::message::header::ContentTransferEncoding;
use mailpipe::progress::Progress;
use mailpipe::Error;
use mkmime::{attach, build, draft, headers, json_input, reproducible};

use mkmime::attach::FileSpec;
use mkmime::build::Content;
use mkmime::headers::{Fields, Kind};

const EXAMPLES: &str = "\
Examples:
  mkmime --from me@example.org --to you@example.org --subject '周报' < body.txt | smtp-send -t
  mkmime --from 'Me <me@example.org>' --to you@example.org -s Report \\
         -a report.pdf -a 'data.bin;type=application/x-foo;name=数据.bin' < body.txt
  mkmime --from me@example.org --to you@example.org --html body.html \\
         --inline 'logo.png;cid=logo' < body.txt        (the HTML shows <img src=\"cid:logo\">)
  mkmime --draft < draft.txt          (draft: To:, Subject:, Attach: lines, a blank line, the body)
  mail2json < msg.eml | jq '{from, to: .from, subject: (\"Re: \" + .subject), text: \"Thanks\"}' \\
         | mkmime --json
  SOURCE_DATE_EPOCH=1700000000 mkmime ... (same input, same bytes: fixed Date, Message-ID, boundaries)

Files: FILE[;type=TYPE][;name=NAME][;cid=ID]. The type is guessed from the content's
magic number (PDF, PNG, JPEG, GIF, WebP, gzip, 7z), then the name, then whether it is text.
Attachments arrive byte for byte: 7bit only if the file already is CRLF 7bit text,
quoted-printable for mostly-ASCII CRLF text, base64 otherwise.
Addresses must be ASCII (no SMTPUTF8): write an international domain as xn--...";

/// Files of this many bytes in all take long enough to encode to show progress.
const SHOW_PROGRESS_FROM: u64 = 8 << 20;

/// Make an RFC 5322 / MIME email message from text, a draft or JSON on stdin.
#[derive(Parser, Debug)]
#[command(name = "mkmime", version, after_help = mailpipe::exit::after_help(EXAMPLES, "mkmime"))]
struct Args {
    /// Read stdin as a draft: header lines, a blank line, the body. Flags add
    /// recipients and override the other fields. `Attach: FILE` lines attach files.
    #[arg(long, conflicts_with = "json")]
    draft: bool,

    /// Read stdin as one JSON object with mail2json's field names (from, to, cc,
    /// bcc, reply_to, subject, text, html, headers, in_reply_to, references,
    /// message_id, date, attachments: [{path, filename, content_type}]).
    #[arg(long)]
    json: bool,

    /// The author: 'Name <address>' (replaces a draft's or JSON's From).
    #[arg(long, value_name = "ADDRESS")]
    from: Option<String>,

    /// A recipient, or a comma-separated list (repeatable; adds to the input's).
    #[arg(long, value_name = "ADDRESS")]
    to: Vec<String>,

    /// A Cc recipient or list (repeatable).
    #[arg(short = 'c', long, value_name = "ADDRESS")]
    cc: Vec<String>,

    /// A Bcc recipient or list (repeatable). Bcc stays in the output for `smtp-send -t`.
    #[arg(short = 'b', long, value_name = "ADDRESS")]
    bcc: Vec<String>,

    /// Where replies go (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    reply_to: Vec<String>,

    /// The subject, any Unicode text (encoded as RFC 2047 where needed).
    #[arg(short = 's', long)]
    subject: Option<String>,

    /// Any other header, 'Name: value' (repeatable). MIME headers are mkmime's own.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,

    /// The Message-ID this message replies to.
    #[arg(long, value_name = "MESSAGE-ID")]
    in_reply_to: Option<String>,

    /// The thread's Message-IDs, space separated.
    #[arg(long, value_name = "MESSAGE-IDS")]
    references: Option<String>,

    /// Attach a file (repeatable): FILE[;type=TYPE][;name=NAME].
    #[arg(short = 'a', long = "attach", value_name = "FILE")]
    attach: Vec<String>,

    /// Add an HTML version of the body from FILE (UTF-8): multipart/alternative.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,

    /// A file the HTML shows inline, FILE[;cid=ID][;type=TYPE] (repeatable);
    /// the Content-ID defaults to the file name. Without --html it is shown
    /// after the text.
    #[arg(long, value_name = "FILE")]
    inline: Vec<String>,

    /// Transfer encoding of the text and HTML parts (attachments are always
    /// sent byte-exact).
    #[arg(long, value_enum, default_value_t = Encoding::Auto)]
    encoding: Encoding,

    /// End lines with LF instead of CRLF (for sendmail -t, procmail, mbox files).
    #[arg(long)]
    lf: bool,

    /// No progress display on stderr (shown for large attachments when
    /// stderr is a terminal).
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Encoding {
    /// 7bit when it can, quoted-printable for mostly-ASCII text, base64 otherwise.
    Auto,
    #[value(name = "7bit")]
    SevenBit,
    #[value(name = "8bit")]
    EightBit,
    QuotedPrintable,
    Base64,
}

impl Encoding {
    fn forced(self) -> Option<ContentTransferEncoding> {
        match self {
            Encoding::Auto => None,
            Encoding::SevenBit => Some(ContentTransferEncoding::SevenBit),
            Encoding::EightBit => Some(ContentTransferEncoding::EightBit),
            Encoding::QuotedPrintable => Some(ContentTransferEncoding::QuotedPrintable),
            Encoding::Base64 => Some(ContentTransferEncoding::Base64),
        }
    }
}

fn main() -> ExitCode {
    mailpipe::cli::main_with::<Args>("mkmime", run)
}

fn utf8(what: &str, bytes: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|e| {
        Error::data(format!(
            "{what} is not UTF-8 (byte {} is invalid)",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Flags last: they add recipients and replace everything else.
fn apply_flags(args: &Args, fields: &mut Fields) -> Result<(), Error> {
    if let Some(from) = &args.from {
        fields.from = headers::parse_addresses("--from", from)?;
    }
    for (flag, values, slot) in [
        ("--to", &args.to, &mut fields.to),
        ("--cc", &args.cc, &mut fields.cc),
        ("--bcc", &args.bcc, &mut fields.bcc),
        ("--reply-to", &args.reply_to, &mut fields.reply_to),
    ] {
        for value in values {
            slot.extend(headers::parse_addresses(flag, value)?);
        }
    }
    if let Some(subject) = &args.subject {
        fields.subject = Some(headers::check_value("--subject", subject)?.to_string());
    }
    if let Some(id) = &args.in_reply_to {
        fields.in_reply_to = headers::parse_ids("--in-reply-to", id)?;
    }
    if let Some(ids) = &args.references {
        fields.references = headers::parse_ids("--references", ids)?;
    }
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            return Err(Error::usage(format!(
                "--header {header:?}: expected 'Name: value'"
            )));
        };
        if fields.apply("--header", name.trim(), value)? == Kind::Mime {
            return Err(Error::usage(format!(
                "--header {}: mkmime writes the MIME headers; use --attach 'FILE;type=...', \
                 --html or --encoding",
                name.trim()
            )));
        }
    }
    Ok(())
}

fn run(args: Args) -> Result<(), Error> {
    let epoch = reproducible::source_date_epoch()?;
    let mut input = Vec::new();
    io::stdin()
        .lock()
        .read_to_end(&mut input)
        .map_err(|e| Error::io("reading stdin", e))?;

    let mut fields = Fields::default();
    let mut content = Content::default();
    let mut attachments: Vec<(String, FileSpec)> = Vec::new();
    if args.json {
        let json = json_input::apply(&input, &mut fields)?;
        content.text = json.text;
        content.html = json.html;
        for (i, spec) in json.attachments.into_iter().enumerate() {
            attachments.push((format!("json field \"attachments[{i}]\""), spec));
        }
    } else if args.draft {
        let draft = draft::parse(&utf8("stdin", input)?)?;
        for (line, name, value) in &draft.headers {
            let label = format!("draft line {line}:");
            if name.trim().eq_ignore_ascii_case("attach") {
                let value = headers::check_value(&label, value)?;
                attachments.push((format!("{label} Attach"), attach::parse_spec(value)));
            } else {
                // MIME headers in a draft describe what mkmime writes anyway.
                fields.apply(&label, name.trim_end(), value)?;
            }
        }
        content.text = Some(draft.body);
    } else {
        content.text = Some(utf8("stdin", input)?);
    }
    apply_flags(&args, &mut fields)?;
    if fields.from.is_empty() {
        let message = "no From: give --from 'Name <address>'";
        return Err(if args.draft || args.json {
            Error::data(format!("{message}, a From: line or a \"from\" field"))
        } else {
            Error::usage(message)
        });
    }
    fields.check()?;

    if let Some(path) = &args.html {
        let bytes = attach::read_file(path)?;
        content.html = Some(utf8(&format!("--html {}", path.display()), bytes)?);
    }
    for spec in &args.attach {
        attachments.push(("--attach".to_string(), attach::parse_spec(spec)));
    }
    for (label, spec) in attachments {
        content.attachments.push(attach::load(&label, spec)?);
    }
    for spec in &args.inline {
        let mut spec = attach::parse_spec(spec);
        if spec.cid.is_none() {
            let name = spec.name.clone().or_else(|| {
                spec.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            });
            spec.cid = name.map(|n| {
                n.replace(
                    |c: char| !c.is_ascii_graphic() || "<>\"\\()[],;:".contains(c),
                    "_",
                )
            });
        }
        content.inline.push(attach::load("--inline", spec)?);
    }

    let files: u64 = (content.attachments.iter().chain(&content.inline))
        .map(|f| f.bytes.len() as u64)
        .sum();
    if files >= SHOW_PROGRESS_FROM {
        content.progress = Progress::new(args.quiet, false);
        content.progress.start("encoding", None, Some(files));
    }
    let message = build::compose(&fields, content, args.encoding.forced(), epoch)?;
    let stdout = io::stdout().lock();
    let result = if args.lf {
        let mut out = build::LfWriter::new(BufWriter::with_capacity(1 << 16, stdout));
        message.write_to(&mut out).and_then(|()| out.flush())
    } else {
        let mut out = BufWriter::with_capacity(1 << 16, stdout);
        message.write_to(&mut out).and_then(|()| out.flush())
    };
    result.map_err(|e| Error::io("writing stdout", e))
}
