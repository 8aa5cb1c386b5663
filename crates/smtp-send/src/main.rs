//! smtp-send: submit a message on stdin to an SMTP server, sendmail-style.
//!
//! Input: one RFC 5322 message on stdin (or, with `--mbox`, an mbox of them).
//! Output: nothing on success; per-recipient results and errors on stderr, one
//! line each; with `--report json` a JSON object per message on stdout;
//! `--check` and `--dry-run` print what they found on stdout.
//! Exit status (sysexits, as msmtp): `mailpipe::exit`'s table, shown by
//! `--help`. With `--mbox`, the worst of all messages.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use lettre::transport::smtp::authentication::Mechanism;
use mailpipe::{Endpoint, Error, Protocol, ServerArgs};

use smtp_send::batch;
use smtp_send::deliver::{self, Options, TOOL};
use smtp_send::envelope::EnvelopeArgs;
use smtp_send::session::Session;

const EXAMPLES: &str = "\
Examples:
  mkmime --from me@example.org --to you@example.org --subject hi < body.txt | smtp-send -t
  smtp-send --account work -t < message.eml
  smtp-send --server smtps://mail.example.org --user me@example.org \\
      --password-command 'pass show mail' -f me@example.org you@example.org < message.eml
  smtp-send -t --dead-letter ~/dead.mbox < report.eml      # cron: keep what failed
  smtp-send --mbox -t --dead-letter failed.mbox < outbox.mbox
  smtp-send --check --account work -v                      # what does the server offer?
  smtp-send --dry-run -t < message.eml                     # envelope and message, no network

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

Line ends: a bare LF or a bare CR each become CRLF before dot-stuffing (RFC 5321
2.3.8; as Python's smtplib), so no CR . CR LF can end the data early (SMTP
smuggling). --dead-letter keeps the message as read.";

/// Submit a message on stdin over SMTP (smtps:// implicit TLS, smtp:// STARTTLS).
#[derive(Parser, Debug)]
#[command(name = "smtp-send", version, about, after_help = mailpipe::exit::after_help(EXAMPLES, "smtp-send"))]
struct Args {
    /// Recipient addresses (combined with -t's)
    #[arg(value_name = "RECIPIENT")]
    recipients: Vec<String>,

    /// Read recipients from To, Cc and Bcc (Resent-To/Cc/Bcc if the message has
    /// Resent-* fields); Bcc fields are never transmitted
    #[arg(short = 't', long)]
    read_recipients: bool,

    /// Envelope sender (MAIL FROM); "<>" for none. Default: the From address,
    /// else the account's from, else the login
    #[arg(short = 'f', long, value_name = "ADDRESS")]
    from: Option<String>,

    /// When some recipients are refused, send to the accepted ones anyway
    /// (the exit status still reports the refused ones); after a 421 that ends
    /// the session, reconnect for the accepted and untried ones
    #[arg(long)]
    partial: bool,

    /// Append every message that was not delivered to everyone to this mbox
    /// file (mboxrd, locked, synced), exactly as read; a file ending mid-line
    /// (a killed append) is fenced off first
    #[arg(long, value_name = "FILE")]
    dead_letter: Option<PathBuf>,

    /// Stdin is an mbox: send every message over one connection, -t applied
    /// to each, a line per message on stderr; exit status is the worst
    #[arg(long)]
    mbox: bool,

    /// Connect, EHLO, authenticate, NOOP, QUIT, and print what the server
    /// offers (extensions, AUTH mechanisms, SIZE); sends nothing
    #[arg(long, conflicts_with_all = ["dry_run", "mbox", "read_recipients", "recipients"])]
    check: bool,

    /// Print the envelope and the message as it would be sent; connect to nothing
    #[arg(long, short = 'n')]
    dry_run: bool,

    /// AUTH mechanism (default: PLAIN, else LOGIN; XOAUTH2 with --oauth-token-command)
    #[arg(long, value_name = "MECH", value_enum)]
    auth: Option<Auth>,

    /// Per-message report on stdout: "json" gives one JSON object per message
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = Report::Text)]
    report: Report,

    /// With --mbox, no line for messages that were sent and no progress display
    #[arg(short, long)]
    quiet: bool,

    /// Ignored (sendmail's "a lone dot does not end the message"; it never does here)
    #[arg(short = 'i', hide = true)]
    ignore_dots: bool,

    #[command(flatten)]
    server: ServerArgs,
}

/// `--auth`: the SASL mechanisms smtp-send speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Auth {
    Plain,
    Login,
    Xoauth2,
}

impl Auth {
    fn mechanism(self) -> Mechanism {
        match self {
            Auth::Plain => Mechanism::Plain,
            Auth::Login => Mechanism::Login,
            Auth::Xoauth2 => Mechanism::Xoauth2,
        }
    }
}

/// `--report`: how each message's outcome is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Report {
    /// Lines on stderr.
    Text,
    /// One JSON object per message on stdout.
    Json,
}

fn main() -> ExitCode {
    mailpipe::cli::main_with::<Args>(TOOL, run)
}

