//! When to ask for COMPRESS=DEFLATE (RFC 4978). Deflate pays where the link
//! is the bottleneck: a text mailbox crosses it 5-8x smaller. On this machine
//! or a LAN the server's deflate is the bottleneck instead (2,000 messages
//! took 8-15 s compressed against 1.1-1.5 s plain on loopback), so by default
//! imap-dump compresses only when the server's greeting took a far link's
//! time to arrive.

use std::time::Duration;

use clap::ValueEnum;
use mailpipe::Error;

/// From connecting to the greeting (TCP, TLS and the greeting itself: two
/// round trips or more): at least this long means a link worth compressing.
pub const FAR_LINK: Duration = Duration::from_millis(10);

/// `--compress`, or the account's `compress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compress {
    /// When the server offers it and the link is far (the default).
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

    /// Whether to ask, the greeting having taken `greeting_after`.
    pub fn wanted(self, greeting_after: Duration) -> bool {
        match self {
            Compress::Auto => greeting_after >= FAR_LINK,
            Compress::Always => true,
            Compress::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_account_and_auto_asks_on_a_far_link_only() {
        let choose = |flag, no, account| Compress::choose(flag, no, account).expect("valid");
        assert_eq!(choose(None, false, None), Compress::Auto);
        assert_eq!(choose(None, true, Some("always")), Compress::Never);
        assert_eq!(
            choose(Some(Compress::Always), false, Some("never")),
            Compress::Always
        );
        assert_eq!(choose(None, false, Some("NEVER")), Compress::Never);
        assert!(Compress::choose(None, false, Some("yes")).is_err());
        assert!(!Compress::Auto.wanted(Duration::from_millis(2)));
        assert!(Compress::Auto.wanted(Duration::from_millis(60)));
        assert!(Compress::Always.wanted(Duration::ZERO));
        assert!(!Compress::Never.wanted(Duration::from_secs(1)));
    }
}
