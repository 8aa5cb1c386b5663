//! Fault injection: each network tool, through `FaultProxy` in front of the
//! real servers of scripts/mailstack, cut or stalled in each protocol phase
//! (greeting, TLS handshake, authentication, mid-transfer, before the final
//! reply), and slowed down. Every run must end within its --timeout (plus a
//! margin) with the exit status its docs give, one clear line on stderr, no
//! partial message in any output, no state file advanced past what was
//! written, and, for smtp-send, the message kept byte for byte in --dead-letter.
//!
//! Plaintext phases use the STARTTLS ports (whose greeting is plaintext) or
//! `--tls none --allow-plaintext-auth` (Dovecot and Postfix accept that on
//! loopback), so that the proxy can find a command by its bytes; under TLS
//! the proxy counts bytes.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use mailpipe::mbox::MboxReader;
use mailpipe_e2e::fault_proxy::{Dir, Fault, FaultProxy, Step};
use mailpipe_e2e::{run_bounded, tool, unique, Finished as Run, Stack};

/// --timeout of every faulted run, in seconds.
const TIMEOUT: u64 = 2;

/// A run must end within this: a stalled read waits --timeout once, and
/// connecting, TLS and the rest take well under a second on loopback.
fn deadline() -> Duration {
    Duration::from_secs(TIMEOUT + 1)
}

/// The common verdict: the status, one line `tool: ... (code)` naming what
/// happened (each of `needles`, any one of each `|`-separated set), no panic,
/// and within the deadline.
fn assert_failed(run: &Run, tool: &str, code: i32, needles: &[&str]) {
    let err = &run.stderr;
    // Shown with --nocapture: the outcome table of the hardening report.
    eprintln!("  {:?} {:.1?}: {}", run.code, run.elapsed, err.trim());
    assert_eq!(run.code, Some(code), "{tool}: status; stderr: {err}");
    assert!(!err.contains("panicked"), "{tool} panicked: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{tool}: one line on stderr, got: {err}");
    assert!(
        lines[0].starts_with(&format!("{tool}: ")) && lines[0].ends_with(&format!("({code})")),
        "{tool}: {err}"
    );
    for needle in needles {
        assert!(
            needle.split('|').any(|n| err.contains(n)),
            "{tool}: stderr should say {needle:?}: {err}"
        );
    }
    assert!(
        run.elapsed < deadline(),
        "{tool} took {:?} (timeout {TIMEOUT} s)",
        run.elapsed
    );
}

fn mbox_messages(bytes: &[u8]) -> Vec<Vec<u8>> {
    MboxReader::new(bytes)
        .map(|m| m.expect("output is a readable mbox").data)
        .collect()
}

fn crlf(lf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 40);
    for &b in lf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn doveadm(stack: &Stack, args: &[&str], stdin: &[u8]) {
    let out = mailpipe_e2e::run_with_stdin(
        Command::new("doveadm")
            .arg("-c")
            .arg(&stack.dovecot_conf)
            .args(args),
        stdin,
    );
    assert!(out.status.success(), "doveadm {args:?}: {out:?}");
}

/// A message of about `body_lines` * 60 bytes, LF line ends, unique by `tag`.
fn message(tag: &str, to: &str, body_lines: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Alice <alice@example.test>\nTo: {to}\nSubject: {tag}\n\
         Date: Mon, 23 Nov 2026 12:00:00 +0000\nMessage-ID: <{tag}@faults.test>\n\n"
    )
    .into_bytes();
    for i in 0..body_lines {
        m.extend_from_slice(format!("{tag} line {i:05} From here to there .\n").as_bytes());
    }
    m
}

fn send(what: &str) -> Step {
    Step::Sent(Dir::ToServer, what.as_bytes().to_vec())
}

fn from_server(n: usize) -> Step {
    Step::Bytes(Dir::ToClient, n)
}

fn to_server(n: usize) -> Step {
    Step::Bytes(Dir::ToServer, n)
}

/// Under TLS 1.3 the client's 1st write is its ClientHello, the 2nd its
/// Finished, then one per command: the server's answer to the client's
/// `n`th write is the first server byte after it.
fn after_client_write(n: usize) -> Vec<Step> {
    vec![Step::Chunks(Dir::ToServer, n), from_server(0)]
}

// ---------------------------------------------------------------- smtp-send

struct Smtp {
    stack: Stack,
    dir: tempfile::TempDir,
    tag: String,
    message: Vec<u8>,
}

impl Smtp {
    fn new(label: &str, body_lines: usize) -> Smtp {
        let stack = Stack::get();
        let tag = unique(&format!("smtp-{label}"));
        let message = crlf(&message(&tag, &stack.user1, body_lines));
        Smtp {
            stack,
            dir: tempfile::tempdir().expect("tempdir"),
            tag,
            message,
        }
    }

    fn dead_letter(&self) -> PathBuf {
        self.dir.path().join("dead.mbox")
    }

    fn cmd(&self, url: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new(tool("smtp-send"));
        cmd.env_remove("MAILPIPE_CONFIG")
            .env_remove("MAILPIPE_PASSWORD")
            .env("HOME", self.dir.path())
            .env("SMTP_PASSWORD", &self.stack.pass1)
            .arg("--server")
            .arg(url)
            .args(["--user", &self.stack.user1])
            .arg("--ca-file")
            .arg(&self.stack.ca_file)
            .arg(format!("--timeout={TIMEOUT}"))
            .arg("--dead-letter")
            .arg(self.dead_letter())
            .arg("-t")
            .args(extra);
        cmd
    }

