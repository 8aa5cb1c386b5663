//! pop3-dump end to end, through its binary, against the real Dovecot POP3 of
//! scripts/mailstack; scripted peers and the fault proxy only for faults a
//! real server will not produce on demand.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use mailpipe_e2e::fault_proxy::{Dir, Fault, FaultProxy, Step};
use mailpipe_e2e::mail::{crlf, inbox_lock, mbox as mbox_messages, message_id};
use mailpipe_e2e::peer::{scripted_peer, Log, Peer};
use mailpipe_e2e::{Stack, Tool};

/// A body full of what POP3 and mbox must both get right.
const TRICKY_BODY: &str = "Dear reader,\n.\n..\n.leading dot\n...three\nFrom the start\n\
    >From quoted\n. space\n\nlast line\n";

#[test]
fn messages_come_out_byte_identical_including_dots_and_5mb_long_lines() {
    let (_lock, stack) = fresh_maildrop();
    // Two through Postfix (SMTP dot-stuffing, trace headers added on the way).
    let a = small_message("dots-a", TRICKY_BODY);
    deliver_via_postfix(&stack, &a, "<dots-a@pop3-dump.test>");
    let b = small_message("utf8-b", "中文正文\n.点开头\n");
    deliver_via_postfix(&stack, &b, "<utf8-b@pop3-dump.test>");
    // One of 5 MB with lines of 100,000 bytes (Postfix would fold those).
    let mut big = small_message("big-c", "");
    for i in 0..52u8 {
        let fill = [b'A' + (i % 26)].repeat(99_998);
        big.extend_from_slice(if i % 3 == 0 { b"." } else { b"x" });
        big.extend_from_slice(&fill);
        big.push(b'\n');
    }
    big.extend_from_slice(b".\n..\nend\n");
    assert!(big.len() > 5_000_000);
    save(&stack, &big);

    let mbox = run_ok(&mut alice(&stack, &[]));
    let exported = mbox_messages(&mbox);
    assert_eq!(exported.len(), 3);
    let stored = stack.maildir_messages(&stack.user1);
    for message in &exported {
        let id = message_id(&message.data).expect("Message-ID");
        let file = stored
            .get(&id)
            .unwrap_or_else(|| panic!("{id} not in the Maildir"));
        assert!(
            message.data == crlf(file),
            "{id}: exported bytes differ from the stored message ({} vs {} bytes)",
            message.data.len(),
            crlf(file).len()
        );
    }
    // The small ones also equal what Python's poplib retrieves.
    let poplib = poplib_retr(&stack, &[1, 2]);
    assert_eq!(exported[0].data, poplib[0]);
    assert_eq!(exported[1].data, poplib[1]);
    // From_ line: Return-Path's sender, the Date header's time.
    let from_line = String::from_utf8_lossy(&exported[0].from_line).into_owned();
    assert_eq!(
        from_line,
        "From sender@example.org Mon Nov 23 12:00:00 2026"
    );
}

/// RETR of each numbered message with Python's poplib, CRLF-joined as sent.
fn poplib_retr(stack: &Stack, numbers: &[u32]) -> Vec<Vec<u8>> {
    let script = r#"
import poplib, ssl, sys
host, port, ca, user, pw = sys.argv[1:6]
p = poplib.POP3_SSL(host, int(port), context=ssl.create_default_context(cafile=ca))
p.user(user); p.pass_(pw)
for n in sys.argv[6:]:
    lines = p.retr(int(n))[1]
    data = b"".join(l + b"\r\n" for l in lines)
    sys.stdout.buffer.write(b"%d\n" % len(data) + data)
p.quit()
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, "localhost", &stack.pop3s_port.to_string()])
        .arg(&stack.ca_file)
        .args([&stack.user1, &stack.pass1]);
    cmd.args(numbers.iter().map(|n| n.to_string()));
    let out = run_ok(&mut cmd);
    let mut rest = out.as_slice();
    let mut messages = Vec::new();
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let len: usize = String::from_utf8_lossy(&rest[..nl])
            .parse()
            .expect("length");
        messages.push(rest[nl + 1..nl + 1 + len].to_vec());
        rest = &rest[nl + 1 + len..];
    }
    messages
}

