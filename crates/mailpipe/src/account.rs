//! Accounts and the server flags every network tool shares.
//!
//! The accounts file is TOML, one table per account:
//!
//! ```toml
//! default = "work"                  # used when neither --account nor --server is given
//!
//! [accounts.work]
//! smtp = "smtps://mail.example.org"     # or smtp:// (STARTTLS), port optional
//! imap = "imaps://mail.example.org"
//! pop3 = "pop3s://mail.example.org"
//! user = "alice@example.org"
//! from = "Alice <alice@example.org>"
//! password_command = "pass show mail/work"   # or password_file, password_env
//! # oauth_token_command = "oauth2-token work" (XOAUTH2 or OAUTHBEARER)
//! # oauth_mechanism = "xoauth2"   # or "oauthbearer"; default: OAUTHBEARER when offered
//! # ca_file = "~/.config/mailpipe/work-ca.pem"
//! # tls = "starttls"                # tls | starttls | none: overrides the URL scheme
//! # allow_plaintext_auth = false
//! # compress = "auto"              # auto | always | never: imap-dump's COMPRESS=DEFLATE
//! # imap_id = "auto"               # auto | always | never: imap-dump's IMAP ID (--id, --no-id)
//! # interval = "60s"                # imap-dump and pop3-dump --follow: polling interval (--interval)
//! # sasl_ir = true                 # imap-dump: false is --no-sasl-ir (Coremail)
//! # max_bytes = "2400M"            # imap-dump and pop3-dump stop after this much (--max-bytes)
//! # password = "..."                # only if the file is not group/world readable
//! ```
//!
//! Unknown keys are errors: a typo (`pasword_command`) must not silently fall
//! back to another password source. Precedence: flags, then the URL's user,
//! then the account, then defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use crate::exit::{Error, Exit};
use crate::oauth::OAuthMechanism;
use crate::secret::{self, Environment, PasswordSource, Secret};
use crate::tls::{self, Stream};
use crate::transcript::{Dialect, Transcript};
use crate::url::{Protocol, Security, ServerUrl};

/// One `[accounts.NAME]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub smtp: Option<String>,
    pub imap: Option<String>,
    pub pop3: Option<String>,
    pub user: Option<String>,
    pub from: Option<String>,
    pub password_command: Option<String>,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    pub oauth_token_command: Option<String>,
    /// `xoauth2` or `oauthbearer`, as --oauth-mechanism.
    pub oauth_mechanism: Option<String>,
    pub ca_file: Option<String>,
    pub tls: Option<String>,
    pub allow_plaintext_auth: Option<bool>,
    /// smtp-send's delivery status notification defaults (RFC 3461), as its
    /// --dsn-notify, --dsn-ret and --require-dsn take them.
    pub dsn_notify: Option<String>,
    pub dsn_ret: Option<String>,
    pub require_dsn: Option<bool>,
    /// imap-dump's COMPRESS=DEFLATE: `auto` (on a far link), `always` or
    /// `never`, as its --compress; imap-dump checks the value.
    pub compress: Option<String>,
    /// imap-dump's IMAP ID (RFC 2971) after login: `auto` (when the server
    /// lists ID), `always` or `never`, as its --id and --no-id; imap-dump
    /// checks the value.
    pub imap_id: Option<String>,
    /// imap-dump's and pop3-dump's `--follow` polling interval (`60s`, `5m`),
    /// as their --interval; `mailpipe::follow::parse_interval` checks it.
    pub interval: Option<String>,
    /// imap-dump's SASL-IR (RFC 4959): `false` is its --no-sasl-ir.
    pub sasl_ir: Option<bool>,
    /// imap-dump's and pop3-dump's --max-bytes (`2400M`: under Gmail's daily
    /// download cap); the tools parse it.
    pub max_bytes: Option<String>,
    /// Plaintext, as msmtp allows; refused unless only the owner can read the file.
    pub password: Option<SecretString>,
}

/// A `password` value from the file, kept as a `Secret` from the start.
#[derive(Debug)]
pub struct SecretString(pub Secret);

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        String::deserialize(d).map(|s| SecretString(Secret::new(s)))
    }
}

