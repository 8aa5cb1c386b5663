//! Throttling and limits against the real stack (issue 14): a provider that
//! ends an export for now (`* BYE Session expired`, `NO [LIMIT]`, POP3's
//! `-ERR [SYS/TEMP]`), injected by the fault proxy since Dovecot does not
//! say them on demand; `--max-bytes` for a daily download cap; and a mailbox
//! Dovecot renumbers (a new UIDVALIDITY) between two runs. Each checks what a
//! user would: the mbox holds whole messages only, the state file names
//! exactly what was written, the exit status and its one line, and that the
//! next run completes the mailbox with no message twice and none missing.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mailpipe_e2e::fault_proxy::{Action, Dir, Fault, FaultProxy, Options, Step};
use mailpipe_e2e::mail::{crlf, mbox_data, message_id, unique};
use mailpipe_e2e::maildrop::{self, numbered_message as message, Maildrop};
use mailpipe_e2e::{run_bounded, Finished as Run, Stack, Tool};

/// --timeout of every run, in seconds.
const TIMEOUT: u64 = 5;

/// One line `tool: ... (code)` on stderr holding each of `needles`, and the status.
fn assert_one_line(run: &Run, tool: &str, code: i32, needles: &[&str]) {
    let err = run.stderr.trim_end();
    assert_eq!(run.code, Some(code), "{tool}: status; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {err}");
    assert!(
        lines[0].starts_with(&format!("{tool}: ")) && lines[0].ends_with(&format!("({code})")),
        "{err}"
    );
    for needle in needles {
        assert!(err.contains(needle), "stderr should say {needle:?}: {err}");
    }
}

/// A fresh mailbox of alice's, what it holds (as IMAP serves it) and a state file.
struct Imap {
    stack: Stack,
    dir: tempfile::TempDir,
    mailbox: String,
    held: Vec<Vec<u8>>,
}

impl Imap {
    fn with(label: &str, count: usize, lines: usize) -> Imap {
        let stack = Stack::get();
        let mailbox = unique(&format!("limits-{label}"));
        stack.create_mailbox(&stack.user1, &mailbox);
        let mut acct = Imap {
            stack,
            dir: tempfile::tempdir().expect("tempdir"),
            mailbox,
            held: Vec::new(),
        };
        acct.add(count, lines);
        acct
    }

    fn add(&mut self, count: usize, lines: usize) {
        for _ in 0..count {
            let m = message(
                &format!("{}-{}", self.mailbox, self.held.len()),
                &self.stack.user1,
                lines,
            );
            self.stack.save(&self.stack.user1, &self.mailbox, &m);
            self.held.push(crlf(&m));
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("imap.state")
    }

    /// The mailbox's entry in the state file, if any.
    fn saved(&self) -> Option<serde_json::Value> {
        let bytes = std::fs::read(self.state()).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("state is JSON");
        let key = format!("{}@localhost", self.stack.user1);
        Some(v["accounts"][key][&self.mailbox].clone()).filter(|m| !m.is_null())
    }

    /// imap-dump of the mailbox with --state, at `port` over plaintext (so
    /// that the proxy can find a response by its bytes).
    fn command(&self, port: u16, extra: &[&str]) -> Command {
        let url = self.stack.url("imap", port);
        let mut cmd = self
            .stack
            .login(Tool::ImapDump, &url, &self.stack.user1, &self.stack.pass1);
        let args: Vec<OsString> = vec![
            "--tls".into(),
            "none".into(),
            "--allow-plaintext-auth".into(),
            format!("--timeout={TIMEOUT}").into(),
            "--mailbox".into(),
            self.mailbox.clone().into(),
            "-q".into(),
            "--no-compress".into(),
            "--state".into(),
            self.state().into(),
        ];
        cmd.env("HOME", self.dir.path()).args(args).args(extra);
        cmd
    }

    fn run(&self, port: u16, extra: &[&str]) -> Run {
        run_bounded(
            &mut self.command(port, extra),
            b"",
            Duration::from_secs(60),
            |_| {},
        )
    }

    /// Through a proxy with `fault` in front of the plaintext port.
    fn run_faulted(&self, fault: Fault, extra: &[&str]) -> Run {
        let options = Options {
            max_connections: 20,
            ..Options::default()
        };
        let proxy = FaultProxy::start_opts(self.stack.imap_port, fault, options);
        self.run(proxy.port(), extra)
    }

    /// The messages of a stopped run are the first ones held, each whole, and
    /// the state names exactly the last of them (UIDs of a fresh mailbox are
    /// 1, 2, ...): returns how many.
    fn assert_prefix_and_state(&self, out: &[u8]) -> usize {
        let got = mbox_data(out);
        assert!(got.len() <= self.held.len());
        for (i, m) in got.iter().enumerate() {
            assert!(
                *m == self.held[i],
                "message {i} is not whole or not in order"
            );
        }
        let last_uid = self.saved().and_then(|m| m["last_uid"].as_u64());
        match got.len() {
            0 => assert!(last_uid.is_none_or(|u| u == 0), "state without output"),
            n => assert_eq!(last_uid, Some(n as u64), "the state names the last written"),
        }
        got.len()
    }

    /// Everything written over all runs is the mailbox, each message once.
    fn assert_complete(&self, outputs: &[&[u8]]) {
        let ids: Vec<String> = outputs
            .iter()
            .flat_map(|o| mbox_data(o))
            .map(|m| message_id(&m).expect("Message-ID"))
            .collect();
        let unique_ids: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique_ids.len(), ids.len(), "a message was written twice");
        let held: BTreeSet<String> = self
            .held
            .iter()
            .map(|m| message_id(m).expect("Message-ID"))
            .collect();
        assert_eq!(
            ids.iter().cloned().collect::<BTreeSet<_>>(),
            held,
            "lost or foreign"
        );
    }
}

