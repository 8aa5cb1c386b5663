//! mail2json's command line: the clap definitions behind `--help`, the man
//! page and the completions, public so that tests can parse and inspect them.

use std::path::PathBuf;

use clap::Parser;

use crate::input::InputKind;

/// Messages, mbox streams and maildirs to JSON Lines.
///
/// Examples:
///   imap-dump --account work | mail2json | jq -r .subject
///   mail2json ~/Maildir > mail.jsonl
///   mail2json --array < msg.eml
///   mail2json --fields subject,from,date archive.mbox
///   mail2json --extract attachments/ inbox.mbox | jq .attachments
///   mail2json --fields subject,delivery_status bounces.mbox   (DSN reports: per
///                          recipient action, status, diagnostic code)
///
/// Addresses are given as the header writes them: an IDNA domain stays
/// xn--..., a raw UTF-8 header (RFC 6532, mail sent with SMTPUTF8) is UTF-8.
///
/// Empty input is no message: no output, exit 0. In a maildir, symlinks to
/// files are messages (mairix and notmuch search folders); a dangling or
/// looping link is reported and the exit status is 66, the rest still
/// converted.
///
/// Live: from a pipe, each record is written and flushed as soon as its
/// message is read. An entry whose From_ line ends in mailpipe-length=N (as
/// imap-dump --follow and pop3-dump --follow write) ends after those N
/// bytes, so it comes out at once, not when the next message starts:
///   imap-dump --account work --follow | mail2json --fields from,subject
#[derive(Parser, Debug)]
#[command(
    name = "mail2json",
    version,
    verbatim_doc_comment,
    after_help = mailpipe::exit::help_table("mail2json")
)]
pub struct Args {
    /// Files (mbox or message), maildirs, or `-` for stdin. Default: stdin.
    pub inputs: Vec<PathBuf>,

    /// Treat every input as this kind instead of detecting it.
    #[arg(long, value_enum, value_name = "KIND")]
    pub input: Option<InputKind>,

    /// Only these fields, comma-separated (e.g. `subject,from,date`); fields not
    /// asked for are not computed. `addresses` = from,sender,reply_to,to,cc,bcc;
    /// `body` = text,html.
    #[arg(long, value_name = "LIST")]
    pub fields: Option<String>,

    /// Add `headers`: every header field in order, decoded.
    #[arg(long)]
    pub headers: bool,

    /// Add `parts`: the MIME tree.
    #[arg(long)]
    pub parts: bool,

    /// Write one JSON array instead of JSON Lines.
    #[arg(long)]
    pub array: bool,

    /// Indent the JSON.
    #[arg(long)]
    pub pretty: bool,

    /// Write attachments into DIR under safe names; each attachment gets `path`.
    #[arg(long, value_name = "DIR")]
    pub extract: Option<PathBuf>,

    /// Parallel conversion threads, 1 to 256 (default: one per core).
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,

    /// No progress display on stderr (shown only when stderr is a terminal).
    #[arg(short, long)]
    pub quiet: bool,
}