#[test]
fn plain_run_keeps_mail_and_delete_removes_exactly_what_was_written() {
    let (_lock, stack) = fresh_maildrop();
    for i in 0..5 {
        save(&stack, &small_message(&format!("keep-{i}"), "body\n"));
    }
    let before = list(&stack);
    assert_eq!(before.len(), 5);
    assert_eq!(mbox_messages(&run_ok(&mut alice(&stack, &[]))).len(), 5);
    assert_eq!(
        list(&stack),
        before,
        "a plain run leaves the maildrop as it was"
    );

    // --delete with --limit 2: exactly the two written go.
    let out = run_ok(&mut alice(&stack, &["--delete", "--limit", "2"]));
    let written: Vec<String> = mbox_messages(&out)
        .iter()
        .map(|m| message_id(&m.data).expect("id"))
        .collect();
    assert_eq!(
        written,
        ["<keep-0@pop3-dump.test>", "<keep-1@pop3-dump.test>"]
    );
    let after: Vec<String> = list(&stack).into_iter().map(|(_, _, uidl)| uidl).collect();
    let expected: Vec<String> = before[2..]
        .iter()
        .map(|(_, _, uidl)| uidl.clone())
        .collect();
    assert_eq!(after, expected);
    let left = stack.maildir_messages(&stack.user1);
    assert!(left.contains_key("<keep-2@pop3-dump.test>"));
    assert!(!left.contains_key("<keep-0@pop3-dump.test>"));

    // A message over --max-size is neither written nor deleted.
    save(&stack, &small_message("big-one", &"x".repeat(10_000)));
    let out = run(&mut alice(&stack, &["--delete", "--max-size", "5K"]));
    assert!(out.status.success());
    assert_eq!(mbox_messages(&out.stdout).len(), 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped 1 messages larger"));
    let left = list(&stack);
    assert_eq!(left.len(), 1);
    assert!(left[0].1 > 10_000);
}

#[test]
fn a_run_killed_in_the_middle_of_a_retr_deletes_nothing() {
    let (_lock, stack) = fresh_maildrop();
    save(&stack, &small_message("k-1", "first\n"));
    let mut big = small_message("k-2", "");
    big.extend_from_slice(&b"0123456789abcdef\n".repeat(300_000));
    save(&stack, &big);
    save(&stack, &small_message("k-3", "third\n"));
    let before = list(&stack);

    // TLS passes through the proxy untouched; it stops forwarding 1 MB in.
    let proxy = FaultProxy::start(
        stack.pop3s_port,
        Fault::stall([Step::Bytes(Dir::ToClient, 1 << 20)]),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Tool::Pop3Dump.command();
    cmd.arg("--server")
        .arg(format!(
            "pop3s://{}@localhost:{}",
            stack.user1,
            proxy.port()
        ))
        .arg("--ca-file")
        .arg(&stack.ca_file)
        .env("POP3_PASSWORD", &stack.pass1)
        .arg("--delete");
    let (mut child, out_path) = spawn_to_file(&mut cmd, dir.path());
    assert!(
        proxy.wait_fired(Duration::from_secs(20)),
        "the proxy never reached its stall point"
    );
    child.kill().expect("kill");
    let _ = child.wait();
    proxy.close();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(list(&stack), before, "a killed run must delete nothing");
    // Whatever reached the output is whole messages only.
    let partial = std::fs::read(out_path).expect("output");
    for m in mbox_messages(&partial) {
        assert!(message_id(&m.data).is_some_and(|id| id.contains("k-1")));
    }
}

#[test]
fn a_run_killed_after_dele_but_before_quit_deletes_nothing() {
    let (_lock, stack) = fresh_maildrop();
    for i in 0..3 {
        save(&stack, &small_message(&format!("q-{i}"), "body\n"));
    }
    let before = list(&stack);
    // Plaintext to Dovecot's STLS port (it treats loopback as secure), so the
    // proxy can see the commands and hold back QUIT.
    let proxy = FaultProxy::start(
        stack.pop3_port,
        Fault::stall([Step::Before(Dir::ToServer, b"QUIT\r\n".to_vec())]),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Tool::Pop3Dump.command();
    cmd.arg("--server")
        .arg(format!("pop3://{}@127.0.0.1:{}", stack.user1, proxy.port()))
        .args(["--tls", "none", "--allow-plaintext-auth", "--delete"])
        .env("POP3_PASSWORD", &stack.pass1);
    let (mut child, out_path) = spawn_to_file(&mut cmd, dir.path());
    assert!(
        proxy.wait_fired(Duration::from_secs(20)),
        "the proxy never reached its stall point"
    );
    let sent = String::from_utf8_lossy(&proxy.from_client()).into_owned();
    assert!(sent.contains("DELE 1\r\nDELE 2\r\nDELE 3\r\n"), "{sent}");
    // The output was complete before the first DELE.
    assert_eq!(
        mbox_messages(&std::fs::read(&out_path).expect("out")).len(),
        3
    );
    child.kill().expect("kill");
    let _ = child.wait();
    proxy.close();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(list(&stack), before, "without QUIT, POP3 deletes nothing");
}

#[test]
fn state_makes_the_second_run_export_only_new_messages() {
    let (_lock, stack) = fresh_maildrop();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("pop.state");
    let state_arg = state.to_str().expect("utf8 path");
    for i in 0..3 {
        save(&stack, &small_message(&format!("s-{i}"), "old\n"));
    }
    let first = mbox_messages(&run_ok(&mut alice(&stack, &["--state", state_arg])));
    assert_eq!(first.len(), 3);
    let text = std::fs::read_to_string(&state).expect("state written");
    assert!(
        text.contains(&format!("[{}@localhost]", stack.user1)),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| !l.starts_with(['#', '['])).count(),
        3
    );

    save(&stack, &small_message("s-new-1", "new\n"));
    deliver_via_postfix(
        &stack,
        &small_message("s-new-2", "new\n"),
        "<s-new-2@pop3-dump.test>",
    );
    let second = mbox_messages(&run_ok(&mut alice(&stack, &["--state", state_arg])));
    let ids: Vec<String> = second
        .iter()
        .map(|m| message_id(&m.data).expect("id"))
        .collect();
    assert_eq!(
        ids,
        ["<s-new-1@pop3-dump.test>", "<s-new-2@pop3-dump.test>"]
    );
    let third = run_ok(&mut alice(&stack, &["--state", state_arg]));
    assert!(third.is_empty(), "nothing new, nothing written");
    assert_eq!(list(&stack).len(), 5, "--state alone deletes nothing");
}

#[test]
fn list_json_and_headers_only() {
    let (_lock, stack) = fresh_maildrop();
    save(&stack, &small_message("l-1", TRICKY_BODY));
    save(&stack, &small_message("l-2", "two\n"));
    let lines = String::from_utf8(run_ok(&mut alice(&stack, &["--list", "--json"]))).expect("utf8");
    let plain = list(&stack);
    let parsed: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(parsed.len(), 2);
    for (json, (n, size, uidl)) in parsed.iter().zip(&plain) {
        assert_eq!(json["number"], *n);
        assert_eq!(json["size"], *size);
        assert_eq!(json["uidl"], uidl.as_str());
    }
    let heads = mbox_messages(&run_ok(&mut alice(
        &stack,
        &["--headers-only", "--limit", "1"],
    )));
    assert_eq!(heads.len(), 1);
    let full = crlf(&small_message("l-1", TRICKY_BODY));
    let header_end = full
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header")
        + 4;
    assert_eq!(heads[0].data, full[..header_end]);
}

#[test]
fn wrong_password_is_77_and_nothing_secret_is_shown() {
    let stack = Stack::get();
    let out = run(alice(&stack, &["--list"]).env("POP3_PASSWORD", "wrong-Secret-42"));
    assert_eq!(out.status.code(), Some(77));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("pop3-dump: pop3s://"), "{stderr}");
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(!stderr.contains("wrong-Secret-42"));

    // -v shows the dialogue, AUTH redacted, with either outcome.
    for password in ["wrong-Secret-42", stack.pass1.as_str()] {
        let out = run(alice(&stack, &["--list", "-v"]).env("POP3_PASSWORD", password));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("C: AUTH PLAIN <redacted>"), "{stderr}");
        assert!(stderr.contains("S: +OK"), "{stderr}");
        assert!(!stderr.contains(password), "{stderr}");
        let plain = format!("\0{}\0{password}", stack.user1);
        assert!(!stderr.contains(&base64(plain.as_bytes())));
    }
}

