//! IMAP ID (RFC 2971) after login. NetEase's 163.com and 126.com (Coremail)
//! refuse to open any mailbox ("NO SELECT Unsafe Login") for a client that
//! has not said who it is. Only the program's name and version are sent:
//! nothing about the machine or its user.

use mailpipe::{Endpoint, Error, Exit};

use crate::session::Session;

/// When to send ID: `--id`, `--no-id`, the account's `imap_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdMode {
    /// When the server lists ID among its capabilities (the default).
    Auto,
    /// Even when it does not (`--id`).
    Always,
    /// Never (`--no-id`).
    Never,
}

impl IdMode {
    /// The flags, else the account's `imap_id`, else `Auto`; a bad account
    /// value is 78.
    pub fn choose(id: bool, no_id: bool, account: Option<&str>) -> Result<IdMode, Error> {
        match (id, no_id, account) {
            (true, _, _) => Ok(IdMode::Always),
            (_, true, _) => Ok(IdMode::Never),
            (_, _, None) => Ok(IdMode::Auto),
            (_, _, Some(value)) => IdMode::parse(value).ok_or_else(|| {
                Error::config(format!(
                    "account key imap_id: {value:?} is not auto, always or never"
                ))
            }),
        }
    }

    fn parse(value: &str) -> Option<IdMode> {
        match value.to_ascii_lowercase().as_str() {
            "auto" => Some(IdMode::Auto),
            "always" => Some(IdMode::Always),
            "never" => Some(IdMode::Never),
            _ => None,
        }
    }

    /// The account value that means this mode (what `run` leaves in the
    /// endpoint for every connection to read).
    pub fn as_str(self) -> &'static str {
        match self {
            IdMode::Auto => "auto",
            IdMode::Always => "always",
            IdMode::Never => "never",
        }
    }

    /// The endpoint's mode, as `run` settled it.
    pub fn of(endpoint: &Endpoint) -> IdMode {
        endpoint
            .imap_id
            .as_deref()
            .and_then(IdMode::parse)
            .unwrap_or(IdMode::Auto)
    }
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
    let send = match IdMode::of(endpoint) {
        IdMode::Never => false,
        IdMode::Always => true,
        IdMode::Auto if greeting_id == Some(true) => true,
        IdMode::Auto => session.has_capability(endpoint, "ID")?,
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
    let why = match IdMode::of(endpoint) {
        IdMode::Never => "no IMAP ID was sent (--no-id or imap_id = \"never\"): drop it",
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
        assert_eq!(
            IdMode::choose(false, true, Some("always")).ok(),
            Some(IdMode::Never)
        );
        assert_eq!(
            IdMode::choose(true, false, Some("never")).ok(),
            Some(IdMode::Always)
        );
        assert_eq!(
            IdMode::choose(false, false, Some("Never")).ok(),
            Some(IdMode::Never)
        );
        assert_eq!(IdMode::choose(false, false, None).ok(), Some(IdMode::Auto));
        let e = IdMode::choose(false, false, Some("yes")).expect_err("refused");
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
