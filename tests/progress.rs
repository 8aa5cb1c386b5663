//! The progress display, seen as a user sees it: each tool run with stderr on
//! a real pseudo-terminal (`script` from util-linux) and stdout redirected to
//! a file. The display must appear on the terminal, leave stdout byte for
//! byte what a run without a terminal writes, vanish with `--quiet` and `-v`,
//! be cleared before an error line, and never reach a stderr that is not a
//! terminal. imap-dump and pop3-dump run against the real stack.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

use mailpipe_e2e::mail::unique;
use mailpipe_e2e::{tool, Stack};

/// The stack tests put mail in place with doveadm; one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// mkmime's Date, Message-ID and boundaries fixed, so that its runs are
/// byte-identical (the other tools ignore it).
const FIXED_EPOCH: &str = "1700000000";

/// `text` as one sh word.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A command line for sh: the tool, its arguments, stdout into `stdout`.
fn command_line(tool_name: &str, args: &[&str], stdout: &Path, stdin: Option<&Path>) -> String {
    let mut line = quote(&tool(tool_name).display().to_string());
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line.push_str(" > ");
    line.push_str(&quote(&stdout.display().to_string()));
    line.push_str(" < ");
    line.push_str(&quote(
        &stdin.map_or("/dev/null".to_string(), |p| p.display().to_string()),
    ));
    line
}

