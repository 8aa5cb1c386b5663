//! Provider quirks. IMAP ID against the real Dovecot of `scripts/mailstack`
//! (which offers ID); NetEase 163/126 and Coremail through scripted peers,
//! since no real server refuses mailboxes without ID or advertises SASL-IR
//! and rejects it: "NO SELECT Unsafe Login" unless ID came first, BAD to an
//! AUTHENTICATE with an initial response (tests/oauth.rs shows SASL-IR
//! taken by the stack's Dovecot).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

use mailpipe_e2e::peer::{scripted_peer, Log, Peer};
use mailpipe_e2e::{Stack, Tool};

/// The ID imap-dump sends, without its tag: name and version, nothing else.
const OUR_ID: &str = concat!(
    "ID (\"name\" \"mailpipe\" \"version\" \"",
    env!("CARGO_PKG_VERSION"),
    "\")"
);

/// NetEase's words when a client opens a mailbox without having sent ID.
const UNSAFE: &str = "SELECT Unsafe Login. Please contact kefu@188.com for help";

/// The one message the peers hold.
const MESSAGE: &str = "From: 张三 <zhangsan@163.com>\r\nTo: li@126.com\r\n\
                       Subject: 163 quirks\r\nDate: Mon, 23 Nov 2026 12:00:00 +0800\r\n\
                       Message-ID: <quirks@163.test>\r\n\r\nhello from NetEase\r\n";

/// How a scripted NetEase/Coremail peer behaves.
#[derive(Clone, Copy)]
struct Quirks {
    /// CAPABILITY lists ID (163 does).
    lists_id: bool,
    /// EXAMINE is refused with `UNSAFE` until ID was sent (163 does).
    wants_id: bool,
    /// ID is answered with BAD (some servers do).
    refuses_id: bool,
}

const NETEASE: Quirks = Quirks {
    lists_id: true,
    wants_id: true,
    refuses_id: false,
};

/// A plaintext Coremail-style IMAP peer: no capabilities in the greeting,
/// SASL-IR advertised but an AUTHENTICATE with an initial response is BAD,
/// then one message in INBOX. Returns its port and the lines it received.
fn coremail_peer(quirks: Quirks) -> (u16, Log) {
    scripted_peer(move |peer| {
        if !peer.send(b"* OK Coremail System IMap Server Ready(NetEase)\r\n") {
            return;
        }
        let mut id_seen = false;
        while let Some(line) = peer.command() {
            let (tag, command) = line.split_once(' ').unwrap_or(("*", ""));
            let upper = command.to_ascii_uppercase();
            let reply = if upper.starts_with("CAPABILITY") {
                let id = if quirks.lists_id { " ID" } else { "" };
                format!(
                    "* CAPABILITY IMAP4rev1 XLIST SPECIAL-USE{id} LITERAL+ UIDPLUS SASL-IR \
                     AUTH=PLAIN AUTH=XOAUTH2\r\n{tag} OK CAPABILITY completed\r\n"
                )
            } else if upper.starts_with("AUTHENTICATE") {
                authenticate(peer, tag, &upper)
            } else if upper.starts_with("ID ") {
                if quirks.refuses_id {
                    format!("{tag} BAD command not supported\r\n")
                } else {
                    id_seen = true;
                    format!(
                        "* ID (\"name\" \"Coremail Imap\" \"vendor\" \"Coremail\")\r\n\
                         {tag} OK ID completed\r\n"
                    )
                }
            } else if upper.starts_with("EXAMINE") || upper.starts_with("SELECT") {
                if quirks.wants_id && !id_seen {
                    format!("{tag} NO {UNSAFE}\r\n")
                } else {
                    format!(
                        "* 1 EXISTS\r\n* OK [UIDVALIDITY 1600000000] v\r\n* OK [UIDNEXT 2] n\r\n\
                         {tag} OK [READ-ONLY] EXAMINE completed\r\n"
                    )
                }
            } else if upper.starts_with("UID SEARCH") {
                format!("* SEARCH 1\r\n{tag} OK SEARCH completed\r\n")
            } else if upper.starts_with("UID FETCH") && upper.contains("BODY.PEEK[]") {
                format!(
                    "* 1 FETCH (UID 1 INTERNALDATE \"23-Nov-2026 12:00:00 +0800\" BODY[] {{{}}}\r\n\
                     {MESSAGE})\r\n{tag} OK FETCH completed\r\n",
                    MESSAGE.len()
                )
            } else if upper.starts_with("UID FETCH") {
                format!(
                    "* 1 FETCH (UID 1 RFC822.SIZE {})\r\n{tag} OK FETCH completed\r\n",
                    MESSAGE.len()
                )
            } else if upper.starts_with("LOGOUT") {
                format!("* BYE Coremail\r\n{tag} OK LOGOUT completed\r\n")
            } else {
                format!("{tag} OK completed\r\n")
            };
            if !peer.send(reply.as_bytes()) || upper.starts_with("LOGOUT") {
                break;
            }
        }
    })
}

