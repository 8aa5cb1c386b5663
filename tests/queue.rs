//! smtp-send's outbox against the real Postfix and Dovecot: with the server
//! unreachable (a closed port on 127.0.0.1) `--queue DIR` keeps each message
//! and exits 0; `--list DIR` shows them; two `--flush DIR` at the same time
//! deliver each exactly once (counted in the recipient's Maildir); a
//! recipient Postfix refuses with 550 sends its message to `DIR/dead/` with
//! the reply, and the others are still delivered; one it defers with 451 is
//! queued by `--queue` (exit 0) and kept by `--flush` (75).

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mailpipe_e2e::mail::{crlf, unique};
use mailpipe_e2e::{code, run_with_stdin, stderr, Stack, Tool};

/// A port on 127.0.0.1 where nothing listens (bound, then let go).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// smtp-send as alice at `port` (implicit TLS), plus `args`.
fn smtp_send(s: &Stack, port: u16, args: &[&str]) -> Command {
    let mut cmd = s.user1(Tool::SmtpSend, &s.url("smtps", port));
    cmd.args(args);
    cmd
}

/// A whole message (Date and Message-ID given, so the outbox keeps it byte
/// for byte) to `to`, found later by its Message-ID.
fn message(s: &Stack, to: &str, id: &str) -> Vec<u8> {
    crlf(
        format!(
            "From: {from}\nTo: {to}\nSubject: outbox {id}\nDate: Mon, 30 Nov 2026 02:00:00 +0000\n\
             Message-ID: <{id}@example.org>\n\nqueued while offline: {id}\n",
            from = s.user1
        )
        .as_bytes(),
    )
}

fn queue_offline(s: &Stack, outbox: &Path, bytes: &[u8]) -> Output {
    let dir = outbox.to_str().expect("utf-8 path");
    run_with_stdin(
        &mut smtp_send(s, closed_port(), &["-t", "--queue", dir]),
        bytes,
    )
}

