//! `--help`, `--version`, `--generate-man` and `--generate-completions` of
//! every tool, written where they cannot go: a full disk is an I/O error (one
//! line, exit 74), never a silent exit 0 or a panic; a reader that went away
//! (`| head -1`) ends quietly with 0, as a closed stdout does everywhere else.

use std::io::Read;
use std::process::{Command, Stdio};

use mailpipe_e2e::Tool;

const TOOLS: [&str; 5] = ["mkmime", "smtp-send", "imap-dump", "pop3-dump", "mail2json"];

/// The requests that print text and exit before any real work.
const PRINTS: [&[&str]; 4] = [
    &["--help"],
    &["--version"],
    &["--generate-man"],
    &["--generate-completions", "bash"],
];

fn command(name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(Tool::named(name).path());
    cmd.args(args)
        .stdin(Stdio::null())
        .env("RUST_BACKTRACE", "0");
    cmd
}

#[test]
fn printing_to_a_full_disk_is_74_and_one_line() {
    for name in TOOLS {
        for args in PRINTS {
            let full = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .expect("open /dev/full");
            let out = command(name, args)
                .stdout(full)
                .output()
                .expect("tool runs");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("panicked"), "{name} {args:?} panicked: {err}");
            assert_eq!(out.status.code(), Some(74), "{name} {args:?}: {err}");
            let lines: Vec<&str> = err.lines().collect();
            assert_eq!(
                lines,
                [format!(
                    "{name}: writing stdout: No space left on device (74)"
                )],
                "{name} {args:?}"
            );
        }
    }
}

#[test]
fn printing_into_a_closed_pipe_is_0_and_quiet() {
    for name in TOOLS {
        for args in PRINTS {
            // The reader is gone before the tool starts: every write is EPIPE.
            let (reader, writer) = std::io::pipe().expect("pipe");
            drop(reader);
            let out = command(name, args)
                .stdout(writer)
                .output()
                .expect("tool runs");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{name} {args:?}: {err}");
            assert!(err.is_empty(), "{name} {args:?}: {err}");
        }
    }
}

#[test]
fn help_into_head_1_is_0() {
    for name in TOOLS {
        let mut child = command(name, &["--help"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tool starts");
        let mut head = Command::new("head")
            .arg("-1")
            .stdin(child.stdout.take().expect("piped"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("head starts");
        let mut first = String::new();
        head.stdout
            .take()
            .expect("piped")
            .read_to_string(&mut first)
            .expect("read head");
        assert!(head.wait().expect("head ends").success());
        let out = child.wait_with_output().expect("tool ends");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {err}");
        assert!(err.is_empty(), "{name}: {err}");
        assert_eq!(first.lines().count(), 1, "{name}: {first}");
    }
}