/// Coremail's AUTHENTICATE: BAD with an initial response (it advertises
/// SASL-IR all the same), else `+` and the credentials on the next line.
fn authenticate(peer: &mut Peer, tag: &str, upper: &str) -> String {
    if upper.split_ascii_whitespace().count() > 2 {
        return format!("{tag} BAD Request not ending with CRLF\r\n");
    }
    if !peer.send(b"+ \r\n") {
        return String::new();
    }
    match peer.command() {
        Some(credentials) if !credentials.is_empty() && credentials != "*" => {
            format!("{tag} OK AUTHENTICATE completed\r\n")
        }
        _ => format!("{tag} NO AUTHENTICATE failed\r\n"),
    }
}

/// imap-dump against a peer on `port`: plaintext on loopback, the password
/// in `$IMAP_PASSWORD`, INBOX through one connection.
fn dump(port: u16, password: &str, args: &[&str]) -> Output {
    dump_with(port, password, args, |_| {})
}

/// `dump`, with `configure` adding to the command (an accounts file).
fn dump_with(
    port: u16,
    password: &str,
    args: &[&str],
    configure: impl FnOnce(&mut Command),
) -> Output {
    let mut cmd = Tool::ImapDump.command();
    cmd.arg("--server")
        .arg(format!("imap://127.0.0.1:{port}"))
        .args([
            "--user",
            "zhangsan@163.com",
            "--tls",
            "none",
            "--allow-plaintext-auth",
            "--connections",
            "1",
            "-q",
            "--timeout",
            "20",
        ])
        .args(args)
        .env("IMAP_PASSWORD", password);
    configure(&mut cmd);
    cmd.output().expect("imap-dump runs")
}

