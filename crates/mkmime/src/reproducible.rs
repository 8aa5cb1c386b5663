//! Generated values (Date, Message-ID, MIME boundaries) and how
//! `SOURCE_DATE_EPOCH` fixes them: with it set, every value is derived from
//! the epoch and a digest of the input, so the same input gives the same
//! bytes; without it, from the clock and the process's random hash keys.

use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, FixedOffset, Local, TimeZone, Utc};
use mailpipe::Error;
use sha2::{Digest, Sha256};

/// `SOURCE_DATE_EPOCH` (seconds since 1970, UTC) if set and not empty.
pub fn source_date_epoch() -> Result<Option<i64>, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|&s| s >= 0)
            .map(Some)
            .ok_or_else(|| {
                Error::usage(format!(
                    "SOURCE_DATE_EPOCH={text:?} is not a number of seconds since 1970"
                ))
            }),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::usage(
            "SOURCE_DATE_EPOCH is not a number of seconds since 1970",
        )),
    }
}

/// The Date for a message with no date of its own: the epoch in UTC when
/// reproducible, else now in local time.
pub fn default_date(epoch: Option<i64>) -> Result<DateTime<FixedOffset>, Error> {
    match epoch {
        Some(seconds) => Utc
            .timestamp_opt(seconds, 0)
            .single()
            .map(|d| d.fixed_offset())
            .ok_or_else(|| Error::usage(format!("SOURCE_DATE_EPOCH={seconds} is out of range"))),
        None => Ok(Local::now().fixed_offset()),
    }
}

/// Source of the unique strings a message needs.
pub struct Ids {
    seed: [u8; 32],
}

impl Ids {
    /// Derived from the epoch and a digest of everything the input said.
    pub fn reproducible(epoch: i64, input_digest: &[u8]) -> Ids {
        let mut h = Sha256::new();
        h.update(b"mkmime reproducible\0");
        h.update(epoch.to_be_bytes());
        h.update(input_digest);
        Ids {
            seed: h.finalize().into(),
        }
    }

    /// Unpredictable: clock, process id and the OS-seeded hash keys std uses.
    pub fn random() -> Ids {
        let mut h = Sha256::new();
        h.update(b"mkmime random\0");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        h.update(nanos.to_be_bytes());
        h.update(std::process::id().to_be_bytes());
        for i in 0..4u8 {
            h.update(RandomState::new().hash_one(i).to_be_bytes());
        }
        Ids {
            seed: h.finalize().into(),
        }
    }

    /// 32 hex digits (128 bits) for `label`; the same label gives the same token.
    pub fn token(&self, label: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.seed);
        h.update(label.as_bytes());
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_tokens_depend_on_epoch_input_and_label() {
        let a = Ids::reproducible(1_700_000_000, b"input");
        let b = Ids::reproducible(1_700_000_000, b"input");
        assert_eq!(a.token("boundary 0"), b.token("boundary 0"));
        assert_ne!(a.token("boundary 0"), a.token("boundary 1"));
        assert_ne!(
            a.token("x"),
            Ids::reproducible(1_700_000_001, b"input").token("x")
        );
        assert_ne!(
            a.token("x"),
            Ids::reproducible(1_700_000_000, b"other").token("x")
        );
        assert_eq!(a.token("x").len(), 32);
    }

    #[test]
    fn random_tokens_differ() {
        assert_ne!(Ids::random().token("x"), Ids::random().token("x"));
    }

    #[test]
    fn epoch_date_is_utc() {
        let d = default_date(Some(0)).unwrap();
        assert_eq!(
            crate::headers::format_date(&d),
            "Thu, 01 Jan 1970 00:00:00 +0000"
        );
    }
}
