//! The one error type of mailpipe: a message and the sysexits code it ends the
//! process with (the same table as msmtp), and the `main` wrapper every tool uses.

use std::fmt;
use std::io;
use std::process::ExitCode;

/// sysexits(3) codes, as msmtp and sendmail use them, so that cron wrappers and
/// queue scripts that already know those codes understand ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Exit {
    /// 64: the command line was wrong.
    Usage = 64,
    /// 65: the input data was wrong (a message that does not parse, a bad header).
    Data = 65,
    /// 66: an input file did not exist or could not be read; smtp-send: no message on stdin.
    NoInput = 66,
    /// 67: a recipient or user does not exist.
    NoUser = 67,
    /// 68: a host name did not resolve.
    NoHost = 68,
    /// 69: a service was unavailable (connection refused, TLS failed).
    Unavailable = 69,
    /// 70: a bug in mailpipe.
    Software = 70,
    /// 71: the system refused a resource (threads could not be started).
    OsErr = 71,
    /// 74: reading or writing failed.
    Io = 74,
    /// 75: a temporary failure; try again later (4xx replies, timeouts).
    TempFail = 75,
    /// 76: the peer broke the protocol.
    Protocol = 76,
    /// 77: permission denied, authentication failed.
    NoPerm = 77,
    /// 78: the configuration (accounts file, flags together) is wrong.
    Config = 78,
}

impl Exit {
    /// The numeric status the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An error that knows how the process should end.
///
/// `Display` is the one line printed after `tool: `; the code follows in
/// parentheses so that a user reading a cron mail can look it up.
#[derive(Debug)]
pub struct Error {
    exit: Exit,
    message: String,
    broken_pipe: bool,
}

impl Error {
    pub fn new(exit: Exit, message: impl Into<String>) -> Error {
        Error {
            exit,
            message: one_line(message.into()),
            broken_pipe: false,
        }
    }

    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(Exit::Usage, message)
    }

    pub fn data(message: impl Into<String>) -> Error {
        Error::new(Exit::Data, message)
    }

    pub fn no_input(message: impl Into<String>) -> Error {
        Error::new(Exit::NoInput, message)
    }

    pub fn config(message: impl Into<String>) -> Error {
        Error::new(Exit::Config, message)
    }

    pub fn protocol(message: impl Into<String>) -> Error {
        Error::new(Exit::Protocol, message)
    }

    /// An I/O error with what was being done, e.g. `io("reading stdin", e)`.
    /// A closed pipe is remembered so that `main` can end quietly.
    pub fn io(context: impl fmt::Display, err: io::Error) -> Error {
        let mut e = Error::new(Exit::Io, format!("{context}: {}", describe_io(&err)));
        e.broken_pipe = err.kind() == io::ErrorKind::BrokenPipe;
        e
    }

    /// The system refused a resource, e.g. `os("cannot start 8 threads", e)`.
    pub fn os(context: impl fmt::Display, err: &io::Error) -> Error {
        Error::new(Exit::OsErr, format!("{context}: {}", describe_io(err)))
    }

    pub fn exit(&self) -> Exit {
        self.exit
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when stdout's reader went away (`| head`): not a failure to report.
    pub fn is_broken_pipe(&self) -> bool {
        self.broken_pipe
    }

    /// The same error with more context in front: `context: message`.
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        self.message = one_line(format!("{context}: {}", self.message));
        self
    }

    /// `context` in front unless the message already names it: the errors of
    /// `Endpoint` (password, login, plaintext AUTH) name the server
    /// themselves, and a tool that prefixes every error with the server must
    /// not name it twice.
    pub fn context_once(self, context: impl fmt::Display) -> Error {
        let context = context.to_string();
        if self.message.contains(&context) {
            self
        } else {
            self.context(context)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.exit.code())
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        let mut e = Error::new(Exit::Io, describe_io(&err));
        e.broken_pipe = err.kind() == io::ErrorKind::BrokenPipe;
        e
    }
}

