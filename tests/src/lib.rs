//! What tests across the workspace share: the running mail stack
//! (`scripts/mailstack env DIR` exports it) and a runner for the built tools.
//!
//! Tests that need the stack call [`Stack::get`]; when the environment is not
//! set they fail with a message that says how to start it. They never skip.
//! A tool is run as [`Tool::command`] (isolated) or [`Stack::login`] (aimed at
//! the stack, trusting its CA), from every test crate of the workspace.

pub mod fault_proxy;
pub mod link;
pub mod mail;
pub mod maildrop;
pub mod oauth;
pub mod peer;
mod tool;

pub use tool::Tool;

use std::io::Read;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The servers `scripts/mailstack` runs, as its `env` command exports them.
#[derive(Debug, Clone)]
pub struct Stack {
    pub dir: PathBuf,
    pub host: String,
    pub domain: String,
    /// PEM of the throwaway CA that signed the servers' certificate.
    pub ca_file: PathBuf,
    pub smtps_port: u16,
    pub submission_port: u16,
    pub smtp_plain_port: u16,
    /// Like `smtp_plain_port`, but Postfix ends the session with 421 after 2
    /// refused commands (smtpd_hard_error_limit=2).
    pub smtp_errlimit_port: u16,
    /// Like `smtps_port`, without PIPELINING; without CHUNKING; without
    /// either (Postfix's smtpd_discard_ehlo_keywords).
    pub smtps_nopipe_port: u16,
    pub smtps_nochunk_port: u16,
    pub smtps_basic_port: u16,
    /// Like `smtp_plain_port`, without SMTPUTF8 (smtputf8_enable=no).
    pub smtp_noutf8_port: u16,
    /// Like `smtp_plain_port`, without DSN in the EHLO reply.
    pub smtp_nodsn_port: u16,
    /// Like `smtp_plain_port`, without CHUNKING: messages go by DATA.
    pub smtp_nochunk_plain_port: u16,
    pub imap_port: u16,
    pub imaps_port: u16,
    pub pop3_port: u16,
    pub pop3s_port: u16,
    /// Ports that present the second, untrusted certificate.
    pub untrusted_smtps_port: u16,
    pub untrusted_imaps_port: u16,
    pub untrusted_pop3s_port: u16,
    pub user1: String,
    pub pass1: String,
    pub user2: String,
    /// Non-ASCII on purpose.
    pub pass2: String,
    /// A recipient Postfix refuses with 5xx, and one it defers with 4xx.
    pub reject_rcpt: String,
    pub defer_rcpt: String,
    /// A mailbox with a UTF-8 local part (`张三@` the domain), and its password.
    pub user3: String,
    pub pass3: String,
    /// `xn--fsqu00a.xn--fiqs8s` (例子.中国): `user@` it is an alias of user1,
    /// `张三@` it of user3.
    pub idn_domain: String,
    /// Mail to any address in this domain is accepted and then waits in the
    /// queue (its next hop is down): a delayed-delivery DSN.
    pub defer_queue_domain: String,
    /// Accepted at RCPT, then refused by Dovecot as an unknown user: a failure DSN.
    pub bounce_rcpt: String,
    /// Dovecot's configuration, for `doveadm -c` in tests.
    pub dovecot_conf: PathBuf,
    /// `<maildir_root>/<user>/Maildir` holds a user's mail.
    pub maildir_root: PathBuf,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: this test needs the mail stack. Start it with \
             `scripts/mailstack start DIR && eval \"$(scripts/mailstack env DIR)\"`, \
             or run `scripts/test`, which does both"
        )
    })
}