/// The parsed accounts file.
#[derive(Debug)]
pub struct AccountsFile {
    pub path: PathBuf,
    pub default: Option<String>,
    pub accounts: BTreeMap<String, Account>,
    /// Whether group or others may read the file (then `password` keys are refused).
    shared_readable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLayout {
    default: Option<String>,
    #[serde(default)]
    accounts: BTreeMap<String, Account>,
}

impl AccountsFile {
    /// $MAILPIPE_CONFIG, else $XDG_CONFIG_HOME/mailpipe/accounts.toml, else
    /// ~/.config/mailpipe/accounts.toml.
    pub fn default_path(env: &Environment) -> Option<PathBuf> {
        if let Some(p) = env.var("MAILPIPE_CONFIG") {
            return Some(PathBuf::from(p));
        }
        if let Some(x) = env.var("XDG_CONFIG_HOME") {
            return Some(Path::new(&x).join("mailpipe/accounts.toml"));
        }
        env.var("HOME")
            .map(|h| Path::new(&h).join(".config/mailpipe/accounts.toml"))
    }

    /// Reads and checks the file. Errors are 78 and name the file (and the
    /// line, for TOML errors and unknown keys).
    pub fn load(path: &Path) -> Result<AccountsFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!(
                "accounts file {}: {}",
                path.display(),
                Error::from(e).message()
            ))
        })?;
        let shared_readable = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o077 != 0)
                .unwrap_or(true)
        };
        AccountsFile::parse(&text, path, shared_readable)
    }

    /// Parses file text; `path` is only for messages.
    pub fn parse(text: &str, path: &Path, shared_readable: bool) -> Result<AccountsFile, Error> {
        let layout: FileLayout = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let at = line.map(|l| format!(" line {l}")).unwrap_or_default();
            Error::config(format!(
                "accounts file {}{at}: {}",
                path.display(),
                e.message()
            ))
        })?;
        Ok(AccountsFile {
            path: path.to_path_buf(),
            default: layout.default,
            accounts: layout.accounts,
            shared_readable,
        })
    }

    /// The named account; a missing one is 78 naming it and the file.
    pub fn account(&self, name: &str) -> Result<&Account, Error> {
        let account = self.accounts.get(name).ok_or_else(|| {
            Error::config(format!("no account {name:?} in {}", self.path.display()))
        })?;
        if account.password.is_some() && self.shared_readable {
            return Err(Error::config(format!(
                "account {name:?} has a password in {}, which group or others can read: \
                 chmod 600 it, or use password_command",
                self.path.display()
            )));
        }
        Ok(account)
    }
}

/// The flags every network tool flattens into its clap arguments
/// (`#[command(flatten)] server: ServerArgs`). No flag takes a password.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// Account from the accounts file ($MAILPIPE_CONFIG, else
    /// ~/.config/mailpipe/accounts.toml)
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Server URL: smtps://host[:465], smtp://host[:587] (STARTTLS), imaps://,
    /// imap:// (STARTTLS), pop3s://, pop3:// (STLS)
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Login name (default: the URL's user@, the account's user, ~/.netrc)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Shell command whose first output line is the password (e.g. "pass show mail")
    #[arg(long, value_name = "CMD")]
    pub password_command: Option<String>,
    /// File whose first line is the password
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Shell command printing an OAuth 2 access token (XOAUTH2 or
    /// OAUTHBEARER); run once more if the server refuses the token
    #[arg(long, value_name = "CMD")]
    pub oauth_token_command: Option<String>,
    /// OAuth 2 SASL mechanism [default: OAUTHBEARER when the server offers
    /// it, else XOAUTH2]
    #[arg(long, value_name = "MECH", value_enum)]
    pub oauth_mechanism: Option<OAuthMechanism>,
    /// Also trust the CA certificates in this PEM file
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// How TLS starts, overriding the URL scheme; "none" means no encryption
    #[arg(long, value_name = "MODE", value_enum)]
    pub tls: Option<Security>,
    /// Allow sending credentials over a connection without TLS
    #[arg(long)]
    pub allow_plaintext_auth: bool,
    /// Seconds to wait for connecting and for each server reply
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// Show the protocol dialogue on stderr (credentials redacted)
    #[arg(short, long)]
    pub verbose: bool,
}