fn list(s: &Stack, outbox: &Path) -> Vec<Vec<String>> {
    let out = smtp_send(
        s,
        closed_port(),
        &["--list", outbox.to_str().expect("path")],
    )
    .output()
    .expect("smtp-send --list");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// `smtp-send --flush DIR` against the stack's Postfix, to the end.
fn flush(s: &Stack, outbox: &Path) -> Output {
    smtp_send(
        s,
        s.smtps_port,
        &["--flush", outbox.to_str().expect("path")],
    )
    .output()
    .expect("smtp-send --flush")
}

fn eml_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".eml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn five_messages_queued_offline_are_delivered_once_by_two_flushes_at_once() {
    let s = Stack::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let outbox = tmp.path().join("outbox");
    let tag = unique("queue5");
    let ids: Vec<String> = (1..=5).map(|i| format!("{tag}.{i}")).collect();
    for id in &ids {
        let out = queue_offline(&s, &outbox, &message(&s, &s.user2, id));
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains("queued as ")
                && err.contains(&outbox.join("new").display().to_string())
                && err.contains("cannot connect to"),
            "{err}"
        );
    }
    assert_eq!(eml_files(&outbox.join("new")).len(), 5);
    assert_eq!(eml_files(&outbox.join("tmp")).len(), 0);

    let listed = list(&s, &outbox);
    assert_eq!(listed.len(), 5, "{listed:?}");
    for (line, id) in listed.iter().zip(&ids) {
        assert_eq!(line.len(), 7, "{line:?}");
        assert_eq!(line[1], "queued");
        assert_eq!(line[3], message(&s, &s.user2, id).len().to_string());
        assert_eq!(line[4], s.user1);
        assert_eq!(line[5], s.user2);
        assert!(line[6].contains("cannot connect to"), "{line:?}");
    }
    s.assert_nothing_delivered(&s.user2, &tag);

    let flush = || {
        smtp_send(
            &s,
            s.smtps_port,
            &["--flush", outbox.to_str().expect("path")],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("smtp-send --flush")
    };
    let (a, b) = (flush(), flush());
    for run in [a, b] {
        let out = run.wait_with_output().expect("flush ends");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    for id in &ids {
        let got = s.wait_for(&s.user2, id, 1);
        assert_eq!(got.len(), 1, "{id} arrived");
    }
    // A second copy would arrive within moments of the first.
    std::thread::sleep(Duration::from_millis(1500));
    for id in &ids {
        assert_eq!(
            s.find_messages(&s.user2, id).len(),
            1,
            "{id} delivered exactly once"
        );
    }
    assert!(eml_files(&outbox.join("new")).is_empty());
    assert!(list(&s, &outbox).is_empty());

    // With the server up, --queue sends at once and queues nothing.
    let now = format!("{tag}.now");
    let out = run_with_stdin(
        &mut smtp_send(
            &s,
            s.smtps_port,
            &["-t", "--queue", outbox.to_str().expect("path")],
        ),
        &message(&s, &s.user2, &now),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(s.wait_for(&s.user2, &now, 1).len(), 1);
    assert!(eml_files(&outbox.join("new")).is_empty());
}

#[test]
fn a_message_refused_with_550_goes_to_the_dead_letter_and_the_rest_are_delivered() {
    let s = Stack::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let outbox = tmp.path().join("outbox");
    let tag = unique("queue550");
    let good1 = message(&s, &s.user2, &format!("{tag}.1"));
    let refused = message(&s, &s.reject_rcpt, &format!("{tag}.2"));
    let good3 = message(&s, &s.user2, &format!("{tag}.3"));
    for bytes in [&good1, &refused, &good3] {
        let out = queue_offline(&s, &outbox, bytes);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }

    let out = flush(&s, &outbox);
    assert_eq!(code(&out), 67, "a refusal for good: {}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("refused for good") && err.contains("550"),
        "{err}"
    );
    assert_eq!(s.wait_for(&s.user2, &format!("{tag}.1"), 1).len(), 1);
    assert_eq!(s.wait_for(&s.user2, &format!("{tag}.3"), 1).len(), 1);
    assert!(eml_files(&outbox.join("new")).is_empty());

    // The dead letter: the message byte for byte, and the server's reply.
    let dead = eml_files(&outbox.join("dead"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    let dead_path = outbox.join("dead").join(&dead[0]);
    assert_eq!(fs::read(&dead_path).expect("dead letter"), refused);
    let sidecar: serde_json::Value =
        serde_json::from_slice(&fs::read(dead_path.with_extension("json")).expect("sidecar"))
            .expect("json");
    let reply = sidecar["last_error"].as_str().expect("the reply");
    assert!(
        reply.contains(&s.reject_rcpt) && reply.contains("550"),
        "{sidecar}"
    );
    assert_eq!(sidecar["recipients"][0], s.reject_rcpt.as_str());
    let listed = list(&s, &outbox);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0][1], "dead");
    assert!(listed[0][6].contains("550"), "{listed:?}");

    // A later flush has nothing to send and does not touch the dead letter.
    let out = flush(&s, &outbox);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(dead_path.exists());
}

#[test]
fn a_4xx_answer_is_queued_and_a_flush_keeps_it_for_later() {
    let s = Stack::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let outbox = tmp.path().join("outbox");
    let tag = unique("queue451");
    let bytes = message(&s, &s.defer_rcpt, &tag);
    let dir = outbox.to_str().expect("path");
    let out = run_with_stdin(
        &mut smtp_send(&s, s.smtps_port, &["-t", "--queue", dir]),
        &bytes,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("queued as ") && err.contains("451"), "{err}");

    let out = flush(&s, &outbox);
    assert_eq!(code(&out), 75, "kept for later: {}", stderr(&out));
    let queued = eml_files(&outbox.join("new"));
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(
        fs::read(outbox.join("new").join(&queued[0])).expect("queued message"),
        bytes
    );
    let sidecar: serde_json::Value = serde_json::from_slice(
        &fs::read(outbox.join("new").join(&queued[0]).with_extension("json")).expect("sidecar"),
    )
    .expect("json");
    assert_eq!(sidecar["attempts"], 2, "{sidecar}");
    let listed = list(&s, &outbox);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0][1], "queued");
    assert!(listed[0][6].contains("451"), "{listed:?}");
    assert!(eml_files(&outbox.join("dead")).is_empty());
}
