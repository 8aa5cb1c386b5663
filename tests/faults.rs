//! Fault injection: each network tool, through `FaultProxy` in front of the
//! real servers of scripts/mailstack, cut or stalled in each protocol phase
//! (greeting, TLS handshake, authentication, mid-transfer, before the final
//! reply), and slowed down. Every run must end within its --timeout (plus a
//! margin) with the exit status its docs give, one clear line on stderr, no
//! partial message in any output, no state file advanced past what was
//! written, and, for smtp-send, the message kept byte for byte in --dead-letter.
//!
//! The matrix is written once: [`MATRIX`] is a table of phase x fault with
//! each tool's expected outcome, [`Proto`] says where a phase is on each
//! protocol's wire, and a [`Subject`] per tool says what "nothing lost" means
//! for it. `each_tool!` runs every group of phases for every tool. What only
//! one tool has (smtp-send's --mbox, imap-dump's batches and --output-dir,
//! pop3-dump's QUIT) follows at the end.
//!
//! Plaintext phases use the STARTTLS ports (whose greeting is plaintext) or
//! `--tls none --allow-plaintext-auth` (Dovecot and Postfix accept that on
//! loopback), so that the proxy can find a command by its bytes; under TLS
//! the proxy counts bytes.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use mailpipe_e2e::fault_proxy::{Dir, Fault, FaultProxy, Step};
use mailpipe_e2e::mail::{crlf, mbox_data as mbox_messages, unique};
use mailpipe_e2e::maildrop::{self, numbered_message as message, Maildrop};
use mailpipe_e2e::{run_bounded, Finished as Run, Stack, Tool};

/// --timeout of every faulted run, in seconds.
const TIMEOUT: u64 = 2;

/// A run must end within this: a stalled read waits --timeout once, and
/// connecting, TLS and the rest take well under a second on loopback.
fn deadline() -> Duration {
    Duration::from_secs(TIMEOUT + 1)
}

/// The common verdict: the status, one line `tool: ... (code)` naming what
/// happened (each of `needles`, any one of each `|`-separated set), no panic,
/// and within the deadline.
fn assert_failed(run: &Run, tool: &str, code: i32, needles: &[&str]) {
    let err = &run.stderr;
    // Shown with --nocapture: the outcome table of the hardening report.
    eprintln!("  {:?} {:.1?}: {}", run.code, run.elapsed, err.trim());
    assert_eq!(run.code, Some(code), "{tool}: status; stderr: {err}");
    assert!(!err.contains("panicked"), "{tool} panicked: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{tool}: one line on stderr, got: {err}");
    assert!(
        lines[0].starts_with(&format!("{tool}: ")) && lines[0].ends_with(&format!("({code})")),
        "{tool}: {err}"
    );
    for needle in needles {
        assert!(
            needle.split('|').any(|n| err.contains(n)),
            "{tool}: stderr should say {needle:?}: {err}"
        );
    }
    assert!(
        run.elapsed < deadline(),
        "{tool} took {:?} (timeout {TIMEOUT} s)",
        run.elapsed
    );
}

fn send(what: &str) -> Step {
    Step::Sent(Dir::ToServer, what.as_bytes().to_vec())
}

fn from_server(n: usize) -> Step {
    Step::Bytes(Dir::ToClient, n)
}

fn to_server(n: usize) -> Step {
    Step::Bytes(Dir::ToServer, n)
}

/// Under TLS 1.3 the client's 1st write is its ClientHello, the 2nd its
/// Finished, then one per command: the server's answer to the client's
/// `n`th write is the first server byte after it.
fn after_client_write(n: usize) -> Vec<Step> {
    vec![Step::Chunks(Dir::ToServer, n), from_server(0)]
}

const PLAIN: &[&str] = &["--tls", "none", "--allow-plaintext-auth"];

// ------------------------------------------------------------- the matrix

/// Where the proxy strikes, in protocol terms; [`fault_at`] turns it into
/// proxy steps on each tool's wire ([`Proto`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    /// In the plaintext greeting of the STARTTLS port (cut 3 bytes in,
    /// stalled before its first byte).
    Greeting,
    /// 100 bytes into the server's first TLS flight (implicit TLS).
    Handshake,
    /// 40 bytes into the server's TLS flight after STARTTLS / STLS was accepted.
    StartTls,
    /// After the login command, before its reply (plaintext).
    Auth,
    /// After the client's Finished, so neither session tickets nor greeting (implicit TLS).
    TlsGreeting,
    /// After the login command, before its reply (implicit TLS).
    TlsAuth,
    /// In the middle of the messages (plaintext, after the transfer command).
    Transfer,
    /// In the middle of the messages, by bytes (implicit TLS).
    TlsTransfer,
    /// Every message byte passed, but not its end: SMTP's reply to the final
    /// dot, IMAP's tagged OK of the FETCH, POP3's terminating dot (plaintext).
    Final,
    /// The same under TLS, by bytes.
    TlsFinal,
    /// Each chunk delayed longer than --timeout (implicit TLS).
    TooSlow,
    /// Each chunk a little late, well within --timeout: no fault, the control.
    Slow,
}

