//! `--mbox` from a file with PIPELINING and CHUNKING: several messages in
//! flight on one connection, against a scripted peer for what Postfix will
//! not do on demand (a refusal in the middle of the window, a 421, a
//! connection cut with messages in flight). The peer keeps a transaction
//! open after a refusal as Postfix does (a MAIL FROM inside it is a nested
//! MAIL, 503), so a flight that did not begin with RSET would show. The
//! window over the real Postfix is in stack.rs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use mailpipe_e2e::mail::read_mbox;
use mailpipe_e2e::{code, run_with_file_stdin, run_with_stdin, stderr, Tool};

const EHLO: &str = "250-peer.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
                    250-CHUNKING\r\n250 SIZE 100000000\r\n";

/// What the peer does with message `n` on connection `c` (from 0).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Act {
    Take,
    /// 550 at RCPT (and, as Postfix, 554 no valid recipients at BDAT).
    RefuseRcpt,
    /// 554 5.6.0 at the end of the message.
    RefuseData,
    /// 421 at RCPT, then the server closes.
    Close421,
    /// Reads the message, never answers it, and closes.
    Cut,
}

type Rule = fn(usize, usize) -> Act;

/// What the peer saw: per connection, the messages it confirmed (number,
/// bytes), and every command line.
#[derive(Default)]
struct Seen {
    confirmed: Vec<Vec<(usize, Vec<u8>)>>,
    commands: Vec<String>,
    nested: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A peer serving up to three connections in turn.
fn peer(rule: Rule) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let into = Arc::clone(&seen);
    thread::spawn(move || {
        for c in 0..3 {
            let Ok((socket, _)) = listener.accept() else {
                return;
            };
            lock(&into).confirmed.push(Vec::new());
            serve(socket, c, rule, &into);
        }
    });
    (port, seen)
}

fn serve(socket: TcpStream, c: usize, rule: Rule, seen: &Mutex<Seen>) {
    let _ = socket.set_read_timeout(Some(Duration::from_secs(20)));
    let mut out = socket.try_clone().expect("clone");
    let mut input = BufReader::new(socket);
    let _ = out.write_all(b"220 peer.example ESMTP scripted\r\n");
    // The open transaction: its message number and what to do with it.
    let mut open: Option<(usize, Act)> = None;
    let mut valid = false;
    // Closes the write side and reads to the end: the client reads every
    // reply sent before, then the end of the connection.
    let close = |out: &mut TcpStream, input: &mut BufReader<TcpStream>| {
        let _ = out.shutdown(Shutdown::Write);
        let _ = std::io::copy(input, &mut std::io::sink());
    };
    loop {
        let mut line = String::new();
        if input.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_string();
        lock(seen).commands.push(line.clone());
        let upper = line.to_ascii_uppercase();
        let reply: Vec<u8> = if upper.starts_with("EHLO") {
            EHLO.into()
        } else if upper.starts_with("MAIL") {
            if open.is_some() {
                lock(seen).nested += 1;
                b"503 5.5.1 Error: nested MAIL command\r\n".to_vec()
            } else {
                open = Some((0, Act::Take));
                valid = false;
                b"250 2.1.0 Ok\r\n".to_vec()
            }
        } else if upper.starts_with("RCPT") {
            // RCPT TO:<b{n}@example.org>
            let n: usize = line
                .split(['b', '@'])
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let act = rule(c, n);
            if open.is_some() {
                open = Some((n, act));
            }
            match act {
                Act::RefuseRcpt => b"550 5.1.1 no such user\r\n".to_vec(),
                Act::Close421 => {
                    let _ = out.write_all(b"421 4.7.0 peer.example Error: too many errors\r\n");
                    close(&mut out, &mut input);
                    return;
                }
                _ => {
                    valid = open.is_some();
                    b"250 2.1.5 Ok\r\n".to_vec()
                }
            }
        } else if upper.starts_with("BDAT") {
            let size: usize = line
                .split(' ')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let mut chunk = vec![0u8; size];
            if input.read_exact(&mut chunk).is_err() {
                return;
            }
            match open {
                Some((_, Act::Cut)) => {
                    close(&mut out, &mut input);
                    return;
                }
                Some((_, Act::RefuseData)) if valid => {
                    b"554 5.6.0 Error: message content rejected\r\n".to_vec()
                }
                Some((n, _)) if valid => {
                    open = None;
                    lock(seen).confirmed[c].push((n, chunk));
                    format!("250 2.0.0 Ok: queued as P{c}M{n}\r\n").into_bytes()
                }
                _ => b"554 5.5.1 Error: no valid recipients\r\n".to_vec(),
            }
        } else if upper.starts_with("RSET") {
            open = None;
            b"250 2.0.0 Ok\r\n".to_vec()
        } else if upper.starts_with("QUIT") {
            let _ = out.write_all(b"221 2.0.0 Bye\r\n");
            return;
        } else {
            b"502 5.5.2 unknown\r\n".to_vec()
        };
        if out.write_all(&reply).is_err() {
            return;
        }
    }
}

