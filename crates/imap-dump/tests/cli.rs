//! imap-dump end to end, against the real Dovecot of `scripts/mailstack`.
//! Mailboxes are loaded and read back with Python's imaplib
//! (`imap_oracle.py`), an independent client: what imap-dump writes, read
//! back with mailpipe's mbox reader, must be exactly what the server returns
//! for `UID FETCH n BODY.PEEK[]`. Faults a real server will not produce on
//! demand (a connection cut in the middle of a FETCH) come from the shared
//! fault proxy in front of that same Dovecot.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mailpipe::mbox::{MboxMessage, MboxReader};
use mailpipe_e2e::fault_proxy::{Dir, Fault, FaultProxy, Options, Step};
use mailpipe_e2e::{Stack, Tool};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// One test's view of the stack: a user, its password in a file, a scratch folder.
struct Account {
    stack: Stack,
    user: String,
    pass: String,
    dir: tempfile::TempDir,
}

static MAILBOX_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Account {
    fn alice() -> Account {
        let stack = Stack::get();
        let (user, pass) = (stack.user1.clone(), stack.pass1.clone());
        Account::new(stack, user, pass)
    }

    fn bob() -> Account {
        let stack = Stack::get();
        let (user, pass) = (stack.user2.clone(), stack.pass2.clone());
        Account::new(stack, user, pass)
    }

    fn new(stack: Stack, user: String, pass: String) -> Account {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("password"), format!("{pass}\n")).expect("password file");
        Account {
            stack,
            user,
            pass,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A mailbox name no other test (or earlier run) uses.
    fn fresh_mailbox(&self, label: &str) -> String {
        let n = MAILBOX_COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        let name = format!("t-{label}-{}-{n}-{nanos}", std::process::id());
        self.oracle(&["create", &name]);
        name
    }

    fn oracle_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("python3");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/imap_oracle.py"))
            .args(args)
            .env("ORACLE_PORT", self.stack.imaps_port.to_string())
            .env("ORACLE_CA", &self.stack.ca_file)
            .env("ORACLE_USER", &self.user)
            .env("ORACLE_PASS", &self.pass);
        cmd
    }

    fn oracle(&self, args: &[&str]) -> String {
        let out = self.oracle_cmd(args).output().expect("python3 runs");
        assert!(
            out.status.success(),
            "imap_oracle.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// APPENDs the files (with \Seen if `seen`) and returns their UIDs.
    fn append(&self, mailbox: &str, seen: bool, files: &[PathBuf]) -> Vec<u32> {
        let mut args = vec!["append".to_string(), mailbox.to_string()];
        if seen {
            args.push("--seen".to_string());
        }
        args.extend(files.iter().map(|p| p.to_string_lossy().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.oracle(&args)
            .lines()
            .map(|l| l.parse().expect("APPENDUID"))
            .collect()
    }

    /// What the server holds: (uid, flags, bytes) per message, by UID.
    fn server_messages(&self, mailbox: &str) -> Vec<(u32, String, Vec<u8>)> {
        use base64::Engine;
        self.oracle(&["fetch", mailbox])
            .lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).expect("json");
                let body = base64::engine::general_purpose::STANDARD
                    .decode(v["body"].as_str().expect("body"))
                    .expect("base64");
                (
                    v["uid"].as_u64().expect("uid") as u32,
                    v["flags"].as_str().expect("flags").to_string(),
                    body,
                )
            })
            .collect()
    }

    fn flags(&self, mailbox: &str) -> serde_json::Value {
        serde_json::from_str(&self.oracle(&["flags", mailbox])).expect("json")
    }

    /// imap-dump with this account's server flags and `args`.
    fn dump_cmd(&self, args: &[&str]) -> Command {
        self.dump_cmd_port(self.stack.imaps_port, args)
    }

    fn dump_cmd_port(&self, port: u16, args: &[&str]) -> Command {
        self.dump_cmd_url(&self.stack.url("imaps", port), args)
    }

    fn dump_cmd_url(&self, url: &str, args: &[&str]) -> Command {
        let mut cmd = self.stack.client(Tool::ImapDump, url, &self.user);
        cmd.arg("--password-file")
            .arg(self.path("password"))
            .args(args)
            .env("HOME", self.dir.path());
        cmd
    }

    fn dump(&self, args: &[&str]) -> Output {
        self.dump_cmd(args).output().expect("imap-dump runs")
    }
}

fn ok(out: &Output) -> &[u8] {
    assert!(
        out.status.success(),
        "imap-dump failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    &out.stdout
}

fn read_mbox(bytes: &[u8]) -> Vec<MboxMessage> {
    MboxReader::new(bytes)
        .collect::<std::io::Result<Vec<_>>>()
        .expect("a readable mbox")
}

/// What mbox can hold of a server message: the bytes themselves, plus a line
/// end if the message does not end in one (mbox cannot mark a message
/// without one; mailpipe's writer adds it, in the message's own style).
fn as_in_mbox(body: &[u8]) -> Vec<u8> {
    let mut m = body.to_vec();
    if !m.is_empty() && !m.ends_with(b"\n") {
        let crlf = m.windows(2).any(|w| w == b"\r\n");
        m.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    }
    m
}

/// A real message with body lines that mboxrd must quote, and 8-bit text.
fn from_lines_message(dir: &Path) -> PathBuf {
    let base = std::fs::read(fixture("mail/erofs-gbk-subject-split.eml")).expect("fixture");
    let mut m = base.clone();
    if !m.ends_with(b"\n") {
        m.push(b'\n');
    }
    m.extend_from_slice(b"\nFrom the archive, quoted once:\n>From here\n>>From there\nFrom \n");
    let path = dir.join("from-lines.eml");
    std::fs::write(&path, m).expect("write");
    path
}

/// A real message's header with a 5 MB attachment (deterministic bytes).
fn five_megabyte_message(dir: &Path) -> PathBuf {
    use base64::Engine;
    let mut payload = Vec::with_capacity(5 << 20);
    let mut x: u32 = 2463534242;
    while payload.len() < 5 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        payload.extend_from_slice(&x.to_le_bytes());
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(&payload);
    let mut m = b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: five megabytes\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nThe attachment.\r\n--b1\r\n\
Content-Type: application/octet-stream; name=\"blob.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    for line in encoded.as_bytes().chunks(76) {
        m.extend_from_slice(line);
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b"--b1--\r\n");
    let path = dir.join("five-mb.eml");
    std::fs::write(&path, m).expect("write");
    path
}

/// The real fixtures every byte-exactness test loads.
fn real_fixtures() -> Vec<PathBuf> {
    [
        "mail/erofs-gbk-subject-split.eml",
        "mail/erofs-gb18030.eml",
        "mail/erofs-pdf-attachment.eml",
        "mail/mail-japanese-iso-2022.eml",
        "mail/mime4j-russian-headers.msg",
        "mail/flanker-malformed-headers.eml",
        "imap/flanker-torture.eml",
        "imap/php-mime-mail-parser-issue274-crlf.eml",
    ]
    .iter()
    .map(|f| fixture(f))
    .collect()
}

#[test]
fn dump_is_byte_identical_to_what_the_server_returns() {
    let acct = Account::alice();
    let mailbox = acct.fresh_mailbox("exact");
    let mut files = real_fixtures();
    files.push(from_lines_message(acct.dir.path()));
    files.push(five_megabyte_message(acct.dir.path()));
    acct.append(&mailbox, false, &files);
    let server = acct.server_messages(&mailbox);
    assert_eq!(server.len(), files.len());

    let out = acct.dump(&["--mailbox", &mailbox]);
    let mbox = read_mbox(ok(&out));
    assert_eq!(mbox.len(), server.len());
    for (got, (uid, _, want)) in mbox.iter().zip(&server) {
        assert!(
            got.data == *want,
            "message UID {uid} differs from the server's bytes"
        );
        let from_line = String::from_utf8_lossy(&got.from_line);
        assert!(from_line.starts_with("From "), "{from_line}");
        assert!(
            from_line.ends_with(" 2026") || from_line.len() > 20,
            "{from_line}"
        );
    }
    // Quoting happened on the wire format, and the reader undid it.
    let raw = String::from_utf8_lossy(&out.stdout);
    assert!(raw.contains("\n>From the archive, quoted once:\r\n>>From here\r\n>>>From there\r\n"));
    assert!(raw.contains("\n>From mrc@CAC.Washington.EDU Mon Feb  8 02:53:47 PST 1993\r\n"));
    // The sender is the From address (no Return-Path on APPENDed mail) or Return-Path.
    assert!(mbox[7].from_line.starts_with(b"From guest@localhost "));
    assert!(mbox[9].from_line.starts_with(b"From alice@example.test "));
    // The 5 MB message came whole.
    assert!(mbox[9].data.len() > 6_000_000);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_mailbox_reads_the_same_messages() {
    let acct = Account::alice();
    let mailbox = acct.fresh_mailbox("python");
    let files = vec![
        from_lines_message(acct.dir.path()),
        fixture("imap/flanker-torture.eml"),
    ];
    acct.append(&mailbox, false, &files);
    let server = acct.server_messages(&mailbox);
    let path = acct.path("out.mbox");
    std::fs::write(&path, ok(&acct.dump(&["--mailbox", &mailbox]))).expect("write");
    let script = "import mailbox, sys\n\
        for m in mailbox.mbox(sys.argv[1]):\n    b = m.as_bytes(unixfrom=False)\n    sys.stdout.write(str(len(b)) + '\\n')\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(
        count,
        server.len(),
        "Python's mailbox sees every message, no more"
    );
}

#[test]
fn seen_flags_and_message_count_are_unchanged() {
    let acct = Account::alice();
    let mailbox = acct.fresh_mailbox("seen");
    acct.append(&mailbox, true, &[fixture("mail/erofs-gb18030.eml")]);
    acct.append(
        &mailbox,
        false,
        &[
            fixture("mail/erofs-gbk-damaged.eml"),
            fixture("mail/mail-ks-c-5601-1987.eml"),
        ],
    );
    let before = acct.flags(&mailbox);
    let out = acct.dump(&["--mailbox", &mailbox, "--flags"]);
    let mbox = read_mbox(ok(&out));
    assert_eq!(
        acct.flags(&mailbox),
        before,
        "flags or count changed on the server"
    );
    assert_eq!(before["count"], 3);
    // --flags adds the mutt headers: read for the \Seen one, unread for the others.
    let status: Vec<bool> = mbox
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.data);
            assert!(text.contains("\nStatus: "), "no Status header");
            text.contains("\nStatus: RO\r\n")
        })
        .collect();
    assert_eq!(status, vec![true, false, false]);
}