impl Point {
    /// Before any message could be written (or, for smtp-send, sent).
    fn before_transfer(self) -> bool {
        !matches!(
            self,
            Point::Transfer | Point::TlsTransfer | Point::Final | Point::TlsFinal | Point::Slow
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Cut,
    Stall,
    /// The point's own fault (a delay, for the slow points).
    Delay,
}

/// What a tool must do: exit with this status, its one stderr line saying
/// each of these (`a|b`: either); `None`: the tool has no such case.
type Expect = Option<(i32, &'static [&'static str])>;

/// A point, a fault, and the outcome for smtp-send, imap-dump and pop3-dump
/// (the order of [`Tool::NETWORK`]).
struct Row {
    point: Point,
    how: How,
    expect: [Expect; 3],
}

const LOST: &str = "closed|lost";
const SILENT: &str = "timed out|no answer within";

#[rustfmt::skip]
const MATRIX: &[Row] = &[
    Row { point: Point::Greeting, how: How::Cut, expect: [
        Some((75, &["closed the connection", "greeting"])),
        Some((75, &[LOST])),
        Some((75, &["greeting|closed"])) ] },
    Row { point: Point::Greeting, how: How::Stall, expect: [
        Some((75, &["timed out", "greeting"])),
        Some((75, &[SILENT])),
        Some((75, &["timed out"])) ] },
    Row { point: Point::Handshake, how: How::Cut, expect: [Some((76, &["TLS", "handshake"])); 3] },
    Row { point: Point::Handshake, how: How::Stall, expect: [Some((75, &["TLS", "timed out"])); 3] },
    Row { point: Point::StartTls, how: How::Cut, expect: [Some((76, &["TLS", "handshake"])); 3] },
    Row { point: Point::Auth, how: How::Cut, expect: [
        Some((75, &["closed the connection|connection lost", "AUTH"])),
        Some((75, &[LOST])),
        Some((75, &[LOST])) ] },
    Row { point: Point::Auth, how: How::Stall, expect: [
        Some((75, &["timed out", "AUTH"])),
        Some((75, &[SILENT])),
        Some((75, &["timed out"])) ] },
    Row { point: Point::TlsGreeting, how: How::Cut, expect: [
        Some((75, &["closed the connection", "greeting"])),
        Some((75, &[LOST])),
        Some((75, &["closed|lost|greeting"])) ] },
    Row { point: Point::TlsGreeting, how: How::Stall, expect: [
        Some((75, &["timed out", "greeting"])),
        Some((75, &[SILENT])),
        Some((75, &["timed out"])) ] },
    Row { point: Point::TlsAuth, how: How::Cut, expect: [
        Some((75, &["closed the connection", "AUTH"])),
        Some((75, &[LOST])),
        Some((75, &["closed|lost|greeting"])) ] },
    Row { point: Point::TlsAuth, how: How::Stall, expect: [
        Some((75, &["timed out", "AUTH"])),
        Some((75, &[SILENT])),
        Some((75, &["timed out"])) ] },
    Row { point: Point::Transfer, how: How::Cut, expect: [
        Some((75, &["connection lost|closed the connection"])),
        Some((75, &[LOST])),
        Some((75, &["closed|lost|final"])) ] },
    Row { point: Point::Transfer, how: How::Stall, expect: [
        Some((75, &["timed out"])),
        Some((75, &[SILENT])),
        Some((75, &["timed out"])) ] },
    Row { point: Point::TlsTransfer, how: How::Cut, expect: [
        Some((75, &["connection lost|closed the connection"])),
        Some((75, &[LOST])),
        Some((75, &["closed|lost|final"])) ] },
    Row { point: Point::Final, how: How::Cut, expect: [
        Some((75, &["closed the connection", "end of the message"])),
        Some((75, &[LOST])),
        Some((75, &["final|closed"])) ] },
    Row { point: Point::Final, how: How::Stall, expect: [
        Some((75, &["timed out", "end of the message"])),
        Some((75, &[SILENT])),
        Some((75, &["timed out"])) ] },
    Row { point: Point::TlsFinal, how: How::Cut, expect: [
        Some((75, &["closed the connection", "end of the message"])),
        None,
        None ] },
    Row { point: Point::TooSlow, how: How::Delay, expect: [
        Some((75, &["timed out"])),
        Some((75, &[SILENT])),
        Some((75, &["timed out"])) ] },
];

/// Where the phases are on a protocol's wire.
struct Proto {
    /// The login command, as it starts (or appears) on the wire.
    login: &'static str,
    /// The client's writes under implicit TLS up to and including the login.
    tls_login_write: usize,
    /// Arguments that make the login one write.
    tls_login_args: &'static [&'static str],
    starttls: &'static str,
    /// How the server's yes to STARTTLS begins.
    starttls_ok: &'static str,
    /// The command the messages answer (or follow, for SMTP's BDAT).
    transfer: &'static str,
    /// The end of a message: after the client sent `.0`, just before the
    /// server sends `.1` (`None`: its first byte).
    end: (&'static str, Option<&'static str>),
}