/// Rust's io::Error Display adds "(os error 2)"; users want the strerror text only.
fn describe_io(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Diagnostics are one line: a server reply or a nested error must not break
/// that, and control characters from a hostile peer must not reach the terminal.
fn one_line(text: String) -> String {
    if !text.chars().any(|c| c.is_control()) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut last_space = false;
    for c in text.chars() {
        if c == '\r' || c == '\n' || c == '\t' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else if c.is_control() {
            out.push('?');
            last_space = false;
        } else {
            out.push(c);
            last_space = c == ' ';
        }
    }
    out.trim_end().to_string()
}

/// Runs a tool's `run` and turns its outcome into the process status:
/// success is 0, a closed stdout ends quietly with 0 (as ripgrep does), and any
/// other error is printed once as `tool: message (code)` on stderr.
pub fn run_main(tool: &str, run: impl FnOnce() -> Result<(), Error>) -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            report(tool, &e);
            ExitCode::from(e.exit().code())
        }
    }
}

/// Prints `tool: message (code)` on stderr; used for the final error and for
/// non-fatal ones (one bad message in an mbox) that do not stop the run.
/// A progress display is cleared first, so the line stays whole.
pub fn report(tool: &str, err: &Error) {
    use std::io::Write;
    crate::progress::suspend(|| {
        let _ = writeln!(io::stderr().lock(), "{tool}: {err}");
    });
}

/// Remembers the worst outcome of a run that goes on past errors (mail2json over
/// a large mbox, smtp-send --mbox): the final status is the highest code seen.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    worst: Option<Exit>,
}

impl Outcome {
    pub fn record(&mut self, exit: Exit) {
        self.worst = Some(self.worst.map_or(exit, |w| w.max(exit)));
    }

    pub fn worst(&self) -> Option<Exit> {
        self.worst
    }

    /// `Ok` if nothing failed, else an error carrying the worst code.
    pub fn into_result(self, summary: impl Into<String>) -> Result<(), Error> {
        match self.worst {
            None => Ok(()),
            Some(exit) => Err(Error::new(exit, summary)),
        }
    }
}

/// The tools that talk to a server: they share the network codes 68-78.
const NET: &[&str] = &["smtp-send", "imap-dump", "pop3-dump"];
const ALL: &[&str] = &["mkmime", "smtp-send", "imap-dump", "pop3-dump", "mail2json"];

/// One status as a tool documents it: the tools it applies to and what it
/// means there. Per code, the first row naming the tool wins; a tool no row
/// names never ends with that code. A row naming no tool is the general
/// meaning, for README's table.
struct Row {
    code: u8,
    tools: &'static [&'static str],
    meaning: &'static str,
}

