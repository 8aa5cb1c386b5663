//! smtp-send against the real Postfix of scripts/mailstack: what arrives in
//! the recipients' Maildirs, what is refused, what is kept. Needs the stack's
//! environment (`eval "$(scripts/mailstack env DIR)"`); fails without it.

use std::process::Command;

use base64::Engine;
use mailpipe_e2e::fault_proxy::{Fault, FaultProxy, Options};
use mailpipe_e2e::mail::{crlf_to_lf, header_fields, read_mbox, split, unique};
use mailpipe_e2e::{code, run_with_file_stdin, run_with_stdin as run, stderr, Stack, Tool};

/// `smtp-send --server URL` as user 1 (see [`Stack::user1`]).
fn client(stack: &Stack, url: &str) -> Command {
    stack.user1(Tool::SmtpSend, url)
}

/// [`client`] aimed at the stack's implicit-TLS port.
fn smtps(stack: &Stack) -> Command {
    client(stack, &stack.url("smtps", stack.smtps_port))
}

fn message(tag: &str, to: &str, bcc: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.test>\nTo: {to}\nBcc: {bcc}\nSubject: {tag}\n\
         X-Test: kept in order\n\nHello {tag}.\n.a line starting with a dot\n..two dots\n.\nend\n"
    )
    .into_bytes()
}

