//! Secrets (passwords, OAuth tokens) and where they come from: a command, a
//! file, an environment variable, ~/.netrc. Never argv, never printed: a
//! `Secret` formats as `<redacted>`, its memory is wiped on drop, and no error
//! here repeats a secret or the output of the command that should have printed one.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use zeroize::Zeroize;

use crate::exit::{Error, Exit};
use crate::url::Protocol;

/// A password or token. `Debug` and `Display` print `<redacted>`; the only way
/// to the text is `expose()`, so a stray `{:?}` cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret text, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The environment a lookup sees: the process's, or a fixed map in tests, so
/// that tests need not change process-wide state.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    fixed: Option<HashMap<String, String>>,
}

impl Environment {
    /// The real process environment.
    pub fn process() -> Environment {
        Environment { fixed: None }
    }

    /// Only these variables (tests).
    pub fn fixed<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Environment {
        Environment {
            fixed: Some(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// A variable's value; unset and empty are the same.
    pub fn var(&self, name: &str) -> Option<String> {
        let value = match &self.fixed {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.is_empty())
    }

    /// `~/x` expanded with $HOME; other paths as they are.
    pub fn expand_home(&self, path: &str) -> PathBuf {
        match (path.strip_prefix("~/"), self.var("HOME")) {
            (Some(rest), Some(home)) => Path::new(&home).join(rest),
            _ => PathBuf::from(path),
        }
    }

    /// $NETRC, else ~/.netrc.
    pub fn netrc_path(&self) -> Option<PathBuf> {
        if let Some(p) = self.var("NETRC") {
            return Some(PathBuf::from(p));
        }
        self.var("HOME").map(|h| Path::new(&h).join(".netrc"))
    }
}

/// Where a password comes from, decided when arguments are resolved and read
/// only when a tool is about to authenticate.
#[derive(Clone)]
pub enum PasswordSource {
    /// `sh -c CMD`; the first line of its stdout.
    Command(String),
    /// The first line of a file.
    File(PathBuf),
    /// `password = "..."` in an accounts file that only its owner can read.
    Value(Secret),
    /// A variable the account names (`password_env`); unset is an error.
    Env(String),
    /// The defaults in order: $SMTP_PASSWORD / $IMAP_PASSWORD / $POP3_PASSWORD,
    /// then $MAILPIPE_PASSWORD, then ~/.netrc (or $NETRC) for host and login.
    Default,
}

impl fmt::Debug for PasswordSource {
    // A command line may embed a secret (`echo hunter2`): show only the kind.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PasswordSource::Command(_) => "Command(..)",
            PasswordSource::File(_) => "File(..)",
            PasswordSource::Value(_) => "Value(<redacted>)",
            PasswordSource::Env(_) => "Env(..)",
            PasswordSource::Default => "Default",
        })
    }
}

/// The per-protocol password variable: `SMTP_PASSWORD`, `IMAP_PASSWORD`, `POP3_PASSWORD`.
pub fn protocol_password_var(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Smtp => "SMTP_PASSWORD",
        Protocol::Imap => "IMAP_PASSWORD",
        Protocol::Pop3 => "POP3_PASSWORD",
    }
}

/// Reads the password from `source`. `host` and `login` select the netrc entry.
pub fn fetch_password(
    source: &PasswordSource,
    protocol: Protocol,
    host: &str,
    login: Option<&str>,
    env: &Environment,
) -> Result<Secret, Error> {
    match source {
        PasswordSource::Command(cmd) => run_secret_command(cmd, "password command"),
        PasswordSource::File(path) => read_secret_file(path),
        PasswordSource::Value(secret) => Ok(secret.clone()),
        PasswordSource::Env(name) => env.var(name).map(Secret::new).ok_or_else(|| {
            Error::config(format!(
                "password_env names ${name}, which is not set or is empty"
            ))
        }),
        PasswordSource::Default => {
            for name in [protocol_password_var(protocol), "MAILPIPE_PASSWORD"] {
                if let Some(v) = env.var(name) {
                    return Ok(Secret::new(v));
                }
            }
            if let Some(path) = env.netrc_path() {
                if let Some(entry) = netrc_lookup(&path, host, login)? {
                    if let Some(password) = entry.password {
                        return Ok(password);
                    }
                }
            }
            let who = login
                .map(|l| format!("{l}@{host}"))
                .unwrap_or(host.to_string());
            Err(Error::config(format!(
                "no password for {who}: use --password-command, --password-file, an account's \
                 password_command, ${}, $MAILPIPE_PASSWORD or ~/.netrc",
                protocol_password_var(protocol)
            )))
        }
    }
}