#[test]
fn non_ascii_mailbox_names_are_encoded_and_listed_decoded() {
    let acct = Account::alice();
    let suffix = acct.fresh_mailbox("utf7");
    // 已发送 in modified UTF-7, spelled out here rather than by our encoder.
    let wire = format!("&XfJT0ZAB-{suffix}");
    let name = format!("已发送{suffix}");
    acct.oracle(&["create", &wire]);
    acct.append(&wire, false, &[fixture("mail/erofs-gb2312-subject.eml")]);
    let server = acct.server_messages(&wire);
    let mbox = read_mbox(ok(&acct.dump(&["--mailbox", &name])));
    assert_eq!(mbox.len(), 1);
    assert_eq!(mbox[0].data, server[0].2);

    let listed = String::from_utf8(ok(&acct.dump(&["--list"])).to_vec()).expect("utf-8");
    assert!(listed.lines().any(|l| l == name), "{listed}");
    let json = String::from_utf8(ok(&acct.dump(&["--list", "--json"])).to_vec()).expect("utf-8");
    let entry: serde_json::Value = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .find(|v| v["name"] == name.as_str())
        .expect("listed in JSON");
    assert_eq!(entry["raw_name"], wire.as_str());
    assert_eq!(entry["messages"], 1);
    assert_eq!(entry["delimiter"], "/");
}

