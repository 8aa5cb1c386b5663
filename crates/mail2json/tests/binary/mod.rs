//! Running the mail2json binary as a user would, for the tests that check
//! its JSON: the fixtures, a run with stdin, and the one record it writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mailpipe_e2e::{run_with_stdin, Tool};
use serde_json::Value;

/// A message of tests/fixtures/mail (SOURCES.md says where each is from).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/mail")
        .join(name)
}

pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    run_with_stdin(Command::new(Tool::Mail2json.path()).args(args), stdin)
}

/// The one record mail2json writes for `stdin` (or the file in `args`),
/// after checking that it exited 0 and wrote exactly one JSON line.
pub fn record(args: &[&str], stdin: &[u8]) -> Value {
    let out = run(args, stdin);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("output is UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one record: {text}");
    serde_json::from_str(lines[0]).expect("JSON record")
}
