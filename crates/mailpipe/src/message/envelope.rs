//! What the tools ask of a message's header: the sender and time of a From_
//! line (imap-dump, pop3-dump) and the recipients of `smtp-send -t`. Every
//! address goes through the one address parser, [`parse::address`].

use chrono::{DateTime, Utc};

use super::decode::HeaderDecoder;
use super::parse::{self, HeaderBlock};

/// The addr-specs of an address-list value (`To:`, `Return-Path:`...), in
/// order, groups opened up, quoted local parts kept as written
/// (`"a b"@example.org`).
pub fn addresses(value: &[u8]) -> Vec<String> {
    let mut defects = Vec::new();
    let mut decoder = HeaderDecoder {
        hint: None,
        defects: &mut defects,
    };
    let value = parse::header::unfold(value);
    parse::address::parse_list(&value, &mut decoder)
        .into_iter()
        .map(|m| m.address)
        .collect()
}

/// The addresses of every field called one of `names`, in message order,
/// each with the name of its field as written (for errors).
pub fn addresses_in(block: &HeaderBlock<'_>, names: &[&str]) -> Vec<(String, String)> {
    block
        .any_of(names)
        .flat_map(|f| {
            let name = String::from_utf8_lossy(f.name).into_owned();
            addresses(f.value)
                .into_iter()
                .map(move |a| (name.clone(), a))
        })
        .collect()
}

/// The envelope sender: the address in `Return-Path:` (what the delivering
/// server recorded; empty for `<>`), else the first address in `From:`, else
/// empty (a From_ line says MAILER-DAEMON then). Only a real address (with an
/// `@`) counts: `From: me` or `From: ***` leave it empty, as the tools did
/// before they shared this parser.
pub fn sender(block: &HeaderBlock<'_>) -> String {
    let first = |name: &str| {
        block.first(name).map(|f| {
            addresses(f.value)
                .into_iter()
                .find(|a| a.contains('@'))
                .unwrap_or_default()
        })
    };
    first("return-path")
        .or_else(|| first("from"))
        .unwrap_or_default()
}

/// When the message was written or arrived: the `Date:` field, else the
/// newest date in the `Received:` fields (after their `;`).
pub fn date(block: &HeaderBlock<'_>) -> Option<DateTime<Utc>> {
    let text = |f: &parse::Field<'_>| String::from_utf8_lossy(&f.unfolded()).into_owned();
    let written = block
        .first("date")
        .and_then(|f| parse::date::parse(&text(f)));
    if let Some(d) = written {
        return Some(d.utc());
    }
    block
        .named("received")
        .filter_map(|f| {
            let value = text(f);
            let (_, date) = value.rsplit_once(';')?;
            parse::date::parse(date).map(|d| d.utc())
        })
        .max()
}

/// True when any field is a Resent-* field: then the Resent-To/Cc/Bcc and
/// Resent-From fields name the envelope, as sendmail reads them.
pub fn is_resent(block: &HeaderBlock<'_>) -> bool {
    block
        .fields
        .iter()
        .any(|f| f.name.len() > 7 && f.name[..7].eq_ignore_ascii_case(b"resent-"))
}

/// The recipients `sendmail -t` reads: To, Cc and Bcc, or Resent-To,
/// Resent-Cc and Resent-Bcc when the message has Resent-* fields; each with
/// its field's name.
pub fn recipients(block: &HeaderBlock<'_>) -> Vec<(String, String)> {
    let names: &[&str] = if is_resent(block) {
        &["resent-to", "resent-cc", "resent-bcc"]
    } else {
        &["to", "cc", "bcc"]
    };
    addresses_in(block, names)
}

/// Every field that holds addresses a reader or server acts on.
const ADDRESS_FIELDS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-bcc",
];

/// The first address in an address field with a UTF-8 local part, with its
/// field's name: such a header can travel only over SMTPUTF8 (RFC 6531 3.4,
/// RFC 6532); a UTF-8 domain alone has its IDNA spelling.
pub fn utf8_address(block: &HeaderBlock<'_>) -> Option<(String, String)> {
    addresses_in(block, ADDRESS_FIELDS)
        .into_iter()
        .find(|(_, a)| super::idna::needs_smtputf8(a))
}

