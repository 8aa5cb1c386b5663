//! The progress display, seen as a user sees it: each tool run with stderr on
//! a real pseudo-terminal (`script` from util-linux) and stdout redirected to
//! a file. The display must appear on the terminal, leave stdout byte for
//! byte what a run without a terminal writes, vanish with `--quiet` and `-v`,
//! be cleared before an error line, and never reach a stderr that is not a
//! terminal. imap-dump, pop3-dump and smtp-send run against the real stack.

use std::path::Path;
use std::process::{Command, Stdio};

use mailpipe_e2e::mail::{inbox_lock, unique};
use mailpipe_e2e::{Stack, Tool};

/// mkmime's Date, Message-ID and boundaries fixed, so that its runs are
/// byte-identical (the other tools ignore it).
const FIXED_EPOCH: &str = "1700000000";

/// Where the tool's stdin comes from.
#[derive(Clone, Copy)]
enum Input<'a> {
    Nothing,
    File(&'a Path),
    /// `cat FILE |`: a pipe, whose size is unknown.
    Pipe(&'a Path),
}

/// `text` as one sh word.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn quote_path(path: &Path) -> String {
    quote(&path.display().to_string())
}

/// `cmd` as a line for sh, stdout into the file `stdout`, stdin from `input`;
/// stderr is left where sh's is.
fn shell_line(cmd: &Command, stdout: &Path, input: Input<'_>) -> String {
    let mut line = match input {
        Input::Pipe(path) => format!("cat {} | ", quote_path(path)),
        _ => String::new(),
    };
    line.push_str(&quote(&cmd.get_program().to_string_lossy()));
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&quote(&arg.to_string_lossy()));
    }
    line.push_str(&format!(" > {}", quote_path(stdout)));
    match input {
        Input::Nothing => line.push_str(" < /dev/null"),
        Input::File(path) => line.push_str(&format!(" < {}", quote_path(path))),
        Input::Pipe(_) => {}
    }
    line
}

/// `runner` with the environment `cmd` was given (isolation, passwords).
fn with_env_of(mut runner: Command, cmd: &Command) -> Command {
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => runner.env(key, value),
            None => runner.env_remove(key),
        };
    }
    runner.env("SOURCE_DATE_EPOCH", FIXED_EPOCH);
    runner
}

/// What the terminal showed and the exit status, for `cmd` run with stderr
/// on a pseudo-terminal (util-linux `script`), stdout into `stdout`.
fn on_terminal(cmd: &Command, stdout: &Path, input: Input<'_>) -> (String, Option<i32>) {
    let mut script = Command::new("script");
    script.args(["-qfec", &shell_line(cmd, stdout, input), "/dev/null"]);
    let out = with_env_of(script, cmd)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    (shown, out.status.code())
}

/// The same with stderr a pipe: its stderr and status.
fn off_terminal(cmd: &Command, stdout: &Path, input: Input<'_>) -> (String, Option<i32>) {
    let mut sh = Command::new("sh");
    sh.args(["-c", &shell_line(cmd, stdout, input)]);
    let out = with_env_of(sh, cmd).output().expect("sh runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (stderr, out.status.code())
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

/// Runs the command `make` gives three ways (terminal, terminal with
/// --quiet, no terminal), checks what a user would see, and returns what
/// the terminal showed the first time.
fn three_ways(dir: &Path, make: &dyn Fn() -> Command, input: Input<'_>) -> String {
    let name = make().get_program().to_string_lossy().into_owned();
    let (tty_out, quiet_out, plain_out) = (
        dir.join("tty.out"),
        dir.join("quiet.out"),
        dir.join("plain.out"),
    );
    let (shown, status) = on_terminal(&make(), &tty_out, input);
    assert_eq!(status, Some(0), "{name} on a terminal: {shown:?}");

    let mut quiet = make();
    quiet.arg("--quiet");
    let (drawn, status) = on_terminal(&quiet, &quiet_out, input);
    assert_eq!(status, Some(0), "{name} --quiet: {drawn:?}");
    assert_eq!(drawn, "", "{name} --quiet drew on the terminal");

    let (stderr, status) = off_terminal(&make(), &plain_out, input);
    assert_eq!(status, Some(0), "{name} without a terminal: {stderr:?}");
    assert_eq!(stderr, "", "{name}: stderr not a terminal must stay empty");

    let plain = std::fs::read(&plain_out).expect("stdout of the plain run");
    assert!(!plain.is_empty(), "{name} wrote nothing");
    for other in [&tty_out, &quiet_out] {
        let bytes = std::fs::read(other).expect("stdout of a terminal run");
        assert!(
            bytes == plain,
            "{name}: stdout with stderr on a terminal ({} bytes) differs from without ({} bytes)",
            bytes.len(),
            plain.len()
        );
    }
    assert!(
        !shown.contains("\x1b[2K") || screen_lines(&shown).is_empty(),
        "{name}: the display was not cleared at the end: {:?}",
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

/// An mbox of `count` messages of about `size` bytes each, to `to`.
fn mbox(count: usize, size: usize, tag: &str, to: &dyn Fn(usize) -> String) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * (size + 200));
    for i in 0..count {
        out.extend_from_slice(b"From sender@example.org Mon Nov 23 12:00:00 2026\n");
        out.extend(message(&format!("{tag}-{i}"), &to(i), size));
        out.push(b'\n');
    }
    out
}

/// 8 MB of mbox: long enough to be drawn, small enough for a shared disk.
fn big_mbox(dir: &Path, tag: &str) -> std::path::PathBuf {
    let path = dir.join("big.mbox");
    let someone = |_| "someone@example.org".to_string();
    std::fs::write(&path, mbox(2000, 4000, tag, &someone)).expect("write mbox");
    path
}

#[test]
fn mail2json_shows_bytes_of_a_large_mbox_and_leaves_stdout_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = big_mbox(dir.path(), "m2j");
    let make = || {
        let mut cmd = Tool::Mail2json.command();
        cmd.arg(&input);
        cmd
    };
    let shown = three_ways(dir.path(), &make, Input::Nothing);
    assert!(
        shown.contains("MiB/") && shown.contains("ETA"),
        "no progress of bytes of the known total on the terminal: {shown:?}"
    );

    // On a pipe the size is unknown: a spinner with the bytes read.
    let out = dir.path().join("pipe.out");
    let (shown, status) = on_terminal(&Tool::Mail2json.command(), &out, Input::Pipe(&input));
    assert_eq!(status, Some(0), "{shown:?}");
    assert!(
        shown.contains("B/s") && !shown.contains("ETA"),
        "no spinner of bytes for a pipe: {shown:?}"
    );
}

#[test]
fn mail2json_error_lines_stay_whole_above_the_display() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = big_mbox(dir.path(), "err");
    let missing = dir.path().join("missing.mbox");
    let mut cmd = Tool::Mail2json.command();
    cmd.args([&input, &missing, &input]);
    let out = dir.path().join("out");
    let (shown, status) = on_terminal(&cmd, &out, Input::Nothing);
    assert_eq!(status, Some(66), "{shown:?}");
    let expected = format!(
        "mail2json: {}: No such file or directory (66)",
        missing.display()
    );
    let summary = "mail2json: some input could not be read (66)".to_string();
    assert_eq!(
        screen_lines(&shown),
        vec![expected.clone(), summary.clone()],
        "the errors must be the lines left on the screen, each whole: {shown:?}"
    );
    assert!(shown.contains("ETA"), "no progress drawn: {shown:?}");
    let (stderr, status) = off_terminal(&cmd, &out, Input::Nothing);
    assert_eq!(status, Some(66));
    assert_eq!(stderr, format!("{expected}\n{summary}\n"));
}

