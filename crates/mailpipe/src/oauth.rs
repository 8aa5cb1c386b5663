//! OAuth 2 over SASL, once for the three network tools: the XOAUTH2 and
//! OAUTHBEARER (RFC 7628) messages, which of them to use, the reason a
//! server gives in its error challenge, and the one refresh: a refused token
//! makes the tool run the token command again (an access token expires after
//! about an hour; the command's refresh-token helper hands out a new one) and
//! try once more before giving up with 77.

use base64::Engine;
use zeroize::Zeroizing;

use crate::exit::{Error, Exit};
use crate::secret::Secret;
use crate::Endpoint;

/// The two OAuth 2 SASL mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OAuthMechanism {
    /// Google's and Microsoft's XOAUTH2 (what Outlook/Microsoft 365 take).
    Xoauth2,
    /// RFC 7628's OAUTHBEARER, the standard one (Gmail, Dovecot).
    Oauthbearer,
}

impl OAuthMechanism {
    /// The SASL name, as servers list it.
    pub fn name(self) -> &'static str {
        match self {
            OAuthMechanism::Xoauth2 => "XOAUTH2",
            OAuthMechanism::Oauthbearer => "OAUTHBEARER",
        }
    }

    /// The account key's value (`oauth_mechanism = "oauthbearer"`).
    pub fn parse(value: &str) -> Option<OAuthMechanism> {
        match value.to_ascii_lowercase().as_str() {
            "xoauth2" => Some(OAuthMechanism::Xoauth2),
            "oauthbearer" => Some(OAuthMechanism::Oauthbearer),
            _ => None,
        }
    }

    /// `wanted` if set; else OAUTHBEARER when the server offers it (the
    /// standard, and what a server that offers both documents first), else
    /// XOAUTH2: what Microsoft offers, and the guess when a server lists no
    /// mechanisms at all (Microsoft's POP3 does not).
    pub fn choose(wanted: Option<OAuthMechanism>, offers: impl Fn(&str) -> bool) -> OAuthMechanism {
        match wanted {
            Some(m) => m,
            None if offers("OAUTHBEARER") => OAuthMechanism::Oauthbearer,
            None => OAuthMechanism::Xoauth2,
        }
    }

    /// The client's first message, before base64: XOAUTH2's
    /// `user=U^Aauth=Bearer T^A^A`, OAUTHBEARER's GS2 header and key-value
    /// pairs `n,a=U,^Aauth=Bearer T^A^A` (RFC 7628 3.1; `,` and `=` in the
    /// user escaped as RFC 5801 says).
    pub fn initial_response(self, user: &str, token: &Secret) -> Zeroizing<String> {
        let t = token.expose();
        Zeroizing::new(match self {
            OAuthMechanism::Xoauth2 => format!("user={user}\x01auth=Bearer {t}\x01\x01"),
            OAuthMechanism::Oauthbearer => {
                let user = user.replace('=', "=3D").replace(',', "=2C");
                format!("n,a={user},\x01auth=Bearer {t}\x01\x01")
            }
        })
    }

    /// `initial_response` in base64, as every protocol sends it.
    pub fn encoded(self, user: &str, token: &Secret) -> Zeroizing<String> {
        let raw = self.initial_response(user, token);
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()))
    }

    /// The client's answer to an error challenge, before base64, after which
    /// the server sends its final refusal: XOAUTH2 an empty response,
    /// OAUTHBEARER a single %x01 (RFC 7628 3.2.3).
    pub fn abort(self) -> &'static [u8] {
        match self {
            OAuthMechanism::Xoauth2 => b"",
            OAuthMechanism::Oauthbearer => b"\x01",
        }
    }

    /// `abort` in base64 (an empty line for XOAUTH2).
    pub fn abort_encoded(self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.abort())
    }
}

/// What an error challenge (base64 of RFC 7628's JSON,
/// `{"status":"invalid_token","scope":"..."}`) says, for the error line:
/// `status invalid_token, scope mail`. `None` when it is not that JSON.
pub fn challenge_reason(challenge: &str) -> Option<String> {
    let json = base64::engine::general_purpose::STANDARD
        .decode(challenge.trim())
        .ok()?;
    decoded_challenge_reason(&json)
}

