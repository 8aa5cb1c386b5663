//! The built tools, found in one place, and commands that run them with
//! nothing of the machine's (no accounts file, no password variables, no
//! ~/.netrc), so that a test sees only what it gives.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use crate::Stack;

/// One of the workspace's binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Mkmime,
    SmtpSend,
    ImapDump,
    Pop3Dump,
    Mail2json,
}

impl Tool {
    /// The tools that talk to a server.
    pub const NETWORK: [Tool; 3] = [Tool::SmtpSend, Tool::ImapDump, Tool::Pop3Dump];

    /// The binary's name, which is also how it starts its error lines.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Mkmime => "mkmime",
            Tool::SmtpSend => "smtp-send",
            Tool::ImapDump => "imap-dump",
            Tool::Pop3Dump => "pop3-dump",
            Tool::Mail2json => "mail2json",
        }
    }

    /// The tool of that binary name.
    pub fn named(name: &str) -> Tool {
        [
            Tool::Mkmime,
            Tool::SmtpSend,
            Tool::ImapDump,
            Tool::Pop3Dump,
            Tool::Mail2json,
        ]
        .into_iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("{name} is not a mailpipe tool"))
    }

    /// The built binary, next to the running test's profile (debug or
    /// release, any CARGO_TARGET_DIR). Panics with the command to build it.
    pub fn path(self) -> PathBuf {
        let path = crate::profile_dir().join(self.name());
        assert!(
            path.exists(),
            "{} is missing: run `cargo build --workspace` first (scripts/test does)",
            path.display()
        );
        path
    }

    /// The environment variable the tool reads its password from.
    pub fn password_env(self) -> &'static str {
        match self {
            Tool::SmtpSend => "SMTP_PASSWORD",
            Tool::ImapDump => "IMAP_PASSWORD",
            Tool::Pop3Dump => "POP3_PASSWORD",
            Tool::Mkmime | Tool::Mail2json => {
                panic!("{} reads no password", self.name())
            }
        }
    }

    /// The URL schemes of its server: (STARTTLS or plaintext, implicit TLS).
    pub fn schemes(self) -> (&'static str, &'static str) {
        match self {
            Tool::SmtpSend => ("smtp", "smtps"),
            Tool::ImapDump => ("imap", "imaps"),
            Tool::Pop3Dump => ("pop3", "pop3s"),
            Tool::Mkmime | Tool::Mail2json => panic!("{} has no server", self.name()),
        }
    }

    /// The tool, isolated: no accounts file, no password variable of the
    /// shell, HOME and NETRC pointing nowhere (set HOME again to give one).
    pub fn command(self) -> Command {
        let mut cmd = Command::new(self.path());
        isolate(&mut cmd);
        cmd
    }

    /// [`Tool::command`] run by another program (`/usr/bin/time -f %M`,
    /// `strace`...): `wrapper ARGS... TOOL`, isolated the same way.
    pub fn wrapped<S: AsRef<OsStr>>(self, wrapper: &[S]) -> Command {
        let (program, args) = wrapper.split_first().expect("a wrapper program");
        let mut cmd = Command::new(program);
        cmd.args(args).arg(self.path());
        isolate(&mut cmd);
        cmd
    }
}

/// No accounts file, no password variable of the shell, HOME and NETRC
/// pointing nowhere.
fn isolate(cmd: &mut Command) {
    for var in [
        "MAILPIPE_CONFIG",
        "MAILPIPE_PASSWORD",
        "SMTP_PASSWORD",
        "IMAP_PASSWORD",
        "POP3_PASSWORD",
        "XDG_CONFIG_HOME",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", "/nonexistent").env("NETRC", "/nonexistent");
}

impl Stack {
    /// `scheme://localhost:port`: localhost is the name in the stack's certificate.
    pub fn url(&self, scheme: &str, port: u16) -> String {
        format!("{scheme}://localhost:{port}")
    }

    /// The stack's implicit-TLS port for a network tool.
    pub fn tls_port(&self, tool: Tool) -> u16 {
        match tool {
            Tool::SmtpSend => self.smtps_port,
            Tool::ImapDump => self.imaps_port,
            Tool::Pop3Dump => self.pop3s_port,
            Tool::Mkmime | Tool::Mail2json => panic!("{} has no server", tool.name()),
        }
    }

    /// The stack's STARTTLS port for a network tool (its greeting is plaintext).
    pub fn starttls_port(&self, tool: Tool) -> u16 {
        match tool {
            Tool::SmtpSend => self.submission_port,
            Tool::ImapDump => self.imap_port,
            Tool::Pop3Dump => self.pop3_port,
            Tool::Mkmime | Tool::Mail2json => panic!("{} has no server", tool.name()),
        }
    }

    /// A port where `--tls none --allow-plaintext-auth` logs in (loopback is
    /// trusted): Postfix's plain port offers AUTH, Dovecot's STARTTLS ports do.
    pub fn plaintext_auth_port(&self, tool: Tool) -> u16 {
        match tool {
            Tool::SmtpSend => self.smtp_plain_port,
            other => self.starttls_port(other),
        }
    }

    /// `tool --server URL --user USER --ca-file CA`, isolated; no password yet.
    pub fn client(&self, tool: Tool, url: &str, user: &str) -> Command {
        let mut cmd = tool.command();
        cmd.arg("--server")
            .arg(url)
            .args(["--user", user])
            .arg("--ca-file")
            .arg(&self.ca_file);
        cmd
    }

    /// `tool` at `url` as the stack's first user (alice), her password in
    /// the tool's variable, with --timeout=20 (generous on a loaded machine).
    pub fn user1(&self, tool: Tool, url: &str) -> Command {
        let mut cmd = self.login(tool, url, &self.user1, &self.pass1);
        cmd.arg("--timeout=20");
        cmd
    }

    /// [`Stack::client`] with `pass` in the tool's password variable (never in argv).
    pub fn login(&self, tool: Tool, url: &str, user: &str, pass: &str) -> Command {
        let mut cmd = self.client(tool, url, user);
        cmd.env(tool.password_env(), pass);
        cmd
    }
}
