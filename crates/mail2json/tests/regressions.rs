//! Findings of the adversarial review, each pinned by a test that failed
//! before its fix: maildirs made of symlinks, `-j` bounds and a thread pool
//! that cannot start, and what empty stdin means.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mailpipe_e2e::{run_bounded, Finished, Tool};
use serde_json::Value;

fn mail2json() -> Command {
    let mut cmd = Command::new(Tool::Mail2json.path());
    cmd.env("RUST_BACKTRACE", "0").env_remove("RUST_MIN_STACK");
    cmd
}

fn run(args: &[&str], stdin: &[u8]) -> Finished {
    run_bounded(
        mail2json().args(args),
        stdin,
        Duration::from_secs(30),
        |_| {},
    )
}

fn subjects(out: &Finished) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .expect("output is UTF-8")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("each line is JSON");
            v["subject"].as_str().expect("subject").to_string()
        })
        .collect()
}

fn message(subject: &str) -> Vec<u8> {
    format!("From: a@example.org\nSubject: {subject}\n\nbody of {subject}\n").into_bytes()
}

/// A maildir whose cur/ and new/ hold only links into `store/`, as mairix and
/// notmuch search folders are.
fn linked_maildir(root: &Path) -> std::path::PathBuf {
    let store = root.join("store");
    std::fs::create_dir(&store).expect("mkdir store");
    let md = root.join("search");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).expect("mkdir");
    }
    for (i, s) in ["one", "two", "three"].iter().enumerate() {
        std::fs::write(store.join(format!("m{i}")), message(s)).expect("write");
    }
    symlink(store.join("m0"), md.join("new/1.host")).expect("absolute link");
    symlink("../../store/m1", md.join("cur/2.host:2,S")).expect("relative link");
    // A link to a link to a file.
    symlink(store.join("m2"), root.join("hop")).expect("link");
    symlink(root.join("hop"), md.join("cur/3.host:2,")).expect("chained link");
    md
}

#[test]
fn maildir_of_symlinks_converts_every_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = linked_maildir(dir.path());
    let out = run(&[md.to_str().expect("utf-8")], b"");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    assert_eq!(subjects(&out), ["one", "two", "three"]);
    // The source is the link's name in the maildir, not the target's.
    let first: Value =
        serde_json::from_slice(out.stdout.split(|&b| b == b'\n').next().expect("a line"))
            .expect("JSON");
    assert!(first["source"]["path"]
        .as_str()
        .expect("path")
        .ends_with("search/new/1.host"));
}

#[test]
fn dangling_and_looping_links_warn_exit_66_and_the_rest_converts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = linked_maildir(dir.path());
    symlink(dir.path().join("gone"), md.join("cur/4.dangling")).expect("dangling");
    symlink(md.join("cur/5.loop"), md.join("cur/5.loop")).expect("loop");
    // Links to directories (the maildir itself, the filesystem root) are not
    // messages: skipped like a directory, never walked into.
    symlink(&md, md.join("cur/6.self")).expect("dir link");
    symlink("/", md.join("new/7.root")).expect("dir link");
    let out = run(&[md.to_str().expect("utf-8")], b"");
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.code, Some(66), "{}", out.stderr);
    assert_eq!(subjects(&out), ["one", "two", "three"]);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "a line per bad link, then the summary: {}",
        out.stderr
    );
    assert!(
        lines[0].starts_with("mail2json: ")
            && lines[0].contains(
                "cur/4.dangling: symbolic link to nothing readable: No such file or directory (66)"
            ),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(
            "cur/5.loop: symbolic link to nothing readable: Too many levels of symbolic links (66)"
        ),
        "{}",
        lines[1]
    );
    assert!(lines[2].ends_with("(66)"), "{}", lines[2]);
}

#[test]
fn jobs_out_of_range_is_64_one_line_and_quick() {
    for j in ["0", "257", "20000", "100000"] {
        let out = run(&["-j", j], &message("x"));
        assert!(!out.stderr.contains("panicked"), "-j {j}: {}", out.stderr);
        assert_eq!(out.code, Some(64), "-j {j}: {}", out.stderr);
        assert_eq!(
            out.stderr,
            format!("mail2json: -j {j}: the number of threads must be 1 to 256 (64)\n")
        );
        assert!(out.stdout.is_empty());
        assert!(
            out.elapsed < Duration::from_secs(5),
            "-j {j}: {:?}",
            out.elapsed
        );
    }
    for j in ["1", "256"] {
        let out = run(&["-j", j], &message("x"));
        assert_eq!(out.code, Some(0), "-j {j}: {}", out.stderr);
        assert_eq!(subjects(&out), ["x"]);
    }
}

#[test]
fn thread_pool_that_cannot_start_is_71_one_line() {
    // 256 threads of 2 MiB stacks cannot fit in 200 MB of address space; the
    // binary itself starts in far less.
    let mut sh = Command::new("sh");
    sh.args(["-c", "ulimit -v 200000 && exec \"$0\" -j 256"])
        .arg(Tool::Mail2json.path())
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_MIN_STACK");
    let out = run_bounded(&mut sh, &message("x"), Duration::from_secs(30), |_| {});
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.code, Some(71), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].starts_with("mail2json: cannot start 256 conversion threads: "),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with("(71)"), "{}", lines[0]);
    assert!(out.stdout.is_empty());
}

#[test]
fn empty_stdin_is_0_and_no_output_as_help_and_readme_say() {
    // `imap-dump --state S | mail2json` from cron with no new mail.
    let out = run(&[], b"");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let out = run(&["-"], b"");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // A missing file is still 66.
    let out = run(&["/nonexistent/in.mbox"], b"");
    assert_eq!(out.code, Some(66), "{}", out.stderr);
    // What the code does is what --help and README's exit table say.
    let help = run(&["--help"], b"");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("Empty input is no message: no output, exit 0."),
        "{help}"
    );
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let row = |code: &str| {
        readme
            .lines()
            .find(|l| l.starts_with(&format!("| {code} |")))
            .unwrap_or_else(|| panic!("README has no exit-table row for {code}"))
            .to_string()
    };
    assert!(
        row("0").contains("mail2json on empty input"),
        "{}",
        row("0")
    );
    assert!(!row("66").contains("stdin is empty"), "{}", row("66"));
}
