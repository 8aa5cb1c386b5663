//! Internationalized addresses (RFC 6530-6533) and delivery status
//! notifications (RFC 3461) through the real stack:
//!
//!     mkmime | smtp-send -t | Postfix | Dovecot | imap-dump | mail2json
//!
//! `张三@例子.中国` (a UTF-8 local part) travels over SMTPUTF8, raw UTF-8 in
//! the header; `user@例子.中国` travels as `user@xn--fsqu00a.xn--fiqs8s`, plain
//! ASCII, through a Postfix listener without SMTPUTF8. Where SMTPUTF8 is needed
//! and missing, smtp-send refuses with 69 before MAIL FROM. DSN requests go on
//! MAIL FROM and RCPT TO, and the reports Postfix sends back (delivered,
//! failed, delayed) are read with imap-dump and described by mail2json.
//!
//! Each stage runs as a real process on the previous one's output. Every wait
//! is bounded (`Stack::wait_for`: 20 s at most).

use std::process::{Command, Output};

use mailpipe_e2e::mail::unique;
use mailpipe_e2e::{code, run_with_stdin, stderr, Stack, Tool};
use serde_json::Value;

/// Runs `cmd` on `stdin` and insists on exit 0.
fn ok(cmd: &mut Command, stdin: &[u8]) -> Output {
    let out = run_with_stdin(cmd, stdin);
    assert_eq!(code(&out), 0, "{cmd:?}: {}", stderr(&out));
    out
}

fn mkmime(args: &[&str]) -> Vec<u8> {
    let mut cmd = Tool::Mkmime.command();
    cmd.args(args);
    ok(&mut cmd, b"body of an international message\n").stdout
}

/// smtp-send to a plaintext Postfix port of the stack (mail for the stack's
/// domains is accepted there without AUTH), with `-v`.
fn smtp_send(stack: &Stack, port: u16, args: &[&str], message: &[u8]) -> Output {
    let mut cmd = Tool::SmtpSend.command();
    cmd.arg("--server")
        .arg(format!("smtp://{}:{port}", stack.host))
        .args(["--tls", "none", "--timeout=20", "-v"])
        .args(args);
    run_with_stdin(&mut cmd, message)
}

/// imap-dump of `user`'s INBOX over IMAPS, the messages matching `search`.
fn imap_dump(stack: &Stack, user: &str, pass: &str, search: &str) -> Vec<u8> {
    let url = stack.url("imaps", stack.imaps_port);
    let mut cmd = stack.login(Tool::ImapDump, &url, user, pass);
    cmd.args(["--timeout=20", "--search", search]);
    ok(&mut cmd, b"").stdout
}

fn mail2json(mbox: &[u8], args: &[&str]) -> Vec<Value> {
    let mut cmd = Tool::Mail2json.command();
    cmd.args(args);
    let out = ok(&mut cmd, mbox);
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
}

/// The C: lines of an smtp-send -v transcript.
fn commands(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter_map(|l| l.strip_prefix("C: ").map(str::to_string))
        .collect()
}

#[test]
fn utf8_local_part_travels_over_smtputf8_and_reads_back() {
    let stack = Stack::get();
    let tag = unique("utf8-local");
    let message = mkmime(&[
        "--from",
        &stack.user1,
        "--to",
        "张三 <张三@例子.中国>",
        "-s",
        &tag,
    ]);
    // RFC 6532: the address raw in UTF-8, the display name an encoded-word.
    let text = String::from_utf8(message.clone()).expect("UTF-8 header");
    assert!(
        text.contains("\r\nTo: =?utf-8?b?5byg5LiJ?= <张三@例子.中国>\r\n"),
        "{text}"
    );
    let out = smtp_send(&stack, stack.smtp_plain_port, &["-t"], &message);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let sent = commands(&out);
    assert!(
        sent.iter()
            .any(|c| c.starts_with(&format!("MAIL FROM:<{}>", stack.user1))
                && c.contains(" SMTPUTF8")),
        "{sent:?}"
    );
    // The domain in IDNA form: Postfix routes by it even under SMTPUTF8.
    assert!(
        sent.iter()
            .any(|c| c == "RCPT TO:<张三@xn--fsqu00a.xn--fiqs8s>"),
        "{sent:?}"
    );
    assert_eq!(
        stack.wait_for(&stack.user3, &tag, 1).len(),
        1,
        "not delivered to {}",
        stack.user3
    );
    // Logged in with the UTF-8 user name, read back over IMAP.
    let mbox = imap_dump(
        &stack,
        &stack.user3,
        &stack.pass3,
        &format!("SUBJECT {tag}"),
    );
    assert!(
        mailpipe_e2e::mail::contains(&mbox, "<张三@例子.中国>".as_bytes()),
        "the raw UTF-8 address is not in what IMAP served"
    );
    let records = mail2json(&mbox, &[]);
    assert_eq!(records.len(), 1, "{records:?}");
    let to = &records[0]["to"][0];
    assert_eq!(to["address"], "张三@例子.中国");
    assert_eq!(to["name"], "张三");
    assert_eq!(records[0]["from"][0]["address"], stack.user1.as_str());
    assert_eq!(records[0]["subject"], tag.as_str());
}

