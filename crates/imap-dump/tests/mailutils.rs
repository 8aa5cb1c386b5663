//! GNU Mailutils imap4d quirks that `scripts/interop` found against the real
//! server (3.15, Debian 12), replayed by a scripted peer so that they are
//! checked where Mailutils is not installed: the tagged reply to
//! AUTHENTICATE ends in a bare LF, ID is answered OK with no `* ID`, and a
//! client that hangs up after a refused login is logged as an I/O error.

use std::process::Output;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use mailpipe_e2e::peer::{scripted_peer, Log};
use mailpipe_e2e::Tool;

/// A message with CRLF line ends, 8-bit UTF-8 and a line that mbox quotes.
const MESSAGE: &str = "From: 张三 <zhangsan@example.test>\r\nTo: alice@example.test\r\n\
                       Subject: mailutils\r\nDate: Mon, 2 Nov 2026 10:00:00 +0800\r\n\r\n\
                       From here on, 中文.\r\n";

/// The password the peer accepts.
const PASSWORD: &str = "alice-s3cret-密码";

/// A plaintext peer answering as Mailutils imap4d 3.15 does, word for word
/// where it matters: `a1 OK AUTHENTICATE PLAIN authentication successful\n`.
fn mailutils_peer() -> (u16, Log) {
    scripted_peer(|peer| {
        if !peer.send(b"* OK IMAP4rev1\r\n") {
            return;
        }
        while let Some(line) = peer.command() {
            let (tag, command) = line.split_once(' ').unwrap_or(("*", ""));
            let upper = command.to_ascii_uppercase();
            let reply = if upper.starts_with("CAPABILITY") {
                format!(
                    "* CAPABILITY IMAP4rev1 NAMESPACE ID IDLE LITERAL+ UNSELECT AUTH=PLAIN\r\n\
                     {tag} OK CAPABILITY Completed\r\n"
                )
            } else if upper.starts_with("AUTHENTICATE PLAIN") {
                if !peer.send(b"+ \r\n") {
                    break;
                }
                let Some(response) = peer.command() else {
                    break;
                };
                let plain = format!("\0alice@example.test\0{PASSWORD}");
                if response == BASE64.encode(plain) {
                    // The bare LF: imap4d writes this one reply with "\n".
                    format!("{tag} OK AUTHENTICATE PLAIN authentication successful\n")
                } else {
                    format!("{tag} NO AUTHENTICATE PLAIN authentication failed\r\n")
                }
            } else if upper.starts_with("ID ") {
                format!("{tag} OK ID Completed\r\n")
            } else if upper.starts_with("EXAMINE") {
                format!(
                    "* 1 EXISTS\r\n* 1 RECENT\r\n* OK [UIDVALIDITY 1796003760] UID validity status\r\n\
                     * OK [UIDNEXT 2] Predicted next uid\r\n\
                     {tag} OK [READ-ONLY] EXAMINE Completed\r\n"
                )
            } else if upper.starts_with("UID SEARCH") {
                format!("* SEARCH 1\r\n{tag} OK SEARCH Completed\r\n")
            } else if upper.starts_with("UID FETCH") && upper.contains("BODY.PEEK[]") {
                format!(
                    "* 1 FETCH (UID 1 INTERNALDATE \"02-Nov-2026 10:00:00 +0800\" BODY[] {{{}}}\r\n\
                     {MESSAGE})\r\n{tag} OK FETCH Completed\r\n",
                    MESSAGE.len()
                )
            } else if upper.starts_with("UID FETCH") {
                format!(
                    "* 1 FETCH (UID 1 RFC822.SIZE {})\r\n{tag} OK FETCH Completed\r\n",
                    MESSAGE.len()
                )
            } else if upper.starts_with("LOGOUT") {
                format!("* BYE Session terminating.\r\n{tag} OK LOGOUT Completed\r\n")
            } else {
                format!("{tag} OK Completed\r\n")
            };
            if !peer.send(reply.as_bytes()) || upper.starts_with("LOGOUT") {
                break;
            }
        }
    })
}

fn dump(port: u16, password: &str) -> Output {
    Tool::ImapDump
        .command()
        .arg("--server")
        .arg(format!("imap://127.0.0.1:{port}"))
        .args([
            "--user",
            "alice@example.test",
            "--tls",
            "none",
            "--allow-plaintext-auth",
            "--connections",
            "1",
            "-q",
            "--timeout",
            "20",
        ])
        .env("IMAP_PASSWORD", password)
        .output()
        .expect("imap-dump runs")
}

#[test]
fn a_bare_lf_after_authenticate_still_logs_in() {
    let (port, log) = mailutils_peer();
    // Not ASCII: imap-dump logs in with AUTHENTICATE PLAIN, not LOGIN.
    let out = dump(port, PASSWORD);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let seen = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        seen.iter().any(|l| l.ends_with("AUTHENTICATE PLAIN")),
        "{seen:?}"
    );
    let mboxes = mailpipe_e2e::mail::mbox_data(&out.stdout);
    assert_eq!(mboxes.len(), 1, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(mboxes[0], MESSAGE.as_bytes());
}

#[test]
fn a_refused_login_logs_out() {
    let (port, log) = mailutils_peer();
    let out = dump(port, "wrong-密码");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(!stderr.contains("wrong"), "{stderr}");
    assert!(out.stdout.is_empty());
    // The server sees a LOGOUT, not a dropped connection (Mailutils logs
    // that as "read error on control stream", an I/O error).
    let seen = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        seen.last().is_some_and(|l| l.ends_with(" LOGOUT")),
        "{seen:?}"
    );
}
