//! A regular-file mbox is read in blocks (crates/mail2json/src/chunked.rs),
//! a pipe line by line by `MboxReader`: the same bytes must give the same
//! records, offsets included, whatever falls on a block's edge (a message
//! larger than a block, quoted and unquoted `From ` lines, CRLF, a live-framed
//! entry in the middle of the file).

use std::process::{Command, Output};

use chrono::{TimeZone, Utc};
use mailpipe::mbox::MboxWriter;
use mailpipe_e2e::{run_with_stdin, Tool};
use serde_json::Value;

/// Lines of 72 base64 characters (54 bytes) in the big attachment: 7 MB.
const BIG_LINES: usize = 100_000;

/// An mbox whose messages cross the 4 MiB blocks in every way the reader
/// must agree on.
fn mbox() -> Vec<u8> {
    let time = Utc
        .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .expect("time");
    let mut w = MboxWriter::new(Vec::new());
    let plain = |i: usize| {
        format!("From: a{i}@example.org\nSubject: plain {i}\n\nline one\nFrom the desk of a{i}\n>From quoted\n\nbye\n")
    };
    for i in 0..300 {
        w.write_message("a@example.org", time, plain(i).as_bytes())
            .expect("write");
    }
    // Longer than a block, so its block grows.
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\n";
    let big = format!(
        "From: big@example.org\nSubject: big\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nsee the file\n--b\nContent-Type: application/octet-stream; name=big.bin\nContent-Transfer-Encoding: base64\n\n{}--b--\n",
        line.repeat(BIG_LINES)
    );
    w.write_message("big@example.org", time, big.as_bytes())
        .expect("write");
    for i in 300..900 {
        let crlf = plain(i).replace('\n', "\r\n");
        w.write_message("a@example.org", time, crlf.as_bytes())
            .expect("write");
    }
    w.set_framed(true);
    w.write_message("f@example.org", time, plain(900).as_bytes())
        .expect("write");
    w.set_framed(false);
    for i in 901..1200 {
        w.write_message("a@example.org", time, plain(i).as_bytes())
            .expect("write");
    }
    let mut bytes = w.into_inner();
    // An mboxo body line (unquoted From after a blank line splits there in
    // both readers) and a last From_ line without a line end.
    bytes.extend_from_slice(b"From x Thu Jan  1 00:00:00 2026\nSubject: s\n\nhi\n\nFrom here on\n");
    bytes.extend_from_slice(b"From y Thu Jan  1 00:00:00 2026");
    bytes
}

fn records(out: &Output, path: &str) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("a JSON line");
            v["source"]["path"] = Value::String(path.to_string());
            v
        })
        .collect()
}

#[test]
fn a_file_read_in_blocks_gives_the_records_of_a_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("all.mbox");
    let bytes = mbox();
    std::fs::write(&file, &bytes).expect("write mbox");

    let from_file = Command::new(Tool::Mail2json.path())
        .arg(&file)
        .output()
        .expect("run mail2json on the file");
    let from_pipe = run_with_stdin(&mut Command::new(Tool::Mail2json.path()), &bytes);

    let a = records(&from_file, "all.mbox");
    let b = records(&from_pipe, "all.mbox");
    // 1,201 written, then x, the mboxo line that splits it, and the last
    // From_ line: both empty messages of their own.
    assert_eq!(a.len(), 1204, "records from the file");
    assert_eq!(a.len(), b.len(), "the same number of records");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "record {i}");
    }
    let big = a
        .iter()
        .find(|r| r["subject"] == "big")
        .expect("the big message");
    assert_eq!(big["attachments"][0]["size"], BIG_LINES as u64 * 54);
    let offsets: Vec<u64> = a
        .iter()
        .map(|r| r["source"]["offset"].as_u64().expect("offset"))
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "offsets increase");
    assert_eq!(from_file.status.code(), from_pipe.status.code());
    let lines = |o: &Output| String::from_utf8_lossy(&o.stderr).lines().count();
    assert_eq!(lines(&from_file), lines(&from_pipe), "the same errors");
}