#[test]
fn idna_domain_needs_no_smtputf8_and_reads_back_as_written() {
    let stack = Stack::get();
    let id = format!("<{}@{}>", unique("idna"), stack.domain);
    let message = mkmime(&[
        "--from",
        &stack.user1,
        "--to",
        "Ann <user@例子.中国>",
        "-s",
        "IDNA",
        "-H",
        &format!("Message-ID: {id}"),
    ]);
    assert!(message.is_ascii(), "{}", String::from_utf8_lossy(&message));
    let text = String::from_utf8_lossy(&message);
    assert!(
        text.contains("\r\nTo: Ann <user@xn--fsqu00a.xn--fiqs8s>\r\n"),
        "{text}"
    );
    // The listener without SMTPUTF8 takes it: IDNA alone is enough.
    let out = smtp_send(&stack, stack.smtp_noutf8_port, &["-t"], &message);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let sent = commands(&out);
    assert!(sent.iter().all(|c| !c.contains("SMTPUTF8")), "{sent:?}");
    assert!(
        sent.iter()
            .any(|c| c == "RCPT TO:<user@xn--fsqu00a.xn--fiqs8s>"),
        "{sent:?}"
    );
    // user@ that domain is an alias of alice.
    assert_eq!(stack.wait_for(&stack.user1, &id, 1).len(), 1);
    let mbox = imap_dump(
        &stack,
        &stack.user1,
        &stack.pass1,
        &format!("HEADER Message-ID {id}"),
    );
    let records = mail2json(&mbox, &[]);
    assert_eq!(records.len(), 1, "{records:?}");
    // mail2json keeps the header's text: the IDNA form, as written.
    assert_eq!(
        records[0]["to"][0]["address"],
        "user@xn--fsqu00a.xn--fiqs8s"
    );
    assert_eq!(records[0]["to"][0]["name"], "Ann");
}

#[test]
fn utf8_address_without_smtputf8_is_refused_before_mail_from() {
    let stack = Stack::get();
    let tag = unique("no-smtputf8");
    // A UTF-8 recipient, and a UTF-8 From with an ASCII envelope: both need
    // SMTPUTF8, and no downgrade can spell them in ASCII.
    let to_utf8 = mkmime(&["--from", &stack.user1, "--to", "张三@例子.中国", "-s", &tag]);
    let from_utf8 = mkmime(&["--from", "张三@例子.中国", "--to", &stack.user2, "-s", &tag]);
    for (message, args, needle) in [
        (
            &to_utf8,
            vec!["-t"],
            "recipient 张三@xn--fsqu00a.xn--fiqs8s",
        ),
        (
            &from_utf8,
            vec!["-t", "-f", stack.user1.as_str()],
            "From header has 张三@例子.中国",
        ),
    ] {
        let out = smtp_send(&stack, stack.smtp_noutf8_port, &args, message);
        let err = stderr(&out);
        assert_eq!(code(&out), 69, "{err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.contains(needle) && last.contains("does not offer SMTPUTF8"),
            "{err}"
        );
        assert!(
            commands(&out)
                .iter()
                .all(|c| !c.starts_with("MAIL") && c != "DATA"),
            "{err}"
        );
    }
    stack.assert_nothing_delivered(&stack.user3, &tag);
    stack.assert_nothing_delivered(&stack.user2, &tag);
}

#[test]
fn without_dsn_on_the_server_a_warning_or_69_with_require_dsn() {
    let stack = Stack::get();
    let id = format!("<{}@{}>", unique("nodsn"), stack.domain);
    let message = mkmime(&[
        "--from",
        &stack.user1,
        "--to",
        &stack.user2,
        "-s",
        "no DSN",
        "-H",
        &format!("Message-ID: {id}"),
    ]);
    let out = smtp_send(
        &stack,
        stack.smtp_nodsn_port,
        &["--require-dsn", "-t"],
        &message,
    );
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not offer DSN"),
        "{}",
        stderr(&out)
    );
    assert!(
        commands(&out).iter().all(|c| !c.starts_with("MAIL")),
        "{:?}",
        commands(&out)
    );
    stack.assert_nothing_delivered(&stack.user2, &id);

    let out = smtp_send(
        &stack,
        stack.smtp_nodsn_port,
        &["--dsn-notify", "success", "--envid", "x", "-t"],
        &message,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let warnings: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.contains("warning"))
        .map(str::to_string)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", stderr(&out));
    assert!(warnings[0].contains("does not offer DSN"), "{warnings:?}");
    assert!(
        commands(&out)
            .iter()
            .all(|c| !c.contains("NOTIFY=") && !c.contains("ENVID=")),
        "{:?}",
        commands(&out)
    );
    assert_eq!(stack.wait_for(&stack.user2, &id, 1).len(), 1);
}

