//! PIPELINING (RFC 2920) and CHUNKING/BDAT (RFC 3030) against the real
//! Postfix of scripts/mailstack, over its four implicit-TLS listeners: with
//! both, without PIPELINING, without CHUNKING, without either. Whatever the
//! server offers, the same bytes arrive, refusals are reported the same way,
//! and an mbox arrives whole, each message once. Needs the stack's
//! environment (`eval "$(scripts/mailstack env DIR)"`); fails without it.

use std::process::{Command, Output};

use mailpipe_e2e::mail::{crlf_to_lf, read_mbox, split, unique};
use mailpipe_e2e::{code, run_with_file_stdin, run_with_stdin as run, stderr, Stack, Tool};

/// A listener: its name in messages, its port, and what Postfix offers there.
struct Listener {
    name: &'static str,
    port: u16,
    pipelining: bool,
    chunking: bool,
}

fn listeners(stack: &Stack) -> [Listener; 4] {
    let l = |name, port, pipelining, chunking| Listener {
        name,
        port,
        pipelining,
        chunking,
    };
    [
        l("both", stack.smtps_port, true, true),
        l("no PIPELINING", stack.smtps_nopipe_port, false, true),
        l("no CHUNKING", stack.smtps_nochunk_port, true, false),
        l("neither", stack.smtps_basic_port, false, false),
    ]
}

fn client(stack: &Stack, listener: &Listener) -> Command {
    stack.user1(Tool::SmtpSend, &stack.url("smtps", listener.port))
}

/// stderr with the listener's port replaced, to compare runs across listeners.
fn same_text(out: &Output, listener: &Listener) -> String {
    stderr(out).replace(&format!(":{}", listener.port), ":PORT")
}

/// Dot lines, a line that looks like a BDAT command, 8-bit text, CRLF and
/// bare LF mixed, a long line, and no line end at the end.
fn tricky_message(tag: &str, to: &str) -> Vec<u8> {
    let mut m = format!(
        "From: alice@example.test\nTo: {to}\nSubject: {tag}\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
         .\n..\n.leading dot\r\nBDAT 5 LAST\nPrüfung — 试验 \u{1F600}\r\n\r\n\
         {}\n.\r\nlast line without an end",
        "x".repeat(900)
    )
    .into_bytes();
    // Bytes above 127 that are not UTF-8 at all (a Latin-1 body).
    m.extend_from_slice(b"\n\xe9t\xe9 \xa0\xff\n.");
    m
}

