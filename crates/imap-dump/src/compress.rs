//! When to ask for COMPRESS=DEFLATE (RFC 4978). Deflate pays where the link
//! is the bottleneck: a text mailbox crosses it 5-8x smaller. On this machine
//! or a LAN the server's deflate is the bottleneck instead (2,000 messages
//! took 8-15 s compressed against 1.1-1.5 s plain on loopback), so by default
//! imap-dump compresses only when the ID command after login (a NOOP where no
//! ID is sent) takes a far link's round trip. (Not the time to the greeting:
//! on loopback Dovecot's TLS handshake and login process alone sometimes take
//! over 10 ms.)

use std::time::Duration;

/// A round trip (ID or NOOP) at least this long means a link worth compressing
/// (loopback and a LAN answer in well under a millisecond).
pub const FAR_LINK: Duration = Duration::from_millis(5);

/// Whether a round trip of `rtt` is a far link, for `--compress auto`.
pub fn far(rtt: Duration) -> bool {
    rtt >= FAR_LINK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_far_link_is_5_ms_or_more() {
        assert!(!far(Duration::from_micros(300)));
        assert!(far(Duration::from_millis(30)));
    }
}
