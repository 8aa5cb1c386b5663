//! Faults a real server will not produce on demand, from a scripted SMTP peer
//! inside the test (plain SMTP, no AUTH: `--tls none` and no user): a 451
//! after DATA, a server that stalls, one without 8BITMIME or with a small
//! SIZE, and a closed port. The real Postfix is tested in stack.rs.

use mailpipe_e2e::mail::read_mbox;
use mailpipe_e2e::{code, run_with_stdin as run, stderr, Tool};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How the peer behaves.
#[derive(Clone)]
struct Script {
    ehlo: &'static str,
    /// Reply after the message's final `.`.
    after_data: &'static str,
    /// Say nothing after the greeting (a stalled server).
    stall: bool,
}

const EHLO: &str = "250-peer.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 1000000\r\n";

impl Default for Script {
    fn default() -> Script {
        Script {
            ehlo: EHLO,
            after_data: "250 2.0.0 Ok: queued as PEER1\r\n",
            stall: false,
        }
    }
}

/// What the peer saw: the command lines, and the reads that carried the message.
#[derive(Debug, Default)]
struct Seen {
    commands: Vec<String>,
    data_reads: Vec<Vec<u8>>,
}

fn peer(script: Script) -> (u16, JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = thread::spawn(move || {
        let mut seen = Seen::default();
        let Ok((tcp, _)) = listener.accept() else {
            return seen;
        };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
        let mut out = tcp.try_clone().expect("clone");
        let mut input = BufReader::new(tcp);
        let _ = out.write_all(b"220 peer.example ESMTP scripted\r\n");
        if script.stall {
            thread::sleep(Duration::from_secs(4));
            return seen;
        }
        loop {
            let mut line = String::new();
            if input.read_line(&mut line).unwrap_or(0) == 0 {
                return seen;
            }
            let command = line.trim_end().to_string();
            seen.commands.push(command.clone());
            let verb = command.split(' ').next().unwrap_or("").to_ascii_uppercase();
            let reply: &str = match verb.as_str() {
                "EHLO" => script.ehlo,
                "MAIL" | "RCPT" | "RSET" | "NOOP" => "250 2.0.0 Ok\r\n",
                "AUTH" => "235 2.7.0 Authentication successful\r\n",
                "QUIT" => {
                    let _ = out.write_all(b"221 2.0.0 Bye\r\n");
                    return seen;
                }
                "DATA" => {
                    let _ = out.write_all(b"354 go ahead\r\n");
                    let mut data = Vec::new();
                    while !data.ends_with(b"\r\n.\r\n") {
                        let mut chunk = vec![0u8; 65536];
                        // What BufReader already holds came with the DATA line's read.
                        let n = if !input.buffer().is_empty() {
                            let b = input.buffer().to_vec();
                            input.consume(b.len());
                            chunk[..b.len()].copy_from_slice(&b);
                            b.len()
                        } else {
                            input.get_mut().read(&mut chunk).unwrap_or(0)
                        };
                        if n == 0 {
                            return seen;
                        }
                        seen.data_reads.push(chunk[..n].to_vec());
                        data.extend_from_slice(&chunk[..n]);
                    }
                    script.after_data
                }
                _ => "502 5.5.2 unknown\r\n",
            };
            let _ = out.write_all(reply.as_bytes());
        }
    });
    (port, handle)
}

fn plain_client(port: u16, timeout: u64) -> std::process::Command {
    let mut cmd = Tool::SmtpSend.command();
    cmd.arg("--server")
        .arg(format!("smtp://127.0.0.1:{port}"))
        .args(["--tls", "none", "-f", "a@example.org"])
        .arg(format!("--timeout={timeout}"));
    cmd
}

const MESSAGE: &[u8] =
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: peer\r\nDate: x\r\nMessage-ID: <1@x>\r\n\r\nbody\n.dot\r\n";