#[test]
fn state_fetches_only_new_messages() {
    let acct = Account::alice();
    let mailbox = acct.fresh_mailbox("state");
    acct.append(&mailbox, false, &real_fixtures()[..4]);
    let state = acct.path("inbox.state");
    let state_arg = state.to_str().expect("utf-8 path");
    let first = read_mbox(ok(&acct.dump(&[
        "--mailbox",
        &mailbox,
        "--state",
        state_arg,
    ])));
    assert_eq!(first.len(), 4);
    let new_uids = acct.append(&mailbox, false, &real_fixtures()[4..7]);
    let server = acct.server_messages(&mailbox);
    let second = read_mbox(ok(&acct.dump(&[
        "--mailbox",
        &mailbox,
        "--state",
        state_arg,
    ])));
    assert_eq!(second.len(), 3, "exactly the 3 new messages");
    for (got, uid) in second.iter().zip(&new_uids) {
        let want = &server
            .iter()
            .find(|(u, _, _)| u == uid)
            .expect("on server")
            .2;
        assert!(got.data == as_in_mbox(want), "UID {uid}");
    }
    let third = acct.dump(&["--mailbox", &mailbox, "--state", state_arg]);
    assert!(ok(&third).is_empty(), "nothing new, nothing written");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    assert_eq!(
        saved["accounts"][format!("{}@localhost", acct.user)][&mailbox]["last_uid"],
        *new_uids.last().expect("uid")
    );
}

