//! One SMTP session over mailpipe's stream (TCP_NODELAY, our rustls config,
//! the `-v` transcript), driven with lettre's command and reply types: this
//! module is only the command/reply loop, with bounded reply reading, and the
//! mapping of replies to sysexits codes and per-recipient results.

use std::io::{Read, Write};
use std::str::FromStr;
use std::sync::Arc;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::commands::{Auth, Data, Ehlo, Mail, Noop, Quit, Rcpt, Rset, Starttls};
use lettre::transport::smtp::extension::{
    ClientId, Extension, MailBodyParameter, MailParameter, RcptParameter, ServerInfo,
};
use lettre::transport::smtp::response::Response;
use lettre::Address;
use mailpipe::oauth::{self, OAuthMechanism, Tokens};
use mailpipe::wire::{self, Timed, WireReader};
use mailpipe::{Dialect, Endpoint, Error, Exit, Security, Stream, TranscriptStream};
use zeroize::Zeroizing;

use crate::dsn::Dsn;
use crate::envelope::Envelope;
use crate::message;
use crate::reply::{refusal, RecipientResult, Reply, Transaction};

/// A reply line longer than this is not SMTP (RFC 5321 allows 512).
const MAX_REPLY_LINE: usize = 8 * 1024;
/// Lines of one multi-line reply (an EHLO lists a few dozen at most).
const MAX_REPLY_LINES: usize = 256;
/// Bytes of one BDAT chunk: the command line costs nothing beside it, and
/// a chunk is copied once on its way out.
const CHUNK: usize = 1024 * 1024;
/// A message up to this size goes in the flight with MAIL and RCPT when the
/// outcome is all or nothing: sending it for nothing to a refused recipient
/// costs less than a round trip.
const EAGER_CHUNK: usize = 64 * 1024;

/// An open, greeted, possibly encrypted and authenticated SMTP session.
pub struct Session {
    conn: WireReader<TranscriptStream<Stream>>,
    pub greeting: Reply,
    /// The last EHLO reply (after STARTTLS, the second one).
    pub ehlo: Reply,
    pub info: ServerInfo,
    /// The server's SIZE limit; `None` when it gave none or 0 (no limit).
    pub size_limit: Option<u64>,
    /// The login and mechanism used, when the session authenticated.
    pub authenticated: Option<(String, String)>,
    data_buf: Vec<u8>,
    /// The next message's commands, sent after this message's final `.` in
    /// the same write (RFC 2920 3.1); the next `send` reads their replies.
    ahead: Option<Vec<u8>>,
    /// Messages in the window (see `launch`), oldest first: whether each
    /// one's commands began with RSET.
    window: std::collections::VecDeque<bool>,
    /// A transaction judged by `land` ended without the message accepted:
    /// the session needs an RSET before the next MAIL FROM.
    dirty: bool,
    /// How the window stopped: the exit code and message of the error that
    /// ended the session, and whether it was the server's 421 (after which it
    /// processed nothing more) rather than a lost connection.
    stopped: Option<(Exit, String, bool)>,
    /// A 421 came in the window: the server processed nothing after it.
    saw_421: bool,
}

/// What became of a message sent in the window.
pub enum Landing {
    /// Judged exactly as `Session::send` judges it; `Err` when the session
    /// became unusable at it, or was lost before its replies came (its
    /// outcome is unknown, as when a final reply is lost).
    Judged(Result<Transaction, Error>),
    /// The server ended the session (421) before reading this message's
    /// commands: it was not taken, and can be sent again.
    NotSent(Error),
}

impl Session {
    /// Connects, reads the greeting, says EHLO, runs STARTTLS when the URL asks
    /// for it (refusing to go on if the server does not offer it) and
    /// authenticates when a login or token is configured, with `mechanism` or
    /// the best the server offers (PLAIN, then LOGIN; OAUTHBEARER, then
    /// XOAUTH2 with a token).
    pub fn open(
        endpoint: &Endpoint,
        config: &Arc<rustls::ClientConfig>,
        mechanism: Option<Mechanism>,
    ) -> Result<Session, Error> {
        let stream = endpoint.open(config)?;
        let mut conn = TranscriptStream::new(stream, endpoint.transcript(Dialect::Smtp));
        if let Some(t) = conn.transcript() {
            t.note(&format!("connected to {}", endpoint.url));
        }
        let placeholder = Reply {
            response: Response::from_str("220 -\r\n")
                .map_err(|e| Error::protocol(e.to_string()))?,
        };
        let mut session = Session {
            conn: WireReader::new(conn, endpoint.timeout),
            greeting: placeholder.clone(),
            ehlo: placeholder,
            info: ServerInfo::default(),
            size_limit: None,
            authenticated: None,
            data_buf: Vec::new(),
            ahead: None,
            window: Default::default(),
            dirty: false,
            stopped: None,
            saw_421: false,
        };
        session.note_tls();
        session.greeting = session.read_reply("the greeting")?;
        if session.greeting.code() != 220 {
            return Err(refusal("greeting", &session.greeting));
        }
        session.hello()?;
        if endpoint.url.security == Security::StartTls {
            session = session.start_tls(&endpoint.url.host, config)?;
        }
        session.authenticate(endpoint, mechanism)?;
        Ok(session)
    }

    fn note_tls(&mut self) {
        let text = self.tls_description();
        if let (Some(text), Some(t)) = (text, self.conn.get_mut().transcript()) {
            t.note(&format!("TLS: {text}"));
        }
    }

