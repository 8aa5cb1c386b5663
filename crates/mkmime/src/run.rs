//! What mkmime does with its parsed command line.

use std::io::{self, BufWriter, Read, Write};

use mailpipe::progress::Progress;
use mailpipe::Error;

use crate::attach::FileSpec;
use crate::build::Content;
use crate::cli::Args;
use crate::headers::{Fields, Kind};
use crate::source::Source;
use crate::spool::{self, Stdin};
use crate::text::{not_utf8, Text, TextSource};
use crate::{attach, build, draft, headers, json_input, reproducible};

/// Files of this many bytes in all take long enough to encode to show progress.
const SHOW_PROGRESS_FROM: u64 = 8 << 20;

fn utf8(what: &str, bytes: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|e| not_utf8(what, e.utf8_error().valid_up_to() as u64))
}

/// The `--html` file: streamed if it is a regular file over the spool
/// threshold, held otherwise (a pipe is read once).
fn html(path: &std::path::Path) -> Result<Text, Error> {
    let what = format!("--html {}", path.display());
    let threshold = spool::threshold()?;
    let large = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > threshold);
    if large {
        let source = Source::open(path)?;
        return Ok(Text::Streamed(TextSource::scan(
            &what,
            0,
            Vec::new(),
            source,
        )?));
    }
    Ok(Text::Held(utf8(&what, attach::read_file(path)?)?))
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

/// Does what the command line asks; the error's kind is the exit status.
pub fn run(args: Args) -> Result<(), Error> {
    let epoch = reproducible::source_date_epoch()?;
    let input = if args.json {
        let mut input = Vec::new();
        io::stdin()
            .lock()
            .read_to_end(&mut input)
            .map_err(|e| Error::io("reading stdin", e))?;
        Stdin::Held(input)
    } else {
        spool::read_stdin(args.draft)?
    };

    let mut fields = Fields::default();
    let mut content = Content::default();
    let mut attachments: Vec<(String, FileSpec)> = Vec::new();
    let (input, streamed) = match input {
        Stdin::Held(input) => (input, None),
        Stdin::Spooled { head, body } => (head.into_bytes(), Some(body)),
    };
    if args.json {
        let json = json_input::apply(&input, &mut fields)?;
        content.text = json.text.map(Text::Held);
        content.html = json.html.map(Text::Held);
        for (i, spec) in json.attachments.into_iter().enumerate() {
            attachments.push((format!("json field \"attachments[{i}]\""), spec));
        }
    } else if args.draft {
        let head = utf8("stdin", input)?;
        let draft = draft::parse(&head)?;
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
        content.text = Some(match streamed {
            None => Text::Held(draft.body),
            // A body that began before the held head's end (not after a
            // blank line) goes first.
            Some(body) if !draft.body.is_empty() => {
                let offset = (head.len() - draft.body.len()) as u64;
                Text::Streamed(body.with_prefix("stdin", offset, draft.body.into_bytes())?)
            }
            Some(body) => Text::Streamed(body),
        });
    } else {
        content.text = Some(match streamed {
            None => Text::Held(utf8("stdin", input)?),
            Some(body) => Text::Streamed(body),
        });
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
        content.html = Some(html(path)?);
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

    let texts: u64 = [&content.text, &content.html]
        .into_iter()
        .map(|text| match text {
            Some(Text::Streamed(text)) => text.len(),
            _ => 0,
        })
        .sum();
    let files: u64 = (content.attachments.iter().chain(&content.inline))
        .map(|f| f.source.len())
        .sum::<u64>()
        + texts;
    if files >= SHOW_PROGRESS_FROM {
        content.progress = Progress::new(args.quiet, false);
        content.progress.start("encoding", None, Some(files));
    }
    let message = build::compose(&fields, content, args.encoding.forced(), epoch)?;
    let stdout = io::stdout().lock();
    let flushed = |e| Error::io("writing stdout", e);
    if args.lf {
        let mut out = build::LfWriter::new(BufWriter::with_capacity(1 << 16, stdout));
        message.write_to(&mut out)?;
        out.flush().map_err(flushed)
    } else {
        let mut out = BufWriter::with_capacity(1 << 16, stdout);
        message.write_to(&mut out)?;
        out.flush().map_err(flushed)
    }
}