#[test]
fn utf8_password_over_stls() {
    let stack = Stack::get();
    let mut cmd = user_in_url(&stack, "pop3", stack.pop3_port, &stack.user2, &stack.pass2);
    cmd.args(["--list", "-v"]);
    let out = run(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("C: STLS") && stderr.contains("-- TLS started"),
        "{stderr}"
    );
    assert!(!stderr.contains(&stack.pass2));
}

#[test]
fn verbose_elides_bodies() {
    let (_lock, stack) = fresh_maildrop();
    save(&stack, &small_message("v-1", "secret body text\n"));
    let out = run(&mut alice(&stack, &["-v"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("C: RETR 1"), "{stderr}");
    assert!(stderr.contains("bytes>"), "{stderr}");
    assert!(!stderr.contains("secret body text"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("secret body text"));
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn untrusted_certificate_is_refused() {
    let stack = Stack::get();
    let mut cmd = user_in_url(
        &stack,
        "pop3s",
        stack.untrusted_pop3s_port,
        &stack.user1,
        &stack.pass1,
    );
    cmd.arg("--list");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The library names the rustls reason (a self-signed CA certificate used
    // as the server's own here); what matters is that it is the certificate.
    assert!(
        stderr.contains("TLS: certificate for localhost"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
    assert!(out.stdout.is_empty());
}

#[test]
fn pop3_without_stls_is_refused_before_any_credential() {
    let (port, log) = scripted_peer(|peer| {
        peer.send(b"+OK no TLS here\r\n");
        while let Some(cmd) = peer.command() {
            let reply: &[u8] = match cmd.as_str() {
                "CAPA" => b"+OK\r\nUSER\r\nSASL PLAIN\r\nUIDL\r\n.\r\n",
                _ => b"+OK\r\n",
            };
            peer.send(reply);
        }
    });
    let mut cmd = Tool::Pop3Dump.command();
    cmd.arg("--server")
        .arg(format!("pop3://someone@127.0.0.1:{port}"))
        .env("POP3_PASSWORD", "never-sent")
        .arg("--list");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not offer STLS"), "{stderr}");
    std::thread::sleep(Duration::from_millis(100));
    let sent = log.lock().expect("log").clone();
    assert_eq!(sent, ["CAPA"], "nothing but CAPA may be sent in plaintext");
}

#[test]
fn hostile_greeting_of_1mb_without_newline() {
    let (port, _log) = scripted_peer(|peer| {
        peer.send(&vec![b'+'; 1 << 20]);
        std::thread::sleep(Duration::from_secs(5));
    });
    let started = Instant::now();
    let out = run(&mut against_peer(port, &["--list", "--timeout", "3"]));
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(out.status.code(), Some(76));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1);
    assert!(stderr.contains("greeting is longer than"), "{stderr}");
}

#[test]
fn missing_terminating_dot_connection_closed() {
    let (port, _log) = scripted_peer(|peer| {
        if up_to_retr(peer, 20) {
            peer.send(b"+OK\r\nSubject: cut\r\n\r\nbody\r\n");
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let out = run(&mut against_peer(
        port,
        &["--state", state.to_str().expect("path")],
    ));
    // A cut connection is temporary (75), as in smtp-send and imap-dump.
    assert_eq!(out.status.code(), Some(75));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no final \".\""), "{stderr}");
    assert!(out.stdout.is_empty(), "no partial message is written");
    assert!(!state.exists(), "state is not advanced by a failed run");
}

#[test]
fn missing_terminating_dot_server_stalls() {
    let (port, log) = scripted_peer(|peer| {
        if up_to_retr(peer, 20) {
            peer.send(b"+OK\r\nSubject: stall\r\n\r\nbody\r\n");
            std::thread::sleep(Duration::from_secs(10));
        }
    });
    let started = Instant::now();
    let out = run(&mut against_peer(port, &["--delete", "--timeout", "2"]));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out"));
    assert!(out.stdout.is_empty());
    let sent = log.lock().expect("log").clone();
    assert!(!sent.iter().any(|c| c.starts_with("DELE")), "{sent:?}");
}

#[test]
fn missing_terminating_dot_endless_data_is_bounded() {
    let (port, _log) = scripted_peer(|peer| {
        if up_to_retr(peer, 1000) {
            peer.send(b"+OK\r\n");
            let chunk = b"more and more data\r\n".repeat(1000);
            let until = Instant::now() + Duration::from_secs(30);
            while Instant::now() < until && peer.send(&chunk) {}
        }
    });
    let started = Instant::now();
    let out = run(&mut against_peer(port, &[]));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(76));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without its final"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn closed_stdout_ends_quietly_and_deletes_nothing() {
    let (_lock, stack) = fresh_maildrop();
    for i in 0..20 {
        save(
            &stack,
            &small_message(&format!("h-{i}"), &"line\n".repeat(2000)),
        );
    }
    let before = list(&stack);
    let mut child = alice(&stack, &["--delete"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 100];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("some output");
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    assert!(
        matches!(out.status.code(), Some(0) | Some(141) | None),
        "{:?}",
        out.status
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panic"), "{stderr}");
    assert_eq!(list(&stack), before);
}

/// --max-size is a mailpipe::ByteSize: `10M` is accepted, and K is 1024, as
/// pop3-dump always read it (a decimal K would skip the message at 10K).
#[test]
fn max_size_takes_10m_and_binary_suffixes() {
    let (_lock, stack) = fresh_maildrop();
    save(&stack, &small_message("sized", &"x".repeat(10_000)));
    let size = list(&stack)[0].1;
    assert!(size > 10_000 && size <= 10_240, "LIST size {size}");
    for (limit, kept) in [("10M", 1), ("10K", 1), ("10k", 1), ("9K", 0)] {
        let out = run_ok(&mut alice(&stack, &["--max-size", limit]));
        assert_eq!(mbox_messages(&out).len(), kept, "--max-size {limit}");
    }
}

#[test]
fn usage_errors_are_64() {
    let out =
        run(Tool::Pop3Dump
            .command()
            .args(["--delete", "--headers-only", "--server", "pop3s://h"]));
    assert_eq!(out.status.code(), Some(64));
    let out = run(Tool::Pop3Dump.command().args(["--server", "imaps://h"]));
    assert_eq!(out.status.code(), Some(64));
    let out = run(Tool::Pop3Dump
        .command()
        .args(["--max-size", "lots", "--server", "pop3s://h"]));
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn without_uidl_state_says_so_and_exports_all() {
    let one = b"Subject: one\r\n\r\n.dot line\r\n".to_vec();
    let two = b"Subject: two\r\n\r\nFrom here\r\n".to_vec();
    let (port, log) = maildrop_peer(vec![Some(one.clone()), Some(two.clone())], "USER\r\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let out = run(&mut against_peer(
        port,
        &["--state", state.to_str().expect("path")],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("does not support UIDL"), "{stderr}");
    let exported = mbox_messages(&out.stdout);
    assert_eq!(exported.len(), 2);
    assert_eq!(exported[0].data, one);
    assert_eq!(exported[1].data, two);
    assert!(!state.exists());
    // Without PIPELINING, one command at a time; USER/PASS without SASL PLAIN.
    let sent = log.lock().expect("log").clone();
    assert_eq!(sent[..3], ["CAPA", "USER someone", "PASS peer-password"]);
    assert!(sent.ends_with(&[
        "RETR 1".to_string(),
        "RETR 2".to_string(),
        "QUIT".to_string()
    ]));
}

#[test]
fn a_refused_message_fails_the_run_and_blocks_delete() {
    let two = b"Subject: two\r\n\r\nbody\r\n".to_vec();
    let (port, log) = maildrop_peer(vec![None, Some(two.clone())], "USER\r\nPIPELINING\r\n");
    let out = run(&mut against_peer(port, &["--delete"]));
    assert_eq!(out.status.code(), Some(76));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("RETR 1: -ERR no such message"), "{stderr}");
    assert!(
        stderr.contains("1 of 2 messages could not be retrieved"),
        "{stderr}"
    );
    let exported = mbox_messages(&out.stdout);
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0].data, two);
    let sent = log.lock().expect("log").clone();
    assert!(!sent.iter().any(|c| c.starts_with("DELE")), "{sent:?}");
}

// ---------------------------------------------------------------- helpers

/// Exclusive use of alice's maildrop, emptied. Tests run in parallel threads;
/// a --delete in one must not remove another's mail.
fn fresh_maildrop() -> (MutexGuard<'static, ()>, Stack) {
    let guard = inbox_lock(0);
    let stack = Stack::get();
    stack.expunge_inbox(&stack.user1);
    (guard, stack)
}

/// Stores `message` in alice's INBOX exactly as given (doveadm save).
fn save(stack: &Stack, message: &[u8]) {
    stack.save(&stack.user1, "INBOX", message);
}

/// Submits `message` to Postfix with Python's smtplib (plain SMTP port, which
/// accepts mail for the domain) and waits until Dovecot has it.
fn deliver_via_postfix(stack: &Stack, message: &[u8], message_id: &str) {
    let script = r#"
import smtplib, sys
host, port, rcpt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with smtplib.SMTP(host, port, timeout=30) as s:
    s.sendmail("sender@example.org", [rcpt], sys.stdin.buffer.read())
"#;
    let out = mailpipe_e2e::run_with_stdin(
        Command::new("python3").args([
            "-c",
            script,
            &stack.host,
            &stack.smtp_plain_port.to_string(),
            &stack.user1,
        ]),
        message,
    );
    assert!(
        out.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stack
        .maildir_messages(&stack.user1)
        .contains_key(message_id)
    {
        assert!(
            Instant::now() < deadline,
            "{message_id} was not delivered in 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// pop3-dump with the user in the URL (`scheme://user@localhost:port`),
/// trusting the stack's CA, `pass` in its environment.
fn user_in_url(stack: &Stack, scheme: &str, port: u16, user: &str, pass: &str) -> Command {
    let mut cmd = Tool::Pop3Dump.command();
    cmd.arg("--server")
        .arg(format!("{scheme}://{user}@localhost:{port}"))
        .arg("--ca-file")
        .arg(&stack.ca_file)
        .env("POP3_PASSWORD", pass);
    cmd
}

/// pop3-dump against alice's maildrop over POP3S, with `args` appended.
fn alice(stack: &Stack, args: &[&str]) -> Command {
    let mut cmd = user_in_url(stack, "pop3s", stack.pop3s_port, &stack.user1, &stack.pass1);
    cmd.args(args);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    mailpipe_e2e::run_with_stdin(cmd, b"")
}

/// Runs and asserts exit 0; returns stdout.
fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `--list` lines as (number, size, uidl).
fn list(stack: &Stack) -> Vec<(u32, u64, String)> {
    let out = run_ok(&mut alice(stack, &["--list"]));
    String::from_utf8(out)
        .expect("utf8")
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            assert_eq!(w.len(), 3, "list line {l:?}");
            (
                w[0].parse().expect("n"),
                w[1].parse().expect("size"),
                w[2].to_string(),
            )
        })
        .collect()
}

/// A small message with a unique Message-ID, CRLF-free (as Maildir holds it).
fn small_message(id: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice Example <alice@example.org>\nTo: alice@example.test\n\
         Subject: test {id}\nDate: Mon, 23 Nov 2026 12:00:00 +0000\n\
         Message-ID: <{id}@pop3-dump.test>\n\n{body}"
    )
    .into_bytes()
}

/// Greeting, CAPA (without STLS), USER/PASS accepted, STAT/LIST of one
/// message of `size` bytes; returns when the client sends RETR.
fn up_to_retr(peer: &mut Peer, size: u64) -> bool {
    peer.send(b"+OK scripted\r\n");
    while let Some(cmd) = peer.command() {
        let reply = match cmd.split(' ').next().unwrap_or("") {
            "CAPA" => "+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n".to_string(),
            "USER" | "PASS" => "+OK\r\n".to_string(),
            "STAT" => format!("+OK 1 {size}\r\n"),
            "LIST" => format!("+OK\r\n1 {size}\r\n.\r\n"),
            "UIDL" => "+OK\r\n1 only\r\n.\r\n".to_string(),
            "RETR" => return true,
            _ => "-ERR unknown\r\n".to_string(),
        };
        if !peer.send(reply.as_bytes()) {
            return false;
        }
    }
    false
}

/// pop3-dump against a scripted peer, in plaintext (allowed explicitly).
fn against_peer(port: u16, args: &[&str]) -> Command {
    let mut cmd = Tool::Pop3Dump.command();
    cmd.arg("--server")
        .arg(format!("pop3://someone@127.0.0.1:{port}"))
        .args(["--tls", "none", "--allow-plaintext-auth"])
        .env("POP3_PASSWORD", "peer-password")
        .args(args);
    cmd
}

/// Starts pop3-dump with stdout to a file; returns the child and the path.
fn spawn_to_file(cmd: &mut Command, dir: &std::path::Path) -> (std::process::Child, PathBuf) {
    let path = dir.join("out.mbox");
    let file = std::fs::File::create(&path).expect("create");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    (child, path)
}

/// A scripted server holding `messages` (CRLF, not yet dot-stuffed; `None` is
/// a message whose RETR is refused), announcing `capa` lines. Serves one
/// whole session and logs the commands.
fn maildrop_peer(messages: Vec<Option<Vec<u8>>>, capa: &'static str) -> (u16, Log) {
    scripted_peer(move |peer| {
        peer.send(b"+OK scripted maildrop\r\n");
        let size = |m: &Option<Vec<u8>>| m.as_ref().map_or(100, Vec::len);
        while let Some(cmd) = peer.command() {
            let words: Vec<&str> = cmd.split(' ').collect();
            let number = words
                .get(1)
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            let mut reply = Vec::new();
            match words[0] {
                "CAPA" => reply.extend_from_slice(format!("+OK\r\n{capa}.\r\n").as_bytes()),
                "STAT" => {
                    let total: usize = messages.iter().map(size).sum();
                    reply.extend_from_slice(
                        format!("+OK {} {total}\r\n", messages.len()).as_bytes(),
                    );
                }
                "LIST" => {
                    reply.extend_from_slice(b"+OK\r\n");
                    for (i, m) in messages.iter().enumerate() {
                        reply.extend_from_slice(format!("{} {}\r\n", i + 1, size(m)).as_bytes());
                    }
                    reply.extend_from_slice(b".\r\n");
                }
                "UIDL" => reply.extend_from_slice(b"-ERR UIDL not supported\r\n"),
                "RETR" => match messages.get(number.wrapping_sub(1)) {
                    Some(Some(m)) => {
                        reply.extend_from_slice(b"+OK\r\n");
                        for line in m.split_inclusive(|&b| b == b'\n') {
                            if line.starts_with(b".") {
                                reply.push(b'.');
                            }
                            reply.extend_from_slice(line);
                        }
                        reply.extend_from_slice(b".\r\n");
                    }
                    _ => reply.extend_from_slice(b"-ERR no such message\r\n"),
                },
                "QUIT" => {
                    peer.send(b"+OK bye\r\n");
                    return;
                }
                _ => reply.extend_from_slice(b"+OK\r\n"),
            }
            if !peer.send(&reply) {
                return;
            }
        }
    })
}