/// The exit statuses of every tool, written once: rendered into each tool's
/// `--help` and man page (`help_table`) and README's table (`markdown_table`).
const TABLE: &[Row] = &[
    Row { code: 0, tools: &[], meaning: "done (also when stdout was closed early, as in `| head`); mail2json on empty input: no message, no output, as `cat` and `jq` do" },
    Row { code: 0, tools: &["smtp-send"], meaning: "sent to every recipient" },
    Row { code: 0, tools: &["mail2json"], meaning: "done, also for empty input (no message, no output) and when stdout was closed early" },
    Row { code: 0, tools: &["imap-dump", "pop3-dump"], meaning: "done (also when stdout was closed early, as in `| head`, and when --max-bytes stopped the run: run again for the rest)" },
    Row { code: 0, tools: ALL, meaning: "done (also when stdout was closed early, as in `| head`)" },
    Row { code: 64, tools: &[], meaning: "the command line is wrong (mail2json: -j outside 1 to 256)" },
    Row { code: 64, tools: &["mail2json"], meaning: "the command line is wrong (also -j outside 1 to 256)" },
    Row { code: 64, tools: ALL, meaning: "the command line is wrong" },
    Row { code: 65, tools: &[], meaning: "a message or input that does not parse" },
    Row { code: 65, tools: &["mkmime"], meaning: "bad input: a header value with a line break, an address that does not parse (or whose domain has no IDNA form), text that is not UTF-8" },
    Row { code: 65, tools: &["smtp-send"], meaning: "bad message: no header block, NUL, a line over 998 bytes, over the server's SIZE, 8-bit data the server cannot take, a domain with no IDNA form" },
    Row { code: 65, tools: &["mail2json"], meaning: "some message could not be read as mail (the run goes on; a line on stderr each)" },
    Row { code: 65, tools: &["imap-dump", "pop3-dump"], meaning: "the --state file is not one this tool wrote" },
    Row { code: 66, tools: &[], meaning: "a file, a mailbox or the message on stdin is missing" },
    Row { code: 66, tools: &["mkmime"], meaning: "a file (--attach, --inline, --html) cannot be read" },
    Row { code: 66, tools: &["smtp-send"], meaning: "no message on stdin" },
    Row { code: 66, tools: &["imap-dump"], meaning: "no such mailbox" },
    Row { code: 66, tools: &["mail2json"], meaning: "an input is missing or cannot be read, or a maildir symlink dangles or loops (the rest is still converted)" },
    Row { code: 67, tools: &["smtp-send"], meaning: "a recipient was refused (5xx): nothing was sent, unless --partial; --flush: a queued message refused for good went to the outbox's dead/" },
    Row { code: 68, tools: NET, meaning: "the server name does not resolve" },
    Row { code: 69, tools: &["smtp-send"], meaning: "connection refused, TLS certificate not trusted or not for this host, STARTTLS not offered; a UTF-8 local part (envelope or header) and no SMTPUTF8, or --require-dsn and no DSN: nothing sent" },
    Row { code: 69, tools: NET, meaning: "connection refused, TLS certificate not trusted or not for this host, STARTTLS/STLS not offered" },
    Row { code: 70, tools: &["smtp-send", "imap-dump", "pop3-dump", "mail2json"], meaning: "a bug in mailpipe" },
    Row { code: 71, tools: &["mail2json"], meaning: "the system refused a resource: the threads could not start (a memory or process limit)" },
    Row { code: 74, tools: &[], meaning: "reading or writing failed (also --help into a full disk); imap-dump --state, pop3-dump --delete or --state: stdout is /dev/null or closed, or a pipe's reader left before reading everything (nothing deleted, the state unmoved)" },
    Row { code: 74, tools: &["imap-dump"], meaning: "writing the output or the state file failed; with --state, stdout is /dev/null or closed, or a pipe's reader left before reading everything (the state does not move)" },
    Row { code: 74, tools: &["pop3-dump"], meaning: "writing the output or the state file failed; with --delete or --state, stdout is /dev/null or closed, or a pipe's reader left before reading everything (nothing deleted, the state unmoved)" },
    Row { code: 74, tools: ALL, meaning: "reading or writing failed (also --help or --version into a full disk)" },
    Row { code: 75, tools: &[], meaning: "a 4xx reply, a timeout, a connection cut (even inside a reply), a POP3 maildrop in use ([IN-USE], [LOGIN-DELAY]), an --exec command that failed; imap-dump, pop3-dump: a server's limit (BYE, NO [LIMIT], -ERR [SYS/TEMP]) ends the export with what was whole written and in --state; run again later (to resume)" },
    Row { code: 75, tools: &["imap-dump"], meaning: "a timeout, a connection cut (even inside a reply), the server ending the session or refusing for now (* BYE, NO [LIMIT], [UNAVAILABLE], [OVERQUOTA], [INUSE]): whole messages only are written and --state names exactly them; the --exec command failed (the message is fetched again); run again to resume" },
    Row { code: 75, tools: &["pop3-dump"], meaning: "a timeout, a connection cut (even inside a message; nothing partial is written), a temporary refusal ([SYS/TEMP]) or a maildrop in use ([IN-USE], [LOGIN-DELAY]): --state names exactly what was written; the --exec command failed (the message is fetched again); run again to resume" },
    Row { code: 75, tools: NET, meaning: "a 4xx reply, a timeout, a connection cut (even inside a reply; nothing partial is written); --flush: a message kept for later; run again later" },
    Row { code: 76, tools: &["pop3-dump"], meaning: "the server broke the protocol (a garbled or endless reply) or refused a message" },
    Row { code: 76, tools: NET, meaning: "the server broke the protocol (a garbled, oversized or endless reply)" },
    Row { code: 77, tools: &[], meaning: "authentication failed (an OAuth token: refused again after one refresh); imap-dump: a mailbox refused as \"Unsafe Login\" (NetEase) when no IMAP ID was sent, SASL-IR refused (--no-sasl-ir)" },
    Row { code: 77, tools: &["imap-dump"], meaning: "authentication failed (an OAuth token: refused again after one refresh), a mailbox refused as \"Unsafe Login\" (NetEase 163/126) when no IMAP ID was sent (--id, --no-id), or an initial response refused by a server that lists SASL-IR (--no-sasl-ir)" },
    Row { code: 77, tools: NET, meaning: "authentication failed" },
    Row { code: 78, tools: NET, meaning: "the accounts file, a password source, flags together, credentials over plaintext" },
];

