//! Pipelined FETCHes, several connections and COMPRESS=DEFLATE, end to end
//! against the real Dovecot of `scripts/mailstack` (imap_zlib loaded), some
//! through the fault proxy or the link emulator: the output is byte for byte what one plain
//! connection gives, the transcript shows the inflated protocol with its
//! credentials redacted, a cut with FETCHes in flight loses nothing, and a
//! refused connection leaves the dump to those that were let in.

use std::process::Command;
use std::time::Duration;

use mailpipe_e2e::fault_proxy::{Dir, Fault, FaultProxy, Options, Step};
use mailpipe_e2e::link::{Link, Profile};
use mailpipe_e2e::mail::{crlf, mbox_data, unique};
use mailpipe_e2e::{run_bounded, Finished, Stack, Tool};

/// A fresh mailbox of alice's and what it holds, as IMAP serves it.
struct Mailbox {
    stack: Stack,
    dir: tempfile::TempDir,
    name: String,
    held: Vec<Vec<u8>>,
}

/// Words in an order a small generator picks: text that deflates about as
/// well as mail does (three to four times), not a run of one byte.
fn text(seed: u64, bytes: usize) -> String {
    const WORDS: [&str; 16] = [
        "mail",
        "pipe",
        "server",
        "round",
        "trip",
        "batch",
        "deflate",
        "window",
        "Dovecot",
        "literal",
        "tagged",
        "reply",
        "quarterly",
        "report",
        "meeting",
        "budget",
    ];
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut out = String::with_capacity(bytes + 80);
    while out.len() < bytes {
        for _ in 0..10 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.push_str(WORDS[(x >> 60) as usize]);
            out.push_str(&format!(" {} ", (x >> 40) % 1000));
        }
        out.push('\n');
    }
    out
}

impl Mailbox {
    /// `count` messages of `size` bytes and so, plus a few ten times that.
    fn new(label: &str, count: usize, size: usize) -> Mailbox {
        let stack = Stack::get();
        let name = unique(label);
        stack.create_mailbox(&stack.user1, &name);
        let mut held = Vec::new();
        for i in 0..count {
            let body = text(i as u64, if i % 10 == 3 { size * 10 } else { size });
            let m = format!(
                "From: Alice <alice@example.test>\nTo: {}\nSubject: {name} {i}\n\
                 Date: Mon, 23 Nov 2026 12:00:00 +0000\nMessage-ID: <{name}-{i}@pipelining.test>\n\n{body}",
                stack.user1
            );
            stack.save(&stack.user1, &name, m.as_bytes());
            held.push(crlf(m.as_bytes()));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("password"), format!("{}\n", stack.pass1)).expect("pw");
        Mailbox {
            stack,
            dir,
            name,
            held,
        }
    }

    fn command(&self, port: u16, args: &[&str]) -> Command {
        let url = self.stack.url("imaps", port);
        let mut cmd = self.stack.client(Tool::ImapDump, &url, &self.stack.user1);
        cmd.arg("--password-file")
            .arg(self.dir.path().join("password"))
            .args(["--quiet", "--mailbox", &self.name])
            .args(args)
            .env("HOME", self.dir.path());
        cmd
    }

    fn run(&self, port: u16, args: &[&str]) -> Finished {
        run_bounded(
            &mut self.command(port, args),
            b"",
            Duration::from_secs(60),
            |_| {},
        )
    }

    fn state(&self) -> String {
        self.dir
            .path()
            .join("state")
            .to_str()
            .expect("utf-8")
            .to_string()
    }

    fn last_uid(&self) -> Option<u64> {
        let state = std::fs::read(self.state()).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&state).expect("state is JSON");
        let key = format!("{}@localhost", self.stack.user1);
        v["accounts"][key][&self.name]["last_uid"].as_u64()
    }
}

fn ok(run: &Finished) -> &[u8] {
    assert_eq!(run.code, Some(0), "imap-dump failed: {}", run.stderr);
    &run.stdout
}

