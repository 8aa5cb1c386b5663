//! mkmime's command line: the clap definitions behind `--help`, the man
//! page and the completions, public so that tests can parse and inspect them.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use lettre::message::header::ContentTransferEncoding;

/// The examples and notes `--help` shows after the options and before the exit table.
pub const EXAMPLES: &str = "\
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
quoted-printable for mostly-ASCII CRLF text, base64 otherwise. Files are streamed,
read more than once: a pipe (-a <(cmd)) is taken up to 16 MiB. A body over 1 MiB on
stdin (not --json) is spooled to a temporary file in $TMPDIR and streamed the same way.
International addresses (RFC 6530): user@例子.中国 is written with the domain's IDNA form
(user@xn--fsqu00a.xn--fiqs8s), plain ASCII that every server takes; 张三@例子.中国 (a UTF-8
local part) is written raw in UTF-8 (RFC 6532), the display name still an encoded-word,
and smtp-send then needs a server that offers SMTPUTF8.";

/// Make an RFC 5322 / MIME email message from text, a draft or JSON on stdin.
#[derive(Parser, Debug)]
#[command(name = "mkmime", version, after_help = mailpipe::exit::after_help(EXAMPLES, "mkmime"))]
pub struct Args {
    /// Read stdin as a draft: header lines, a blank line, the body. Flags add
    /// recipients and override the other fields. `Attach: FILE` lines attach files.
    #[arg(long, conflicts_with = "json")]
    pub draft: bool,

    /// Read stdin as one JSON object with mail2json's field names (from, to, cc,
    /// bcc, reply_to, subject, text, html, headers, in_reply_to, references,
    /// message_id, date, attachments: [{path, filename, content_type}]).
    #[arg(long)]
    pub json: bool,

    /// The author: 'Name <address>' (replaces a draft's or JSON's From).
    #[arg(long, value_name = "ADDRESS")]
    pub from: Option<String>,

    /// A recipient, or a comma-separated list (repeatable; adds to the input's).
    #[arg(long, value_name = "ADDRESS")]
    pub to: Vec<String>,

    /// A Cc recipient or list (repeatable).
    #[arg(short = 'c', long, value_name = "ADDRESS")]
    pub cc: Vec<String>,

    /// A Bcc recipient or list (repeatable). Bcc stays in the output for `smtp-send -t`.
    #[arg(short = 'b', long, value_name = "ADDRESS")]
    pub bcc: Vec<String>,

    /// Where replies go (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub reply_to: Vec<String>,

    /// The subject, any Unicode text (encoded as RFC 2047 where needed).
    #[arg(short = 's', long)]
    pub subject: Option<String>,

    /// Any other header, 'Name: value' (repeatable). MIME headers are mkmime's own.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// The Message-ID this message replies to.
    #[arg(long, value_name = "MESSAGE-ID")]
    pub in_reply_to: Option<String>,

    /// The thread's Message-IDs, space separated.
    #[arg(long, value_name = "MESSAGE-IDS")]
    pub references: Option<String>,

    /// Attach a file (repeatable): FILE[;type=TYPE][;name=NAME].
    #[arg(short = 'a', long = "attach", value_name = "FILE")]
    pub attach: Vec<String>,

    /// Add an HTML version of the body from FILE (UTF-8): multipart/alternative.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// A file the HTML shows inline, FILE[;cid=ID][;type=TYPE] (repeatable);
    /// the Content-ID defaults to the file name. Without --html it is shown
    /// after the text.
    #[arg(long, value_name = "FILE")]
    pub inline: Vec<String>,

    /// Transfer encoding of the text and HTML parts (attachments are always
    /// sent byte-exact).
    #[arg(long, value_enum, default_value_t = Encoding::Auto)]
    pub encoding: Encoding,

    /// End lines with LF instead of CRLF (for sendmail -t, procmail, mbox files).
    #[arg(long)]
    pub lf: bool,

    /// No progress display on stderr (shown for large attachments when
    /// stderr is a terminal).
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
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
    /// The encoding `--encoding` forces on the text parts; None for `auto`.
    pub fn forced(self) -> Option<ContentTransferEncoding> {
        match self {
            Encoding::Auto => None,
            Encoding::SevenBit => Some(ContentTransferEncoding::SevenBit),
            Encoding::EightBit => Some(ContentTransferEncoding::EightBit),
            Encoding::QuotedPrintable => Some(ContentTransferEncoding::QuotedPrintable),
            Encoding::Base64 => Some(ContentTransferEncoding::Base64),
        }
    }
}