/// What a run over many messages ends with, for the tools that go on past errors.
const WORST: &[(&str, &str)] = &[
    (
        "smtp-send",
        "With --mbox, the highest code of all messages.",
    ),
    ("mail2json", "Over several messages, the highest code seen."),
];

/// Width of the `--help` table: clap would re-wrap longer lines without the indent.
const WIDTH: usize = 79;

impl Exit {
    /// Every code, in order.
    pub const ALL: [Exit; 13] = [
        Exit::Usage,
        Exit::Data,
        Exit::NoInput,
        Exit::NoUser,
        Exit::NoHost,
        Exit::Unavailable,
        Exit::Software,
        Exit::OsErr,
        Exit::Io,
        Exit::TempFail,
        Exit::Protocol,
        Exit::NoPerm,
        Exit::Config,
    ];

    /// The short name of the code, as sysexits(3) has it without `EX_`.
    pub fn name(self) -> &'static str {
        match self {
            Exit::Usage => "usage",
            Exit::Data => "data",
            Exit::NoInput => "noinput",
            Exit::NoUser => "nouser",
            Exit::NoHost => "nohost",
            Exit::Unavailable => "unavailable",
            Exit::Software => "software",
            Exit::OsErr => "oserr",
            Exit::Io => "ioerr",
            Exit::TempFail => "tempfail",
            Exit::Protocol => "protocol",
            Exit::NoPerm => "noperm",
            Exit::Config => "config",
        }
    }
}

fn code_name(code: u8) -> &'static str {
    Exit::ALL
        .iter()
        .find(|e| e.code() == code)
        .map_or("ok", |e| e.name())
}

/// The codes `tool` can end with and what each means for it, in order.
pub fn statuses(tool: &str) -> Vec<(u8, &'static str, &'static str)> {
    let mut out: Vec<(u8, &'static str, &'static str)> = Vec::new();
    for row in TABLE {
        let seen = out.last().is_some_and(|&(code, _, _)| code == row.code);
        if !seen && row.tools.contains(&tool) {
            out.push((row.code, code_name(row.code), row.meaning));
        }
    }
    out
}

/// The `Exit status:` section of `tool`'s `--help` (and so of its man page).
pub fn help_table(tool: &str) -> String {
    let mut text = String::from("Exit status:");
    for (code, name, meaning) in statuses(tool) {
        let mut line = format!("\n  {code:>2}  {name:<11} ");
        let indent = line.len() - 1;
        for word in meaning.split(' ') {
            if line.len() + 1 + word.len() > WIDTH + 1 && line.len() > indent + 1 {
                text.push_str(&line);
                line = format!("\n{:indent$}", "");
            }
            line.push(' ');
            line.push_str(word);
        }
        text.push_str(&line);
    }
    for (_, note) in WORST.iter().filter(|(t, _)| *t == tool) {
        text.push_str(&format!("\n  {note}"));
    }
    text
}

/// `examples`, a blank line and the exit-status table: a tool's `after_help`.
pub fn after_help(examples: &str, tool: &str) -> String {
    format!("{examples}\n\n{}", help_table(tool))
}

