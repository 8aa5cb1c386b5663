//! `--exec CMD` of imap-dump and pop3-dump against the real Dovecot: each
//! message goes to its own run of CMD with the exact bytes the server holds
//! and the MAILPIPE_* variables; a command that fails on the second message
//! stops the run with 75 naming it, the state keeps the first only, and the
//! next run (with a good command) delivers the second and the rest, once.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use mailpipe_e2e::mail::{crlf, inbox_lock, unique};
use mailpipe_e2e::{code, stderr, Stack, Tool};

/// A delivery agent that keeps what it is given in `dir`: message N (in the
/// order it was run) as `msg.N`, its environment's MAILPIPE_* and SENDER
/// lines as `env.N`; it fails (exit 3) on the run numbered `fail_on`.
fn agent(dir: &Path, fail_on: u32) -> String {
    let script = dir.join(format!("agent-{fail_on}.sh"));
    fs::write(
        &script,
        format!(
            "d={d}\n\
             n=$(cat \"$d/count\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$d/count\"\n\
             cat > \"$d/msg.$n\"\n\
             env | grep -E '^(MAILPIPE_[A-Z]+|SENDER)=' | sort > \"$d/env.$n\"\n\
             [ $n -ne {fail_on} ] || exit 3\n",
            d = dir.display()
        ),
    )
    .expect("agent script");
    format!("sh {}", script.display())
}

/// The messages the agent was given, in order, and each one's variables.
fn delivered(dir: &Path) -> Vec<(Vec<u8>, BTreeMap<String, String>)> {
    let count: u32 = fs::read_to_string(dir.join("count"))
        .map(|t| t.trim().parse().expect("count"))
        .unwrap_or(0);
    (1..=count)
        .map(|n| {
            let bytes = fs::read(dir.join(format!("msg.{n}"))).expect("message");
            let env = fs::read_to_string(dir.join(format!("env.{n}"))).expect("env");
            let vars = env
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (bytes, vars)
        })
        .collect()
}

/// Three messages, CRLF as the servers serve them, each with a line that an
/// mbox would quote (`From `): the command must get it unquoted.
fn messages(tag: &str, stack: &Stack) -> Vec<Vec<u8>> {
    (1..=3)
        .map(|i| {
            crlf(
                format!(
                    "Return-Path: <sender{i}@example.org>\n\
                     From: sender{i}@example.org\nTo: {to}\nSubject: {tag} {i}\n\
                     Message-ID: <{tag}.{i}@example.org>\n\n\
                     message {i}\nFrom here on, no From_ quoting.\n",
                    to = stack.user1
                )
                .as_bytes(),
            )
        })
        .collect()
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run the tool")
}

/// The first run, whose agent failed on its second message: 75 and one line
/// naming `which` message and the status.
fn assert_stopped(first: &Output, which: &str) {
    assert_eq!(code(first), 75, "{}", stderr(first));
    let err = stderr(first);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(which) && err.contains("exit status 3"),
        "{err}"
    );
    assert!(
        first.stdout.is_empty(),
        "nothing on stdout but the command's"
    );
}

/// After the second run (a good agent): the agent saw message 1, then 2
/// (failed), then 2 again and 3, byte for byte, each with the variables
/// both tools set. Returns each delivery's message number (1-based) and
/// variables.
fn assert_resumed(
    dir: &Path,
    second: &Output,
    sent: &[Vec<u8>],
    tool: &str,
    mailbox: &str,
    account: &str,
) -> Vec<(usize, BTreeMap<String, String>)> {
    assert_eq!(code(second), 0, "{}", stderr(second));
    let got = delivered(dir);
    let order: Vec<&[u8]> = got.iter().map(|(b, _)| b.as_slice()).collect();
    assert_eq!(
        order,
        vec![&sent[0][..], &sent[1][..], &sent[1][..], &sent[2][..]],
        "the exact bytes, each message done once"
    );
    let numbered: Vec<(usize, BTreeMap<String, String>)> = got
        .into_iter()
        .zip([1, 2, 2, 3])
        .map(|((_, vars), n)| (n, vars))
        .collect();
    for (n, vars) in &numbered {
        assert_eq!(
            vars["MAILPIPE_SIZE"],
            sent[n - 1].len().to_string(),
            "{vars:?}"
        );
        assert_eq!(vars["MAILPIPE_MAILBOX"], mailbox);
        assert_eq!(vars["MAILPIPE_TOOL"], tool);
        assert_eq!(vars["MAILPIPE_ACCOUNT"], account);
        assert_eq!(vars["SENDER"], format!("sender{n}@example.org"));
        assert_eq!(vars["MAILPIPE_SENDER"], vars["SENDER"]);
        assert!(vars.contains_key("MAILPIPE_DATE"), "{vars:?}");
        assert!(vars.contains_key("MAILPIPE_SERVER"), "{vars:?}");
    }
    numbered
}