/// One message from alice to alice (delivered), to a recipient Dovecot does
/// not know (failed) and to a domain whose next hop is down (delayed), with
/// every notification asked for: Postfix's three reports come back to alice,
/// and mail2json describes each recipient.
#[test]
fn dsn_reports_come_back_and_mail2json_describes_them() {
    let stack = Stack::get();
    let envid = unique("envid");
    let delayed = format!("later@{}", stack.defer_queue_domain);
    let message = mkmime(&[
        "--from",
        &stack.user1,
        "--to",
        &stack.user1,
        "--cc",
        &stack.bounce_rcpt,
        "--cc",
        &delayed,
        "-s",
        "DSN please",
    ]);
    let out = smtp_send(
        &stack,
        stack.smtp_plain_port,
        &[
            "-t",
            "--dsn-notify",
            "success,failure,delay",
            "--dsn-ret",
            "hdrs",
            "--envid",
            &envid,
        ],
        &message,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let sent = commands(&out);
    assert!(
        sent.iter()
            .any(|c| c.starts_with("MAIL FROM:") && c.ends_with(&format!("RET=HDRS ENVID={envid}"))),
        "{sent:?}"
    );
    assert!(
        sent.iter().any(|c| c
            == &format!(
                "RCPT TO:<{0}> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;{0}",
                stack.bounce_rcpt
            )),
        "{sent:?}"
    );
    // The three reports (and the message itself) in alice's mailbox.
    let arrived = stack.wait_for(&stack.user1, &format!("Original-Envelope-Id: {envid}"), 3);
    assert_eq!(arrived.len(), 3, "reports that arrived within 20 s");
    let mbox = imap_dump(&stack, &stack.user1, &stack.pass1, &format!("BODY {envid}"));
    let records: Vec<Value> = mail2json(&mbox, &["--parts"])
        .into_iter()
        .filter(|r| r["delivery_status"].is_object())
        .collect();
    assert_eq!(records.len(), 3, "{records:?}");
    let mut seen = Vec::new();
    for r in &records {
        assert_eq!(r["parts"]["content_type"], "multipart/report");
        let status = &r["delivery_status"];
        assert_eq!(status["original_envelope_id"], envid.as_str());
        assert_eq!(status["reporting_mta"], "dns; mail.example.test");
        for rcpt in status["recipients"].as_array().expect("recipients") {
            seen.push((
                rcpt["action"].as_str().unwrap_or_default().to_string(),
                rcpt["original_recipient"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                rcpt["status"].as_str().unwrap_or_default().to_string(),
                rcpt["diagnostic_code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
    }
    let find = |action: &str, who: &str| {
        seen.iter()
            .find(|(a, o, _, _)| a == action && o == who)
            .unwrap_or_else(|| panic!("no {action} report for {who}: {seen:?}"))
            .clone()
    };
    // Delivered over LMTP to Dovecot, which offers no DSN: "relayed".
    let delivered = seen
        .iter()
        .find(|(a, o, _, _)| (a == "delivered" || a == "relayed") && o == &stack.user1);
    let (_, _, status, _) = delivered.unwrap_or_else(|| panic!("no success report: {seen:?}"));
    assert!(status.starts_with("2."), "{status}");
    let (_, _, status, diagnostic) = find("failed", &stack.bounce_rcpt);
    assert_eq!(status, "5.1.1", "{diagnostic}");
    assert!(diagnostic.contains("doesn't exist"), "{diagnostic}");
    let (_, _, status, _) = find("delayed", &delayed);
    assert!(status.starts_with("4."), "{status}");
}

/// The accounts file's keys: `require_dsn = true` refuses the server without
/// DSN (69, nothing sent) as the flag does; a bad `dsn_notify` is 78.
#[test]
fn account_keys_give_the_dsn_defaults() {
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("accounts.toml");
    let message = mkmime(&["--from", &stack.user1, "--to", &stack.user2, "-s", "keys"]);
    for (keys, expected, needle) in [
        ("require_dsn = true", 69, "does not offer DSN"),
        ("dsn_notify = \"sometimes\"", 78, "dsn_notify"),
    ] {
        std::fs::write(
            &config,
            format!(
                "[accounts.a]\nsmtp = \"smtp://{}:{}\"\ntls = \"none\"\n{keys}\n",
                stack.host, stack.smtp_nodsn_port
            ),
        )
        .expect("accounts file");
        let mut cmd = Tool::SmtpSend.command();
        cmd.env("MAILPIPE_CONFIG", &config)
            .args(["--account", "a", "-t", "-v", "--timeout=20"]);
        let out = run_with_stdin(&mut cmd, &message);
        assert_eq!(code(&out), expected, "{keys}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{keys}: {}", stderr(&out));
        assert!(
            commands(&out).iter().all(|c| !c.starts_with("MAIL")),
            "{keys}: {:?}",
            commands(&out)
        );
    }
}