/// A mailbox of `n` real messages, a few of them large, for the killed-run and
/// cut-connection tests. Returns the server's messages.
fn load_many(acct: &Account, mailbox: &str, n: usize) -> Vec<(u32, String, Vec<u8>)> {
    let pool: Vec<PathBuf> = std::fs::read_dir(fixture("mail"))
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    let mut files: Vec<PathBuf> = (0..n).map(|i| pool[i % pool.len()].clone()).collect();
    files[n / 3] = fixture("imap/flanker-torture.eml");
    files[2 * n / 3] = fixture("imap/flanker-torture.eml");
    acct.append(mailbox, false, &files);
    acct.server_messages(mailbox)
}

/// Every server message is somewhere in `mbox`, byte for byte.
fn assert_nothing_lost(mbox: &[MboxMessage], server: &[(u32, String, Vec<u8>)]) {
    let mut have: HashMap<&[u8], usize> = HashMap::new();
    for m in mbox {
        *have.entry(&m.data).or_default() += 1;
    }
    let mut want: HashMap<Vec<u8>, usize> = HashMap::new();
    for (_, _, body) in server {
        *want.entry(as_in_mbox(body)).or_default() += 1;
    }
    for (body, count) in want {
        let got = have.get(body.as_slice()).copied().unwrap_or(0);
        assert!(got >= count, "a message was lost ({got} of {count} copies)");
    }
}

#[test]
fn a_killed_run_followed_by_a_normal_run_loses_nothing() {
    let acct = Account::alice();
    let mailbox = acct.fresh_mailbox("killed");
    let server = load_many(&acct, &mailbox, 120);
    let state = acct.path("killed.state");
    let out_path = acct.path("killed.mbox");
    let args = [
        "--mailbox",
        &mailbox,
        "--state",
        state.to_str().expect("utf-8"),
        "--batch-size",
        "300000",
    ];
    // Killed as soon as some output exists: mid-batch, maybe mid-message.
    let out_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .expect("open");
    let mut child = acct
        .dump_cmd(&args)
        .stdout(out_file)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while std::fs::metadata(&out_path).map(|m| m.len()).unwrap_or(0) < 400_000 {
        assert!(started.elapsed() < Duration::from_secs(30), "no output");
        thread::sleep(Duration::from_millis(1));
    }
    child.kill().expect("kill");
    child.wait().expect("reaped");
    let after_kill = std::fs::read(&out_path).expect("read");
    let total: usize = server.iter().map(|m| m.2.len()).sum();
    assert!(
        after_kill.len() < total,
        "the run was killed before the end"
    );

    let out_file = std::fs::OpenOptions::new()
        .append(true)
        .open(&out_path)
        .expect("open");
    let status = acct.dump_cmd(&args).stdout(out_file).status().expect("run");
    assert!(status.success());
    let mbox = read_mbox(&std::fs::read(&out_path).expect("read"));
    assert_nothing_lost(&mbox, &server);
}

