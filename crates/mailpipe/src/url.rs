//! Server URLs: `smtps://user@host:465` and friends, the one way every tool
//! names a server. The scheme says the protocol and how TLS starts; the port
//! defaults per scheme; a password in the URL is refused (it would sit in argv,
//! shell history and `ps`).

use std::fmt;
use std::str::FromStr;

use crate::exit::Error;

/// The mail protocol a tool speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Smtp,
    Imap,
    Pop3,
}

impl Protocol {
    /// The lower-case name used in URL schemes, account keys and env vars.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }

    /// The default port for a security mode: 465/587/25, 993/143, 995/110.
    pub fn default_port(self, security: Security) -> u16 {
        match (self, security) {
            (Protocol::Smtp, Security::Tls) => 465,
            (Protocol::Smtp, Security::StartTls) => 587,
            (Protocol::Smtp, Security::None) => 25,
            (Protocol::Imap, Security::Tls) => 993,
            (Protocol::Imap, Security::StartTls | Security::None) => 143,
            (Protocol::Pop3, Security::Tls) => 995,
            (Protocol::Pop3, Security::StartTls | Security::None) => 110,
        }
    }

    fn scheme(self, security: Security) -> &'static str {
        match (self, security) {
            (Protocol::Smtp, Security::Tls) => "smtps",
            (Protocol::Smtp, _) => "smtp",
            (Protocol::Imap, Security::Tls) => "imaps",
            (Protocol::Imap, _) => "imap",
            (Protocol::Pop3, Security::Tls) => "pop3s",
            (Protocol::Pop3, _) => "pop3",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the connection is protected: `--tls` and the accounts file's `tls`
/// key, which also takes the aliases (any case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Security {
    /// TLS from the first byte (smtps, imaps, pop3s).
    #[value(name = "tls", alias = "ssl", alias = "implicit")]
    Tls,
    /// Plain connect, then STARTTLS (SMTP, IMAP) or STLS (POP3); refused if
    /// the server does not offer it.
    // The tool must not go on without it: no silent downgrade.
    #[value(name = "starttls", alias = "stls")]
    StartTls,
    /// No encryption at all.
    // Only by explicit choice: `--tls none` or `tls = "none"`.
    #[value(name = "none", alias = "plain", alias = "off")]
    None,
}

impl FromStr for Security {
    type Err = Error;

    /// The accounts file's `tls` key: the names and aliases of `--tls`, any case.
    fn from_str(s: &str) -> Result<Security, Error> {
        <Security as clap::ValueEnum>::from_str(s, true)
            .map_err(|_| Error::usage(format!("unknown TLS mode {s:?}: use tls, starttls or none")))
    }
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Security::Tls => "tls",
            Security::StartTls => "starttls",
            Security::None => "none",
        })
    }
}

/// A parsed server URL. `Display` gives it back without secrets, with the port
/// always shown (`imaps://alice@imap.example.org:993`), for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl {
    pub protocol: Protocol,
    pub security: Security,
    /// Host name or IP address; IPv6 without brackets (`::1`).
    pub host: String,
    pub port: u16,
    /// A login name from `user@host`, percent-decoded.
    pub user: Option<String>,
}

impl ServerUrl {
    /// Parses `scheme://[user@]host[:port][/]`. `protocol`, when given, is the
    /// protocol the tool speaks: an `imaps://` URL handed to smtp-send is a
    /// usage error rather than a confusing failure later.
    pub fn parse(text: &str, protocol: Option<Protocol>) -> Result<ServerUrl, Error> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(Error::usage(format!(
                "server {:?} is not a URL: write e.g. smtps://host, imaps://host or pop3s://host",
                redact_userinfo(text)
            )));
        };
        let (proto, security) = match scheme.to_ascii_lowercase().as_str() {
            "smtps" => (Protocol::Smtp, Security::Tls),
            "smtp" | "submission" => (Protocol::Smtp, Security::StartTls),
            "imaps" => (Protocol::Imap, Security::Tls),
            "imap" => (Protocol::Imap, Security::StartTls),
            "pop3s" | "pops" => (Protocol::Pop3, Security::Tls),
            "pop3" | "pop" => (Protocol::Pop3, Security::StartTls),
            other => {
                return Err(Error::usage(format!(
                    "unknown URL scheme {other:?}: use smtps, smtp, imaps, imap, pop3s or pop3"
                )))
            }
        };
        if let Some(wanted) = protocol {
            if wanted != proto {
                return Err(Error::usage(format!(
                    "{} is a {proto} URL, but this tool speaks {wanted}",
                    redact_userinfo(text)
                )));
            }
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(Error::usage(format!(
                "server URL {} has a path or query; only scheme://[user@]host[:port] is used",
                redact_userinfo(text)
            )));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let user = match userinfo {
            None => None,
            Some(u) if u.contains(':') => {
                return Err(Error::usage(format!(
                    "server URL {} contains a password; passwords never go on the command \
                     line or in URLs: use --password-command, --password-file, an environment \
                     variable or ~/.netrc",
                    redact_userinfo(text)
                )))
            }
            Some("") => return Err(Error::usage("server URL has an empty user name before @")),
            Some(u) => Some(percent_decode(u)?),
        };
        let (host, port) = split_host_port(hostport, text)?;
        let port = port.unwrap_or_else(|| proto.default_port(security));
        Ok(ServerUrl {
            protocol: proto,
            security,
            host,
            port,
            user,
        })
    }

    /// `host:port`, with brackets around an IPv6 address, for `connect`.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for ServerUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<ServerUrl, Error> {
        ServerUrl::parse(s, None)
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.protocol.scheme(self.security))?;
        if let Some(user) = &self.user {
            write!(f, "{}@", percent_encode_user(user))?;
        }
        f.write_str(&self.host_port())
    }
}