    /// `TLSv1_3, TLS13_AES_256_GCM_SHA384` when the connection is encrypted.
    pub fn tls_description(&self) -> Option<String> {
        match self.conn.get_ref().get_ref() {
            Stream::Tls(tls) => Some(format!(
                "{}, {}",
                tls.conn
                    .protocol_version()
                    .map_or("?".to_string(), |v| format!("{v:?}")),
                tls.conn
                    .negotiated_cipher_suite()
                    .map_or("?".to_string(), |s| format!("{:?}", s.suite()))
            )),
            Stream::Plain(_) => None,
        }
    }

    fn hello(&mut self) -> Result<(), Error> {
        let reply = self.command(&Ehlo::new(ClientId::default()), "EHLO")?;
        if !reply.is_positive_completion() {
            return Err(refusal("EHLO", &reply));
        }
        self.info = ServerInfo::from_response(&reply.response)
            .map_err(|e| Error::protocol(format!("unreadable EHLO reply: {e}")))?;
        self.size_limit = reply
            .response
            .message()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let keyword = words.next()?;
                keyword.eq_ignore_ascii_case("SIZE").then(|| words.next())?
            })
            .find_map(|n| n.parse::<u64>().ok())
            .filter(|&n| n > 0);
        self.ehlo = reply;
        Ok(())
    }

    fn start_tls(
        mut self,
        host: &str,
        config: &Arc<rustls::ClientConfig>,
    ) -> Result<Session, Error> {
        if !self.info.supports_feature(Extension::StartTls) {
            return Err(Error::new(
                Exit::Unavailable,
                "TLS: the server does not offer STARTTLS; refusing to go on without TLS \
                 (use smtps://, or --tls none to send in plaintext)",
            ));
        }
        let reply = self.command(&Starttls, "STARTTLS")?;
        if reply.code() != 220 {
            return Err(Error::new(
                if reply.is_temporary() {
                    Exit::TempFail
                } else {
                    Exit::Unavailable
                },
                format!("TLS: STARTTLS refused: {}", reply.summary()),
            ));
        }
        let conn = wire::start_tls(self.conn, "STARTTLS", host, config)?;
        // The same session over TLS: everything else stays as it was.
        let mut session = Session { conn, ..self };
        session.note_tls();
        session.hello()?;
        Ok(session)
    }

    fn authenticate(
        &mut self,
        endpoint: &Endpoint,
        wanted: Option<Mechanism>,
    ) -> Result<(), Error> {
        let oauth = endpoint.uses_oauth() || wanted == Some(Mechanism::Xoauth2);
        if endpoint.user.is_none() && !oauth {
            return Ok(());
        }
        // Before anything secret is fetched or sent.
        endpoint.check_auth_allowed(self.conn.get_ref().get_ref().is_tls())?;
        let login = endpoint.login()?.to_string();
        if oauth {
            return self.authenticate_with_token(endpoint, login);
        }
        let candidates: Vec<Mechanism> = match wanted {
            Some(m) => vec![m],
            None => vec![Mechanism::Plain, Mechanism::Login],
        };
        let Some(mechanism) = self.info.get_auth_mechanism(&candidates) else {
            let names: Vec<String> = candidates.iter().map(|m| m.to_string()).collect();
            return Err(Error::new(
                Exit::Unavailable,
                format!(
                    "the server offers no AUTH {} (it offers: {})",
                    names.join(" or "),
                    self.offered_auth()
                        .unwrap_or_else(|| "no AUTH at all".to_string())
                ),
            ));
        };
        let secret = endpoint.password()?;
        if let Some(t) = self.conn.get_mut().transcript() {
            t.add_credentials(&login, &secret);
        }
        let credentials = Credentials::new(login.clone(), secret.expose().to_string());
        let bad_auth =
            |e: lettre::transport::smtp::Error| Error::protocol(format!("AUTH {mechanism}: {e}"));
        let first = Auth::new(mechanism, credentials.clone(), None).map_err(bad_auth)?;
        let mut reply = self.command(&first, "AUTH")?;
        let mut rounds = 0;
        while reply.code() == 334 {
            rounds += 1;
            if rounds > 4 {
                return Err(Error::protocol(format!(
                    "AUTH {mechanism}: too many challenges"
                )));
            }
            let next = Auth::new_from_response(mechanism, credentials.clone(), &reply.response)
                .map_err(bad_auth)?;
            reply = self.command(&next, "AUTH")?;
        }
        if reply.code() != 235 {
            let exit = if reply.is_temporary() {
                Exit::TempFail
            } else {
                Exit::NoPerm
            };
            return Err(Error::new(
                exit,
                format!("authentication as {login} failed: {}", reply.summary()),
            ));
        }
        self.authenticated = Some((login, mechanism.to_string()));
        Ok(())
    }

    /// AUTH OAUTHBEARER or XOAUTH2 with the token command's token, and once
    /// more with a fresh one if the server refuses it (535); its error
    /// challenge (334 and JSON) is answered as each mechanism says.
    fn authenticate_with_token(&mut self, endpoint: &Endpoint, login: String) -> Result<(), Error> {
        let offered = self.offered_auth().unwrap_or_default();
        let offers = |m: &str| {
            offered
                .split_whitespace()
                .any(|o| o.eq_ignore_ascii_case(m))
        };
        let mechanism = OAuthMechanism::choose(endpoint.oauth_mechanism, offers);
        if !offers(mechanism.name()) {
            return Err(Error::new(
                Exit::Unavailable,
                format!(
                    "the server offers no AUTH {} (it offers: {})",
                    match endpoint.oauth_mechanism {
                        Some(m) => m.name(),
                        None => "OAUTHBEARER or XOAUTH2",
                    },
                    self.offered_auth()
                        .unwrap_or_else(|| "no AUTH at all".to_string())
                ),
            ));
        }
        let mut tokens = Tokens::new(endpoint);
        let mut token = tokens.first()?;
        loop {
            if let Some(t) = self.conn.get_mut().transcript() {
                t.add_credentials(&login, &token);
            }
            let line = Zeroizing::new(format!(
                "AUTH {} {}\r\n",
                mechanism.name(),
                mechanism.encoded(&login, &token).as_str()
            ));
            let mut reply = self.command(&line.as_str(), "AUTH")?;
            let mut reason = None;
            if reply.code() == 334 {
                reason = oauth::challenge_reason(&reply.text());
                let abort = format!("{}\r\n", mechanism.abort_encoded());
                reply = self.command(&abort, "AUTH")?;
            }
            if reply.code() == 235 {
                self.authenticated = Some((login, mechanism.name().to_string()));
                return Ok(());
            }
            if reply.code() == 334 {
                return Err(Error::protocol(format!(
                    "AUTH {}: too many challenges",
                    mechanism.name()
                )));
            }
            if reply.is_temporary() {
                return Err(Error::new(
                    Exit::TempFail,
                    format!("authentication as {login} failed: {}", reply.summary()),
                ));
            }
            let said = oauth::refusal(&reply.summary(), reason.as_deref());
            token = tokens.refresh(mechanism, &said)?;
        }
    }

    /// The AUTH line of the EHLO reply, e.g. `PLAIN LOGIN`.
    pub fn offered_auth(&self) -> Option<String> {
        self.extensions().into_iter().find_map(|line| {
            let rest = line
                .strip_prefix("AUTH ")
                .or_else(|| line.strip_prefix("AUTH="))?;
            Some(rest.to_string())
        })
    }

    /// The EHLO keywords with their parameters, one per line (without the first line).
    pub fn extensions(&self) -> Vec<String> {
        self.ehlo
            .response
            .message()
            .skip(1)
            .map(str::to_string)
            .collect()
    }

    /// Refuses, before MAIL FROM, what would be garbled or bounced later:
    /// 8-bit data without 8BITMIME, a message over the server's SIZE (65);
    /// a UTF-8 local part without SMTPUTF8, which no downgrade can spell in
    /// ASCII, or DSN required but not offered (69).
    fn check_message(
        &self,
        envelope: &Envelope,
        message: &[u8],
        size: usize,
        chunking: bool,
    ) -> Result<Vec<MailParameter>, Error> {
        let mut parameters = Vec::new();
        if let Some(limit) = self.size_limit {
            if size as u64 > limit {
                return Err(Error::data(format!(
                    "the message is {size} bytes; the server accepts at most {limit} (SIZE)"
                )));
            }
            parameters.push(MailParameter::Size(size));
        }
        if message::has_8bit(message) {
            parameters.push(if chunking && self.offers("BINARYMIME") {
                // RFC 3030 3: BDAT carries it unchanged, whatever it holds.
                MailParameter::Other {
                    keyword: "BODY".to_string(),
                    value: Some("BINARYMIME".to_string()),
                }
            } else if self.info.supports_feature(Extension::EightBitMime) {
                MailParameter::Body(MailBodyParameter::EightBitMime)
            } else {
                return Err(Error::data(
                    "the message has 8-bit data but the server does not offer 8BITMIME; \
                     encode it as quoted-printable or base64 (mkmime does)",
                ));
            });
        }
        if let Some(reason) = envelope.smtputf8_reason() {
            if !self.info.supports_feature(Extension::SmtpUtfEight) {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!(
                        "{reason}, which has no ASCII form, but the server does not offer \
                         SMTPUTF8 (RFC 6531); nothing was sent"
                    ),
                ));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        parameters.extend(envelope.dsn.mail_parameters(self.offers("DSN"))?);
        Ok(parameters)
    }

    /// The DSN requests to put on each RCPT TO: none unless asked for and offered.
    fn rcpt_dsn<'a>(&self, envelope: &'a Envelope) -> Option<&'a Dsn> {
        (envelope.dsn.requested() && self.offers("DSN")).then_some(&envelope.dsn)
    }

    /// The message to every recipient of `envelope`: MAIL FROM, RCPT TO for
    /// each recipient, and DATA, in as many transactions as the server needs.
    /// Where the server offers PIPELINING (RFC 2920) the commands go in one
    /// flight, and where it offers CHUNKING (RFC 3030) the message goes as
    /// BDAT chunks; every reply is judged as when each waits for the last.
    ///
    /// When a recipient is refused the message is not sent to anyone (RSET),
    /// unless `partial`: then it goes to the accepted ones. Every recipient's
    /// reply is in the result. When the server answers a RCPT with 452 too
    /// many recipients (RFC 5321 4.5.3.1.10) after accepting some, the message
    /// goes to those, and the rest are tried in a new transaction, again and
    /// again; each one takes at least one recipient, so this ends. A 421 at
    /// RCPT ends the session: the recipients not yet tried are `tried: false`
    /// and `Transaction::closed` says why. `Err` means the session became
    /// unusable before anything was judged (timeout, closed, 421 elsewhere);
    /// any other failure is in `Transaction::failure`, after an RSET that
    /// readies the session for the next message.
    ///
    /// `next` is the message the next call will send: over DATA with
    /// PIPELINING its MAIL, RCPT (and DATA) go in the same write as this
    /// message's final `.`.
    pub fn send(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
        partial: bool,
        next: Option<(&Envelope, &[u8])>,
    ) -> Result<Transaction, Error> {
        let mut transaction = Transaction::default();
        let chunking = self.offers("CHUNKING");
        let mut payload = std::mem::take(&mut self.data_buf);
        let size = if chunking {
            message::encode_chunked(message, &mut payload)
        } else {
            message::encode_data(message, &mut payload)
        };
        let checked = self.check_message(envelope, message, size, chunking);
        self.data_buf = payload;
        let parameters = match checked {
            Ok(p) => p,
            Err(_) if self.ahead.is_some() => {
                return Err(Error::new(
                    Exit::Software,
                    "commands were sent ahead for a message that fails its checks",
                ))
            }
            Err(e) => {
                transaction.failure = Some(e);
                return Ok(transaction);
            }
        };
        let dsn = self.rcpt_dsn(envelope);
        let ahead = match next {
            Some((envelope, message)) if !chunking && self.offers("PIPELINING") => {
                self.next_group(envelope, message, partial)
            }
            _ => None,
        };
        let mut pending: &[Address] = &envelope.recipients;
        // The 452 that moved `pending` into a further transaction.
        let mut moved_by: Option<Reply> = None;
        loop {
            let start = transaction.recipients.len();
            let terms = Terms {
                sender: envelope.sender.as_ref(),
                parameters: &parameters,
                dsn,
                partial,
            };
            let step = self.transaction(&terms, pending, ahead.as_deref(), &mut transaction);
            match (step, &moved_by) {
                (Ok(Some((done, reply))), _) => {
                    moved_by = Some(reply);
                    pending = &pending[done..];
                }
                (Ok(None), _) => return Ok(transaction),
                (Err(e), None) => return Err(e),
                (Err(e), Some(reply)) => {
                    // Earlier transactions delivered: report them, not a bare error.
                    transaction.recipients.truncate(start);
                    not_tried(&mut transaction, pending, reply);
                    transaction.closed = Some(e);
                    return Ok(transaction);
                }
            }
        }
    }

    /// One MAIL/RCPT/DATA (or BDAT) transaction for `recipients`, results
    /// appended to `t`. `Some((n, reply))`: the server took no more than the
    /// first `n` (`reply` is its 452 too many recipients), the message went to
    /// them, and the rest need another transaction. `None`: done; recipients
    /// left untried are in `t`.
    ///
    /// The commands are `group`'s; when the last message sent them ahead,
    /// only their replies are read. `ahead` (the next message's commands)
    /// follows the final `.` when this is the message's last transaction.
    fn transaction(
        &mut self,
        terms: &Terms<'_>,
        recipients: &[Address],
        ahead: Option<&[u8]>,
        t: &mut Transaction,
    ) -> Result<Option<(usize, Reply)>, Error> {
        let Terms {
            sender,
            parameters,
            dsn,
            partial,
        } = *terms;
        let start = t.recipients.len();
        let pipelining = self.offers("PIPELINING");
        let chunking = self.offers("CHUNKING");
        let (flight, eager) =
            self.group(sender, recipients, parameters, dsn, partial, &self.data_buf);
        match self.ahead.take() {
            None => self.write(&flight, "MAIL FROM")?,
            Some(sent) if sent == flight => {}
            Some(_) => {
                return Err(Error::new(
                    Exit::Software,
                    "the commands sent ahead were for another message",
                ))
            }
        }
        // Pipelined, the connection may end while any of them is due.
        let waiting = match (pipelining, eager, chunking) {
            (false, _, _) => "the reply to MAIL FROM",
            (true, false, _) => "the replies to MAIL FROM and RCPT TO",
            (true, true, false) => "the replies to MAIL FROM, RCPT TO and DATA",
            (true, true, true) => "the replies to MAIL FROM, RCPT TO and the end of the message",
        };
        let reply = self.read_reply(waiting)?;
        if reply.code() == 421 {
            return Err(refusal("MAIL FROM", &reply));
        }
        if !reply.is_positive_completion() {
            t.failure = Some(refusal("MAIL FROM", &reply));
            if start > 0 {
                not_tried(t, recipients, &reply);
            }
            if pipelining {
                // The replies to the RCPTs, DATA or BDAT are on their way.
                for _ in recipients {
                    self.command_reply("RCPT TO", waiting)?;
                }
                if eager {
                    self.data_reply(chunking, false, None)?;
                }
            }
            self.reset()?;
            return Ok(None);
        }
        let mut more: Option<(usize, Reply)> = None;
        let mut accepted = 0;
        for (i, recipient) in recipients.iter().enumerate() {
            let reply = if pipelining {
                self.read_reply(waiting)?
            } else {
                self.exchange(&rcpt_command(recipient, dsn), "RCPT TO")?
            };
            if reply.code() == 421 {
                // Postfix after smtpd_hard_error_limit refusals: the session is over.
                let from = more.as_ref().map_or(i, |m| m.0);
                not_tried(t, &recipients[from..], &reply);
                t.closed = Some(refusal("RCPT TO", &reply));
                return Ok(None);
            }
            if more.is_some() {
                // Pipelined: the rest were sent already; they go in the next
                // transaction whatever the server said (452 again, from a
                // server that counts).
                continue;
            }
            if accepted > 0 && too_many_recipients(&reply) {
                more = Some((i, reply));
                if pipelining {
                    continue;
                }
                break;
            }
            if reply.is_positive_completion() {
                accepted += 1;
            }
            t.recipients
                .push(RecipientResult::new(recipient.to_string(), reply, true));
        }
        let refused = t.recipients.len() - start - accepted;
        let ahead = if more.is_none() { ahead } else { None };
        let stop = |t: &mut Transaction, more: &Option<(usize, Reply)>| {
            if let Some((i, reply)) = more {
                not_tried(t, &recipients[*i..], reply);
            }
        };
        let reply = if eager {
            let (reply, sent) = self.data_reply(chunking, accepted > 0, ahead)?;
            if accepted == 0 {
                stop(t, &more);
                self.reset()?;
                return Ok(None);
            }
            if !sent {
                t.failure = Some(refusal("DATA", &reply));
                stop(t, &more);
                self.reset()?;
                return Ok(None);
            }
            reply
        } else {
            if accepted == 0 || (refused > 0 && !partial) {
                stop(t, &more);
                self.reset()?;
                return Ok(None);
            }
            if chunking {
                self.send_chunks(pipelining)?
            } else {
                let reply = self.command(&Data, "DATA")?;
                if reply.code() != 354 {
                    t.failure = Some(refusal("DATA", &reply));
                    stop(t, &more);
                    self.reset()?;
                    return Ok(None);
                }
                self.send_body(ahead)?
            }
        };
        if reply.code() == 421 {
            return Err(refusal("end of message", &reply));
        }
        if !reply.is_positive_completion() {
            t.failure = Some(refusal("end of message", &reply));
            stop(t, &more);
            // After the final `.` the transaction is over whatever the reply
            // (RFC 5321 4.1.1.4); an RSET only tidies, and would land inside
            // the next message's commands when they went ahead.
            if self.ahead.is_none() {
                self.reset()?;
            }
            return Ok(None);
        }
        for r in t.recipients[start..].iter_mut() {
            r.delivered = r.reply.is_positive_completion();
        }
        t.accepted.push(reply);
        Ok(more)
    }
    /// The reply to a DATA or BDAT that went in the flight with MAIL and
    /// RCPT. After DATA's 354 the message follows when `anyone` was
    /// accepted, else a lone `.` (RFC 2920 3.1: an empty message for no
    /// recipient, which the server refuses). `(reply, true)` answers the
    /// message; `(reply, false)` is DATA's refusal.
    fn data_reply(
        &mut self,
        chunking: bool,
        anyone: bool,
        ahead: Option<&[u8]>,
    ) -> Result<(Reply, bool), Error> {
        if chunking {
            return Ok((self.final_reply()?, true));
        }
        let reply = self.command_reply("DATA", "the reply to DATA")?;
        if reply.code() != 354 {
            return Ok((reply, false));
        }
        if anyone {
            return Ok((self.send_body(ahead)?, true));
        }
        self.write(b".\r\n", "the end of an empty message")?;
        Ok((self.final_reply()?, true))
    }

    /// The DATA payload (after 354), `ahead` in the same write, and the
    /// reply to the payload.
    fn send_body(&mut self, ahead: Option<&[u8]>) -> Result<Reply, Error> {
        let mut payload = std::mem::take(&mut self.data_buf);
        let len = payload.len();
        payload.extend_from_slice(ahead.unwrap_or_default());
        let written = self.write(&payload, "the message");
        payload.truncate(len);
        self.data_buf = payload;
        written?;
        self.ahead = ahead.map(<[u8]>::to_vec);
        self.read_reply("the end of the message")
    }

    /// The first write of a transaction, and whether DATA or the message's
    /// only BDAT chunk is in it. With PIPELINING, MAIL and every RCPT leave
    /// in one write, and DATA (or a message of up to EAGER_CHUNK bytes as
    /// BDAT) joins them when the outcome is all or nothing anyway: one
    /// recipient, or `partial`. Otherwise the message waits for the RCPT
    /// replies, so that one refusal still sends nothing.
    fn group(
        &self,
        sender: Option<&Address>,
        recipients: &[Address],
        parameters: &[MailParameter],
        dsn: Option<&Dsn>,
        partial: bool,
        payload: &[u8],
    ) -> (Vec<u8>, bool) {
        let pipelining = self.offers("PIPELINING");
        let chunking = self.offers("CHUNKING");
        let eager = pipelining
            && (recipients.len() == 1 || partial)
            && (!chunking || payload.len() <= EAGER_CHUNK);
        let mut flight = mail_command(sender, parameters).into_bytes();
        if pipelining {
            for recipient in recipients {
                flight.extend_from_slice(rcpt_command(recipient, dsn).as_bytes());
            }
        }
        if eager && chunking {
            push_chunk(&mut flight, payload, true);
        } else if eager {
            flight.extend_from_slice(Data.to_string().as_bytes());
        }
        (flight, eager)
    }

    /// The next message's first write, to follow this one's final `.`:
    /// only over DATA, after which the transaction is over whatever the
    /// reply, so nothing sent ahead can land in it (after a refused BDAT the
    /// state is undefined until RSET, RFC 3030). `None` when the next
    /// message fails its checks (it is reported on its own turn).
    fn next_group(&self, envelope: &Envelope, message: &[u8], partial: bool) -> Option<Vec<u8>> {
        if envelope.recipients.is_empty() {
            return None;
        }
        let mut payload = Vec::new();
        let size = message::encode_data(message, &mut payload);
        let parameters = self.check_message(envelope, message, size, false).ok()?;
        let sender = envelope.sender.as_ref();
        Some(
            self.group(
                sender,
                &envelope.recipients,
                &parameters,
                self.rcpt_dsn(envelope),
                partial,
                &payload,
            )
            .0,
        )
    }

    /// The BDAT payload in chunks of CHUNK bytes, the last one `LAST`; with
    /// PIPELINING every chunk leaves before the replies are read (RFC 3030
    /// 4.2), else each waits for its reply. Returns the first reply that is
    /// not 250, else the last one (the message's).
    fn send_chunks(&mut self, pipelining: bool) -> Result<Reply, Error> {
        let payload = std::mem::take(&mut self.data_buf);
        let result = self.write_chunks(&payload, pipelining);
        self.data_buf = payload;
        result
    }

    fn write_chunks(&mut self, payload: &[u8], pipelining: bool) -> Result<Reply, Error> {
        let chunks: Vec<&[u8]> = if payload.is_empty() {
            vec![&[]]
        } else {
            payload.chunks(CHUNK).collect()
        };
        let mut flight = Vec::with_capacity(payload.len().min(CHUNK) + 32);
        let mut unread = 0;
        let mut answer: Option<Reply> = None;
        for (n, chunk) in chunks.iter().enumerate() {
            let last = n + 1 == chunks.len();
            flight.clear();
            push_chunk(&mut flight, chunk, last);
            self.write(&flight, "BDAT")?;
            unread += 1;
            if pipelining && !last {
                continue;
            }
            for _ in 0..unread {
                let reply = self.final_reply()?;
                // The first refusal stays; else the last reply is the message's.
                if answer.as_ref().is_none_or(Reply::is_positive_completion) {
                    answer = Some(reply);
                }
            }
            unread = 0;
            if answer.as_ref().is_some_and(|a| !a.is_positive_completion()) {
                break;
            }
        }
        answer.ok_or_else(|| Error::protocol("no reply to BDAT"))
    }

    /// The commands that send `message` in the window, when it can go
    /// there: PIPELINING and CHUNKING offered, one recipient (the outcome is
    /// all or nothing, and no 452 can split it), one BDAT chunk, and its
    /// checks pass (else it goes by `send`, which reports them). `MAIL, RCPT,
    /// BDAT n LAST`: the message goes whatever the RCPT reply, and a refused
    /// recipient makes the server refuse the BDAT too (no valid recipients).
    pub fn window_flight(&self, envelope: &Envelope, message: &[u8]) -> Option<Vec<u8>> {
        let [recipient] = envelope.recipients.as_slice() else {
            return None;
        };
        if self.ahead.is_some()
            || self.stopped.is_some()
            || !self.offers("PIPELINING")
            || !self.offers("CHUNKING")
        {
            return None;
        }
        let mut payload = Vec::new();
        let size = message::encode_chunked(message, &mut payload);
        if payload.len() > CHUNK {
            return None;
        }
        let parameters = self.check_message(envelope, message, size, true).ok()?;
        let mut flight = mail_command(envelope.sender.as_ref(), &parameters).into_bytes();
        flight.extend_from_slice(rcpt_command(recipient, self.rcpt_dsn(envelope)).as_bytes());
        push_chunk(&mut flight, &payload, true);
        Some(flight)
    }

    /// Sends a `window_flight` without waiting for the replies of the
    /// messages before it; `land` reads them, oldest first.
    ///
    /// Each transaction must not depend on the one before, whose outcome is
    /// not known yet, so its commands begin with RSET whenever a message is
    /// in flight (or the last one was refused): RFC 3030 2 leaves the state
    /// after a refused BDAT undefined until RSET, and Postfix keeps the
    /// transaction of a refused recipient open (a MAIL FROM after it would
    /// be a nested MAIL, 503). RSET costs one line and one reply line in the
    /// same flight, and is valid anywhere in a pipelined group (RFC 2920 3.1).
    pub fn launch(&mut self, flight: &[u8]) -> Result<(), Error> {
        let rset = self.dirty || !self.window.is_empty();
        self.window.push_back(rset);
        if rset {
            let mut bytes = Rset.to_string().into_bytes();
            bytes.extend_from_slice(flight);
            self.write(&bytes, "MAIL FROM")
        } else {
            self.write(flight, "MAIL FROM")
        }
    }

    /// Whether messages are in the window, waiting for `land`.
    pub fn in_flight(&self) -> usize {
        self.window.len()
    }

    /// Whether the session ended while messages were in the window.
    pub fn stopped(&self) -> bool {
        self.stopped.is_some()
    }

    /// Reads the replies to the oldest message in the window and judges them
    /// as `send` judges its one-recipient BDAT transaction, except that the
    /// RSET after a refusal is the next flight's (or `settle`'s). Once the
    /// session has ended, the later messages are `NotSent` after a 421 and
    /// judged lost (`Err`, kept as when a final reply is lost) otherwise.
    pub fn land(&mut self, envelope: &Envelope) -> Landing {
        let rset = self.window.pop_front().unwrap_or(false);
        if let Some((exit, text, by_server)) = &self.stopped {
            let e = Error::new(*exit, text.clone());
            return if *by_server {
                Landing::NotSent(e)
            } else {
                Landing::Judged(Err(e))
            };
        }
        if rset {
            // Any refusal other than 421 leaves the state unknown: the
            // message may still have gone, so it is judged lost.
            let reply = self
                .window_reply("RSET", "the reply to RSET")
                .and_then(|reply| {
                    if reply.is_positive_completion() {
                        Ok(())
                    } else {
                        Err(refusal("RSET", &reply))
                    }
                });
            match reply {
                Ok(()) => self.dirty = false,
                Err(e) if self.saw_421 => {
                    self.stopped = Some((e.exit(), e.message().to_string(), true));
                    return Landing::NotSent(e);
                }
                Err(e) => return self.lost(e),
            }
        }
        self.dirty = true;
        let mut t = Transaction::default();
        match self.judge_flight(envelope, &mut t) {
            Ok(()) if t.closed.is_some() => {
                let e = t
                    .closed
                    .as_ref()
                    .map(|e| (e.exit(), e.message().to_string()));
                if let Some((exit, text)) = e {
                    self.stopped = Some((exit, text, true));
                }
                Landing::Judged(Ok(t))
            }
            Ok(()) => Landing::Judged(Ok(t)),
            Err(e) => self.lost(e),
        }
    }

    /// The session ended at a message in the window, by the server's 421 or
    /// a lost connection.
    fn lost(&mut self, e: Error) -> Landing {
        let by_server = self.saw_421;
        self.stopped = Some((e.exit(), e.message().to_string(), by_server));
        Landing::Judged(Err(e))
    }

    /// The replies to `MAIL, RCPT, BDAT n LAST` for one recipient.
    fn judge_flight(&mut self, envelope: &Envelope, t: &mut Transaction) -> Result<(), Error> {
        let waiting = "the replies to MAIL FROM, RCPT TO and the end of the message";
        let reply = self.window_reply("MAIL FROM", waiting)?;
        if !reply.is_positive_completion() {
            t.failure = Some(refusal("MAIL FROM", &reply));
            self.window_reply("RCPT TO", waiting)?;
            self.window_reply("end of message", waiting)?;
            return Ok(());
        }
        let recipient = envelope.recipients.first().map(Address::to_string);
        let reply = self.read_reply(waiting)?;
        if reply.code() == 421 {
            // Postfix after smtpd_hard_error_limit refusals: the session is over.
            t.recipients.push(RecipientResult::new(
                recipient.unwrap_or_default(),
                reply.clone(),
                false,
            ));
            t.closed = Some(refusal("RCPT TO", &reply));
            return Ok(());
        }
        let accepted = reply.is_positive_completion();
        t.recipients.push(RecipientResult::new(
            recipient.unwrap_or_default(),
            reply,
            true,
        ));
        let reply = self.window_reply("end of message", waiting)?;
        if !accepted {
            return Ok(());
        }
        if !reply.is_positive_completion() {
            t.failure = Some(refusal("end of message", &reply));
            return Ok(());
        }
        for r in &mut t.recipients {
            r.delivered = true;
        }
        t.accepted.push(reply);
        self.dirty = false;
        Ok(())
    }

    /// A reply in the window; a 421 ends the session (as `command_reply`),
    /// and is remembered: the server took nothing after it.
    fn window_reply(&mut self, name: &str, waiting_for: &str) -> Result<Reply, Error> {
        let reply = self.read_reply(waiting_for)?;
        if reply.code() == 421 {
            self.saw_421 = true;
            return Err(refusal(name, &reply));
        }
        Ok(reply)
    }

    /// RSET if the last message judged in the window was refused, before a
    /// message goes by `send` (which expects a clean session).
    pub fn settle(&mut self) -> Result<(), Error> {
        if std::mem::take(&mut self.dirty) {
            self.reset()?;
        }
        Ok(())
    }

    /// RSET: forget the current transaction.
    pub fn reset(&mut self) -> Result<(), Error> {
        let reply = self.command(&Rset, "RSET")?;
        if reply.is_positive_completion() {
            Ok(())
        } else {
            Err(refusal("RSET", &reply))
        }
    }

    pub fn noop(&mut self) -> Result<Reply, Error> {
        self.command(&Noop, "NOOP")
    }

    /// QUIT and wait for the goodbye; errors do not matter any more.
    pub fn quit(mut self) {
        let _ = self.command(&Quit, "QUIT");
    }

    /// Sends one command line (lettre's Display gives it with CRLF) in one
    /// write and reads the reply. A 421 ends the session (75).
    fn command(&mut self, command: &dyn std::fmt::Display, name: &str) -> Result<Reply, Error> {
        let reply = self.exchange(command, name)?;
        if reply.code() == 421 {
            return Err(refusal(name, &reply));
        }
        Ok(reply)
    }

    /// The reply to a command already sent; a 421 ends the session (75).
    fn command_reply(&mut self, name: &str, waiting_for: &str) -> Result<Reply, Error> {
        let reply = self.read_reply(waiting_for)?;
        if reply.code() == 421 {
            return Err(refusal(name, &reply));
        }
        Ok(reply)
    }

    /// The reply to the end of the message (or to a BDAT chunk).
    fn final_reply(&mut self) -> Result<Reply, Error> {
        self.command_reply("end of message", "the end of the message")
    }

    /// Writes `bytes` (commands, or message data) in one write.
    fn write(&mut self, bytes: &[u8], what: &str) -> Result<(), Error> {
        self.conn
            .write_all(bytes)
            .and_then(|()| self.conn.flush())
            .map_err(|e| self.net_error(e, &format!("sending {what}")))
    }

    /// Whether the EHLO reply lists `keyword` (PIPELINING, CHUNKING, ...).
    fn offers(&self, keyword: &str) -> bool {
        self.ehlo.response.message().skip(1).any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
        })
    }

    /// `command`, with a 421 returned as a reply for the caller to judge.
    fn exchange(&mut self, command: &dyn std::fmt::Display, name: &str) -> Result<Reply, Error> {
        let line = command.to_string();
        self.conn
            .write_all(line.as_bytes())
            .and_then(|()| self.conn.flush())
            .map_err(|e| self.net_error(e, &format!("sending {name}")))?;
        self.read_reply(&format!("the reply to {name}"))
    }

    fn read_reply(&mut self, waiting_for: &str) -> Result<Reply, Error> {
        read_reply(&mut self.conn, waiting_for)
    }

    fn net_error(&self, e: std::io::Error, doing: &str) -> Error {
        wire::peer_error(e, doing, self.conn.timeout())
    }
}