#[test]
fn a_connection_cut_mid_fetch_fails_and_keeps_only_whole_messages() {
    let acct = Account::alice();
    let mailbox = acct.fresh_mailbox("cut");
    let server = load_many(&acct, &mailbox, 60);
    let total: usize = server.iter().map(|m| m.2.len()).sum();
    let state = acct.path("cut.state");
    let state_arg = state.to_str().expect("utf-8");
    let args = [
        "--mailbox",
        &mailbox,
        "--state",
        state_arg,
        "--batch-size",
        "500000",
    ];
    // Cut half way through the messages: well inside some UID FETCH. The
    // bytes are counted over every connection imap-dump opens, and the cut
    // ends them all.
    let proxy = FaultProxy::start_opts(
        acct.stack.imaps_port,
        Fault::cut([Step::Bytes(Dir::ToClient, total / 2)]),
        Options {
            one_plan: true,
            ..Options::default()
        },
    );
    let out = acct
        .dump_cmd_port(proxy.port(), &args)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("imap-dump: ") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
    let mbox = read_mbox(&out.stdout);
    assert!(
        !mbox.is_empty() && mbox.len() < server.len(),
        "{} messages",
        mbox.len()
    );
    for (got, (uid, _, want)) in mbox.iter().zip(&server) {
        assert!(got.data == as_in_mbox(want), "UID {uid} is not whole");
    }
    // The state names exactly the last message written, not one more.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    assert_eq!(
        saved["accounts"][format!("{}@localhost", acct.user)][&mailbox]["last_uid"],
        server[mbox.len() - 1].0
    );
    // A normal run then brings the rest, no duplicates.
    let rest = read_mbox(ok(&acct.dump(&args)));
    assert_eq!(mbox.len() + rest.len(), server.len());
    for (got, (uid, _, want)) in rest.iter().zip(&server[mbox.len()..]) {
        assert!(got.data == as_in_mbox(want), "UID {uid}");
    }
}

#[test]
fn wrong_password_is_77_without_echoing_it() {
    let acct = Account::alice();
    std::fs::write(acct.path("password"), "not-the-password-xyz\n").expect("write");
    let out = acct.dump(&[]);
    assert_eq!(out.status.code(), Some(77));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(!stderr.contains("not-the-password-xyz"));
    assert!(out.stdout.is_empty());
}

#[test]
fn untrusted_certificate_is_refused() {
    let acct = Account::alice();
    let out = acct
        .dump_cmd_port(acct.stack.untrusted_imaps_port, &[])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TLS: certificate for localhost"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_mailbox_is_a_clear_error() {
    let acct = Account::alice();
    let out = acct.dump(&["--mailbox", "No/Such/Box"]);
    assert_eq!(out.status.code(), Some(66));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("imap-dump: ") && stderr.contains("\"No/Such/Box\""),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
}