fn run(args: Args) -> Result<(), Error> {
    let mechanism = args.auth.map(Auth::mechanism);
    if args.check {
        let endpoint = args.server.resolve(Protocol::Smtp)?;
        return check(&endpoint, mechanism, args.report == Report::Json);
    }
    let options = Options {
        envelope: EnvelopeArgs {
            from: args.from.clone(),
            recipients: args.recipients.clone(),
            read_recipients: args.read_recipients,
        },
        partial: args.partial,
        dead_letter: args.dead_letter.clone(),
        json: args.report == Report::Json,
        quiet: args.quiet,
        batch: args.mbox,
    };
    let endpoint = args.server.resolve(Protocol::Smtp);
    if args.mbox {
        if args.dry_run {
            return Err(Error::usage("--dry-run does not take --mbox"));
        }
        let stdin = std::io::stdin().lock();
        return batch::send_mbox(stdin, endpoint, mechanism, &options);
    }
    let mut raw = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut raw)
        .map_err(|e| Error::io("reading stdin", e))?;
    if raw.is_empty() {
        return Err(Error::no_input("no message on stdin"));
    }
    if args.dry_run {
        let prepared = deliver::prepare(&raw, &options, endpoint.as_ref().ok())?;
        return dry_run(&prepared);
    }
    let prepared = match deliver::prepare(&raw, &options, endpoint.as_ref().ok()) {
        Ok(p) => p,
        Err(e) => return fail(&raw, None, &e, &options),
    };
    let endpoint = match endpoint {
        Ok(e) => e,
        Err(e) => return fail(&raw, Some(&prepared), &e, &options),
    };
    let sent = endpoint.tls_config().and_then(|config| {
        let open = || Session::open(&endpoint, &config, mechanism);
        let (transaction, session) = deliver::send(open()?, &open, &prepared, &options)?;
        if let Some(session) = session {
            session.quit();
        }
        Ok(transaction)
    });
    let sent = sent.map_err(|e| e.context_once(&endpoint.url));
    match deliver::finish(1, &raw, Some(&prepared), sent.as_ref(), &options)? {
        None => Ok(()),
        Some(e) if sent.is_ok() => Err(e.context_once(&endpoint.url)),
        Some(e) => Err(e),
    }
}

/// A message that could not even be tried: report it, and keep it.
fn fail(
    raw: &[u8],
    prepared: Option<&deliver::Prepared>,
    e: &Error,
    options: &Options,
) -> Result<(), Error> {
    match deliver::finish(1, raw, prepared, Err(e), options)? {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `--dry-run`: the envelope as SMTP commands, a blank line, the message.
fn dry_run(prepared: &deliver::Prepared) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    let sender = prepared
        .envelope
        .sender
        .as_ref()
        .map_or(String::new(), |a| a.to_string());
    let mut text = format!("MAIL FROM:<{sender}>\n");
    for r in &prepared.envelope.recipients {
        text.push_str(&format!("RCPT TO:<{r}>\n"));
    }
    text.push('\n');
    out.write_all(text.as_bytes())
        .and_then(|()| out.write_all(&prepared.data))
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing stdout", e))
}

/// `--check`: what the server offers, and whether we can log in.
fn check(endpoint: &Endpoint, mechanism: Option<Mechanism>, json: bool) -> Result<(), Error> {
    let config = endpoint.tls_config()?;
    let with_url = |e: Error| e.context_once(&endpoint.url);
    let mut session = Session::open(endpoint, &config, mechanism).map_err(with_url)?;
    let noop = session.noop().map_err(with_url)?;
    let tls = session.tls_description();
    let extensions = session.extensions();
    let auth = session.offered_auth();
    let authenticated = session
        .authenticated
        .as_ref()
        .map(|(login, m)| format!("{login} ({m})"));
    let text = if json {
        serde_json::json!({
            "server": endpoint.url.to_string(),
            "greeting": session.greeting.summary(),
            "tls": tls,
            "extensions": extensions,
            "auth": auth.as_deref().map(|a| a.split_whitespace().collect::<Vec<_>>()),
            "size": session.size_limit,
            "authenticated": authenticated,
            "noop": noop.summary(),
        })
        .to_string()
            + "\n"
    } else {
        let mut text = format!("server: {}\n", endpoint.url);
        text.push_str(&format!("greeting: {}\n", session.greeting.summary()));
        text.push_str(&format!(
            "tls: {}\n",
            tls.as_deref().unwrap_or("none (plaintext)")
        ));
        text.push_str(&format!("extensions: {}\n", extensions.join(", ")));
        text.push_str(&format!(
            "auth: {}\n",
            auth.as_deref().unwrap_or("none offered")
        ));
        text.push_str(&format!(
            "size: {}\n",
            session
                .size_limit
                .map_or("no limit given".to_string(), |n| n.to_string())
        ));
        text.push_str(&format!(
            "authenticated: {}\n",
            authenticated
                .as_deref()
                .unwrap_or("no (no user configured)")
        ));
        text.push_str(&format!("noop: {}\n", noop.summary()));
        text
    };
    session.quit();
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing stdout", e))
}
