//! TCP and TLS connections: one rustls client config (system roots plus a CA
//! file, ring, verification always on; there is deliberately no way to turn it
//! off), a TCP connect with timeouts and Nagle off, and a handshake that
//! finishes eagerly so certificate errors surface here, named, with sysexits codes.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore};

mod pinned;
use pinned::{is_ca_used_as_end_entity, PinnedVerifier};

use crate::exit::{Error, Exit};
use crate::url::{Security, ServerUrl};
use crate::wire::{Deadline, Failure};

/// A TLS connection over TCP.
pub type TlsStream = rustls::StreamOwned<ClientConnection, TcpStream>;

/// The client config every tool uses: the system's trusted roots plus every
/// certificate in `ca_file`. A CA file that cannot be read or holds no
/// certificate is an error (78) rather than silently trusting only the system.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    // Unreadable system stores are not fatal: a CA file may be all we need,
    // and an empty store fails verification (69) rather than trusting anything.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    let mut pinned = Vec::new();
    if let Some(path) = ca_file {
        pinned = read_ca_file(path)?;
        for cert in &pinned {
            roots.add(cert.clone()).map_err(|e| {
                Error::config(format!(
                    "CA file {}: unusable certificate: {e}",
                    path.display()
                ))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(Exit::Software, format!("TLS setup: {e}")))?;
    if pinned.is_empty() {
        return Ok(Arc::new(
            builder.with_root_certificates(roots).with_no_client_auth(),
        ));
    }
    // A CA file's certificates may also be servers' own (pinned.rs).
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| Error::new(Exit::Software, format!("TLS setup: {e}")))?;
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(webpki, pinned)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::config(format!(
            "CA file {}: {}",
            path.display(),
            Error::from(e).message()
        ))
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::config(format!("CA file {}: bad PEM: {e:?}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "CA file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Opens a TCP connection to `host:port` within `timeout`, trying each address
/// the name resolves to. The stream has read and write timeouts of `timeout`
/// and TCP_NODELAY on: with Nagle on, every small command after a small write
/// waits for a delayed ACK (~40 ms each), which is most of msmtp's time per message.
pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    let addrs: Vec<_> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            return Err(Error::new(
                Exit::NoHost,
                format!("cannot resolve host {host}: {}", Error::from(e).message()),
            ))
        }
    };
    if addrs.is_empty() {
        return Err(Error::new(
            Exit::NoHost,
            format!("host {host} has no address"),
        ));
    }
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(tcp) => {
                let set = tcp
                    .set_nodelay(true)
                    .and_then(|()| tcp.set_read_timeout(Some(timeout)))
                    .and_then(|()| tcp.set_write_timeout(Some(timeout)));
                set.map_err(|e| Error::io(format!("connecting to {host}:{port}"), e))?;
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    let err = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::NotConnected));
    Err(connect_error(host, port, &err))
}

fn connect_error(host: &str, port: u16, err: &io::Error) -> Error {
    use io::ErrorKind::*;
    let exit = match err.kind() {
        TimedOut | WouldBlock => Exit::TempFail,
        _ => Exit::Unavailable,
    };
    let reason = match err.kind() {
        TimedOut | WouldBlock => "timed out".to_string(),
        _ => Error::from(io::Error::new(err.kind(), err.to_string()))
            .message()
            .to_string(),
    };
    Error::new(exit, format!("cannot connect to {host}:{port}: {reason}"))
}