#[test]
fn closed_stdout_ends_quietly() {
    let acct = Account::alice();
    let mailbox = acct.fresh_mailbox("head");
    acct.append(&mailbox, false, &[five_megabyte_message(acct.dir.path())]);
    acct.append(&mailbox, false, &real_fixtures());
    let mut child = acct
        .dump_cmd(&["--mailbox", &mailbox, "--batch-size", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("piped");
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).expect("100 bytes");
    drop(stdout); // what `| head -c 100` does
    let out = child.wait_with_output().expect("wait");
    assert!(first.starts_with(b"From "));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn search_limit_and_max_size_choose_messages() {
    let acct = Account::alice();
    let mailbox = acct.fresh_mailbox("search");
    acct.append(&mailbox, false, &real_fixtures());
    let server = acct.server_messages(&mailbox);
    let found = read_mbox(ok(&acct.dump(&[
        "--mailbox",
        &mailbox,
        "--search",
        "FROM \"Crispin\"",
    ])));
    assert_eq!(found.len(), 1);
    assert!(found[0]
        .from_line
        .starts_with(b"From mrc@CAC.Washington.EDU "));
    let limited = read_mbox(ok(&acct.dump(&["--mailbox", &mailbox, "--limit", "2"])));
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[1].data, server[1].2);
    let small = acct.dump(&["--mailbox", &mailbox, "--max-size", "100000"]);
    let small_count = server.iter().filter(|m| m.2.len() <= 100_000).count();
    assert_eq!(read_mbox(ok(&small)).len(), small_count);
    assert!(String::from_utf8_lossy(&small.stderr).contains("skipped"));
    let bad = acct.dump(&["--mailbox", &mailbox, "--search", "ALL\r\nA1 DELETE INBOX"]);
    assert_eq!(bad.status.code(), Some(64));
    let refused = acct.dump(&["--mailbox", &mailbox, "--search", "NOSUCHKEY 1"]);
    assert_eq!(
        refused.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// --max-size and --batch-size are mailpipe::ByteSize: `10M` is accepted,
/// and K is 1024 (a message of 10,020 bytes is kept at 10K, skipped at 9K).
#[test]
fn sizes_take_10m_and_binary_suffixes() {
    let acct = Account::alice();
    let mailbox = acct.fresh_mailbox("sizes");
    let file = acct.path("sized.eml");
    let message = format!("Subject: sized\r\n\r\n{}\r\n", "x".repeat(10_000));
    assert_eq!(message.len(), 10_020);
    std::fs::write(&file, &message).expect("write message");
    acct.append(&mailbox, false, &[file]);
    for (limit, kept) in [("10M", 1), ("10K", 1), ("10k", 1), ("9K", 0)] {
        let out = acct.dump(&[
            "--mailbox",
            &mailbox,
            "--max-size",
            limit,
            "--batch-size",
            "10M",
        ]);
        assert_eq!(read_mbox(ok(&out)).len(), kept, "--max-size {limit}");
    }
    let bad = acct.dump(&["--mailbox", &mailbox, "--batch-size", "10X"]);
    assert_eq!(bad.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("\"10X\" is not a size in bytes"),
        "{stderr}"
    );
}

#[test]
fn search_with_non_ascii_text_needs_no_charset_or_quoting() {
    let acct = Account::alice();
    let mailbox = acct.fresh_mailbox("search-utf8");
    let write = |name: &str, subject: &str, body: &str| {
        let path = acct.path(name);
        let text = format!(
            "From: =?UTF-8?B?5byg5Lyf?= <zhang@example.test>\r\nTo: alice@example.test\r\n\
             Subject: {subject}\r\nMessage-ID: <{name}@example.test>\r\n\
             Date: Mon, 16 Nov 2026 09:00:00 +0800\r\n\r\n{body}\r\n"
        );
        std::fs::write(&path, text).expect("write");
        path
    };
    // "第47周周报" (RFC 2047, as mail clients send it) and "月报 Monthly".
    let weekly = write("weekly.eml", "=?UTF-8?B?56ysNDflkajlkajmiqU=?=", "本周完成");
    let monthly = write(
        "monthly.eml",
        "=?UTF-8?B?5pyI5oqlIE1vbnRobHk=?=",
        "月度总结",
    );
    acct.append(&mailbox, false, &[weekly, monthly]);
    let server = acct.server_messages(&mailbox);
    for criteria in [
        "SUBJECT 周报",
        "SUBJECT \"周报\" FROM zhang",
        "CHARSET UTF-8 SUBJECT \"周报\"",
        "OR (SUBJECT 周报) (BODY 不存在的词)",
    ] {
        let found = read_mbox(ok(&acct.dump(&[
            "--mailbox",
            &mailbox,
            "--search",
            criteria,
        ])));
        assert_eq!(found.len(), 1, "{criteria}");
        assert_eq!(found[0].data, server[0].2, "{criteria}");
    }
    let monthly_found = read_mbox(ok(&acct.dump(&[
        "--mailbox",
        &mailbox,
        "--search",
        "BODY 月度",
    ])));
    assert_eq!(monthly_found.len(), 1);
    assert_eq!(monthly_found[0].data, server[1].2);
    let none = read_mbox(ok(&acct.dump(&[
        "--mailbox",
        &mailbox,
        "--search",
        "SUBJECT 年报",
    ])));
    assert!(none.is_empty());
    // -v shows the literal (its size; the transcript never prints literals).
    let verbose = acct.dump(&["-v", "--mailbox", &mailbox, "--search", "SUBJECT 周报"]);
    assert_eq!(read_mbox(ok(&verbose)).len(), 1);
    let transcript = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        transcript.contains("UID SEARCH CHARSET UTF-8 SUBJECT {6 bytes} ALL"),
        "{transcript}"
    );
}

#[test]
fn all_mailboxes_into_an_output_dir_with_safe_names() {
    // Bob is used by this test only, so that --all sees a known set.
    let acct = Account::bob();
    let tag = acct.fresh_mailbox("dir");
    let nested = format!("{tag}/2024/&XfJT0ZAB-");
    let dotted = format!("{tag}/..");
    acct.oracle(&["create", &nested]);
    acct.append(&nested, false, &[fixture("mail/erofs-gb2312-subject.eml")]);
    acct.append(&tag, false, &real_fixtures()[..2]);
    let dotted_ok = acct
        .oracle_cmd(&["create", &dotted])
        .output()
        .expect("python")
        .status
        .success();
    let out_dir = acct.path("backup");
    let out = acct.dump(&["--all", "--output-dir", out_dir.to_str().expect("utf-8")]);
    assert!(ok(&out).is_empty(), "nothing on stdout with --output-dir");
    let top = std::fs::read(out_dir.join(format!("{tag}.mbox"))).expect("top mailbox file");
    assert_eq!(read_mbox(&top).len(), 2);
    let deep = out_dir.join(&tag).join("2024").join("已发送.mbox");
    assert_eq!(
        read_mbox(&std::fs::read(&deep).expect("nested file")).len(),
        1
    );
    if dotted_ok {
        assert!(out_dir.join(&tag).join("%2E..mbox").exists());
    }
    // Everything stays below the output folder.
    for entry in walk(&out_dir) {
        assert!(entry.starts_with(&out_dir));
    }
    // Run again without --state: files are replaced, not doubled.
    ok(&acct.dump(&["--all", "--output-dir", out_dir.to_str().expect("utf-8")]));
    let again = std::fs::read(out_dir.join(format!("{tag}.mbox"))).expect("file");
    assert_eq!(again, top);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            all.extend(walk(&path));
        }
        all.push(path);
    }
    all
}

