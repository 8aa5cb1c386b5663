//! What the pop3-dump tests share: the real Dovecot of scripts/mailstack
//! (one maildrop, used by one test at a time), ways to put mail into it, the
//! tool runner, a scripted POP3 peer and a stalling proxy.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

pub use mailpipe_e2e::Stack;

static MAILDROP: Mutex<()> = Mutex::new(());

/// Exclusive use of alice's maildrop, emptied. Tests run in parallel threads;
/// a --delete in one must not remove another's mail.
pub fn fresh_maildrop() -> (MutexGuard<'static, ()>, Stack) {
    let guard = MAILDROP.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::get();
    let status = Command::new("doveadm")
        .arg("-c")
        .arg(&stack.dovecot_conf)
        .args(["expunge", "-u", &stack.user1, "mailbox", "INBOX", "all"])
        .status()
        .expect("doveadm runs");
    assert!(status.success(), "doveadm expunge failed");
    (guard, stack)
}

/// Stores `message` in alice's INBOX exactly as given (doveadm save).
pub fn save(stack: &Stack, message: &[u8]) {
    let out = mailpipe_e2e::run_with_stdin(
        Command::new("doveadm")
            .arg("-c")
            .arg(&stack.dovecot_conf)
            .args(["save", "-u", &stack.user1]),
        message,
    );
    assert!(out.status.success(), "doveadm save: {out:?}");
}

/// Submits `message` to Postfix with Python's smtplib (plain SMTP port, which
/// accepts mail for the domain) and waits until Dovecot has it.
pub fn deliver_via_postfix(stack: &Stack, message: &[u8], message_id: &str) {
    let script = r#"
import smtplib, sys
host, port, rcpt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with smtplib.SMTP(host, port, timeout=30) as s:
    s.sendmail("sender@example.org", [rcpt], sys.stdin.buffer.read())
"#;
    let out = mailpipe_e2e::run_with_stdin(
        Command::new("python3").args([
            "-c",
            script,
            &stack.host,
            &stack.smtp_plain_port.to_string(),
            &stack.user1,
        ]),
        message,
    );
    assert!(
        out.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !maildir_messages(stack).contains_key(message_id) {
        assert!(
            Instant::now() < deadline,
            "{message_id} was not delivered in 20 s"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// The files of alice's Maildir (new and cur), by Message-ID.
pub fn maildir_messages(stack: &Stack) -> BTreeMap<String, Vec<u8>> {
    let root = stack.maildir_root.join(&stack.user1).join("Maildir");
    let mut found = BTreeMap::new();
    for sub in ["new", "cur"] {
        let Ok(dir) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        for entry in dir.flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            if let Some(id) = message_id(&bytes) {
                found.insert(id, bytes);
            }
        }
    }
    found
}

/// The Message-ID header's value of a message (LF or CRLF).
pub fn message_id(message: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .take_while(|l| !l.trim_end_matches('\r').is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("Message-ID")
                .then(|| value.trim().trim_end_matches('\r').to_string())
        })
}

/// LF line ends to CRLF: what POP3 serves for a Maildir file.
pub fn crlf(lf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 20);
    for &b in lf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// pop3-dump with no accounts file and no password sources but the one given.
pub fn tool() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pop3-dump"));
    cmd.env("MAILPIPE_CONFIG", "/nonexistent/accounts.toml")
        .env("NETRC", "/nonexistent/netrc")
        .env_remove("MAILPIPE_PASSWORD")
        .env_remove("POP3_PASSWORD");
    cmd
}

/// pop3-dump against alice's maildrop over POP3S, with `args` appended.
pub fn alice(stack: &Stack, args: &[&str]) -> Command {
    let mut cmd = tool();
    cmd.arg("--server")
        .arg(format!(
            "pop3s://{}@localhost:{}",
            stack.user1, stack.pop3s_port
        ))
        .arg("--ca-file")
        .arg(&stack.ca_file)
        .env("POP3_PASSWORD", &stack.pass1)
        .args(args);
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    mailpipe_e2e::run_with_stdin(cmd, b"")
}

/// Runs and asserts exit 0; returns stdout.
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Messages in an mbox, quoting undone, by the library's reader.
pub fn mbox_messages(mbox: &[u8]) -> Vec<mailpipe::mbox::MboxMessage> {
    mailpipe::mbox::MboxReader::new(mbox)
        .collect::<std::io::Result<Vec<_>>>()
        .expect("output is an mbox")
}

/// `--list` lines as (number, size, uidl).
pub fn list(stack: &Stack) -> Vec<(u32, u64, String)> {
    let out = run_ok(&mut alice(stack, &["--list"]));
    String::from_utf8(out)
        .expect("utf8")
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            assert_eq!(w.len(), 3, "list line {l:?}");
            (
                w[0].parse().expect("n"),
                w[1].parse().expect("size"),
                w[2].to_string(),
            )
        })
        .collect()
}

