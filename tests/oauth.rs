//! OAuth 2 end to end: smtp-send, imap-dump and pop3-dump log in with
//! XOAUTH2 and OAUTHBEARER against the stack's Dovecot (and Postfix, which
//! asks Dovecot), whose oauth2 passdb checks each token with the stack's
//! introspection endpoint. A valid token works as a password does; an
//! expired one is refreshed (the token command runs a second time) and the
//! run goes on; a revoked one ends with 77 and the server's words, never the
//! token. Which mechanism went on the wire is read from the `-v` transcript.

use std::process::Output;

use mailpipe_e2e::mail::{contains, unique};
use mailpipe_e2e::oauth::{OAuth, TokenCommand};
use mailpipe_e2e::{run_with_stdin, Stack, Tool};

/// `--oauth-mechanism` values and the SASL names they put on the wire.
const MECHANISMS: [(&str, &str); 2] = [("xoauth2", "XOAUTH2"), ("oauthbearer", "OAUTHBEARER")];

/// `tool -v` on its implicit-TLS port as the OAuth user, with `tokens` as
/// the token command and `args`; `stdin` for smtp-send.
fn run(tool: Tool, tokens: &TokenCommand, args: &[&str], stdin: &[u8]) -> Output {
    let stack = Stack::get();
    let oauth = OAuth::get();
    let url = stack.url(tool.schemes().1, stack.tls_port(tool));
    let mut cmd = stack.client(tool, &url, &oauth.user);
    cmd.arg("--oauth-token-command")
        .arg(&tokens.command)
        .args(["-v", "--timeout", "20"])
        .args(args);
    run_with_stdin(&mut cmd, stdin)
}

/// A message from and to the OAuth user whose Message-ID holds `id`.
fn message(oauth: &OAuth, id: &str) -> Vec<u8> {
    format!(
        "From: <{u}>\r\nTo: <{u}>\r\nSubject: oauth {id}\r\nMessage-ID: <{id}@oauth.test>\r\n\
         Date: Mon, 30 Nov 2026 02:00:00 +0000\r\n\r\nsent with a token\r\n",
        u = oauth.user
    )
    .into_bytes()
}

/// The tool's own lines on stderr (not the transcript's).
fn own_lines(tool: Tool, stderr: &str) -> Vec<&str> {
    let prefix = format!("{}: ", tool.name());
    stderr.lines().filter(|l| l.starts_with(&prefix)).collect()
}

/// How many times the transcript shows the client starting `mechanism`.
fn attempts(tool: Tool, stderr: &str, mechanism: &str) -> usize {
    let command = match tool {
        Tool::ImapDump => format!(" AUTHENTICATE {mechanism} "),
        _ => format!("C: AUTH {mechanism} "),
    };
    stderr.lines().filter(|l| l.contains(&command)).count()
}

