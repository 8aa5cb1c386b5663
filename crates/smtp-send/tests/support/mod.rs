//! What the smtp-send tests share: running the binary, unique tags, reading
//! a user's Maildir, reading a dead-letter mbox back.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mailpipe_e2e::Stack;

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smtp-send"));
    // No accounts file of the machine, no password variables of the shell.
    cmd.env_remove("MAILPIPE_CONFIG")
        .env_remove("SMTP_PASSWORD")
        .env_remove("MAILPIPE_PASSWORD")
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME");
    cmd
}

pub fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    mailpipe_e2e::run_with_stdin(cmd, stdin)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// A tag no other test run uses, to find a message in a shared mailbox.
pub fn tag(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{name}-{}-{nanos}", std::process::id())
}

/// `smtp-send` aimed at the stack's implicit-TLS port as user 1, its password
/// in $SMTP_PASSWORD (never in argv).
pub fn smtps(stack: &Stack) -> Command {
    client(stack, &format!("smtps://localhost:{}", stack.smtps_port))
}

/// `smtp-send --server URL` as user 1, trusting the stack's CA.
pub fn client(stack: &Stack, url: &str) -> Command {
    let mut cmd = bin();
    cmd.arg("--server")
        .arg(url)
        .arg("--user")
        .arg(&stack.user1)
        .arg("--ca-file")
        .arg(&stack.ca_file)
        .arg("--timeout=20")
        .env("SMTP_PASSWORD", &stack.pass1);
    cmd
}

pub fn maildir(stack: &Stack, user: &str) -> PathBuf {
    stack.maildir_root.join(user).join("Maildir")
}

/// The messages in `user`'s Maildir (new and cur) containing `needle`.
pub fn find_messages(stack: &Stack, user: &str, needle: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir(stack, user).join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                if memchr::memmem::find(&bytes, needle.as_bytes()).is_some() {
                    found.push((entry.path(), bytes));
                }
            }
        }
    }
    found.sort();
    found
}

/// Waits (up to 20 s) until `count` messages with `needle` are in the Maildir.
pub fn wait_for(stack: &Stack, user: &str, needle: &str, count: usize) -> Vec<Vec<u8>> {
    let start = Instant::now();
    loop {
        let found = find_messages(stack, user, needle);
        if found.len() >= count || start.elapsed() > Duration::from_secs(20) {
            return found.into_iter().map(|(_, b)| b).collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that nothing with `needle` arrives for `user` (waits a moment,
/// since delivery is asynchronous).
pub fn assert_nothing_delivered(stack: &Stack, user: &str, needle: &str) {
    std::thread::sleep(Duration::from_millis(700));
    let found = find_messages(stack, user, needle);
    assert!(
        found.is_empty(),
        "{user} received {} message(s) with {needle}",
        found.len()
    );
}

/// Header and body of a stored message; Dovecot stores LF.
pub fn split(message: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memmem::find(message, b"\n\n") {
        Some(i) => (&message[..i + 1], &message[i + 2..]),
        None => (message, b""),
    }
}

pub fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The header lines (unfolded units) of a message, LF line ends.
pub fn header_fields(head: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(head);
    let mut fields: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push('\n');
                last.push_str(line);
            }
        } else if !line.is_empty() {
            fields.push(line.to_string());
        }
    }
    fields
}

/// The messages of an mbox file, as the workspace's one reader gives them back.
pub fn read_mbox(path: &Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = mailpipe::mbox::MboxReader::new(std::io::BufReader::new(file));
    let mut out = Vec::new();
    while let Some(m) = reader.next_message().expect("readable mbox") {
        out.push(m.data);
    }
    out
}