/// A small message with a unique Message-ID, CRLF-free (as Maildir holds it).
pub fn small_message(id: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice Example <alice@example.org>\nTo: alice@example.test\n\
         Subject: test {id}\nDate: Mon, 23 Nov 2026 12:00:00 +0000\n\
         Message-ID: <{id}@pop3-dump.test>\n\n{body}"
    )
    .into_bytes()
}

/// A scripted POP3 server on 127.0.0.1 for one connection: `script` gets the
/// socket and a log of what the client sent. Returns the port and the log.
pub fn scripted_peer(
    script: impl FnOnce(&mut Peer) + Send + 'static,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log_for_peer = Arc::clone(&log);
    thread::spawn(move || {
        let Ok((socket, _)) = listener.accept() else {
            return;
        };
        let _ = socket.set_read_timeout(Some(Duration::from_secs(30)));
        let mut peer = Peer {
            reader: BufReader::new(socket.try_clone().expect("clone")),
            socket,
            log: log_for_peer,
        };
        script(&mut peer);
    });
    (port, log)
}

pub struct Peer {
    reader: BufReader<TcpStream>,
    pub socket: TcpStream,
    log: Arc<Mutex<Vec<String>>>,
}

impl Peer {
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        self.socket.write_all(bytes).is_ok()
    }

    /// The client's next command line, logged; `None` when it closed.
    pub fn command(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(n) if n > 0 => {
                let line = line.trim_end().to_string();
                self.log
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.clone());
                Some(line)
            }
            _ => None,
        }
    }

    /// Greeting, CAPA (without STLS), USER/PASS accepted, STAT/LIST of one
    /// message of `size` bytes; returns when the client sends RETR.
    pub fn up_to_retr(&mut self, size: u64) -> bool {
        self.send(b"+OK scripted\r\n");
        while let Some(cmd) = self.command() {
            let reply = match cmd.split(' ').next().unwrap_or("") {
                "CAPA" => "+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n".to_string(),
                "USER" | "PASS" => "+OK\r\n".to_string(),
                "STAT" => format!("+OK 1 {size}\r\n"),
                "LIST" => format!("+OK\r\n1 {size}\r\n.\r\n"),
                "UIDL" => "+OK\r\n1 only\r\n.\r\n".to_string(),
                "RETR" => return true,
                _ => "-ERR unknown\r\n".to_string(),
            };
            if !self.send(reply.as_bytes()) {
                return false;
            }
        }
        false
    }
}

/// pop3-dump against a scripted peer, in plaintext (allowed explicitly).
pub fn against_peer(port: u16, args: &[&str]) -> Command {
    let mut cmd = tool();
    cmd.arg("--server")
        .arg(format!("pop3://someone@127.0.0.1:{port}"))
        .args(["--tls", "none", "--allow-plaintext-auth"])
        .env("POP3_PASSWORD", "peer-password")
        .args(args);
    cmd
}

