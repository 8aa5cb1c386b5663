//! Hostile input for every tool, where the tools' own tests do not already
//! cover it. Each case: a clear outcome (the documented exit status and one
//! line on stderr, or a correct result), no panic, bounded time and memory.
//!
//! Covered elsewhere (not repeated here):
//! - header injection (CRLF and LF) through --from/--to/--cc/--bcc/--reply-to/
//!   --subject/--in-reply-to/--references, -H (CRLF, LF, a control character),
//!   -a ...;name=, and every JSON field but `sender`: crates/mkmime/tests/cli.rs
//!   `injection_on_every_header_flag_is_65`, `injection_in_every_json_field_is_65`;
//! - attachment names leaving --extract DIR (`../../x`, `/etc/passwd`, `..\\`,
//!   `CON`, `.bashrc`, NUL, `..`, duplicates, RFC 2231 `%2E%2E%2F`):
//!   crates/mail2json/tests/cli.rs `extract_keeps_hostile_names_inside_dir`;
//! - a POP3 greeting of 1 MB without a newline, and a POP3 server that never
//!   sends the terminating dot (closes, stalls, or sends forever):
//!   crates/pop3-dump/tests/cli.rs `hostile_greeting_of_1mb_without_newline`,
//!   `missing_terminating_dot_connection_closed`, `..._server_stalls`,
//!   `..._endless_data_is_bounded`.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use mailpipe_e2e::{run_bounded, Tool};

struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    elapsed: Duration,
    /// Peak resident set size in KiB (GNU time's %M).
    peak_kib: u64,
}

/// Runs `name` with `args` under GNU time (peak RSS into a file), stdin from
/// `stdin`, killed (and failed) after `limit`.
fn run_measured(
    name: &str,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
    stdin: Vec<u8>,
    limit: Duration,
) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let rss = dir.path().join("rss");
    let mut cmd = Tool::named(name).wrapped(&[
        OsStr::new("/usr/bin/time"),
        OsStr::new("-o"),
        rss.as_os_str(),
        OsStr::new("-f"),
        OsStr::new("%M"),
    ]);
    cmd.args(args).env("HOME", dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let finished = run_bounded(&mut cmd, &stdin, limit, |_| {});
    let text = std::fs::read_to_string(&rss).unwrap_or_default();
    Run {
        code: finished.code,
        stdout: finished.stdout,
        stderr: finished.stderr,
        elapsed: finished.elapsed,
        peak_kib: text
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .next_back()
            .unwrap_or(0),
    }
}

fn run(name: &str, args: &[&str], stdin: &[u8]) -> Run {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    run_measured(name, &args, &[], stdin.to_vec(), Duration::from_secs(60))
}

/// Exit `code`, one line `tool: ... (code)` on stderr, no panic.
fn assert_error(run: &Run, tool: &str, code: i32) {
    let err = &run.stderr;
    assert!(!err.contains("panicked"), "{tool} panicked: {err}");
    assert_eq!(run.code, Some(code), "{tool}: stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{tool}: one line on stderr: {err}");
    assert!(lines[0].starts_with(&format!("{tool}: ")), "{err}");
    assert!(
        lines[0].len() <= 1000,
        "{tool}: an error line of {} bytes is not a clear message",
        lines[0].len()
    );
}