/// `count` one-recipient messages, message i to b{i}@example.org.
fn mbox_of(count: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut mbox = Vec::new();
    let mut messages = Vec::new();
    for i in 1..=count {
        let m = format!(
            "From: a@example.org\nTo: b{i}@example.org\nSubject: m{i}\nDate: x\n\
             Message-ID: <m{i}@x>\n\nbody {i}\n.\nFrom the middle\n"
        );
        mailpipe::mbox::MboxWriter::new(&mut mbox)
            .write_message("a@example.org", chrono::Utc::now(), m.as_bytes())
            .expect("mbox");
        messages.push(m.into_bytes());
    }
    (mbox, messages)
}

fn client(port: u16, dead: &std::path::Path) -> Command {
    let mut cmd = Tool::SmtpSend.command();
    cmd.arg("--server")
        .arg(format!("smtp://127.0.0.1:{port}"))
        .args(["--tls", "none", "-f", "a@example.org", "--timeout=10"])
        .args(["--mbox", "-t", "--report", "json", "-v", "--dead-letter"])
        .arg(dead);
    cmd
}

/// One run: the output (the dead letter's path in it as DEAD), the dead
/// letter, and what the peer saw.
struct Run {
    out: Output,
    dead: Vec<Vec<u8>>,
    seen: Arc<Mutex<Seen>>,
}

/// The mbox from a file (the window) or from a pipe (one message per
/// round trip, as before the window), against a fresh peer.
fn send(rule: Rule, mbox: &[u8], from_file: bool) -> Run {
    let (port, seen) = peer(rule);
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = dir.path().join("dead.mbox");
    let mut cmd = client(port, &dead);
    let mut out = if from_file {
        run_with_file_stdin(&mut cmd, dir.path(), mbox)
    } else {
        run_with_stdin(&mut cmd, mbox)
    };
    let path = dead.display().to_string();
    out.stderr = stderr(&out).replace(&path, "DEAD").into_bytes();
    out.stdout = String::from_utf8_lossy(&out.stdout)
        .replace(&path, "DEAD")
        .into_bytes();
    let dead = if dead.exists() {
        read_mbox(&dead)
    } else {
        Vec::new()
    };
    Run { out, dead, seen }
}

/// The lines a user reads: the per-message and summary lines, without the
/// transcript.
fn report(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("smtp-send:"))
        .map(str::to_string)
        .collect()
}

/// How many MAIL FROM left before the first message's final reply came.
fn in_flight_at_first_reply(out: &Output) -> usize {
    let err = stderr(out);
    let first = err
        .lines()
        .position(|l| l.contains(" queued as ") || l.starts_with("S: 5"))
        .unwrap_or(0);
    err.lines()
        .take(first)
        .filter(|l| l.starts_with("C: MAIL FROM"))
        .count()
}

/// The numbers of the messages each connection confirmed, in order.
fn confirmed(run: &Run) -> Vec<Vec<usize>> {
    lock(&run.seen)
        .confirmed
        .iter()
        .map(|c| c.iter().map(|(n, _)| *n).collect())
        .collect()
}

fn refusals_in_the_window(_: usize, n: usize) -> Act {
    match n {
        3 => Act::RefuseData,
        5 | 6 => Act::RefuseRcpt,
        9 => Act::RefuseData,
        _ => Act::Take,
    }
}