/// Runs `sh -c cmd` and returns the first line of its stdout, without the line
/// end. Stderr passes through (gpg and pass prompt there). On failure the
/// error names the exit status only: the output may be half a secret.
pub fn run_secret_command(cmd: &str, what: &str) -> Result<Secret, Error> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::config(format!("cannot run the {what}: {e}")))?;
    let mut output = Vec::new();
    let read = match child.stdout.take() {
        Some(mut out) => out.read_to_end(&mut output),
        None => Ok(0),
    };
    let status = child.wait();
    let result = match (read, status) {
        (Ok(_), Ok(status)) if status.success() => first_line(&output, what),
        (Ok(_), Ok(status)) => Err(Error::config(format!("the {what} failed ({status})"))),
        (Err(e), _) | (_, Err(e)) => {
            Err(Error::config(format!("the {what} could not be read: {e}")))
        }
    };
    output.zeroize();
    result
}

/// The first line of a password file.
pub fn read_secret_file(path: &Path) -> Result<Secret, Error> {
    let mut bytes = std::fs::read(path).map_err(|e| {
        let exit = if e.kind() == std::io::ErrorKind::NotFound {
            Exit::Config
        } else {
            Exit::NoPerm
        };
        Error::new(
            exit,
            format!(
                "password file {}: {}",
                path.display(),
                Error::from(e).message()
            ),
        )
    })?;
    let result = first_line(&bytes, &format!("password file {}", path.display()));
    bytes.zeroize();
    result
}

fn first_line(bytes: &[u8], what: &str) -> Result<Secret, Error> {
    let end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
    let line = &bytes[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(Error::config(format!("the {what} gave an empty password")));
    }
    match std::str::from_utf8(line) {
        Ok(s) => Ok(Secret::new(s)),
        Err(_) => Err(Error::config(format!(
            "the {what} gave a password that is not UTF-8"
        ))),
    }
}

/// One `machine` (or `default`) entry of a netrc file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetrcEntry {
    /// `None` for the `default` entry.
    pub machine: Option<String>,
    pub login: Option<String>,
    pub password: Option<Secret>,
}

/// Parses netrc text (the ftp(1)/curl format): whitespace-separated tokens
/// `machine NAME`, `default`, `login NAME`, `password PW`, `account X`,
/// `macdef NAME` (skipped to the next blank line); `"quoted tokens"` allowed.
pub fn parse_netrc(text: &str) -> Vec<NetrcEntry> {
    let mut entries: Vec<NetrcEntry> = Vec::new();
    let mut tokens = NetrcTokens { rest: text };
    while let Some(token) = tokens.next_token() {
        match token.as_str() {
            "machine" => entries.push(NetrcEntry {
                machine: Some(tokens.next_token().unwrap_or_default().to_ascii_lowercase()),
                login: None,
                password: None,
            }),
            "default" => entries.push(NetrcEntry {
                machine: None,
                login: None,
                password: None,
            }),
            "login" | "password" | "account" => {
                let mut value = tokens.next_token().unwrap_or_default();
                if let Some(entry) = entries.last_mut() {
                    match token.as_str() {
                        "login" => entry.login = Some(value.clone()),
                        "password" => entry.password = Some(Secret::new(value.clone())),
                        _ => {}
                    }
                }
                value.zeroize();
            }
            "macdef" => tokens.skip_macro(),
            _ => {}
        }
    }
    entries
}

/// The entry for `host` (and `login`, when given), else `default`'s. An
/// unreadable file that exists is an error; a missing one is simply no entry.
pub fn netrc_lookup(
    path: &Path,
    host: &str,
    login: Option<&str>,
) -> Result<Option<NetrcEntry>, Error> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::config(format!(
                "netrc file {}: {}",
                path.display(),
                Error::from(e).message()
            )))
        }
    };
    let entries = parse_netrc(&text);
    text.zeroize();
    let host = host.to_ascii_lowercase();
    let login_matches = |e: &NetrcEntry| match (login, &e.login) {
        (None, _) | (_, None) => true,
        (Some(want), Some(have)) => want == have,
    };
    let found = entries
        .iter()
        .find(|e| e.machine.as_deref() == Some(host.as_str()) && login_matches(e))
        .or_else(|| {
            entries
                .iter()
                .find(|e| e.machine.is_none() && login_matches(e))
        });
    Ok(found.cloned())
}

struct NetrcTokens<'a> {
    rest: &'a str,
}