/// README's table: every code once, with the general meaning and which tools
/// return it (what a tool means in particular is in its `--help`).
pub fn markdown_table() -> String {
    let mut text = String::from("| code | name | tools | meaning |\n|---|---|---|---|\n");
    let mut codes: Vec<u8> = TABLE.iter().map(|r| r.code).collect();
    codes.dedup();
    for code in codes {
        let tools: Vec<&str> = ALL
            .iter()
            .copied()
            .filter(|t| statuses(t).iter().any(|s| s.0 == code))
            .collect();
        // The general meaning: the row that covers the most tools.
        let meaning = TABLE
            .iter()
            .filter(|r| r.code == code)
            .max_by_key(|r| (r.tools.is_empty(), r.tools.len()))
            .map_or("", |r| r.meaning);
        let tools = if tools.len() == ALL.len() {
            "all".to_string()
        } else {
            tools.join(", ")
        };
        let meaning = meaning.replace('|', "\\|");
        text.push_str(&format!(
            "| {code} | {} | {tools} | {meaning} |\n",
            code_name(code)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_code() {
        let e = Error::new(Exit::TempFail, "451 4.3.0 try later\r\nsecond line\x1b[31m");
        assert_eq!(e.to_string(), "451 4.3.0 try later second line?[31m (75)");
    }

    #[test]
    fn io_errors_drop_os_error_suffix_and_flag_broken_pipe() {
        let e = Error::io("writing stdout", io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(e.is_broken_pipe());
        assert_eq!(e.exit(), Exit::Io);
        let e = Error::from(io::Error::from_raw_os_error(2));
        assert_eq!(e.message(), "No such file or directory");
        assert!(!e.is_broken_pipe());
    }

    #[test]
    fn context_prefixes() {
        let e = Error::data("bad header").context("message 3");
        assert_eq!(e.message(), "message 3: bad header");
        assert_eq!(e.exit().code(), 65);
    }

    #[test]
    fn context_once_does_not_repeat_itself() {
        let e = Error::config("smtp://h:25: refusing").context_once("smtp://h:25");
        assert_eq!(e.message(), "smtp://h:25: refusing");
        let e = Error::config("refusing").context_once("smtp://h:25");
        assert_eq!(e.message(), "smtp://h:25: refusing");
    }

    #[test]
    fn outcome_keeps_worst() {
        let mut o = Outcome::default();
        assert!(o.into_result("x").is_ok());
        o.record(Exit::NoUser);
        o.record(Exit::TempFail);
        o.record(Exit::Data);
        assert_eq!(o.worst(), Some(Exit::TempFail));
        assert_eq!(
            o.into_result("2 failed").expect_err("failed").exit().code(),
            75
        );
    }

    #[test]
    fn every_tool_documents_success_usage_and_io() {
        for tool in ALL {
            let codes: Vec<u8> = statuses(tool).iter().map(|s| s.0).collect();
            for code in [0, 64, 74] {
                assert!(codes.contains(&code), "{tool} lacks {code}");
            }
            assert!(codes.windows(2).all(|w| w[0] < w[1]), "{tool}: {codes:?}");
        }
        let names: Vec<&str> = Exit::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names.len(), 13);
    }

    #[test]
    fn per_tool_meanings_win_over_general_ones() {
        let pop = help_table("pop3-dump");
        assert!(pop.starts_with("Exit status:\n   0  ok "), "{pop}");
        assert!(
            pop.contains(
                "  76  protocol     the server broke the protocol (a garbled or endless reply)\n\
                 \x20                  or refused a message\n"
            ),
            "{pop}"
        );
        assert!(!pop.contains("  67 "), "{pop}");
        let smtp = help_table("smtp-send");
        assert!(
            smtp.contains("   0  ok           sent to every recipient\n"),
            "{smtp}"
        );
        assert!(smtp.contains("  67  nouser "), "{smtp}");
        assert!(
            smtp.ends_with("\n  With --mbox, the highest code of all messages."),
            "{smtp}"
        );
        for tool in ALL {
            let table = help_table(tool);
            assert!(table.lines().all(|l| l.chars().count() <= WIDTH), "{table}");
        }
        let mkmime = help_table("mkmime");
        for absent in ["  68 ", "  69 ", "  75 ", "  77 ", "  78 "] {
            assert!(!mkmime.contains(absent), "{mkmime}");
        }
    }

    /// README's exit-code table is `markdown_table()`, not a second copy.
    #[test]
    fn readme_has_the_rendered_table() {
        let readme = include_str!("../../../README.md");
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's exit-code table is out of date; replace it with:\n{table}"
        );
    }
}