#[test]
fn several_mailboxes_to_stdout_with_tag_mailbox() {
    let acct = Account::alice();
    let a = acct.fresh_mailbox("taga");
    let b = acct.fresh_mailbox("tagb");
    acct.append(&a, false, &real_fixtures()[..1]);
    acct.append(&b, false, &real_fixtures()[1..3]);
    let mbox = read_mbox(ok(&acct.dump(&[
        "--mailbox",
        &a,
        "--mailbox",
        &b,
        "--tag-mailbox",
    ])));
    let tags: Vec<String> = mbox
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.data).to_string();
            let line = text
                .lines()
                .find(|l| l.starts_with("X-Mailbox: "))
                .expect("tag")
                .to_string();
            line.trim_end()
                .trim_start_matches("X-Mailbox: ")
                .to_string()
        })
        .collect();
    assert_eq!(tags, vec![a.clone(), b.clone(), b.clone()]);
    let plain = read_mbox(ok(&acct.dump(&["--mailbox", &a, "--mailbox", &b])));
    assert_eq!(plain.len(), 3);
    assert!(!String::from_utf8_lossy(&plain[0].data).contains("X-Mailbox:"));
}

#[test]
fn verbose_shows_the_dialogue_without_secrets_or_bodies() {
    let acct = Account::bob();
    let mailbox = acct.fresh_mailbox("verbose");
    acct.append(&mailbox, false, &[fixture("mail/erofs-gb2312-subject.eml")]);
    let out = acct.dump(&["--mailbox", &mailbox, "-v"]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("C: a1 AUTHENTICATE PLAIN"), "{stderr}");
    assert!(stderr.contains("EXAMINE"), "{stderr}");
    assert!(stderr.contains("BODY.PEEK[]"), "{stderr}");
    assert!(stderr.contains(" bytes})"), "{stderr}");
    assert!(!stderr.contains(&acct.pass), "password in transcript");
    assert!(!stderr.contains("Message-ID"), "body bytes in transcript");
}

#[test]
fn starttls_works_and_plaintext_login_is_refused() {
    let acct = Account::alice();
    let mailbox = acct.fresh_mailbox("starttls");
    acct.append(&mailbox, false, &real_fixtures()[..2]);
    let server = format!("imap://localhost:{}", acct.stack.imap_port);
    let out = acct
        .dump_cmd_url(&server, &["--mailbox", &mailbox, "-v"])
        .output()
        .expect("run");
    assert_eq!(read_mbox(ok(&out)).len(), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("C: s0 STARTTLS") && stderr.contains("-- TLS started"),
        "{stderr}"
    );
    let out = acct
        .dump_cmd_url(&server, &["--mailbox", &mailbox, "--tls", "none"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("without TLS"));
}