/// Small batches over four connections, each deflated, give the very bytes
/// of one plain connection, and those are the messages the server holds.
#[test]
fn four_compressed_connections_give_the_bytes_of_one_plain_one() {
    let mb = Mailbox::new("pipelining-same", 40, 6000);
    let stack = &mb.stack;
    let options = Options {
        max_connections: 8,
        ..Options::default()
    };
    let proxy = FaultProxy::start_opts(stack.imaps_port, Fault::none(), options);
    let fast = mb.run(
        proxy.port(),
        &[
            "--compress=always",
            "--batch-size",
            "32K",
            "--connections",
            "4",
        ],
    );
    let fast = ok(&fast).to_vec();
    assert!(
        proxy.connections() >= 2,
        "{} connections: the dump did not spread",
        proxy.connections()
    );
    let plain = mb.run(stack.imaps_port, &["--no-compress", "--connections", "1"]);
    assert_eq!(fast, ok(&plain), "compressed and plain output differ");
    assert_eq!(mbox_data(&fast), mb.held);
}

/// -v: COMPRESS DEFLATE and its OK are shown, then the inflated protocol
/// (pipelined FETCHes with their own tags), the bytes each way, and never the
/// password; --no-compress sends no COMPRESS.
#[test]
fn the_transcript_shows_compress_and_the_inflated_protocol_redacted() {
    let mb = Mailbox::new("pipelining-transcript", 6, 3000);
    // On loopback only `always` compresses (`auto` waits for a far link).
    let run = mb.run(mb.stack.imaps_port, &["-v", "--compress=always"]);
    let out = ok(&run).to_vec();
    assert_eq!(mbox_data(&out), mb.held);
    let log = &run.stderr;
    let lines: Vec<&str> = log.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("C: ") && l.ends_with(" COMPRESS DEFLATE"))
        .unwrap_or_else(|| panic!("no COMPRESS DEFLATE in:\n{log}"));
    let tag = lines[at]
        .trim_start_matches("C: ")
        .split(' ')
        .next()
        .unwrap_or_default();
    assert!(
        lines[at + 1].starts_with(&format!("S: {tag} OK")),
        "{}",
        lines[at + 1]
    );
    assert!(log.contains("C: a1 LOGIN <redacted>"), "{log}");
    assert!(!log.contains(&mb.stack.pass1), "the password is shown");
    // After COMPRESS the lines are inflated protocol, not deflate.
    assert!(
        log.contains("UID FETCH 1:6 (UID INTERNALDATE BODY.PEEK[])"),
        "{log}"
    );
    assert!(log.contains("S: p1 OK Fetch completed"), "{log}");
    let bytes = lines
        .iter()
        .find(|l| l.starts_with("-- COMPRESS=DEFLATE: read "))
        .unwrap_or_else(|| panic!("no byte counts in:\n{log}"));
    let numbers: Vec<u64> = bytes
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    // read N on the wire (M decompressed), wrote ...: deflate paid off.
    assert!(numbers.len() >= 4 && numbers[0] < numbers[1], "{bytes}");

    let run = mb.run(mb.stack.imaps_port, &["-v", "--no-compress"]);
    assert_eq!(ok(&run), &out[..]);
    assert!(!run.stderr.contains(" COMPRESS DEFLATE"), "{}", run.stderr);
    assert!(
        run.stderr.contains("-- no compression: read "),
        "{}",
        run.stderr
    );
}

