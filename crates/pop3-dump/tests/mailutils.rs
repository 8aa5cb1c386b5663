//! A GNU Mailutils pop3d quirk that `scripts/interop` found against the real
//! server (3.15, Debian 12), replayed by a scripted peer: a client that hangs
//! up after a refused login is logged as an I/O error ("Read failed"), so
//! pop3-dump says QUIT (RFC 1939 allows it before login) and then leaves.

use mailpipe_e2e::peer::scripted_peer;
use mailpipe_e2e::Tool;

#[test]
fn a_refused_login_quits() {
    // Mailutils pop3d's words, CAPA as it lists it.
    let (port, log) = scripted_peer(|peer| {
        if !peer.send(b"+OK POP3 Ready <24390.1796005307@vm>\r\n") {
            return;
        }
        while let Some(command) = peer.command() {
            let upper = command.to_ascii_uppercase();
            let reply: &[u8] = if upper == "CAPA" {
                b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n\
                  AUTH-RESP-CODE\r\nEXPIRE NEVER\r\nUSER\r\n.\r\n"
            } else if upper.starts_with("PASS ") {
                b"-ERR [AUTH] Bad login\r\n"
            } else {
                b"+OK\r\n"
            };
            if !peer.send(reply) || upper == "QUIT" {
                break;
            }
        }
    });
    let out = Tool::Pop3Dump
        .command()
        .arg("--server")
        .arg(format!("pop3://127.0.0.1:{port}"))
        .args([
            "--user",
            "alice@example.test",
            "--tls",
            "none",
            "--allow-plaintext-auth",
            "--timeout",
            "20",
        ])
        .env("POP3_PASSWORD", "wrong-password")
        .output()
        .expect("pop3-dump runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("[AUTH] Bad login"), "{stderr}");
    assert!(!stderr.contains("wrong-password"), "{stderr}");
    assert!(out.stdout.is_empty());
    let seen = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen.last().map(String::as_str), Some("QUIT"), "{seen:?}");
}