#[test]
fn temporary_failure_after_data_is_75_and_kept_byte_for_byte() {
    let (port, seen) = peer(Script {
        after_data: "451 4.3.0 try again later\r\n",
        ..Script::default()
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = dir.path().join("dead.mbox");
    let out = run(
        plain_client(port, 5)
            .arg("-t")
            .arg("--dead-letter")
            .arg(&dead),
        MESSAGE,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "{err}");
    assert!(
        err.contains("end of message: the server replied 451 4.3.0 try again later"),
        "{err}"
    );
    assert_eq!(read_mbox(&dead), vec![MESSAGE.to_vec()]);
    let seen = seen.join().expect("peer");
    assert_eq!(
        seen.commands,
        [
            "EHLO [127.0.0.1]",
            "MAIL FROM:<a@example.org> SIZE=97",
            "RCPT TO:<b@example.org>",
            "DATA",
            "RSET",
            "QUIT"
        ]
    );
    // The body, dot-stuffed with bare LF made CRLF, and the final dot in one write.
    let payload: Vec<u8> = seen.data_reads.concat();
    assert_eq!(
        payload,
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: peer\r\nDate: x\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n..dot\r\n.\r\n"
    );
    assert_eq!(
        seen.data_reads.len(),
        1,
        "body and final dot arrived in one read"
    );
}

#[test]
fn stalled_server_times_out_with_75() {
    let (port, _seen) = peer(Script {
        stall: true,
        ..Script::default()
    });
    let started = Instant::now();
    let out = run(plain_client(port, 1).args(["b@example.org"]), MESSAGE);
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "{err}");
    assert!(err.contains("timed out after 1 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// Regression (hardening, issue 8): a greeting dripped a byte every 0.6 s
/// never tripped the 1 s read timeout, so smtp-send waited as long as the
/// server liked. --timeout bounds a whole reply.
#[test]
fn a_greeting_dripped_a_byte_at_a_time_times_out_with_75() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dripper = thread::spawn(move || {
        let Ok((mut tcp, _)) = listener.accept() else {
            return;
        };
        for &b in b"220 drip.example ESMTP slowly\r\n" {
            if tcp.write_all(&[b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(600));
        }
    });
    let started = Instant::now();
    let out = run(plain_client(port, 1).args(["b@example.org"]), MESSAGE);
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "{err}");
    assert!(
        err.contains("timed out after 1 s waiting for the greeting"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(dripper);
}

#[test]
fn eight_bit_without_8bitmime_is_65_before_mail() {
    let (port, seen) = peer(Script {
        ehlo: "250-peer.example\r\n250 PIPELINING\r\n",
        ..Script::default()
    });
    let out = run(
        plain_client(port, 5).arg("b@example.org"),
        "Subject: é\n\nbody é\n".as_bytes(),
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 65, "{err}");
    assert!(err.contains("does not offer 8BITMIME"), "{err}");
    let seen = seen.join().expect("peer");
    assert!(
        !seen.commands.iter().any(|c| c.starts_with("MAIL")),
        "{:?}",
        seen.commands
    );
}

#[test]
fn message_over_size_is_65_before_mail() {
    let (port, seen) = peer(Script {
        ehlo: "250-peer.example\r\n250 SIZE 100\r\n",
        ..Script::default()
    });
    let big = format!("Subject: big\n\n{}\n", "x".repeat(200));
    let out = run(plain_client(port, 5).arg("b@example.org"), big.as_bytes());
    let err = stderr(&out);
    assert_eq!(code(&out), 65, "{err}");
    assert!(
        err.contains("the server accepts at most 100 (SIZE)"),
        "{err}"
    );
    let seen = seen.join().expect("peer");
    assert!(
        !seen.commands.iter().any(|c| c.starts_with("MAIL")),
        "{:?}",
        seen.commands
    );
}

#[test]
fn closed_port_is_69_and_kept() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = dir.path().join("dead.mbox");
    let out = run(
        plain_client(port, 5)
            .args(["-t", "--dead-letter"])
            .arg(&dead),
        MESSAGE,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 69, "{err}");
    assert!(err.contains("cannot connect to 127.0.0.1"), "{err}");
    assert_eq!(read_mbox(&dead), vec![MESSAGE.to_vec()]);
}

/// XOAUTH2 with a token command: the token goes in the SASL string the
/// server receives, and never into the -v transcript.
#[test]
fn xoauth2_sends_the_token_and_the_transcript_hides_it() {
    use base64::Engine;
    let (port, seen) = peer(Script {
        ehlo: "250-peer.example\r\n250 AUTH PLAIN XOAUTH2\r\n",
        ..Script::default()
    });
    let out = run(
        plain_client(port, 5)
            .args([
                "--allow-plaintext-auth",
                "--user",
                "a@example.org",
                "-v",
                "-t",
            ])
            .args(["--oauth-token-command", "echo tok-SECRET-123"]),
        MESSAGE,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    let sasl = base64::engine::general_purpose::STANDARD
        .encode("user=a@example.org\x01auth=Bearer tok-SECRET-123\x01\x01");
    let seen = seen.join().expect("peer");
    assert!(
        seen.commands.contains(&format!("AUTH XOAUTH2 {sasl}")),
        "{:?}",
        seen.commands
    );
    assert!(err.contains("C: AUTH XOAUTH2 <redacted>"), "{err}");
    assert!(
        !err.contains("tok-SECRET-123") && !err.contains(sasl.trim_end_matches('=')),
        "{err}"
    );
}

/// Regression: `-t` refused a To field with a quoted local part
/// (`"a b"@example.org`, valid RFC 5321/5322). The real Postfix answers 550
/// for a local part the stack's domain does not have, so the scripted peer
/// shows what smtp-send sends: the address with its quotes, in RCPT TO.
#[test]
fn t_sends_a_quoted_local_part_as_written() {
    let (port, seen) = peer(Script::default());
    let message =
        b"From: a@example.org\r\nTo: \"a b\"@example.org, Ann <\"ann x\"@example.org>\r\n\
        Subject: quoted\r\nDate: x\r\nMessage-ID: <2@x>\r\n\r\nbody\r\n";
    let out = run(plain_client(port, 5).arg("-t"), message);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    let seen = seen.join().expect("peer");
    assert_eq!(
        seen.commands[1..4],
        [
            "MAIL FROM:<a@example.org> SIZE=124",
            "RCPT TO:<\"a b\"@example.org>",
            "RCPT TO:<\"ann x\"@example.org>",
        ],
        "{:?}",
        seen.commands
    );
}