#[test]
fn imap_dump_exec_stops_at_a_failing_command_and_resumes_from_the_state() {
    let s = Stack::get();
    let tag = unique("exec-imap");
    let mailbox = format!("Exec{}", tag.replace(['.', '-', '@'], ""));
    s.create_mailbox(&s.user1, &mailbox);
    let sent = messages(&tag, &s);
    for m in &sent {
        s.save(&s.user1, &mailbox, m);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let dump = |command: &str| {
        let mut cmd = s.user1(Tool::ImapDump, &s.url("imaps", s.imaps_port));
        cmd.args(["-m", &mailbox, "--exec", command, "--state"])
            .arg(&state);
        run(cmd)
    };

    let first = dump(&agent(dir.path(), 2));
    assert_stopped(&first, "UID 2 in ");
    let saved: serde_json::Value =
        serde_json::from_slice(&fs::read(&state).expect("state saved")).expect("state json");
    let key = format!("{}@localhost", s.user1);
    assert_eq!(
        saved["accounts"][&key][&mailbox]["last_uid"], 1,
        "the state stops at the first message: {saved}"
    );

    // Run 1 took message 1 and failed on 2; run 2 gave 2 again, then 3.
    let second = dump(&agent(dir.path(), 0));
    let got = assert_resumed(dir.path(), &second, &sent, "imap-dump", &mailbox, &key);
    for (uid, vars) in &got {
        assert_eq!(vars["MAILPIPE_UID"], uid.to_string(), "{vars:?}");
        assert!(vars.contains_key("MAILPIPE_UIDVALIDITY"), "{vars:?}");
    }

    // Nothing new: no run of the command at all.
    let third = dump(&agent(dir.path(), 0));
    assert_eq!(code(&third), 0, "{}", stderr(&third));
    assert_eq!(delivered(dir.path()).len(), 4);
}

#[test]
fn pop3_dump_exec_stops_at_a_failing_command_and_resumes_from_the_state() {
    let s = Stack::get();
    let _inbox = inbox_lock(0);
    s.expunge_inbox(&s.user1);
    let tag = unique("exec-pop3");
    let sent = messages(&tag, &s);
    for m in &sent {
        s.save(&s.user1, "INBOX", m);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("pop3.state");
    let dump = |command: &str| {
        let mut cmd = s.user1(Tool::Pop3Dump, &s.url("pop3s", s.pop3s_port));
        cmd.args(["--exec", command, "--state"]).arg(&state);
        run(cmd)
    };

    let first = dump(&agent(dir.path(), 2));
    assert_stopped(&first, "message 2 (UIDL ");
    let got = delivered(dir.path());
    let first_uidl = got[0].1["MAILPIPE_UIDL"].clone();
    let state_text = fs::read_to_string(&state).expect("state saved");
    assert!(state_text.contains(&first_uidl), "{state_text}");
    assert!(
        !state_text.contains(&got[1].1["MAILPIPE_UIDL"]),
        "the failed message is not in the state: {state_text}"
    );

    let second = dump(&agent(dir.path(), 0));
    let account = format!("{}@localhost", s.user1);
    let got = assert_resumed(dir.path(), &second, &sent, "pop3-dump", "INBOX", &account);
    for (n, vars) in &got {
        assert_eq!(vars["MAILPIPE_NUMBER"], n.to_string(), "{vars:?}");
        assert!(!vars["MAILPIPE_UIDL"].is_empty());
    }
    assert_eq!(got[1].1["MAILPIPE_UIDL"], got[2].1["MAILPIPE_UIDL"]);
    s.expunge_inbox(&s.user1);
}