/// `challenge_reason` of a challenge already decoded from base64.
pub fn decoded_challenge_reason(json: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    let object = value.as_object()?;
    let field = |name: &str| match object.get(name)? {
        serde_json::Value::String(s) => Some(printable(s)),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let parts: Vec<String> = ["status", "error", "error_description", "scope"]
        .iter()
        .filter_map(|&name| field(name).map(|v| format!("{name} {v}")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Server text as one printable line of at most 200 characters.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

/// The server's final refusal and, when it sent one, the reason in its error
/// challenge, as one piece of text.
pub fn refusal(reply: &str, challenge: Option<&str>) -> String {
    match challenge {
        Some(reason) => format!("{} ({reason})", reply.trim()),
        None => reply.trim().to_string(),
    }
}

/// The token command's tokens for one login: the first, and one refresh
/// after the server refused it; a second refusal is the error.
pub struct Tokens<'a> {
    endpoint: &'a Endpoint,
    refreshed: bool,
}

impl<'a> Tokens<'a> {
    pub fn new(endpoint: &'a Endpoint) -> Tokens<'a> {
        Tokens {
            endpoint,
            refreshed: false,
        }
    }

    /// The first token: the one this run's other connections use, else
    /// the token command's output.
    pub fn first(&self) -> Result<Secret, Error> {
        self.endpoint.oauth_token()
    }

    /// After the server refused a token with `refusal` (its words): the
    /// token command's next output, once; the second time, the error (77,
    /// naming the server's words, never the token).
    pub fn refresh(&mut self, mechanism: OAuthMechanism, refusal: &str) -> Result<Secret, Error> {
        if self.refreshed {
            return Err(Error::new(
                Exit::NoPerm,
                format!(
                    "{}: {} authentication failed, also with a fresh token from the token \
                     command: {refusal}",
                    self.endpoint.url,
                    mechanism.name()
                ),
            ));
        }
        self.refreshed = true;
        self.endpoint.fresh_oauth_token()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn messages_of_both_mechanisms() {
        let token = Secret::new("ya29.tok");
        assert_eq!(
            OAuthMechanism::Xoauth2
                .initial_response("me@example.org", &token)
                .as_str(),
            "user=me@example.org\x01auth=Bearer ya29.tok\x01\x01"
        );
        assert_eq!(
            OAuthMechanism::Oauthbearer
                .initial_response("a,b=c@example.org", &token)
                .as_str(),
            "n,a=a=2Cb=3Dc@example.org,\x01auth=Bearer ya29.tok\x01\x01"
        );
        assert_eq!(
            OAuthMechanism::Xoauth2.encoded("u", &token).as_str(),
            b64(b"user=u\x01auth=Bearer ya29.tok\x01\x01")
        );
        assert_eq!(OAuthMechanism::Xoauth2.abort_encoded(), "");
        assert_eq!(OAuthMechanism::Oauthbearer.abort_encoded(), "AQ==");
    }

    #[test]
    fn choice_prefers_oauthbearer_when_offered() {
        let both = |m: &str| m == "XOAUTH2" || m == "OAUTHBEARER";
        let xoauth2 = |m: &str| m == "XOAUTH2";
        assert_eq!(
            OAuthMechanism::choose(None, both),
            OAuthMechanism::Oauthbearer
        );
        assert_eq!(
            OAuthMechanism::choose(None, xoauth2),
            OAuthMechanism::Xoauth2
        );
        assert_eq!(
            OAuthMechanism::choose(None, |_| false),
            OAuthMechanism::Xoauth2
        );
        assert_eq!(
            OAuthMechanism::choose(Some(OAuthMechanism::Xoauth2), both),
            OAuthMechanism::Xoauth2
        );
        assert_eq!(
            OAuthMechanism::parse("OAuthBearer"),
            Some(OAuthMechanism::Oauthbearer)
        );
        assert_eq!(OAuthMechanism::parse("plain"), None);
    }

    /// One run of the token command for all the connections of a run; a
    /// refresh runs it again, for all of them; refused twice is 77.
    #[test]
    fn the_token_command_runs_once_per_run_and_once_per_refresh() {
        let dir = tempfile::tempdir().expect("temp dir");
        let runs = dir.path().join("runs");
        let command = format!(
            "echo x >> '{r}'; echo tok-$(wc -l < '{r}' | tr -d ' ')",
            r = runs.display()
        );
        let endpoint = crate::ServerArgs {
            server: Some("imaps://imap.example.org".to_string()),
            user: Some("me".to_string()),
            oauth_token_command: Some(command),
            timeout: 60,
            ..Default::default()
        }
        .resolve_in(
            crate::Protocol::Imap,
            &crate::secret::Environment::fixed([("HOME", "/nonexistent")]),
        )
        .expect("endpoint");
        let helper = endpoint.clone();
        let first = |e: &Endpoint| Tokens::new(e).first().expect("token").expose().to_string();
        assert_eq!(first(&endpoint), "tok-1");
        assert_eq!(first(&helper), "tok-1", "a second connection runs nothing");
        let mut tokens = Tokens::new(&helper);
        let fresh = tokens
            .refresh(OAuthMechanism::Oauthbearer, "NO expired")
            .expect("refreshed");
        assert_eq!(fresh.expose(), "tok-2");
        assert_eq!(
            first(&endpoint),
            "tok-2",
            "the refresh serves every connection"
        );
        let e = tokens
            .refresh(
                OAuthMechanism::Oauthbearer,
                "NO [AUTHENTICATIONFAILED] nope",
            )
            .expect_err("refused twice");
        assert_eq!(e.exit(), Exit::NoPerm);
        assert!(
            e.message().contains("OAUTHBEARER")
                && e.message().contains("NO [AUTHENTICATIONFAILED] nope"),
            "{}",
            e.message()
        );
        assert!(!e.message().contains("tok-"), "{}", e.message());
        assert_eq!(
            std::fs::read_to_string(&runs)
                .expect("runs")
                .lines()
                .count(),
            2
        );
    }

    #[test]
    fn error_challenges_are_read() {
        // Dovecot's, for XOAUTH2 and OAUTHBEARER; Gmail's.
        assert_eq!(
            challenge_reason(
                "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIn0="
            )
            .as_deref(),
            Some("status 401, scope mail")
        );
        assert_eq!(
            challenge_reason("eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=").as_deref(),
            Some("status invalid_token")
        );
        let gmail = br#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;
        assert_eq!(
            challenge_reason(&b64(gmail)).as_deref(),
            Some("status 400, scope https://mail.google.com/")
        );
        assert_eq!(challenge_reason("not base64!"), None);
        assert_eq!(challenge_reason(&b64(b"[1]")), None);
        assert_eq!(challenge_reason(""), None);
        assert_eq!(
            refusal(
                " NO [AUTHENTICATIONFAILED] Authentication failed. ",
                Some("status 401")
            ),
            "NO [AUTHENTICATIONFAILED] Authentication failed. (status 401)"
        );
    }
}
