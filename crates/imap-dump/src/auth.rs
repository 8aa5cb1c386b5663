//! Logging in: LOGIN with a password it can quote, else AUTHENTICATE PLAIN;
//! with `oauth_token_command`, AUTHENTICATE OAUTHBEARER or XOAUTH2, a token
//! the server refuses being refreshed once (`mailpipe::oauth`). Where the
//! server lists SASL-IR (RFC 4959) the first response goes on the
//! AUTHENTICATE line, saving a round trip, unless --no-sasl-ir: Coremail
//! lists SASL-IR and then rejects it.

use std::cell::RefCell;

use imap::{Authenticator, Client};
use mailpipe::oauth::{self, OAuthMechanism, Tokens};
use mailpipe::{Endpoint, Error, Exit, Security};
use zeroize::Zeroizing;

use crate::session::{imap_error, listed_capabilities, logout_refused, ImapStream};

/// Logs in as the endpoint says; `greeting` is the server's first line
/// (its capabilities, when it lists them), `sasl_ir` false for --no-sasl-ir.
/// A refused login (77) ends with LOGOUT, not a hang-up.
pub fn log_in(
    client: Client<ImapStream>,
    stream: &ImapStream,
    endpoint: &Endpoint,
    greeting: &[u8],
    sasl_ir: bool,
) -> Result<imap::Session<ImapStream>, Error> {
    let result = authenticate(client, stream, endpoint, greeting, sasl_ir);
    if let Err(e) = &result {
        if e.exit() == Exit::NoPerm {
            logout_refused(stream);
        }
    }
    result
}

fn authenticate(
    client: Client<ImapStream>,
    stream: &ImapStream,
    endpoint: &Endpoint,
    greeting: &[u8],
    sasl_ir: bool,
) -> Result<imap::Session<ImapStream>, Error> {
    let user = endpoint.login()?.to_string();
    if endpoint.uses_oauth() {
        return with_token(client, stream, endpoint, &user, greeting, sasl_ir);
    }
    let secret = endpoint.password()?;
    stream.add_credentials(&user, &secret);
    let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
    if printable(&user) && printable(secret.expose()) {
        // One round trip.
        return client
            .login(&user, secret.expose())
            .map_err(|(e, _)| refused(endpoint, e, false));
    }
    // LOGIN's quoted strings are 7-bit; SASL PLAIN carries UTF-8.
    let (client, caps) = capabilities(client, stream, endpoint, greeting, sasl_ir)?;
    let ir = sasl_ir && caps.has("SASL-IR");
    let auth = Sasl::new(
        Zeroizing::new(format!("\0{user}\0{}", secret.expose())),
        ir,
        b"",
    );
    client
        .authenticate(auth.command("PLAIN"), &auth)
        .map_err(|(e, _)| refused(endpoint, e, ir))
}

/// AUTHENTICATE with the token command's token, and once more with a fresh
/// one if the server refuses it.
fn with_token(
    client: Client<ImapStream>,
    stream: &ImapStream,
    endpoint: &Endpoint,
    user: &str,
    greeting: &[u8],
    sasl_ir: bool,
) -> Result<imap::Session<ImapStream>, Error> {
    let needed = sasl_ir || endpoint.oauth_mechanism.is_none();
    let (mut client, caps) = capabilities(client, stream, endpoint, greeting, needed)?;
    let mechanism =
        OAuthMechanism::choose(endpoint.oauth_mechanism, |m| caps.has(&format!("AUTH={m}")));
    let ir = sasl_ir && caps.has("SASL-IR");
    let mut tokens = Tokens::new(endpoint);
    let mut token = tokens.first()?;
    loop {
        stream.add_credentials(user, &token);
        let auth = Sasl::new(
            mechanism.initial_response(user, &token),
            ir,
            mechanism.abort(),
        );
        match client.authenticate(auth.command(mechanism.name()), &auth) {
            Ok(session) => return Ok(session),
            Err((imap::Error::No(no), again)) => {
                client = again;
                let said =
                    oauth::refusal(&format!("NO {}", no.information), auth.reason().as_deref());
                token = tokens.refresh(mechanism, &said)?;
            }
            Err((e, _)) => return Err(refused(endpoint, e, ir)),
        }
    }
}