impl ServerArgs {
    /// Combines flags, account and defaults into what a tool connects to, for
    /// the process environment.
    pub fn resolve(&self, protocol: Protocol) -> Result<Endpoint, Error> {
        self.resolve_in(protocol, &Environment::process())
    }

    /// `resolve` against a given environment (tests).
    pub fn resolve_in(&self, protocol: Protocol, env: &Environment) -> Result<Endpoint, Error> {
        if self.timeout == 0 {
            return Err(Error::usage("--timeout must be at least 1 second"));
        }
        let file = self.accounts_file(env)?;
        let name = self
            .account
            .clone()
            .or_else(|| file.as_ref().and_then(|f| f.default.clone()));
        let empty = Account::default();
        let account = match (&file, &name) {
            (Some(f), Some(n)) => f.account(n)?,
            _ => &empty,
        };
        let url_text = match (&self.server, protocol_url(account, protocol)) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) => s.clone(),
            (None, None) => {
                return Err(match (&name, &file) {
                    (Some(n), Some(f)) => Error::config(format!(
                        "account {n:?} in {} has no {protocol} server: add {protocol} = \"URL\" \
                         or give --server",
                        f.path.display()
                    )),
                    _ => Error::usage(format!(
                        "no server: give --server URL (e.g. {}://host) or --account NAME",
                        match protocol {
                            Protocol::Smtp => "smtps",
                            Protocol::Imap => "imaps",
                            Protocol::Pop3 => "pop3s",
                        }
                    )),
                })
            }
        };
        let mut url = ServerUrl::parse(&url_text, Some(protocol))?;
        let tls_mode = match (&self.tls, &account.tls) {
            (Some(t), _) => Some(*t),
            (None, Some(t)) => Some(t.parse::<Security>().map_err(|e| {
                Error::config(format!(
                    "account {:?}: {}",
                    name.as_deref().unwrap_or(""),
                    e.message()
                ))
            })?),
            (None, None) => None,
        };
        if let Some(security) = tls_mode {
            // A port left at the scheme's default follows the mode (smtps:// with
            // --tls starttls goes to 587); an explicit other port stays.
            if url.port == protocol.default_port(url.security) {
                url.port = protocol.default_port(security);
            }
            url.security = security;
        }
        let user = match (&self.user, &url.user, &account.user) {
            (Some(u), _, _) | (None, Some(u), _) | (None, None, Some(u)) => Some(u.clone()),
            (None, None, None) => env
                .netrc_path()
                .and_then(|p| secret::netrc_lookup(&p, &url.host, None).ok().flatten())
                .and_then(|e| e.login),
        };
        url.user = user.clone();
        let password = if let Some(cmd) = &self.password_command {
            PasswordSource::Command(cmd.clone())
        } else if let Some(path) = &self.password_file {
            PasswordSource::File(path.clone())
        } else if let Some(cmd) = &account.password_command {
            PasswordSource::Command(cmd.clone())
        } else if let Some(path) = &account.password_file {
            PasswordSource::File(env.expand_home(path))
        } else if let Some(value) = &account.password {
            PasswordSource::Value(value.0.clone())
        } else if let Some(var) = &account.password_env {
            PasswordSource::Env(var.clone())
        } else {
            PasswordSource::Default
        };
        let oauth_mechanism = match (self.oauth_mechanism, &account.oauth_mechanism) {
            (Some(m), _) => Some(m),
            (None, Some(value)) => Some(OAuthMechanism::parse(value).ok_or_else(|| {
                Error::config(format!(
                    "account {:?}: oauth_mechanism = {value:?}: use \"xoauth2\" or \"oauthbearer\"",
                    name.as_deref().unwrap_or("")
                ))
            })?),
            (None, None) => None,
        };
        let ca_file = match (&self.ca_file, &account.ca_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(p)) => Some(env.expand_home(p)),
            (None, None) => None,
        };
        Ok(Endpoint {
            url,
            user,
            from: account.from.clone(),
            dsn_notify: account.dsn_notify.clone(),
            dsn_ret: account.dsn_ret.clone(),
            require_dsn: account.require_dsn.unwrap_or(false),
            imap_id: account.imap_id.clone(),
            sasl_ir: account.sasl_ir,
            oauth_mechanism,
            max_bytes: account.max_bytes.clone(),
            account: name,
            ca_file,
            allow_plaintext_auth: self.allow_plaintext_auth
                || account.allow_plaintext_auth.unwrap_or(false),
            timeout: Duration::from_secs(self.timeout),
            verbose: self.verbose,
            compress: account.compress.clone(),
            interval: account.interval.clone(),
            password,
            oauth_token_command: self
                .oauth_token_command
                .clone()
                .or_else(|| account.oauth_token_command.clone()),
            oauth_token_kept: Arc::default(),
            env: env.clone(),
        })
    }

    /// The accounts file when one is needed: always with --account (then it
    /// must exist); without --server, if present, for its `default` account.
    fn accounts_file(&self, env: &Environment) -> Result<Option<AccountsFile>, Error> {
        let path = AccountsFile::default_path(env);
        match (&self.account, &self.server, path) {
            (Some(name), _, None) => Err(Error::config(format!(
                "--account {name}: no accounts file (set $MAILPIPE_CONFIG or $HOME)"
            ))),
            (Some(_), _, Some(p)) => AccountsFile::load(&p).map(Some),
            (None, None, Some(p)) if p.exists() => AccountsFile::load(&p).map(Some),
            _ => Ok(None),
        }
    }
}