/// What each transaction of one message sends besides its recipients.
#[derive(Clone, Copy)]
struct Terms<'a> {
    sender: Option<&'a Address>,
    /// MAIL FROM's parameters (SIZE, BODY, SMTPUTF8, RET, ENVID).
    parameters: &'a [MailParameter],
    /// NOTIFY and ORCPT for each RCPT, when asked for and offered.
    dsn: Option<&'a Dsn>,
    /// Whether the message goes to the accepted recipients when some are refused.
    partial: bool,
}

/// NOTIFY and ORCPT for one recipient when DSN is asked for and offered.
fn rcpt_parameters(dsn: Option<&Dsn>, recipient: &Address) -> Vec<RcptParameter> {
    dsn.map_or_else(Vec::new, |d| d.rcpt_parameters(recipient))
}

/// The MAIL FROM command line, CRLF-ended, with its parameters (SIZE, BODY,
/// SMTPUTF8, RET, ENVID).
fn mail_command(sender: Option<&Address>, parameters: &[MailParameter]) -> String {
    Mail::new(sender.cloned(), parameters.to_vec()).to_string()
}

/// The RCPT TO command line for one recipient, CRLF-ended, with NOTIFY and
/// ORCPT when DSN is asked for and offered.
fn rcpt_command(recipient: &Address, dsn: Option<&Dsn>) -> String {
    Rcpt::new(recipient.clone(), rcpt_parameters(dsn, recipient)).to_string()
}

