//! The From_ line of an exported message. POP3 gives neither an envelope
//! sender nor an arrival time, so both come from the message's own header:
//!
//! - sender: the address in `Return-Path:` (the envelope sender the delivering
//!   server recorded; `<>` becomes MAILER-DAEMON), else the address in `From:`,
//!   else MAILER-DAEMON;
//! - time: the `Date:` header (when it was written), else the newest date in
//!   the `Received:` headers (when it arrived), else now; shown in UTC. The
//!   Date header is what mail readers sort by, so From_ lines agree with them.
//!
//! Only the header section is read; nothing here changes the message.

use chrono::{DateTime, Utc};

/// The sender and time for the From_ line of `message`.
pub fn derive_envelope(message: &[u8]) -> (String, DateTime<Utc>) {
    let headers = header_fields(message);
    let field = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let sender = field("Return-Path")
        .next()
        .map(|v| address_in(v).unwrap_or_default())
        .or_else(|| field("From").next().and_then(address_in))
        .unwrap_or_default();
    let newest_received = || {
        field("Received")
            .filter_map(|v| v.rsplit_once(';').and_then(|(_, date)| parse_date(date)))
            .max()
    };
    let time = field("Date")
        .next()
        .and_then(parse_date)
        .or_else(newest_received)
        .unwrap_or_else(Utc::now);
    (sender, time)
}

/// Unfolded `(name, value)` pairs of the header section. Values are decoded
/// lossily; only addresses and dates are looked for in them.
fn header_fields(message: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for raw in message.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(text.trim());
            }
            continue;
        }
        match text.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.contains(' ') => {
                fields.push((name.to_string(), value.trim().to_string()));
            }
            // Not a header line (an mbox From_ line, garbage): skipped.
            _ => {}
        }
    }
    fields
}

/// The addr-spec in a header value: the text in the last `<...>`, else the
/// first word with an `@`. `Some("")` for `<>`.
fn address_in(value: &str) -> Option<String> {
    let value = strip_comments(value);
    if let Some(open) = value.rfind('<') {
        let rest = &value[open + 1..];
        if let Some(close) = rest.find('>') {
            return Some(rest[..close].trim().to_string());
        }
    }
    value
        .split([' ', ',', ';'])
        .find(|w| w.contains('@'))
        .map(|w| w.trim_matches(['"', '\'']).to_string())
}

/// The value with `(comments)` removed (not nested beyond what matters here).
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// An RFC 5322 date (also the obsolete forms chrono knows: no weekday, GMT,
/// UT, EST...), with comments such as `(UTC)` and extra spaces removed.
fn parse_date(value: &str) -> Option<DateTime<Utc>> {
    let clean = strip_comments(value);
    let clean = clean.split_ascii_whitespace().collect::<Vec<_>>().join(" ");
    DateTime::parse_from_rfc2822(&clean)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid")
    }

    #[test]
    fn return_path_and_date() {
        let message = b"Return-Path: <bounce@lists.example.org>\r\n\
            Received: from b by c; Mon, 23 Nov 2026 12:00:05 +0000 (UTC)\r\n\
            Received: from a\r\n\tby b; Mon, 23 Nov 2026 13:00:01 +0100\r\n\
            From: \"Alice (work)\" <alice@example.org>\r\n\
            Date: Sun, 22 Nov 2026 09:00:00 -0500\r\n\r\nReturn-Path: <body@x>\r\n";
        let (sender, time) = derive_envelope(message);
        assert_eq!(sender, "bounce@lists.example.org");
        assert_eq!(time, utc(2026, 11, 22, 14, 0, 0));
        let without_date = b"Received: from b by c; Mon, 23 Nov 2026 12:00:05 +0000 (UTC)\r\n\
            Received: from a\r\n\tby b; Mon, 23 Nov 2026 13:00:01 +0100\r\n\
            Date: not a date\r\n\r\n";
        assert_eq!(derive_envelope(without_date).1, utc(2026, 11, 23, 12, 0, 5));
    }

    #[test]
    fn from_and_date_when_no_trace_headers() {
        let message = b"From: alice@example.org (Alice)\nDate: 22 Nov 2026 09:00:00 EST\n\nbody\n";
        let (sender, time) = derive_envelope(message);
        assert_eq!(sender, "alice@example.org");
        assert_eq!(time, utc(2026, 11, 22, 14, 0, 0));
    }

    #[test]
    fn null_sender_bad_dates_and_garbage() {
        let (sender, _) = derive_envelope(b"Return-Path: <>\r\nFrom: a@b\r\n\r\n");
        assert_eq!(sender, "");
        let before = Utc::now();
        let (sender, time) = derive_envelope(b"\xff\xfe: \x00\r\nDate: yesterday\r\n\r\n");
        assert_eq!(sender, "");
        assert!(time >= before);
        let (sender, _) = derive_envelope(b"");
        assert_eq!(sender, "");
        let (sender, _) = derive_envelope(b"From: Undisclosed <\r\n\r\n");
        assert_eq!(sender, "");
    }
}
