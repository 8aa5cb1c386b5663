//! smtp-send's command line: the clap definitions behind `--help`, the man
//! page and the completions, public so that tests can parse and inspect them.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use lettre::transport::smtp::authentication::Mechanism;
use mailpipe::oauth::OAuthMechanism;
use mailpipe::ServerArgs;

/// The examples and notes `--help` shows after the options and before the exit table.
pub const EXAMPLES: &str = "\
Examples:
  mkmime --from me@example.org --to you@example.org --subject hi < body.txt | smtp-send -t
  smtp-send --account work -t < message.eml
  smtp-send --server smtps://mail.example.org --user me@example.org \\
      --password-command 'pass show mail' -f me@example.org you@example.org < message.eml
  smtp-send -t --dead-letter ~/dead.mbox < report.eml      # cron: keep what failed
  smtp-send --mbox -t --dead-letter failed.mbox < outbox.mbox
  smtp-send --check --account work -v                      # what does the server offer?
  smtp-send --dry-run -t < message.eml                     # envelope and message, no network
  mkmime ... | smtp-send --account work -t --queue ~/.local/share/mailpipe/outbox
  smtp-send --account work --flush ~/.local/share/mailpipe/outbox    # cron, when online
  smtp-send --list ~/.local/share/mailpipe/outbox

Recipients refused: if the server refuses any recipient with 5xx (4xx), nothing
is sent (RSET), every recipient's reply is printed, and the exit status is 67
(75), as msmtp does: a cron job never half-delivers silently. With --partial the
message goes to the accepted recipients; the status is still 67 (75), the
refused ones are named, and --dead-letter still keeps the message (it did not
reach everyone; do not resend it blindly).

Server ends the session (421) after refusing recipients (Postfix's
smtpd_hard_error_limit): every recipient is still listed, those never tried as
not-tried; the status is 67 if the refusals were 5xx (a retry would end the
same way), else 75. With --partial, smtp-send reconnects and sends to the
accepted and untried recipients, never to the refused ones.

Too many recipients (452, RFC 5321 4.5.3.1.10): the message goes to the
recipients the server accepted, then the rest follow in further transactions
(MAIL FROM again, the same data) until all are done. A refusal in a later
transaction cannot undo the earlier ones; without --partial it holds back that
transaction and those after it.

International addresses (RFC 6530): a UTF-8 domain goes in its IDNA form
(user@例子.中国 as user@xn--fsqu00a.xn--fiqs8s), which needs nothing of the
server; a UTF-8 local part (张三@例子.中国), in the envelope or in an address
header, needs SMTPUTF8: MAIL FROM carries it when the server offers it, and
without it nothing is sent, exit 69, before MAIL FROM.

