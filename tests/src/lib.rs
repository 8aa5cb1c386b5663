//! What tests across the workspace share: the running mail stack
//! (`scripts/mailstack env DIR` exports it) and a runner for the built tools.
//!
//! Tests that need the stack call [`Stack::get`]; when the environment is not
//! set they fail with a message that says how to start it. They never skip.

pub mod fault_proxy;

use std::io::Read;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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
            dovecot_conf: var("MAILSTACK_DOVECOT_CONF").into(),
            maildir_root: var("MAILSTACK_MAILDIR_ROOT").into(),
        }
    }
}

/// A name (mailbox, Message-ID part) no other test or earlier run uses.
pub fn unique(label: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{label}-{}-{n}-{nanos}", std::process::id())
}

/// The workspace's target directory, where `cargo build --workspace` put the tools.
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Path of a built tool (`mkmime`, `smtp-send`, ...), debug profile.
/// Panics with the command to build it when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let path = target_dir().join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first (scripts/test does)",
        path.display()
    );
    path
}

/// Runs `cmd` with `stdin` written from a thread (so a tool that writes
/// before it has read everything cannot deadlock the test) and returns its
/// output. `cmd` should not have set stdin/stdout/stderr.
pub fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
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
    let output = child.wait_with_output().expect("tool runs to the end");
    writer.join().expect("stdin writer thread");
    output
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
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
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
