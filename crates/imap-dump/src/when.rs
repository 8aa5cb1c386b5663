//! `auto | always | never`: how imap-dump's optional protocol steps (IMAP
//! ID, COMPRESS=DEFLATE) are chosen, from a flag, else an account key, else
//! `auto`.

use clap::ValueEnum;
use mailpipe::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum When {
    /// When the server offers it and it pays, as the flag says (the default).
    Auto,
    /// Whenever the server allows it.
    Always,
    /// Never.
    Never,
}

impl When {
    /// `flag`, else the account's `key` = `account`, else `Auto`; a value
    /// the account file should not hold is 78.
    pub fn choose(flag: Option<When>, key: &str, account: Option<&str>) -> Result<When, Error> {
        match (flag, account) {
            (Some(when), _) => Ok(when),
            (None, None) => Ok(When::Auto),
            (None, Some(value)) => When::parse(value).ok_or_else(|| {
                Error::config(format!(
                    "account key {key}: {value:?} is not auto, always or never"
                ))
            }),
        }
    }

    /// The account file's spelling, any case.
    pub fn parse(value: &str) -> Option<When> {
        When::from_str(value, true).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            When::Auto => "auto",
            When::Always => "always",
            When::Never => "never",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailpipe::Exit;

    #[test]
    fn the_flag_beats_the_account_and_bad_values_are_78() {
        let choose = |flag, account| When::choose(flag, "k", account).ok();
        assert_eq!(choose(None, None), Some(When::Auto));
        assert_eq!(choose(Some(When::Never), Some("always")), Some(When::Never));
        assert_eq!(choose(None, Some("NEVER")), Some(When::Never));
        let e = When::choose(None, "imap_id", Some("yes")).expect_err("refused");
        assert_eq!(e.exit(), Exit::Config);
        assert!(e.message().contains("imap_id"), "{e}");
    }
}
