//! Provider quirks through scripted peers, for what the stack's Dovecot does
//! not do: Microsoft's POP3 lists no XOAUTH2 in CAPA and takes it in two
//! steps (`AUTH XOAUTH2`, `+`, the base64 token line), refusing a bad token
//! with a JSON challenge, then -ERR. (tests/oauth.rs runs the RFC 5034
//! initial response against the stack's real Dovecot.)

use std::process::Output;

use base64::Engine;
use mailpipe_e2e::oauth::TokenCommand;
use mailpipe_e2e::peer::{scripted_peer, Log};
use mailpipe_e2e::Tool;

const USER: &str = "me@contoso.example";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn xoauth2(token: &str) -> String {
    b64(format!("user={USER}\x01auth=Bearer {token}\x01\x01").as_bytes())
}

/// A plaintext Microsoft-style POP3 peer that takes only `good` as token,
/// with an empty maildrop.
fn microsoft_peer(good: &'static str) -> (u16, Log) {
    scripted_peer(move |peer| {
        if !peer.send(b"+OK The Microsoft Exchange POP3 service is ready.\r\n") {
            return;
        }
        while let Some(command) = peer.command() {
            let reply = match command.as_str() {
                "CAPA" => "+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN\r\nUSER\r\n.\r\n".to_string(),
                "AUTH XOAUTH2" => {
                    if !peer.send(b"+ \r\n") {
                        return;
                    }
                    match peer.command() {
                        Some(payload) if payload == xoauth2(good) => {
                            "+OK User successfully authenticated.\r\n".to_string()
                        }
                        Some(_) => {
                            let error = b64(br#"{"status":"401","schemes":"bearer","scope":"https://outlook.office.com/POP.AccessAsUser.All"}"#);
                            if !peer.send(format!("+ {error}\r\n").as_bytes()) {
                                return;
                            }
                            let _abort = peer.command();
                            "-ERR Authentication failure: unknown user name or bad password.\r\n"
                                .to_string()
                        }
                        None => return,
                    }
                }
                "STAT" => "+OK 0 0\r\n".to_string(),
                "LIST" | "UIDL" => "+OK\r\n.\r\n".to_string(),
                "QUIT" => "+OK Microsoft Exchange Server POP3 server signing off.\r\n".to_string(),
                _ => "-ERR Protocol error.\r\n".to_string(),
            };
            if !peer.send(reply.as_bytes()) || command == "QUIT" {
                return;
            }
        }
    })
}

fn list(port: u16, tokens: &TokenCommand) -> Output {
    Tool::Pop3Dump
        .command()
        .arg("--server")
        .arg(format!("pop3://127.0.0.1:{port}"))
        .args(["--user", USER, "--tls", "none", "--allow-plaintext-auth"])
        .args(["--list", "--timeout", "20"])
        .arg("--oauth-token-command")
        .arg(&tokens.command)
        .output()
        .expect("pop3-dump runs")
}

fn received(log: &Log) -> Vec<String> {
    log.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[test]
fn microsoft_pop3_xoauth2_in_two_steps_with_one_refresh() {
    let (port, log) = microsoft_peer("fresh-token");
    let tokens = TokenCommand::new(&["stale-token", "fresh-token"]);
    let out = list(port, &tokens);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(tokens.runs(), 2);
    let seen = received(&log);
    assert_eq!(
        seen[..7],
        [
            "CAPA".to_string(),
            "AUTH XOAUTH2".to_string(),
            xoauth2("stale-token"),
            // XOAUTH2's answer to the error challenge: an empty line.
            String::new(),
            "AUTH XOAUTH2".to_string(),
            xoauth2("fresh-token"),
            "CAPA".to_string(),
        ],
        "{seen:?}"
    );
}

#[test]
fn microsoft_pop3_refusing_both_tokens_is_77_with_its_words() {
    let (port, log) = microsoft_peer("never-this-one");
    let tokens = TokenCommand::new(&["bad-token"]);
    let out = list(port, &tokens);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("unknown user name or bad password")
            && stderr.contains("status 401")
            && stderr.contains("POP.AccessAsUser.All"),
        "{stderr}"
    );
    assert!(!stderr.contains("bad-token") && !stderr.contains(&xoauth2("bad-token")));
    assert_eq!(tokens.runs(), 2);
    let auths = received(&log)
        .iter()
        .filter(|l| *l == "AUTH XOAUTH2")
        .count();
    assert_eq!(auths, 2);
    assert!(out.stdout.is_empty());
}