fn assert_no_token(out: &Output, oauth: &OAuth) {
    for token in [&oauth.valid, &oauth.expired, &oauth.revoked] {
        assert!(
            !contains(&out.stdout, token.as_bytes()),
            "a token on stdout"
        );
        assert!(
            !contains(&out.stderr, token.as_bytes()),
            "a token on stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// For `tool` and each mechanism: valid, expired-then-valid, revoked.
/// `args` makes the tool do its job (read INBOX, send `message`);
/// `arrived` checks the job was done: the message read, or delivered.
fn three_tokens(
    tool: Tool,
    args: &[&str],
    job: impl Fn(&OAuth, &str) -> (Vec<u8>, Box<dyn Fn(&Output)>),
) {
    let oauth = OAuth::get();
    for (flag, mechanism) in MECHANISMS {
        let mut with_mechanism = vec!["--oauth-mechanism", flag];
        with_mechanism.extend_from_slice(args);
        let cases: [(&str, Vec<&str>, i32, usize); 3] = [
            ("valid", vec![&oauth.valid], 0, 1),
            ("expired", vec![&oauth.expired, &oauth.valid], 0, 2),
            ("revoked", vec![&oauth.revoked], 77, 2),
        ];
        for (name, tokens, code, runs) in cases {
            let id = unique(&format!("{}-{flag}-{name}", tool.name()));
            let (stdin, arrived) = job(&oauth, &id);
            let tokens = TokenCommand::new(&tokens);
            let out = run(tool, &tokens, &with_mechanism, &stdin);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let what = format!("{} {mechanism} with the {name} token", tool.name());
            assert_eq!(out.status.code(), Some(code), "{what}: {stderr}");
            assert_eq!(tokens.runs(), runs, "{what}: token command runs: {stderr}");
            assert_eq!(attempts(tool, &stderr, mechanism), runs, "{what}: {stderr}");
            assert_no_token(&out, &oauth);
            if code == 0 {
                arrived(&out);
                assert!(own_lines(tool, &stderr).is_empty(), "{what}: {stderr}");
            } else {
                let lines = own_lines(tool, &stderr);
                assert_eq!(lines.len(), 1, "{what}: one error line: {stderr}");
                // The server's words: its final refusal (Dovecot's, or
                // Postfix's passing on Dovecot's) and the status in its
                // JSON error challenge.
                assert!(
                    lines[0]
                        .to_ascii_lowercase()
                        .contains("authentication failed")
                        && lines[0].contains("fresh token")
                        && (lines[0].contains("status invalid_token")
                            || lines[0].contains("status 401")),
                    "{what}: {stderr}"
                );
                assert!(out.stdout.is_empty() || tool == Tool::SmtpSend, "{what}");
            }
        }
    }
}

/// `three_tokens` for a tool that reads the OAuth user's INBOX with `args`:
/// each run must dump the message saved there just before.
fn reads_the_inbox(tool: Tool, args: &[&str]) {
    let stack = Stack::get();
    three_tokens(tool, args, |oauth, id| {
        stack.save(&oauth.user, "INBOX", &message(oauth, id));
        let needle = format!("<{id}@oauth.test>");
        (
            Vec::new(),
            Box::new(move |out: &Output| {
                assert!(
                    contains(&out.stdout, needle.as_bytes()),
                    "{needle} not dumped"
                );
            }),
        )
    });
}

#[test]
fn imap_dump_reads_the_mailbox_with_each_token() {
    reads_the_inbox(Tool::ImapDump, &["-m", "INBOX"]);
}

#[test]
fn pop3_dump_reads_the_maildrop_with_each_token() {
    reads_the_inbox(Tool::Pop3Dump, &[]);
}

#[test]
fn smtp_send_delivers_with_each_token() {
    let stack = Stack::get();
    let oauth = OAuth::get();
    let recipient = oauth.user.clone();
    three_tokens(Tool::SmtpSend, &[&recipient], |oauth, id| {
        let stack = stack.clone();
        let user = oauth.user.clone();
        let id = id.to_string();
        (
            message(oauth, &id),
            Box::new(move |_: &Output| {
                let found = stack.wait_for(&user, &id, 1);
                assert_eq!(found.len(), 1, "{id} not delivered");
            }),
        )
    });
    // Nothing from the revoked runs arrived.
    for (flag, _) in MECHANISMS {
        let id = unique(&format!("smtp-send-{flag}-revoked"));
        let tokens = TokenCommand::new(&[&oauth.revoked]);
        let out = run(
            Tool::SmtpSend,
            &tokens,
            &["--oauth-mechanism", flag, &recipient],
            &message(&oauth, &id),
        );
        assert_eq!(out.status.code(), Some(77));
        stack.assert_nothing_delivered(&oauth.user, &id);
    }
}

/// Without --oauth-mechanism each tool takes OAUTHBEARER, which Dovecot and
/// Postfix offer beside XOAUTH2.
#[test]
fn oauthbearer_is_chosen_when_offered() {
    let oauth = OAuth::get();
    for (tool, args) in [
        (Tool::ImapDump, &["--list"][..]),
        (Tool::Pop3Dump, &["--list"][..]),
        (Tool::SmtpSend, &["--check"][..]),
    ] {
        let tokens = TokenCommand::new(&[&oauth.valid]);
        let out = run(tool, &tokens, args, b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}: {stderr}", tool.name());
        assert_eq!(attempts(tool, &stderr, "OAUTHBEARER"), 1, "{stderr}");
        assert_eq!(attempts(tool, &stderr, "XOAUTH2"), 0, "{stderr}");
    }
}

/// Dovecot lists SASL-IR: imap-dump puts the first response on the
/// AUTHENTICATE line (no `+` round trip); --no-sasl-ir waits for the `+`.
#[test]
fn imap_dump_uses_sasl_ir_where_listed_and_not_with_no_sasl_ir() {
    let oauth = OAuth::get();
    let tokens = TokenCommand::new(&[&oauth.valid]);
    let out = run(Tool::ImapDump, &tokens, &["--list"], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let auth = lines
        .iter()
        .position(|l| l.starts_with("C: ") && l.contains(" AUTHENTICATE OAUTHBEARER <redacted>"))
        .unwrap_or_else(|| panic!("no AUTHENTICATE with an initial response:\n{stderr}"));
    assert!(lines[auth + 1].contains(" OK "), "{stderr}");
    assert!(!stderr.contains("\nS: +"), "{stderr}");

    let out = run(Tool::ImapDump, &tokens, &["--list", "--no-sasl-ir"], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let auth = lines
        .iter()
        .position(|l| l.starts_with("C: ") && l.ends_with(" AUTHENTICATE OAUTHBEARER"))
        .unwrap_or_else(|| panic!("no AUTHENTICATE without an initial response:\n{stderr}"));
    assert!(lines[auth + 1].starts_with("S: +"), "{stderr}");
    assert_eq!(lines[auth + 2], "C: <redacted>", "{stderr}");
    assert!(lines[auth + 3].contains(" OK "), "{stderr}");
}