#[test]
fn mkmime_shows_bytes_encoded_of_a_large_attachment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let attachment = dir.path().join("blob.bin");
    let blob: Vec<u8> = (0..9u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&attachment, blob).expect("write attachment");
    let body = dir.path().join("body.txt");
    std::fs::write(&body, "see attached\n").expect("write body");
    let make = || {
        let mut cmd = Tool::Mkmime.command();
        cmd.args(["--from", "a@example.org", "--to", "b@example.org"])
            .args(["-s", "blob", "-a"])
            .arg(&attachment);
        cmd
    };
    let shown = three_ways(dir.path(), &make, Input::File(&body));
    assert!(
        shown.contains("encoding") && shown.contains("MiB"),
        "no progress of bytes encoded: {shown:?}"
    );
}

/// Saves `count` messages of about `size` bytes into `mailbox` of `user`.
fn save(stack: &Stack, user: &str, mailbox: &str, tag: &str, count: usize, size: usize) {
    for i in 0..count {
        stack.save(user, mailbox, &message(&format!("{tag}-{i}"), user, size));
    }
}

#[test]
fn imap_dump_shows_messages_and_bytes_and_hides_them_with_v() {
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let mailbox = unique("progress");
    let user = &stack.user1;
    stack.create_mailbox(user, &mailbox);
    let tag = unique("imap");
    save(&stack, user, &mailbox, &tag, 40, 100_000);
    let url = stack.url("imaps", stack.imaps_port);
    let make = || {
        let mut cmd = stack.user1(Tool::ImapDump, &url);
        cmd.args(["--mailbox", &mailbox]);
        cmd
    };
    let shown = three_ways(dir.path(), &make, Input::Nothing);
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
    let mut verbose = make();
    verbose.arg("-v");
    let (shown, status) = on_terminal(&verbose, &dir.path().join("v.out"), Input::Nothing);
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
    // Mail left by other tests may lack a Date (its From_ line then carries
    // the time of the run): the maildrop holds only this test's messages.
    let _inbox = inbox_lock(1);
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let user = &stack.user2;
    stack.expunge_inbox(user);
    save(&stack, user, "INBOX", &unique("pop3"), 20, 100_000);
    let url = stack.url("pop3s", stack.pop3s_port);
    let make = || stack.login(Tool::Pop3Dump, &url, user, &stack.pass2);
    let shown = three_ways(dir.path(), &make, Input::Nothing);
    assert!(
        shown.contains("/20 messages") && shown.contains("ETA"),
        "no progress of messages and bytes: {shown:?}"
    );
}

#[test]
fn smtp_send_mbox_shows_messages_sent_and_refused() {
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let to = |i| match i {
        3 => stack.reject_rcpt.clone(),
        _ => stack.user1.clone(),
    };
    let input = dir.path().join("send.mbox");
    std::fs::write(&input, mbox(6, 20_000, &unique("smtp"), &to)).expect("write mbox");
    let url = stack.url("smtps", stack.smtps_port);
    let make = || {
        let mut cmd = stack.user1(Tool::SmtpSend, &url);
        cmd.args(["--mbox", "-t"]);
        cmd
    };
    let out = dir.path().join("out");

    // --quiet: nothing drawn, only the refused message's lines.
    let mut quiet = make();
    quiet.arg("--quiet");
    let (drawn, status) = on_terminal(&quiet, &out, Input::File(&input));
    assert_eq!(status, Some(67), "{drawn:?}");
    assert!(
        !drawn.contains("\x1b[2K") && !drawn.contains(" sent, "),
        "{drawn:?}"
    );

    let (shown, status) = on_terminal(&make(), &out, Input::File(&input));
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