fn before_server(what: &[u8]) -> Step {
    Step::Before(Dir::ToClient, what.to_vec())
}

/// The bulk FETCH (the sizes' FETCH before it answers `* n FETCH` too).
fn after_body_fetch() -> Step {
    Step::Sent(Dir::ToServer, b"BODY.PEEK[]".to_vec())
}

/// Gmail's `* BYE Session expired` in the middle of the bulk FETCH, on
/// whichever connection fetches message 20 (one connection, and four with
/// two FETCHes in flight on each): exit 75 with the server's words and "run
/// again to resume", whole messages and an exact state, and a second run
/// completes the mailbox.
#[test]
fn bye_mid_fetch_stops_resumably() {
    for connections in ["1", "4"] {
        let acct = Imap::with(&format!("bye{connections}"), 30, 100);
        let fault = Fault::replace(
            [after_body_fetch(), before_server(b"* 20 FETCH ")],
            b"* BYE Session expired, please login again.\r\n",
            Action::Cut,
        );
        let extra = ["--batch-size", "20000", "--connections", connections];
        let first = acct.run_faulted(fault, &extra);
        assert_one_line(
            &first,
            "imap-dump",
            75,
            &["Session expired, please login again", "run again to resume"],
        );
        let written = acct.assert_prefix_and_state(&first.stdout);
        assert!(
            (1..=19).contains(&written),
            "{written} written before message 20 ({connections} connections)"
        );
        let second = acct.run(acct.stack.imap_port, &[]);
        assert_eq!(second.code, Some(0), "{}", second.stderr);
        acct.assert_complete(&[&first.stdout, &second.stdout]);
    }
}

/// Yahoo's `NO [LIMIT]` as the tagged reply to a FETCH (the second on each
/// connection), with FETCHes in flight, and RFC 5530's other "not now"
/// codes: the batch it ends is not written, 75 with the server's words.
#[test]
fn no_limit_mid_fetch_stops_resumably() {
    let cases = [
        ("LIMIT", "Download limit reached, try again later", "1"),
        ("LIMIT", "Download limit reached, try again later", "4"),
        ("OVERQUOTA", "Daily transfer quota exceeded", "4"),
        ("UNAVAILABLE", "Backend temporarily unavailable", "1"),
    ];
    for (code, text, connections) in cases {
        let acct = Imap::with(&format!("{code}{connections}"), 30, 100);
        let reply = format!("p2 NO [{code}] {text}\r\n");
        let fault = Fault::replace(
            [after_body_fetch(), before_server(b"p2 OK")],
            reply.as_bytes(),
            Action::Stall,
        );
        let extra = ["--batch-size", "20000", "--connections", connections];
        let first = acct.run_faulted(fault, &extra);
        let says = format!("NO: [{code}] {text}");
        assert_one_line(&first, "imap-dump", 75, &[&says, "run again to resume"]);
        let written = acct.assert_prefix_and_state(&first.stdout);
        assert!(written < 30, "{written} written");
        let second = acct.run(acct.stack.imap_port, &[]);
        assert_eq!(second.code, Some(0), "{}", second.stderr);
        acct.assert_complete(&[&first.stdout, &second.stdout]);
    }
}

