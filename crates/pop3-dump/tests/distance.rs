//! pop3-dump at a distance: the real Dovecot of `scripts/mailstack` behind
//! the link emulator (`mailpipe_e2e::link`), as a user's server 20-150 ms
//! away is. What comes out must be the same bytes as on loopback, and the
//! pipeline must keep the link busy: the time a run takes must not grow by a
//! round trip per handful of messages, and the commands that can share a
//! round trip share one. bob's maildrop, one test at a time.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mailpipe_e2e::fault_proxy::{Dir, Fault, FaultProxy};
use mailpipe_e2e::link::{Link, Profile};
use mailpipe_e2e::mail::{inbox_lock, unique};
use mailpipe_e2e::{run_bounded, Finished, Stack, Tool};

/// Empties bob's INBOX and writes `messages` straight into his Maildir, as
/// Dovecot's own user (doveadm save takes 40 ms a message).
fn fill(stack: &Stack, messages: &[Vec<u8>]) {
    stack.expunge_inbox(&stack.user2);
    let maildir = stack.maildir(&stack.user2);
    let owner = std::fs::metadata(&maildir).expect("bob's Maildir");
    for (i, m) in messages.iter().enumerate() {
        // Never a name used before: Dovecot remembers expunged ones.
        let name = format!("{}.M{i}.distance", unique("far"));
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, m).expect("write into tmp/");
        std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid())).expect("chown");
        std::fs::rename(&tmp, maildir.join("new").join(&name)).expect("move into new/");
    }
}

fn message(i: usize, body_lines: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Alice <alice@example.test>\nTo: bob@example.test\nSubject: far {i}\n\
         Date: Mon, 23 Nov 2026 12:{:02}:00 +0000\nMessage-ID: <far{i}@distance.test>\n\n",
        i % 60
    )
    .into_bytes();
    for l in 0..body_lines {
        // Lines a POP3 server dot-stuffs and an mbox escapes, among plain ones.
        let line = match l % 7 {
            0 => ".a line that starts with a dot".to_string(),
            1 => "From the start of a line".to_string(),
            _ => format!("line {l} of message {i}, some text to make it longer than short"),
        };
        m.extend_from_slice(line.as_bytes());
        m.push(b'\n');
    }
    m
}

/// pop3-dump of bob's maildrop through `port` (the stack's POP3S, or a link to it).
fn dump(stack: &Stack, port: u16, args: &[&str], home: &Path) -> Finished {
    let url = stack.url("pop3s", port);
    let mut cmd: Command = stack.login(Tool::Pop3Dump, &url, &stack.user2, &stack.pass2);
    cmd.args(["--quiet"]).args(args).env("HOME", home);
    let done = run_bounded(&mut cmd, b"", Duration::from_secs(120), |_| {});
    assert_eq!(done.code, Some(0), "pop3-dump failed: {}", done.stderr);
    done
}

#[test]
fn through_a_far_link_the_mbox_is_byte_identical_to_loopback() {
    let _serial = inbox_lock(1);
    let stack = Stack::get();
    // Small and large: 150 of 1-10 KB, 4 of 300 KB, one of 1.5 MB.
    let mut messages: Vec<Vec<u8>> = (0..150).map(|i| message(i, 15 + i % 9 * 15)).collect();
    for i in 150..154 {
        messages.insert(i - 110, message(i, 4_500));
    }
    messages.insert(77, message(154, 22_000));
    fill(&stack, &messages);
    let home = tempfile::tempdir().expect("tempdir");
    let near = dump(&stack, stack.pop3s_port, &[], home.path());
    let link = Link::start(stack.pop3s_port, Profile::new(20.0, 20.0)).expect("link");
    let far = dump(&stack, link.port(), &[], home.path());
    assert_eq!(mailpipe_e2e::mail::mbox(&near.stdout).len(), messages.len());
    assert!(
        far.stdout == near.stdout,
        "through the link: {} bytes, on loopback: {}",
        far.stdout.len(),
        near.stdout.len()
    );
    // Everything went over the emulated wire, at its pace.
    assert!(link.counts().to_client as usize > near.stdout.len());
}

#[test]
fn the_pipeline_keeps_a_far_link_busy_with_small_messages() {
    let _serial = inbox_lock(1);
    let stack = Stack::get();
    let messages: Vec<Vec<u8>> = (0..400).map(|i| message(i, 12)).collect();
    fill(&stack, &messages);
    let home = tempfile::tempdir().expect("tempdir");
    // 100 ms round trips, no bandwidth cap: a round trip is what costs.
    let link = Link::start(stack.pop3s_port, Profile::new(50.0, 0.0)).expect("link");
    let time = |args: &[&str]| {
        let t = Instant::now();
        let done = dump(&stack, link.port(), args, home.path());
        (t.elapsed(), mailpipe_e2e::mail::mbox(&done.stdout).len())
    };
    let (few, n_few) = time(&["--limit", "40"]);
    let (all, n_all) = time(&[]);
    assert_eq!((n_few, n_all), (40, 400));
    // The same round trips for both (login, LIST, the pipeline, QUIT): 360
    // more small messages cost their bytes, not a round trip per window
    // (32 at a time, refilled at 16, cost 22 more round trips: 2.2 s).
    let more = all.saturating_sub(few);
    assert!(
        more < Duration::from_millis(600),
        "40 messages took {few:?}, 400 took {all:?}"
    );
}

#[test]
fn stat_and_list_go_out_in_one_flight_when_the_server_pipelines() {
    let _serial = inbox_lock(1);
    let stack = Stack::get();
    let messages: Vec<Vec<u8>> = (0..3).map(|i| message(i, 3)).collect();
    fill(&stack, &messages);
    // Plaintext (Dovecot allows it on loopback), so the proxy sees the commands.
    let proxy = FaultProxy::start(stack.pop3_port, Fault::none());
    let url = format!("pop3://localhost:{}", proxy.port());
    let mut cmd = stack.login(Tool::Pop3Dump, &url, &stack.user2, &stack.pass2);
    cmd.args(["--tls", "none", "--allow-plaintext-auth", "--quiet"]);
    let home = tempfile::tempdir().expect("tempdir");
    cmd.env("HOME", home.path());
    let done = run_bounded(&mut cmd, b"", Duration::from_secs(60), |_| {});
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(mailpipe_e2e::mail::mbox(&done.stdout).len(), 3);
    proxy.close();
    // The client's reads, one per write it made (commands are small).
    let sent = proxy.from_client();
    let mut flights = Vec::new();
    let mut at = 0;
    for (dir, size) in proxy.chunks() {
        if dir == Dir::ToServer {
            let flight = String::from_utf8_lossy(&sent[at..at + size]).into_owned();
            // Never the credentials in a failure message.
            let login = flight.starts_with("AUTH") || flight.starts_with("PASS");
            flights.push(if login { "(login)".to_string() } else { flight });
            at += size;
        }
    }
    let stat = flights
        .iter()
        .find(|f| f.contains("STAT\r\n"))
        .expect("STAT was sent");
    // One round trip for both, not one each: what a far server charges for.
    assert!(stat.contains("LIST\r\n"), "flights: {flights:?}");
}