/// The body arrives byte for byte (Dovecot stores LF), the original header
/// fields arrive in order, and Bcc does not arrive at all.
fn assert_delivered_intact(sent: &[u8], stored: &[u8]) {
    let sent = crlf_to_lf(sent);
    let (sent_head, sent_body) = split(&sent);
    let (head, body) = split(stored);
    assert_eq!(
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(sent_body),
        "body changed"
    );
    let stored_fields = header_fields(head);
    let expected: Vec<String> = header_fields(sent_head)
        .into_iter()
        .filter(|f| !f.to_ascii_lowercase().starts_with("bcc:"))
        .collect();
    let positions: Vec<usize> = expected
        .iter()
        .map(|f| {
            stored_fields
                .iter()
                .position(|s| s == f)
                .unwrap_or_else(|| panic!("header {f:?} missing in {stored_fields:?}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "header order changed: {stored_fields:?}"
    );
    assert!(
        !stored_fields
            .iter()
            .any(|f| f.to_ascii_lowercase().starts_with("bcc:")),
        "a Bcc header was delivered: {stored_fields:?}"
    );
    assert!(stored_fields.iter().any(|f| f.starts_with("Date: ")));
    assert!(stored_fields.iter().any(|f| f.starts_with("Message-ID: <")));
}

#[test]
fn mkmime_pipe_over_implicit_tls_with_plain_reaches_to_and_bcc() {
    let stack = Stack::get();
    let tag = unique("smtps-plain");
    let mkmime = Tool::Mkmime.path();
    let made = run(
        Command::new(mkmime)
            .args([
                "--from",
                &stack.user1,
                "--to",
                &stack.user2,
                "--bcc",
                &stack.user1,
            ])
            .args(["--subject", &tag]),
        format!("Hello {tag}\n.dot line\nbare LF line\n").as_bytes(),
    );
    assert!(made.status.success(), "mkmime: {}", stderr(&made));
    let out = run(smtps(&stack).args(["-t", "--auth", "plain"]), &made.stdout);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "quiet on success"
    );
    let to = stack.wait_for(&stack.user2, &tag, 1);
    assert_eq!(to.len(), 1, "To recipient got it once");
    assert_delivered_intact(&made.stdout, &to[0]);
    let bcc = stack.wait_for(&stack.user1, &tag, 1);
    assert_eq!(bcc.len(), 1, "Bcc recipient got it");
    assert_delivered_intact(&made.stdout, &bcc[0]);
    // The Bcc copy, read over IMAPS by a client no one here wrote.
    let fetched = imap_fetch(&stack, &stack.user1, &stack.pass1, &tag);
    assert_delivered_intact(&made.stdout, &crlf_to_lf(&fetched));
}

/// The message with `subject` in `user`'s INBOX, fetched by Python's imaplib.
fn imap_fetch(stack: &Stack, user: &str, pass: &str, subject: &str) -> Vec<u8> {
    const SCRIPT: &str = r#"
import imaplib, os, ssl, sys
ctx = ssl.create_default_context(cafile=os.environ["CA"])
with imaplib.IMAP4_SSL("localhost", int(os.environ["PORT"]), ssl_context=ctx) as m:
    m.login(os.environ["IMAP_USER"], os.environ["IMAP_PASS"])
    m.select("INBOX", readonly=True)
    typ, data = m.search("UTF-8", "SUBJECT", os.environ["SUBJECT"].encode())
    ids = data[0].split()
    assert len(ids) == 1, ids
    typ, data = m.fetch(ids[0], "(BODY.PEEK[])")
    sys.stdout.buffer.write(data[0][1])
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .env("CA", &stack.ca_file)
        .env("PORT", stack.imaps_port.to_string())
        .env("IMAP_USER", user)
        .env("IMAP_PASS", pass)
        .env("SUBJECT", subject)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "imaplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn starttls_with_login_dots_and_bare_lf_arrive_intact() {
    let stack = Stack::get();
    let tag = unique("starttls-login");
    // Mixed line ends: CRLF and bare LF; lines that SMTP must dot-stuff.
    let mut sent = message(&tag, &stack.user2, &stack.user1);
    sent.extend_from_slice(b".\r\n..\r\nCRLF line\r\nbare\n.last without newline");
    let out = run(
        Tool::SmtpSend
            .command()
            .arg("--server")
            .arg(format!("smtp://localhost:{}", stack.submission_port))
            .args(["--user", &stack.user1, "--auth", "login", "-t", "-v"])
            .arg("--ca-file")
            .arg(&stack.ca_file)
            .env("SMTP_PASSWORD", &stack.pass1),
        &sent,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(
        err.contains("C: STARTTLS") && err.contains("C: AUTH LOGIN"),
        "{err}"
    );
    let got = stack.wait_for(&stack.user2, &tag, 1);
    assert_eq!(got.len(), 1);
    // The message had no final line end; SMTP adds one.
    let mut expected = sent.clone();
    expected.push(b'\n');
    assert_delivered_intact(&expected, &got[0]);
    assert_eq!(stack.wait_for(&stack.user1, &tag, 1).len(), 1, "Bcc copy");
}

/// The password, its base64 and the SASL strings built from it never appear
/// in the -v transcript, with PLAIN and LOGIN and a non-ASCII password.
#[test]
fn transcript_never_shows_the_password() {
    let stack = Stack::get();
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    for (user, pass) in [(&stack.user1, &stack.pass1), (&stack.user2, &stack.pass2)] {
        for mech in ["plain", "login"] {
            let tag = unique(&format!("transcript-{mech}"));
            let out = run(
                Tool::SmtpSend
                    .command()
                    .arg("--server")
                    .arg(format!("smtps://localhost:{}", stack.smtps_port))
                    .args(["--user", user, "--auth", mech, "-v", "-t"])
                    .arg("--ca-file")
                    .arg(&stack.ca_file)
                    .env("SMTP_PASSWORD", pass),
                &message(&tag, user, user),
            );
            let err = stderr(&out);
            assert_eq!(code(&out), 0, "{err}");
            assert!(err.contains("235 "), "authenticated: {err}");
            let forbidden = [
                pass.as_bytes().to_vec(),
                b64(pass.as_bytes()).into_bytes(),
                b64(pass.as_bytes())
                    .trim_end_matches('=')
                    .as_bytes()
                    .to_vec(),
                b64(format!("\0{user}\0{pass}").as_bytes()).into_bytes(),
                b64(format!("\0{user}\0{pass}").as_bytes())
                    .trim_end_matches('=')
                    .as_bytes()
                    .to_vec(),
            ];
            for f in &forbidden {
                assert!(
                    memchr::memmem::find(&out.stderr, f).is_none(),
                    "{mech}: the transcript shows a secret form: {err}"
                );
            }
            assert!(err.contains("<redacted>"), "{err}");
        }
    }
}

#[test]
fn wrong_password_is_77_nothing_sent_and_kept() {
    let stack = Stack::get();
    let tag = unique("wrong-password");
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = dir.path().join("dead.mbox");
    let sent = message(&tag, &stack.user2, &stack.user1);
    let out = run(
        smtps(&stack)
            .env("SMTP_PASSWORD", "not-the-password")
            .arg("-t")
            .arg("--dead-letter")
            .arg(&dead),
        &sent,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 77, "{err}");
    assert!(
        err.contains("authentication as alice@example.test failed: 535"),
        "{err}"
    );
    assert!(!err.contains("not-the-password"));
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert_eq!(read_mbox(&dead), vec![sent]);
    stack.assert_nothing_delivered(&stack.user2, &tag);
}

#[test]
fn untrusted_certificate_and_wrong_host_name_are_tls_errors() {
    let stack = Stack::get();
    let tag = unique("untrusted");
    let out = run(
        client(
            &stack,
            &format!("smtps://localhost:{}", stack.untrusted_smtps_port),
        )
        .arg("-t"),
        &message(&tag, &stack.user2, &stack.user1),
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 69, "{err}");
    // The stack's second certificate is a self-signed CA certificate; rustls
    // names that CaUsedAsEndEntity rather than an unknown issuer.
    assert!(err.contains("TLS: certificate for localhost "), "{err}");

    // 127.0.0.2 reaches the same Postfix through a forwarding proxy, but the
    // certificate is for localhost and 127.0.0.1 only.
    let proxy = FaultProxy::start_opts(
        stack.smtps_port,
        Fault::none(),
        Options {
            listen: [127, 0, 0, 2].into(),
            ..Options::default()
        },
    );
    let out = run(
        client(&stack, &format!("smtps://127.0.0.2:{}", proxy.port())).arg("-t"),
        &message(&tag, &stack.user2, &stack.user1),
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 69, "{err}");
    assert!(
        err.contains("certificate is not valid for host 127.0.0.2"),
        "{err}"
    );
    stack.assert_nothing_delivered(&stack.user2, &tag);
}

/// The plain port offers AUTH without TLS: smtp:// (STARTTLS required) stops
/// because there is no STARTTLS, and --tls none stops before AUTH unless
/// --allow-plaintext-auth. No credentials cross the wire either way.
#[test]
fn no_credentials_over_plaintext() {
    let stack = Stack::get();
    let tag = unique("plaintext");
    let sent = message(&tag, &stack.user2, &stack.user1);
    let out = run(
        client(
            &stack,
            &format!("smtp://127.0.0.1:{}", stack.smtp_plain_port),
        )
        .args(["-t", "-v"]),
        &sent,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 69, "{err}");
    assert!(err.contains("does not offer STARTTLS"), "{err}");
    assert!(err.contains("250-AUTH"), "the server did offer AUTH: {err}");
    assert!(
        !err.contains("C: AUTH") && !err.contains("C: MAIL"),
        "{err}"
    );

    let out = run(
        client(
            &stack,
            &format!("smtp://127.0.0.1:{}", stack.smtp_plain_port),
        )
        .args(["--tls", "none", "-t", "-v"]),
        &sent,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 78, "{err}");
    assert!(
        err.contains("refusing to send credentials without TLS"),
        "{err}"
    );
    assert!(
        !err.contains("C: AUTH") && !err.contains("C: MAIL"),
        "{err}"
    );
    assert!(!err.contains(&stack.pass1));
    stack.assert_nothing_delivered(&stack.user2, &tag);
}

#[test]
fn refused_recipient_is_67_with_a_report_and_nothing_sent() {
    let stack = Stack::get();
    let tag = unique("refused");
    let sent = message(
        &tag,
        &format!("{}, {}", stack.user2, stack.reject_rcpt),
        &stack.user1,
    );
    let out = run(smtps(&stack).args(["-t", "--report", "json"]), &sent);
    let err = stderr(&out);
    assert_eq!(code(&out), 67, "{err}");
    assert!(
        err.contains(&format!(
            "smtp-send: {}: refused: 550 5.1.1",
            stack.reject_rcpt
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("smtp-send: {}: not-sent: 250", stack.user2)),
        "{err}"
    );
    assert!(
        err.contains("1 of 3 recipients refused; nothing sent"),
        "{err}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(report["exit"], 67);
    assert_eq!(report["sent"], false);
    let recipients = report["recipients"].as_array().expect("recipients");
    assert_eq!(recipients.len(), 3);
    let refused = recipients
        .iter()
        .find(|r| r["address"] == stack.reject_rcpt.as_str())
        .expect("refused recipient reported");
    assert_eq!(refused["code"], 550);
    assert_eq!(refused["enhanced"], "5.1.1");
    assert_eq!(refused["status"], "refused");
    stack.assert_nothing_delivered(&stack.user2, &tag);
    stack.assert_nothing_delivered(&stack.user1, &tag);
}

#[test]
fn partial_sends_to_the_accepted_and_still_exits_67() {
    let stack = Stack::get();
    let tag = unique("partial");
    let sent = message(
        &tag,
        &format!("{}, {}", stack.reject_rcpt, stack.user2),
        &stack.user1,
    );
    let out = run(smtps(&stack).args(["-t", "--partial"]), &sent);
    let err = stderr(&out);
    assert_eq!(code(&out), 67, "{err}");
    assert!(
        err.contains(&format!("{}: refused: 550 5.1.1", stack.reject_rcpt)),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}: delivered", stack.user2)),
        "{err}"
    );
    assert!(err.contains("sent to the other 2"), "{err}");
    assert_eq!(stack.wait_for(&stack.user2, &tag, 1).len(), 1);
    assert_eq!(stack.wait_for(&stack.user1, &tag, 1).len(), 1);
}

#[test]
fn deferred_recipient_is_75_and_kept_byte_for_byte() {
    let stack = Stack::get();
    let tag = unique("deferred");
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = dir.path().join("dead.mbox");
    // CRLF, a From_-like body line and no Date: the kept copy is what was read.
    let sent = format!(
        "From: alice@example.test\r\nTo: {}, {}\r\nSubject: {tag}\r\n\r\nFrom here on\r\n>From there\r\n",
        stack.user2, stack.defer_rcpt
    )
    .into_bytes();
    let out = run(
        smtps(&stack).arg("-t").arg("--dead-letter").arg(&dead),
        &sent,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "{err}");
    assert!(
        err.contains(&format!("{}: deferred: 451 4.3.0", stack.defer_rcpt)),
        "{err}"
    );
    assert!(
        err.contains(&format!("kept in {}", dead.display())),
        "{err}"
    );
    assert_eq!(read_mbox(&dead), vec![sent.clone()]);
    // A second failure appends; the first stays.
    let out = run(
        smtps(&stack).arg("-t").arg("--dead-letter").arg(&dead),
        &sent,
    );
    assert_eq!(code(&out), 75);
    assert_eq!(read_mbox(&dead), vec![sent.clone(), sent]);
    stack.assert_nothing_delivered(&stack.user2, &tag);
}

/// 100 messages over one connection: all arrive, in the order sent (each
/// message's queue id, reported in order, is in its delivered copy); one
/// refused in the middle is reported and kept, and the others go through.
#[test]
fn mbox_sends_100_over_one_connection() {
    let stack = Stack::get();
    let tag = unique("mbox");
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = dir.path().join("dead.mbox");
    let (mbox, messages) = numbered_mbox(&tag, 101, |i| {
        if i == 51 {
            stack.reject_rcpt.clone()
        } else {
            stack.user2.clone()
        }
    });
    let out = run(
        smtps(&stack)
            .args(["--mbox", "-t", "-v", "--report", "json", "--dead-letter"])
            .arg(&dead),
        &mbox,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 67, "{}", &err[err.len().saturating_sub(3000)..]);
    assert_eq!(err.matches("C: EHLO").count(), 1, "one connection");
    assert_eq!(err.matches("C: AUTH").count(), 1, "one login");
    assert_eq!(
        err.matches("C: RSET").count(),
        1,
        "RSET after the refusal only"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("smtp-send: message 51 ") && l.contains("not sent")),
        "{err}"
    );
    assert!(err.contains("1 of 101 messages not delivered"), "{err}");
    assert_reports_match_deliveries(&stack, &out.stdout, &tag, &messages, &[(51, 67, 550)]);
    assert_eq!(read_mbox(&dead), vec![messages[50].clone()]);
}

/// The same from a file, where messages go several per round trip (a
/// window over PIPELINING and CHUNKING), with two refused recipients in a
/// row and a deferred one among them: one connection, many messages in
/// flight before the first is answered, each other message delivered once
/// as the one accepted under its reported queue id, the failures reported
/// and kept byte for byte.
#[test]
fn mbox_from_a_file_sends_several_messages_per_round_trip() {
    let stack = Stack::get();
    let tag = unique("window");
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = dir.path().join("dead.mbox");
    let failing = [(30, 67, 550), (31, 67, 550), (60, 75, 451)];
    let (mbox, messages) = numbered_mbox(&tag, 100, |i| match i {
        30 | 31 => stack.reject_rcpt.clone(),
        60 => stack.defer_rcpt.clone(),
        _ => stack.user2.clone(),
    });
    let out = run_with_file_stdin(
        smtps(&stack)
            .args(["--mbox", "-t", "-v", "--report", "json", "--dead-letter"])
            .arg(&dead),
        dir.path(),
        &mbox,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "{}", &err[err.len().saturating_sub(3000)..]);
    assert_eq!(err.matches("C: EHLO").count(), 1, "one connection");
    assert!(err.contains("3 of 100 messages not delivered"), "{err}");
    let first_reply = err
        .lines()
        .position(|l| l.starts_with("S: 250 ") && l.contains(" queued as "))
        .unwrap_or(0);
    let ahead = err
        .lines()
        .take(first_reply)
        .filter(|l| l.starts_with("C: MAIL FROM"))
        .count();
    assert!(ahead >= 8, "{ahead} in flight before the first reply");
    assert_reports_match_deliveries(&stack, &out.stdout, &tag, &messages, &failing);
    let kept: Vec<Vec<u8>> = failing.iter().map(|f| messages[f.0 - 1].clone()).collect();
    assert_eq!(read_mbox(&dead), kept);
}

#[test]
fn check_reports_what_the_server_offers() {
    let stack = Stack::get();
    let out = run(smtps(&stack).arg("--check"), b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(text.contains("auth: PLAIN LOGIN"), "{text}");
    assert!(text.contains("size: 104857600"), "{text}");
    assert!(
        text.contains("authenticated: alice@example.test (PLAIN)"),
        "{text}"
    );
    assert!(text.contains("tls: TLS"), "{text}");
    let out = run(smtps(&stack).args(["--check", "--report", "json"]), b"");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["size"], 104857600);
    assert!(json["extensions"]
        .as_array()
        .expect("list")
        .iter()
        .any(|e| e == "8BITMIME"));
}

#[test]
fn eight_bit_and_utf8_addresses_go_through_where_offered() {
    let stack = Stack::get();
    let tag = unique("8bit");
    let sent = format!(
        "From: alice@example.test\nTo: {}\nSubject: {tag}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nPrüfung — 试验\n",
        stack.user2
    );
    let out = run(smtps(&stack).args(["-t", "-v"]), sent.as_bytes());
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(err.contains("BODY=8BITMIME"), "{err}");
    let got = stack.wait_for(&stack.user2, &tag, 1);
    assert_eq!(split(&got[0]).1, "Prüfung — 试验\n".as_bytes());
}

/// The JSON reports of an mbox of `messages` (subjects `{tag} #NNN`), all to
/// user 2 but the `failing` ones (number from 1, exit code, RCPT reply
/// code): one report per message in input order, each failure as given, and
/// every other message delivered exactly once, as the one the server
/// accepted under the queue id in its report, body intact.
fn assert_reports_match_deliveries(
    stack: &Stack,
    stdout: &[u8],
    tag: &str,
    messages: &[Vec<u8>],
    failing: &[(usize, i64, i64)],
) {
    let reports: Vec<serde_json::Value> = stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("JSON line"))
        .collect();
    assert_eq!(reports.len(), messages.len());
    let delivered = stack.wait_for(&stack.user2, tag, messages.len() - failing.len());
    assert_eq!(delivered.len(), messages.len() - failing.len());
    for (i, report) in reports.iter().enumerate() {
        assert_eq!(report["message"], i + 1, "reports in input order");
        let subject = format!("Subject: {tag} #{:03}\n", i + 1);
        let copies: Vec<&Vec<u8>> = delivered
            .iter()
            .filter(|m| memchr::memmem::find(m, subject.as_bytes()).is_some())
            .collect();
        if let Some((_, exit, rcpt)) = failing.iter().find(|f| f.0 == i + 1) {
            assert_eq!(report["exit"], *exit, "{report}");
            assert_eq!(report["recipients"][0]["code"], *rcpt, "{report}");
            assert!(copies.is_empty(), "message {} delivered", i + 1);
            continue;
        }
        assert_eq!(copies.len(), 1, "message {} delivered once", i + 1);
        assert_eq!(report["exit"], 0, "{report}");
        let reply = report["server_reply"].as_str().expect("accepted");
        let queue_id = reply.rsplit(' ').next().expect("queue id");
        let copy = copies[0];
        let at = memchr::memmem::find(copy, format!(" id {queue_id}").as_bytes());
        let after = at.and_then(|i| copy.get(i + 4 + queue_id.len()));
        assert!(
            matches!(after, Some(b';' | b'\n' | b' ')),
            "message {} was not the one accepted as {queue_id}",
            i + 1
        );
        let (_, body) = split(copy);
        let (_, sent_body) = split(&messages[i]);
        assert_eq!(body, sent_body);
    }
}

/// An mbox of `count` messages, `{tag} #NNN` each, message i to `to(i)`, and
/// the messages as written.
fn numbered_mbox(tag: &str, count: usize, to: impl Fn(usize) -> String) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut mbox = Vec::new();
    let mut messages = Vec::new();
    for i in 1..=count {
        let m = format!(
            "From: alice@example.test\nTo: {}\nSubject: {tag} #{i:03}\n\nmessage {i} of {tag}\nFrom the middle\n",
            to(i)
        );
        mailpipe::mbox::MboxWriter::new(&mut mbox)
            .write_message("alice@example.test", chrono::Utc::now(), m.as_bytes())
            .expect("mbox");
        messages.push(m.into_bytes());
    }
    (mbox, messages)
}