Delivery status notifications (RFC 3461): --dsn-notify, --dsn-ret and --envid
(or the account's dsn_notify, dsn_ret, require_dsn keys) ask the servers on the
way to report to the envelope sender; each recipient also gets ORCPT (rfc822;
xtext, or utf-8; for a UTF-8 address, RFC 6533). A server without DSN gets the
message without them and one warning line; with --require-dsn, exit 69 instead.
  smtp-send -t --dsn-notify success,failure,delay --dsn-ret hdrs --envid report-42 < m.eml

Outbox (--queue DIR): a message the server cannot take now (unreachable:
68, 69 \"cannot connect\", a timeout; or a 4xx) is kept in DIR and the exit
status is 0, with one line naming the file. DIR is maildir-like (tmp/, then a
rename into new/, synced): ID.eml holds the message as it goes on the wire
(Date and Message-ID added, Bcc removed), ID.json the envelope (sender,
recipients not yet delivered to, DSN requests), when it was queued, the
attempts and the last error. --flush DIR (also at the start of each --queue
run) sends them oldest first and removes each only after the final 250 for
every recipient; a 5xx moves it to DIR/dead/ with the replies in its ID.json;
a 4xx keeps it. Flushes take turns on DIR/.lock: none sends a message twice.

Line ends: a bare LF or a bare CR each become CRLF before dot-stuffing (RFC 5321
2.3.8; as Python's smtplib), so no CR . CR LF can end the data early (SMTP
smuggling). --dead-letter keeps the message as read.";

/// Submit a message on stdin over SMTP (smtps:// implicit TLS, smtp:// STARTTLS).
#[derive(Parser, Debug)]
#[command(name = "smtp-send", version, about, after_help = mailpipe::exit::after_help(EXAMPLES, "smtp-send"))]
pub struct Args {
    /// Recipient addresses (combined with -t's)
    #[arg(value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Read recipients from To, Cc and Bcc (Resent-To/Cc/Bcc if the message has
    /// Resent-* fields); Bcc fields are never transmitted
    #[arg(short = 't', long)]
    pub read_recipients: bool,

    /// Envelope sender (MAIL FROM); "<>" for none. Default: the From address,
    /// else the account's from, else the login
    #[arg(short = 'f', long, value_name = "ADDRESS")]
    pub from: Option<String>,

    /// When some recipients are refused, send to the accepted ones anyway
    /// (the exit status still reports the refused ones); after a 421 that ends
    /// the session, reconnect for the accepted and untried ones
    #[arg(long)]
    pub partial: bool,

    /// Append every message that was not delivered to everyone to this mbox
    /// file (mboxrd, locked, synced), exactly as read; a file ending mid-line
    /// (a killed append) is fenced off first
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,

    /// Stdin is an mbox: send every message over one connection, -t applied
    /// to each, a line per message on stderr; exit status is the worst
    #[arg(long)]
    pub mbox: bool,

    /// Connect, EHLO, authenticate, NOOP, QUIT, and print what the server
    /// offers (extensions, AUTH mechanisms, SIZE); sends nothing
    #[arg(long, conflicts_with_all = ["dry_run", "mbox", "read_recipients", "recipients"])]
    pub check: bool,

    /// Print the envelope and the message as it would be sent; connect to nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,

    /// AUTH mechanism (default: PLAIN, else LOGIN; with --oauth-token-command
    /// OAUTHBEARER when offered, else XOAUTH2)
    #[arg(long, value_name = "MECH", value_enum)]
    pub auth: Option<Auth>,

    /// Per-message report on stdout: "json" gives one JSON object per message
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = Report::Text)]
    pub report: Report,

    /// With --mbox, no line for messages that were sent and no progress display
    #[arg(short, long)]
    pub quiet: bool,

    /// Delivery status notifications to ask for, per recipient (RFC 3461
    /// NOTIFY): "never", or a comma-separated list of success, failure, delay.
    /// Default: the account's dsn_notify, else the server's choice
    #[arg(long, value_name = "WHEN")]
    pub dsn_notify: Option<String>,

    /// What a failure report returns of the message (RFC 3461 RET): the full
    /// message or only its header. Default: the account's dsn_ret
    #[arg(long, value_name = "WHAT", value_enum)]
    pub dsn_ret: Option<crate::dsn::Ret>,

    /// An identifier the delivery reports quote back (RFC 3461 ENVID):
    /// printable ASCII, at most 100 characters
    #[arg(long, value_name = "ID")]
    pub envid: Option<String>,

    /// Refuse (exit 69, nothing sent) a server that does not offer DSN,
    /// instead of sending without the requests and warning
    #[arg(long)]
    pub require_dsn: bool,

    /// When the server cannot be reached or answers 4xx (the cases of exit
    /// 75, 68, and 69 "cannot connect"), keep the message in the outbox DIR
    /// (created if needed) and exit 0 with one line saying where; every run
    /// first flushes what DIR holds (see --flush)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["mbox", "partial", "dry_run", "check"])]
    pub queue: Option<PathBuf>,

    /// Send what the outbox DIR holds, oldest first, removing each message
    /// only after the server's final 250 for every recipient; a message
    /// refused for good (5xx) moves to DIR/dead/ with the replies; a 4xx keeps
    /// it. Two flushes at once never send a message twice (DIR/.lock)
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "queue", "mbox", "partial", "dry_run", "check", "recipients", "read_recipients",
        "from", "dead_letter", "dsn_notify", "dsn_ret", "envid", "require_dsn",
    ])]
    pub flush: Option<PathBuf>,

    /// Show the outbox DIR, one line per message, tab-separated: id, queued or
    /// dead, age, size, sender, recipients, last error; connects to nothing
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "queue", "flush", "mbox", "partial", "dry_run", "check", "recipients", "read_recipients",
        "from", "dead_letter", "dsn_notify", "dsn_ret", "envid", "require_dsn",
    ])]
    pub list: Option<PathBuf>,

    /// Ignored (sendmail's "a lone dot does not end the message"; it never does here)
    #[arg(short = 'i', hide = true)]
    pub ignore_dots: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `--auth`: the SASL mechanisms smtp-send speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Auth {
    Plain,
    Login,
    Xoauth2,
    Oauthbearer,
}

impl Auth {
    /// The lettre mechanism this choice names (XOAUTH2 stands for OAuth,
    /// whose mechanism the endpoint carries: `oauth`).
    pub fn mechanism(self) -> Mechanism {
        match self {
            Auth::Plain => Mechanism::Plain,
            Auth::Login => Mechanism::Login,
            Auth::Xoauth2 | Auth::Oauthbearer => Mechanism::Xoauth2,
        }
    }

    /// The OAuth mechanism this choice names, if it names one.
    pub fn oauth(self) -> Option<OAuthMechanism> {
        match self {
            Auth::Plain | Auth::Login => None,
            Auth::Xoauth2 => Some(OAuthMechanism::Xoauth2),
            Auth::Oauthbearer => Some(OAuthMechanism::Oauthbearer),
        }
    }
}

/// `--report`: how each message's outcome is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Report {
    /// Lines on stderr.
    Text,
    /// One JSON object per message on stdout.
    Json,
}