fn received(log: &Log) -> Vec<String> {
    log.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The received lines without their tags.
fn commands(log: &Log) -> Vec<String> {
    received(log)
        .iter()
        .map(|l| l.split_once(' ').map_or(l.as_str(), |(_, c)| c).to_string())
        .collect()
}

fn position(commands: &[String], prefix: &str) -> Option<usize> {
    commands.iter().position(|c| c.starts_with(prefix))
}

#[test]
fn netease_163_mailbox_opens_with_the_default_flags() {
    let (port, log) = coremail_peer(NETEASE);
    let out = dump(port, "authcode", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let mbox = String::from_utf8_lossy(&out.stdout);
    assert!(mbox.starts_with("From zhangsan@163.com "), "{mbox}");
    assert!(mbox.contains("Subject: 163 quirks\r\n"), "{mbox}");
    assert!(mbox.contains("hello from NetEase"), "{mbox}");
    // Our ID, exactly (no OS, host or user in it), after login, before EXAMINE.
    let seen = commands(&log);
    let login = position(&seen, "LOGIN ").expect("LOGIN");
    let id = position(&seen, "ID ").expect("ID sent");
    let examine = position(&seen, "EXAMINE ").expect("EXAMINE");
    assert_eq!(seen[id], OUR_ID);
    assert!(login < id && id < examine, "{seen:?}");
}

#[test]
fn netease_163_with_no_id_fails_with_the_servers_words() {
    let (port, log) = coremail_peer(NETEASE);
    let out = dump(port, "authcode", &["--no-id"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(UNSAFE), "{stderr}");
    assert!(stderr.contains("\"INBOX\""), "{stderr}");
    assert!(stderr.contains("--no-id"), "{stderr}");
    assert!(!stderr.contains("authcode"), "{stderr}");
    assert!(out.stdout.is_empty());
    let seen = commands(&log);
    assert_eq!(position(&seen, "ID "), None, "{seen:?}");
    // Still a clean end.
    assert!(position(&seen, "LOGOUT").is_some(), "{seen:?}");
}

#[test]
fn a_server_that_wants_id_without_listing_it_gets_it_with_dash_dash_id() {
    let quirks = Quirks {
        lists_id: false,
        ..NETEASE
    };
    let (port, log) = coremail_peer(quirks);
    let out = dump(port, "authcode", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(UNSAFE) && stderr.contains("try --id"),
        "{stderr}"
    );
    let seen = commands(&log);
    assert_eq!(position(&seen, "ID "), None);
    // COMPRESS and ID share one CAPABILITY when LOGIN's reply lists none.
    let asked = seen.iter().filter(|c| c.as_str() == "CAPABILITY").count();
    assert_eq!(asked, 1, "{seen:?}");

    // Without COMPRESS, which asks for the capabilities on its own account.
    let (port, log) = coremail_peer(quirks);
    let out = dump(port, "authcode", &["--id", "--no-compress"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello from NetEase"));
    let seen = commands(&log);
    // --id asks no CAPABILITY: it sends ID regardless.
    assert_eq!(position(&seen, "CAPABILITY"), None, "{seen:?}");
    assert!(position(&seen, "ID ").is_some(), "{seen:?}");
}

#[test]
fn a_refused_id_is_not_fatal_and_warned_about_only_under_v() {
    let quirks = Quirks {
        wants_id: false,
        refuses_id: true,
        ..NETEASE
    };
    let (port, _log) = coremail_peer(quirks);
    let out = dump(port, "authcode", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello from NetEase"));

    let (port, _log) = coremail_peer(quirks);
    let out = dump(port, "authcode", &["-v"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("imap-dump: warning"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("refused ID") && warnings[0].contains("BAD command not supported"),
        "{stderr}"
    );
}

/// Coremail advertises SASL-IR and answers BAD to an initial response.
/// imap-dump sends one where SASL-IR is listed (AUTHENTICATE PLAIN for a
/// non-ASCII password, XOAUTH2 for a token): against Coremail that fails
/// with one line naming --no-sasl-ir, with which it waits for the `+` and
/// passes; the account key sasl_ir = false does the same.
#[test]
fn coremail_rejects_sasl_ir_and_passes_with_no_sasl_ir() {
    // Only the SASL-IR quirk: whether ID is needed is the tests' above.
    let coremail = Quirks {
        wants_id: false,
        ..NETEASE
    };
    // The peer does refuse an initial response, as Coremail does.
    let (port, _log) = coremail_peer(coremail);
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut reader = BufReader::new(socket.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("greeting");
    socket
        .write_all(b"a1 AUTHENTICATE PLAIN AHpoYW5nc2FuAHB3\r\n")
        .expect("send");
    line.clear();
    reader.read_line(&mut line).expect("reply");
    assert!(line.starts_with("a1 BAD "), "{line}");
    drop(socket);

    let password = "授权码-pässwörd";
    let token = ["--oauth-token-command", "echo token-1"];
    for (mechanism, extra) in [("PLAIN", &[][..]), ("XOAUTH2", &token[..])] {
        // The default flags: the initial response, refused; what to do.
        let (port, log) = coremail_peer(coremail);
        let out = dump(port, password, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(77), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("SASL-IR") && stderr.contains("--no-sasl-ir"),
            "{stderr}"
        );
        assert!(
            !stderr.contains(password) && !stderr.contains("token-1"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
        let seen = commands(&log);
        let auth = position(&seen, "AUTHENTICATE").expect("AUTHENTICATE");
        assert!(
            seen[auth].starts_with(&format!("AUTHENTICATE {mechanism} ")),
            "{seen:?}"
        );

        // --no-sasl-ir: AUTHENTICATE alone, the credentials after the `+`.
        let (port, log) = coremail_peer(coremail);
        let mut args = extra.to_vec();
        args.push("--no-sasl-ir");
        let out = dump(port, password, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{mechanism}: {stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("hello from NetEase"));
        let seen = commands(&log);
        let auth = position(&seen, "AUTHENTICATE").expect("AUTHENTICATE");
        assert_eq!(seen[auth], format!("AUTHENTICATE {mechanism}"), "{seen:?}");
    }

    // The account key.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("accounts.toml");
    std::fs::write(&config, "[accounts.coremail]\nsasl_ir = false\n").expect("accounts file");
    let (port, log) = coremail_peer(coremail);
    let out = dump_with(port, password, &["--account", "coremail"], |cmd| {
        cmd.env("MAILPIPE_CONFIG", &config);
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let seen = commands(&log);
    let auth = position(&seen, "AUTHENTICATE").expect("AUTHENTICATE");
    assert_eq!(seen[auth], "AUTHENTICATE PLAIN", "{seen:?}");
}

/// imap-dump -v --list against the stack's Dovecot as alice, with `args`.
fn dovecot(stack: &Stack, args: &[&str], configure: impl FnOnce(&mut Command)) -> Output {
    let url = stack.url("imaps", stack.imaps_port);
    let mut cmd = stack.login(Tool::ImapDump, &url, &stack.user1, &stack.pass1);
    cmd.args(["--list", "-v", "--timeout", "20"]).args(args);
    configure(&mut cmd);
    cmd.output().expect("imap-dump runs")
}

#[test]
fn dovecot_transcript_shows_the_id_exchange() {
    let stack = Stack::get();
    let out = dovecot(&stack, &[], |_| {});
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let sent = lines
        .iter()
        .position(|l| l.starts_with("C: ") && l.ends_with(&format!(" {OUR_ID}")))
        .unwrap_or_else(|| panic!("no ID sent:\n{stderr}"));
    let tag = lines[sent].split(' ').nth(1).expect("a tag").to_string();
    let answer = &lines[sent + 1..];
    assert!(answer[0].starts_with("S: * ID ("), "{stderr}");
    assert!(
        answer
            .iter()
            .any(|l| l.starts_with(&format!("S: {tag} OK"))),
        "{stderr}"
    );
    // Dovecot lists ID in its greeting: no extra CAPABILITY round trip.
    assert!(!stderr.contains(" CAPABILITY\n"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == "INBOX"));

    let out = dovecot(&stack, &["--no-id"], |_| {});
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(" ID ("), "{stderr}");
}

#[test]
fn the_account_key_imap_id_is_read_and_checked() {
    let stack = Stack::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("accounts.toml");
    let write = |value: &str| {
        std::fs::write(&config, format!("[accounts.dove]\nimap_id = \"{value}\"\n"))
            .expect("accounts file");
    };
    let with_account = |cmd: &mut Command| {
        cmd.args(["--account", "dove"])
            .env("MAILPIPE_CONFIG", &config);
    };

    write("never");
    let out = dovecot(&stack, &[], with_account);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(" ID ("), "{stderr}");
    // The flag beats the account.
    let out = dovecot(&stack, &["--id"], with_account);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(OUR_ID), "{stderr}");

    write("sometimes");
    let out = dovecot(&stack, &[], with_account);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("imap_id") && stderr.contains("sometimes"),
        "{stderr}"
    );
}