/// Gmail allows 15 connections per account and answers the next with
/// `* BYE Too many simultaneous connections`: with --connections 4 and a
/// server that lets in two, imap-dump tries a third, is refused, opens no
/// fourth, and dumps the whole mailbox over the two it has.
#[test]
fn the_first_refused_connection_ends_the_opening() {
    let acct = Imap::with("refused", 40, 100);
    let options = Options {
        max_connections: 2,
        refuse_beyond: Some(b"* BYE Too many simultaneous connections\r\n".to_vec()),
        ..Options::default()
    };
    let proxy = FaultProxy::start_opts(acct.stack.imap_port, Fault::none(), options);
    let run = acct.run(proxy.port(), &["--batch-size", "16K", "--connections", "4"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(mbox_data(&run.stdout), acct.held);
    assert_eq!(proxy.connections(), 2, "two let in");
    assert_eq!(proxy.refused(), 1, "one refused, and no attempt after it");
}

/// `--max-bytes` stops before the message that would cross it: exit 0, one
/// line saying so, the state at the last message written; the next runs,
/// under the same cap, go on from there until the mailbox is complete.
#[test]
fn max_bytes_stops_at_the_right_message_and_the_next_run_goes_on() {
    let acct = Imap::with("maxbytes", 10, 100);
    let size = |range: std::ops::Range<usize>| -> usize {
        acct.held[range].iter().map(Vec::len).sum::<usize>()
    };
    // Four messages and most of the fifth.
    let cap = (size(0..4) + acct.held[4].len() - 10).to_string();
    let port = acct.stack.imap_port;
    let first = acct.run(port, &["--max-bytes", &cap]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let err = first.stderr.trim_end();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("imap-dump: ") && err.contains("--max-bytes") && err.contains("run again"),
        "{err}"
    );
    assert_eq!(acct.assert_prefix_and_state(&first.stdout), 4);
    let second = acct.run(port, &["--max-bytes", &cap]);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    let got = mbox_data(&second.stdout);
    assert_eq!(
        got,
        acct.held[4..8].to_vec(),
        "the next four, from the fifth"
    );
    let third = acct.run(port, &["--max-bytes", &cap]);
    assert_eq!(third.code, Some(0), "{}", third.stderr);
    assert_eq!(third.stderr, "", "the rest fits: nothing to say");
    acct.assert_complete(&[&first.stdout, &second.stdout, &third.stdout]);
    let last_uid = acct.saved().and_then(|m| m["last_uid"].as_u64());
    assert_eq!(last_uid, Some(10));
}

/// A renumbered mailbox (issue 14): 500 messages dumped with --state; two
/// more arrive; Dovecot then gives every message a new UID (moved out and
/// back) and the mailbox a new UIDVALIDITY; three more arrive. The second
/// run matches the mailbox against the keys the state recorded and writes
/// exactly the five new messages: no duplicate, nothing lost; a third run
/// writes nothing.
#[test]
fn a_renumbered_mailbox_gets_only_its_new_messages() {
    let mut acct = Imap::with("uidvalidity", 500, 3);
    let port = acct.stack.imap_port;
    let first = acct.run(port, &[]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(
        mbox_data(&first.stdout),
        acct.held,
        "the first run dumps all"
    );
    let validity = |acct: &Imap| -> u64 {
        let out = acct.stack.doveadm(
            &[
                "-f",
                "flow",
                "mailbox",
                "status",
                "-u",
                &acct.stack.user1,
                "uidvalidity",
                &acct.mailbox,
            ],
            b"",
        );
        let text = String::from_utf8_lossy(&out);
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("uidvalidity="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("doveadm mailbox status: {text}"))
    };
    let before = validity(&acct);
    let state_file = std::fs::metadata(acct.state())
        .map(|m| m.len())
        .unwrap_or(0);
    let sidecar = acct.dir.path().join("imap.state.keys");
    let keys = std::fs::metadata(&sidecar).map(|m| m.len()).unwrap_or(0);
    eprintln!("state of 500 messages: {state_file} bytes, keys sidecar {keys} bytes");
    assert_eq!(keys, 500 * 16, "16 bytes a message");

    acct.add(2, 3);
    let (user, mailbox) = (acct.stack.user1.clone(), acct.mailbox.clone());
    let aside = unique("limits-aside");
    let doveadm = |args: &[&str]| acct.stack.doveadm(args, b"");
    acct.stack.create_mailbox(&user, &aside);
    doveadm(&["move", "-u", &user, &aside, "mailbox", &mailbox, "all"]);
    doveadm(&["move", "-u", &user, &mailbox, "mailbox", &aside, "all"]);
    doveadm(&["mailbox", "delete", "-u", &user, &aside]);
    let renumbered = (before + 1000).to_string();
    doveadm(&[
        "mailbox",
        "update",
        "-u",
        &user,
        "--uid-validity",
        &renumbered,
        &mailbox,
    ]);
    assert_eq!(validity(&acct), before + 1000);
    acct.add(3, 3);

    let second = acct.run(port, &[]);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(
        second.stderr.contains("UIDVALIDITY changed") && second.stderr.contains("500 of 505"),
        "{}",
        second.stderr
    );
    let new_ids: BTreeSet<String> = mbox_data(&second.stdout)
        .iter()
        .map(|m| message_id(m).expect("Message-ID"))
        .collect();
    let arrived: BTreeSet<String> = acct.held[500..]
        .iter()
        .map(|m| message_id(m).expect("Message-ID"))
        .collect();
    assert_eq!(new_ids, arrived, "exactly the five that arrived");
    acct.assert_complete(&[&first.stdout, &second.stdout]);
    let saved = acct.saved().expect("state");
    assert_eq!(saved["uid_validity"].as_u64(), Some(before + 1000));

    let third = acct.run(port, &[]);
    assert_eq!(third.code, Some(0), "{}", third.stderr);
    assert!(
        mbox_data(&third.stdout).is_empty(),
        "nothing new: {}",
        third.stderr
    );
}

/// bob's maildrop (`Maildrop`), through the fault proxy.
struct Pop3(Maildrop);

impl std::ops::Deref for Pop3 {
    type Target = Maildrop;
    fn deref(&self) -> &Maildrop {
        &self.0
    }
}

impl Pop3 {
    fn with(label: &str, count: usize, lines: usize) -> Pop3 {
        Pop3(Maildrop::with(label, count, lines))
    }

    /// pop3-dump --state (not with --list) over plaintext at `port`.
    fn run(&self, port: u16, extra: &[&str]) -> Run {
        let url = self.stack.url("pop3", port);
        let mut cmd = self
            .stack
            .login(Tool::Pop3Dump, &url, &self.stack.user2, &self.stack.pass2);
        cmd.env("HOME", self.dir.path())
            .args(["--tls", "none", "--allow-plaintext-auth", "-q"])
            .arg(format!("--timeout={TIMEOUT}"))
            .args(extra);
        if !extra.contains(&"--list") {
            cmd.arg("--state").arg(self.state());
        }
        run_bounded(&mut cmd, b"", Duration::from_secs(60), |_| {})
    }

    /// The UIDLs on the server, in order.
    fn uidls(&self) -> Vec<String> {
        let out = self.run(self.stack.pop3_port, &["--list"]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        maildrop::listed_uidls(&out.stdout)
    }
}

/// The server answers the third RETR with `-ERR [SYS/TEMP]` (RFC 3206), or
/// the connection is cut there: the two messages before it are written
/// whole and the state names exactly them, exit 75 with one line (the
/// server's words, "run again to resume"), and a second run exports exactly
/// the rest. Before, the state was not saved at all (and [SYS/TEMP] was 76).
#[test]
fn pop3_sys_temp_or_a_cut_mid_export_stops_resumably() {
    let third_reply = || {
        vec![
            Step::Sent(Dir::ToServer, b"RETR 1\r\n".to_vec()),
            Step::Sent(Dir::ToClient, b"\r\n.\r\n".to_vec()),
            Step::Sent(Dir::ToClient, b"\r\n.\r\n".to_vec()),
        ]
    };
    let faults = [
        (
            Fault::replace(
                third_reply(),
                b"-ERR [SYS/TEMP] Mailbox temporarily unavailable\r\n",
                Action::Stall,
            ),
            "RETR 3: -ERR [SYS/TEMP] Mailbox temporarily unavailable",
        ),
        (Fault::cut(third_reply()), "closed"),
    ];
    for (fault, says) in faults {
        let acct = Pop3::with("systemp", 6, 50);
        let uidls = acct.uidls();
        let proxy = FaultProxy::start(acct.stack.pop3_port, fault);
        let first = acct.run(proxy.port(), &[]);
        drop(proxy);
        assert_one_line(&first, "pop3-dump", 75, &[says, "run again to resume"]);
        assert_eq!(mbox_data(&first.stdout), acct.held[..2].to_vec());
        let exported: BTreeSet<String> = uidls[..2].iter().cloned().collect();
        assert_eq!(
            acct.saved(),
            exported,
            "the state names exactly what was written"
        );
        let second = acct.run(acct.stack.pop3_port, &[]);
        assert_eq!(second.code, Some(0), "{}", second.stderr);
        assert_eq!(mbox_data(&second.stdout), acct.held[2..].to_vec());
        assert_eq!(acct.saved(), uidls.iter().cloned().collect());
    }
}

/// pop3-dump --max-bytes: the messages that fit, exit 0 and one line; the
/// next run goes on.
#[test]
fn pop3_max_bytes_stops_and_the_next_run_goes_on() {
    let acct = Pop3::with("maxbytes", 5, 50);
    let sizes: Vec<usize> = acct.held.iter().map(Vec::len).collect();
    let cap = (sizes[0] + sizes[1] + sizes[2] - 1).to_string();
    let first = acct.run(acct.stack.pop3_port, &["--max-bytes", &cap]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert!(
        first.stderr.starts_with("pop3-dump: --max-bytes") && first.stderr.lines().count() == 1,
        "{}",
        first.stderr
    );
    assert_eq!(mbox_data(&first.stdout), acct.held[..2].to_vec());
    let second = acct.run(acct.stack.pop3_port, &["--max-bytes", &cap]);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert_eq!(mbox_data(&second.stdout), acct.held[2..4].to_vec());
    let third = acct.run(acct.stack.pop3_port, &[]);
    assert_eq!(mbox_data(&third.stdout), acct.held[4..].to_vec());
}

/// A state written before keys were kept (no `keyed_from`, no sidecar) with
/// another UIDVALIDITY: nothing can be matched, so the whole mailbox is
/// dumped again with a warning saying why; the state then has keys.
#[test]
fn an_old_state_without_keys_falls_back_to_the_full_dump_with_a_warning() {
    let acct = Imap::with("oldstate", 3, 3);
    let key = format!("{}@localhost", acct.stack.user1);
    let old = serde_json::json!({
        "version": 2,
        "accounts": { key: { acct.mailbox.clone(): { "uid_validity": 1, "last_uid": 3 } } }
    });
    std::fs::write(acct.state(), old.to_string()).expect("old state");
    let run = acct.run(acct.stack.imap_port, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(mbox_data(&run.stdout), acct.held, "all of it again");
    let err = run.stderr.trim_end();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("UIDVALIDITY changed from 1")
            && err.contains("before imap-dump kept message keys"),
        "{err}"
    );
    let saved = acct.saved().expect("state");
    assert_eq!(saved["keyed_from"].as_u64(), Some(0), "{saved}");
}