    /// smtp-send through a proxy with `fault` in front of `port`, `url_scheme` as given.
    fn run(&self, scheme: &str, port: u16, fault: Fault, extra: &[&str]) -> (Run, FaultProxy) {
        let proxy = FaultProxy::start(port, fault);
        let url = format!("{scheme}://localhost:{}", proxy.port());
        let run = run_bounded(
            &mut self.cmd(&url, extra),
            &self.message,
            deadline() * 2,
            |_| {},
        );
        (run, proxy)
    }

    /// The failure kept the message whole in the dead letter, and nothing on stdout.
    fn assert_kept(&self, run: &Run) {
        assert!(run.stdout.is_empty(), "stdout: {:?}", run.stdout);
        let file = std::fs::read(self.dead_letter()).expect("a dead letter was written");
        assert_eq!(
            mbox_messages(&file),
            vec![self.message.clone()],
            "the dead letter holds the message byte for byte"
        );
    }

    fn delivered(&self) -> usize {
        let root = self
            .stack
            .maildir_root
            .join(&self.stack.user1)
            .join("Maildir");
        let mut n = 0;
        for sub in ["new", "cur"] {
            for entry in std::fs::read_dir(root.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(bytes) = std::fs::read(entry.path()) {
                    if bytes
                        .windows(self.tag.len())
                        .any(|w| w == self.tag.as_bytes())
                    {
                        n += 1;
                    }
                }
            }
        }
        n
    }

    fn assert_not_delivered(&self) {
        thread::sleep(Duration::from_millis(700));
        assert_eq!(self.delivered(), 0, "{} must not be delivered", self.tag);
    }
}

const PLAIN: &[&str] = &["--tls", "none", "--allow-plaintext-auth"];

#[test]
fn smtp_send_greeting_cut_and_stalled() {
    let stack = Stack::get();
    // The submission port's greeting is plaintext (STARTTLS comes after it).
    let s = Smtp::new("greeting-cut", 3);
    let (run, _p) = s.run(
        "smtp",
        stack.submission_port,
        Fault::cut([from_server(4)]),
        &[],
    );
    assert_failed(
        &run,
        "smtp-send",
        75,
        &["closed the connection", "greeting"],
    );
    s.assert_kept(&run);

    let s = Smtp::new("greeting-stall", 3);
    let (run, _p) = s.run(
        "smtp",
        stack.submission_port,
        Fault::stall([from_server(0)]),
        &[],
    );
    assert_failed(&run, "smtp-send", 75, &["timed out", "greeting"]);
    s.assert_kept(&run);
    s.assert_not_delivered();
}

#[test]
fn smtp_send_tls_handshake_cut_and_stalled() {
    let stack = Stack::get();
    // Implicit TLS: 100 bytes into the server's first flight.
    let s = Smtp::new("tls-cut", 3);
    let (run, _p) = s.run(
        "smtps",
        stack.smtps_port,
        Fault::cut([from_server(100)]),
        &[],
    );
    assert_failed(&run, "smtp-send", 76, &["TLS", "handshake"]);
    s.assert_kept(&run);

    let s = Smtp::new("tls-stall", 3);
    let (run, _p) = s.run(
        "smtps",
        stack.smtps_port,
        Fault::stall([from_server(100)]),
        &[],
    );
    assert_failed(&run, "smtp-send", 75, &["TLS", "timed out"]);
    s.assert_kept(&run);

    // STARTTLS: the 220 to STARTTLS passes, then 40 bytes of the ServerHello.
    let s = Smtp::new("starttls-cut", 3);
    let fault = Fault::cut([
        send("STARTTLS\r\n"),
        Step::Sent(Dir::ToClient, b"\r\n".to_vec()),
        from_server(40),
    ]);
    let (run, _p) = s.run("smtp", stack.submission_port, fault, &[]);
    assert_failed(&run, "smtp-send", 76, &["TLS", "handshake"]);
    s.assert_kept(&run);
    s.assert_not_delivered();
}

#[test]
fn smtp_send_auth_cut_and_stalled() {
    let stack = Stack::get();
    // Postfix's plain port offers AUTH; --allow-plaintext-auth lets the proxy read it.
    let s = Smtp::new("auth-cut", 3);
    let fault = Fault::cut([
        send("AUTH "),
        Step::Sent(Dir::ToServer, b"\r\n".to_vec()),
        from_server(0),
    ]);
    let (run, p) = s.run("smtp", stack.smtp_plain_port, fault, PLAIN);
    assert_eq!(p.fired(), 1, "the AUTH was reached");
    assert_failed(
        &run,
        "smtp-send",
        75,
        &["closed the connection|connection lost", "AUTH"],
    );
    s.assert_kept(&run);

    let s = Smtp::new("auth-stall", 3);
    let fault = Fault::stall([
        send("AUTH "),
        Step::Sent(Dir::ToServer, b"\r\n".to_vec()),
        from_server(0),
    ]);
    let (run, p) = s.run("smtp", stack.smtp_plain_port, fault, PLAIN);
    assert_eq!(p.fired(), 1, "the AUTH was reached");
    assert_failed(&run, "smtp-send", 75, &["timed out", "AUTH"]);
    s.assert_kept(&run);
    s.assert_not_delivered();
}