/// What the terminal showed and the exit status, for `line` run by sh with
/// stdin, stdout and stderr on a pseudo-terminal (the line redirects stdin
/// and stdout itself, so only stderr stays there).
fn on_terminal(line: &str) -> (String, Option<i32>) {
    let out = Command::new("script")
        .args(["-qfec", line, "/dev/null"])
        .env("TERM", "xterm")
        .env("SOURCE_DATE_EPOCH", FIXED_EPOCH)
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

/// The same line with stderr a pipe: its stderr and status.
fn off_terminal(line: &str) -> (String, Option<i32>) {
    let out = Command::new("sh")
        .args(["-c", line])
        .env("SOURCE_DATE_EPOCH", FIXED_EPOCH)
        .output()
        .expect("sh runs");
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

/// The lines the terminal ends up showing: carriage returns and "clear
/// line" sequences applied, so a display that was cleared leaves nothing.
fn screen_lines(transcript: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for line in transcript.split('\n') {
        let mut shown = String::new();
        for part in line.split('\r') {
            match part.rsplit_once("\x1b[2K") {
                Some((_, after)) => shown = after.to_string(),
                None if !part.is_empty() => shown = part.to_string(),
                None => {}
            }
        }
        if !shown.trim().is_empty() {
            lines.push(shown.trim_end().to_string());
        }
    }
    lines
}

/// Runs `tool args` three ways (terminal, terminal with --quiet, no
/// terminal), checks what a user would see, and returns the terminal's
/// transcript of the first.
fn three_ways(dir: &Path, tool_name: &str, args: &[&str], stdin: Option<&Path>) -> String {
    let (tty_out, quiet_out, plain_out) = (
        dir.join("tty.out"),
        dir.join("quiet.out"),
        dir.join("plain.out"),
    );
    let (shown, status) = on_terminal(&command_line(tool_name, args, &tty_out, stdin));
    assert_eq!(status, Some(0), "{tool_name} on a terminal: {shown:?}");

    let quiet_args: Vec<&str> = args.iter().copied().chain(["--quiet"]).collect();
    let (quiet, status) = on_terminal(&command_line(tool_name, &quiet_args, &quiet_out, stdin));
    assert_eq!(status, Some(0), "{tool_name} --quiet: {quiet:?}");
    assert_eq!(quiet, "", "{tool_name} --quiet drew on the terminal");

    let (stderr, status) = off_terminal(&command_line(tool_name, args, &plain_out, stdin));
    assert_eq!(
        status,
        Some(0),
        "{tool_name} without a terminal: {stderr:?}"
    );
    assert_eq!(
        stderr, "",
        "{tool_name}: stderr not a terminal must stay empty"
    );

    let plain = std::fs::read(&plain_out).expect("stdout of the plain run");
    assert!(!plain.is_empty(), "{tool_name} wrote nothing");
    for other in [&tty_out, &quiet_out] {
        let bytes = std::fs::read(other).expect("stdout of a terminal run");
        assert!(
            bytes == plain,
            "{tool_name}: stdout with stderr on a terminal ({} bytes) differs from without ({} bytes)",
            bytes.len(),
            plain.len()
        );
    }
    assert!(
        !shown.contains("\x1b[2K") || screen_lines(&shown).is_empty(),
        "{tool_name}: the display was not cleared at the end: {:?}",
        screen_lines(&shown)
    );
    shown
}

/// A message of about `size` bytes to `to`, its Message-ID made of `tag`.
fn message(tag: &str, to: &str, size: usize) -> Vec<u8> {
    let mut out = format!(
        "From: Sender <sender@example.org>\nTo: {to}\nSubject: {tag}\n\
         Message-ID: <{tag}@progress.test>\nDate: Mon, 23 Nov 2026 12:00:00 +0000\n\n"
    )
    .into_bytes();
    let line = format!("a line of {tag} padded to length...............\n");
    for _ in 0..size / line.len() {
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// An mbox of `count` messages of about `size` bytes each.
fn mbox(count: usize, size: usize, tag: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * (size + 200));
    for i in 0..count {
        out.extend_from_slice(b"From sender@example.org Mon Nov 23 12:00:00 2026\n");
        out.extend(message(&format!("{tag}-{i}"), "someone@example.org", size));
        out.push(b'\n');
    }
    out
}

#[test]
fn mail2json_shows_bytes_of_a_large_mbox_and_leaves_stdout_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("big.mbox");
    std::fs::write(&input, mbox(3000, 8000, "m2j")).expect("write mbox");
    let input = input.display().to_string();
    let shown = three_ways(dir.path(), "mail2json", &[&input], None);
    assert!(
        shown.contains("MiB/") && shown.contains("ETA"),
        "no progress of bytes of the known total on the terminal: {shown:?}"
    );

    // On a pipe the size is unknown: a spinner with the bytes read.
    let line = format!(
        "cat {} | {}",
        quote(&input),
        command_line("mail2json", &[], &dir.path().join("pipe.out"), None)
            .replace(" < '/dev/null'", "")
    );
    let (shown, status) = on_terminal(&line);
    assert_eq!(status, Some(0), "{shown:?}");
    assert!(
        shown.contains("MiB") && !shown.contains("ETA"),
        "no spinner of bytes for a pipe: {shown:?}"
    );
}

#[test]
fn mail2json_error_lines_stay_whole_above_the_display() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("big.mbox");
    std::fs::write(&input, mbox(3000, 8000, "err")).expect("write mbox");
    let missing = dir.path().join("missing.mbox");
    let args = [
        input.display().to_string(),
        missing.display().to_string(),
        input.display().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let line = command_line("mail2json", &args, &dir.path().join("out"), None);
    let (shown, status) = on_terminal(&line);
    assert_eq!(status, Some(66), "{shown:?}");
    let expected = format!(
        "mail2json: {}: No such file or directory (66)",
        missing.display()
    );
    let summary = "mail2json: some input could not be read as mail (66)".to_string();
    assert_eq!(
        screen_lines(&shown),
        vec![expected.clone(), summary.clone()],
        "the errors must be the lines left on the screen, each whole: {shown:?}"
    );
    assert!(shown.contains("ETA"), "no progress drawn: {shown:?}");
    let (stderr, status) = off_terminal(&line);
    assert_eq!(status, Some(66));
    assert_eq!(stderr, format!("{expected}\n{summary}\n"));
}

#[test]
fn mkmime_shows_bytes_encoded_of_a_large_attachment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let attachment = dir.path().join("blob.bin");
    let blob: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&attachment, blob).expect("write attachment");
    let body = dir.path().join("body.txt");
    std::fs::write(&body, "see attached\n").expect("write body");
    let attach = attachment.display().to_string();
    let args = [
        "--from",
        "a@example.org",
        "--to",
        "b@example.org",
        "-s",
        "blob",
        "-a",
        &attach,
    ];
    let shown = three_ways(dir.path(), "mkmime", &args, Some(&body));
    assert!(
        shown.contains("encoding") && shown.contains("MiB"),
        "no progress of bytes encoded: {shown:?}"
    );
}

/// The flags that log `user` in to `url` of the stack, its password in a
/// file under `dir`.
fn server_args(stack: &Stack, dir: &Path, url: String, user: &str, password: &str) -> Vec<String> {
    let file = dir.join("password");
    std::fs::write(&file, format!("{password}\n")).expect("password file");
    vec![
        "--server".into(),
        url,
        "--user".into(),
        user.into(),
        "--password-file".into(),
        file.display().to_string(),
        "--ca-file".into(),
        stack.ca_file.display().to_string(),
    ]
}

/// Saves `count` messages of about `size` bytes into `mailbox` of `user`.
fn save(stack: &Stack, user: &str, mailbox: &str, tag: &str, count: usize, size: usize) {
    for i in 0..count {
        let one = message(&format!("{tag}-{i}"), user, size);
        stack.doveadm(&["save", "-u", user, "-m", mailbox], &one);
    }
}

