//! `--exec CMD`: handing each message to a command, one process per message,
//! as fetchmail, getmail and mpop hand mail to an MDA (procmail, maildrop).
//! The dumpers advance their state past a message only when its command
//! exited 0, so a failing command never loses mail: the message is fetched
//! again next time.
//!
//! The command runs as `sh -c CMD` with the message on stdin, exactly the
//! bytes the server holds (no From_ line, no mboxrd quoting), the
//! `MAILPIPE_*` variables describing it in its environment, and our stdout
//! and stderr as its own.

use std::io::{self, Write};
use std::process::{Command, ExitStatus, Stdio};

use crate::exit::{Error, Exit};

/// `--exec CMD` of a run: the command, and what its variables say about the
/// account, the same for every message.
#[derive(Debug, Clone)]
pub struct Target {
    pub command: String,
    /// `user@host`: MAILPIPE_ACCOUNT.
    pub account: String,
    /// The server URL: MAILPIPE_SERVER.
    pub server: String,
}

impl Target {
    /// The variables every message of `tool` starts with: MAILPIPE_TOOL,
    /// MAILPIPE_ACCOUNT, MAILPIPE_SERVER.
    pub fn delivery(&self, tool: &'static str) -> Delivery {
        Delivery::default()
            .var("TOOL", tool)
            .var("ACCOUNT", &self.account)
            .var("SERVER", &self.server)
    }

    /// Runs the command on one message (see `run`).
    pub fn run(&self, message: &[u8], delivery: &Delivery, what: &str) -> Result<(), Error> {
        crate::progress::suspend(|| run(&self.command, message, delivery, what))
    }
}

/// What the command learns about one message, as environment variables.
#[derive(Debug, Default, Clone)]
pub struct Delivery {
    /// `MAILPIPE_*` names without the prefix (`UID`, `SIZE`), and values.
    vars: Vec<(&'static str, String)>,
    /// `SENDER`, as getmail and maildrop set it: the envelope sender.
    sender: Option<String>,
}

impl Delivery {
    /// Adds `MAILPIPE_<name>=value`.
    pub fn var(mut self, name: &'static str, value: impl ToString) -> Delivery {
        self.vars.push((name, value.to_string()));
        self
    }

    /// The envelope sender, as the From_ line gives it: `MAILPIPE_SENDER`
    /// and, as getmail and maildrop set it, `SENDER`.
    pub fn sender(mut self, sender: &str) -> Delivery {
        self.sender = Some(sender.to_string());
        self.var("SENDER", sender)
    }
}

/// Runs `sh -c command` with `message` on its stdin and `delivery`'s
/// variables, and waits for it. `what` names the message in the error
/// ("UID 7 in INBOX"). Anything but exit status 0 is an error (75: the
/// message was not delivered; run again).
pub fn run(command: &str, message: &[u8], delivery: &Delivery, what: &str) -> Result<(), Error> {
    let failed = |detail: String| {
        Error::new(
            Exit::TempFail,
            format!(
                "--exec command failed for {what}: {detail}; the message was not counted as \
                 done and is fetched again next time"
            ),
        )
    };
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    for (name, value) in &delivery.vars {
        cmd.env(format!("MAILPIPE_{name}"), value);
    }
    if let Some(sender) = &delivery.sender {
        cmd.env("SENDER", sender);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("cannot start sh: {}", Error::from(e).message())))?;
    // Its stdout and stderr are ours, not pipes we read: writing the whole
    // message before waiting cannot deadlock. A command that exits without
    // reading it all (EPIPE) is judged by its exit status alone.
    let written = match child.stdin.take() {
        Some(mut stdin) => match stdin.write_all(message).and_then(|()| stdin.flush()) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
            _ => Ok(()),
        },
        None => Ok(()),
    };
    let status = child
        .wait()
        .map_err(|e| failed(format!("waiting for it: {}", Error::from(e).message())))?;
    if !status.success() {
        return Err(failed(describe(status)));
    }
    written.map_err(|e| failed(format!("writing its stdin: {}", Error::from(e).message())))
}

/// "exit status 3" or "killed by signal 9 (SIGKILL)".
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(signal) => {
            let name = match signal {
                1 => " (SIGHUP)",
                2 => " (SIGINT)",
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                13 => " (SIGPIPE)",
                15 => " (SIGTERM)",
                _ => "",
            };
            format!("killed by signal {signal}{name}")
        }
        None => format!("{status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery::default()
            .var("UID", 7)
            .var("MAILBOX", "INBOX")
            .sender("a@example.org")
    }

    #[test]
    fn the_command_reads_the_bytes_and_the_variables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let message = b"Subject: x\r\n\r\nFrom here\r\n".repeat(10_000);
        let command = format!(
            "cat > {0}; printf '%s %s %s %s' \"$MAILPIPE_UID\" \"$MAILPIPE_MAILBOX\" \
             \"$MAILPIPE_SENDER\" \"$SENDER\" > {0}.env",
            out.display()
        );
        run(&command, &message, &delivery(), "UID 7").expect("ran");
        assert_eq!(std::fs::read(&out).expect("read"), message);
        let env = std::fs::read_to_string(dir.path().join("out.env")).expect("env");
        assert_eq!(env, "7 INBOX a@example.org a@example.org");
    }

    #[test]
    fn a_failure_names_the_message_and_the_status() {
        let e = run(
            "cat >/dev/null; exit 3",
            b"x\n",
            &delivery(),
            "UID 7 in INBOX",
        )
        .expect_err("fails");
        assert_eq!(e.exit(), Exit::TempFail);
        assert!(e.message().contains("UID 7 in INBOX"), "{e}");
        assert!(e.message().contains("exit status 3"), "{e}");
        let e = run("kill -9 $$", b"x\n", &delivery(), "UID 8").expect_err("killed");
        assert!(e.message().contains("killed by signal 9 (SIGKILL)"), "{e}");
    }

    #[test]
    fn a_command_that_does_not_read_is_judged_by_its_status() {
        let big = vec![b'x'; 4 << 20];
        run("exit 0", &big, &delivery(), "UID 1").expect("exit 0 is delivered");
        assert!(run("exit 1", &big, &delivery(), "UID 1").is_err());
    }
}
