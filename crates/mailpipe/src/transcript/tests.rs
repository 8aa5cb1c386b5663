//! Tests of the shared core (registered secrets, escaping, the stream), and
//! the helpers the protocol modules' tests use: every redaction is asserted
//! with the secret and its base64 forms absent from the output.

use super::*;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

pub(super) use base64::engine::general_purpose::STANDARD as B64;

pub(super) const USER: &str = "alice@example.org";
pub(super) const PASS: &str = "correct horse \"battery\" staple";

#[derive(Clone, Default)]
pub(super) struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("sink").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink {
    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("sink")).into_owned()
    }
}

pub(super) fn transcript(dialect: Dialect) -> (Transcript, Sink) {
    let sink = Sink::default();
    (Transcript::new(dialect, sink.clone()), sink)
}

/// Feeds a scripted dialogue: lines starting `C:` are client bytes, `S:` server.
pub(super) fn play(t: &mut Transcript, script: &[(&str, &str)]) {
    for (who, line) in script {
        let bytes = format!("{line}\r\n");
        match *who {
            "C" => t.client_bytes(bytes.as_bytes()),
            _ => t.server_bytes(bytes.as_bytes()),
        }
    }
}

pub(super) fn assert_clean(out: &str, secret: &str, user: &str) {
    let forms = [
        secret.to_string(),
        B64.encode(secret).trim_end_matches('=').to_string(),
        B64.encode(format!("\0{user}\0{secret}"))
            .trim_end_matches('=')
            .to_string(),
        B64.encode(format!("{user}\0{user}\0{secret}"))
            .trim_end_matches('=')
            .to_string(),
        B64.encode(format!("user={user}\x01auth=Bearer {secret}\x01\x01"))
            .trim_end_matches('=')
            .to_string(),
    ];
    for form in forms {
        assert!(!out.contains(&form), "{form:?} leaked in:\n{out}");
    }
}

pub(super) fn plain_b64() -> String {
    B64.encode(format!("\0{USER}\0{PASS}"))
}

#[test]
fn registered_secrets_are_redacted_anywhere() {
    let (mut t, sink) = transcript(Dialect::Smtp);
    t.add_credentials(USER, &Secret::new(PASS));
    let token = Secret::new("tok-1234567890abcdef");
    t.add_secret(&token);
    // A server that echoes things back, and base64 at every offset.
    t.server(&format!("250 hello {PASS} and {}", B64.encode(PASS)));
    for prefix in ["", "x", "xy"] {
        t.server(&format!("250 {}", B64.encode(format!("{prefix}{PASS}!"))));
    }
    t.server(&format!("250 {}", plain_b64()));
    t.client(&format!("NOOP {}", token.expose()));
    let out = sink.text();
    assert!(out.contains("<redacted>"), "{out}");
    assert_clean(&out, PASS, USER);
    assert!(!out.contains(token.expose()), "{out}");
    for prefix in ["", "x", "xy"] {
        let b64 = B64.encode(format!("{prefix}{PASS}!"));
        assert!(!out.contains(&b64), "{out}");
    }
}

#[test]
fn escapes_and_truncation() {
    let (mut t, sink) = transcript(Dialect::Smtp);
    t.server_bytes(b"250 caf\xc3\xa9 \xff\x1b[31m\ttab\r\n");
    t.server_bytes(format!("250 {}\r\n", "a".repeat(5000)).as_bytes());
    t.server_bytes(format!("250 {}\r\n", "b".repeat(40_000)).as_bytes());
    let out = sink.text();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "S: 250 café \\xff\\x1b[31m\\x09tab");
    assert!(
        lines[1].ends_with(" [... cut]") && lines[1].len() < 1100,
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with("[... cut, line of 40006 bytes]"),
        "{}",
        lines[2]
    );
    assert_eq!(lines.len(), 3);
}

/// A duplex in-memory stream: reads come from `input`, writes go to `output`.
struct Mock {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Mock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Short reads, as a socket gives them.
        let n = buf.len().min(7);
        self.input.read(&mut buf[..n])
    }
}

impl Write for Mock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn stream_logs_both_directions_and_passes_bytes() {
    let server = b"+OK ready\r\n+OK\r\n-ERR bad\r\npartial".to_vec();
    let mock = Mock {
        input: Cursor::new(server.clone()),
        output: Vec::new(),
    };
    let (t, sink) = transcript(Dialect::Pop3);
    let mut s = TranscriptStream::new(mock, Some(t));
    let mut got = Vec::new();
    s.write_all(b"USER alice\r\n").expect("write");
    s.write_all(format!("PASS {PASS}\r\n").as_bytes())
        .expect("write");
    s.read_to_end(&mut got).expect("read");
    assert_eq!(got, server);
    let s = s.map_inner(Ok::<_, ()>).expect("map");
    assert_eq!(
        s.get_ref().output,
        format!("USER alice\r\nPASS {PASS}\r\n").as_bytes()
    );
    assert_eq!(
        sink.text(),
        "C: USER alice\nC: PASS <redacted>\nS: +OK ready\nS: +OK\nS: -ERR bad\nS: partial\n"
    );
}

#[test]
fn stream_without_transcript_only_forwards() {
    let mock = Mock {
        input: Cursor::new(b"* OK hi\r\n".to_vec()),
        output: Vec::new(),
    };
    let mut s = TranscriptStream::new(mock, None);
    assert!(s.transcript().is_none());
    s.write_all(b"a1 NOOP\r\n").expect("write");
    let mut got = String::new();
    s.read_to_string(&mut got).expect("read");
    assert_eq!(got, "* OK hi\r\n");
    assert_eq!(s.into_inner().output, b"a1 NOOP\r\n");
}
