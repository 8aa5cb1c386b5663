//! mail2json in a live pipe: the framing `imap-dump --follow` and
//! `pop3-dump --follow` write (a From_ line with `mailpipe-length=N`) lets
//! each record out as soon as its message is whole, and a stalled pipe never
//! splits a message; plain mboxrd keeps its meaning (a message ends at the
//! next From_ line), and a wrong length loses nothing.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use mailpipe::mbox::MboxWriter;
use mailpipe_e2e::Tool;
use serde_json::Value;

/// mail2json reading a pipe we write, its records arriving on a channel.
struct Live {
    child: Child,
    stdin: Option<ChildStdin>,
    records: Receiver<Value>,
}

impl Live {
    fn start() -> Live {
        let mut child = Command::new(Tool::Mail2json.path())
            .args(["--fields", "subject,text,defects"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mail2json");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, records) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let record = serde_json::from_str(&line).expect("a JSON line");
                if tx.send(record).is_err() {
                    break;
                }
            }
        });
        Live {
            child,
            stdin,
            records,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write");
        stdin.flush().expect("flush");
    }

    /// The next record, within a generous bound (a held-back record fails).
    fn next(&self) -> Value {
        self.records
            .recv_timeout(Duration::from_secs(5))
            .expect("a record within 5 s")
    }

    /// No record arrives for `wait`.
    fn quiet_for(&self, wait: Duration) {
        if let Ok(r) = self.records.recv_timeout(wait) {
            panic!("no record expected yet, got {r}");
        }
    }

    fn finish(mut self) -> Vec<Value> {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait");
        assert_eq!(status.code(), Some(0));
        self.records.iter().collect()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn entry(framed: bool, message: &[u8]) -> Vec<u8> {
    let time = Utc
        .with_ymd_and_hms(2026, 11, 30, 2, 0, 0)
        .single()
        .expect("date");
    let mut w = MboxWriter::new(Vec::new());
    w.set_framed(framed);
    w.write_message("a@example.org", time, message)
        .expect("write");
    w.into_inner()
}

const ONE: &[u8] = b"From: a@example.org\r\nSubject: one\r\n\r\nfirst\r\n\r\nFrom the top\r\n";
const TWO: &[u8] = b"From: a@example.org\r\nSubject: two\r\n\r\nsecond body line\r\n";

#[test]
fn a_framed_message_is_emitted_before_the_next_one_starts() {
    let mut live = Live::start();
    live.write(&entry(true, ONE));
    let first = live.next();
    assert_eq!(first["subject"], "one");
    assert_eq!(first["text"], "first\n\nFrom the top\n");
    assert_eq!(first["defects"], serde_json::json!([]));
    // The second entry stalls mid-line, then mid-message: nothing comes out
    // until it is whole, and then it comes out whole.
    let two = entry(true, TWO);
    let (head, tail) = two.split_at(two.len() - 12);
    live.write(&head[..30]);
    live.quiet_for(Duration::from_millis(600));
    live.write(&head[30..]);
    live.quiet_for(Duration::from_millis(600));
    live.write(tail);
    let second = live.next();
    assert_eq!(second["subject"], "two");
    assert_eq!(second["text"], "second body line\n");
    assert!(live.finish().is_empty());
}

#[test]
fn plain_mboxrd_on_a_pipe_ends_a_message_at_the_next_from_line() {
    let mut live = Live::start();
    live.write(&entry(false, ONE));
    // Without the framing, the end of the message is not known yet.
    live.quiet_for(Duration::from_millis(800));
    live.write(&entry(false, TWO));
    assert_eq!(live.next()["subject"], "one");
    let rest = live.finish();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["subject"], "two");
    assert_eq!(rest[0]["text"], "second body line\n");
}

#[test]
fn a_wrong_length_is_a_defect_and_nothing_is_lost() {
    let mut bytes = entry(true, ONE);
    bytes.extend(entry(true, TWO));
    let text = String::from_utf8(bytes).expect("utf8");
    let length = text
        .split_once("mailpipe-length=")
        .and_then(|(_, rest)| rest.split('\r').next())
        .expect("a length");
    let wrong = text.replacen(
        &format!("mailpipe-length={length}\r"),
        "mailpipe-length=1000\r",
        1,
    );
    let out = Command::new(Tool::Mail2json.path())
        .args(["--fields", "subject,text,defects"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(wrong.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let records: Vec<Value> = String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0]["text"], "first\n\nFrom the top\n");
    assert!(records[0]["defects"][0]
        .as_str()
        .is_some_and(|d| d.starts_with("mbox-framing")));
    assert_eq!(records[1]["subject"], "two");
    assert_eq!(records[1]["text"], "second body line\n");
}

#[test]
fn python_mailbox_reads_the_same_messages_from_a_framed_mbox() {
    let messages: [&[u8]; 3] = [
        b"From: a@example.org\nSubject: one\n\nfirst\n",
        b"From: b@example.org\nSubject: two\n\nsecond\n\nmore\n",
        b"Subject: three\n\n",
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("framed.mbox");
    let bytes: Vec<u8> = messages.iter().flat_map(|m| entry(true, m)).collect();
    std::fs::write(&path, &bytes).expect("write");
    let ours: Vec<Vec<u8>> = mailpipe::mbox::MboxReader::new(&bytes[..])
        .map(|m| m.expect("reads").data)
        .collect();
    assert_eq!(ours, messages.map(<[u8]>::to_vec));
    let script = "import mailbox, sys, json\n\
                  box = mailbox.mbox(sys.argv[1])\n\
                  print(json.dumps([m.decode('latin-1') for m in (box.get_bytes(k) for k in box.keys())]))\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<String> = serde_json::from_slice(&out.stdout).expect("JSON");
    let ours: Vec<String> = ours
        .iter()
        .map(|m| String::from_utf8(m.clone()).expect("utf8"))
        .collect();
    assert_eq!(theirs, ours);
}
