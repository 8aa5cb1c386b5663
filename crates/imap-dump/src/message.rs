//! What imap-dump reads from or adds to a message's header: the sender for
//! the From_ line, and the optional `X-Mailbox:` and Status / X-Status /
//! X-Keywords headers. The message itself is otherwise left byte for byte.

use imap::types::Flag;
use mailpipe::message::parse::header::uses_crlf;
use mailpipe::message::{envelope, header_block};

/// The address for the From_ line: the envelope sender Dovecot records in
/// `Return-Path:`, else the address in `From:`, else `MAILER-DAEMON`.
pub fn sender(message: &[u8]) -> String {
    let sender = envelope::sender(&header_block(message).0);
    if sender.is_empty() {
        "MAILER-DAEMON".to_string()
    } else {
        sender
    }
}

/// The message with `fields` (complete lines without line ends) added at the
/// end of its header, in the message's own line-end style.
pub fn with_header_fields(message: &[u8], fields: &[String]) -> Vec<u8> {
    if fields.is_empty() {
        return message.to_vec();
    }
    let eol: &[u8] = if uses_crlf(message) { b"\r\n" } else { b"\n" };
    let mut added = Vec::new();
    for f in fields {
        added.extend_from_slice(f.as_bytes());
        added.extend_from_slice(eol);
    }
    let end = header_block(message).0.end();
    let mut out = Vec::with_capacity(message.len() + added.len() + 2);
    out.extend_from_slice(&message[..end]);
    if end > 0 && !message[..end].ends_with(b"\n") {
        // Only a header, its last line without a line end.
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(&added);
    out.extend_from_slice(&message[end..]);
    out
}

/// Status / X-Status / X-Keywords as mutt and Dovecot's mbox read them.
pub fn flag_fields(flags: &[Flag<'_>]) -> Vec<String> {
    let has = |f: &Flag<'_>| flags.contains(f);
    let mut fields = Vec::new();
    let status = if has(&Flag::Seen) { "RO" } else { "O" };
    fields.push(format!("Status: {status}"));
    let mut x_status = String::new();
    for (flag, letter) in [
        (Flag::Answered, 'A'),
        (Flag::Flagged, 'F'),
        (Flag::Draft, 'T'),
        (Flag::Deleted, 'D'),
    ] {
        if has(&flag) {
            x_status.push(letter);
        }
    }
    if !x_status.is_empty() {
        fields.push(format!("X-Status: {x_status}"));
    }
    let keywords: Vec<&str> = flags
        .iter()
        .filter_map(|f| match f {
            Flag::Custom(k) => Some(k.as_ref()),
            _ => None,
        })
        .collect();
    if !keywords.is_empty() {
        fields.push(format!("X-Keywords: {}", keywords.join(" ")));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn sender_prefers_return_path_then_from() {
        let m = b"Return-Path: <bounce@lists.example>\r\nFrom: A <a@b.c>\r\n\r\nx\r\n";
        assert_eq!(sender(m), "bounce@lists.example");
        let m = b"Subject: s\nFrom: \"Lee, A\"\n <a@b.c>\n\nReturn-Path: <no@x>\n";
        assert_eq!(sender(m), "a@b.c");
        assert_eq!(sender(b"From: a@b.c (Alice)\n\n"), "a@b.c");
        assert_eq!(sender(b"Return-Path: <>\nFrom: a@b.c\n\n"), "MAILER-DAEMON");
        assert_eq!(sender(b"Subject: none\n\nbody\n"), "MAILER-DAEMON");
        assert_eq!(sender(b""), "MAILER-DAEMON");
    }

    #[test]
    fn fields_go_at_the_end_of_the_header_in_its_line_end_style() {
        let fields = vec!["X-Mailbox: 已发送".to_string()];
        assert_eq!(
            with_header_fields(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n", &fields),
            "A: 1\r\nB: 2\r\nX-Mailbox: 已发送\r\n\r\nbody\r\n\r\n".as_bytes()
        );
        assert_eq!(
            with_header_fields(b"A: 1\n\nbody\n", &fields),
            "A: 1\nX-Mailbox: 已发送\n\nbody\n".as_bytes()
        );
        assert_eq!(
            with_header_fields(b"A: 1", &fields),
            "A: 1\nX-Mailbox: 已发送\n".as_bytes()
        );
        assert_eq!(
            with_header_fields(b"\nbody\n", &fields),
            "X-Mailbox: 已发送\n\nbody\n".as_bytes()
        );
    }

    #[test]
    fn flags_become_mutt_headers() {
        let flags = [
            Flag::Seen,
            Flag::Answered,
            Flag::Flagged,
            Flag::Custom(Cow::Borrowed("$Label1")),
        ];
        assert_eq!(
            flag_fields(&flags),
            vec!["Status: RO", "X-Status: AF", "X-Keywords: $Label1"]
        );
        assert_eq!(flag_fields(&[]), vec!["Status: O"]);
    }
}
