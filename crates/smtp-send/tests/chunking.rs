//! PIPELINING and CHUNKING/BDAT where Postfix will not go on demand, from a
//! scripted SMTP peer (plain SMTP, no AUTH): BINARYMIME (Postfix does not
//! offer it), a message in several chunks, DATA answered 354 after every
//! RCPT was refused (RFC 2920 3.1), and the connection dropped after the
//! pipelined RCPTs or in the middle of a BDAT chunk.

use std::sync::{Arc, Mutex};

use mailpipe_e2e::mail::read_mbox;
use mailpipe_e2e::peer::{scripted_peer, Log, Peer};
use mailpipe_e2e::{code, run_with_file_stdin, run_with_stdin as run, stderr, Tool};

const EHLO_ALL: &str = "250-peer.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
                        250-CHUNKING\r\n250-BINARYMIME\r\n250 SIZE 100000000\r\n";
const EHLO_PIPELINING: &str = "250-peer.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n";

/// What the peer does besides serving SMTP.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Answers MAIL, then closes on reading the first RCPT.
    CloseAtRcpt,
    /// Closes after this many bytes of the first BDAT chunk.
    CloseInBdat(usize),
    /// Refuses every RCPT with 550 but answers DATA with 354.
    DataAfterRefusals,
    /// Answers the first message's final `.` with 451.
    FirstEndRefused,
}

/// The messages the peer took (BDAT chunks joined; DATA lines as sent).
type Taken = Arc<Mutex<Vec<Vec<u8>>>>;

fn peer(ehlo: &'static str, fault: Fault) -> (u16, Log, Taken) {
    let taken: Taken = Arc::default();
    let into = Arc::clone(&taken);
    let (port, log) = scripted_peer(move |p| serve(p, ehlo, fault, &into));
    (port, log, taken)
}

