//! Secrets never shown: smtp-send, imap-dump and pop3-dump with `-v` against
//! the real stack, for both users (an ASCII and a UTF-8 password), with a
//! failing and a succeeding login, the password from the environment and from
//! --password-command. The password, and its base64 forms (SASL PLAIN
//! `\0user\0pass`, LOGIN's base64 of the password alone, padded or not),
//! must appear nowhere in stdout or stderr, nor in the argv of the tool or of
//! any process it starts (read from /proc while it runs: the tool goes
//! through a proxy that slows every chunk down, so that it lives long enough).
//! The same for OAuth 2 tokens (XOAUTH2 and OAUTHBEARER, a token the stack's
//! Dovecot takes and one it refuses twice, the refresh included), from a
//! token command.
//!
//! Related checks in the tools' own tests: crates/smtp-send/tests/stack.rs
//! `transcript_never_shows_the_password` (successful logins, environment),
//! crates/pop3-dump/tests/cli.rs `wrong_password_is_77_and_nothing_secret_is_shown`,
//! crates/imap-dump/tests/cli.rs `verbose_shows_the_dialogue_without_secrets_or_bodies`.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use mailpipe_e2e::fault_proxy::{Fault, FaultProxy};
use mailpipe_e2e::mail::contains;
use mailpipe_e2e::oauth::{OAuth, TokenCommand};
use mailpipe_e2e::{run_bounded, Stack, Tool};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Every form of `pass` (as `user`) that must never be shown.
fn forbidden(user: &str, pass: &str) -> Vec<Vec<u8>> {
    let plain = format!("\0{user}\0{pass}");
    let mut forms = vec![
        pass.as_bytes().to_vec(),
        b64(pass.as_bytes()).into_bytes(),
        b64(pass.as_bytes())
            .trim_end_matches('=')
            .as_bytes()
            .to_vec(),
        b64(plain.as_bytes()).into_bytes(),
        b64(plain.as_bytes())
            .trim_end_matches('=')
            .as_bytes()
            .to_vec(),
        b64(format!("{user}\0{user}\0{pass}").as_bytes()).into_bytes(),
    ];
    // XOAUTH2's and OAUTHBEARER's messages with the secret as the token.
    for sasl in [
        format!("user={user}\x01auth=Bearer {pass}\x01\x01"),
        format!("n,a={user},\x01auth=Bearer {pass}\x01\x01"),
    ] {
        forms.push(
            b64(sasl.as_bytes())
                .trim_end_matches('=')
                .as_bytes()
                .to_vec(),
        );
    }
    // The password as IMAP would quote it, and its Debug form.
    forms.push(format!("{pass:?}").into_bytes());
    forms
}

