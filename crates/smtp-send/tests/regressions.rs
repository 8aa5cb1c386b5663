//! Regressions from the adversarial review of smtp-send, each against the real
//! Postfix of scripts/mailstack where a server is involved, and against a
//! scripted peer only where Postfix cannot produce the case (a server that
//! takes two recipients per transaction; the exact DATA bytes on the wire).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mailpipe_e2e::mail::{read_mbox, split, unique};
use mailpipe_e2e::{code, run_with_stdin as run, stderr, Stack, Tool};

/// smtp-send on the stack's plain port, no login (Postfix takes mail for its
/// domain from 127.0.0.1 without AUTH).
fn plain(port: u16) -> Command {
    let mut cmd = Tool::SmtpSend.command();
    cmd.arg("--server")
        .arg(format!("smtp://127.0.0.1:{port}"))
        .args(["--tls", "none", "-f", "alice@example.test", "--timeout=20"]);
    cmd
}

/// The messages of an mbox file as Python's `mailbox.mbox` sees them.
fn python_mbox(path: &Path) -> Vec<Vec<u8>> {
    let script = "import mailbox, sys, base64\n\
                  mb = mailbox.mbox(sys.argv[1], create=False)\n\
                  for k in mb.keys():\n    \
                      print(base64.b64encode(mb.get_bytes(k)).decode())\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use base64::Engine;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            base64::engine::general_purpose::STANDARD
                .decode(l)
                .expect("base64")
        })
        .collect()
}

// ---------------------------------------------------------------------------
// 4: a dead-letter file that ends in the middle of a line

#[test]
fn dead_letter_file_cut_mid_line_still_gets_the_next_message_whole() {
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = dir.path().join("dead.mbox");
    // An earlier append killed half-way (ulimit -f, SIGKILL): no final newline.
    let cut = b"From MAILER-DAEMON Tue Nov  3 09:05:07 2026\nSubject: cut short\n\nhalf a li";
    std::fs::write(&dead, cut).expect("write");
    let tag = unique("cutdead");
    let sent = format!(
        "From: alice@example.test\nTo: {}\nSubject: {tag}\n\nkept whole\n",
        stack.reject_rcpt
    )
    .into_bytes();
    let out = run(
        plain(stack.smtp_plain_port)
            .arg("-t")
            .arg("--dead-letter")
            .arg(&dead),
        &sent,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 67, "{err}");
    assert!(err.contains("kept in"), "{err}");
    let ours = read_mbox(&dead);
    assert_eq!(ours.len(), 2, "mailpipe's reader: {ours:?}");
    assert_eq!(ours[1], sent, "mailpipe's reader");
    assert!(ours[0].starts_with(b"Subject: cut short\n\nhalf a li"));
    let python = python_mbox(&dead);
    assert_eq!(python.len(), 2, "Python's mailbox.mbox");
    assert_eq!(python[1], sent, "Python's mailbox.mbox");
}

// ---------------------------------------------------------------------------
// 7: bare CR

const BARE_CR_BODY: &[u8] = b"one\rtwo\r.\r\nthree\r.x\nfour\r\r\n.five\n";
/// What each bare CR becomes: a line end, and a line starting with `.` stuffed.
const BARE_CR_LINES: &[u8] = b"one\ntwo\n.\nthree\n.x\nfour\n\n.five\n";

#[test]
fn bare_cr_arrives_at_postfix_as_line_ends() {
    let stack = Stack::get();
    let tag = unique("barecr");
    let mut sent = format!(
        "From: alice@example.test\nTo: {}\nSubject: {tag}\nDate: Tue, 3 Nov 2026 09:05:07 +0000\n\
         Message-ID: <{tag}@example.test>\n\n",
        stack.user1
    )
    .into_bytes();
    sent.extend_from_slice(BARE_CR_BODY);
    let out = run(plain(stack.smtp_plain_port).arg("-t"), &sent);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stored = stack.wait_for(&stack.user1, &tag, 1);
    assert_eq!(stored.len(), 1, "delivered once");
    let (_, body) = split(&stored[0]);
    assert_eq!(
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(BARE_CR_LINES),
        "stored body (Dovecot stores LF)"
    );
    assert!(!stored[0].contains(&b'\r'), "a CR was stored");
}

// ---------------------------------------------------------------------------
// 13: the server named once

#[test]
fn plaintext_auth_refusal_names_the_server_once() {
    let stack = Stack::get();
    let url = format!("smtp://127.0.0.1:{}", stack.smtp_plain_port);
    let out = run(
        stack
            .user1(Tool::SmtpSend, &url)
            .args(["--tls", "none", "-f", "alice@example.test"])
            .arg(&stack.user2),
        b"Subject: x\n\nbody\n",
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 78, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("smtp://").count(), 1, "{err}");
    assert!(
        err.starts_with("smtp-send: smtp://")
            && err.contains("refusing to send credentials without TLS"),
        "{err}"
    );
}

