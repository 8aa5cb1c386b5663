//! Dates of Date and Received fields (mail2json's `date`, the time of a
//! From_ line), leniently: an optional weekday, day month year (2- or 4-digit
//! years, RFC 5322 obsolete rules), hh:mm[:ss], and a numeric or named zone.
//! A missing zone and `-0000` (RFC 5322: local time unknown) mean the offset
//! is unknown (RFC 3339's `-00:00`; the time is read as UTC). Anything else
//! unparseable gives `None`.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn zone_minutes(word: &str) -> Option<Option<i32>> {
    let w = word.trim_matches(|c: char| c == '(' || c == ')');
    if let Some(sign) = w.chars().next().filter(|c| *c == '+' || *c == '-') {
        let digits: String = w[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let h: i32 = digits[..2].parse().ok()?;
        let m: i32 = digits[2..].parse().ok()?;
        if h > 23 || m > 59 {
            return None;
        }
        let total = h * 60 + m;
        if sign == '-' && total == 0 {
            return Some(None);
        }
        return Some(Some(if sign == '-' { -total } else { total }));
    }
    let named = match w.to_ascii_uppercase().as_str() {
        "UT" | "UTC" | "GMT" | "Z" => 0,
        "EST" => -5 * 60,
        "EDT" => -4 * 60,
        "CST" => -6 * 60,
        "CDT" => -5 * 60,
        "MST" => -7 * 60,
        "MDT" => -6 * 60,
        "PST" => -8 * 60,
        "PDT" => -7 * 60,
        _ => return None,
    };
    Some(Some(named))
}

/// A date as written, and whether its offset is known (`-0000` or none is
/// not: the time is then read as UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    pub time: DateTime<FixedOffset>,
    pub offset_known: bool,
}

impl Date {
    pub fn utc(&self) -> DateTime<Utc> {
        self.time.with_timezone(&Utc)
    }
}

/// Parses a Date value; `Some` RFC 3339 text with the original offset when
/// it is a real date (`-00:00` when the offset is unknown).
pub fn to_rfc3339(value: &str) -> Option<String> {
    let date = parse(value)?;
    let text = date.time.to_rfc3339();
    Some(if date.offset_known {
        text
    } else {
        format!("{}-00:00", &text[..text.len() - 6])
    })
}

/// Parses a date value (a Date field, the part of a Received field after `;`).
pub fn parse(value: &str) -> Option<Date> {
    let cleaned: String = value
        .chars()
        .map(|c| if c == ',' { ' ' } else { c })
        .collect();
    let mut words: Vec<&str> = cleaned.split_whitespace().collect();
    if words.first().is_some_and(|w| {
        w.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && month(w).is_none()
    }) {
        words.remove(0);
    }
    // day month year time [zone], or month day time year (asctime-like).
    let (day, mon, year, time, zone) = if let Some(m) = words.first().and_then(|w| month(w)) {
        let day: u32 = words.get(1)?.parse().ok()?;
        // `Mon Jan 2 15:04:05 2006 [zone]` or `Jan 2 2006 15:04:05`.
        if words.get(2)?.contains(':') {
            (day, m, words.get(3)?, *words.get(2)?, words.get(4).copied())
        } else {
            (day, m, words.get(2)?, *words.get(3)?, words.get(4).copied())
        }
    } else {
        let day: u32 = words.first()?.parse().ok()?;
        let mon = month(words.get(1)?)?;
        (
            day,
            mon,
            words.get(2)?,
            *words.get(3)?,
            words.get(4).copied(),
        )
    };
    let year: i32 = year.parse().ok()?;
    let year = match year {
        0..=49 => 2000 + year,
        50..=999 => 1900 + year,
        _ => year,
    };
    let mut hms = time.split(':').map(|p| p.parse::<u32>());
    let h = hms.next()?.ok()?;
    let m = hms.next()?.ok()?;
    let s = match hms.next() {
        Some(s) => s.ok()?,
        None => 0,
    };
    let s = s.min(59); // leap seconds
    let offset = match zone {
        Some(z) => zone_minutes(z).unwrap_or(None),
        None => None,
    };
    let naive = NaiveDate::from_ymd_opt(year, mon, day)?.and_hms_opt(h, m, s)?;
    let fixed = FixedOffset::east_opt(offset.unwrap_or(0) * 60)?;
    let time = fixed.from_local_datetime(&naive).single()?;
    Some(Date {
        time,
        offset_known: offset.is_some(),
    })
}

fn month(word: &str) -> Option<u32> {
    let w = word.get(..3)?.to_ascii_lowercase();
    MONTHS.iter().position(|m| *m == w).map(|i| i as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            to_rfc3339("Wed, 20 May 2026 22:42:45 +0200").as_deref(),
            Some("2026-05-20T22:42:45+02:00")
        );
        assert_eq!(
            to_rfc3339("Thu, 21 May 2026 06:42:40 +1000 (AEST)").as_deref(),
            Some("2026-05-21T06:42:40+10:00")
        );
        assert_eq!(
            to_rfc3339("1 Jan 99 00:00 GMT").as_deref(),
            Some("1999-01-01T00:00:00+00:00")
        );
        assert_eq!(
            to_rfc3339("2 Feb 2004 10:00:00 -0000").as_deref(),
            Some("2004-02-02T10:00:00-00:00")
        );
        assert_eq!(
            to_rfc3339("Mon Jan  2 15:04:05 2006").as_deref(),
            Some("2006-01-02T15:04:05-00:00")
        );
        assert_eq!(
            to_rfc3339("Tue, 3 Feb 2004 09:05:07 PST").as_deref(),
            Some("2004-02-03T09:05:07-08:00")
        );
        assert_eq!(to_rfc3339("yesterday"), None);
        assert_eq!(to_rfc3339("32 Jan 2004 10:00 +0000"), None);
    }
}