/// Refusals in the middle of the window (at the end of the message, at
/// RCPT, two in a row): every report, exit code, JSON line and the dead
/// letter are what one message per round trip gives; the others are
/// taken once each, in order, with no nested MAIL.
#[test]
fn refusals_in_the_window_are_reported_as_one_at_a_time() {
    let (mbox, messages) = mbox_of(12);
    let window = send(refusals_in_the_window, &mbox, true);
    let serial = send(refusals_in_the_window, &mbox, false);
    let err = stderr(&window.out);
    assert!(in_flight_at_first_reply(&window.out) >= 6, "{err}");
    assert_eq!(in_flight_at_first_reply(&serial.out), 1);
    assert_eq!(code(&window.out), code(&serial.out), "{err}");
    assert_eq!(code(&window.out), 67, "{err}");
    assert_eq!(report(&window.out), report(&serial.out));
    assert!(err.contains("4 of 12 messages not delivered"), "{err}");
    assert_eq!(window.out.stdout, serial.out.stdout, "the JSON reports");
    let refused: Vec<Vec<u8>> = [3, 5, 6, 9]
        .iter()
        .map(|&i| messages[i - 1].clone())
        .collect();
    assert_eq!(window.dead, refused);
    assert_eq!(serial.dead, refused);
    let taken = vec![vec![1, 2, 4, 7, 8, 10, 11, 12]];
    assert_eq!(confirmed(&window), taken);
    assert_eq!(confirmed(&serial), taken);
    assert_eq!(lock(&window.seen).nested, 0, "every flight began clean");
    // Each message's bytes as sent (CRLF), once.
    for (n, bytes) in &lock(&window.seen).confirmed[0] {
        let sent = String::from_utf8_lossy(&messages[n - 1]).replace('\n', "\r\n");
        let got = String::from_utf8_lossy(bytes);
        assert!(got.ends_with(&sent), "message {n}: {got}");
    }
}

fn close_at_the_fourth(c: usize, n: usize) -> Act {
    if c == 0 && n == 4 {
        Act::Close421
    } else {
        Act::Take
    }
}

/// A 421 at the fourth message's RCPT with more in flight: the fourth is
/// reported and kept as today, the ones after it (which the server never
/// read) go again over a new connection, each delivered exactly once.
#[test]
fn after_a_421_in_the_window_the_rest_go_over_a_new_connection() {
    let (mbox, messages) = mbox_of(10);
    let window = send(close_at_the_fourth, &mbox, true);
    let serial = send(close_at_the_fourth, &mbox, false);
    let err = stderr(&window.out);
    assert!(in_flight_at_first_reply(&window.out) >= 5, "{err}");
    assert_eq!(code(&window.out), 75, "{err}");
    assert_eq!(code(&serial.out), 75);
    assert_eq!(report(&window.out), report(&serial.out));
    assert_eq!(window.out.stdout, serial.out.stdout, "the JSON reports");
    assert!(err.contains("1 of 10 messages not delivered"), "{err}");
    assert_eq!(window.dead, vec![messages[3].clone()]);
    assert_eq!(serial.dead, window.dead);
    let expected = vec![vec![1, 2, 3], vec![5, 6, 7, 8, 9, 10]];
    assert_eq!(confirmed(&window), expected);
    assert_eq!(confirmed(&serial), expected);
}

fn cut_at_the_third(c: usize, n: usize) -> Act {
    if c == 0 && n == 3 {
        Act::Cut
    } else {
        Act::Take
    }
}

/// The connection cut with many messages in flight: each message the
/// server confirmed is delivered once and not kept; every unconfirmed one
/// (the server may have taken it) is kept byte for byte and reported 75;
/// the messages not yet sent go over a new connection.
#[test]
fn a_cut_with_messages_in_flight_keeps_every_unconfirmed_one() {
    let (mbox, messages) = mbox_of(40);
    let run = send(cut_at_the_third, &mbox, true);
    let err = stderr(&run.out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(code(&run.out), 75, "{err}");
    let confirmed = confirmed(&run);
    assert_eq!(confirmed.len(), 2, "one reconnection: {err}");
    assert_eq!(confirmed[0], [1, 2]);
    let mut delivered: Vec<usize> = confirmed.concat();
    delivered.sort_unstable();
    delivered.dedup();
    assert_eq!(delivered.len(), confirmed.concat().len(), "none twice");
    let kept: Vec<usize> = (1..=40).filter(|n| !delivered.contains(n)).collect();
    assert!(kept.len() > 2, "several in flight: {kept:?}");
    assert_eq!(
        run.dead,
        kept.iter()
            .map(|&n| messages[n - 1].clone())
            .collect::<Vec<_>>(),
        "the dead letter holds exactly the unconfirmed"
    );
    assert!(
        err.contains(&format!("{} of 40 messages not delivered", kept.len())),
        "{err}"
    );
    let reports: Vec<serde_json::Value> = run
        .out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("JSON line"))
        .collect();
    assert_eq!(reports.len(), 40);
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r["message"], i + 1, "in input order");
        let expected = if kept.contains(&(i + 1)) { 75 } else { 0 };
        assert_eq!(r["exit"], expected, "{r}");
    }
}