#[test]
fn smtp_send_greeting_and_auth_under_implicit_tls() {
    let stack = Stack::get();
    // After the client's Finished: neither the session tickets nor the 220.
    for (fault, says) in [
        (Fault::cut(after_client_write(2)), "closed the connection"),
        (Fault::stall(after_client_write(2)), "timed out"),
    ] {
        let s = Smtp::new("tls-greeting", 3);
        let (run, p) = s.run("smtps", stack.smtps_port, fault, &[]);
        assert_eq!(p.fired(), 1);
        assert_failed(&run, "smtp-send", 75, &[says, "greeting"]);
        s.assert_kept(&run);
    }
    // Writes: ClientHello, Finished, EHLO, AUTH PLAIN; the 235 does not come.
    for (fault, says) in [
        (Fault::cut(after_client_write(4)), "closed the connection"),
        (Fault::stall(after_client_write(4)), "timed out"),
    ] {
        let s = Smtp::new("tls-auth", 3);
        let (run, p) = s.run("smtps", stack.smtps_port, fault, &["--auth", "plain"]);
        assert_eq!(p.fired(), 1);
        assert_failed(&run, "smtp-send", 75, &[says, "AUTH"]);
        s.assert_kept(&run);
        s.assert_not_delivered();
    }
}

#[test]
fn smtp_send_cut_and_stalled_mid_data() {
    let stack = Stack::get();
    // 200 KB; the proxy lets 50 KB of it through.
    let s = Smtp::new("data-cut", 3300);
    let fault = Fault::cut([send("DATA\r\n"), to_server(50_000)]);
    let (run, _p) = s.run("smtp", stack.smtp_plain_port, fault, PLAIN);
    assert_failed(
        &run,
        "smtp-send",
        75,
        &["connection lost|closed the connection"],
    );
    s.assert_kept(&run);

    let s = Smtp::new("data-stall", 3300);
    let fault = Fault::stall([send("DATA\r\n"), to_server(50_000)]);
    let (run, _p) = s.run("smtp", stack.smtp_plain_port, fault, PLAIN);
    assert_failed(&run, "smtp-send", 75, &["timed out"]);
    s.assert_kept(&run);

    // Under TLS only the message is that large: cut 50 KB into the client's bytes.
    let s = Smtp::new("data-cut-tls", 3300);
    let (run, _p) = s.run(
        "smtps",
        stack.smtps_port,
        Fault::cut([to_server(50_000)]),
        &[],
    );
    assert_failed(
        &run,
        "smtp-send",
        75,
        &["connection lost|closed the connection"],
    );
    s.assert_kept(&run);
    s.assert_not_delivered();
}

#[test]
fn smtp_send_cut_and_stalled_before_the_final_reply() {
    let stack = Stack::get();
    // The whole message and its final dot reach Postfix; its 250 does not
    // reach us. Postfix may well deliver it: the dead letter must still hold
    // it (a duplicate is better than a loss), and the status says "retry".
    let s = Smtp::new("final-cut", 50);
    let fault = Fault::cut([send("\r\n.\r\n"), from_server(0)]);
    let (run, p) = s.run("smtp", stack.smtp_plain_port, fault, PLAIN);
    assert_eq!(p.fired(), 1);
    assert_failed(
        &run,
        "smtp-send",
        75,
        &["closed the connection", "end of the message"],
    );
    s.assert_kept(&run);

    let s = Smtp::new("final-stall", 50);
    let fault = Fault::stall([send("\r\n.\r\n"), from_server(0)]);
    let (run, p) = s.run("smtp", stack.smtp_plain_port, fault, PLAIN);
    assert_eq!(p.fired(), 1);
    assert_failed(&run, "smtp-send", 75, &["timed out", "end of the message"]);
    s.assert_kept(&run);

    // Under TLS: the first server bytes after the client sent the whole message.
    let s = Smtp::new("final-cut-tls", 50);
    let fault = Fault::cut([to_server(s.message.len()), from_server(0)]);
    let (run, p) = s.run("smtps", stack.smtps_port, fault, &[]);
    assert_eq!(p.fired(), 1);
    assert_failed(
        &run,
        "smtp-send",
        75,
        &["closed the connection", "end of the message"],
    );
    s.assert_kept(&run);
}