const SMTP: Proto = Proto {
    login: "AUTH ",
    // ClientHello, Finished, EHLO, AUTH PLAIN with its initial response.
    tls_login_write: 4,
    tls_login_args: &["--auth", "plain"],
    starttls: "STARTTLS\r\n",
    starttls_ok: "220",
    // Postfix offers CHUNKING: the message follows `BDAT n LAST` (small
    // messages in the same write as MAIL and RCPT), no final dot.
    transfer: "BDAT ",
    end: ("BDAT ", None),
};

/// SMTP where the server offers no CHUNKING: the message follows DATA and
/// ends with a dot (the stack's +18 listener, and +12 under TLS).
const SMTP_DATA: Proto = Proto {
    transfer: "DATA\r\n",
    end: ("\r\n.\r\n", None),
    ..SMTP
};

const IMAP: Proto = Proto {
    login: " LOGIN ",
    // ClientHello, Finished, the login.
    tls_login_write: 3,
    tls_login_args: &[],
    starttls: "STARTTLS\r\n",
    starttls_ok: "s0 OK",
    transfer: "BODY.PEEK[]",
    end: ("BODY.PEEK[]", Some(" OK Fetch")),
};

const POP3: Proto = Proto {
    login: "AUTH ",
    // ClientHello, Finished, CAPA, AUTH.
    tls_login_write: 4,
    tls_login_args: &[],
    starttls: "STLS\r\n",
    starttls_ok: "+OK",
    transfer: "RETR ",
    end: ("RETR ", Some("\r\n.\r\n")),
};

/// One network tool under faults: its account, its arguments, and what
/// "nothing lost" and "complete" mean for it.
trait Subject: Sized {
    const TOOL: Tool;
    const PROTO: Proto;
    /// Arguments of every faulted run of the matrix.
    const FAULT_ARGS: &'static [&'static str] = &[];

    /// Logs in as the stack's second user (bob) rather than the first.
    const BOB: bool = false;

    /// The implicit-TLS port and the plaintext port with AUTH the faulted
    /// runs go to (a subject may choose other listeners of its tool).
    fn tls_and_auth_ports(&self) -> (u16, u16) {
        let stack = self.stack();
        (
            stack.tls_port(Self::TOOL),
            stack.plaintext_auth_port(Self::TOOL),
        )
    }

    /// A fresh account, its messages sized for `point`.
    fn new(point: Point) -> Self;
    /// The stack, and the scratch folder that is the tool's HOME.
    fn parts(&self) -> (&Stack, &Path);
    /// Arguments of every run: the state, the dead letter, the mailbox.
    fn args(&self) -> Vec<OsString>;
    /// The messages on the server, as a dump must give them.
    fn held(&self) -> &[Vec<u8>] {
        &[]
    }
    fn stdin(&self) -> &[u8] {
        b""
    }
    /// The client's whole upload, for the final reply under TLS.
    fn upload_len(&self) -> usize {
        0
    }
    /// After a failed run at `point`: nothing lost, nothing half written, no state moved.
    fn assert_nothing_lost(&self, run: &Run, point: Point);

    /// After a run that succeeded: everything done (a dump: what the server holds).
    fn assert_complete(&self, run: &Run) {
        assert_eq!(mbox_messages(&run.stdout), self.held());
    }

    /// Half way through the messages, as one step (a dump: half of what the server sends).
    fn middle(&self) -> Step {
        from_server(self.held().iter().map(Vec::len).sum::<usize>() / 2)
    }

    fn stack(&self) -> &Stack {
        self.parts().0
    }

    /// (user, password)
    fn login(&self) -> (&str, &str) {
        let stack = self.stack();
        if Self::BOB {
            (&stack.user2, &stack.pass2)
        } else {
            (&stack.user1, &stack.pass1)
        }
    }

    /// The tool logged in to `url`, with this subject's arguments.
    fn command(&self, url: &str) -> Command {
        let (user, pass) = self.login();
        let mut cmd = self.stack().login(Self::TOOL, url, user, pass);
        cmd.env("HOME", self.parts().1)
            .arg(format!("--timeout={TIMEOUT}"))
            .args(self.args());
        cmd
    }

    /// The tool through a proxy with `fault` in front of `port`.
    fn run(&self, scheme: &str, port: u16, fault: Fault, extra: &[&str]) -> (Run, FaultProxy) {
        let proxy = FaultProxy::start(port, fault);
        let url = self.stack().url(scheme, proxy.port());
        let mut cmd = self.command(&url);
        cmd.args(extra);
        let run = run_bounded(&mut cmd, self.stdin(), deadline() * 2, |_| {});
        (run, proxy)
    }
}

