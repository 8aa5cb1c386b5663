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
use mailpipe::message::{envelope, header_block};

/// The sender and time for the From_ line of `message`.
pub fn derive_envelope(message: &[u8]) -> (String, DateTime<Utc>) {
    let (block, _) = header_block(message);
    let time = envelope::date(&block).unwrap_or_else(Utc::now);
    (envelope::sender(&block), time)
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