/// Appends `BDAT n [LAST]` and the chunk's bytes (RFC 3030: counted, not
/// dot-stuffed).
fn push_chunk(flight: &mut Vec<u8>, chunk: &[u8], last: bool) {
    let last = if last { " LAST" } else { "" };
    flight.extend_from_slice(format!("BDAT {}{last}\r\n", chunk.len()).as_bytes());
    flight.extend_from_slice(chunk);
}

/// Records `recipients` as never tried, `why` being the reply that stopped them.
fn not_tried(t: &mut Transaction, recipients: &[Address], why: &Reply) {
    t.recipients.extend(
        recipients
            .iter()
            .map(|r| RecipientResult::new(r.to_string(), why.clone(), false)),
    );
}

/// RFC 5321 4.5.3.1.10: 452 (or, from older servers, 552) "too many
/// recipients" refuses no recipient; the rest go in another transaction.
fn too_many_recipients(reply: &Reply) -> bool {
    matches!(reply.code(), 452 | 552)
        && (reply.enhanced().is_some_and(|e| e.ends_with(".5.3"))
            || reply
                .text()
                .to_ascii_lowercase()
                .contains("too many recipients"))
}

/// Reads one reply, all its lines, within the size bounds and within one
/// --timeout: a server that drips a byte now and then is not waited for
/// forever. Public for the fuzz target `smtp_reply`.
pub fn read_reply<S: Read + Timed>(
    conn: &mut WireReader<S>,
    waiting_for: &str,
) -> Result<Reply, Error> {
    let deadline = conn.deadline();
    let mut text = String::new();
    let mut line = Vec::new();
    for _ in 0..MAX_REPLY_LINES {
        conn.read_line(&mut line, MAX_REPLY_LINE, &deadline, waiting_for)?;
        let line = String::from_utf8_lossy(&line).replace('\r', " ");
        let bytes = line.as_bytes();
        if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
            return Err(Error::protocol(format!(
                "malformed reply while waiting for {waiting_for}: {line:?}"
            )));
        }
        let last = bytes.len() == 3 || bytes[3] == b' ';
        if !last && bytes[3] != b'-' {
            return Err(Error::protocol(format!("malformed reply line {line:?}")));
        }
        text.push_str(&line);
        if bytes.len() == 3 {
            text.push(' ');
        }
        text.push_str("\r\n");
        if last {
            let response = Response::from_str(&text)
                .map_err(|_| Error::protocol(format!("malformed reply: {:?}", text.trim_end())))?;
            return Ok(Reply { response });
        }
    }
    Err(Error::protocol(format!(
        "a reply of more than {MAX_REPLY_LINES} lines while waiting for {waiting_for}"
    )))
}