fn protocol_url(account: &Account, protocol: Protocol) -> Option<&String> {
    match protocol {
        Protocol::Smtp => account.smtp.as_ref(),
        Protocol::Imap => account.imap.as_ref(),
        Protocol::Pop3 => account.pop3.as_ref(),
    }
}

/// `user@host` with the host in lower case; see `Endpoint::state_key`.
pub fn state_key(user: &str, host: &str) -> String {
    format!("{user}@{}", host.to_ascii_lowercase())
}

/// Everything a tool needs to reach and log in to one server. Secrets are not
/// in it: `password()` and `oauth_token()` fetch them when AUTH happens, so a
/// `--dry-run` or a failed connect never runs a password command.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The server, with the final security mode, port and user.
    pub url: ServerUrl,
    pub user: Option<String>,
    /// The account's `from` address, for smtp-send's envelope default.
    pub from: Option<String>,
    /// The account's `dsn_notify`, `dsn_ret` and `require_dsn` (smtp-send
    /// checks the values; its flags override them).
    pub dsn_notify: Option<String>,
    pub dsn_ret: Option<String>,
    pub require_dsn: bool,
    /// The account's `imap_id` (imap-dump checks it; its flags override it).
    pub imap_id: Option<String>,
    /// The account's `sasl_ir` (imap-dump's --no-sasl-ir overrides it).
    pub sasl_ir: Option<bool>,
    /// The OAuth mechanism asked for (flag, else account); `None`: the
    /// server's best (`OAuthMechanism::choose`).
    pub oauth_mechanism: Option<OAuthMechanism>,
    /// The account's `max_bytes` (the dump tools parse it; --max-bytes overrides it).
    pub max_bytes: Option<String>,
    /// The account used, if any (for messages and state keys).
    pub account: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub allow_plaintext_auth: bool,
    /// Connect timeout and the read/write timeout of each operation.
    pub timeout: Duration,
    /// `-v`: log the dialogue (see `transcript`).
    pub verbose: bool,
    /// The account's `compress` (imap-dump checks it; its flags override it).
    pub compress: Option<String>,
    /// The account's `interval` for `--follow` (its flag overrides it).
    pub interval: Option<String>,
    password: PasswordSource,
    oauth_token_command: Option<String>,
    /// The token the command printed last, shared by the clones of this
    /// endpoint (every connection of a run): the command runs once, and
    /// again only when a server refuses the token (`oauth::Tokens`).
    oauth_token_kept: Arc<Mutex<Option<Secret>>>,
    env: Environment,
}

impl Endpoint {
    /// The login name, or 78 if none was configured anywhere.
    pub fn login(&self) -> Result<&str, Error> {
        self.user.as_deref().ok_or_else(|| {
            Error::config(format!(
                "no user for {}: give --user, user@ in the URL, an account's user, or a \
                 ~/.netrc login",
                self.url
            ))
        })
    }

