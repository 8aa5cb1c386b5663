//! Live mail against the real stack: `imap-dump --follow` and `pop3-dump
//! --follow` while mail arrives, through a real `| mail2json`, across a
//! Dovecot restart, with IDLE and with NOOP polling, and ended by SIGTERM.
//! Every wait has a deadline and every child is killed at the end. The
//! latencies seen are printed (`--nocapture`) for the record, and asserted
//! only against a generous bound that catches a message held back.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mailpipe_e2e::mail::{contains, inbox_lock, mbox, unique};
use mailpipe_e2e::{Stack, Tool};

/// A running tool (or the last of a pipeline) whose stdout and stderr are
/// collected as they come.
struct Running {
    children: Vec<Child>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(mut from: impl Read + Send + 'static, into: &Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    let into = Arc::clone(into);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().expect("lock").extend_from_slice(&buf[..n]);
        }
    })
}

impl Running {
    /// `first` alone, or `first | second` through an OS pipe.
    fn start(mut first: Command, second: Option<Command>) -> Running {
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        first
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut head = first.spawn().expect("start the follower");
        let mut readers = vec![collect(head.stderr.take().expect("stderr"), &stderr)];
        let mut children = Vec::new();
        let out = head.stdout.take().expect("stdout");
        children.push(head);
        match second {
            None => readers.push(collect(out, &stdout)),
            Some(mut second) => {
                second
                    .stdin(Stdio::from(out))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut tail = second.spawn().expect("start the pipe's reader");
                readers.push(collect(tail.stdout.take().expect("stdout"), &stdout));
                readers.push(collect(tail.stderr.take().expect("stderr"), &stderr));
                children.push(tail);
            }
        }
        Running {
            children,
            stdout,
            stderr,
            readers,
        }
    }

    fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().expect("lock").clone()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("lock")).into_owned()
    }

    /// When `needle` is first seen on stdout, polled every 10 ms until `within`.
    fn wait_for(&self, needle: &str, within: Duration) -> Instant {
        let start = Instant::now();
        loop {
            if contains(&self.stdout(), needle.as_bytes()) {
                return Instant::now();
            }
            assert!(
                start.elapsed() < within,
                "{needle:?} not on stdout within {within:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM to the first process, then every exit status (within 10 s).
    fn terminate(mut self) -> (Vec<Option<i32>>, Vec<u8>, String) {
        let pid = self.children[0].id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let start = Instant::now();
        let mut codes = Vec::new();
        for child in &mut self.children {
            loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    codes.push(status.code());
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "did not end within 10 s of SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (codes, self.stdout(), self.stderr())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Dovecot restart stops every other test's server: it runs alone.
static DOVECOT: RwLock<()> = RwLock::new(());

fn dovecot_stays_up() -> RwLockReadGuard<'static, ()> {
    DOVECOT.read().unwrap_or_else(|e| e.into_inner())
}

fn imap_dump(stack: &Stack, args: &[&str]) -> Command {
    let mut cmd = stack.user1(Tool::ImapDump, &stack.url("imaps", stack.imaps_port));
    cmd.args(["--follow", "--quiet"]).args(args);
    cmd
}

/// A mailbox of user1's of its own, so that parallel tests do not meet.
fn new_mailbox(stack: &Stack, label: &str) -> String {
    let name = unique(label);
    stack.create_mailbox(&stack.user1, &name);
    name
}

fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: a@example.test\nTo: b@example.test\nSubject: {subject}\n\
         Message-ID: <{subject}@example.test>\n\nbody of {subject}\nFrom the top\n"
    )
    .into_bytes()
}

/// The subjects of the messages of a framed mbox stream, in order.
fn subjects(stdout: &[u8]) -> Vec<String> {
    mbox(stdout)
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.data);
            text.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn state_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The last UID imap-dump's state file holds for user1's `mailbox`.
fn last_uid(stack: &Stack, state: &Path, mailbox: &str) -> u64 {
    let saved: serde_json::Value = serde_json::from_str(&state_text(state)).expect("state is JSON");
    let account = format!("{}@localhost", stack.user1);
    saved["accounts"][&account][mailbox]["last_uid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no last_uid for {mailbox} in {saved}"))
}

#[test]
fn each_delivery_reaches_stdout_and_mail2json_at_once() {
    let _up = dovecot_stays_up();
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let token = unique("live");
    let search = format!("SUBJECT {token}");
    let state = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let alone = Running::start(
        imap_dump(&stack, &["--search", &search, "--state", &state("a")]),
        None,
    );
    let mut json = Command::new(Tool::Mail2json.path());
    json.args(["--fields", "from,subject"]);
    let piped = Running::start(
        imap_dump(&stack, &["--search", &search, "--state", &state("b")]),
        Some(json),
    );
    // Both have dumped (nothing yet) and are waiting.
    std::thread::sleep(Duration::from_millis(1500));
    let url = stack.url("smtps", stack.smtps_port);
    for i in 1..=3 {
        let subject = format!("{token}-{i}");
        let mut send = stack.user1(Tool::SmtpSend, &url);
        send.arg("-t");
        let mut body = message(&subject);
        body.splice(
            0..0,
            format!("From: {}\nTo: {}\n", stack.user1, stack.user1).bytes(),
        );
        let body: Vec<u8> = String::from_utf8(body)
            .expect("utf8")
            .replacen("From: a@example.test\nTo: b@example.test\n", "", 1)
            .into_bytes();
        let sent = mailpipe_e2e::run_with_stdin(&mut send, &body);
        assert!(sent.status.success(), "smtp-send: {sent:?}");
        let submitted = Instant::now();
        let stored = stack.wait_for(&stack.user1, &subject, 1);
        assert_eq!(stored.len(), 1, "{subject} delivered");
        let delivered = Instant::now();
        let on_stdout = alone.wait_for(&format!("Subject: {subject}"), Duration::from_secs(10));
        let as_json = piped.wait_for(
            &format!("\"subject\":\"{subject}\""),
            Duration::from_secs(10),
        );
        let after = |t: Instant| t.saturating_duration_since(delivered);
        eprintln!(
            "latency {i}: delivered {} ms after smtp-send returned; stdout +{} ms, \
             mail2json +{} ms after delivery",
            delivered.duration_since(submitted).as_millis(),
            after(on_stdout).as_millis(),
            after(as_json).as_millis()
        );
        assert!(
            after(on_stdout) < Duration::from_secs(2),
            "stdout held back"
        );
        assert!(
            after(as_json) < Duration::from_secs(2),
            "mail2json held back"
        );
        std::thread::sleep(Duration::from_millis(1500));
    }
    let (codes, stdout, stderr) = alone.terminate();
    assert_eq!(codes, [Some(0)], "{stderr}");
    let want: Vec<String> = (1..=3).map(|i| format!("{token}-{i}")).collect();
    assert_eq!(subjects(&stdout), want);
    assert!(
        contains(&stdout, b" mailpipe-length="),
        "follow mode frames each entry"
    );
    let (codes, json, stderr) = piped.terminate();
    assert_eq!(codes, [Some(0), Some(0)], "{stderr}");
    let lines: Vec<&str> = std::str::from_utf8(&json).expect("utf8").lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
}

/// The processes of the stack's trusted Dovecot (by their title,
/// `dovecot-mailstack-<run dir>-trusted/...`): the master leaves the
/// sessions of logged-in clients running when it stops.
fn dovecot_processes(stack: &Stack) -> Vec<String> {
    let run = run_dir(stack);
    let name = run.file_name().expect("run dir").to_string_lossy();
    let title = format!("dovecot-mailstack-{name}-trusted/");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if cmdline.starts_with(title.as_bytes()) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Stops the stack's (trusted) Dovecot as a crash or a full restart does
/// (the master, then the sessions it left), runs `meanwhile`, starts it
/// again and waits until IMAPS answers; the stack's PID file follows.
fn restart_dovecot(stack: &Stack, meanwhile: impl FnOnce()) {
    let pid_file = stack.dir.join("pids/dovecot.pid");
    let pid = std::fs::read_to_string(&pid_file).expect("dovecot's PID file");
    let pid = pid.trim();
    let stopped = Command::new("kill").args(["-TERM", pid]).status();
    assert!(stopped.is_ok_and(|s| s.success()), "kill dovecot {pid}");
    let start = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists()
        || TcpStream::connect((stack.host.as_str(), stack.imaps_port)).is_ok()
    {
        assert!(start.elapsed() < Duration::from_secs(15), "dovecot stops");
        std::thread::sleep(Duration::from_millis(50));
    }
    loop {
        let left = dovecot_processes(stack);
        if left.is_empty() {
            break;
        }
        for pid in &left {
            let _ = Command::new("kill").args(["-TERM", pid]).status();
        }
        assert!(start.elapsed() < Duration::from_secs(15), "sessions end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(meanwhile));
    let started = Command::new("dovecot")
        .arg("-c")
        .arg(&stack.dovecot_conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(started.is_ok_and(|s| s.success()), "dovecot starts");
    let run = run_dir(stack).join("trusted/master.pid");
    let start = Instant::now();
    loop {
        let up = TcpStream::connect((stack.host.as_str(), stack.imaps_port)).is_ok();
        if let (true, Ok(new_pid)) = (up, std::fs::read_to_string(&run)) {
            if !new_pid.trim().is_empty() {
                std::fs::write(&pid_file, new_pid).expect("PID file");
                if let Err(panic) = done {
                    std::panic::resume_unwind(panic);
                }
                return;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(15), "dovecot answers");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Puts `message` in user1's `mailbox` as a delivery agent does (tmp/, then
/// renamed into new/, owned by the mail user), without Dovecot.
fn deliver_to_maildir(stack: &Stack, mailbox: &str, message: &[u8]) {
    use std::os::unix::fs::MetadataExt;
    let folder = stack.maildir(&stack.user1).join(format!(".{mailbox}"));
    let owner = std::fs::metadata(&folder).expect("the mailbox's folder");
    let name = unique("delivered");
    let tmp = folder.join("tmp").join(&name);
    std::fs::write(&tmp, message).expect("write to tmp/");
    std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid())).expect("chown");
    std::fs::rename(&tmp, folder.join("new").join(&name)).expect("into new/");
}

/// Dovecot's base_dir, as scripts/mailstack recorded it.
fn run_dir(stack: &Stack) -> PathBuf {
    let state = state_text(&stack.dir.join("mailstack.state"));
    state
        .lines()
        .find_map(|l| l.strip_prefix("RUN="))
        .map(PathBuf::from)
        .expect("RUN= in mailstack.state")
}

#[test]
fn a_dovecot_restart_loses_nothing_and_repeats_nothing() {
    let _alone = DOVECOT.write().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("follow.state");
    let mailbox = new_mailbox(&stack, "restart");
    let save = |s: &str| stack.save(&stack.user1, &mailbox, &message(s));
    save("before-start");
    let follower = Running::start(
        imap_dump(
            &stack,
            &["-m", &mailbox, "--state", &state.to_string_lossy()],
        ),
        None,
    );
    follower.wait_for("Subject: before-start", Duration::from_secs(10));
    save("while-following");
    follower.wait_for("Subject: while-following", Duration::from_secs(10));
    // doveadm needs the server: what arrives while it is down is put in
    // the Maildir as an MDA would.
    restart_dovecot(&stack, || {
        deliver_to_maildir(&stack, &mailbox, &message("while-down"))
    });
    save("after-restart");
    // Reconnects come after 1, 2, 4... s.
    follower.wait_for("Subject: while-down", Duration::from_secs(30));
    follower.wait_for("Subject: after-restart", Duration::from_secs(30));
    // A moment for anything repeated to show up.
    std::thread::sleep(Duration::from_millis(500));
    let (codes, stdout, stderr) = follower.terminate();
    assert_eq!(codes, [Some(0)], "{stderr}");
    // In UID order, which is Dovecot's choice for the two that came in
    // around the restart: each exactly once.
    let mut seen = subjects(&stdout);
    seen.sort();
    assert_eq!(
        seen,
        [
            "after-restart",
            "before-start",
            "while-down",
            "while-following"
        ],
        "each once; stderr:\n{stderr}"
    );
    assert!(stderr.contains("reconnecting in"), "{stderr}");
    assert_eq!(last_uid(&stack, &state, &mailbox), 4);
}

#[test]
fn sigterm_ends_the_follow_after_a_whole_message_with_the_state_saved() {
    let _up = dovecot_stays_up();
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("follow.state");
    let mailbox = new_mailbox(&stack, "sigterm");
    // A message of a few MB, so that a signal may well come mid-write.
    let big = {
        let mut m = message("big");
        m.extend(std::iter::repeat_n(b"0123456789abcdef\n".as_slice(), 200_000).flatten());
        m
    };
    stack.save(&stack.user1, &mailbox, &message("first"));
    let follower = Running::start(
        imap_dump(
            &stack,
            &["-m", &mailbox, "--state", &state.to_string_lossy()],
        ),
        None,
    );
    follower.wait_for("Subject: first", Duration::from_secs(10));
    stack.save(&stack.user1, &mailbox, &big);
    follower.wait_for("Subject: big", Duration::from_secs(10));
    let (codes, stdout, stderr) = follower.terminate();
    assert_eq!(codes, [Some(0)], "{stderr}");
    let messages = mbox(&stdout);
    assert!(messages.iter().all(|m| m.defect.is_none()), "whole entries");
    assert_eq!(subjects(&stdout), ["first", "big"]);
    assert_eq!(messages[1].data.len(), mailpipe_e2e::mail::crlf(&big).len());
    assert_eq!(last_uid(&stack, &state, &mailbox), 2);
}

#[test]
fn without_idle_noop_polling_picks_up_new_mail() {
    let _up = dovecot_stays_up();
    let stack = Stack::get();
    let mailbox = new_mailbox(&stack, "noop");
    let follower = Running::start(
        imap_dump(
            &stack,
            &["-m", &mailbox, "--no-idle", "--interval", "300ms", "-v"],
        ),
        None,
    );
    std::thread::sleep(Duration::from_millis(800));
    stack.save(&stack.user1, &mailbox, &message("polled"));
    follower.wait_for("Subject: polled", Duration::from_secs(5));
    let (codes, stdout, stderr) = follower.terminate();
    assert_eq!(codes, [Some(0)], "{stderr}");
    assert_eq!(subjects(&stdout), ["polled"]);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("C: ") && l.ends_with(" NOOP")),
        "polled with NOOP: {stderr}"
    );
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with("C: ") && l.contains(" IDLE")),
        "no IDLE with --no-idle: {stderr}"
    );
}

#[test]
fn several_mailboxes_are_followed_at_once() {
    let _up = dovecot_stays_up();
    let stack = Stack::get();
    let (one, two) = (new_mailbox(&stack, "one"), new_mailbox(&stack, "two"));
    let follower = Running::start(
        imap_dump(&stack, &["-m", &one, "-m", &two, "--tag-mailbox"]),
        None,
    );
    std::thread::sleep(Duration::from_millis(800));
    stack.save(&stack.user1, &two, &message("in-two"));
    follower.wait_for("Subject: in-two", Duration::from_secs(5));
    stack.save(&stack.user1, &one, &message("in-one"));
    follower.wait_for("Subject: in-one", Duration::from_secs(5));
    let (codes, stdout, stderr) = follower.terminate();
    assert_eq!(codes, [Some(0)], "{stderr}");
    assert_eq!(subjects(&stdout), ["in-two", "in-one"]);
    assert!(contains(&stdout, format!("X-Mailbox: {two}").as_bytes()));
    assert!(contains(&stdout, format!("X-Mailbox: {one}").as_bytes()));
}

#[test]
fn pop3_follow_polls_new_mail_without_duplicates() {
    let _up = dovecot_stays_up();
    let stack = Stack::get();
    let _inbox = inbox_lock(1);
    stack.doveadm(
        &["expunge", "-u", &stack.user2, "mailbox", "INBOX", "all"],
        b"",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("pop.state");
    let mut cmd = stack.login(
        Tool::Pop3Dump,
        &stack.url("pop3s", stack.pop3s_port),
        &stack.user2,
        &stack.pass2,
    );
    cmd.args(["--follow", "--interval", "300ms", "--quiet", "--timeout=20"])
        .arg("--state")
        .arg(&state);
    let follower = Running::start(cmd, None);
    let save = |s: &str| stack.save(&stack.user2, "INBOX", &message(s));
    std::thread::sleep(Duration::from_millis(500));
    save("pop-1");
    follower.wait_for("Subject: pop-1", Duration::from_secs(5));
    save("pop-2");
    save("pop-3");
    follower.wait_for("Subject: pop-3", Duration::from_secs(5));
    // Several more polls: nothing may come again.
    std::thread::sleep(Duration::from_millis(1200));
    let (codes, stdout, stderr) = follower.terminate();
    assert_eq!(codes, [Some(0)], "{stderr}");
    assert_eq!(subjects(&stdout), ["pop-1", "pop-2", "pop-3"]);
    let uidls = state_text(&state)
        .lines()
        .filter(|l| !l.starts_with(['#', '[']) && !l.trim().is_empty())
        .count();
    assert_eq!(uidls, 3, "{}", state_text(&state));
}

/// The messages of the IDLE-refusing peer below: UID n has subject "peer-n".
fn peer_message(uid: usize) -> Vec<u8> {
    format!(
        "From: a@example.test\r\nSubject: peer-{uid}\r\nMessage-ID: <peer-{uid}@example.test>\r\n\r\nbody {uid}\r\n"
    )
    .into_bytes()
}

/// UIDs named by a UID set (`1`, `2:3`, `1,3`, `2:*`) among `1..=count`;
/// `n:*` names the last message even when it is below n, as RFC 3501 says.
fn peer_uids(set: &str, count: usize) -> Vec<usize> {
    let mut uids = Vec::new();
    for part in set.split(',') {
        let (low, high) = part.split_once(':').unwrap_or((part, part));
        let parse = |s: &str| {
            if s == "*" {
                count
            } else {
                s.parse().unwrap_or(0)
            }
        };
        let (a, b) = (parse(low), parse(high));
        let (a, b) = (a.min(b), a.max(b));
        uids.extend((a..=b).filter(|&u| u >= 1 && u <= count));
    }
    uids.sort_unstable();
    uids.dedup();
    uids
}

/// One connection of a plaintext IMAP server that lists IDLE and answers it
/// with NO (some proxies and Exchange front ends do); a second message
/// arrives at the first NOOP after that. `count` is shared by connections.
fn idle_refusing_connection(socket: std::net::TcpStream, count: &std::sync::atomic::AtomicUsize) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::Ordering;
    let mut out = socket.try_clone().expect("clone");
    let mut input = BufReader::new(socket);
    let _ = out.write_all(b"* OK [CAPABILITY IMAP4rev1 IDLE] scripted\r\n");
    let mut refused_idle = false;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (tag, command) = line.trim_end().split_once(' ').unwrap_or(("*", ""));
        let upper = command.to_ascii_uppercase();
        let n = count.load(Ordering::SeqCst);
        let reply = if upper.starts_with("CAPABILITY") {
            format!("* CAPABILITY IMAP4rev1 IDLE\r\n{tag} OK done\r\n")
        } else if upper.starts_with("EXAMINE") || upper.starts_with("SELECT") {
            format!(
                "* {n} EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT {}] n\r\n\
                 {tag} OK [READ-ONLY] done\r\n",
                n + 1
            )
        } else if upper.starts_with("UID FETCH") {
            let set = command.split_whitespace().nth(2).unwrap_or("");
            let mut reply = String::new();
            for uid in peer_uids(set, n) {
                let body = peer_message(uid);
                if upper.contains("BODY.PEEK[]") {
                    reply.push_str(&format!(
                        "* {uid} FETCH (UID {uid} INTERNALDATE \"30-Nov-2026 12:00:00 +0000\" \
                         BODY[] {{{}}}\r\n{})\r\n",
                        body.len(),
                        String::from_utf8_lossy(&body)
                    ));
                } else {
                    reply.push_str(&format!(
                        "* {uid} FETCH (UID {uid} RFC822.SIZE {})\r\n",
                        body.len()
                    ));
                }
            }
            format!("{reply}{tag} OK done\r\n")
        } else if upper.starts_with("IDLE") {
            refused_idle = true;
            format!("{tag} NO IDLE is not allowed now\r\n")
        } else if upper.starts_with("NOOP") && refused_idle && n == 1 {
            count.store(2, Ordering::SeqCst);
            format!("* 2 EXISTS\r\n{tag} OK done\r\n")
        } else if upper.starts_with("LOGOUT") {
            let _ = out.write_all(format!("* BYE bye\r\n{tag} OK done\r\n").as_bytes());
            return;
        } else {
            format!("{tag} OK done\r\n")
        };
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn a_server_that_refuses_idle_is_polled_with_noop() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let served = Arc::clone(&count);
    std::thread::spawn(move || {
        // The dump's connection, then the follower's (and a reconnect, if any).
        for socket in listener.incoming().take(4).flatten() {
            let count = Arc::clone(&served);
            std::thread::spawn(move || idle_refusing_connection(socket, &count));
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(Tool::ImapDump.path());
    cmd.arg("--server")
        .arg(format!("imap://127.0.0.1:{port}"))
        .args(["--user", "u", "--tls", "none", "--allow-plaintext-auth"])
        .args([
            "--follow",
            "--quiet",
            "--interval",
            "300ms",
            "--connections",
            "1",
        ])
        .env("IMAP_PASSWORD", "p")
        .env_remove("MAILPIPE_CONFIG")
        .env("HOME", dir.path())
        .env("NETRC", "/nonexistent");
    let follower = Running::start(cmd, None);
    follower.wait_for("Subject: peer-1", Duration::from_secs(10));
    follower.wait_for("Subject: peer-2", Duration::from_secs(10));
    let (codes, stdout, stderr) = follower.terminate();
    assert_eq!(codes, [Some(0)], "{stderr}");
    assert_eq!(subjects(&stdout), ["peer-1", "peer-2"], "{stderr}");
    assert!(
        stderr.contains("refused IDLE (NO IDLE is not allowed now); polling with NOOP"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// The MDA pipeline of the README: `--follow --exec CMD` gives each new
/// message to its own run of CMD (the bytes as the server holds them, no
/// From_ line), writes nothing to stdout, and saves the state after each.
#[test]
fn follow_with_exec_gives_each_new_message_to_the_command() {
    let _up = dovecot_stays_up();
    let stack = Stack::get();
    let mailbox = new_mailbox(&stack, "follow-exec");
    stack.save(&stack.user1, &mailbox, &message("exec-before"));
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("follow.state");
    let delivered = dir.path().join("delivered");
    std::fs::create_dir(&delivered).expect("mkdir");
    // One file per run of the command, named by the UID it was given.
    let command = format!("cat > '{}'/\"$MAILPIPE_UID\"", delivered.to_string_lossy());
    let follower = Running::start(
        imap_dump(
            &stack,
            &[
                "-m",
                &mailbox,
                "--state",
                &state.to_string_lossy(),
                "--exec",
                &command,
            ],
        ),
        None,
    );
    let read = |uid: &str| std::fs::read(delivered.join(uid)).unwrap_or_default();
    // The command's file for `uid` holds `subject`, within 10 s.
    let delivered_to_command = |uid: &str, subject: &str| {
        let start = Instant::now();
        let header = format!("Subject: {subject}");
        while !contains(&read(uid), header.as_bytes()) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{}",
                follower.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    delivered_to_command("1", "exec-before");
    stack.save(&stack.user1, &mailbox, &message("exec-after"));
    delivered_to_command("2", "exec-after");
    let (codes, stdout, stderr) = follower.terminate();
    assert_eq!(codes, [Some(0)], "{stderr}");
    assert!(stdout.is_empty(), "nothing on stdout with --exec");
    let second = read("2");
    assert!(
        !second.starts_with(b"From "),
        "the command gets the message, not an mbox entry"
    );
    assert!(contains(&second, b"body of exec-after"));
    assert_eq!(
        std::fs::read_dir(&delivered).expect("list").count(),
        2,
        "each message once"
    );
    assert_eq!(last_uid(&stack, &state, &mailbox), 2);
}