#[test]
fn failed_password_command_names_the_server_once() {
    let stack = Stack::get();
    let out = run(
        stack
            .user1(Tool::SmtpSend, &stack.url("smtps", stack.smtps_port))
            .args(["--password-command", "false", "-f", "alice@example.test"])
            .arg(&stack.user2),
        b"Subject: x\n\nbody\n",
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 78, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("smtps://").count(), 1, "{err}");
}

// ---------------------------------------------------------------------------
// 6: 421 after refused recipients (Postfix's smtpd_hard_error_limit)

/// alice accepted, two unknown users refused (550), then Postfix's error limit
/// of 2 is reached and bob's RCPT gets 421: the session is over.
fn error_limit_recipients(stack: &Stack, tag: &str) -> Vec<String> {
    vec![
        stack.user1.clone(),
        format!("nobody-a-{tag}@{}", stack.domain),
        format!("nobody-b-{tag}@{}", stack.domain),
        stack.user2.clone(),
    ]
}

fn error_limit_message(tag: &str) -> Vec<u8> {
    format!("From: alice@example.test\nTo: undisclosed-recipients:;\nSubject: {tag}\n\nbody\n")
        .into_bytes()
}

#[test]
fn refusals_ended_by_421_report_every_recipient_and_exit_67() {
    let stack = Stack::get();
    let port: u16 = std::env::var("MAILSTACK_SMTP_ERRLIMIT_PORT")
        .expect("MAILSTACK_SMTP_ERRLIMIT_PORT")
        .parse()
        .expect("port");
    assert_eq!(stack.smtp_errlimit_port, port);
    let tag = unique("errlimit");
    let rcpts = error_limit_recipients(&stack, &tag);
    let out = run(
        plain(stack.smtp_errlimit_port)
            .args(&rcpts)
            .args(["--report", "json"]),
        &error_limit_message(&tag),
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 67, "a permanent failure is not retried: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with(&format!("smtp-send: {}: not-sent: 250", rcpts[0])),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!("smtp-send: {}: refused: 550 5.1.1", rcpts[1])),
        "{err}"
    );
    assert!(
        lines[2].starts_with(&format!("smtp-send: {}: refused: 550 5.1.1", rcpts[2])),
        "{err}"
    );
    assert!(
        lines[3].starts_with(&format!("smtp-send: {}: not-tried: 421", rcpts[3])),
        "{err}"
    );
    assert_eq!(lines.len(), 5, "{err}");
    assert_eq!(lines[4].matches("smtp://").count(), 1, "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["exit"], 67);
    let statuses: Vec<&str> = report["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|r| r["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["not-sent", "refused", "refused", "not-tried"]);
    stack.assert_nothing_delivered(&stack.user1, &tag);
    stack.assert_nothing_delivered(&stack.user2, &tag);
}

#[test]
fn partial_after_421_reconnects_for_the_accepted_and_untried_recipients() {
    let stack = Stack::get();
    let tag = unique("errlimitpartial");
    let rcpts = error_limit_recipients(&stack, &tag);
    let out = run(
        plain(stack.smtp_errlimit_port)
            .args(&rcpts)
            .arg("--partial"),
        &error_limit_message(&tag),
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 67, "{err}");
    assert_eq!(stack.wait_for(&stack.user1, &tag, 1).len(), 1, "{err}");
    assert_eq!(stack.wait_for(&stack.user2, &tag, 1).len(), 1, "{err}");
    for (r, status) in [
        (&rcpts[0], "delivered"),
        (&rcpts[1], "refused: 550"),
        (&rcpts[2], "refused: 550"),
        (&rcpts[3], "delivered"),
    ] {
        assert!(
            err.contains(&format!("smtp-send: {r}: {status}")),
            "{r} {status}: {err}"
        );
    }
    assert!(
        err.contains("2 of 4 recipients refused; sent to the other 2"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// A scripted peer, for what Postfix will not do on demand: take only
// `per_transaction` recipients per transaction (452 4.5.3 for more).

/// One MAIL..DATA transaction the peer saw.
#[derive(Debug, Default, Clone)]
struct SeenTransaction {
    recipients: Vec<String>,
    data: Vec<u8>,
}

/// The command lines, and the transactions that carried a message.
type Seen = (Vec<String>, Vec<SeenTransaction>);

fn peer(per_transaction: usize) -> (u16, JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = thread::spawn(move || {
        let mut commands = Vec::new();
        let mut done = Vec::new();
        let Ok((tcp, _)) = listener.accept() else {
            return (commands, done);
        };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
        let mut out = tcp.try_clone().expect("clone");
        let mut input = BufReader::new(tcp);
        let _ = out.write_all(b"220 peer.example ESMTP scripted\r\n");
        let mut current = SeenTransaction::default();
        loop {
            let mut line = String::new();
            if input.read_line(&mut line).unwrap_or(0) == 0 {
                return (commands, done);
            }
            let command = line.trim_end().to_string();
            commands.push(command.clone());
            let verb = command.split([' ', ':']).next().unwrap_or("");
            let reply: &[u8] = match verb.to_ascii_uppercase().as_str() {
                "EHLO" => b"250-peer.example\r\n250-8BITMIME\r\n250 SIZE 1000000\r\n",
                "MAIL" => {
                    current = SeenTransaction::default();
                    b"250 2.1.0 Ok\r\n"
                }
                "RCPT" if current.recipients.len() >= per_transaction => {
                    b"452 4.5.3 Error: too many recipients\r\n"
                }
                "RCPT" => {
                    current.recipients.push(command[8..].to_string());
                    b"250 2.1.5 Ok\r\n"
                }
                "RSET" | "NOOP" => b"250 2.0.0 Ok\r\n",
                "QUIT" => {
                    let _ = out.write_all(b"221 2.0.0 Bye\r\n");
                    return (commands, done);
                }
                "DATA" => {
                    let _ = out.write_all(b"354 go ahead\r\n");
                    let mut data = input.buffer().to_vec();
                    input.consume(data.len());
                    while !data.ends_with(b"\r\n.\r\n") {
                        let mut chunk = [0u8; 65536];
                        match input.get_mut().read(&mut chunk) {
                            Ok(0) | Err(_) => return (commands, done),
                            Ok(n) => data.extend_from_slice(&chunk[..n]),
                        }
                    }
                    current.data = data;
                    done.push(std::mem::take(&mut current));
                    b"250 2.0.0 Ok: queued\r\n"
                }
                _ => b"502 5.5.2 unknown\r\n",
            };
            let _ = out.write_all(reply);
        }
    });
    (port, handle)
}

fn peer_client(port: u16) -> Command {
    let mut cmd = Tool::SmtpSend.command();
    cmd.arg("--server")
        .arg(format!("smtp://127.0.0.1:{port}"))
        .args(["--tls", "none", "-f", "a@example.org", "--timeout=10"]);
    cmd
}

#[test]
fn bare_cr_never_reaches_the_wire_and_dots_are_stuffed() {
    let (port, seen) = peer(100);
    let mut sent = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: cr\r\nDate: x\r\nMessage-ID: <1@x>\r\n\r\n".to_vec();
    sent.extend_from_slice(BARE_CR_BODY);
    let out = run(peer_client(port).arg("-t"), &sent);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (_, transactions) = seen.join().expect("peer");
    assert_eq!(transactions.len(), 1);
    let data = &transactions[0].data;
    let expected: &[u8] = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: cr\r\nDate: x\r\n\
        Message-ID: <1@x>\r\n\r\none\r\ntwo\r\n..\r\nthree\r\n..x\r\nfour\r\n\r\n..five\r\n.\r\n";
    assert_eq!(
        String::from_utf8_lossy(data),
        String::from_utf8_lossy(expected)
    );
    for (i, &b) in data.iter().enumerate() {
        if b == b'\r' {
            assert_eq!(data.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
        if b == b'\n' {
            assert!(i > 0 && data[i - 1] == b'\r', "bare LF at {i}");
        }
    }
}

#[test]
fn too_many_recipients_go_in_further_transactions() {
    let (port, seen) = peer(2);
    let rcpts: Vec<String> = (1..=5).map(|i| format!("r{i}@example.org")).collect();
    let sent = b"From: a@example.org\nSubject: many\nDate: x\nMessage-ID: <2@x>\n\nbody\n";
    let out = run(peer_client(port).args(&rcpts), sent);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let (commands, transactions) = seen.join().expect("peer");
    let got: Vec<Vec<String>> = transactions.iter().map(|t| t.recipients.clone()).collect();
    let want: Vec<Vec<String>> = rcpts
        .chunks(2)
        .map(|c| c.iter().map(|r| format!("<{r}>")).collect())
        .collect();
    assert_eq!(got, want, "{commands:?}");
    assert!(
        transactions.iter().all(|t| t.data == transactions[0].data),
        "the same DATA every time"
    );
    assert!(transactions[0].data.starts_with(b"From: a@example.org\r\n"));
    let mails = commands.iter().filter(|c| c.starts_with("MAIL")).count();
    assert_eq!(mails, 3, "{commands:?}");
}