#[test]
fn every_listener_delivers_the_same_bytes() {
    let stack = Stack::get();
    let mut bodies = Vec::new();
    for listener in listeners(&stack) {
        let tag = unique("same-bytes");
        let sent = tricky_message(&tag, &stack.user2);
        let out = run(client(&stack, &listener).args(["-t", "-v"]), &sent);
        let err = stderr(&out);
        assert_eq!(code(&out), 0, "{}: {err}", listener.name);
        // What went on the wire: BDAT where offered, else DATA; the body as a
        // byte count only.
        assert_eq!(
            err.contains("C: BDAT "),
            listener.chunking,
            "{}: {err}",
            listener.name
        );
        assert_eq!(
            err.contains("C: DATA"),
            !listener.chunking,
            "{}",
            listener.name
        );
        assert!(
            !err.contains("Prüfung") && !err.contains("leading dot"),
            "{}: the transcript shows the body: {err}",
            listener.name
        );
        assert!(err.contains("BODY=8BITMIME"), "{}: {err}", listener.name);
        // Pipelined: the RCPT leaves before MAIL's reply is read.
        let mail_then_rcpt = err.contains("C: MAIL FROM:<alice@example.test>")
            && err
                .lines()
                .skip_while(|l| !l.starts_with("C: MAIL FROM"))
                .nth(1)
                .is_some_and(|l| l.starts_with("C: RCPT TO"));
        assert_eq!(
            mail_then_rcpt, listener.pipelining,
            "{}: {err}",
            listener.name
        );
        let got = stack.wait_for(&stack.user2, &tag, 1);
        assert_eq!(got.len(), 1, "{}: delivered once", listener.name);
        let mut expected = crlf_to_lf(&sent);
        expected.push(b'\n');
        let (_, body) = split(&got[0]);
        assert_eq!(
            body,
            split(&expected).1,
            "{}: the body changed:\n{}",
            listener.name,
            String::from_utf8_lossy(body)
        );
        bodies.push(body.to_vec());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
}

/// One recipient refused among two, without and with --partial, and the only
/// recipient refused: the same lines, the same JSON report and the same exit
/// status over every listener; nothing sent without --partial.
#[test]
fn refusals_are_reported_the_same_over_every_listener() {
    let stack = Stack::get();
    let mut seen: Vec<(String, (i32, String, String))> = Vec::new();
    for listener in listeners(&stack) {
        for (case, to, partial) in [
            (
                "one-of-two",
                format!("{}, {}", stack.user2, stack.reject_rcpt),
                false,
            ),
            (
                "partial",
                format!("{}, {}", stack.reject_rcpt, stack.user2),
                true,
            ),
            ("only", stack.reject_rcpt.clone(), false),
        ] {
            let tag = unique(&format!("refused-{case}"));
            let sent = format!(
                "From: alice@example.test\nTo: {to}\nSubject: {tag}\nDate: x\nMessage-ID: <{case}@x>\n\nbody\n"
            );
            let mut cmd = client(&stack, &listener);
            cmd.args(["-t", "--report", "json"]);
            if partial {
                cmd.arg("--partial");
            }
            let out = run(&mut cmd, sent.as_bytes());
            let err = same_text(&out, &listener);
            assert_eq!(code(&out), 67, "{} {case}: {err}", listener.name);
            assert!(
                err.contains(&format!("{}: refused: 550 5.1.1", stack.reject_rcpt)),
                "{} {case}: {err}",
                listener.name
            );
            let report: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("one JSON object");
            let mut report = report.clone();
            // The queue id differs from run to run.
            report["server_reply"] = serde_json::Value::Null;
            let report = report
                .to_string()
                .replace(&format!(":{}", listener.port), ":PORT");
            let outcome = (code(&out), err, report);
            match seen.iter().find(|(c, _)| c == case) {
                Some((_, first)) => assert_eq!(&outcome, first, "{} {case}", listener.name),
                None => seen.push((case.to_string(), outcome)),
            }
            if partial {
                assert_eq!(stack.wait_for(&stack.user2, &tag, 1).len(), 1);
            } else {
                stack.assert_nothing_delivered(&stack.user2, &tag);
            }
        }
    }
}

/// 40 messages from a file with a refused one, a half-refused one and a
/// deferred one among them, over each listener: every other message arrives
/// exactly once, the failures are kept, and the session is reset only after
/// them (with PIPELINING and CHUNKING, at the head of each flight sent while
/// others are in flight).
#[test]
fn mbox_arrives_whole_and_once_over_every_listener() {
    let stack = Stack::get();
    for listener in listeners(&stack) {
        let tag = unique("mbox-ext");
        let dir = tempfile::tempdir().expect("temp dir");
        let dead = dir.path().join("dead.mbox");
        let mut mbox = Vec::new();
        let mut messages = Vec::new();
        let mut failing = Vec::new();
        for i in 1..=40 {
            let to = match i {
                10 => stack.reject_rcpt.clone(),
                20 => format!("{}, {}", stack.user2, stack.reject_rcpt),
                30 => format!("{}, {}", stack.defer_rcpt, stack.user2),
                _ => stack.user2.clone(),
            };
            if [10, 20, 30].contains(&i) {
                failing.push(i);
            }
            let body = if i % 7 == 0 {
                // Over 64 KiB: the BDAT waits for the RCPT replies.
                format!(".{i}\n..\n{}", format!("{}\n", "y".repeat(79)).repeat(900))
            } else {
                format!("message {i}\nFrom the middle\n.\n")
            };
            let m = format!("From: alice@example.test\nTo: {to}\nSubject: {tag} #{i:03}\n\n{body}");
            mailpipe::mbox::MboxWriter::new(&mut mbox)
                .write_message("alice@example.test", chrono::Utc::now(), m.as_bytes())
                .expect("mbox");
            messages.push(m.into_bytes());
        }
        // From a file, so that a message is read ahead (its commands follow
        // the previous message's data where that goes by DATA).
        let out = run_with_file_stdin(
            client(&stack, &listener)
                .args(["--mbox", "-t", "-v", "--dead-letter"])
                .arg(&dead),
            dir.path(),
            &mbox,
        );
        let err = stderr(&out);
        let tail = &err[err.len().saturating_sub(3000)..];
        assert_eq!(code(&out), 75, "{}: {tail}", listener.name);
        assert_eq!(err.matches("C: EHLO").count(), 1, "{}", listener.name);
        if listener.pipelining && listener.chunking {
            // Several messages per round trip: each flight sent while
            // others are in flight begins with its own RSET; a message that
            // cannot go in the window (two recipients, over 1 MiB) waits for
            // the window to land, and for an RSET if the last one failed.
            let lines: Vec<&str> = err.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if *line == "C: RSET" {
                    assert!(
                        lines[i + 1].starts_with("C: MAIL FROM:")
                            || lines[i + 1].starts_with("S: 250"),
                        "{}: RSET heads a flight: {}",
                        listener.name,
                        lines[i + 1]
                    );
                }
            }
        } else {
            assert_eq!(
                err.matches("C: RSET").count(),
                3,
                "{}: RSET after each failure only",
                listener.name
            );
        }
        assert!(
            err.contains("3 of 40 messages not delivered"),
            "{}: {tail}",
            listener.name
        );
        let delivered = stack.wait_for(&stack.user2, &tag, 37);
        assert_eq!(delivered.len(), 37, "{}", listener.name);
        for (i, sent) in messages.iter().enumerate() {
            let subject = format!("Subject: {tag} #{:03}\n", i + 1);
            let copies: Vec<&Vec<u8>> = delivered
                .iter()
                .filter(|m| memchr::memmem::find(m, subject.as_bytes()).is_some())
                .collect();
            if failing.contains(&(i + 1)) {
                assert!(
                    copies.is_empty(),
                    "{}: message {} sent",
                    listener.name,
                    i + 1
                );
                continue;
            }
            assert_eq!(copies.len(), 1, "{}: message {}", listener.name, i + 1);
            assert_eq!(split(copies[0]).1, split(sent).1, "{}", listener.name);
        }
        let kept: Vec<Vec<u8>> = failing.iter().map(|&i| messages[i - 1].clone()).collect();
        assert_eq!(read_mbox(&dead), kept, "{}", listener.name);
    }
}