/// Runs the TLS handshake on `tcp` (implicit TLS, or after STARTTLS / STLS) and
/// completes it before returning, so an untrusted or mismatched certificate is
/// reported here: 69 with the reason, a timeout 75, anything else 76. `host` is
/// a DNS name or an IP address; it is what the certificate must be valid for.
pub fn tls_handshake(
    mut tcp: TcpStream,
    host: &str,
    config: &Arc<ClientConfig>,
) -> Result<TlsStream, Error> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| Error::usage(format!("{host:?} is not a valid TLS server name")))?;
    let mut conn = ClientConnection::new(Arc::clone(config), name)
        .map_err(|e| Error::protocol(format!("TLS setup for {host}: {e}")))?;
    // The read timeout bounds the whole handshake, not each read: rustls
    // returns after a partial flight and would wait a full timeout again
    // (a stalled server took twice --timeout), and a server dripping a byte
    // at a time would never time out.
    let timeout = tcp.read_timeout().ok().flatten();
    let deadline = timeout.map(Deadline::after);
    while conn.is_handshaking() {
        if let Some(deadline) = deadline {
            deadline.arm(&tcp).map_err(|e| handshake_error(host, &e))?;
        }
        if let Err(e) = conn.complete_io(&mut tcp) {
            return Err(handshake_error(host, &e));
        }
    }
    if timeout.is_some() {
        tcp.set_read_timeout(timeout)
            .map_err(|e| Error::io(format!("TLS with {host}"), e))?;
    }
    ack_promptly(&tcp);
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// After a TLS 1.3 handshake the server's next small write (Postfix's 220
/// greeting, Dovecot's) waits ~40 ms for our delayed ACK of its session
/// tickets; TCP_NODELAY does not help, quick ACKs do. Measured: 58 ms -> 20 ms
/// per smtp-send process.
fn ack_promptly(tcp: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        // Only a speed-up: a socket that refuses it works as before.
        let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = tcp;
}

fn handshake_error(host: &str, err: &io::Error) -> Error {
    if let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return tls_error(host, tls);
    }
    // A cut here is 76, not 75: a peer that hangs up on a ClientHello is
    // most likely not speaking TLS at all.
    match Failure::of(err) {
        Failure::Timeout => Error::new(
            Exit::TempFail,
            format!("TLS: handshake with {host} timed out"),
        ),
        Failure::Cut
            if matches!(
                err.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ) =>
        {
            Error::protocol(format!(
                "TLS: {host} closed the connection during the handshake (is this a TLS port?)"
            ))
        }
        _ => Error::protocol(format!(
            "TLS: handshake with {host} failed: {}",
            Error::from(io::Error::new(err.kind(), err.to_string())).message()
        )),
    }
}

/// Names the reason a user can act on: trust (--ca-file), the host name, dates.
fn tls_error(host: &str, err: &rustls::Error) -> Error {
    let cert = |reason: String| Error::new(Exit::Unavailable, format!("TLS: {reason}"));
    match err {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => cert(format!(
                "certificate for {host} not trusted (unknown issuer); use --ca-file if it is \
                 signed by a private CA"
            )),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                cert(format!("certificate is not valid for host {host}"))
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                cert(format!("certificate for {host} has expired"))
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                cert(format!("certificate for {host} is not valid yet"))
            }
            CertificateError::Revoked => cert(format!("certificate for {host} was revoked")),
            CertificateError::BadSignature => cert(format!(
                "certificate for {host} not trusted (bad signature)"
            )),
            other if is_ca_used_as_end_entity(other) => cert(format!(
                "certificate for {host} not trusted (self-signed); use --ca-file if you \
                 trust it"
            )),
            other => cert(format!("certificate for {host} rejected ({other:?})")),
        },
        rustls::Error::InvalidMessage(_) => Error::protocol(format!(
            "TLS: {host} did not answer in TLS (is this a TLS port, or does it need STARTTLS?)"
        )),
        other => Error::protocol(format!("TLS: handshake with {host} failed: {other}")),
    }
}