/// The proxy's fault for `point` on `S`'s wire, and the scheme, port and
/// arguments that put the tool there.
fn fault_at<S: Subject>(s: &S, point: Point, how: How) -> (&'static str, u16, Fault, Vec<&str>) {
    let p = &S::PROTO;
    let stack = s.stack();
    let tool = S::TOOL;
    let (plain, tls) = tool.schemes();
    let starttls_port = stack.starttls_port(tool);
    let (tls_port, auth_port) = s.tls_and_auth_ports();
    let (scheme, port, steps, extra): (_, _, Vec<Step>, &[&str]) = match point {
        Point::Greeting => {
            let at = if how == How::Cut { 3 } else { 0 };
            (plain, starttls_port, vec![from_server(at)], &[])
        }
        Point::Handshake => (tls, tls_port, vec![from_server(100)], &[]),
        Point::StartTls => {
            let steps = vec![
                send(p.starttls),
                Step::Sent(Dir::ToClient, p.starttls_ok.as_bytes().to_vec()),
                Step::Sent(Dir::ToClient, b"\r\n".to_vec()),
                from_server(40),
            ];
            (plain, starttls_port, steps, &[])
        }
        Point::Auth => {
            let steps = vec![send(p.login), send("\r\n"), from_server(0)];
            (plain, auth_port, steps, PLAIN)
        }
        Point::TlsGreeting => (tls, tls_port, after_client_write(2), &[]),
        Point::TlsAuth => (
            tls,
            tls_port,
            after_client_write(p.tls_login_write),
            p.tls_login_args,
        ),
        Point::Transfer => (plain, auth_port, vec![send(p.transfer), s.middle()], PLAIN),
        Point::TlsTransfer => (tls, tls_port, vec![s.middle()], &[]),
        Point::Final => {
            let (after, before) = p.end;
            let end = match before {
                Some(b) => Step::Before(Dir::ToClient, b.as_bytes().to_vec()),
                None => from_server(0),
            };
            (plain, auth_port, vec![send(after), end], PLAIN)
        }
        Point::TlsFinal => (
            tls,
            tls_port,
            vec![to_server(s.upload_len()), from_server(0)],
            &[],
        ),
        Point::TooSlow => (tls, tls_port, Vec::new(), &[]),
        Point::Slow => (tls, tls_port, Vec::new(), &[]),
    };
    let fault = match (how, point) {
        (How::Cut, _) => Fault::cut(steps),
        (How::Stall, _) => Fault::stall(steps),
        (How::Delay, Point::Slow) => Fault::delay(Duration::from_millis(150)),
        (How::Delay, _) => Fault::delay(Duration::from_secs(TIMEOUT + 1)),
    };
    (scheme, port, fault, extra.to_vec())
}

/// Runs every row of [`MATRIX`] at `points` that `S`'s tool has, each on a
/// fresh account.
fn matrix<S: Subject>(points: &[Point]) {
    let tool = S::TOOL;
    let column = Tool::NETWORK
        .iter()
        .position(|t| *t == tool)
        .expect("a network tool");
    let mut ran = 0;
    for row in MATRIX.iter().filter(|r| points.contains(&r.point)) {
        let Some((code, says)) = row.expect[column] else {
            continue;
        };
        eprintln!("{} {:?} {:?}", tool.name(), row.point, row.how);
        let s = S::new(row.point);
        let (scheme, port, fault, mut extra) = fault_at(&s, row.point, row.how);
        extra.extend(S::FAULT_ARGS);
        let (run, proxy) = s.run(scheme, port, fault, &extra);
        if row.how != How::Delay {
            assert_eq!(proxy.fired(), 1, "{:?} was reached once", row.point);
        }
        // The server lets go of the session (POP3: of the maildrop).
        drop(proxy);
        assert_failed(&run, tool.name(), code, says);
        if row.point.before_transfer() || matches!(row.point, Point::Final | Point::TlsFinal) {
            assert!(
                run.stdout.is_empty(),
                "nothing is written before a message or of one without its end"
            );
        }
        s.assert_nothing_lost(&run, row.point);
        ran += 1;
    }
    assert!(ran > 0, "{} has none of {points:?}", tool.name());
}

/// A slow server within the timeout: the run completes; one slower than
/// the timeout: it fails as the matrix says, losing nothing.
fn slow<S: Subject>() {
    let s = S::new(Point::Slow);
    let (scheme, port, fault, extra) = fault_at(&s, Point::Slow, How::Delay);
    let (run, proxy) = s.run(scheme, port, fault, &extra);
    drop(proxy);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    s.assert_complete(&run);
    // pop3-dump's subject holds bob's maildrop; the matrix takes a fresh one.
    drop(s);
    matrix::<S>(&[Point::TooSlow]);
}

/// How many messages of about how many 60-byte lines a dump's account
/// holds for `point`.
fn dump_size(point: Point) -> (usize, usize) {
    match point {
        Point::Transfer | Point::TlsTransfer => (6, 600), // ~36 KB each
        Point::Final => (1, 30),
        Point::Slow => (3, 50),
        _ => (2, 5),
    }
}

/// A test per tool for each group of phases (or other generic check).
macro_rules! each_tool {
    ($($name:ident => $check:ident $(($($arg:expr),*))?;)*) => {$(
        mod $name {
            use super::*;

            #[test]
            fn smtp_send() {
                $check::<Smtp<BDAT>>($($($arg),*)?)
            }

            #[test]
            fn imap_dump() {
                $check::<Imap>($($($arg),*)?)
            }

            #[test]
            fn pop3_dump() {
                $check::<Pop3>($($($arg),*)?)
            }
        }
    )*};
}