fn port(name: &str) -> u16 {
    var(name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a port number"))
}

impl Stack {
    /// The stack from the environment; panics (fails the test) when it is absent.
    pub fn get() -> Stack {
        Stack {
            dir: var("MAILSTACK_DIR").into(),
            host: var("MAILSTACK_HOST"),
            domain: var("MAILSTACK_DOMAIN"),
            ca_file: var("MAILSTACK_CA").into(),
            smtps_port: port("MAILSTACK_SMTPS_PORT"),
            submission_port: port("MAILSTACK_SUBMISSION_PORT"),
            smtp_plain_port: port("MAILSTACK_SMTP_PORT"),
            smtp_errlimit_port: port("MAILSTACK_SMTP_ERRLIMIT_PORT"),
            smtps_nopipe_port: port("MAILSTACK_SMTP_NOPIPE_PORT"),
            smtps_nochunk_port: port("MAILSTACK_SMTP_NOCHUNK_PORT"),
            smtps_basic_port: port("MAILSTACK_SMTP_PLAIN_PORT"),
            smtp_noutf8_port: port("MAILSTACK_SMTP_NOUTF8_PORT"),
            smtp_nodsn_port: port("MAILSTACK_SMTP_NODSN_PORT"),
            smtp_nochunk_plain_port: port("MAILSTACK_SMTP_NOCHUNK_PLAIN_PORT"),
            imap_port: port("MAILSTACK_IMAP_PORT"),
            imaps_port: port("MAILSTACK_IMAPS_PORT"),
            pop3_port: port("MAILSTACK_POP3_PORT"),
            pop3s_port: port("MAILSTACK_POP3S_PORT"),
            untrusted_smtps_port: port("MAILSTACK_UNTRUSTED_SMTPS_PORT"),
            untrusted_imaps_port: port("MAILSTACK_UNTRUSTED_IMAPS_PORT"),
            untrusted_pop3s_port: port("MAILSTACK_UNTRUSTED_POP3S_PORT"),
            user1: var("MAILSTACK_USER1"),
            pass1: var("MAILSTACK_PASS1"),
            user2: var("MAILSTACK_USER2"),
            pass2: var("MAILSTACK_PASS2"),
            reject_rcpt: var("MAILSTACK_REJECT_RCPT"),
            defer_rcpt: var("MAILSTACK_DEFER_RCPT"),
            user3: var("MAILSTACK_USER3"),
            pass3: var("MAILSTACK_PASS3"),
            idn_domain: var("MAILSTACK_IDN_DOMAIN"),
            defer_queue_domain: var("MAILSTACK_DEFER_QUEUE_DOMAIN"),
            bounce_rcpt: var("MAILSTACK_BOUNCE_RCPT"),
            dovecot_conf: var("MAILSTACK_DOVECOT_CONF").into(),
            maildir_root: var("MAILSTACK_MAILDIR_ROOT").into(),
        }
    }
}

/// The workspace's target directory, where `cargo build --workspace` put the tools.
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Where the built tools are: the running test is `<profile>/deps/NAME-HASH`,
/// so its grandparent (debug or release, wherever the target directory is);
/// else `<target>/debug`.
fn profile_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let deps = exe.parent()?;
            (deps.file_name()? == "deps").then(|| deps.parent().map(Path::to_path_buf))?
        })
        .unwrap_or_else(|| target_dir().join("debug"))
}

/// Path of a built tool (`mkmime`, `smtp-send`, ...): [`Tool::path`] by name.
/// Panics with the command to build it when it is missing.
pub fn tool(name: &str) -> PathBuf {
    Tool::named(name).path()
}

/// Runs `cmd` with `stdin` written from a thread (so a tool that writes
/// before it has read everything cannot deadlock the test) and returns its
/// output. `cmd` should not have set stdin/stdout/stderr.
pub fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
    let (child, writer) = spawn_feeding(cmd, stdin);
    let output = child.wait_with_output().expect("tool runs to the end");
    writer.join().expect("stdin writer thread");
    output
}

/// Runs `cmd` with `stdin` as a regular file (written in `dir`) rather
/// than a pipe: a tool may read a file ahead (smtp-send --mbox) or know its
/// size. `cmd` should not have set its streams.
pub fn run_with_file_stdin(cmd: &mut Command, dir: &Path, stdin: &[u8]) -> Output {
    let path = dir.join("stdin");
    std::fs::write(&path, stdin).expect("write the stdin file");
    let file = std::fs::File::open(&path).expect("open the stdin file");
    cmd.stdin(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Starts `cmd` with its three streams piped and `stdin` written to it
/// from a thread, which the caller joins.
fn spawn_feeding(cmd: &mut Command, stdin: &[u8]) -> (Child, JoinHandle<()>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The tool may exit without reading everything; that is its business.
        let _ = pipe.write_all(&input);
    });
    (child, writer)
}