impl NetrcTokens<'_> {
    fn next_token(&mut self) -> Option<String> {
        self.rest = self.rest.trim_start();
        if self.rest.is_empty() {
            return None;
        }
        if let Some(quoted) = self.rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        self.rest = &quoted[i + 1..];
                        return Some(out);
                    }
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            out.push(next);
                        }
                    }
                    c => out.push(c),
                }
            }
            self.rest = "";
            return Some(out);
        }
        let end = self
            .rest
            .find(char::is_whitespace)
            .unwrap_or(self.rest.len());
        let token = self.rest[..end].to_string();
        self.rest = &self.rest[end..];
        Some(token)
    }

    fn skip_macro(&mut self) {
        match self.rest.find("\n\n") {
            Some(i) => self.rest = &self.rest[i + 2..],
            None => self.rest = "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn secret_never_formats() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "hunter2");
        let src = PasswordSource::Command("echo hunter2".into());
        assert!(!format!("{src:?}").contains("hunter2"));
    }

    #[test]
    fn command_first_line_without_newline() {
        let s = run_secret_command("printf 'pa ss\\r\\nsecond\\n'", "password command")
            .expect("command succeeds");
        assert_eq!(s.expose(), "pa ss");
    }

    #[test]
    fn failing_command_does_not_leak_output() {
        let e =
            run_secret_command("echo hunter2; exit 3", "password command").expect_err("must fail");
        assert_eq!(e.exit(), Exit::Config);
        assert!(!e.message().contains("hunter2"), "{}", e.message());
        assert!(e.message().contains("3"), "{}", e.message());
        let e = run_secret_command("true", "password command").expect_err("empty");
        assert!(e.message().contains("empty"));
    }

    #[test]
    fn password_file_first_line() {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(b"s3cret\nignored\n").expect("write");
        assert_eq!(read_secret_file(f.path()).expect("read").expose(), "s3cret");
        let e = read_secret_file(Path::new("/nonexistent/pw")).expect_err("missing");
        assert_eq!(e.exit(), Exit::Config);
        assert!(e.message().contains("/nonexistent/pw"));
    }

    #[test]
    fn netrc_parsing() {
        let text = "machine imap.example.org login alice password \"a b\\\"c\"\n\
                    macdef init\ncd /\nls\n\n\
                    machine IMAP.example.org\n  login bob\n  password bobpw\n\
                    default login anon password anonpw\n";
        let entries = parse_netrc(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].machine.as_deref(), Some("imap.example.org"));
        assert_eq!(
            entries[0].password.as_ref().map(|p| p.expose()),
            Some("a b\"c")
        );
        assert_eq!(entries[1].login.as_deref(), Some("bob"));
        assert_eq!(entries[2].machine, None);
    }

    #[test]
    fn netrc_lookup_matches_host_and_login() {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(
            b"machine h login alice password apw\nmachine h login bob password bpw\n\
              default login anon password dpw\n",
        )
        .expect("write");
        let pw = |host: &str, login: Option<&str>| {
            netrc_lookup(f.path(), host, login)
                .expect("readable")
                .and_then(|e| e.password)
                .map(|p| p.expose().to_string())
        };
        assert_eq!(pw("h", Some("bob")).as_deref(), Some("bpw"));
        assert_eq!(pw("H", None).as_deref(), Some("apw"));
        assert_eq!(pw("other", None).as_deref(), Some("dpw"));
        assert_eq!(pw("h", Some("carol")), None);
        assert!(netrc_lookup(Path::new("/nonexistent/netrc"), "h", None)
            .expect("missing is fine")
            .is_none());
    }

    #[test]
    fn default_source_order() {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(b"machine h login alice password netrcpw\n")
            .expect("write");
        let netrc = f.path().to_string_lossy().to_string();
        let get = |env: Environment| {
            fetch_password(
                &PasswordSource::Default,
                Protocol::Imap,
                "h",
                Some("alice"),
                &env,
            )
            .map(|s| s.expose().to_string())
        };
        let all = Environment::fixed([
            ("IMAP_PASSWORD", "imappw"),
            ("MAILPIPE_PASSWORD", "mppw"),
            ("NETRC", netrc.as_str()),
        ]);
        assert_eq!(get(all).ok().as_deref(), Some("imappw"));
        let env = Environment::fixed([("SMTP_PASSWORD", "x"), ("MAILPIPE_PASSWORD", "mppw")]);
        assert_eq!(get(env).ok().as_deref(), Some("mppw"));
        let env = Environment::fixed([("NETRC", netrc.as_str())]);
        assert_eq!(get(env).ok().as_deref(), Some("netrcpw"));
        let e = get(Environment::fixed([("HOME", "/nonexistent")])).expect_err("none");
        assert_eq!(e.exit(), Exit::Config);
        let e = fetch_password(
            &PasswordSource::Env("MY_PW".into()),
            Protocol::Smtp,
            "h",
            None,
            &Environment::fixed([("SMTP_PASSWORD", "x")]),
        )
        .expect_err("unset password_env is an error");
        assert!(e.message().contains("MY_PW"));
    }
}