/// A header line of the output (before the first blank line) starts with `name:`.
fn has_header_line(message: &[u8], name: &str) -> bool {
    let text = String::from_utf8_lossy(message);
    text.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .split(['\r', '\n'])
        .any(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
}

// ------------------------------------------------------------ header injection

#[test]
fn mkmime_injection_through_the_flags_its_own_tests_miss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "attachment\n").expect("write");
    let f = file.to_str().expect("utf-8");
    let cases: Vec<Vec<String>> = vec![
        // A lone CR (no LF) is a line break to some parsers.
        vec!["--subject".into(), "hi\rBcc: victim@example.net".into()],
        vec![
            "-a".into(),
            format!("{f};type=text/plain\r\nBcc: victim@example.net"),
        ],
        vec![
            "-a".into(),
            format!("{f};type=text/plain\nBcc: victim@example.net"),
        ],
        vec![
            "--inline".into(),
            format!("{f};cid=x@y\r\nBcc: victim@example.net"),
        ],
        vec![
            "--inline".into(),
            format!("{f};type=image/png\r\nBcc: victim@example.net"),
        ],
        vec!["-H".into(), "X-A: 1\rBcc: victim@example.net".into()],
        vec![
            "--to".into(),
            "b@example.org\u{85}Bcc: victim@example.net".into(),
        ],
    ];
    for extra in cases {
        let mut args = vec!["--from", "a@example.org", "--to", "b@example.org"];
        args.extend(extra.iter().map(String::as_str));
        let out = run("mkmime", &args, b"body\n");
        assert_error(&out, "mkmime", 65);
        assert!(out.stdout.is_empty(), "{extra:?}: nothing on stdout");
    }
}

