//! A 200 MB mbox, built from the fixtures, converted in bounded memory: the
//! child's peak RSS (from wait4) must stay far below the input size, which a
//! reader that loads the mbox, or keeps every record, would exceed.
#![allow(unsafe_code)] // wait4(2): the only way to read a child's peak RSS exactly.

use std::io::BufWriter;
use std::path::Path;
use std::process::{Command, Stdio};

use mailpipe_e2e::Tool;

const TARGET_BYTES: u64 = 200 << 20;
/// Batches of 8 MB, two waiting and one converting, plus their records
/// (about 70 MB measured); half the input, which a reader that loads the
/// mbox or keeps every record exceeds.
const RSS_LIMIT_KB: i64 = 100 << 10;

fn build_mbox(path: &Path) -> (u64, usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mail");
    let mut messages = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for p in names {
        let data = std::fs::read(&p).expect("read fixture");
        if data.starts_with(b"From ") {
            for m in mailpipe::mbox::MboxReader::new(&data[..]) {
                messages.push(m.expect("fixture mbox reads").data);
            }
        } else {
            messages.push(data);
        }
    }
    let time = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time");
    let file = std::fs::File::create(path).expect("create mbox");
    let mut w = mailpipe::mbox::MboxWriter::new(BufWriter::new(file));
    let (mut written, mut count) = (0u64, 0usize);
    while written < TARGET_BYTES {
        for m in &messages {
            w.write_message("bench@example.org", time, m)
                .expect("write");
            written += m.len() as u64 + 60;
            count += 1;
        }
    }
    w.flush().expect("flush");
    (written, count)
}

#[test]
// The child is reaped with wait4 below, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn a_200_mb_mbox_converts_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("big.mbox");
    let (bytes, count) = build_mbox(&mbox);
    let child = Command::new(Tool::Mail2json.path())
        .arg(&mbox)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mail2json starts");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("piped");
    // Count records as they stream by, without keeping them.
    let reader = std::thread::spawn(move || {
        let mut lines = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match std::io::Read::read(&mut stdout, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            }
        }
        lines
    });
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; pid is our own child,
    // not reaped anywhere else (the Child handle was consumed above).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let lines = reader.join().expect("reader");
    let exit = libc::WEXITSTATUS(status);
    // The fixtures hold messages that are not mail: 65 is expected.
    assert!(exit == 0 || exit == 65, "exit {exit}");
    assert_eq!(lines, count, "one record per message");
    let peak_kb = usage.ru_maxrss;
    eprintln!(
        "{} MB, {count} messages, peak RSS {} MB",
        bytes >> 20,
        peak_kb >> 10
    );
    assert!(
        peak_kb < RSS_LIMIT_KB,
        "peak RSS {peak_kb} kB for a {bytes}-byte mbox"
    );
}