fn serve(p: &mut Peer, ehlo: &str, fault: Fault, taken: &Taken) {
    p.send(b"220 peer.example ESMTP scripted\r\n");
    let mut message = Vec::new();
    while let Some(line) = p.command() {
        let words: Vec<String> = line.split(' ').map(str::to_ascii_uppercase).collect();
        let verb = words[0].split(':').next().unwrap_or("").to_string();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => ehlo.as_bytes(),
            "MAIL" => {
                message.clear();
                b"250 2.1.0 Ok\r\n"
            }
            "RCPT" if fault == Fault::CloseAtRcpt => return,
            "RCPT" if fault == Fault::DataAfterRefusals => b"550 5.1.1 no such user\r\n",
            "RCPT" => b"250 2.1.5 Ok\r\n",
            "BDAT" => {
                let size: usize = words.get(1).and_then(|n| n.parse().ok()).unwrap_or(0);
                if let Fault::CloseInBdat(n) = fault {
                    let _ = p.bytes(n.min(size));
                    return;
                }
                let Some(chunk) = p.bytes(size) else { return };
                message.extend_from_slice(&chunk);
                if words.get(2).is_some_and(|w| w == "LAST") {
                    lock(taken).push(std::mem::take(&mut message));
                    b"250 2.0.0 Ok: queued as PEER\r\n"
                } else {
                    b"250 2.0.0 Ok: chunk\r\n"
                }
            }
            "DATA" => {
                p.send(b"354 go ahead\r\n");
                let mut lines = Vec::new();
                while let Some(line) = p.command() {
                    if line == "." {
                        break;
                    }
                    lines.push(line);
                }
                let refused = fault == Fault::DataAfterRefusals;
                let first = lock(taken).is_empty();
                lock(taken).push(lines.join("\r\n").into_bytes());
                if refused {
                    b"554 5.5.1 Error: no valid recipients\r\n"
                } else if first && fault == Fault::FirstEndRefused {
                    b"451 4.3.0 try again later\r\n"
                } else {
                    b"250 2.0.0 Ok: queued as PEER\r\n"
                }
            }
            "RSET" | "NOOP" => b"250 2.0.0 Ok\r\n",
            "QUIT" => {
                p.send(b"221 2.0.0 Bye\r\n");
                return;
            }
            _ => b"502 5.5.2 unknown\r\n",
        };
        p.send(reply);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn client(port: u16) -> std::process::Command {
    let mut cmd = Tool::SmtpSend.command();
    cmd.arg("--server")
        .arg(format!("smtp://127.0.0.1:{port}"))
        .args(["--tls", "none", "-f", "a@example.org", "--timeout=10"]);
    cmd
}

/// 8-bit and non-UTF-8 bytes, dot lines, a line that reads as a BDAT
/// command, bare LF line ends, and no line end at the end.
const TRICKY: &[u8] = b"From: a@example.org\nTo: b@example.org\nSubject: binary\nDate: x\n\
    Message-ID: <1@x>\n\n.\n..two\nBDAT 3 LAST\nPr\xc3\xbcfung \xe9\xff\r\n.\nend";
/// TRICKY as it must arrive by BDAT: CRLF line ends, nothing stuffed.
const TRICKY_CRLF: &[u8] =
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: binary\r\nDate: x\r\n\
    Message-ID: <1@x>\r\n\r\n.\r\n..two\r\nBDAT 3 LAST\r\nPr\xc3\xbcfung \xe9\xff\r\n.\r\nend\r\n";

#[test]
fn binarymime_where_offered_and_bdat_carries_the_bytes_unstuffed() {
    let (port, log, taken) = peer(EHLO_ALL, Fault::None);
    let out = run(client(port).args(["-t", "-v"]), TRICKY);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    let n = TRICKY_CRLF.len();
    assert_eq!(
        *lock(&log),
        [
            "EHLO [127.0.0.1]".to_string(),
            format!("MAIL FROM:<a@example.org> SIZE={n} BODY=BINARYMIME"),
            "RCPT TO:<b@example.org>".to_string(),
            format!("BDAT {n} LAST"),
            "QUIT".to_string(),
        ]
    );
    assert_eq!(*lock(&taken), [TRICKY_CRLF.to_vec()]);
    // The transcript: the command, then the chunk as a count; no body text.
    assert!(
        err.contains(&format!("C: BDAT {n} LAST\nC: <{n} bytes of message>\n")),
        "{err}"
    );
    assert!(!err.contains("two") && !err.contains("BDAT 3"), "{err}");
}

#[test]
fn a_large_message_goes_in_1_mib_chunks_after_the_rcpt_replies() {
    let (port, log, taken) = peer(EHLO_ALL, Fault::None);
    let mut sent =
        b"From: a@example.org\nTo: b@example.org\nSubject: big\nDate: x\nMessage-ID: <2@x>\n\n"
            .to_vec();
    for i in 0..25_000 {
        sent.extend_from_slice(format!(".{i:09} {}\n", "z".repeat(88)).as_bytes());
    }
    let out = run(client(port).arg("-t"), &sent);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let expected = String::from_utf8(sent)
        .expect("ascii")
        .replace('\n', "\r\n")
        .into_bytes();
    assert_eq!(lock(&taken).len(), 1);
    assert!(lock(&taken)[0] == expected, "the chunks joined differ");
    let bdats: Vec<String> = lock(&log)
        .iter()
        .filter(|l| l.starts_with("BDAT"))
        .cloned()
        .collect();
    let rest = expected.len() - 2 * 1024 * 1024;
    assert_eq!(
        bdats,
        [
            "BDAT 1048576".to_string(),
            "BDAT 1048576".to_string(),
            format!("BDAT {rest} LAST")
        ]
    );
}

/// RFC 2920 3.1: a server that answers DATA with 354 after refusing every
/// RCPT gets an empty message (a lone `.`), never the body; the refusal is
/// reported as over a server that refuses DATA.
#[test]
fn data_accepted_after_every_rcpt_refused_gets_a_lone_dot() {
    let (port, log, taken) = peer(EHLO_PIPELINING, Fault::DataAfterRefusals);
    let out = run(client(port).arg("-t"), TRICKY);
    let err = stderr(&out);
    assert_eq!(code(&out), 67, "{err}");
    assert!(
        err.contains("b@example.org: refused: 550 5.1.1 no such user"),
        "{err}"
    );
    assert_eq!(*lock(&taken), [Vec::<u8>::new()], "only the lone dot");
    let log = lock(&log);
    let after: Vec<&str> = log
        .iter()
        .skip_while(|l| !l.starts_with("MAIL"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        after[1..],
        ["RCPT TO:<b@example.org>", "DATA", ".", "RSET", "QUIT"]
    );
}

fn mbox_of(count: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut mbox = Vec::new();
    let mut messages = Vec::new();
    for i in 1..=count {
        let m = format!(
            "From: a@example.org\nTo: b@example.org\nSubject: m{i}\nDate: x\nMessage-ID: <m{i}@x>\n\nbody {i}\n"
        );
        mailpipe::mbox::MboxWriter::new(&mut mbox)
            .write_message("a@example.org", chrono::Utc::now(), m.as_bytes())
            .expect("mbox");
        messages.push(m.into_bytes());
    }
    (mbox, messages)
}

/// The connection drops after the pipelined MAIL, RCPT and BDAT left and
/// only MAIL was answered: 75, nothing reported as sent, and --mbox keeps
/// that message and (the one reconnect refused: the peer took one
/// connection) every later one, as for any lost connection.
#[test]
fn connection_dropped_after_the_pipelined_rcpts_is_75_and_all_kept() {
    let (port, log, taken) = peer(EHLO_ALL, Fault::CloseAtRcpt);
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = dir.path().join("dead.mbox");
    let (mbox, messages) = mbox_of(3);
    let out = run(
        client(port)
            .args(["--mbox", "-t", "--dead-letter"])
            .arg(&dead),
        &mbox,
    );
    let err = stderr(&out);
    assert!(!err.contains(": sent to"), "{err}");
    assert!(err.contains("3 of 3 messages not delivered"), "{err}");
    let first = err
        .lines()
        .find(|l| l.contains("message 1 "))
        .unwrap_or_else(|| panic!("message 1 reported: {err}"));
    assert!(
        first.contains("not sent") && first.ends_with("(75)"),
        "{err}"
    );
    assert_eq!(code(&out), 75, "{err}");
    assert_eq!(read_mbox(&dead), messages);
    assert!(lock(&taken).is_empty());
    assert!(lock(&log).iter().any(|l| l.starts_with("RCPT")));
}

/// An mbox file over DATA with PIPELINING: each message's MAIL, RCPT and
/// DATA follow the previous message's final `.` in the same write, before its
/// reply is read. The first message's 451 is reported and kept, no RSET
/// lands among the commands sent ahead, and the others are sent once each.
#[test]
fn over_data_the_next_message_follows_the_final_dot() {
    let (port, log, taken) = peer(EHLO_PIPELINING, Fault::FirstEndRefused);
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = dir.path().join("dead.mbox");
    let (mbox, messages) = mbox_of(3);
    let out = run_with_file_stdin(
        client(port)
            .args(["--mbox", "-t", "-v", "--dead-letter"])
            .arg(&dead),
        dir.path(),
        &mbox,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "{err}");
    assert!(err.contains("1 of 3 messages not delivered"), "{err}");
    assert_eq!(read_mbox(&dead), messages[..1]);
    // Message 2's commands left before message 1's reply was read.
    let lines: Vec<&str> = err.lines().collect();
    let refused = lines
        .iter()
        .position(|l| l.starts_with("S: 451"))
        .unwrap_or_else(|| panic!("{err}"));
    let dot = lines[..refused]
        .iter()
        .rposition(|l| *l == "C: .")
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        lines[dot + 1].starts_with("C: MAIL FROM:<a@example.org>"),
        "{err}"
    );
    assert_eq!(
        lines[dot + 2..dot + 4],
        ["C: RCPT TO:<b@example.org>", "C: DATA"],
        "{err}"
    );
    let log = lock(&log);
    assert!(!log.iter().any(|l| l == "RSET"), "{log:?}");
    assert_eq!(log.iter().filter(|l| l.starts_with("MAIL")).count(), 3);
    let taken = lock(&taken);
    assert_eq!(taken.len(), 3, "each message once");
    for (i, body) in taken.iter().enumerate() {
        let tail = format!("body {}", i + 1);
        assert!(
            body.ends_with(tail.as_bytes()),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

/// The connection drops in the middle of a BDAT chunk: 75, kept, not sent.
#[test]
fn connection_dropped_in_the_middle_of_bdat_is_75_and_kept() {
    let (port, log, taken) = peer(EHLO_ALL, Fault::CloseInBdat(1000));
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = dir.path().join("dead.mbox");
    let mut sent =
        b"From: a@example.org\nTo: b@example.org\nSubject: cut\nDate: x\nMessage-ID: <3@x>\n\n"
            .to_vec();
    sent.extend(format!("{}\n", "w".repeat(99)).repeat(2000).into_bytes());
    let out = run(client(port).args(["-t", "--dead-letter"]).arg(&dead), &sent);
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert_eq!(read_mbox(&dead), vec![sent]);
    assert!(lock(&taken).is_empty());
    assert!(lock(&log).iter().any(|l| l.starts_with("BDAT ")));
}