#[test]
fn imap_dump_shows_messages_and_bytes_and_hides_them_with_v() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let mailbox = unique("progress");
    stack.doveadm(&["mailbox", "create", "-u", &stack.user1, &mailbox], b"");
    let tag = unique("imap");
    save(&stack, &stack.user1, &mailbox, &tag, 40, 100_000);
    let url = format!("imaps://localhost:{}", stack.imaps_port);
    let mut args = server_args(&stack, dir.path(), url, &stack.user1, &stack.pass1);
    args.extend(["--mailbox".to_string(), mailbox]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let shown = three_ways(dir.path(), "imap-dump", &args, None);
    assert!(
        // The mailbox name is cut to fit 80 columns; the counts never are.
        shown.contains("progress-") && shown.contains("/40 messages") && shown.contains("ETA"),
        "no progress of messages and bytes: {shown:?}"
    );
    let mbox = std::fs::read(dir.path().join("plain.out")).expect("dump");
    let id = format!("Message-ID: <{tag}-");
    let dumped = mbox.windows(id.len()).filter(|w| *w == id.as_bytes());
    assert_eq!(dumped.count(), 40, "every message dumped once");

    // -v: the transcript alone, no display mixed into it.
    let verbose: Vec<&str> = args.iter().copied().chain(["-v"]).collect();
    let line = command_line("imap-dump", &verbose, &dir.path().join("v.out"), None);
    let (shown, status) = on_terminal(&line);
    assert_eq!(status, Some(0), "{shown:?}");
    assert!(
        shown.contains("EXAMINE"),
        "no transcript with -v: {shown:?}"
    );
    assert!(
        !shown.contains("ETA") && !shown.contains("\x1b[2K"),
        "progress drawn into the -v transcript"
    );
}

#[test]
fn pop3_dump_shows_messages_and_bytes_of_the_maildrop() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("tempdir");
    // Mail left by other tests may lack a Date (its From_ line then carries
    // the time of the run): the maildrop holds only this test's messages.
    let user = &stack.user2;
    stack.doveadm(&["expunge", "-u", user, "mailbox", "INBOX", "all"], b"");
    save(&stack, user, "INBOX", &unique("pop3"), 20, 100_000);
    let url = format!("pop3s://localhost:{}", stack.pop3s_port);
    let args = server_args(&stack, dir.path(), url, user, &stack.pass2);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let shown = three_ways(dir.path(), "pop3-dump", &args, None);
    assert!(
        shown.contains("/20 messages") && shown.contains("ETA"),
        "no progress of messages and bytes: {shown:?}"
    );
}

#[test]
fn smtp_send_mbox_shows_messages_sent_and_refused() {
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let tag = unique("smtp");
    let mut input = Vec::new();
    for i in 0..6 {
        let to = if i == 3 {
            &stack.reject_rcpt
        } else {
            &stack.user1
        };
        input.extend_from_slice(b"From sender@example.org Mon Nov 23 12:00:00 2026\n");
        input.extend(message(&format!("{tag}-{i}"), to, 20_000));
        input.push(b'\n');
    }
    let mbox_path = dir.path().join("send.mbox");
    std::fs::write(&mbox_path, input).expect("write mbox");
    let url = format!("smtps://localhost:{}", stack.smtps_port);
    let mut args = server_args(&stack, dir.path(), url, &stack.user1, &stack.pass1);
    args.extend(["--mbox".to_string(), "-t".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // --quiet: nothing drawn, only the refused message's lines.
    let quiet: Vec<&str> = args.iter().copied().chain(["--quiet"]).collect();
    let out = dir.path().join("out");
    let (quiet, status) = on_terminal(&command_line("smtp-send", &quiet, &out, Some(&mbox_path)));
    assert_eq!(status, Some(67), "{quiet:?}");
    assert!(
        !quiet.contains("\x1b[2K") && !quiet.contains(" sent, "),
        "{quiet:?}"
    );

    let (shown, status) = on_terminal(&command_line("smtp-send", &args, &out, Some(&mbox_path)));
    assert_eq!(status, Some(67), "one recipient is refused: {shown:?}");
    assert!(
        shown.contains("sent, 1 refused") || shown.contains("5 sent"),
        "no count of messages sent and refused: {shown:?}"
    );
    let screen = screen_lines(&shown);
    assert!(
        screen.iter().all(|l| l.starts_with("smtp-send: ")),
        "every line left on the screen is a whole line of smtp-send: {screen:?}"
    );
}