#[test]
fn mkmime_attachment_file_names_with_line_breaks_are_not_injected() {
    // The default attachment name comes from the file's own name.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("report\r\nBcc: victim@example.net.txt");
    std::fs::write(&file, "attachment\n").expect("write");
    for flag in ["-a", "--inline"] {
        let out = run(
            "mkmime",
            &[
                "--from",
                "a@example.org",
                "--to",
                "b@example.org",
                flag,
                file.to_str().expect("utf-8"),
            ],
            b"body\n",
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        match out.code {
            Some(65) => assert!(out.stdout.is_empty()),
            Some(0) => assert!(
                !has_header_line(&out.stdout, "Bcc")
                    && !String::from_utf8_lossy(&out.stdout).contains("\nBcc: victim"),
                "{flag}: the file name broke a header: {}",
                String::from_utf8_lossy(&out.stdout)
            ),
            other => panic!("{flag}: status {other:?}: {}", out.stderr),
        }
    }
}

#[test]
fn mkmime_json_injection_through_sender_header_lists_and_names() {
    let cases = [
        r#"{"from":"a@example.org","to":"b@example.org","sender":"s@example.org\r\nBcc: victim@example.net"}"#,
        r#"{"from":"a@example.org","to":"b@example.org","sender":{"name":"S\nBcc: v@example.net","address":"s@example.org"}}"#,
        r#"{"from":"a@example.org","to":"b@example.org","headers":{"X-A":["1","2\r\nBcc: victim@example.net"]}}"#,
        r#"{"from":"a@example.org","to":"b@example.org","headers":{"Bcc: victim@example.net\r\nX-A":"1"}}"#,
        r#"{"from":"a@example.org","to":"b@example.org","headers":{"X-A: 1\r\nBcc":"victim@example.net"}}"#,
        r#"{"from":"a@example.org","to":"b@example.org","subject":"hi\rBcc: victim@example.net"}"#,
    ];
    for input in cases {
        let out = run("mkmime", &["--json"], input.as_bytes());
        assert_error(&out, "mkmime", 65);
        assert!(out.stdout.is_empty(), "{input}");
    }
    // A header name with a colon in it (no line break) is not a field name.
    let out = run(
        "mkmime",
        &["--json"],
        br#"{"from":"a@example.org","to":"b@example.org","headers":{"Bcc: victim@example.net (X-A":"1)"}}"#,
    );
    assert!(!out.stderr.contains("panicked"));
    assert!(
        !has_header_line(&out.stdout, "Bcc"),
        "a colon in a JSON header name made a Bcc field: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn source_date_epoch_that_is_not_a_number_is_not_injected() {
    let args: Vec<&std::ffi::OsStr> = ["--from", "a@example.org", "--to", "b@example.org"]
        .iter()
        .map(std::ffi::OsStr::new)
        .collect();
    let out = run_measured(
        "mkmime",
        &args,
        &[("SOURCE_DATE_EPOCH", "1700000000\r\nBcc: victim@example.net")],
        b"body\n".to_vec(),
        Duration::from_secs(20),
    );
    assert!(!out.stderr.contains("panicked"));
    assert!(
        !has_header_line(&out.stdout, "Bcc"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        matches!(out.code, Some(0) | Some(64) | Some(65) | Some(78)),
        "{:?}",
        out.code
    );
}

// ------------------------------------------------------------ --extract names

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        out.push(p.clone());
        if p.is_dir() && !p.is_symlink() {
            walk(&p, out);
        }
    }
}

#[test]
fn extract_names_the_mail2json_tests_do_not_try() {
    let root = tempfile::tempdir().expect("tempdir");
    let target = root.path().join("out");
    std::fs::create_dir(&target).expect("mkdir");
    let outside = root.path().join("outside.txt");
    std::fs::write(&outside, "untouched").expect("write");
    // A symlink already in DIR, named like an attachment, pointing outside.
    std::os::unix::fs::symlink(&outside, target.join("link.txt")).expect("symlink");
    let long = "a".repeat(5000);
    let mut m = b"From: a@example.org\nSubject: hostile names\nMIME-Version: 1.0\n\
                  Content-Type: multipart/mixed; boundary=X\n\n"
        .to_vec();
    let parts = [
        // RFC 2047 "../../outside.txt"
        "Content-Type: text/plain\nContent-Disposition: attachment; filename=\"=?utf-8?b?Li4vLi4vb3V0c2lkZS50eHQ=?=\"".to_string(),
        // The name only in Content-Type's name=
        "Content-Type: text/plain; name=\"../../outside.txt\"".to_string(),
        "Content-Type: text/plain\nContent-Disposition: attachment; filename=\"link.txt\"".to_string(),
        format!("Content-Type: text/plain\nContent-Disposition: attachment; filename=\"{long}.txt\""),
        "Content-Type: text/plain\nContent-Disposition: attachment; filename=\"/\"".to_string(),
        "Content-Type: text/plain\nContent-Disposition: attachment; filename*0=\"..\"; filename*1=\"/../outside.txt\"".to_string(),
        "Content-Type: text/plain\nContent-Disposition: attachment; filename=\"~/.ssh/authorized_keys\"".to_string(),
    ];
    for (i, head) in parts.iter().enumerate() {
        m.extend_from_slice(format!("--X\n{head}\n\nOVERWRITTEN {i}\n").as_bytes());
    }
    m.extend_from_slice(b"--X--\n");
    let out = run(
        "mail2json",
        &["--extract", target.to_str().expect("utf-8")],
        &m,
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(
        matches!(out.code, Some(0) | Some(65)),
        "{:?}: {}",
        out.code,
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&outside).expect("read"),
        "untouched"
    );
    let mut files = Vec::new();
    walk(&target, &mut files);
    for f in &files {
        let canonical = f.canonicalize().unwrap_or_else(|_| f.clone());
        if f.file_name() == Some(std::ffi::OsStr::new("link.txt")) {
            continue; // the symlink we put there
        }
        assert!(
            canonical.starts_with(target.canonicalize().expect("canon")),
            "{} is outside {}",
            canonical.display(),
            target.display()
        );
    }
    assert!(
        files.len() >= parts.len(),
        "every attachment was saved: {files:?}"
    );
    for f in &files {
        assert!(
            f.file_name().map_or(0, |n| n.len()) <= 255,
            "{}",
            f.display()
        );
    }
    let home_ssh = root.path().join(".ssh");
    assert!(!home_ssh.exists());
}

// ------------------------------------------------------------ huge and deep

#[test]
fn a_100_mb_single_line_message_through_mail2json_and_smtp_send_dry_run() {
    let mut m = b"From: a@example.org\nTo: b@example.org\nSubject: one long line\n\n".to_vec();
    m.resize(m.len() + 100 * 1024 * 1024, b'x');
    m.push(b'\n');
    let size_kib = (m.len() / 1024) as u64;

    let out = run_measured("mail2json", &[], &[], m.clone(), Duration::from_secs(120));
    eprintln!(
        "mail2json, 100 MiB line: status {:?} in {:?}, peak {} KiB",
        out.code, out.elapsed, out.peak_kib
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(
        out.elapsed < Duration::from_secs(60),
        "mail2json took {:?}",
        out.elapsed
    );
    // One message must be held whole to be converted; a few copies of it at most.
    assert!(
        out.peak_kib < 5 * size_kib,
        "mail2json peak RSS {} KiB for a {} KiB message",
        out.peak_kib,
        size_kib
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(v["subject"], "one long line");
    assert_eq!(v["size"].as_u64(), Some(m.len() as u64));

    let args: Vec<&std::ffi::OsStr> = ["--dry-run", "-t"]
        .iter()
        .map(std::ffi::OsStr::new)
        .collect();
    let out = run_measured("smtp-send", &args, &[], m, Duration::from_secs(120));
    eprintln!(
        "smtp-send --dry-run, 100 MiB line: status {:?} in {:?}, peak {} KiB: {}",
        out.code,
        out.elapsed,
        out.peak_kib,
        out.stderr.trim()
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(
        out.elapsed < Duration::from_secs(60),
        "smtp-send took {:?}",
        out.elapsed
    );
    assert!(
        out.peak_kib < 5 * size_kib,
        "smtp-send peak RSS {} KiB for a {} KiB message",
        out.peak_kib,
        size_kib
    );
    // SMTP lines are at most 998 bytes (RFC 5322 2.1.1): a clear 65, or a
    // message re-encoded to fit; never a line SMTP would cut.
    match out.code {
        Some(65) => {
            assert_error(&out, "smtp-send", 65);
            assert!(out.stdout.is_empty());
        }
        Some(0) => assert!(
            out.stdout.split(|&b| b == b'\n').all(|l| l.len() <= 1000),
            "--dry-run printed a line over 998 bytes as what it would send"
        ),
        other => panic!("smtp-send --dry-run: {other:?}: {}", out.stderr),
    }
}

#[test]
fn ten_thousand_nested_multiparts_through_mail2json() {
    let mut m = b"From: a@example.org\nSubject: deep\nMIME-Version: 1.0\n".to_vec();
    for i in 0..10_000 {
        m.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n").as_bytes(),
        );
    }
    m.extend_from_slice(b"Content-Type: text/plain\n\ninnermost\n");
    for i in (0..10_000).rev() {
        m.extend_from_slice(format!("--b{i}--\n").as_bytes());
    }
    for args in [&[][..], &["--parts"][..]] {
        let out = run("mail2json", args, &m);
        assert!(
            !out.stderr.contains("panicked") && !out.stderr.contains("overflow"),
            "{}",
            out.stderr
        );
        assert!(out.elapsed < Duration::from_secs(30), "{:?}", out.elapsed);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
        assert_eq!(v["subject"], "deep");
        assert!(
            v["defects"].as_array().is_some_and(|d| !d.is_empty()),
            "the depth limit is reported as a defect: {}",
            v["defects"]
        );
    }
}

// ------------------------------------------------------------ invalid UTF-8

#[test]
fn invalid_utf8_in_arguments_is_a_usage_error() {
    let ff = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    let cases: Vec<(&str, Vec<&std::ffi::OsStr>)> = vec![
        (
            "mkmime",
            vec![
                "--from".as_ref(),
                "a@example.org".as_ref(),
                "--subject".as_ref(),
                ff,
            ],
        ),
        ("mkmime", vec!["--from".as_ref(), ff]),
        ("smtp-send", vec!["--dry-run".as_ref(), ff]),
        ("smtp-send", vec!["--server".as_ref(), ff]),
        (
            "imap-dump",
            vec![
                "--server".as_ref(),
                "imaps://127.0.0.1:1".as_ref(),
                "--mailbox".as_ref(),
                ff,
            ],
        ),
        (
            "imap-dump",
            vec![
                "--server".as_ref(),
                "imaps://127.0.0.1:1".as_ref(),
                "--search".as_ref(),
                ff,
            ],
        ),
        (
            "pop3-dump",
            vec![
                "--server".as_ref(),
                "pop3s://127.0.0.1:1".as_ref(),
                "--user".as_ref(),
                ff,
            ],
        ),
        ("mail2json", vec!["--fields".as_ref(), ff]),
    ];
    for (name, args) in cases {
        let out = run_measured(name, &args, &[], b"x\n".to_vec(), Duration::from_secs(20));
        assert!(!out.stderr.contains("panicked"), "{name}: {}", out.stderr);
        assert!(
            matches!(out.code, Some(64) | Some(65)),
            "{name} {args:?}: status {:?}: {}",
            out.code,
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{name}: nothing on stdout");
        assert!(
            out.stderr.to_lowercase().contains("utf-8") || out.stderr.contains("invalid"),
            "{name}: say what is wrong: {}",
            out.stderr
        );
    }
}

#[test]
fn a_file_name_that_is_not_utf8_is_still_read_by_mail2json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"mail-\xff.eml"));
    std::fs::write(&path, "From: a@example.org\nSubject: latin1 name\n\nbody\n").expect("write");
    let out = run_measured(
        "mail2json",
        &[path.as_os_str()],
        &[],
        Vec::new(),
        Duration::from_secs(20),
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["subject"], "latin1 name");
}

// ------------------------------------------------------------ hostile peers

/// A one-connection server on 127.0.0.1 running `script`; ends by itself.
fn peer(script: impl FnOnce(TcpStream) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            match listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
                    script(s);
                    return;
                }
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    port
}