/// A connection that is TLS or, when the user said so, plain. Tools that must
/// not run without TLS can use `TlsStream` directly instead.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    /// Connects to `url` and, for implicit TLS (`smtps`, `imaps`, `pop3s`), runs
    /// the handshake. For STARTTLS the stream is still plain: speak the
    /// protocol up to STARTTLS/STLS, then call `start_tls`.
    pub fn open(
        url: &ServerUrl,
        timeout: Duration,
        config: &Arc<ClientConfig>,
    ) -> Result<Stream, Error> {
        let tcp = connect(&url.host, url.port, timeout)?;
        match url.security {
            Security::Tls => Ok(Stream::Tls(Box::new(tls_handshake(
                tcp, &url.host, config,
            )?))),
            Security::StartTls | Security::None => Ok(Stream::Plain(tcp)),
        }
    }

    /// Upgrades a plain stream after the server accepted STARTTLS / STLS.
    /// An already encrypted stream is a protocol error (76).
    pub fn start_tls(self, host: &str, config: &Arc<ClientConfig>) -> Result<Stream, Error> {
        match self {
            Stream::Plain(tcp) => Ok(Stream::Tls(Box::new(tls_handshake(tcp, host, config)?))),
            Stream::Tls(_) => Err(Error::protocol(
                "STARTTLS on a connection that is already TLS",
            )),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// The TCP socket underneath, e.g. to change timeouts.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock,
        }
    }

    /// Before the LOGOUT or QUIT sent after an error: that goodbye is a
    /// courtesy (the server logs a clean close), so it may wait for its
    /// reply at most `GOODBYE_WAIT`, never a whole --timeout again.
    pub fn prepare_goodbye(&self) {
        let tcp = self.tcp();
        let _ = tcp.set_read_timeout(Some(GOODBYE_WAIT));
        let _ = tcp.set_write_timeout(Some(GOODBYE_WAIT));
    }
}

