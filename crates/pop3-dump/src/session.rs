//! Opening a POP3 session the safe way: connect (TLS from the first byte for
//! pop3s://), or greet, CAPA and STLS for pop3://, refusing to go on in
//! plaintext when STLS is missing; then log in with AUTH PLAIN where the
//! server offers it, else USER/PASS, or with an OAuth token (OAUTHBEARER,
//! XOAUTH2). No credential is fetched, let alone sent,
//! before TLS is up (unless the user allowed plaintext).

use mailpipe::oauth::{self, OAuthMechanism, Tokens};
use mailpipe::tls::{Stream, GOODBYE_WAIT};
use mailpipe::wire;
use mailpipe::{Dialect, Endpoint, Error, Exit, Security, TranscriptStream};

use crate::protocol::{Capabilities, Client};

/// The connection as the protocol code sees it: TLS (or plain, if allowed),
/// logged to the `-v` transcript.
pub type Connection = TranscriptStream<Stream>;

/// A logged-in POP3 session in the TRANSACTION state.
pub struct Session {
    pub client: Client<Connection>,
    /// Capabilities as announced after login.
    pub capabilities: Capabilities,
}

impl Session {
    /// Connects, secures and logs in.
    pub fn open(endpoint: &Endpoint) -> Result<Session, Error> {
        let config = endpoint.tls_config()?;
        let stream = endpoint.open(&config)?;
        let transcript = endpoint.transcript(Dialect::Pop3);
        let mut client = Client::new(TranscriptStream::new(stream, transcript), endpoint.timeout);
        client.greeting()?;
        let mut capabilities = client.capa()?;
        if endpoint.url.security == Security::StartTls {
            client = start_tls(client, &capabilities, endpoint, &config)?;
            // RFC 2595: what the server said before TLS may have been forged.
            capabilities = client.capa()?;
        }
        if let Err(e) = log_in(&mut client, &capabilities, endpoint) {
            if e.exit() == Exit::NoPerm {
                // QUIT, valid before login too (RFC 1939), best-effort: a
                // client that hangs up after a refused login is logged as an
                // I/O error by some servers (GNU Mailutils pop3d).
                client.get_mut().get_ref().prepare_goodbye();
                client.set_timeout(GOODBYE_WAIT);
                let _ = client.quit();
            }
            return Err(e);
        }
        // RFC 2449: capabilities may change after login (Dovecot adds PIPELINING).
        let capabilities = client.capa()?;
        Ok(Session {
            client,
            capabilities,
        })
    }
}

impl Session {
    /// Ends the session after `result`. After an error (unless the
    /// connection was lost or timed out: 75) it sends RSET, so that no DELE
    /// is committed by a failed run, and QUIT, best-effort and within
    /// `GOODBYE_WAIT`, so that the server logs a clean close.
    pub fn finish(&mut self, result: Result<(), Error>) -> Result<(), Error> {
        if let Err(e) = &result {
            if e.exit() != Exit::TempFail && !self.client.quit_sent() {
                self.client.get_mut().get_ref().prepare_goodbye();
                self.client.set_timeout(GOODBYE_WAIT);
                let _ = self.client.command("RSET", "reply to RSET");
                let _ = self.client.quit();
            }
        }
        result
    }
}

fn start_tls(
    mut client: Client<Connection>,
    capabilities: &Capabilities,
    endpoint: &Endpoint,
    config: &std::sync::Arc<rustls::ClientConfig>,
) -> Result<Client<Connection>, Error> {
    let refuse = |why: String| {
        Error::new(
            Exit::Unavailable,
            format!(
                "{why}; refusing to continue without TLS (use pop3s://, or --tls none \
                 --allow-plaintext-auth if you really mean plaintext)"
            ),
        )
    };
    // A server that lists its capabilities and leaves STLS out does not have
    // it; one without CAPA may still answer STLS, so we ask.
    if capabilities.known && !capabilities.stls {
        return Err(refuse("the server does not offer STLS".to_string()));
    }
    let status = client.stls()?;
    if !status.ok {
        return Err(refuse(format!(
            "the server refused STLS: {}",
            status.describe()
        )));
    }
    let wire = wire::start_tls(client.into_wire(), "STLS", &endpoint.url.host, config)?;
    Ok(Client::from_wire(wire))
}

fn log_in(
    client: &mut Client<Connection>,
    capabilities: &Capabilities,
    endpoint: &Endpoint,
) -> Result<(), Error> {
    let user = endpoint.login()?.to_string();
    if endpoint.uses_oauth() {
        return with_token(client, capabilities, endpoint, &user);
    }
    let plain = capabilities.sasl.iter().any(|m| m == "PLAIN");
    if capabilities.known && !plain && !capabilities.user {
        return Err(Error::new(
            Exit::Unavailable,
            format!(
                "the server offers neither AUTH PLAIN nor USER/PASS (SASL: {})",
                capabilities.sasl.join(" ")
            ),
        ));
    }
    endpoint.check_auth_allowed(client.get_mut().get_ref().is_tls())?;
    let password = endpoint.password()?;
    if let Some(t) = client.get_mut().transcript() {
        t.add_credentials(&user, &password);
    }
    let status = if plain {
        client.auth_plain(&user, password.expose())?
    } else {
        client.user_pass(&user, password.expose())?
    };
    if !status.ok {
        return Err(Error::new(
            status.auth_failure_exit(),
            status.auth_failure_reason(&user),
        ));
    }
    Ok(())
}

/// AUTH OAUTHBEARER or XOAUTH2 with the token command's token, and once more
/// with a fresh one if the server refuses it. The initial response goes on
/// the AUTH line when the server lists the mechanism in CAPA's SASL (RFC
/// 5034); Microsoft's lists none, and gets AUTH XOAUTH2, `+`, the token.
fn with_token(
    client: &mut Client<Connection>,
    capabilities: &Capabilities,
    endpoint: &Endpoint,
    user: &str,
) -> Result<(), Error> {
    let offers = |m: &str| capabilities.sasl.iter().any(|s| s.eq_ignore_ascii_case(m));
    let mechanism = OAuthMechanism::choose(endpoint.oauth_mechanism, offers);
    endpoint.check_auth_allowed(client.get_mut().get_ref().is_tls())?;
    let mut tokens = Tokens::new(endpoint);
    let mut token = tokens.first()?;
    loop {
        if let Some(t) = client.get_mut().transcript() {
            t.add_credentials(user, &token);
        }
        let first = mechanism.initial_response(user, &token);
        let (status, challenge) = client.auth(
            mechanism.name(),
            first.as_bytes(),
            mechanism.abort(),
            offers(mechanism.name()),
        )?;
        if status.ok {
            return Ok(());
        }
        // In use, too soon, the server's trouble: not the token's fault.
        if status.auth_failure_exit() != Exit::NoPerm {
            return Err(Error::new(
                status.auth_failure_exit(),
                status.auth_failure_reason(user),
            ));
        }
        let reason = challenge.as_deref().and_then(oauth::challenge_reason);
        let said = oauth::refusal(&status.describe(), reason.as_deref());
        token = tokens.refresh(mechanism, &said)?;
    }
}
