//! Regressions of an adversarial review, end to end against the real Dovecot
//! of `scripts/mailstack` (a scripted IMAP peer only for a server bug Dovecot
//! does not have). Mail is put in place with `doveadm`, an independent path.
//! The tests run one at a time: one of them reads Dovecot's log, which names
//! the user but not the session.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

use mailpipe::mbox::MboxReader;
use mailpipe_e2e::mail::unique;
use mailpipe_e2e::peer::{scripted_peer, Log};
use mailpipe_e2e::{run_into_head, run_with_stdout_closed, Stack, Tool};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One of the stack's users, with a scratch folder and its password in a file.
struct User {
    stack: Stack,
    user: String,
    dir: tempfile::TempDir,
}

impl User {
    fn alice() -> User {
        let stack = Stack::get();
        let (user, pass) = (stack.user1.clone(), stack.pass1.clone());
        User::new(stack, user, &pass)
    }

    fn bob() -> User {
        let stack = Stack::get();
        let (user, pass) = (stack.user2.clone(), stack.pass2.clone());
        User::new(stack, user, &pass)
    }

    fn new(stack: Stack, user: String, pass: &str) -> User {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("password"), format!("{pass}\n")).expect("password");
        User { stack, user, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn create(&self, mailbox: &str) {
        self.stack.create_mailbox(&self.user, mailbox);
    }

    /// Saves a message whose subject and body carry `tag`; `pad` bytes of body.
    fn save(&self, mailbox: &str, tag: &str, pad: usize) {
        let mut m = format!(
            "From: Alice <alice@example.test>\nTo: {}\nSubject: {tag}\n\
             Date: Mon, 23 Nov 2026 12:00:00 +0000\nMessage-ID: <{tag}@regressions.test>\n\n\
             {tag}\n",
            self.user
        )
        .into_bytes();
        m.extend(std::iter::repeat_n(b'x', pad));
        m.push(b'\n');
        self.stack
            .doveadm(&["save", "-u", &self.user, "-m", mailbox], &m);
    }

    fn cmd_port(&self, port: u16, args: &[&str]) -> Command {
        let url = self.stack.url("imaps", port);
        let mut cmd = self.stack.client(Tool::ImapDump, &url, &self.user);
        cmd.arg("--password-file")
            .arg(self.path("password"))
            .arg("--quiet")
            .args(args)
            .env("HOME", self.dir.path());
        cmd
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_port(self.stack.imaps_port, args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("imap-dump runs")
    }
}

fn ok(out: &Output) -> &[u8] {
    assert_eq!(
        out.status.code(),
        Some(0),
        "imap-dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    &out.stdout
}

/// The subjects of the messages in an mbox, in order.
fn subjects(mbox: &[u8]) -> Vec<String> {
    MboxReader::new(mbox)
        .map(|m| {
            let m = m.expect("a readable mbox");
            let text = String::from_utf8_lossy(&m.data).into_owned();
            text.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_default()
                .trim_end()
                .to_string()
        })
        .collect()
}

#[test]
fn list_and_all_undo_the_escapes_of_quoted_folder_names() {
    let _serial = serial();
    let bob = User::bob();
    let back = format!("back\\slash-{}", unique("b"));
    let quote = format!("quo\"te-{}", unique("q"));
    let after = format!("zz-after-{}", unique("z"));
    for (mailbox, tag) in [
        (&back, unique("in-back")),
        (&quote, unique("in-quote")),
        (&after, unique("in-after")),
    ] {
        bob.create(mailbox);
        bob.save(mailbox, &tag, 10);
    }
    let inbox_tag = unique("in-inbox");
    bob.save("INBOX", &inbox_tag, 10);

    let listed = bob.run(&["--list", "--json"]);
    let names: Vec<(String, Option<u64>)> = String::from_utf8_lossy(ok(&listed))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            (
                v["name"].as_str().expect("name").to_string(),
                v["messages"].as_u64(),
            )
        })
        .collect();
    for name in [&back, &quote, &after] {
        assert!(
            names.contains(&(name.clone(), Some(1))),
            "{name:?} with 1 message in {names:?}"
        );
    }

    let all = bob.run(&["--all"]);
    let got = subjects(ok(&all));
    for tag in ["in-back", "in-quote", "in-after"] {
        assert!(
            got.iter().any(|s| s.starts_with(tag)),
            "{tag} dumped: {got:?}"
        );
    }
    assert!(got.contains(&inbox_tag), "INBOX dumped: {got:?}");
}

#[test]
fn state_with_stdout_closed_is_refused_and_saves_nothing() {
    let _serial = serial();
    let alice = User::alice();
    let mailbox = unique("closed");
    alice.create(&mailbox);
    alice.save(&mailbox, &unique("closed-1"), 10);
    let state = alice.path("state");
    let out = run_with_stdout_closed(&alice.cmd(&[
        "--mailbox",
        &mailbox,
        "--state",
        state.to_str().expect("utf-8"),
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{stderr}");
    assert!(stderr.contains("/dev/null or closed"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!state.exists(), "no state was saved");
    // The next run, with somewhere to write, gets the message.
    let again = alice.run(&[
        "--mailbox",
        &mailbox,
        "--state",
        state.to_str().expect("utf-8"),
    ]);
    assert_eq!(subjects(ok(&again)).len(), 1);
}

#[test]
fn state_through_head_that_exits_early_is_not_advanced() {
    let _serial = serial();
    let alice = User::alice();
    let mailbox = unique("head");
    alice.create(&mailbox);
    for i in 0..3 {
        alice.save(&mailbox, &unique(&format!("head-{i}")), 2000);
    }
    let state = alice.path("state");
    let out = run_into_head(
        &mut alice.cmd(&[
            "--mailbox",
            &mailbox,
            "--state",
            state.to_str().expect("utf-8"),
        ]),
        10,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{stderr}");
    assert!(stderr.contains("run again"), "{stderr}");
    assert!(!state.exists(), "the state did not advance");
    let again = alice.run(&[
        "--mailbox",
        &mailbox,
        "--state",
        state.to_str().expect("utf-8"),
    ]);
    assert_eq!(subjects(ok(&again)).len(), 3, "every message comes again");
}

#[test]
fn messages_skipped_for_max_size_are_fetched_by_a_later_run() {
    let _serial = serial();
    let alice = User::alice();
    let mailbox = unique("maxsize");
    alice.create(&mailbox);
    let tags: Vec<String> = (0..3).map(|i| unique(&format!("size-{i}"))).collect();
    alice.save(&mailbox, &tags[0], 10);
    alice.save(&mailbox, &tags[1], 20_000);
    alice.save(&mailbox, &tags[2], 10);
    let state = alice.path("state");
    let state_arg = state.to_str().expect("utf-8");
    let first = alice.run(&[
        "--mailbox",
        &mailbox,
        "--state",
        state_arg,
        "--max-size",
        "5000",
    ]);
    assert_eq!(subjects(ok(&first)), vec![tags[0].clone(), tags[2].clone()]);
    // Still too large: skipped again, and still remembered.
    let second = alice.run(&[
        "--mailbox",
        &mailbox,
        "--state",
        state_arg,
        "--max-size",
        "5000",
    ]);
    assert!(subjects(ok(&second)).is_empty());
    let third = alice.run(&["--mailbox", &mailbox, "--state", state_arg]);
    assert_eq!(subjects(ok(&third)), vec![tags[1].clone()]);
    let fourth = alice.run(&["--mailbox", &mailbox, "--state", state_arg]);
    assert!(subjects(ok(&fourth)).is_empty(), "nothing twice");
}

#[test]
fn two_accounts_sharing_a_state_file_both_get_their_mail() {
    let _serial = serial();
    let alice = User::alice();
    let bob = User::bob();
    // The same name and UIDVALIDITY for both: only the account tells them apart.
    let mailbox = unique("shared");
    for user in [&alice, &bob] {
        user.create(&mailbox);
        user.stack.doveadm(
            &[
                "mailbox",
                "update",
                "-u",
                &user.user,
                "--uid-validity",
                "424242",
                &mailbox,
            ],
            b"",
        );
    }
    for i in 0..2 {
        alice.save(&mailbox, &unique(&format!("alice-{i}")), 10);
        bob.save(&mailbox, &unique(&format!("bob-{i}")), 10);
    }
    let state = alice.path("shared.state");
    let state_arg = state.to_str().expect("utf-8");
    let a = alice.run(&["--mailbox", &mailbox, "--state", state_arg]);
    assert_eq!(subjects(ok(&a)).len(), 2);
    let b = bob.run(&["--mailbox", &mailbox, "--state", state_arg]);
    let got = subjects(ok(&b));
    assert_eq!(got.len(), 2, "bob's own messages: {got:?}");
    assert!(got.iter().all(|s| s.starts_with("bob-")), "{got:?}");
    // And each account resumes after its own messages.
    for user in [&alice, &bob] {
        let again = user.run(&["--mailbox", &mailbox, "--state", state_arg]);
        assert!(subjects(ok(&again)).is_empty());
    }
}

#[test]
fn an_empty_state_file_is_an_empty_state() {
    let _serial = serial();
    let alice = User::alice();
    let mailbox = unique("empty-state");
    alice.create(&mailbox);
    alice.save(&mailbox, &unique("empty"), 10);
    let state = alice.path("empty.state");
    std::fs::write(&state, b"").expect("touch");
    let out = alice.run(&[
        "--mailbox",
        &mailbox,
        "--state",
        state.to_str().expect("utf-8"),
    ]);
    assert_eq!(subjects(ok(&out)).len(), 1);
    assert!(std::fs::metadata(&state).expect("state").len() > 0);
}

#[test]
fn an_untrusted_certificate_error_names_the_server() {
    let _serial = serial();
    let alice = User::alice();
    let port = alice.stack.untrusted_imaps_port;
    let out = alice.cmd_port(port, &[]).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("imap-dump: imaps://") && stderr.contains(&format!(":{port}: ")),
        "{stderr}"
    );
    assert!(stderr.contains("not trusted"), "{stderr}");
}

/// Dovecot's lines about `user`'s IMAP sessions that ended after `from` bytes
/// of its log, waiting (bounded) for at least one.
#[test]
fn an_error_after_login_logs_out() {
    let _serial = serial();
    let alice = User::alice();
    let from = alice.stack.dovecot_log_len();
    let out = alice.run(&["--mailbox", &unique("no-such-mailbox")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(66), "{stderr}");
    assert!(stderr.contains("cannot open mailbox"), "{stderr}");
    // Every session of alice's that ended since (ours, and any that ended
    // just before it but was logged late) logged out; none was cut.
    let lines = alice.stack.disconnects("imap", &alice.user, from);
    assert!(!lines.is_empty(), "no disconnect logged");
    assert!(lines.iter().all(|l| l.contains("Logged out")), "{lines:?}");
}

/// A plaintext IMAP peer with GNU Mailutils imap4d's bug: UIDNEXT says there
/// are newer messages, a UID range n:* finds none (SEARCH or FETCH). Returns
/// its port and the commands it received.
fn searchless_peer() -> (u16, Log) {
    scripted_peer(|peer| {
        if !peer.send(b"* OK [CAPABILITY IMAP4rev1] scripted\r\n") {
            return;
        }
        while let Some(line) = peer.command() {
            let (tag, command) = line.split_once(' ').unwrap_or(("*", ""));
            let upper = command.to_ascii_uppercase();
            let reply = if upper.starts_with("EXAMINE") {
                format!(
                    "* 3 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 10] n\r\n\
                     {tag} OK [READ-ONLY] done\r\n"
                )
            } else if upper.starts_with("UID SEARCH") {
                format!("* SEARCH\r\n{tag} OK done\r\n")
            } else if upper.starts_with("UID FETCH") {
                format!("{tag} OK done\r\n")
            } else if upper.starts_with("LOGOUT") {
                format!("* BYE bye\r\n{tag} OK done\r\n")
            } else {
                format!("{tag} OK done\r\n")
            };
            if !peer.send(reply.as_bytes()) {
                break;
            }
        }
    })
}

#[test]
fn an_empty_search_below_uidnext_is_warned_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    std::fs::write(
        &state,
        r#"{"version":1,"mailboxes":{"INBOX":{"uid_validity":7,"last_uid":5}}}"#,
    )
    .expect("state");
    let (port, log) = searchless_peer();
    let out = Command::new(Tool::ImapDump.path())
        .arg("--server")
        .arg(format!("imap://127.0.0.1:{port}"))
        .args([
            "--user",
            "u",
            "--tls",
            "none",
            "--allow-plaintext-auth",
            "-q",
        ])
        .arg("--state")
        .arg(&state)
        .env("IMAP_PASSWORD", "p")
        .env_remove("MAILPIPE_CONFIG")
        .env("HOME", dir.path())
        .env("NETRC", "/nonexistent")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let seen = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        seen.iter().any(|c| c
            .to_ascii_uppercase()
            .contains(" UID FETCH 6:* RFC822.SIZE")),
        "{seen:?}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("UIDNEXT is 10"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}