/// `--mbox`: five messages over one connection, cut before the third one's
/// final reply. smtp-send reconnects for the fourth (the proxy's second
/// connection is not cut again): every message is delivered or kept, the
/// third is kept byte for byte (Postfix may have delivered it too).
#[test]
fn smtp_send_mbox_cut_before_a_final_reply_loses_nothing() {
    let stack = Stack::get();
    let s = Smtp::new("mbox-cut", 20);
    let tags: Vec<String> = (0..5).map(|i| format!("{}-m{i}", s.tag)).collect();
    let mut input = Vec::new();
    for tag in &tags {
        input.extend_from_slice(b"From alice@example.test Mon Nov 23 12:00:00 2026\n");
        input.extend_from_slice(&message(tag, &stack.user1, 20));
        input.push(b'\n');
    }
    let sent = mbox_messages(&input);
    assert_eq!(sent.len(), 5);
    let dot = || Step::Sent(Dir::ToServer, b"\r\n.\r\n".to_vec());
    let proxy = FaultProxy::start(
        stack.smtp_plain_port,
        Fault::cut([dot(), dot(), dot(), from_server(0)]),
    );
    let url = format!("smtp://localhost:{}", proxy.port());
    let mut cmd = s.cmd(&url, &["--mbox"]);
    cmd.args(PLAIN);
    let run = run_bounded(&mut cmd, &input, deadline() * 4, |_| {});
    eprintln!(
        "  {:?} {:.1?}: {}",
        run.code,
        run.elapsed,
        run.stderr.trim()
    );
    assert_eq!(proxy.fired(), 1);
    assert_eq!(proxy.connections(), 2, "one reconnection after the cut");
    assert_eq!(run.code, Some(75), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let last = run.stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("smtp-send: ") && last.contains("1 of 5"),
        "{}",
        run.stderr
    );
    let dead = std::fs::read(s.dead_letter()).expect("dead letter");
    assert_eq!(
        mbox_messages(&dead),
        vec![sent[2].clone()],
        "the third is kept as read"
    );
    let delivered = |tag: &str| {
        let root = stack.maildir_root.join(&stack.user1).join("Maildir");
        let needle = format!("Subject: {tag}\n");
        let mut n = 0;
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(root.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(b) = std::fs::read(e.path()) {
                    if b.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        n += 1;
                    }
                }
            }
        }
        n
    };
    let start = Instant::now();
    while [0, 1, 3, 4].iter().any(|&i| delivered(&tags[i]) == 0)
        && start.elapsed() < Duration::from_secs(10)
    {
        thread::sleep(Duration::from_millis(50));
    }
    for i in [0, 1, 3, 4] {
        assert_eq!(delivered(&tags[i]), 1, "message {} delivered once", i + 1);
    }
    assert!(delivered(&tags[2]) <= 1);
}

#[test]
fn smtp_send_slow_server_within_the_timeout_delivers_and_one_beyond_it_fails() {
    let stack = Stack::get();
    let s = Smtp::new("slow", 50);
    let fault = Fault::delay(Duration::from_millis(150));
    let (run, _p) = s.run("smtps", stack.smtps_port, fault, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!s.dead_letter().exists(), "nothing kept when it was sent");
    let start = Instant::now();
    while s.delivered() == 0 && start.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.delivered(), 1);

    let s = Smtp::new("too-slow", 3);
    let fault = Fault::delay(Duration::from_secs(TIMEOUT + 1));
    let (run, _p) = s.run("smtps", stack.smtps_port, fault, &[]);
    assert_failed(&run, "smtp-send", 75, &["timed out"]);
    s.assert_kept(&run);
}

// ---------------------------------------------------------------- imap-dump

struct Imap {
    stack: Stack,
    dir: tempfile::TempDir,
    mailbox: String,
    /// What the server holds, as IMAP serves it (CRLF), in UID order.
    held: Vec<Vec<u8>>,
}

impl Imap {
    /// A fresh mailbox of alice's with `count` messages of about `lines` * 60 bytes.
    fn new(label: &str, count: usize, lines: usize) -> Imap {
        let stack = Stack::get();
        let mailbox = unique(&format!("faults-{label}"));
        doveadm(
            &stack,
            &["mailbox", "create", "-u", &stack.user1, &mailbox],
            b"",
        );
        let mut held = Vec::new();
        for i in 0..count {
            let m = message(&format!("{mailbox}-{i}"), &stack.user1, lines);
            doveadm(&stack, &["save", "-u", &stack.user1, "-m", &mailbox], &m);
            held.push(crlf(&m));
        }
        Imap {
            stack,
            dir: tempfile::tempdir().expect("tempdir"),
            mailbox,
            held,
        }
    }

