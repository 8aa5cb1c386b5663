//! STARTTLS (SMTP) and STLS (POP3) and IMAP's STARTTLS end the same way: the
//! server said yes, nothing it sent may be left unread (bytes before the
//! handshake would be trusted after it), and the stream becomes TLS.

use std::sync::Arc;

use super::reader::WireReader;
use crate::exit::Error;
use crate::tls::Stream;
use crate::transcript::TranscriptStream;

/// Upgrades the connection under `reader` after the server accepted
/// `command`, refusing (76) when it sent anything after its reply; the
/// handshake is bounded by --timeout as a whole. Notes `TLS started` in the
/// `-v` transcript.
pub fn start_tls(
    reader: WireReader<TranscriptStream<Stream>>,
    command: &str,
    host: &str,
    config: &Arc<rustls::ClientConfig>,
) -> Result<WireReader<TranscriptStream<Stream>>, Error> {
    let timeout = reader.timeout();
    let stream = reader.into_inner_checked(command)?;
    let mut stream = stream.map_inner(|plain| plain.start_tls(host, config))?;
    if let Some(t) = stream.transcript() {
        t.note("TLS started");
    }
    Ok(WireReader::new(stream, timeout))
}
