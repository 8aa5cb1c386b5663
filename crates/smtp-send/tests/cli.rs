//! smtp-send through its binary, where no server is needed: bad input gives
//! one clear line and the right status; --dry-run shows what would be sent.

use mailpipe_e2e::mail::read_mbox;
use mailpipe_e2e::{code, run_with_stdin as run, stderr, Tool};

#[test]
fn empty_stdin_is_66() {
    let out = run(
        Tool::SmtpSend
            .command()
            .args(["--server", "smtps://127.0.0.1:1", "b@example.org"]),
        b"",
    );
    assert_eq!(code(&out), 66);
    assert_eq!(stderr(&out), "smtp-send: no message on stdin (66)\n");
    let out = run(
        Tool::SmtpSend
            .command()
            .args(["--server", "smtps://127.0.0.1:1", "--mbox", "-t"]),
        b"",
    );
    assert_eq!(code(&out), 66, "{}", stderr(&out));
}

#[test]
fn usage_errors_are_64() {
    let msg = b"From: a@example.org\nSubject: x\n\nbody\n";
    let out = run(
        Tool::SmtpSend
            .command()
            .args(["--server", "smtps://127.0.0.1:1"]),
        msg,
    );
    assert_eq!(code(&out), 64);
    assert!(stderr(&out).contains("no recipients"), "{}", stderr(&out));
    let out = run(
        Tool::SmtpSend
            .command()
            .args(["--server", "smtps://127.0.0.1:1", "not an address"]),
        msg,
    );
    assert_eq!(code(&out), 64);
    assert!(
        stderr(&out).contains("is not a valid address"),
        "{}",
        stderr(&out)
    );
    let out = run(Tool::SmtpSend.command().args(["--no-such-flag"]), msg);
    assert_eq!(code(&out), 64);
    let out = run(
        Tool::SmtpSend
            .command()
            .args(["--server", "imaps://h", "b@example.org"]),
        msg,
    );
    assert_eq!(code(&out), 64, "{}", stderr(&out));
}

#[test]
fn bad_messages_are_65_and_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = dir.path().join("dead.mbox");
    for (input, why) in [
        (
            &b"just some text\nno header\n"[..],
            "neither a header field",
        ),
        (b"Subject: x\n\nnul\0\n", "NUL"),
        (
            b"From: a@example.org\nTo: not an address\n\nx\n",
            "To header: ",
        ),
    ] {
        let out = run(
            Tool::SmtpSend
                .command()
                .args(["--server", "smtps://127.0.0.1:1", "-t", "--dead-letter"])
                .arg(&dead),
            input,
        );
        let err = stderr(&out);
        assert_eq!(code(&out), 65, "{err}");
        assert!(err.contains(why), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(read_mbox(&dead).len(), 3, "every refused message kept");
}

#[test]
fn dry_run_prints_envelope_and_message_without_bcc() {
    let msg = b"From: A <a@example.org>\nTo: b@example.org\nBcc: hidden@example.org\nSubject: x\n\n.body\n";
    let out = run(
        Tool::SmtpSend
            .command()
            .args(["-n", "-t", "extra@example.org"]),
        msg,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.starts_with(
        "MAIL FROM:<a@example.org>\nRCPT TO:<extra@example.org>\nRCPT TO:<b@example.org>\n\
         RCPT TO:<hidden@example.org>\n\nFrom: A <a@example.org>\nTo: b@example.org\nSubject: x\nDate: "
    ), "{text}");
    assert!(
        text.contains("\nMessage-ID: <") && text.ends_with("@example.org>\n\n.body\n"),
        "{text}"
    );
    assert!(!text.contains("Bcc"), "{text}");
}

#[test]
fn help_documents_the_recipient_policy_and_examples() {
    let out = run(Tool::SmtpSend.command().arg("--help"), b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 0);
    for needle in [
        "--partial",
        "--dead-letter",
        "--mbox",
        "--check",
        "Examples:",
        "nothing\nis sent (RSET)",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}