/// When a proxy stops forwarding.
#[derive(Clone, Copy)]
pub enum Stall {
    /// After this many bytes from the server.
    ServerAfter(usize),
    /// When the client sends this (it is not forwarded).
    ClientSends(&'static [u8]),
}

/// A TCP proxy in front of a real server for one connection, which stalls
/// on cue; `close` then cuts both sides.
pub struct Proxy {
    pub port: u16,
    pub stalled: Arc<AtomicBool>,
    /// Everything the client sent (plaintext connections only make sense of it).
    pub from_client: Arc<Mutex<Vec<u8>>>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(upstream_port: u16, stall: Stall) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stalled = Arc::new(AtomicBool::new(false));
        let from_client = Arc::new(Mutex::new(Vec::new()));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let (st, fc, so) = (
            Arc::clone(&stalled),
            Arc::clone(&from_client),
            Arc::clone(&sockets),
        );
        thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let server = TcpStream::connect(("127.0.0.1", upstream_port)).expect("upstream");
            {
                let mut s = so.lock().unwrap_or_else(|e| e.into_inner());
                s.push(client.try_clone().expect("clone"));
                s.push(server.try_clone().expect("clone"));
            }
            let (c_read, s_write) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let (st2, fc2) = (Arc::clone(&st), Arc::clone(&fc));
            thread::spawn(move || pump_client(c_read, s_write, stall, &st2, &fc2));
            pump_server(server, client, stall, &st);
        });
        Proxy {
            port,
            stalled,
            from_client,
            sockets,
        }
    }

    pub fn wait_stalled(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.stalled.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the proxy never reached its stall point"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Cuts both connections, so that the server ends its session.
    pub fn close(&self) {
        for s in self
            .sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn pump_server(mut from: TcpStream, mut to: TcpStream, stall: Stall, stalled: &AtomicBool) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut n = n;
        if let Stall::ServerAfter(limit) = stall {
            if total + n >= limit {
                n = limit - total;
                let _ = to.write_all(&buf[..n]);
                stalled.store(true, Ordering::SeqCst);
                return; // keep both sockets open: the peer just sees silence
            }
        }
        total += n;
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn pump_client(
    mut from: TcpStream,
    mut to: TcpStream,
    stall: Stall,
    stalled: &AtomicBool,
    seen: &Mutex<Vec<u8>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        let before = seen.len();
        seen.extend_from_slice(&buf[..n]);
        if let Stall::ClientSends(pattern) = stall {
            if let Some(at) = seen.windows(pattern.len()).position(|w| w == pattern) {
                let forward = at.saturating_sub(before);
                let _ = to.write_all(&buf[..forward]);
                stalled.store(true, Ordering::SeqCst);
                return;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Starts pop3-dump with stdout to a file; returns the child and the path.
pub fn spawn_to_file(cmd: &mut Command, dir: &std::path::Path) -> (std::process::Child, PathBuf) {
    let path = dir.join("out.mbox");
    let file = std::fs::File::create(&path).expect("create");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    (child, path)
}

/// A scripted server holding `messages` (CRLF, not yet dot-stuffed; `None` is
/// a message whose RETR is refused), announcing `capa` lines. Serves one
/// whole session and logs the commands.
pub fn maildrop_peer(
    messages: Vec<Option<Vec<u8>>>,
    capa: &'static str,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    scripted_peer(move |peer| {
        peer.send(b"+OK scripted maildrop\r\n");
        let size = |m: &Option<Vec<u8>>| m.as_ref().map_or(100, Vec::len);
        while let Some(cmd) = peer.command() {
            let words: Vec<&str> = cmd.split(' ').collect();
            let number = words
                .get(1)
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            let mut reply = Vec::new();
            match words[0] {
                "CAPA" => reply.extend_from_slice(format!("+OK\r\n{capa}.\r\n").as_bytes()),
                "STAT" => {
                    let total: usize = messages.iter().map(size).sum();
                    reply.extend_from_slice(
                        format!("+OK {} {total}\r\n", messages.len()).as_bytes(),
                    );
                }
                "LIST" => {
                    reply.extend_from_slice(b"+OK\r\n");
                    for (i, m) in messages.iter().enumerate() {
                        reply.extend_from_slice(format!("{} {}\r\n", i + 1, size(m)).as_bytes());
                    }
                    reply.extend_from_slice(b".\r\n");
                }
                "UIDL" => reply.extend_from_slice(b"-ERR UIDL not supported\r\n"),
                "RETR" => match messages.get(number.wrapping_sub(1)) {
                    Some(Some(m)) => {
                        reply.extend_from_slice(b"+OK\r\n");
                        for line in m.split_inclusive(|&b| b == b'\n') {
                            if line.starts_with(b".") {
                                reply.push(b'.');
                            }
                            reply.extend_from_slice(line);
                        }
                        reply.extend_from_slice(b".\r\n");
                    }
                    _ => reply.extend_from_slice(b"-ERR no such message\r\n"),
                },
                "QUIT" => {
                    peer.send(b"+OK bye\r\n");
                    return;
                }
                _ => reply.extend_from_slice(b"+OK\r\n"),
            }
            if !peer.send(&reply) {
                return;
            }
        }
    })
}