/// How long a goodbye after an error may take; see `Stream::prepare_goodbye`.
pub const GOODBYE_WAIT: Duration = Duration::from_secs(2);

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf).map_err(|e| {
                // rustls's text for a cut connection ends in a docs.rs URL; a
                // user reading a cron mail wants to know the server hung up.
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection (without TLS close_notify)",
                    )
                } else {
                    e
                }
            }),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;
    use std::time::Instant;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::PrivateKeyDer;
    use rustls::{ServerConfig, ServerConnection};

    struct Pki {
        ca_pem: String,
        server: ServerConfig,
    }

    /// A CA named `ca_name` and a server certificate for `names`, signed by it.
    fn pki(ca_name: &str, names: &[&str]) -> Pki {
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("cert");
        Pki {
            ca_pem: ca_cert.pem(),
            server: server_config(&cert, &key),
        }
    }

    /// A TLS server presenting `cert` alone.
    fn server_config(cert: &rcgen::Certificate, key: &KeyPair) -> ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::try_from(key.serialize_der()).expect("key der"),
            )
            .expect("server config")
    }

    /// A one-connection TLS server on 127.0.0.1 that answers "hello\n" and
    /// echoes one line back. Returns the port.
    fn serve_once(config: ServerConfig) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        thread::spawn(move || {
            let Ok((tcp, _)) = listener.accept() else {
                return;
            };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let Ok(conn) = ServerConnection::new(Arc::new(config)) else {
                return;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            if tls.write_all(b"hello\n").is_err() {
                return;
            }
            let mut buf = [0u8; 64];
            if let Ok(n) = tls.read(&mut buf) {
                let _ = tls.write_all(&buf[..n]);
            }
            tls.conn.send_close_notify();
            let _ = tls.flush();
        });
        port
    }

    fn ca_file(pem: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp");
        f.write_all(pem.as_bytes()).expect("write");
        f
    }

    #[test]
    fn trusted_ca_handshake_and_exchange() {
        let pki = pki("test CA", &["127.0.0.1", "localhost"]);
        let ca = ca_file(&pki.ca_pem);
        let port = serve_once(pki.server);
        let config = client_config(Some(ca.path())).expect("config");
        let url = ServerUrl::parse(&format!("imaps://127.0.0.1:{port}"), None).expect("url");
        let mut stream = Stream::open(&url, Duration::from_secs(5), &config).expect("open");
        assert!(stream.is_tls());
        assert!(stream.tcp().nodelay().expect("nodelay"));
        let mut buf = [0u8; 6];
        stream.read_exact(&mut buf).expect("greeting");
        assert_eq!(&buf, b"hello\n");
        stream.write_all(b"ping\n").expect("write");
        let mut echo = [0u8; 5];
        stream.read_exact(&mut echo).expect("echo");
        assert_eq!(&echo, b"ping\n");
    }

    /// Regression (hardening, issue 8): a server that hangs up without a TLS
    /// close_notify is reported in words, not with rustls's docs.rs URL.
    #[test]
    fn a_cut_tls_connection_says_the_server_closed_it() {
        let pki = pki("test CA", &["127.0.0.1"]);
        let ca = ca_file(&pki.ca_pem);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = pki.server;
        thread::spawn(move || {
            let Ok((tcp, _)) = listener.accept() else {
                return;
            };
            let Ok(conn) = ServerConnection::new(Arc::new(server)) else {
                return;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let _ = tls.write_all(b"hello\n");
            let _ = tls.flush();
            let _ = tls.sock.shutdown(std::net::Shutdown::Both);
        });
        let config = client_config(Some(ca.path())).expect("config");
        let url = ServerUrl::parse(&format!("imaps://127.0.0.1:{port}"), None).expect("url");
        let mut stream = Stream::open(&url, Duration::from_secs(5), &config).expect("open");
        let mut all = Vec::new();
        let e = stream.read_to_end(&mut all).expect_err("no close_notify");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let text = Error::from(e).message().to_string();
        assert_eq!(
            text,
            "the server closed the connection (without TLS close_notify)"
        );
        assert_eq!(all, b"hello\n");
    }

    #[test]
    fn untrusted_ca_is_69_with_reason() {
        let server_pki = pki("server CA", &["127.0.0.1"]);
        let other = pki("other CA", &["127.0.0.1"]);
        let ca = ca_file(&other.ca_pem);
        let port = serve_once(server_pki.server);
        let config = client_config(Some(ca.path())).expect("config");
        let tcp = connect("127.0.0.1", port, Duration::from_secs(5)).expect("tcp");
        let e = tls_handshake(tcp, "127.0.0.1", &config).expect_err("untrusted");
        assert_eq!(e.exit(), Exit::Unavailable);
        assert!(
            e.message()
                .contains("certificate for 127.0.0.1 not trusted (unknown issuer)"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn wrong_host_name_is_69_with_reason() {
        let pki = pki("test CA", &["mail.example.org"]);
        let ca = ca_file(&pki.ca_pem);
        let port = serve_once(pki.server);
        let config = client_config(Some(ca.path())).expect("config");
        let tcp = connect("127.0.0.1", port, Duration::from_secs(5)).expect("tcp");
        let e = tls_handshake(tcp, "127.0.0.1", &config).expect_err("mismatch");
        assert_eq!(e.exit(), Exit::Unavailable);
        assert!(
            e.message()
                .contains("certificate is not valid for host 127.0.0.1"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn plaintext_peer_on_tls_is_76() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        thread::spawn(move || {
            if let Ok((mut tcp, _)) = listener.accept() {
                let _ = tcp.write_all(b"220 smtp.example.org ESMTP ready\r\n");
                thread::sleep(Duration::from_millis(200));
            }
        });
        let config = client_config(None).expect("config");
        let tcp = connect("127.0.0.1", port, Duration::from_secs(5)).expect("tcp");
        let e = tls_handshake(tcp, "127.0.0.1", &config).expect_err("not TLS");
        assert_eq!(e.exit(), Exit::Protocol, "{}", e.message());
    }

    #[test]
    fn silent_peer_times_out_within_bound() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // Accepted by the kernel backlog, never answered.
        let config = client_config(None).expect("config");
        let started = Instant::now();
        let tcp = connect("127.0.0.1", port, Duration::from_millis(300)).expect("tcp");
        let e = tls_handshake(tcp, "127.0.0.1", &config).expect_err("timeout");
        assert_eq!(e.exit(), Exit::TempFail, "{}", e.message());
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
    }

    /// Regression (hardening, issue 8): a server that sends part of its
    /// first flight and then stalls is given one timeout for the whole
    /// handshake, not one per read (it took twice --timeout).
    #[test]
    fn a_handshake_stalled_mid_flight_times_out_once() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = thread::spawn(move || {
            let Ok((mut tcp, _)) = listener.accept() else {
                return;
            };
            let mut hello = [0u8; 4096];
            let _ = tcp.read(&mut hello);
            // A ServerHello record header and a few bytes of it, then silence.
            let _ = tcp.write_all(b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03");
            thread::sleep(Duration::from_secs(4));
        });
        let config = client_config(None).expect("config");
        let tcp = connect("127.0.0.1", port, Duration::from_secs(1)).expect("tcp");
        let started = Instant::now();
        let e = tls_handshake(tcp, "127.0.0.1", &config).expect_err("stalled");
        let took = started.elapsed();
        assert_eq!(e.exit(), Exit::TempFail, "{}", e.message());
        assert!(e.message().contains("timed out"), "{}", e.message());
        assert!(
            took < Duration::from_millis(1600),
            "took {took:?} with a 1 s timeout"
        );
        drop(server);
    }

    #[test]
    fn connection_refused_is_69_and_bad_host_68() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let e = connect("127.0.0.1", port, Duration::from_secs(2)).expect_err("refused");
        assert_eq!(e.exit(), Exit::Unavailable, "{}", e.message());
        assert!(e.message().contains("refused"), "{}", e.message());
        let e = connect("no-such-host.invalid", 25, Duration::from_secs(2)).expect_err("dns");
        assert_eq!(e.exit(), Exit::NoHost, "{}", e.message());
    }

    #[test]
    fn bad_ca_files_are_78() {
        let e = client_config(Some(Path::new("/nonexistent/ca.pem"))).expect_err("missing");
        assert_eq!(e.exit(), Exit::Config);
        assert!(e.message().contains("/nonexistent/ca.pem"));
        let empty = ca_file("not a certificate\n");
        let e = client_config(Some(empty.path())).expect_err("no cert");
        assert_eq!(e.exit(), Exit::Config);
        assert!(
            e.message().contains("no PEM certificate"),
            "{}",
            e.message()
        );
    }

    /// A self-signed server certificate marked CA:TRUE, as `openssl req -x509`
    /// makes one, valid from 1975 to `until` (a year), and a server using it.
    fn self_signed_ca(names: &[&str], until: i32) -> (String, ServerConfig) {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), server_config(&cert, &key))
    }

    /// Regression (interop matrix, issue 14): Exim's and OpenSMTPD's
    /// certificates made by `openssl req -x509` are CA:TRUE; given in the CA
    /// file they were refused as "self-signed; use --ca-file".
    #[test]
    fn self_signed_ca_certificate_in_the_ca_file_is_trusted() {
        let (pem, server) = self_signed_ca(&["127.0.0.1", "localhost"], 4000);
        let ca = ca_file(&pem);
        let port = serve_once(server);
        let config = client_config(Some(ca.path())).expect("config");
        let url = ServerUrl::parse(&format!("imaps://127.0.0.1:{port}"), None).expect("url");
        let mut stream = Stream::open(&url, Duration::from_secs(5), &config).expect("open");
        let mut buf = [0u8; 6];
        stream.read_exact(&mut buf).expect("greeting");
        assert_eq!(&buf, b"hello\n");
    }

    /// Trusting a pinned certificate skips neither the host name nor the dates,
    /// and a CA:TRUE certificate that is not in the file is still refused.
    #[test]
    fn pinned_ca_certificate_is_still_checked() {
        let cases = [
            (
                &["mail.example.org"][..],
                4000,
                true,
                "not valid for host 127.0.0.1",
            ),
            (&["127.0.0.1"][..], 2000, true, "has expired"),
            (&["127.0.0.1"][..], 4000, false, "not trusted (self-signed)"),
        ];
        for (names, until, in_file, want) in cases {
            let (pem, server) = self_signed_ca(names, until);
            let (other, _) = self_signed_ca(names, until);
            let ca = ca_file(if in_file { &pem } else { &other });
            let port = serve_once(server);
            let config = client_config(Some(ca.path())).expect("config");
            let tcp = connect("127.0.0.1", port, Duration::from_secs(5)).expect("tcp");
            let e = tls_handshake(tcp, "127.0.0.1", &config).expect_err(want);
            assert_eq!(e.exit(), Exit::Unavailable, "{want}");
            assert!(e.message().contains(want), "{want}: {}", e.message());
        }
    }
}