    fn add(&mut self, count: usize, lines: usize) {
        for _ in 0..count {
            let i = self.held.len();
            let m = message(&format!("{}-{i}", self.mailbox), &self.stack.user1, lines);
            doveadm(
                &self.stack,
                &["save", "-u", &self.stack.user1, "-m", &self.mailbox],
                &m,
            );
            self.held.push(crlf(&m));
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("imap.state")
    }

    fn cmd(&self, url: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new(tool("imap-dump"));
        cmd.env_remove("MAILPIPE_CONFIG")
            .env_remove("MAILPIPE_PASSWORD")
            .env("HOME", self.dir.path())
            .env("IMAP_PASSWORD", &self.stack.pass1)
            .arg("--server")
            .arg(url)
            .args(["--user", &self.stack.user1])
            .arg("--ca-file")
            .arg(&self.stack.ca_file)
            .arg(format!("--timeout={TIMEOUT}"))
            .args(["--mailbox", &self.mailbox, "-q", "--state"])
            .arg(self.state())
            .args(extra);
        cmd
    }

    fn run(&self, scheme: &str, port: u16, fault: Fault, extra: &[&str]) -> (Run, FaultProxy) {
        let proxy = FaultProxy::start(port, fault);
        let url = format!("{scheme}://localhost:{}", proxy.port());
        let run = run_bounded(&mut self.cmd(&url, extra), b"", deadline() * 2, |_| {});
        (run, proxy)
    }

    /// A clean run straight to the server (sets up the state).
    fn dump_all(&self) -> Vec<Vec<u8>> {
        let url = format!("imaps://localhost:{}", self.stack.imaps_port);
        let run = run_bounded(
            &mut self.cmd(&url, &[]),
            b"",
            Duration::from_secs(60),
            |_| {},
        );
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        mbox_messages(&run.stdout)
    }

    /// Whatever was written is whole messages, the held ones from `first` on,
    /// and the state names exactly the last of them (or is as it was).
    fn assert_whole_and_state(&self, run: &Run, first: usize, state_before: &[u8]) -> usize {
        let got = mbox_messages(&run.stdout);
        assert!(first + got.len() <= self.held.len());
        for (i, m) in got.iter().enumerate() {
            assert!(
                *m == self.held[first + i],
                "message {} is not whole ({} bytes, held {})",
                first + i,
                m.len(),
                self.held[first + i].len()
            );
        }
        let state = std::fs::read(self.state()).unwrap_or_default();
        if got.is_empty() {
            assert_eq!(state, state_before, "the state moved without output");
        } else {
            let v: serde_json::Value = serde_json::from_slice(&state).expect("state is JSON");
            let last_uid =
                v["accounts"]["alice@example.test@localhost"][&self.mailbox]["last_uid"].as_u64();
            // UIDs of a fresh mailbox are 1, 2, 3, ... in the order saved.
            assert_eq!(last_uid, Some((first + got.len()) as u64), "state: {v}");
        }
        got.len()
    }
}

#[test]
fn imap_dump_greeting_cut_and_stalled() {
    let stack = Stack::get();
    let acct = Imap::new("greeting", 2, 5);
    // imap:// is STARTTLS: the greeting comes in plaintext.
    let (run, _p) = acct.run("imap", stack.imap_port, Fault::cut([from_server(3)]), &[]);
    assert_failed(&run, "imap-dump", 75, &["closed|lost"]);
    acct.assert_whole_and_state(&run, 0, b"");
    assert!(run.stdout.is_empty());

    let (run, _p) = acct.run("imap", stack.imap_port, Fault::stall([from_server(0)]), &[]);
    assert_failed(&run, "imap-dump", 75, &["timed out|no answer within"]);
    assert!(run.stdout.is_empty());
    assert!(!acct.state().exists(), "no state from a failed run");
}

#[test]
fn imap_dump_tls_handshake_cut_and_stalled() {
    let stack = Stack::get();
    let acct = Imap::new("tls", 2, 5);
    let (run, _p) = acct.run(
        "imaps",
        stack.imaps_port,
        Fault::cut([from_server(100)]),
        &[],
    );
    assert_failed(&run, "imap-dump", 76, &["TLS", "handshake"]);
    assert!(run.stdout.is_empty());

    let (run, _p) = acct.run(
        "imaps",
        stack.imaps_port,
        Fault::stall([from_server(100)]),
        &[],
    );
    assert_failed(&run, "imap-dump", 75, &["TLS", "timed out"]);
    assert!(run.stdout.is_empty());

    let fault = Fault::cut([
        send("STARTTLS\r\n"),
        Step::Sent(Dir::ToClient, b"s0 OK".to_vec()),
        Step::Sent(Dir::ToClient, b"\r\n".to_vec()),
        from_server(40),
    ]);
    let (run, _p) = acct.run("imap", stack.imap_port, fault, &[]);
    assert_failed(&run, "imap-dump", 76, &["TLS", "handshake"]);
    assert!(run.stdout.is_empty());
    assert!(!acct.state().exists(), "no state from a failed run");
}

#[test]
fn imap_dump_login_cut_and_stalled() {
    let stack = Stack::get();
    let acct = Imap::new("login", 2, 5);
    // Plaintext to the STARTTLS port, which Dovecot allows on loopback.
    let fault = Fault::cut([
        send(" LOGIN "),
        Step::Sent(Dir::ToServer, b"\r\n".to_vec()),
        from_server(0),
    ]);
    let (run, p) = acct.run("imap", stack.imap_port, fault, PLAIN);
    assert_eq!(p.fired(), 1, "LOGIN was reached");
    assert_failed(&run, "imap-dump", 75, &["closed|lost"]);
    assert!(run.stdout.is_empty());

    let fault = Fault::stall([
        send(" LOGIN "),
        Step::Sent(Dir::ToServer, b"\r\n".to_vec()),
        from_server(0),
    ]);
    let (run, p) = acct.run("imap", stack.imap_port, fault, PLAIN);
    assert_eq!(p.fired(), 1, "LOGIN was reached");
    assert_failed(&run, "imap-dump", 75, &["timed out|no answer within"]);
    assert!(run.stdout.is_empty());
    assert!(!acct.state().exists(), "no state from a failed run");
}

#[test]
fn imap_dump_greeting_and_login_under_implicit_tls() {
    let stack = Stack::get();
    let acct = Imap::new("tls-phases", 2, 5);
    // 2: after the client's Finished (no greeting); 3: after LOGIN (no OK).
    for write in [2, 3] {
        for (fault, says) in [
            (Fault::cut(after_client_write(write)), "closed|lost"),
            (
                Fault::stall(after_client_write(write)),
                "timed out|no answer within",
            ),
        ] {
            let (run, p) = acct.run("imaps", stack.imaps_port, fault, &[]);
            assert_eq!(p.fired(), 1, "write {write}");
            assert_failed(&run, "imap-dump", 75, &[says]);
            assert!(run.stdout.is_empty());
            assert!(!acct.state().exists(), "no state from a failed run");
        }
    }
}

/// (The cut in the middle of a FETCH is crates/imap-dump/tests/cli.rs
/// `a_connection_cut_mid_fetch_fails_and_keeps_only_whole_messages`.)
#[test]
fn imap_dump_stalled_mid_fetch_keeps_whole_messages_and_an_honest_state() {
    let stack = Stack::get();
    let mut acct = Imap::new("mid", 3, 5);
    assert_eq!(
        acct.dump_all(),
        acct.held,
        "a clean run gives what the server holds"
    );
    let state_before = std::fs::read(acct.state()).expect("state after a clean run");
    acct.add(30, 300); // about 18 KB each
    let new_bytes: usize = acct.held[3..].iter().map(Vec::len).sum();
    let first_tls_bytes = {
        // Measure a session up to the first FETCH on a copy of the state.
        std::fs::write(acct.state(), &state_before).expect("reset state");
        let (run, p) = acct.run("imaps", stack.imaps_port, Fault::none(), &["--limit", "0"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        std::fs::write(acct.state(), &state_before).expect("reset state");
        p.forwarded(Dir::ToClient)
    };
    // Small batches, so that some are written before the stall. A quarter of
    // the new bytes on this connection: imap-dump may fetch alternate batches
    // on a second connection, which counts its own bytes.
    let fault = Fault::stall([from_server(first_tls_bytes + new_bytes / 4)]);
    let (run, _p) = acct.run("imaps", stack.imaps_port, fault, &["--batch-size", "60000"]);
    assert_failed(&run, "imap-dump", 75, &["timed out|no answer within"]);
    let written = acct.assert_whole_and_state(&run, 3, &state_before);
    assert!(
        written > 0 && written < 30,
        "{written} of 30 written before the stall"
    );
    // The next run brings exactly the rest.
    let rest = acct.dump_all();
    assert_eq!(rest, acct.held[3 + written..].to_vec());
}

#[test]
fn imap_dump_cut_and_stalled_before_the_tagged_ok_of_the_fetch() {
    let stack = Stack::get();
    let mut acct = Imap::new("final", 1, 5);
    assert_eq!(acct.dump_all(), acct.held);
    let state_before = std::fs::read(acct.state()).expect("state");
    acct.add(3, 20);
    // Plaintext: every message of the one batch arrives, the tagged OK does not.
    for (fault, code, says) in [
        (
            Fault::cut([
                send("BODY.PEEK[]"),
                Step::Before(Dir::ToClient, b" OK Fetch".to_vec()),
            ]),
            75,
            "closed|lost",
        ),
        (
            Fault::stall([
                send("BODY.PEEK[]"),
                Step::Before(Dir::ToClient, b" OK Fetch".to_vec()),
            ]),
            75,
            "timed out|no answer within",
        ),
    ] {
        let (run, p) = acct.run("imap", stack.imap_port, fault, PLAIN);
        assert_eq!(p.fired(), 1, "the FETCH was answered up to its tagged OK");
        assert_failed(&run, "imap-dump", code, &[says]);
        let written = acct.assert_whole_and_state(&run, 1, &state_before);
        assert_eq!(written, 0, "a FETCH without its OK is not written");
        assert_eq!(std::fs::read(acct.state()).expect("state"), state_before);
    }
}

/// --output-dir with --state, cut in the middle of the fetches: the mbox
/// file holds whole messages only, the state names exactly the last one, and
/// a second run appends exactly the rest.
#[test]
fn imap_dump_output_dir_cut_mid_fetch_appends_whole_messages_only() {
    let stack = Stack::get();
    let acct = Imap::new("outdir", 20, 300);
    let out_dir = acct.dir.path().join("backup");
    let out_arg = out_dir.to_str().expect("utf-8").to_string();
    let args = ["--output-dir", out_arg.as_str(), "--batch-size", "60000"];
    let total: usize = acct.held.iter().map(Vec::len).sum();
    let (run, _p) = acct.run(
        "imaps",
        stack.imaps_port,
        Fault::cut([from_server(total / 4)]),
        &args,
    );
    assert_failed(&run, "imap-dump", 75, &["closed|lost"]);
    let file = out_dir.join(format!("{}.mbox", acct.mailbox));
    let written = mbox_messages(&std::fs::read(&file).unwrap_or_default());
    assert!(written.len() < acct.held.len());
    for (i, m) in written.iter().enumerate() {
        assert!(*m == acct.held[i], "message {i} in the file is not whole");
    }
    if !written.is_empty() {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(acct.state()).expect("state")).expect("json");
        assert_eq!(
            v["accounts"]["alice@example.test@localhost"][&acct.mailbox]["last_uid"].as_u64(),
            Some(written.len() as u64)
        );
    }
    let (run, _p) = acct.run("imaps", stack.imaps_port, Fault::none(), &args);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let all = mbox_messages(&std::fs::read(&file).expect("mbox"));
    assert_eq!(all, acct.held, "the second run appended exactly the rest");
}

#[test]
fn imap_dump_slow_server_within_the_timeout_is_complete() {
    let stack = Stack::get();
    let acct = Imap::new("slow", 3, 50);
    let (run, _p) = acct.run(
        "imaps",
        stack.imaps_port,
        Fault::delay(Duration::from_millis(100)),
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(mbox_messages(&run.stdout), acct.held);
}

// ---------------------------------------------------------------- pop3-dump

/// bob's maildrop, one test at a time (smtp-send and imap-dump use alice).
static BOB: Mutex<()> = Mutex::new(());

struct Pop3 {
    stack: Stack,
    dir: tempfile::TempDir,
    held: Vec<Vec<u8>>,
}

impl Pop3 {
    fn new(label: &str, count: usize, lines: usize) -> Pop3 {
        let stack = Stack::get();
        doveadm(
            &stack,
            &["expunge", "-u", &stack.user2, "mailbox", "INBOX", "all"],
            b"",
        );
        let mut held = Vec::new();
        for i in 0..count {
            let m = message(&unique(&format!("pop-{label}-{i}")), &stack.user2, lines);
            doveadm(&stack, &["save", "-u", &stack.user2], &m);
            held.push(crlf(&m));
        }
        Pop3 {
            stack,
            dir: tempfile::tempdir().expect("tempdir"),
            held,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("pop3.state")
    }

    fn cmd(&self, url: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new(tool("pop3-dump"));
        cmd.env_remove("MAILPIPE_CONFIG")
            .env_remove("MAILPIPE_PASSWORD")
            .env("HOME", self.dir.path())
            .env("NETRC", "/nonexistent")
            .env("POP3_PASSWORD", &self.stack.pass2)
            .arg("--server")
            .arg(url)
            .args(["--user", &self.stack.user2])
            .arg("--ca-file")
            .arg(&self.stack.ca_file)
            .arg(format!("--timeout={TIMEOUT}"))
            .arg("--state")
            .arg(self.state())
            .args(extra);
        cmd
    }

    fn run(&self, scheme: &str, port: u16, fault: Fault, extra: &[&str]) -> (Run, FaultProxy) {
        let proxy = FaultProxy::start(port, fault);
        let url = format!("{scheme}://localhost:{}", proxy.port());
        let run = run_bounded(&mut self.cmd(&url, extra), b"", deadline() * 2, |_| {});
        (run, proxy)
    }

    /// Whole messages only, the state unchanged, and the maildrop still full.
    fn assert_nothing_half_done(&self, run: &Run, state_before: Option<&[u8]>) {
        for m in mbox_messages(&run.stdout) {
            assert!(
                self.held.contains(&m),
                "a partial message was written ({} bytes)",
                m.len()
            );
        }
        assert_eq!(
            std::fs::read(self.state()).ok().as_deref(),
            state_before,
            "state moved"
        );
        // The proxy is gone, so Dovecot has let go of the maildrop.
        let url = format!("pop3s://localhost:{}", self.stack.pop3s_port);
        let out = run_bounded(
            Command::new(tool("pop3-dump"))
                .env_remove("MAILPIPE_CONFIG")
                .env("HOME", self.dir.path())
                .env("NETRC", "/nonexistent")
                .env("POP3_PASSWORD", &self.stack.pass2)
                .arg("--server")
                .arg(&url)
                .args(["--user", &self.stack.user2, "--list"])
                .arg("--ca-file")
                .arg(&self.stack.ca_file),
            b"",
            Duration::from_secs(30),
            |_| {},
        );
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            self.held.len(),
            "maildrop"
        );
    }
}

fn bob() -> std::sync::MutexGuard<'static, ()> {
    BOB.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn pop3_dump_greeting_cut_and_stalled() {
    let _bob = bob();
    let stack = Stack::get();
    let acct = Pop3::new("greeting", 2, 5);
    // pop3:// is STLS: the greeting is plaintext. pop3-dump's docs: a cut
    // connection or a timeout is 75 (as in smtp-send and imap-dump), a
    // garbled reply 76.
    let (run, p) = acct.run(
        "pop3",
        stack.pop3_port,
        Fault::cut([from_server(3)]),
        &["--delete"],
    );
    drop(p);
    assert_failed(&run, "pop3-dump", 75, &["greeting|closed"]);
    acct.assert_nothing_half_done(&run, None);

    let (run, p) = acct.run(
        "pop3",
        stack.pop3_port,
        Fault::stall([from_server(0)]),
        &["--delete"],
    );
    drop(p);
    assert_failed(&run, "pop3-dump", 75, &["timed out"]);
    acct.assert_nothing_half_done(&run, None);
}

#[test]
fn pop3_dump_tls_handshake_cut_and_stalled() {
    let _bob = bob();
    let stack = Stack::get();
    let acct = Pop3::new("tls", 2, 5);
    let (run, p) = acct.run(
        "pop3s",
        stack.pop3s_port,
        Fault::cut([from_server(100)]),
        &[],
    );
    drop(p);
    assert_failed(&run, "pop3-dump", 76, &["TLS", "handshake"]);
    acct.assert_nothing_half_done(&run, None);

    let (run, p) = acct.run(
        "pop3s",
        stack.pop3s_port,
        Fault::stall([from_server(100)]),
        &[],
    );
    drop(p);
    assert_failed(&run, "pop3-dump", 75, &["TLS", "timed out"]);
    acct.assert_nothing_half_done(&run, None);

    let fault = Fault::cut([
        send("STLS\r\n"),
        Step::Sent(Dir::ToClient, b"\r\n".to_vec()),
        from_server(40),
    ]);
    let (run, p) = acct.run("pop3", stack.pop3_port, fault, &[]);
    drop(p);
    assert_failed(&run, "pop3-dump", 76, &["TLS", "handshake"]);
    acct.assert_nothing_half_done(&run, None);
}

#[test]
fn pop3_dump_greeting_and_auth_under_implicit_tls() {
    let _bob = bob();
    let stack = Stack::get();
    let acct = Pop3::new("tls-phases", 2, 5);
    // 2: after the client's Finished (no greeting); 4: after CAPA, then AUTH.
    for write in [2, 4] {
        for (fault, code, says) in [
            (
                Fault::cut(after_client_write(write)),
                75,
                "closed|lost|greeting",
            ),
            (Fault::stall(after_client_write(write)), 75, "timed out"),
        ] {
            let (run, p) = acct.run("pop3s", stack.pop3s_port, fault, &["--delete"]);
            assert_eq!(p.fired(), 1, "write {write}");
            drop(p);
            assert_failed(&run, "pop3-dump", code, &[says]);
            assert!(run.stdout.is_empty());
            acct.assert_nothing_half_done(&run, None);
        }
    }
}

#[test]
fn pop3_dump_auth_cut_and_stalled() {
    let _bob = bob();
    let stack = Stack::get();
    let acct = Pop3::new("auth", 2, 5);
    for (fault, code, says) in [
        (
            Fault::cut([
                send("AUTH "),
                Step::Sent(Dir::ToServer, b"\r\n".to_vec()),
                from_server(0),
            ]),
            75,
            "closed|lost",
        ),
        (
            Fault::stall([
                send("AUTH "),
                Step::Sent(Dir::ToServer, b"\r\n".to_vec()),
                from_server(0),
            ]),
            75,
            "timed out",
        ),
    ] {
        let (run, p) = acct.run(
            "pop3",
            stack.pop3_port,
            fault,
            &[PLAIN, &["--delete"]].concat(),
        );
        assert_eq!(p.fired(), 1, "AUTH was reached");
        drop(p);
        assert_failed(&run, "pop3-dump", code, &[says]);
        assert!(run.stdout.is_empty());
        acct.assert_nothing_half_done(&run, None);
    }
}

#[test]
fn pop3_dump_cut_and_stalled_mid_retr() {
    let _bob = bob();
    let stack = Stack::get();
    let acct = Pop3::new("mid", 6, 600); // about 36 KB each
    let total: usize = acct.held.iter().map(Vec::len).sum();
    for (fault, code, says) in [
        (
            Fault::cut([send("RETR "), from_server(total / 2)]),
            75,
            "closed|lost|final",
        ),
        (
            Fault::stall([send("RETR "), from_server(total / 2)]),
            75,
            "timed out",
        ),
    ] {
        let (run, p) = acct.run(
            "pop3",
            stack.pop3_port,
            fault,
            &[PLAIN, &["--delete"]].concat(),
        );
        assert_eq!(p.fired(), 1, "half of the RETRs passed");
        drop(p);
        assert_failed(&run, "pop3-dump", code, &[says]);
        acct.assert_nothing_half_done(&run, None);
    }
    // Under TLS, by bytes: half of everything the server sends.
    let (run, p) = acct.run(
        "pop3s",
        stack.pop3s_port,
        Fault::cut([from_server(total / 2)]),
        &["--delete"],
    );
    drop(p);
    assert_failed(&run, "pop3-dump", 75, &["closed|lost|final"]);
    acct.assert_nothing_half_done(&run, None);
}

#[test]
fn pop3_dump_cut_and_stalled_before_the_final_dot() {
    let _bob = bob();
    let stack = Stack::get();
    let acct = Pop3::new("final", 1, 30);
    for (fault, code, says) in [
        (
            Fault::cut([
                send("RETR "),
                Step::Before(Dir::ToClient, b"\r\n.\r\n".to_vec()),
            ]),
            75,
            "final|closed",
        ),
        (
            Fault::stall([
                send("RETR "),
                Step::Before(Dir::ToClient, b"\r\n.\r\n".to_vec()),
            ]),
            75,
            "timed out",
        ),
    ] {
        let (run, p) = acct.run(
            "pop3",
            stack.pop3_port,
            fault,
            &[PLAIN, &["--delete"]].concat(),
        );
        assert_eq!(p.fired(), 1, "the message was sent up to its final dot");
        drop(p);
        assert_failed(&run, "pop3-dump", code, &[says]);
        assert!(
            run.stdout.is_empty(),
            "nothing of a message without its dot is written"
        );
        acct.assert_nothing_half_done(&run, None);
    }
}

/// --delete: everything was written and flushed, DELE sent, then the reply
/// to QUIT (the commit) is cut or stalled. Whatever the server did, nothing
/// is lost: the output holds every message whole, and the messages are
/// either still on the server or were written.
#[test]
fn pop3_dump_delete_with_the_reply_to_quit_cut_or_stalled() {
    let _bob = bob();
    let stack = Stack::get();
    for (fault, says) in [
        (
            Fault::cut([send("QUIT\r\n"), from_server(0)]),
            "closed|lost|QUIT",
        ),
        (
            Fault::stall([send("QUIT\r\n"), from_server(0)]),
            "timed out|QUIT",
        ),
    ] {
        let acct = Pop3::new("quit", 3, 10);
        let (run, p) = acct.run(
            "pop3",
            stack.pop3_port,
            fault,
            &[PLAIN, &["--delete"]].concat(),
        );
        assert_eq!(p.fired(), 1, "QUIT was sent");
        drop(p);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(run.elapsed < deadline(), "took {:?}", run.elapsed);
        assert_eq!(
            mbox_messages(&run.stdout),
            acct.held,
            "every message written whole"
        );
        if run.code != Some(0) {
            assert_failed(&run, "pop3-dump", run.code.unwrap_or(-1), &[says]);
        }
        let state = std::fs::read(acct.state()).expect("the state was saved before DELE");
        assert!(!state.is_empty());
    }
}

#[test]
fn pop3_dump_slow_server_within_the_timeout_is_complete() {
    let _bob = bob();
    let stack = Stack::get();
    let acct = Pop3::new("slow", 3, 50);
    let (run, p) = acct.run(
        "pop3s",
        stack.pop3s_port,
        Fault::delay(Duration::from_millis(100)),
        &[],
    );
    drop(p);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(mbox_messages(&run.stdout), acct.held);
}
