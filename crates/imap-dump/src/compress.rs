//! When to ask for COMPRESS=DEFLATE (RFC 4978). Deflate pays where the link
//! is the bottleneck: a text mailbox crosses it 5-8x smaller. On this machine
//! or a LAN the server's deflate is the bottleneck instead (2,000 messages
//! took 8-15 s compressed against 1.1-1.5 s plain on loopback), so by default
//! imap-dump compresses only when a NOOP after login takes a far link's round
//! trip. (Not the time to the greeting: on loopback Dovecot's TLS handshake
//! and login process alone sometimes take over 10 ms.)

use std::time::Duration;

use clap::ValueEnum;
use mailpipe::Error;

/// A NOOP's round trip at least this long means a link worth compressing
/// (loopback and a LAN answer in well under a millisecond).
pub const FAR_LINK: Duration = Duration::from_millis(5);

/// `--compress`, or the account's `compress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compress {
    /// When the server offers it and a round trip takes 5 ms or more (the default).
    Auto,
    /// Whenever the server offers it.
    Always,
    /// Never.
    Never,
}

impl Compress {
    /// `--compress`, `--no-compress`, else the account's `compress`, else
    /// `Auto`; a bad account value is 78.
    pub fn choose(
        flag: Option<Compress>,
        no_compress: bool,
        account: Option<&str>,
    ) -> Result<Compress, Error> {
        match (flag, no_compress, account) {
            (_, true, _) => Ok(Compress::Never),
            (Some(mode), _, _) => Ok(mode),
            (None, _, None) => Ok(Compress::Auto),
            (None, _, Some(value)) => Compress::from_str(value, true).map_err(|_| {
                Error::config(format!(
                    "account key compress: {value:?} is not auto, always or never"
                ))
            }),
        }
    }

    /// Whether a round trip of `rtt` is a far link, for `Auto`.
    pub fn far(rtt: Duration) -> bool {
        rtt >= FAR_LINK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_account_and_a_far_link_is_5_ms_or_more() {
        let choose = |flag, no, account| Compress::choose(flag, no, account).expect("valid");
        assert_eq!(choose(None, false, None), Compress::Auto);
        assert_eq!(choose(None, true, Some("always")), Compress::Never);
        assert_eq!(
            choose(Some(Compress::Always), false, Some("never")),
            Compress::Always
        );
        assert_eq!(choose(None, false, Some("NEVER")), Compress::Never);
        assert!(Compress::choose(None, false, Some("yes")).is_err());
        assert!(!Compress::far(Duration::from_micros(300)));
        assert!(Compress::far(Duration::from_millis(30)));
    }
}
