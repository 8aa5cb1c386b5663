//! Regressions of an adversarial review, end to end against the real Dovecot
//! of `scripts/mailstack` (a scripted POP3 peer only for a reply Dovecot will
//! not give on demand). The maildrop is filled with `doveadm`; what is left on
//! the server is checked with `doveadm`, an independent path. The tests share
//! bob's maildrop and Dovecot's log, so they run one at a time.

use std::process::{Command, Output};
use std::sync::MutexGuard;

use mailpipe_e2e::mail::inbox_lock;
use mailpipe_e2e::peer::scripted_peer;
use mailpipe_e2e::{run_into_head, run_with_stdout_closed, Stack, Tool};

/// bob's maildrop, emptied and filled with `count` messages of about
/// `size` bytes each, held for the test.
struct Maildrop {
    _serial: MutexGuard<'static, ()>,
    stack: Stack,
    dir: tempfile::TempDir,
}

impl Maildrop {
    fn new(count: usize, size: usize) -> Maildrop {
        let serial = inbox_lock(1);
        let stack = Stack::get();
        stack.expunge_inbox(&stack.user2);
        for i in 0..count {
            let mut m = format!(
                "From: Alice <alice@example.test>\nTo: {}\nSubject: regression {i}\n\
                 Message-ID: <r{i}.{}@regressions.test>\n\n",
                stack.user2,
                std::process::id()
            )
            .into_bytes();
            m.extend(std::iter::repeat_n(b'x', size));
            m.push(b'\n');
            stack.save(&stack.user2, "INBOX", &m);
        }
        Maildrop {
            _serial: serial,
            stack,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Messages in bob's INBOX, as doveadm counts them.
    fn on_server(&self) -> usize {
        let out = self.stack.doveadm(
            &[
                "mailbox",
                "status",
                "-u",
                &self.stack.user2,
                "messages",
                "INBOX",
            ],
            b"",
        );
        String::from_utf8_lossy(&out)
            .trim()
            .rsplit('=')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("messages=N")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let stack = &self.stack;
        let url = stack.url("pop3s", stack.pop3s_port);
        let mut cmd = stack.login(Tool::Pop3Dump, &url, &stack.user2, &stack.pass2);
        cmd.args(args).env("HOME", self.dir.path());
        cmd
    }
}

#[test]
fn delete_with_stdout_closed_deletes_nothing() {
    let drop = Maildrop::new(3, 100);
    let out = run_with_stdout_closed(&drop.cmd(&["--delete"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{stderr}");
    assert!(stderr.contains("/dev/null or closed"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(drop.on_server(), 3, "every message is still on the server");
}

#[test]
fn delete_through_head_that_exits_early_deletes_nothing() {
    // About 6 KB in all: it fits in the pipe's buffer, so every write succeeds.
    let drop = Maildrop::new(3, 2000);
    let state = drop.dir.path().join("state");
    let out = run_into_head(
        &mut drop.cmd(&["--delete", "--state", state.to_str().expect("utf-8")]),
        10,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{stderr}");
    assert!(
        stderr.contains("not all") || stderr.contains("before reading all"),
        "{stderr}"
    );
    assert!(stderr.contains("run again"), "{stderr}");
    assert_eq!(drop.on_server(), 3, "every message is still on the server");
    assert!(!state.exists(), "the state was not written");
}

/// A POP3 peer that refuses the login with `reply` (RFC 2449 response codes).
fn refusing_peer(reply: &'static str) -> u16 {
    let (port, _log) = scripted_peer(move |peer| {
        if !peer.send(b"+OK scripted\r\n") {
            return;
        }
        while let Some(line) = peer.command() {
            let command = line.to_ascii_uppercase();
            let answer = if command.starts_with("CAPA") {
                "+OK\r\nUSER\r\nUIDL\r\n.\r\n".to_string()
            } else if command.starts_with("PASS") {
                format!("{reply}\r\n")
            } else {
                "+OK\r\n".to_string()
            };
            if !peer.send(answer.as_bytes()) || command.starts_with("QUIT") {
                break;
            }
        }
    });
    port
}

fn against(port: u16) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    Command::new(Tool::Pop3Dump.path())
        .arg("--server")
        .arg(format!("pop3://127.0.0.1:{port}"))
        .args(["--user", "u", "--tls", "none", "--allow-plaintext-auth"])
        .env("POP3_PASSWORD", "p")
        .env_remove("MAILPIPE_CONFIG")
        .env("HOME", dir.path())
        .env("NETRC", "/nonexistent")
        .output()
        .expect("runs")
}

#[test]
fn a_mailbox_in_use_is_not_reported_as_a_password_problem() {
    let out = against(refusing_peer("-ERR [IN-USE] Mailbox in use"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("locked by another"), "{stderr}");
    assert!(!stderr.contains("authentication failed"), "{stderr}");

    let out = against(refusing_peer("-ERR [LOGIN-DELAY] Wait a while"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains("LOGIN-DELAY") && stderr.contains("later"),
        "{stderr}"
    );
    assert!(!stderr.contains("authentication failed"), "{stderr}");
}

#[test]
fn an_error_after_login_quits() {
    let drop = Maildrop::new(2, 100);
    let from = drop.stack.dovecot_log_len();
    // A state file that is not one: found out after login (65).
    let state = drop.dir.path().join("state");
    std::fs::write(&state, b"uidl-without-section\n").expect("state");
    let out = drop
        .cmd(&["--state", state.to_str().expect("utf-8")])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    // Every session of bob's that ended since (ours, and any that ended just
    // before it but was logged late) quit; none was cut.
    let lines = drop.stack.disconnects("pop3", &drop.stack.user2, from);
    assert!(!lines.is_empty(), "no disconnect logged");
    assert!(lines.iter().all(|l| l.contains("Logged out")), "{lines:?}");
    assert_eq!(drop.on_server(), 2, "nothing deleted");
}

/// A refusal from the shared library already names the server; the tool must
/// not name it a second time (the URL was printed twice).
#[test]
fn plaintext_auth_refusal_names_the_server_once() {
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(Tool::Pop3Dump.path())
        .arg("--server")
        .arg(format!("pop3://127.0.0.1:{}", stack.pop3_port))
        .args(["--user", &stack.user2, "--tls", "none", "--list"])
        .env("POP3_PASSWORD", &stack.pass2)
        .env_remove("MAILPIPE_CONFIG")
        .env("HOME", dir.path())
        .env("NETRC", "/nonexistent")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("pop3://").count(), 1, "{err}");
    assert!(
        err.starts_with("pop3-dump: pop3://")
            && err.contains("refusing to send credentials without TLS"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}
