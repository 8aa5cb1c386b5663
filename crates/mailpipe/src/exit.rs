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
}
