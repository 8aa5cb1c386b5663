//! Tests of the transcript rules: every redaction asserted with the secret and
//! its base64 forms absent from the output.

use super::*;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;

const USER: &str = "alice@example.org";
const PASS: &str = "correct horse \"battery\" staple";

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

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
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("sink")).into_owned()
    }
}

fn transcript(dialect: Dialect) -> (Transcript, Sink) {
    let sink = Sink::default();
    (Transcript::new(dialect, sink.clone()), sink)
}

/// Feeds a scripted dialogue: lines starting `C:` are client bytes, `S:` server.
fn play(t: &mut Transcript, script: &[(&str, &str)]) {
    for (who, line) in script {
        let bytes = format!("{line}\r\n");
        match *who {
            "C" => t.client_bytes(bytes.as_bytes()),
            _ => t.server_bytes(bytes.as_bytes()),
        }
    }
}

fn assert_clean(out: &str, secret: &str, user: &str) {
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

fn plain_b64() -> String {
    B64.encode(format!("\0{USER}\0{PASS}"))
}

#[test]
fn smtp_auth_plain_initial_response() {
    let (mut t, sink) = transcript(Dialect::Smtp);
    let auth = format!("AUTH PLAIN {}", plain_b64());
    play(
        &mut t,
        &[
            ("S", "220 mail.example.org ESMTP"),
            ("C", "EHLO client"),
            ("S", "250-mail.example.org"),
            ("S", "250 AUTH PLAIN LOGIN"),
            ("C", &auth),
            ("S", "235 2.7.0 Authentication successful"),
            ("C", "MAIL FROM:<alice@example.org>"),
        ],
    );
    let out = sink.text();
    assert!(out.contains("C: AUTH PLAIN <redacted>\n"), "{out}");
    assert!(out.contains("C: MAIL FROM:<alice@example.org>\n"), "{out}");
    assert!(out.contains("S: 250 AUTH PLAIN LOGIN\n"), "{out}");
    assert_clean(&out, PASS, USER);
}

#[test]
fn smtp_auth_login_continuations() {
    let (mut t, sink) = transcript(Dialect::Smtp);
    let user = B64.encode(USER);
    let pass = B64.encode(PASS);
    play(
        &mut t,
        &[
            ("C", "AUTH LOGIN"),
            ("S", "334 VXNlcm5hbWU6"),
            ("C", &user),
            ("S", "334 UGFzc3dvcmQ6"),
            ("C", &pass),
            ("S", "535 5.7.8 Authentication failed"),
            ("C", "QUIT"),
        ],
    );
    let out = sink.text();
    assert_eq!(
        out,
        "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: <redacted>\nS: 334 UGFzc3dvcmQ6\n\
         C: <redacted>\nS: 535 5.7.8 Authentication failed\nC: QUIT\n"
    );
}

#[test]
fn smtp_xoauth2_is_redacted() {
    let (mut t, sink) = transcript(Dialect::Smtp);
    let token = "ya29.a0AfH6SMBx-token-value";
    let sasl = B64.encode(format!("user={USER}\x01auth=Bearer {token}\x01\x01"));
    play(
        &mut t,
        &[
            ("C", &format!("AUTH XOAUTH2 {sasl}")),
            ("S", "334 eyJzdGF0dXMiOiI0MDAifQ=="),
            ("C", ""),
            ("S", "535 5.7.8 no"),
        ],
    );
    let out = sink.text();
    assert!(out.starts_with("C: AUTH XOAUTH2 <redacted>\n"), "{out}");
    assert_clean(&out, token, USER);
}

#[test]
fn smtp_message_body_is_one_line() {
    let (mut t, sink) = transcript(Dialect::Smtp);
    play(
        &mut t,
        &[("C", "DATA"), ("S", "354 End data with <CR><LF>.<CR><LF>")],
    );
    let body = "Subject: hi\r\n\r\nsecret body text\r\n..leading dot\r\n";
    t.client_bytes(body.as_bytes());
    play(
        &mut t,
        &[("C", "."), ("S", "250 2.0.0 Ok: queued"), ("C", "QUIT")],
    );
    let out = sink.text();
    assert!(!out.contains("secret body text"), "{out}");
    assert!(
        out.contains(&format!(
            "C: <{} bytes of message>\nC: .\nS: 250",
            body.len()
        )),
        "{out}"
    );
    assert!(out.ends_with("C: QUIT\n"), "{out}");
}

#[test]
fn imap_login_is_redacted() {
    let (mut t, sink) = transcript(Dialect::Imap);
    let quoted = PASS.replace('"', "\\\"");
    play(
        &mut t,
        &[
            ("S", "* OK [CAPABILITY IMAP4rev1] Dovecot ready."),
            ("C", &format!("a1 LOGIN \"{USER}\" \"{quoted}\"")),
            ("S", "a1 OK Logged in"),
            ("C", "a2 SELECT INBOX"),
        ],
    );
    let out = sink.text();
    assert!(out.contains("C: a1 LOGIN <redacted>\n"), "{out}");
    assert!(out.contains("C: a2 SELECT INBOX\n"), "{out}");
    assert!(!out.contains(&quoted));
    assert_clean(&out, PASS, USER);
}

#[test]
fn imap_login_with_literals_is_redacted() {
    let (mut t, sink) = transcript(Dialect::Imap);
    t.client_bytes(format!("a1 LOGIN {{{}}}\r\n", USER.len()).as_bytes());
    t.server_bytes(b"+ Ready for literal data\r\n");
    t.client_bytes(format!("{USER} {{{}+}}\r\n{PASS}\r\n", PASS.len()).as_bytes());
    t.server_bytes(b"a1 OK Logged in\r\n");
    let out = sink.text();
    assert!(out.contains("C: a1 LOGIN <redacted>\n"), "{out}");
    assert_clean(&out, PASS, USER);
}

#[test]
fn imap_authenticate_and_continuations() {
    let (mut t, sink) = transcript(Dialect::Imap);
    play(
        &mut t,
        &[
            ("C", "a1 AUTHENTICATE PLAIN"),
            ("S", "+ "),
            ("C", &plain_b64()),
            ("S", "a1 OK Logged in"),
            ("C", "a2 EXAMINE INBOX"),
        ],
    );
    let out = sink.text();
    assert_eq!(
        out,
        "C: a1 AUTHENTICATE PLAIN\nS: + \nC: <redacted>\nS: a1 OK Logged in\nC: a2 EXAMINE INBOX\n"
    );
    let (mut t, sink) = transcript(Dialect::Imap);
    play(
        &mut t,
        &[("C", &format!("x AUTHENTICATE PLAIN {}", plain_b64()))],
    );
    assert_eq!(sink.text(), "C: x AUTHENTICATE PLAIN <redacted>\n");
}

#[test]
fn imap_literals_are_elided() {
    let (mut t, sink) = transcript(Dialect::Imap);
    let message = "From: a@b\r\nSubject: x\r\n\r\nthe body {5}\r\n";
    let wire = format!(
        "* 1 FETCH (UID 7 BODY[] {{{}}}\r\n{message})\r\na3 OK Fetch completed.\r\n",
        message.len()
    );
    // Byte by byte: reads split lines and literals anywhere.
    for b in wire.as_bytes() {
        t.server_bytes(std::slice::from_ref(b));
    }
    let out = sink.text();
    assert_eq!(
        out,
        format!(
            "S: * 1 FETCH (UID 7 BODY[] {{{} bytes}})\nS: a3 OK Fetch completed.\n",
            message.len()
        )
    );
}

#[test]
fn pop3_pass_apop_and_auth() {
    let (mut t, sink) = transcript(Dialect::Pop3);
    play(
        &mut t,
        &[
            ("S", "+OK Dovecot ready."),
            ("C", &format!("USER {USER}")),
            ("S", "+OK"),
            ("C", &format!("PASS {PASS}")),
            ("S", "-ERR [AUTH] Authentication failed."),
            (
                "C",
                &format!("APOP {USER} c4c9334bac560ecc979e58001b3e22fb"),
            ),
            ("S", "-ERR no"),
            ("C", "AUTH PLAIN"),
            ("S", "+ "),
            ("C", &plain_b64()),
            ("S", "+OK Logged in."),
            ("C", "STAT"),
        ],
    );
    let out = sink.text();
    assert!(out.contains("C: PASS <redacted>\n"), "{out}");
    assert!(
        out.contains(&format!("C: APOP {USER} <redacted>\n")),
        "{out}"
    );
    assert!(!out.contains("c4c9334bac"), "{out}");
    assert!(
        out.contains("C: AUTH PLAIN\nS: + \nC: <redacted>\nS: +OK Logged in.\n"),
        "{out}"
    );
    assert!(out.ends_with("C: STAT\n"), "{out}");
    assert_clean(&out, PASS, USER);
}

#[test]
fn pop3_bodies_are_elided_and_lists_shown() {
    let (mut t, sink) = transcript(Dialect::Pop3);
    // Pipelined: three commands before any reply.
    t.client_bytes(b"LIST\r\nRETR 1\r\nRETR 9\r\nTOP 2 0\r\n");
    let body = "Subject: private\r\n\r\n..dot-stuffed\r\n";
    let wire = format!(
        "+OK 2 messages\r\n1 120\r\n2 300\r\n.\r\n+OK 120 octets\r\n{body}.\r\n\
         -ERR no such message\r\n+OK\r\nSubject: top\r\n\r\n.\r\n"
    );
    t.server_bytes(wire.as_bytes());
    let out = sink.text();
    let expected = format!(
        "C: LIST\nC: RETR 1\nC: RETR 9\nC: TOP 2 0\nS: +OK 2 messages\nS: 1 120\nS: 2 300\nS: .\n\
         S: +OK 120 octets\nS: <{} bytes>\nS: .\nS: -ERR no such message\nS: +OK\n\
         S: <{} bytes>\nS: .\n",
        body.len(),
        "Subject: top\r\n\r\n".len()
    );
    assert_eq!(out, expected);
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