/// The pids of `root` and all its descendants, from /proc.
fn process_tree(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        {
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

struct Seen {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Every argv seen in the tool's process tree while it ran.
    argvs: BTreeSet<Vec<u8>>,
}

/// Runs `cmd`, sampling the argv of it and its descendants until it ends.
fn run_watching(cmd: &mut Command) -> Seen {
    let mut argvs = BTreeSet::new();
    let finished = run_bounded(cmd, b"", Duration::from_secs(60), |root| {
        for pid in process_tree(root) {
            if let Ok(argv) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                if !argv.is_empty() {
                    argvs.insert(argv);
                }
            }
        }
    });
    Seen {
        code: finished.code,
        stdout: finished.stdout,
        stderr: finished.stderr.into_bytes(),
        argvs,
    }
}

/// How the password reaches the tool.
#[derive(Debug, Clone, Copy)]
enum Source {
    Env,
    Command,
    /// An OAuth token from --oauth-token-command.
    Token,
}

fn unique() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Runs `tool` with `-v` through a slow proxy to its implicit-TLS port,
/// logging in as `user` with `pass` from `source`; checks nothing secret is
/// shown and returns the exit status.
fn check(tool: Tool, user: &str, pass: &str, source: Source, extra: &[&str]) -> i32 {
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("tempdir");
    // Slow enough that the process lives a second or so, to be watched.
    let proxy = FaultProxy::start(
        stack.tls_port(tool),
        Fault::delay(Duration::from_millis(40)),
    );
    let scheme = tool.schemes().1;
    let mut cmd = stack.client(tool, &stack.url(scheme, proxy.port()), user);
    cmd.env("HOME", dir.path())
        .args(["-v", "--timeout", "20"])
        .args(extra);
    let mut token_command = None;
    match source {
        Source::Env => {
            cmd.env(tool.password_env(), pass);
        }
        Source::Command => {
            let file = dir.path().join("pw");
            std::fs::write(&file, format!("{pass}\n")).expect("password file");
            // The sleep keeps the command alive long enough to be watched.
            cmd.arg("--password-command")
                .arg(format!("sleep 0.2; cat '{}'", file.display()));
        }
        Source::Token => {
            let tokens = TokenCommand::with_prefix("sleep 0.2; ", &[pass]);
            cmd.arg("--oauth-token-command").arg(&tokens.command);
            token_command = Some(tokens);
        }
    }
    let argv: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let forms = forbidden(user, pass);
    for f in &forms {
        assert!(
            !contains(argv.join("\0").as_bytes(), f),
            "the test itself put a secret in argv: {argv:?}"
        );
    }
    let seen = run_watching(&mut cmd);
    drop(proxy);
    drop(token_command);
    let stderr = String::from_utf8_lossy(&seen.stderr);
    let what = format!("{} {scheme} as {user} ({source:?}, {extra:?})", tool.name());
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert!(
        stderr.contains("<redacted>"),
        "{what}: -v shows the login, redacted: {stderr}"
    );
    for f in &forms {
        let shown = String::from_utf8_lossy(f);
        assert!(
            !contains(&seen.stderr, f),
            "{what}: stderr shows {shown:?}: {stderr}"
        );
        assert!(!contains(&seen.stdout, f), "{what}: stdout shows {shown:?}");
        for a in &seen.argvs {
            assert!(
                !contains(a, f),
                "{what}: a process's argv shows {shown:?}: {:?}",
                String::from_utf8_lossy(a)
            );
        }
    }
    assert!(
        seen.argvs.iter().any(|a| contains(a, b"-v")),
        "{what}: the tool's own argv was read while it ran"
    );
    let command: Option<&[u8]> = match source {
        Source::Env => None,
        Source::Command => Some(b"sleep 0.2; cat '"),
        Source::Token => Some(b"sleep 0.2; n=$("),
    };
    if let Some(command) = command {
        // The secret's command ran in the tool's process tree and was watched.
        assert!(
            seen.argvs.iter().any(|a| contains(a, command)),
            "{what}: the password or token command was not seen in /proc: {:?}",
            seen.argvs
        );
    }
    seen.code.unwrap_or(-1)
}

fn wrong(pass: &str) -> String {
    format!("{pass}-Wr0ng-{}", unique() % 1_000_000)
}

/// Both users (an ASCII and a UTF-8 password), both password sources, each
/// of the tool's ways to log in: a login that works is 0, a wrong password
/// 77, and neither shows the password.
fn never_shows_a_password(tool: Tool) {
    let stack = Stack::get();
    // smtp-send: both SASL mechanisms it sends a password with.
    let logins: &[&[&str]] = match tool {
        Tool::SmtpSend => &[
            &["--check", "--auth", "plain"],
            &["--check", "--auth", "login"],
        ],
        _ => &[&["--list"]],
    };
    for (user, pass) in [(&stack.user1, &stack.pass1), (&stack.user2, &stack.pass2)] {
        for source in [Source::Env, Source::Command] {
            for extra in logins {
                let code = check(tool, user, pass, source, extra);
                assert_eq!(code, 0, "{user} {extra:?} {source:?}");
                let code = check(tool, user, &wrong(pass), source, extra);
                assert_eq!(
                    code, 77,
                    "{user} {extra:?} {source:?} with a wrong password"
                );
            }
        }
    }
}

#[test]
fn smtp_send_never_shows_a_password() {
    never_shows_a_password(Tool::SmtpSend);
}

#[test]
fn imap_dump_never_shows_a_password() {
    never_shows_a_password(Tool::ImapDump);
}

#[test]
fn pop3_dump_never_shows_a_password() {
    never_shows_a_password(Tool::Pop3Dump);
}

/// Each tool with an OAuth token, by each mechanism: a token the server
/// takes is 0, a revoked one (refused, the command run again, refused) 77,
/// and neither the token nor its SASL forms are shown anywhere.
fn never_shows_a_token(tool: Tool) {
    let oauth = OAuth::get();
    let job = match tool {
        Tool::SmtpSend => "--check",
        _ => "--list",
    };
    for mechanism in ["xoauth2", "oauthbearer"] {
        let extra = ["--oauth-mechanism", mechanism, job];
        let code = check(tool, &oauth.user, &oauth.valid, Source::Token, &extra);
        assert_eq!(code, 0, "{mechanism} with a valid token");
        let code = check(tool, &oauth.user, &oauth.revoked, Source::Token, &extra);
        assert_eq!(code, 77, "{mechanism} with a revoked token");
    }
}

#[test]
fn smtp_send_never_shows_a_token() {
    never_shows_a_token(Tool::SmtpSend);
}

#[test]
fn imap_dump_never_shows_a_token() {
    never_shows_a_token(Tool::ImapDump);
}

#[test]
fn pop3_dump_never_shows_a_token() {
    never_shows_a_token(Tool::Pop3Dump);
}