/// A connection cut while two FETCHes are in flight: exit 75, whole messages
/// only, the state names exactly the last one written, and a second run
/// brings exactly the rest (nothing lost, nothing twice).
#[test]
fn a_cut_with_fetches_in_flight_loses_nothing_and_the_next_run_brings_the_rest() {
    let mb = Mailbox::new("pipelining-cut", 40, 6000);
    let stack = &mb.stack;
    let state = mb.state();
    let args = [
        "--compress=always",
        "-v",
        "--batch-size",
        "32K",
        "--state",
        &state,
    ];
    // The bytes a whole session sends (deflated), measured on a clean run.
    let clean = FaultProxy::start(stack.imaps_port, Fault::none());
    ok(&mb.run(clean.port(), &args[..4]));
    let total = clean.forwarded(Dir::ToClient);
    let proxy = FaultProxy::start(
        stack.imaps_port,
        Fault::cut([Step::Bytes(Dir::ToClient, total / 2)]),
    );
    let run = mb.run(proxy.port(), &args);
    assert_eq!(run.code, Some(75), "{}", run.stderr);
    let first = mbox_data(&run.stdout);
    assert!(
        !first.is_empty() && first.len() < mb.held.len(),
        "{} of {} written before the cut",
        first.len(),
        mb.held.len()
    );
    assert_eq!(first[..], mb.held[..first.len()], "not whole messages");
    assert_eq!(mb.last_uid(), Some(first.len() as u64));
    // The transcript: at the cut, FETCHes were sent whose OK never came.
    let sent = run.stderr.matches("UID FETCH").count() - 1; // the sizes
    let done = run.stderr.matches("OK Fetch completed").count() - 1;
    assert!(
        sent >= done + 2,
        "{sent} FETCHes sent, {done} done:\n{}",
        run.stderr
    );

    let second = mb.run(stack.imaps_port, &["--state", &state]);
    let rest = mbox_data(ok(&second));
    assert_eq!(rest[..], mb.held[first.len()..], "the second run");
}

/// A server that lets in two connections and refuses the third (here the
/// proxy, which stops listening after two; Dovecot's
/// mail_max_userip_connections refuses at LOGIN the same way for the tool)
/// still gets the whole dump, over two connections.
#[test]
fn a_refused_third_connection_leaves_the_dump_to_the_two_let_in() {
    let mb = Mailbox::new("pipelining-refused", 40, 6000);
    let options = Options {
        max_connections: 2,
        ..Options::default()
    };
    let proxy = FaultProxy::start_opts(mb.stack.imaps_port, Fault::none(), options);
    let run = mb.run(proxy.port(), &["--batch-size", "16K", "--connections", "4"]);
    assert_eq!(mbox_data(ok(&run)), mb.held);
    assert_eq!(proxy.connections(), 2);
}

/// Through a 30 ms, 100 Mbit/s link (the link emulator): the same bytes as
/// on loopback and as without compression, and fewer bytes on the wire
/// than the messages hold: `--compress auto`, the default, measures a link
/// slower than the server deflates and compresses (after the first
/// megabyte or two, which go plain while it measures: hence 8 MB of
/// mail, not 0.5).
#[test]
fn through_a_far_link_the_output_is_that_of_loopback() {
    let mb = Mailbox::new("pipelining-link", 170, 24_000);
    let stack = &mb.stack;
    let link = Link::start(stack.imaps_port, Profile::new(15.0, 100.0)).expect("link");
    let far = mb.run(link.port(), &["--batch-size", "64K"]);
    let far = ok(&far).to_vec();
    assert_eq!(mbox_data(&far), mb.held);
    let near = mb.run(stack.imaps_port, &[]);
    assert_eq!(far, ok(&near), "far and loopback output differ");
    let plain = mb.run(stack.imaps_port, &["--no-compress"]);
    assert_eq!(far, ok(&plain), "compressed and plain output differ");
    let held: usize = mb.held.iter().map(Vec::len).sum();
    let wire = link.delivered(Dir::ToClient);
    assert!(
        wire < held as u64 / 2,
        "{wire} bytes on the wire for {held} bytes of mail"
    );
}

/// The numbers in a `-v` line, in order.
fn numbers(line: &str) -> Vec<f64> {
    line.split(|c: char| !c.is_ascii_digit() && c != '.')
        .filter_map(|w| w.trim_matches('.').parse().ok())
        .collect()
}

/// The `--compress auto` note of a `-v` run, and the rate it measured (MB/s).
fn auto_note(log: &str) -> (&str, f64) {
    let line = log
        .lines()
        .find(|l| l.contains("--compress auto: FETCH responses arrived at"))
        .unwrap_or_else(|| panic!("no --compress auto note in:\n{log}"));
    (line, numbers(line)[0])
}