/// The originator's field: Resent-From in a resent message that has one.
pub fn originator_field(block: &HeaderBlock<'_>) -> &'static str {
    if is_resent(block) && block.first("resent-from").is_some() {
        "resent-from"
    } else {
        "from"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::header_block;

    #[test]
    fn sender_prefers_return_path_then_from() {
        let s = |m: &[u8]| sender(&header_block(m).0);
        let m = b"Return-Path: <bounce@lists.example>\r\nFrom: A <a@b.c>\r\n\r\nx\r\n";
        assert_eq!(s(m), "bounce@lists.example");
        assert_eq!(
            s(b"Subject: s\nFrom: \"Lee, A\"\n <a@b.c>\n\nReturn-Path: <n@x>\n"),
            "a@b.c"
        );
        assert_eq!(s(b"From: a@b.c (Alice)\n\n"), "a@b.c");
        assert_eq!(
            s(b"From: \"Alice (work)\" <alice@x.org>\n\n"),
            "alice@x.org"
        );
        assert_eq!(s(b"Return-Path: <>\nFrom: a@b.c\n\n"), "");
        assert_eq!(s(b"From: Undisclosed <\n\n"), "");
        assert_eq!(s(b"From: me\n\n"), "");
        assert_eq!(s(b"From: ***\n\n"), "");
        assert_eq!(s(b"From: me, Bob <bob@x.org>\n\n"), "bob@x.org");
        assert_eq!(s(b""), "");
    }

    #[test]
    fn date_then_newest_received() {
        let d = |m: &[u8]| date(&header_block(m).0).map(|t| t.to_rfc3339());
        let m = b"Received: a; Mon, 23 Nov 2026 12:00:05 +0000 (UTC)\n\
            Received: b;\n Mon, 23 Nov 2026 13:00:06 +0100\nDate: x\n\n";
        assert_eq!(d(m).as_deref(), Some("2026-11-23T12:00:06+00:00"));
        let m = b"Date: 22 Nov 2026 09:00:00 EST\nReceived: a; 1 Jan 2000 00:00 +0000\n\n";
        assert_eq!(d(m).as_deref(), Some("2026-11-22T14:00:00+00:00"));
        assert_eq!(d(b"Subject: none\n\n"), None);
    }

    #[test]
    fn utf8_addresses_are_found_raw() {
        let m = "From: a@x\nTo: 张三@例子.中国, \"Li\" <李四@例子.中国>\nCc: user@例子.中国\n\n";
        let (block, _) = header_block(m.as_bytes());
        let found: Vec<String> = recipients(&block).into_iter().map(|(_, a)| a).collect();
        assert_eq!(
            found,
            ["张三@例子.中国", "李四@例子.中国", "user@例子.中国"]
        );
        assert_eq!(
            utf8_address(&block),
            Some(("To".to_string(), "张三@例子.中国".to_string()))
        );
        let (block, _) =
            header_block("From: =?utf-8?b?5byg5LiJ?= <a@x>\nCc: user@例子.中国\n\n".as_bytes());
        assert_eq!(utf8_address(&block), None);
    }

    #[test]
    fn recipients_and_resent() {
        let m = b"From: a@x\nTo: \"a b\"@x.org, G: c@x, d@x;\nCc: <e@x>\nBcc: f@x\n\n";
        let (block, _) = header_block(m);
        let found: Vec<String> = recipients(&block).into_iter().map(|(_, a)| a).collect();
        assert_eq!(found, ["\"a b\"@x.org", "c@x", "d@x", "e@x", "f@x"]);
        assert_eq!(recipients(&block)[4].0, "Bcc");
        assert_eq!(originator_field(&block), "from");
        let m = b"From: a@x\nTo: t@x\nResent-From: r@x\nResent-To: n@x\n\n";
        let (block, _) = header_block(m);
        assert!(is_resent(&block));
        assert_eq!(recipients(&block), [("Resent-To".into(), "n@x".into())]);
        assert_eq!(originator_field(&block), "resent-from");
    }
}
