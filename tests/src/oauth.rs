//! The OAuth side of the stack (`scripts/mailstack` on BASEPORT+16): the user
//! who logs in with tokens only, its valid, expired and revoked tokens, and
//! token commands that hand them out. Tokens sit in files, so that no token
//! is ever in an argv the secrets tests watch.

use std::path::PathBuf;

use super::var;

/// The tokens `scripts/mailstack env` exports.
#[derive(Debug, Clone)]
pub struct OAuth {
    /// The introspection endpoint Dovecot asks.
    pub url: String,
    /// oauth@ the domain: a mailbox whose password nobody knows.
    pub user: String,
    /// Active for `user`.
    pub valid: String,
    /// Inactive: its `exp` is in the past.
    pub expired: String,
    /// Inactive: revoked.
    pub revoked: String,
}

impl OAuth {
    /// The tokens from the environment; panics (fails the test) when absent.
    pub fn get() -> OAuth {
        OAuth {
            url: var("MAILSTACK_OAUTH_URL"),
            user: var("MAILSTACK_OAUTH_USER"),
            valid: var("MAILSTACK_OAUTH_VALID"),
            expired: var("MAILSTACK_OAUTH_EXPIRED"),
            revoked: var("MAILSTACK_OAUTH_REVOKED"),
        }
    }
}

/// A shell command printing `tokens[n - 1]` on its n-th run (the last one
/// from then on) and counting its runs: what a refresh-token helper does
/// when the access token it gave first has expired.
pub struct TokenCommand {
    dir: tempfile::TempDir,
    /// The command, for --oauth-token-command.
    pub command: String,
}

impl TokenCommand {
    pub fn new(tokens: &[&str]) -> TokenCommand {
        TokenCommand::with_prefix("", tokens)
    }

    /// The same, running `prefix` first (`sleep 0.2; `, to be seen in /proc).
    pub fn with_prefix(prefix: &str, tokens: &[&str]) -> TokenCommand {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, token) in tokens.iter().enumerate() {
            std::fs::write(
                dir.path().join(format!("token{}", i + 1)),
                format!("{token}\n"),
            )
            .expect("token file");
        }
        let d = dir.path().display();
        let last = tokens.len();
        let command = format!(
            "{prefix}n=$(($(cat '{d}/runs' 2>/dev/null || echo 0) + 1)); echo $n > '{d}/runs'; \
             if [ $n -gt {last} ]; then n={last}; fi; cat '{d}/token'$n"
        );
        TokenCommand { dir, command }
    }

    /// How many times the command ran.
    pub fn runs(&self) -> usize {
        std::fs::read_to_string(self.path("runs"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