/// A far link with a low bandwidth cap (30 ms, 16 Mbit/s: 2 MB/s, a tenth
/// of what a Dovecot connection deflates): `auto` starts plain, measures,
/// says so, switches COMPRESS on between batches of the dump, and the
/// output is byte for byte that of a plain loopback run, with fewer bytes
/// on the wire than the messages hold. Without -v (four connections,
/// helpers opened before and after the choice) the same.
#[test]
fn auto_compresses_a_slow_far_link_mid_dump_and_the_output_is_the_same() {
    let mb = Mailbox::new("pipelining-slowlink", 60, 16_000);
    let stack = &mb.stack;
    let held: usize = mb.held.iter().map(Vec::len).sum();
    let plain = mb.run(stack.imaps_port, &["--no-compress"]);
    let plain = ok(&plain).to_vec();
    assert_eq!(mbox_data(&plain), mb.held);

    let link = Link::start(stack.imaps_port, Profile::new(15.0, 16.0)).expect("link");
    let run = mb.run(link.port(), &["-v", "--batch-size", "256K"]);
    assert_eq!(
        ok(&run),
        &plain[..],
        "switching mid-dump changed the output"
    );
    let log = &run.stderr;
    let (note, rate) = auto_note(log);
    assert!(
        note.ends_with("COMPRESS=DEFLATE from the next batch on"),
        "{note}"
    );
    assert!(
        (0.5..3.0).contains(&rate),
        "measured {rate} MB/s of 2: {note}"
    );
    // Bodies were fetched plain, then COMPRESS went out, then more bodies.
    let lines: Vec<&str> = log.lines().collect();
    let body_fetch = |l: &&str| l.starts_with("C: p") && l.contains("BODY.PEEK[]");
    let compress = lines
        .iter()
        .position(|l| l.starts_with("C: ") && l.ends_with(" COMPRESS DEFLATE"))
        .unwrap_or_else(|| panic!("no COMPRESS DEFLATE in:\n{log}"));
    assert!(lines[..compress].iter().any(body_fetch), "{log}");
    assert!(lines[compress..].iter().any(body_fetch), "{log}");
    let wire = link.delivered(Dir::ToClient);
    assert!(
        wire < held as u64 * 3 / 4,
        "{wire} bytes on the wire for {held} bytes of mail"
    );

    let link = Link::start(stack.imaps_port, Profile::new(15.0, 16.0)).expect("link");
    let run = mb.run(link.port(), &["--batch-size", "256K"]);
    assert_eq!(ok(&run), &plain[..], "four connections changed the output");
    let wire = link.delivered(Dir::ToClient);
    assert!(
        wire < held as u64 * 3 / 4,
        "{wire} bytes on the wire for {held} bytes of mail"
    );
}

/// A far link with no bandwidth cap (30 ms): the responses arrive faster
/// than a server connection deflates, so `auto` does not compress, says
/// why, and the output is that of loopback.
#[test]
fn auto_does_not_compress_a_fast_far_link() {
    let mb = Mailbox::new("pipelining-fastlink", 60, 16_000);
    let stack = &mb.stack;
    let held: usize = mb.held.iter().map(Vec::len).sum();
    let link = Link::start(stack.imaps_port, Profile::new(15.0, 0.0)).expect("link");
    let run = mb.run(link.port(), &["-v"]);
    let out = ok(&run).to_vec();
    assert_eq!(mbox_data(&out), mb.held);
    let log = &run.stderr;
    let (note, rate) = auto_note(log);
    assert!(note.ends_with(": no compression"), "{note}");
    assert!(rate >= 20.0, "{note}");
    assert!(!log.contains(" COMPRESS DEFLATE"), "{log}");
    assert!(link.delivered(Dir::ToClient) > held as u64, "compressed");
    let near = mb.run(stack.imaps_port, &[]);
    assert_eq!(out, ok(&near), "far and loopback output differ");
}
