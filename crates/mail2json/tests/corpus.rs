//! The corpus oracle: mail2json against Python's email package over every
//! message of the shared corpus (../shared/corpus from the workspace root).
//! mbox files are split with mailpipe's reader first, so both sides see the
//! same messages. Skips, saying so, only when the corpus does not exist.
//! `MAIL2JSON_ORACLE_KEEP=DIR` keeps the split messages and the report there.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{corpus_dir, files_under};
use mailpipe_e2e::Tool;

/// Writes each message of the corpus to its own file in `into`.
fn split_corpus(corpus: &Path, into: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(corpus, &mut files);
    let mut messages = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let data = std::fs::read(path).expect("corpus file is readable");
        let stem = path
            .strip_prefix(corpus)
            .expect("under corpus")
            .to_string_lossy()
            .replace('/', "_");
        if data.starts_with(b"From ") {
            let reader = mailpipe::mbox::MboxReader::new(&data[..]);
            for (k, m) in reader.enumerate() {
                let m = m.expect("mbox in memory reads");
                let out = into.join(format!("{i:04}-{k:04}-{stem}"));
                std::fs::write(&out, &m.data).expect("write split message");
                messages.push(out);
            }
        } else if !data.is_empty() {
            let out = into.join(format!("{i:04}-{stem}"));
            std::fs::write(&out, &data).expect("write message");
            messages.push(out);
        }
    }
    messages
}

#[test]
fn agrees_with_python_on_the_shared_corpus() {
    let corpus = corpus_dir();
    if !corpus.is_dir() {
        eprintln!("SKIPPED: {} does not exist", corpus.display());
        return;
    }
    let keep = std::env::var_os("MAIL2JSON_ORACLE_KEEP").map(PathBuf::from);
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let split = work.join("messages");
    std::fs::create_dir_all(&split).expect("mkdir");
    let messages = split_corpus(&corpus, &split);
    assert!(
        messages.len() > 1000,
        "corpus has {} messages",
        messages.len()
    );

    let jsonl = work.join("mail2json.jsonl");
    let out = std::fs::File::create(&jsonl).expect("create output");
    let status = Command::new(Tool::Mail2json.path())
        .args(["--input", "message"])
        .args(&messages)
        .stdout(out)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("mail2json runs");
    // A few corpus files are not mail at all (no header): 65, not a crash.
    assert!(
        matches!(status.code(), Some(0 | 65)),
        "mail2json exit {status:?}"
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle.py");
    let report = work.join("disagreements.jsonl");
    let output = Command::new("python3")
        .arg(&script)
        .arg("compare")
        .args(["--min", "0.97", "--report"])
        .arg(&report)
        .arg(&jsonl)
        .args(&messages)
        .output()
        .expect("python3 runs the oracle");
    let summary = String::from_utf8_lossy(&output.stdout);
    eprintln!("{summary}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "agreement with Python under 97% (report: {}):\n{summary}",
        report.display()
    );
}
