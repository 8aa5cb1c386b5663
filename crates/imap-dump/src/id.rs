//! IMAP ID (RFC 2971) after login. NetEase's 163.com and 126.com (Coremail)
//! refuse to open any mailbox ("NO SELECT Unsafe Login") for a client that
//! has not said who it is. Only the program's name and version are sent:
//! nothing about the machine or its user.

use mailpipe::{Endpoint, Error, Exit};

use crate::session::Session;
use crate::when::When;

/// When to send ID: `--id` or `--no-id`, else the account's `imap_id`,
/// else `Auto` (when the server lists ID among its capabilities).
pub fn choose(id: bool, no_id: bool, account: Option<&str>) -> Result<When, Error> {
    let flag = if id {
        Some(When::Always)
    } else {
        no_id.then_some(When::Never)
    };
    When::choose(flag, "imap_id", account)
}

/// The endpoint's mode, as `run` settled it.
pub fn mode(endpoint: &Endpoint) -> When {
    endpoint
        .imap_id
        .as_deref()
        .and_then(When::parse)
        .unwrap_or(When::Auto)
}

/// The command: name and version only (privacy: no OS, host or user).
pub const COMMAND: &str = concat!(
    "ID (\"name\" \"mailpipe\" \"version\" \"",
    env!("CARGO_PKG_VERSION"),
    "\")"
);

/// Whether a greeting's `[CAPABILITY ...]` lists ID; `None` when it lists
/// no capabilities (then CAPABILITY is asked after login).
pub fn greeting_lists_id(greeting: &[u8]) -> Option<bool> {
    let text = String::from_utf8_lossy(greeting);
    let upper = text.to_ascii_uppercase();
    let start = upper.find("[CAPABILITY ")? + "[CAPABILITY ".len();
    let list = upper.get(start..)?.split(']').next()?;
    Some(list.split_ascii_whitespace().any(|c| c == "ID"))
}

/// Sends ID after login if the mode and the server's capabilities say so
/// (`greeting_id`: what the greeting listed, saving a CAPABILITY round
/// trip when it lists ID). A NO or BAD to ID is not fatal: one warning
/// under -v. Returns whether ID was sent and accepted.
pub fn introduce(
    session: &mut Session,
    endpoint: &Endpoint,
    greeting_id: Option<bool>,
) -> Result<bool, Error> {
    let send = match mode(endpoint) {
        When::Never => false,
        When::Always => true,
        When::Auto if greeting_id == Some(true) => true,
        When::Auto => session.has_capability(endpoint, "ID")?,
    };
    if !send {
        return Ok(false);
    }
    match session.refusable(endpoint, COMMAND)? {
        None => Ok(true),
        Some(refusal) => {
            if endpoint.verbose {
                eprintln!(
                    "imap-dump: warning: {}: the server refused ID ({refusal}); going on",
                    endpoint.url
                );
            }
            Ok(false)
        }
    }
}

/// Whether a refusal to open a mailbox is NetEase's demand for ID.
pub fn is_unsafe_login(text: &str) -> bool {
    text.to_ascii_lowercase().contains("unsafe login")
}

/// The error for NetEase's "Unsafe Login" when no ID was sent: the
/// server's words and what to do (77: the server refuses this client, the
/// mailbox exists).
pub fn unsafe_login_error(endpoint: &Endpoint, mailbox: &str, text: &str) -> Error {
    let why = match mode(endpoint) {
        When::Never => "no IMAP ID was sent (--no-id or imap_id = \"never\"): drop it",
        _ => "no IMAP ID was sent, the server did not list ID: try --id",
    };
    Error::new(
        Exit::NoPerm,
        format!(
            "{}: the server refused to open mailbox {mailbox:?}: {text} ({why})",
            endpoint.url
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_capabilities() {
        let dovecot = b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE \
                        LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n";
        assert_eq!(greeting_lists_id(dovecot), Some(true));
        assert_eq!(
            greeting_lists_id(b"* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n"),
            Some(false)
        );
        assert_eq!(
            greeting_lists_id(b"* OK Coremail System IMap Server Ready(NetEase)\r\n"),
            None
        );
    }

    #[test]
    fn flags_beat_the_account() {
        assert_eq!(choose(false, true, Some("always")).ok(), Some(When::Never));
        assert_eq!(choose(true, false, Some("never")).ok(), Some(When::Always));
        assert_eq!(choose(false, false, Some("Never")).ok(), Some(When::Never));
        assert_eq!(choose(false, false, None).ok(), Some(When::Auto));
        let e = choose(false, false, Some("yes")).expect_err("refused");
        assert_eq!(e.exit(), Exit::Config);
    }

    #[test]
    fn the_command_names_the_program_and_version_only() {
        assert_eq!(
            COMMAND,
            format!(
                "ID (\"name\" \"mailpipe\" \"version\" \"{}\")",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