fn split_host_port(hostport: &str, whole: &str) -> Result<(String, Option<u16>), Error> {
    let bad = || {
        Error::usage(format!(
            "server URL {} has no valid host[:port]",
            redact_userinfo(whole)
        ))
    };
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !valid_host {
        return Err(bad());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(Error::usage(format!(
                    "server URL {} has an invalid port {p:?}",
                    redact_userinfo(whole)
                )))
            }
        },
    };
    Ok((host.to_ascii_lowercase(), port))
}

/// The URL with anything between `://` and `@` that has a `:` replaced, so that
/// an error about a URL never repeats a password typed into it.
fn redact_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return match text.rsplit_once('@') {
            Some((_, host)) => format!("<redacted>@{host}"),
            None => text.to_string(),
        };
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}"),
            None => text.to_string(),
        },
        None => text.to_string(),
    }
}

/// User names like `alice%40example.org` (an address as login) are common.
fn percent_decode(s: &str) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(b) = hex else {
                return Err(Error::usage(format!(
                    "server URL user {s:?} has a bad %-escape"
                )));
            };
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::usage(format!("server URL user {s:?} is not UTF-8")))
}

fn percent_encode_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for b in user.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (Protocol, Security, String, u16, Option<String>) {
        let u = ServerUrl::parse(text, None).unwrap_or_else(|e| panic!("{text}: {e}"));
        (u.protocol, u.security, u.host, u.port, u.user)
    }

    #[test]
    fn schemes_and_default_ports() {
        use Protocol::*;
        use Security::*;
        let table = [
            (
                "smtps://mail.example.org",
                Smtp,
                Tls,
                "mail.example.org",
                465,
            ),
            (
                "smtp://mail.example.org",
                Smtp,
                StartTls,
                "mail.example.org",
                587,
            ),
            (
                "imaps://imap.example.org",
                Imap,
                Tls,
                "imap.example.org",
                993,
            ),
            (
                "imap://imap.example.org/",
                Imap,
                StartTls,
                "imap.example.org",
                143,
            ),
            ("pop3s://pop.qq.com", Pop3, Tls, "pop.qq.com", 995),
            ("pop3://pop.qq.com", Pop3, StartTls, "pop.qq.com", 110),
            (
                "SMTPS://Mail.Example.ORG:2465",
                Smtp,
                Tls,
                "mail.example.org",
                2465,
            ),
            ("imaps://127.0.0.1:10993", Imap, Tls, "127.0.0.1", 10993),
            ("imaps://[::1]:10993", Imap, Tls, "::1", 10993),
            ("pop3s://[::1]", Pop3, Tls, "::1", 995),
        ];
        for (text, p, s, h, port) in table {
            assert_eq!(
                ok(text),
                (p, s, h.to_string(), port, Option::<String>::None),
                "{text}"
            );
        }
    }

    #[test]
    fn user_part_is_decoded_and_displayed() {
        let u =
            ServerUrl::parse("imaps://alice%40example.org@imap.example.org", None).expect("valid");
        assert_eq!(u.user.as_deref(), Some("alice@example.org"));
        assert_eq!(
            u.to_string(),
            "imaps://alice%40example.org@imap.example.org:993"
        );
        let u = ServerUrl::parse("smtp://[::1]:2525", None).expect("valid");
        assert_eq!(u.to_string(), "smtp://[::1]:2525");
        assert_eq!(u.host_port(), "[::1]:2525");
    }

    #[test]
    fn password_in_url_is_refused_without_echo() {
        for text in [
            "smtps://alice:hunter2@mail.example.org",
            "hunter2:hunter2@x",
        ] {
            let e = ServerUrl::parse(text, None).expect_err("must refuse");
            assert!(!e.message().contains("hunter2"), "{}", e.message());
            assert_eq!(e.exit().code(), 64);
        }
        let e = ServerUrl::parse("smtps://alice:hunter2@mail.example.org", None).expect_err("x");
        assert!(e.message().contains("password"), "{}", e.message());
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        for text in [
            "mail.example.org",
            "http://example.org",
            "smtps://",
            "smtps://host:0",
            "smtps://host:99999",
            "smtps://host:abc",
            "smtps://[::1",
            "smtps://[nothex]:25",
            "smtps://host/path",
            "smtps://@host",
            "smtps://ho st",
        ] {
            let e = ServerUrl::parse(text, None).expect_err(text);
            assert_eq!(e.exit().code(), 64, "{text}");
        }
    }

    #[test]
    fn protocol_must_match_the_tool() {
        let e = ServerUrl::parse("imaps://h", Some(Protocol::Smtp)).expect_err("mismatch");
        assert!(e.message().contains("imap"));
        assert!(ServerUrl::parse("smtp://h", Some(Protocol::Smtp)).is_ok());
    }

    #[test]
    fn security_names() {
        assert_eq!("tls".parse::<Security>().ok(), Some(Security::Tls));
        assert_eq!(
            "STARTTLS".parse::<Security>().ok(),
            Some(Security::StartTls)
        );
        assert_eq!("none".parse::<Security>().ok(), Some(Security::None));
        assert!("insecure".parse::<Security>().is_err());
        // The accounts file's spellings, kept since --tls became a ValueEnum.
        for (text, mode) in [
            ("ssl", Security::Tls),
            ("Implicit", Security::Tls),
            ("stls", Security::StartTls),
            ("StartTLS", Security::StartTls),
            ("plain", Security::None),
            ("OFF", Security::None),
        ] {
            assert_eq!(text.parse::<Security>().ok(), Some(mode), "{text}");
        }
        assert_eq!(Protocol::Smtp.default_port(Security::None), 25);
    }
}