/// Sends `bytes` and then holds the connection open for `hold` (or until the client goes).
fn greet_and_hold(bytes: Vec<u8>, hold: Duration) -> u16 {
    peer(move |mut s| {
        let _ = s.write_all(&bytes);
        let _ = s.set_read_timeout(Some(hold));
        let mut sink = [0u8; 4096];
        let until = Instant::now() + hold;
        while Instant::now() < until {
            match s.read(&mut sink) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
}

fn network_args(tool_name: &str, port: u16) -> Vec<String> {
    let url = match tool_name {
        "smtp-send" => format!("smtp://127.0.0.1:{port}"),
        "imap-dump" => format!("imap://someone@127.0.0.1:{port}"),
        _ => format!("pop3://someone@127.0.0.1:{port}"),
    };
    let mut args = vec![
        "--server".to_string(),
        url,
        "--tls".into(),
        "none".into(),
        "--allow-plaintext-auth".into(),
        "--timeout".into(),
        "3".into(),
    ];
    if tool_name == "smtp-send" {
        args.extend([
            "b@example.org".to_string(),
            "-f".into(),
            "a@example.org".into(),
        ]);
    }
    args
}

fn run_against(tool_name: &str, port: u16, extra: &[&str]) -> Run {
    let mut args = network_args(tool_name, port);
    args.extend(extra.iter().map(|s| s.to_string()));
    let os: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let env = [
        ("SMTP_PASSWORD", "peer-password"),
        ("IMAP_PASSWORD", "peer-password"),
        ("POP3_PASSWORD", "peer-password"),
    ];
    run_measured(
        tool_name,
        &os,
        &env,
        b"Subject: x\r\n\r\nbody\r\n".to_vec(),
        Duration::from_secs(30),
    )
}

#[test]
fn a_greeting_of_1_mb_without_a_newline() {
    // pop3-dump's own tests cover its case; the same for the other two, and
    // the variant that starts like a real greeting. Every case runs; the
    // failures are listed together.
    let mut failures = Vec::new();
    for (tool_name, start) in [
        ("smtp-send", &b""[..]),
        ("smtp-send", &b"220 "[..]),
        ("imap-dump", &b""[..]),
        ("imap-dump", &b"* OK "[..]),
        ("pop3-dump", &b"+OK "[..]),
    ] {
        let mut greeting = start.to_vec();
        greeting.resize(1 << 20, b'+');
        let port = greet_and_hold(greeting, Duration::from_secs(8));
        let out = run_against(tool_name, port, &[]);
        let case = format!(
            "{tool_name} greeting {:?}+1 MiB",
            String::from_utf8_lossy(start)
        );
        eprintln!(
            "{case}: status {:?} in {:?}, peak {} KiB, stderr {} bytes: {}",
            out.code,
            out.elapsed,
            out.peak_kib,
            out.stderr.len(),
            out.stderr.chars().take(160).collect::<String>()
        );
        let code = out.code.unwrap_or(-1);
        let verdict = std::panic::catch_unwind(|| {
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
            assert!(
                out.elapsed < Duration::from_secs(3 + 3),
                "took {:?}",
                out.elapsed
            );
            assert!(out.peak_kib < 100 * 1024, "peak RSS {} KiB", out.peak_kib);
            assert!(code == 76 || code == 75, "status {code}");
            assert_error(&out, tool_name, code);
            assert!(out.stdout.is_empty());
        });
        if let Err(e) = verdict {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!(
                "{case}: {}",
                why.chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A scripted IMAP server: LOGIN, EXAMINE, UID SEARCH and the RFC822.SIZE
/// fetch as Dovecot would answer for one message; the body fetch is `body`'s.
fn imap_peer(body: impl FnOnce(&mut TcpStream, &str) + Send + 'static) -> u16 {
    peer(move |s| {
        let mut out = s.try_clone().expect("clone");
        let mut input = BufReader::new(s);
        let _ = out.write_all(b"* OK [CAPABILITY IMAP4rev1] scripted\r\n");
        let mut body = Some(body);
        loop {
            let mut line = String::new();
            if input.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut words = line.split_whitespace();
            let tag = words.next().unwrap_or("*").to_string();
            let rest = line.to_ascii_uppercase();
            let reply = if rest.contains(" LOGIN ") || rest.contains(" CAPABILITY") {
                format!("* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n")
            } else if rest.contains(" EXAMINE ") || rest.contains(" SELECT ") {
                format!("* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 2] ok\r\n{tag} OK [READ-ONLY] done\r\n")
            } else if rest.contains(" SEARCH ") {
                format!("* SEARCH 1\r\n{tag} OK done\r\n")
            } else if rest.contains("RFC822.SIZE") {
                format!("* 1 FETCH (UID 1 RFC822.SIZE 100)\r\n{tag} OK done\r\n")
            } else if rest.contains("BODY.PEEK[]") {
                if let Some(f) = body.take() {
                    f(&mut out, &tag);
                }
                return;
            } else if rest.contains(" LOGOUT") {
                let _ = out.write_all(format!("* BYE\r\n{tag} OK bye\r\n").as_bytes());
                return;
            } else {
                format!("{tag} OK done\r\n")
            };
            if out.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    })
}

#[test]
fn an_imap_literal_of_2_pow_63_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let state_arg = state.to_str().expect("utf-8").to_string();
    for size in [
        "9223372036854775808",
        "9223372036854775807",
        "18446744073709551615",
        "4294967296",
    ] {
        // The literal's header, a few bytes of it, then the server closes.
        let header = format!(
            "* 1 FETCH (UID 1 INTERNALDATE \"23-Nov-2026 12:00:00 +0000\" BODY[] {{{size}}}\r\n"
        );
        let port = imap_peer(move |out, _tag| {
            let _ = out.write_all(header.as_bytes());
            let _ = out.write_all(b"Subject: x\r\n\r\nshort\r\n");
            thread::sleep(Duration::from_millis(200));
        });
        let out = run_against("imap-dump", port, &["--state", &state_arg]);
        eprintln!(
            "literal {{{size}}}: status {:?} in {:?}, peak {} KiB: {}",
            out.code,
            out.elapsed,
            out.peak_kib,
            out.stderr.trim()
        );
        assert!(!out.stderr.contains("panicked"), "{size}: {}", out.stderr);
        assert!(
            !out.stderr.contains("memory allocation"),
            "{size}: {}",
            out.stderr
        );
        assert!(
            out.peak_kib < 100 * 1024,
            "{size}: peak RSS {} KiB",
            out.peak_kib
        );
        // The server broke the protocol (76); it did not end the session.
        assert_error(&out, "imap-dump", 76);
        assert!(
            !out.stderr.contains("ended the session"),
            "{size}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{size}: nothing written");
        assert!(!state.exists(), "{size}: no state saved");
    }
}

#[test]
fn an_imap_literal_far_over_rfc822_size_followed_by_endless_data_is_bounded() {
    // RFC822.SIZE said 100 bytes; the server then claims a huge literal and
    // keeps sending. imap-dump must stop well before memory runs out, and
    // say that the server broke the protocol.
    for size in ["2000000000", "9223372036854775807"] {
        let header = format!(
            "* 1 FETCH (UID 1 INTERNALDATE \"23-Nov-2026 12:00:00 +0000\" BODY[] {{{size}}}\r\n"
        );
        let port = imap_peer(move |out, _tag| {
            let _ = out.write_all(header.as_bytes());
            let chunk = vec![b'x'; 1 << 16];
            let until = Instant::now() + Duration::from_secs(15);
            let mut sent = 0usize;
            // At most 1 GiB, at most 15 s.
            while Instant::now() < until && sent < 1 << 30 {
                if out.write_all(&chunk).is_err() {
                    return;
                }
                sent += chunk.len();
            }
        });
        let out = run_against("imap-dump", port, &["--batch-size", "1000000"]);
        eprintln!(
            "endless literal {{{size}}}: status {:?} in {:?}, peak {} KiB: {}",
            out.code,
            out.elapsed,
            out.peak_kib,
            out.stderr.trim()
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(
            out.peak_kib < 256 * 1024,
            "{size}: imap-dump buffered {} KiB of a literal the server said was 100 bytes",
            out.peak_kib
        );
        assert_error(&out, "imap-dump", 76);
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_greeting_dripped_a_byte_at_a_time_is_bounded_by_the_timeout() {
    // Each byte comes well within --timeout (3 s), the whole greeting would
    // take half a minute: the timeout must bound the reply, not each read.
    let mut failures = Vec::new();
    for (tool_name, greeting) in [
        (
            "smtp-send",
            &b"220 drip.example ESMTP a very slow server indeed\r\n"[..],
        ),
        (
            "imap-dump",
            &b"* OK drip IMAP4rev1 a very slow server indeed\r\n"[..],
        ),
        (
            "pop3-dump",
            &b"+OK drip POP3 a very slow server indeed here\r\n"[..],
        ),
    ] {
        let port = peer(move |mut s| {
            for &b in greeting {
                if s.write_all(&[b]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(700));
            }
        });
        let extra: &[&str] = if tool_name == "smtp-send" {
            &[]
        } else {
            &["--list"]
        };
        let verdict = std::panic::catch_unwind(|| {
            let out = run_against(tool_name, port, extra);
            eprintln!(
                "{tool_name}, dripped greeting: status {:?} in {:?}: {}",
                out.code,
                out.elapsed,
                out.stderr.trim()
            );
            assert!(
                out.elapsed < Duration::from_secs(3 + 2),
                "took {:?} with --timeout 3",
                out.elapsed
            );
            assert_error(&out, tool_name, 75);
            assert!(out.stdout.is_empty());
        });
        if let Err(e) = verdict {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{tool_name}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