    /// `user@host` (host lower case, no port: imap:// and imaps:// reach the
    /// same mailboxes): what a state file is keyed by, so that two accounts
    /// sharing one file never skip each other's messages.
    pub fn state_key(&self) -> Result<String, Error> {
        Ok(state_key(self.login()?, &self.url.host))
    }

    /// The password, fetched now from its source (command, file, variable,
    /// netrc). Call it only right before authenticating.
    pub fn password(&self) -> Result<Secret, Error> {
        secret::fetch_password(
            &self.password,
            self.url.protocol,
            &self.url.host,
            self.user.as_deref(),
            &self.env,
        )
        .map_err(|e| e.context(&self.url))
    }

    /// True when an OAuth token command is set: authenticate with XOAUTH2 or
    /// OAUTHBEARER (`oauth::OAuthMechanism::choose`).
    pub fn uses_oauth(&self) -> bool {
        self.oauth_token_command.is_some()
    }

    /// The OAuth 2 access token: the one this run fetched already, else the
    /// token command's (78 if none is set).
    pub fn oauth_token(&self) -> Result<Secret, Error> {
        let kept = self
            .oauth_token_kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match kept {
            Some(token) => Ok(token),
            None => self.fresh_oauth_token(),
        }
    }

    /// The token command's output now (a refresh), kept for the next
    /// `oauth_token`.
    pub fn fresh_oauth_token(&self) -> Result<Secret, Error> {
        let token = match &self.oauth_token_command {
            Some(cmd) => secret::run_secret_command(cmd, "OAuth token command")
                .map_err(|e| e.context(&self.url))?,
            None => {
                return Err(Error::config(format!(
                    "{}: no oauth_token_command configured",
                    self.url
                )))
            }
        };
        *self
            .oauth_token_kept
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(token)
    }

    /// Refuses to send credentials over a connection without TLS unless
    /// `--allow-plaintext-auth` (or the account) says so. Tools call it before AUTH.
    pub fn check_auth_allowed(&self, tls_active: bool) -> Result<(), Error> {
        if tls_active || self.allow_plaintext_auth {
            return Ok(());
        }
        Err(Error::new(
            Exit::Config,
            format!(
                "{}: refusing to send credentials without TLS; use TLS or \
                 --allow-plaintext-auth",
                self.url
            ),
        ))
    }

