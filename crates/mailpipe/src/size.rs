//! `ByteSize`: the one way a size is given on the command line
//! (`--max-size 10M`, `--batch-size 512K`), so every tool reads `64K` alike.
//!
//! Suffixes are binary, as pop3-dump has always read them: `K` = 1024,
//! `M` = 1024², `G` = 1024³ (either case); a plain number is bytes.

use std::fmt;
use std::str::FromStr;

const UNITS: [(char, u32); 3] = [('G', 30), ('M', 20), ('K', 10)];

/// A number of bytes, parsed from `1000`, `64K`, `10M` or `1G`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` mebibytes (for defaults: `ByteSize::mib(8)` shows as `8M`).
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n << 20)
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    /// clap prints it after `invalid value '...' for '--flag <BYTES>': `.
    type Err = String;

    fn from_str(text: &str) -> Result<ByteSize, String> {
        let upper = text.trim().to_ascii_uppercase();
        let (digits, shift) = UNITS
            .iter()
            .find_map(|&(unit, shift)| upper.strip_suffix(unit).map(|d| (d, shift)))
            .unwrap_or((upper.as_str(), 0));
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1 << shift))
            .map(ByteSize)
            .ok_or_else(|| format!("{text:?} is not a size in bytes (e.g. 500000, 64K, 10M)"))
    }
}

/// The shortest exact form: `8M` for 8 MiB, `1500` for 1500 bytes.
impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        match UNITS
            .iter()
            .find(|&&(_, shift)| n != 0 && n.trailing_zeros() >= shift)
        {
            Some(&(unit, shift)) => write!(f, "{}{unit}", n >> shift),
            None => write!(f, "{n}"),
        }
    }
}

impl ByteSize {
    /// A flag's size, else the account file's `key` (`max_bytes = "2400M"`),
    /// which must parse (78 naming the key if not).
    pub fn flag_or_account(
        flag: Option<ByteSize>,
        key: &str,
        account: Option<&str>,
    ) -> Result<Option<ByteSize>, crate::Error> {
        match (flag, account) {
            (Some(size), _) => Ok(Some(size)),
            (None, Some(text)) => text
                .parse()
                .map(Some)
                .map_err(|e| crate::Error::config(format!("the account's {key}: {e}"))),
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<u64, String> {
        s.parse::<ByteSize>().map(ByteSize::bytes)
    }

    #[test]
    fn plain_bytes_and_binary_suffixes() {
        assert_eq!(parse("1000"), Ok(1000));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("64k"), Ok(65536));
        assert_eq!(parse("64K"), Ok(65536));
        assert_eq!(parse("10M"), Ok(10 << 20));
        assert_eq!(parse("10m"), Ok(10 << 20));
        assert_eq!(parse("1G"), Ok(1 << 30));
        assert_eq!(parse(" 2K "), Ok(2048));
    }

    #[test]
    fn bad_sizes_are_errors_that_name_the_input() {
        for bad in ["", "ten", "K", "10X", "1.5M", "-1", "10KB", "99999999999G"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{e}");
            assert!(e.contains("64K"), "{e}");
        }
        assert!(parse(&u64::MAX.to_string()).is_ok());
    }

    #[test]
    fn display_is_the_shortest_exact_form_and_parses_back() {
        for (n, text) in [
            (8 << 20, "8M"),
            (1 << 30, "1G"),
            (3 << 10, "3K"),
            (1500, "1500"),
            (0, "0"),
            ((1 << 20) + 1024, "1025K"),
        ] {
            assert_eq!(ByteSize(n).to_string(), text);
            assert_eq!(parse(text), Ok(n));
        }
    }

    #[test]
    fn a_flag_wins_over_the_account_whose_value_must_parse() {
        let from = |flag, account| ByteSize::flag_or_account(flag, "max_bytes", account);
        assert_eq!(
            from(None, Some("2400M")).ok(),
            Some(Some(ByteSize(2400 << 20)))
        );
        assert_eq!(
            from(Some(ByteSize(5)), Some("x")).ok(),
            Some(Some(ByteSize(5)))
        );
        assert_eq!(from(None, None).ok(), Some(None));
        let e = from(None, Some("lots"))
            .err()
            .map(|e| (e.exit(), e.message().to_string()));
        assert!(matches!(e, Some((crate::Exit::Config, m)) if m.contains("max_bytes")));
    }
}