/// What the server lists before login, upper case.
struct Capabilities(Vec<String>);

impl Capabilities {
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|c| c.eq_ignore_ascii_case(name))
    }
}

/// The capabilities before login: the greeting's (not over STARTTLS, where
/// they were said before TLS), else one CAPABILITY when `needed`.
fn capabilities(
    mut client: Client<ImapStream>,
    stream: &ImapStream,
    endpoint: &Endpoint,
    greeting: &[u8],
    needed: bool,
) -> Result<(Client<ImapStream>, Capabilities), Error> {
    if endpoint.url.security != Security::StartTls {
        if let Some(listed) = listed_capabilities(greeting) {
            return Ok((client, Capabilities(listed)));
        }
    }
    if !needed {
        return Ok((client, Capabilities(Vec::new())));
    }
    client.capabilities().map_err(|e| imap_error(endpoint, e))?;
    // Read from the reply as the server wrote it; those of after login are
    // what COMPRESS and ID look for, so the reply is forgotten.
    let listed = listed_capabilities(&stream.take_seen()).unwrap_or_default();
    Ok((client, Capabilities(listed)))
}

/// A refused login as the tool's error: 77, and where an initial response
/// was answered with BAD, what to do about it.
fn refused(endpoint: &Endpoint, e: imap::Error, initial_response: bool) -> Error {
    let url = &endpoint.url;
    match e {
        imap::Error::No(no) => Error::new(
            Exit::NoPerm,
            format!("{url}: authentication failed: {}", no.information),
        ),
        imap::Error::Bad(bad) if initial_response => Error::new(
            Exit::NoPerm,
            format!(
                "{url}: the server lists SASL-IR but refused AUTHENTICATE with an initial \
                 response ({}), as Coremail does: run again with --no-sasl-ir (account key \
                 sasl_ir = false)",
                bad.information
            ),
        ),
        imap::Error::Bad(bad) => Error::new(
            Exit::NoPerm,
            format!("{url}: authentication refused: {}", bad.information),
        ),
        other => imap_error(endpoint, other),
    }
}

/// A SASL exchange whose first response is known in advance (PLAIN,
/// XOAUTH2, OAUTHBEARER): sent on the AUTHENTICATE line (SASL-IR) or after
/// the server's first `+`; any later challenge is the server's error,
/// kept for the message and answered with `abort`.
struct Sasl {
    first: Zeroizing<String>,
    initial_response: bool,
    abort: &'static [u8],
    /// Whether `first` went out; the error challenge, if one came.
    state: RefCell<(bool, Option<Vec<u8>>)>,
}

impl Sasl {
    fn new(first: Zeroizing<String>, initial_response: bool, abort: &'static [u8]) -> Sasl {
        Sasl {
            first,
            initial_response,
            abort,
            state: RefCell::new((initial_response, None)),
        }
    }

    /// `AUTHENTICATE`'s argument: the mechanism, and the initial response
    /// (base64) with SASL-IR.
    fn command(&self, mechanism: &str) -> Zeroizing<String> {
        use base64::Engine;
        if !self.initial_response {
            return Zeroizing::new(mechanism.to_string());
        }
        let encoded =
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.first.as_bytes()));
        Zeroizing::new(format!("{mechanism} {}", encoded.as_str()))
    }

    /// The reason in the server's error challenge, if it sent one.
    fn reason(&self) -> Option<String> {
        let state = self.state.borrow();
        let challenge = state.1.as_ref()?;
        oauth::decoded_challenge_reason(challenge)
    }
}

impl Authenticator for Sasl {
    type Response = Vec<u8>;
    fn process(&self, challenge: &[u8]) -> Vec<u8> {
        let mut state = self.state.borrow_mut();
        if !state.0 {
            state.0 = true;
            return self.first.as_bytes().to_vec();
        }
        state.1 = Some(challenge.to_vec());
        self.abort.to_vec()
    }
}