    /// The rustls config: system roots plus this endpoint's CA file.
    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        tls::client_config(self.ca_file.as_deref())
    }

    /// The `-v` transcript on stderr, or `None` without `-v`; hand it to
    /// `TranscriptStream::new` around the stream the protocol code uses.
    pub fn transcript(&self, dialect: Dialect) -> Option<Transcript> {
        self.verbose.then(|| Transcript::stderr(dialect))
    }

    /// Connects, with TLS already up for implicit-TLS URLs; for STARTTLS the
    /// stream is plain until the tool calls `Stream::start_tls`.
    pub fn open(&self, config: &Arc<rustls::ClientConfig>) -> Result<Stream, Error> {
        Stream::open(&self.url, self.timeout, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::io::Write;

    #[derive(Parser, Debug)]
    struct Tool {
        #[command(flatten)]
        server: ServerArgs,
    }

    fn args(argv: &[&str]) -> ServerArgs {
        let mut all = vec!["tool"];
        all.extend_from_slice(argv);
        Tool::try_parse_from(all).expect("valid flags").server
    }

    const FILE: &str = r#"
default = "home"

[accounts.work]
smtp = "smtp://mail.example.org"
imap = "imaps://alice%40corp@imap.example.org:1993"
user = "alice@example.org"
from = "Alice <alice@example.org>"
password_command = "echo from-account"
ca_file = "~/ca.pem"
dsn_notify = "failure,delay"
dsn_ret = "hdrs"
require_dsn = true
imap_id = "always"
oauth_token_command = "echo tok"
oauth_mechanism = "OAuthBearer"
sasl_ir = false

[accounts.home]
pop3 = "pop3://pop.example.net"
tls = "none"
password_env = "HOME_PW"
allow_plaintext_auth = true
compress = "never"
interval = "5m"

[accounts.plain]
smtp = "smtps://h"
password = "filepw"
"#;

    fn setup(mode: u32) -> (tempfile::TempDir, Environment) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("accounts.toml");
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(FILE.as_bytes()).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let env = Environment::fixed([
            ("MAILPIPE_CONFIG", path.to_string_lossy().to_string()),
            ("HOME", "/home/test".to_string()),
            ("HOME_PW", "homepw".to_string()),
        ]);
        (dir, env)
    }

    #[test]
    fn account_values_and_flag_precedence() {
        let (_dir, env) = setup(0o600);
        let e = args(&["--account", "work"])
            .resolve_in(Protocol::Smtp, &env)
            .expect("ok");
        assert_eq!(
            e.url.to_string(),
            "smtp://alice%40example.org@mail.example.org:587"
        );
        assert_eq!(e.url.security, Security::StartTls);
        assert_eq!(e.from.as_deref(), Some("Alice <alice@example.org>"));
        assert_eq!(e.ca_file.as_deref(), Some(Path::new("/home/test/ca.pem")));
        assert_eq!(e.password().expect("pw").expose(), "from-account");
        assert_eq!(e.timeout, Duration::from_secs(60));
        assert!(!e.allow_plaintext_auth);
        assert_eq!(e.dsn_notify.as_deref(), Some("failure,delay"));
        assert_eq!(e.dsn_ret.as_deref(), Some("hdrs"));
        assert!(e.require_dsn);
        assert_eq!(
            e.compress, None,
            "imap-dump's default unless the account says"
        );
        assert_eq!(e.imap_id.as_deref(), Some("always"));
        assert_eq!(e.oauth_mechanism, Some(OAuthMechanism::Oauthbearer));
        assert_eq!(e.sasl_ir, Some(false));
        assert_eq!(e.oauth_token().expect("token").expose(), "tok");
        // The flag beats the account.
        let e = args(&["--account", "work", "--oauth-mechanism", "xoauth2"])
            .resolve_in(Protocol::Smtp, &env)
            .expect("ok");
        assert_eq!(e.oauth_mechanism, Some(OAuthMechanism::Xoauth2));

        // The URL's user beats the account's; flags beat both.
        let e = args(&["--account", "work"])
            .resolve_in(Protocol::Imap, &env)
            .expect("ok");
        assert_eq!(e.login().expect("user"), "alice@corp");
        let e = args(&[
            "--account=work",
            "--user=bob",
            "--server=smtps://other.example.org",
            "--password-command=echo from-flag",
            "--ca-file=/etc/ca.pem",
            "--tls=starttls",
            "--timeout=5",
            "-v",
        ])
        .resolve_in(Protocol::Smtp, &env)
        .expect("ok");
        assert_eq!(e.url.to_string(), "smtp://bob@other.example.org:587");
        assert_eq!(e.password().expect("pw").expose(), "from-flag");
        assert_eq!(e.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(e.timeout, Duration::from_secs(5));
        assert!(e.verbose);
        assert!(e.transcript(Dialect::Smtp).is_some());
    }

    #[test]
    fn default_account_tls_none_and_password_env() {
        let (_dir, env) = setup(0o644);
        let e = args(&[])
            .resolve_in(Protocol::Pop3, &env)
            .expect("default account");
        assert_eq!(e.account.as_deref(), Some("home"));
        assert_eq!(e.url.security, Security::None);
        assert_eq!(e.url.port, 110);
        assert!(e.allow_plaintext_auth);
        assert_eq!(e.compress.as_deref(), Some("never"));
        assert_eq!(e.interval.as_deref(), Some("5m"));
        assert!(e.check_auth_allowed(false).is_ok());
        assert_eq!(e.password().expect("pw").expose(), "homepw");
    }

    #[test]
    fn plaintext_password_needs_private_file() {
        let (_dir, env) = setup(0o644);
        let e = args(&["--account", "plain"])
            .resolve_in(Protocol::Smtp, &env)
            .expect_err("readable file");
        assert_eq!(e.exit(), Exit::Config);
        assert!(!e.message().contains("filepw"));
        let (_dir, env) = setup(0o600);
        let e = args(&["--account", "plain"])
            .resolve_in(Protocol::Smtp, &env)
            .expect("ok");
        assert_eq!(e.password().expect("pw").expose(), "filepw");
        assert!(e.check_auth_allowed(false).is_err());
        assert!(e.check_auth_allowed(true).is_ok());
    }

    #[test]
    fn missing_things_are_named() {
        let (_dir, env) = setup(0o600);
        let e = args(&["--account", "nope"])
            .resolve_in(Protocol::Smtp, &env)
            .expect_err("no such account");
        assert_eq!(e.exit(), Exit::Config);
        assert!(e.message().contains("\"nope\"") && e.message().contains("accounts.toml"));
        let e = args(&["--account", "work"])
            .resolve_in(Protocol::Pop3, &env)
            .expect_err("no pop3 url");
        assert_eq!(e.exit(), Exit::Config);
        let e = args(&[])
            .resolve_in(
                Protocol::Smtp,
                &Environment::fixed([("HOME", "/nonexistent")]),
            )
            .expect_err("no server");
        assert_eq!(e.exit(), Exit::Usage);
        let e = args(&["--account", "x"])
            .resolve_in(
                Protocol::Smtp,
                &Environment::fixed([("MAILPIPE_CONFIG", "/nonexistent/a.toml")]),
            )
            .expect_err("no file");
        assert!(e.message().contains("/nonexistent/a.toml"));
        let e = args(&["--server", "smtps://h"])
            .resolve_in(
                Protocol::Smtp,
                &Environment::fixed([("HOME", "/nonexistent")]),
            )
            .expect("server alone");
        assert_eq!(e.login().expect_err("no user").exit(), Exit::Config);
        assert_eq!(e.oauth_token().expect_err("no oauth").exit(), Exit::Config);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let text = "[accounts.a]\nsmtp = \"smtps://h\"\npasword_command = \"x\"\n";
        let e = AccountsFile::parse(text, Path::new("acc.toml"), false).expect_err("typo");
        assert_eq!(e.exit(), Exit::Config);
        assert!(e.message().contains("pasword_command"), "{}", e.message());
        assert!(e.message().contains("line 3"), "{}", e.message());
        let e = AccountsFile::parse("acounts = 1\n", Path::new("acc.toml"), false)
            .expect_err("top-level typo");
        assert!(e.message().contains("acounts"), "{}", e.message());
    }

    #[test]
    fn netrc_supplies_user_and_password() {
        let dir = tempfile::tempdir().expect("temp dir");
        let netrc = dir.path().join("netrc");
        std::fs::write(
            &netrc,
            "machine imap.example.org login carol password carolpw\n",
        )
        .expect("write");
        let env = Environment::fixed([
            ("NETRC", netrc.to_string_lossy().to_string()),
            ("HOME", "/nonexistent".to_string()),
        ]);
        let e = args(&["--server", "imaps://imap.example.org"])
            .resolve_in(Protocol::Imap, &env)
            .expect("ok");
        assert_eq!(e.login().expect("user"), "carol");
        assert_eq!(e.password().expect("pw").expose(), "carolpw");
    }

    #[test]
    fn an_unknown_oauth_mechanism_is_78_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("accounts.toml");
        std::fs::write(
            &path,
            "[accounts.a]\nsmtp = \"smtps://h\"\noauth_mechanism = \"cram\"\n",
        )
        .expect("write");
        let env = Environment::fixed([("MAILPIPE_CONFIG", path.to_string_lossy().to_string())]);
        let e = args(&["--account", "a"])
            .resolve_in(Protocol::Smtp, &env)
            .expect_err("unknown mechanism");
        assert_eq!(e.exit(), Exit::Config);
        assert!(e.message().contains("\"cram\"") && e.message().contains("oauthbearer"));
    }

    #[test]
    fn wrong_protocol_url_and_zero_timeout() {
        let env = Environment::fixed([("HOME", "/nonexistent")]);
        let e = args(&["--server", "imaps://h"])
            .resolve_in(Protocol::Smtp, &env)
            .expect_err("imap url for smtp");
        assert_eq!(e.exit(), Exit::Usage);
        let e = args(&["--server", "smtps://h", "--timeout", "0"])
            .resolve_in(Protocol::Smtp, &env)
            .expect_err("zero timeout");
        assert_eq!(e.exit(), Exit::Usage);
    }
}