each_tool! {
    greeting_cut_and_stalled => matrix(&[Point::Greeting]);
    tls_handshake_cut_and_stalled => matrix(&[Point::Handshake, Point::StartTls]);
    auth_cut_and_stalled => matrix(&[Point::Auth]);
    greeting_and_auth_under_implicit_tls => matrix(&[Point::TlsGreeting, Point::TlsAuth]);
    cut_and_stalled_mid_transfer => matrix(&[Point::Transfer, Point::TlsTransfer]);
    cut_and_stalled_before_the_end_of_a_message => matrix(&[Point::Final, Point::TlsFinal]);
    slow_server_within_the_timeout_is_complete_and_one_beyond_it_fails => slow;
}

/// smtp-send over DATA (listeners without CHUNKING): the phases where the
/// message itself is on the wire.
mod smtp_send_over_data {
    use super::*;

    #[test]
    fn cut_and_stalled_mid_transfer() {
        matrix::<Smtp<DATA>>(&[Point::Transfer, Point::TlsTransfer]);
    }

    #[test]
    fn cut_and_stalled_before_the_end_of_a_message() {
        matrix::<Smtp<DATA>>(&[Point::Final, Point::TlsFinal]);
    }
}

// ---------------------------------------------------------------- smtp-send

/// How smtp-send's subject sends the message: as Postfix's main listeners
/// offer (CHUNKING, so BDAT), or through listeners without CHUNKING (DATA).
const BDAT: bool = false;
const DATA: bool = true;

struct Smtp<const OVER_DATA: bool> {
    stack: Stack,
    dir: tempfile::TempDir,
    tag: String,
    message: Vec<u8>,
    /// The final reply may be lost after Postfix took the message.
    may_deliver: bool,
}

impl<const OVER_DATA: bool> Smtp<OVER_DATA> {
    fn with_lines(label: &str, body_lines: usize) -> Smtp<OVER_DATA> {
        let stack = Stack::get();
        let tag = unique(&format!("smtp-{label}"));
        let message = crlf(&message(&tag, &stack.user1, body_lines));
        Smtp {
            stack,
            dir: tempfile::tempdir().expect("tempdir"),
            tag,
            message,
            may_deliver: false,
        }
    }

    fn dead_letter(&self) -> PathBuf {
        self.dir.path().join("dead.mbox")
    }

    /// The failure kept the message whole in the dead letter, and nothing on stdout.
    fn assert_kept(&self, run: &Run) {
        assert!(run.stdout.is_empty(), "stdout: {:?}", run.stdout);
        let file = std::fs::read(self.dead_letter()).expect("a dead letter was written");
        assert_eq!(
            mbox_messages(&file),
            vec![self.message.clone()],
            "the dead letter holds the message byte for byte"
        );
    }

