//! A server certificate given in the CA file is trusted as itself, even when
//! it is marked CA:TRUE. `openssl req -x509` marks a self-signed certificate
//! CA:TRUE unless told otherwise (and most "make a certificate for your mail
//! server" guides use it so), and webpki refuses a CA certificate as a
//! server's own (CaUsedAsEndEntity) even when it is the trust anchor:
//! `--ca-file server.pem` then failed with "use --ca-file if you trust it".
//! OpenSSL (`openssl verify`, Python's ssl) accepts such a certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

/// webpki's verification, plus: a server whose certificate is byte for byte
/// one of `pinned` and fails only for being a CA is accepted when it names the
/// host. The handshake signatures are still checked against its key.
#[derive(Debug)]
pub(super) struct PinnedVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl PinnedVerifier {
    pub(super) fn new(
        webpki: Arc<WebPkiServerVerifier>,
        pinned: Vec<CertificateDer<'static>>,
    ) -> PinnedVerifier {
        PinnedVerifier { webpki, pinned }
    }
}

/// webpki's reason has no variant of its own in rustls 0.23.
pub(super) fn is_ca_used_as_end_entity(err: &CertificateError) -> bool {
    format!("{err:?}").contains("CaUsedAsEndEntity")
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // webpki checks the end entity's validity period before its basic
            // constraints, so this error means the dates were good (the
            // expired_pinned_ca_certificate_is_refused test holds it to that).
            Err(Error::InvalidCertificate(ref c))
                if is_ca_used_as_end_entity(c)
                    && self
                        .pinned
                        .iter()
                        .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