/// The exit status of a finished tool; -1 when a signal ended it.
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// A finished tool's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a run of [`run_bounded`] gave.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `cmd` with `stdin` written from a thread and its output drained by
/// threads, calling `while_running` with the child's pid every 5 ms (tests
/// that watch /proc use it). A tool that outlives `limit` is killed and the
/// test fails: hardening tests prove "no hang", they must not hang themselves.
pub fn run_bounded(
    cmd: &mut Command,
    stdin: &[u8],
    limit: Duration,
    mut while_running: impl FnMut(u32),
) -> Finished {
    let started = Instant::now();
    let (mut child, writer) = spawn_feeding(cmd, stdin);
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout is piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr is piped")));
    let status = loop {
        while_running(child.id());
        if let Some(status) = child.try_wait().expect("wait for the tool") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} hung: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    let _ = writer.join();
    Finished {
        code: status.code(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned(),
        elapsed,
    }
}

impl Stack {
    /// `doveadm -c <the stack's dovecot.conf> args` with `stdin`: puts mail in
    /// place or reads it back by a path independent of the tools. Panics
    /// (fails the test) when doveadm fails; returns its stdout.
    pub fn doveadm(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = run_with_stdin(
            Command::new("doveadm")
                .arg("-c")
                .arg(&self.dovecot_conf)
                .args(args),
            stdin,
        );
        assert!(out.status.success(), "doveadm {args:?}: {out:?}");
        out.stdout
    }

    /// Creates `mailbox` for `user` (a name the test made unique). Dovecot
    /// sometimes answers "Mailbox already exists" to a create that ran while
    /// another test created a different mailbox of the same user, having
    /// created it all the same; the mailbox existing afterwards is what
    /// counts, so `mailbox status` decides.
    pub fn create_mailbox(&self, user: &str, mailbox: &str) {
        let out = run_with_stdin(
            Command::new("doveadm")
                .arg("-c")
                .arg(&self.dovecot_conf)
                .args(["mailbox", "create", "-u", user, mailbox]),
            b"",
        );
        if !out.status.success() {
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("Mailbox already exists"),
                "doveadm mailbox create {mailbox}: {out:?}"
            );
            self.doveadm(&["mailbox", "status", "-u", user, "messages", mailbox], b"");
        }
    }

    /// The length of the trusted Dovecot's log now: pass it to
    /// [`Stack::disconnects`] to read only what a run adds.
    pub fn dovecot_log_len(&self) -> usize {
        std::fs::metadata(self.dir.join("log/dovecot-trusted.log"))
            .map(|m| m.len() as usize)
            .expect("the stack's Dovecot log")
    }

    /// Dovecot's "Disconnected" lines for `service(user)` (e.g. `imap`,
    /// `pop3`) written since `from`: waits up to 5 s for the first, then a
    /// moment more, because a session that ended just before the run may be
    /// logged after it. Each line says how its session ended ("Logged out"
    /// or "Connection closed").
    pub fn disconnects(&self, service: &str, user: &str, from: usize) -> Vec<String> {
        let log = self.dir.join("log/dovecot-trusted.log");
        let who = format!("{service}({user})");
        let read = || {
            let text = std::fs::read(&log).expect("the stack's Dovecot log");
            String::from_utf8_lossy(text.get(from..).unwrap_or_default())
                .lines()
                .filter(|l| l.contains(&who) && l.contains("Disconnected"))
                .map(str::to_string)
                .collect::<Vec<String>>()
        };
        let started = Instant::now();
        while read().is_empty() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        read()
    }
}

/// Runs `cmd` as `cmd >&-` (stdout closed, through sh), with its stderr
/// captured.
pub fn run_with_stdout_closed(cmd: &Command) -> Output {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(r#"exec "$0" "$@" >&-"#)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => sh.env(key, value),
            None => sh.env_remove(key),
        };
    }
    sh.output()
        .unwrap_or_else(|e| panic!("cannot start sh for {cmd:?}: {e}"))
}

/// Runs `cmd | head -c bytes` and returns `cmd`'s status and stderr (its
/// stdout is what head read, so it is left empty).
pub fn run_into_head(cmd: &mut Command, bytes: usize) -> Output {
    let mut tool = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let head = Command::new("head")
        .arg("-c")
        .arg(bytes.to_string())
        .stdin(tool.stdout.take().expect("stdout is piped"))
        .stdout(Stdio::null())
        .status()
        .expect("head runs");
    assert!(head.success(), "head: {head:?}");
    tool.wait_with_output().expect("the tool runs to the end")
}