    /// Messages delivered to alice with `needle`, after waiting (up to 10 s) for `at_least`.
    fn delivered(&self, needle: &str, at_least: usize) -> usize {
        let start = Instant::now();
        loop {
            let n = self.stack.find_messages(&self.stack.user1, needle).len();
            if n >= at_least || start.elapsed() > Duration::from_secs(10) {
                return n;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl<const OVER_DATA: bool> Subject for Smtp<OVER_DATA> {
    const TOOL: Tool = Tool::SmtpSend;
    const PROTO: Proto = if OVER_DATA { SMTP_DATA } else { SMTP };

    fn tls_and_auth_ports(&self) -> (u16, u16) {
        let stack = &self.stack;
        if OVER_DATA {
            (stack.smtps_nochunk_port, stack.smtp_nochunk_plain_port)
        } else {
            (
                stack.tls_port(Self::TOOL),
                stack.plaintext_auth_port(Self::TOOL),
            )
        }
    }

    fn new(point: Point) -> Smtp<OVER_DATA> {
        let lines = match point {
            // 200 KB; the proxy lets 50 KB of it through.
            Point::Transfer | Point::TlsTransfer => 3300,
            Point::Final | Point::TlsFinal | Point::Slow => 50,
            _ => 3,
        };
        let mut s = Smtp::with_lines(&format!("{point:?}"), lines);
        // The whole message (its BDAT chunk) reaches Postfix; its reply does
        // not reach us. Postfix may well deliver it: the dead letter must
        // still hold it (a duplicate is better than a loss).
        s.may_deliver = matches!(point, Point::Final | Point::TlsFinal);
        s
    }

    fn parts(&self) -> (&Stack, &Path) {
        (&self.stack, self.dir.path())
    }

    fn args(&self) -> Vec<OsString> {
        vec![
            "--dead-letter".into(),
            self.dead_letter().into(),
            "-t".into(),
        ]
    }

    fn stdin(&self) -> &[u8] {
        &self.message
    }

    fn middle(&self) -> Step {
        to_server(50_000)
    }

    fn upload_len(&self) -> usize {
        self.message.len()
    }

    fn assert_nothing_lost(&self, run: &Run, _point: Point) {
        self.assert_kept(run);
        if !self.may_deliver {
            self.stack
                .assert_nothing_delivered(&self.stack.user1, &self.tag);
        }
    }

    fn assert_complete(&self, _run: &Run) {
        assert!(
            !self.dead_letter().exists(),
            "nothing kept when it was sent"
        );
        assert_eq!(self.delivered(&self.tag, 1), 1, "delivered once");
    }
}

/// `--mbox`: five messages over one connection, cut before the third one's
/// final reply. smtp-send reconnects for the fourth (the proxy's second
/// connection is not cut again): every message is delivered or kept, the
/// third is kept byte for byte (Postfix may have delivered it too).
#[test]
fn smtp_send_mbox_cut_before_a_final_reply_loses_nothing() {
    mbox_cut_before_a_final_reply::<BDAT>();
}

/// The same over DATA, where each message ends with a dot.
#[test]
fn smtp_send_mbox_over_data_cut_before_a_final_reply_loses_nothing() {
    mbox_cut_before_a_final_reply::<DATA>();
}

fn mbox_cut_before_a_final_reply<const OVER_DATA: bool>() {
    let stack = Stack::get();
    let s = Smtp::<OVER_DATA>::with_lines("mbox-cut", 20);
    let tags: Vec<String> = (0..5).map(|i| format!("{}-m{i}", s.tag)).collect();
    let mut input = Vec::new();
    for tag in &tags {
        input.extend_from_slice(b"From alice@example.test Mon Nov 23 12:00:00 2026\n");
        input.extend_from_slice(&message(tag, &stack.user1, 20));
        input.push(b'\n');
    }
    let sent = mbox_messages(&input);
    assert_eq!(sent.len(), 5);
    let (_, port) = s.tls_and_auth_ports();
    let end = || send(Smtp::<OVER_DATA>::PROTO.end.0);
    let proxy = FaultProxy::start(port, Fault::cut([end(), end(), end(), from_server(0)]));
    let mut cmd = s.command(&stack.url("smtp", proxy.port()));
    cmd.arg("--mbox").args(PLAIN);
    let run = run_bounded(&mut cmd, &input, deadline() * 4, |_| {});
    eprintln!(
        "  {:?} {:.1?}: {}",
        run.code,
        run.elapsed,
        run.stderr.trim()
    );
    assert_eq!(proxy.fired(), 1);
    assert_eq!(proxy.connections(), 2, "one reconnection after the cut");
    assert_eq!(run.code, Some(75), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let last = run.stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("smtp-send: ") && last.contains("1 of 5"),
        "{}",
        run.stderr
    );
    let dead = std::fs::read(s.dead_letter()).expect("dead letter");
    assert_eq!(
        mbox_messages(&dead),
        vec![sent[2].clone()],
        "the third is kept as read"
    );
    let subject = |i: usize| format!("Subject: {}\n", tags[i]);
    for i in [0, 1, 3, 4] {
        assert_eq!(
            s.delivered(&subject(i), 1),
            1,
            "message {} delivered once",
            i + 1
        );
    }
    assert!(s.delivered(&subject(2), 0) <= 1);
}

// ---------------------------------------------------------------- imap-dump

struct Imap {
    stack: Stack,
    dir: tempfile::TempDir,
    mailbox: String,
    /// What the server holds, as IMAP serves it (CRLF), in UID order.
    held: Vec<Vec<u8>>,
    /// Messages an earlier clean run wrote, and the state it left.
    first: usize,
    state_before: Vec<u8>,
}

impl Imap {
    /// A fresh mailbox of alice's with `count` messages of about `lines` * 60 bytes.
    fn with(label: &str, count: usize, lines: usize) -> Imap {
        let stack = Stack::get();
        let mailbox = unique(&format!("faults-{label}"));
        stack.create_mailbox(&stack.user1, &mailbox);
        let mut acct = Imap {
            stack,
            dir: tempfile::tempdir().expect("tempdir"),
            mailbox,
            held: Vec::new(),
            first: 0,
            state_before: Vec::new(),
        };
        acct.add(count, lines);
        acct
    }

    fn add(&mut self, count: usize, lines: usize) {
        for _ in 0..count {
            let i = self.held.len();
            let m = message(&format!("{}-{i}", self.mailbox), &self.stack.user1, lines);
            self.stack.save(&self.stack.user1, &self.mailbox, &m);
            self.held.push(crlf(&m));
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("imap.state")
    }

    /// The key of alice's entry in a version-2 state file: `user@host`.
    fn account_key(&self) -> String {
        format!("{}@localhost", self.stack.user1)
    }

    /// A clean run straight to the server (sets up the state).
    fn dump_all(&self) -> Vec<Vec<u8>> {
        let url = self.stack.url("imaps", self.stack.imaps_port);
        let run = run_bounded(
            &mut self.command(&url),
            b"",
            Duration::from_secs(60),
            |_| {},
        );
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        mbox_messages(&run.stdout)
    }

    /// Whatever was written is whole messages, the held ones from `first` on,
    /// and the state names exactly the last of them (or is as it was).
    fn assert_whole_and_state(&self, run: &Run, first: usize, state_before: &[u8]) -> usize {
        let got = mbox_messages(&run.stdout);
        assert!(first + got.len() <= self.held.len());
        for (i, m) in got.iter().enumerate() {
            assert!(
                *m == self.held[first + i],
                "message {} is not whole ({} bytes, held {})",
                first + i,
                m.len(),
                self.held[first + i].len()
            );
        }
        let state = std::fs::read(self.state()).unwrap_or_default();
        if got.is_empty() {
            assert_eq!(state, state_before, "the state moved without output");
        } else {
            let v: serde_json::Value = serde_json::from_slice(&state).expect("state is JSON");
            let last_uid = v["accounts"][self.account_key()][&self.mailbox]["last_uid"].as_u64();
            // UIDs of a fresh mailbox are 1, 2, 3, ... in the order saved.
            assert_eq!(last_uid, Some((first + got.len()) as u64), "state: {v}");
        }
        got.len()
    }
}

impl Subject for Imap {
    const TOOL: Tool = Tool::ImapDump;
    const PROTO: Proto = IMAP;

    fn new(point: Point) -> Imap {
        let label = format!("{point:?}");
        match point {
            // One message dumped; three more wait in the one FETCH whose
            // tagged OK does not come.
            Point::Final => {
                let mut acct = Imap::with(&label, 1, 5);
                assert_eq!(
                    acct.dump_all(),
                    acct.held,
                    "a clean run gives what the server holds"
                );
                acct.first = 1;
                acct.state_before = std::fs::read(acct.state()).expect("state after a clean run");
                acct.add(3, 20);
                acct
            }
            _ => {
                let (count, lines) = dump_size(point);
                Imap::with(&label, count, lines)
            }
        }
    }

    fn parts(&self) -> (&Stack, &Path) {
        (&self.stack, self.dir.path())
    }

    fn held(&self) -> &[Vec<u8>] {
        &self.held
    }

    fn args(&self) -> Vec<OsString> {
        vec![
            "--mailbox".into(),
            self.mailbox.clone().into(),
            "-q".into(),
            "--state".into(),
            self.state().into(),
            // The fault points here are plaintext patterns and byte counts of
            // uncompressed messages; the same cuts under COMPRESS=DEFLATE are
            // crates/imap-dump/tests/pipelining.rs.
            "--no-compress".into(),
        ]
    }

    fn assert_nothing_lost(&self, run: &Run, _point: Point) {
        let written = self.assert_whole_and_state(run, self.first, &self.state_before);
        if written == 0 && self.state_before.is_empty() {
            assert!(!self.state().exists(), "no state from a failed run");
        }
    }
}

/// (The cut in the middle of a FETCH, over every connection, is
/// crates/imap-dump/tests/cli.rs
/// `a_connection_cut_mid_fetch_fails_and_keeps_only_whole_messages`.)
#[test]
fn imap_dump_stalled_mid_fetch_keeps_whole_messages_and_an_honest_state() {
    let stack = Stack::get();
    let mut acct = Imap::with("mid", 3, 5);
    assert_eq!(
        acct.dump_all(),
        acct.held,
        "a clean run gives what the server holds"
    );
    let state_before = std::fs::read(acct.state()).expect("state after a clean run");
    acct.add(30, 300); // about 18 KB each
    let new_bytes: usize = acct.held[3..].iter().map(Vec::len).sum();
    let first_tls_bytes = {
        // Measure a session up to the first FETCH on a copy of the state.
        std::fs::write(acct.state(), &state_before).expect("reset state");
        let (run, p) = acct.run("imaps", stack.imaps_port, Fault::none(), &["--limit", "0"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        std::fs::write(acct.state(), &state_before).expect("reset state");
        p.forwarded(Dir::ToClient)
    };
    // Small batches, so that some are written before the stall. A quarter of
    // the new bytes on this connection: imap-dump may fetch alternate batches
    // on a second connection, which counts its own bytes.
    let fault = Fault::stall([from_server(first_tls_bytes + new_bytes / 4)]);
    let (run, _p) = acct.run("imaps", stack.imaps_port, fault, &["--batch-size", "60000"]);
    assert_failed(&run, "imap-dump", 75, &[SILENT]);
    let written = acct.assert_whole_and_state(&run, 3, &state_before);
    assert!(
        written > 0 && written < 30,
        "{written} of 30 written before the stall"
    );
    // The next run brings exactly the rest.
    let rest = acct.dump_all();
    assert_eq!(rest, acct.held[3 + written..].to_vec());
}

/// --output-dir with --state, cut in the middle of the fetches: the mbox
/// file holds whole messages only, the state names exactly the last one, and
/// a second run appends exactly the rest.
#[test]
fn imap_dump_output_dir_cut_mid_fetch_appends_whole_messages_only() {
    let stack = Stack::get();
    let acct = Imap::with("outdir", 20, 300);
    let out_dir = acct.dir.path().join("backup");
    let out_arg = out_dir.to_str().expect("utf-8").to_string();
    let args = ["--output-dir", out_arg.as_str(), "--batch-size", "60000"];
    let total: usize = acct.held.iter().map(Vec::len).sum();
    let (run, _p) = acct.run(
        "imaps",
        stack.imaps_port,
        Fault::cut([from_server(total / 4)]),
        &args,
    );
    assert_failed(&run, "imap-dump", 75, &[LOST]);
    let file = out_dir.join(format!("{}.mbox", acct.mailbox));
    let written = mbox_messages(&std::fs::read(&file).unwrap_or_default());
    assert!(written.len() < acct.held.len());
    for (i, m) in written.iter().enumerate() {
        assert!(*m == acct.held[i], "message {i} in the file is not whole");
    }
    if !written.is_empty() {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(acct.state()).expect("state")).expect("json");
        assert_eq!(
            v["accounts"][acct.account_key()][&acct.mailbox]["last_uid"].as_u64(),
            Some(written.len() as u64)
        );
    }
    let (run, _p) = acct.run("imaps", stack.imaps_port, Fault::none(), &args);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let all = mbox_messages(&std::fs::read(&file).expect("mbox"));
    assert_eq!(all, acct.held, "the second run appended exactly the rest");
}

// ---------------------------------------------------------------- pop3-dump

/// bob's maildrop (`Maildrop`), under the fault matrix.
struct Pop3(Maildrop);

impl std::ops::Deref for Pop3 {
    type Target = Maildrop;
    fn deref(&self) -> &Maildrop {
        &self.0
    }
}

impl Pop3 {
    /// Whole messages only, the first ones held, the state naming exactly
    /// those (a stopped export saves what it wrote, so the next run resumes
    /// there), and the maildrop still full.
    fn assert_nothing_half_done(&self, run: &Run) {
        let written = mbox_messages(&run.stdout);
        for (i, m) in written.iter().enumerate() {
            assert!(
                *m == self.held[i],
                "a partial message was written ({} bytes)",
                m.len()
            );
        }
        // The proxy is gone, so Dovecot has let go of the maildrop.
        let url = self.stack.url("pop3s", self.stack.pop3s_port);
        let mut list = self
            .stack
            .login(Tool::Pop3Dump, &url, &self.stack.user2, &self.stack.pass2);
        list.env("HOME", self.dir.path()).arg("--list");
        let out = run_bounded(&mut list, b"", Duration::from_secs(30), |_| {});
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(listed.lines().count(), self.held.len(), "maildrop");
        let uidls = maildrop::listed_uidls(&out.stdout);
        let expected: BTreeSet<String> = uidls[..written.len()].iter().cloned().collect();
        assert_eq!(
            self.saved(),
            expected,
            "the state names exactly what was written"
        );
    }
}

impl Subject for Pop3 {
    const TOOL: Tool = Tool::Pop3Dump;
    const PROTO: Proto = POP3;
    const BOB: bool = true;
    /// A faulted run must not delete what it did not write.
    const FAULT_ARGS: &'static [&'static str] = &["--delete"];

    fn new(point: Point) -> Pop3 {
        let (count, lines) = dump_size(point);
        Pop3(Maildrop::with(&format!("{point:?}"), count, lines))
    }

    fn parts(&self) -> (&Stack, &Path) {
        (&self.stack, self.dir.path())
    }

    fn held(&self) -> &[Vec<u8>] {
        &self.held
    }

    fn args(&self) -> Vec<OsString> {
        vec!["--state".into(), self.state().into()]
    }

    fn assert_nothing_lost(&self, run: &Run, _point: Point) {
        self.assert_nothing_half_done(run);
    }
}

/// --delete: everything was written and flushed, DELE sent, then the reply
/// to QUIT (the commit) is cut or stalled. Whatever the server did, nothing
/// is lost: the output holds every message whole, and the messages are
/// either still on the server or were written.
#[test]
fn pop3_dump_delete_with_the_reply_to_quit_cut_or_stalled() {
    for (fault, says) in [
        (
            Fault::cut([send("QUIT\r\n"), from_server(0)]),
            "closed|lost|QUIT",
        ),
        (
            Fault::stall([send("QUIT\r\n"), from_server(0)]),
            "timed out|QUIT",
        ),
    ] {
        let acct = Pop3(Maildrop::with("quit", 3, 10));
        let (run, p) = acct.run(
            "pop3",
            acct.stack.pop3_port,
            fault,
            &[PLAIN, &["--delete"]].concat(),
        );
        assert_eq!(p.fired(), 1, "QUIT was sent");
        drop(p);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(run.elapsed < deadline(), "took {:?}", run.elapsed);
        assert_eq!(
            mbox_messages(&run.stdout),
            acct.held,
            "every message written whole"
        );
        if run.code != Some(0) {
            assert_failed(&run, "pop3-dump", run.code.unwrap_or(-1), &[says]);
        }
        let state = std::fs::read(acct.state()).expect("the state was saved before DELE");
        assert!(!state.is_empty());
    }
}
