//! Delivery status notifications (RFC 3464, and RFC 6533's UTF-8 form): the
//! `message/delivery-status` (or `message/global-delivery-status`) part of a
//! `multipart/report` a server sends back to the sender, as the record's
//! `delivery_status` field: the per-message fields and one entry per
//! recipient, so a script can tell which recipient failed, was delayed or
//! was delivered without reading the human-readable text.

use serde::Serialize;

use mailpipe::message::decode::transfer;
use mailpipe::message::parse::Part;

/// The report's per-message fields and its recipients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryStatus {
    /// `Reporting-MTA` as written (`dns; mail.example.org`).
    pub reporting_mta: Option<String>,
    /// `Original-Envelope-Id`: the ENVID the sender gave (RFC 3461).
    pub original_envelope_id: Option<String>,
    pub arrival_date: Option<String>,
    pub recipients: Vec<RecipientStatus>,
}

/// One recipient's block of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecipientStatus {
    /// The address of `Final-Recipient`, without its type (`rfc822;`, `utf-8;`).
    pub final_recipient: Option<String>,
    /// The address of `Original-Recipient` (the sender's ORCPT), without its type.
    pub original_recipient: Option<String>,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded`, lower case.
    pub action: Option<String>,
    /// The RFC 3463 status code, `5.1.1`.
    pub status: Option<String>,
    /// `Diagnostic-Code` as written (`smtp; 550 5.1.1 ...`).
    pub diagnostic_code: Option<String>,
    pub remote_mta: Option<String>,
    pub last_attempt_date: Option<String>,
    pub will_retry_until: Option<String>,
}

/// The delivery status of the report `top`, when it is one: the first
/// delivery-status part anywhere in the tree.
pub fn find(top: &Part<'_>, defects: &mut Vec<String>) -> Option<DeliveryStatus> {
    let part = find_part(top)?;
    let encoding = crate::convert::transfer_encoding(part, defects);
    let bytes = transfer::decode(part.body, encoding, defects);
    Some(parse(&String::from_utf8_lossy(&bytes)))
}

fn find_part<'p, 'a>(part: &'p Part<'a>) -> Option<&'p Part<'a>> {
    let t = part.mime_type();
    if t == "message/delivery-status" || t == "message/global-delivery-status" {
        return Some(part);
    }
    part.children.iter().find_map(find_part)
}

/// Parses the body of a delivery-status part: groups of header-style fields
/// separated by blank lines, the first per message, each other one recipient.
pub fn parse(text: &str) -> DeliveryStatus {
    let mut status = DeliveryStatus::default();
    for (i, group) in groups(text).into_iter().enumerate() {
        if i == 0 {
            for (name, value) in group {
                match name.as_str() {
                    "reporting-mta" => status.reporting_mta = Some(value),
                    "original-envelope-id" => status.original_envelope_id = Some(value),
                    "arrival-date" => status.arrival_date = Some(value),
                    _ => {}
                }
            }
            continue;
        }
        let mut r = RecipientStatus::default();
        for (name, value) in group {
            match name.as_str() {
                "final-recipient" => r.final_recipient = Some(address(&value)),
                "original-recipient" => r.original_recipient = Some(address(&value)),
                "action" => r.action = Some(value.to_ascii_lowercase()),
                "status" => r.status = Some(value),
                "diagnostic-code" => r.diagnostic_code = Some(value),
                "remote-mta" => r.remote_mta = Some(value),
                "last-attempt-date" => r.last_attempt_date = Some(value),
                "will-retry-until" => r.will_retry_until = Some(value),
                _ => {}
            }
        }
        status.recipients.push(r);
    }
    status
}

/// `rfc822; a@b` → `a@b`: the address after its type; a `utf-8` address
/// has its `\x{HEX}` escapes (RFC 6533 utf-8-addr-xtext) undone.
fn address(value: &str) -> String {
    let (kind, addr) = value.split_once(';').unwrap_or(("", value));
    let addr = addr.trim();
    if kind.trim().eq_ignore_ascii_case("utf-8") {
        unescape_utf8_xtext(addr)
    } else {
        addr.to_string()
    }
}

/// `\x{5F20}` → `张`; anything that is not a valid escape stays as written.
fn unescape_utf8_xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("\\x{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 3..];
        let decoded = after.find('}').and_then(|end| {
            let c = u32::from_str_radix(&after[..end], 16)
                .ok()
                .and_then(char::from_u32)?;
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("\\x{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The blocks of `Name: value` fields (names lower case, continuation lines
/// joined, comments in parentheses kept), empty blocks dropped.
fn groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The delivery-status part of a Postfix failure report, as Postfix wrote it.
    #[test]
    fn postfix_report() {
        let text = "Reporting-MTA: dns; mail.example.test\r\n\
            X-Postfix-Queue-ID: 0A3AC9C2651\r\n\
            Original-Envelope-Id: run-7\r\n\
            Arrival-Date: Sun, 29 Nov 2026 23:25:34 +0000 (UTC)\r\n\
            \r\n\
            Final-Recipient: rfc822; no-such-user@example.test\r\n\
            Original-Recipient: rfc822;gone@example.test\r\n\
            Action: failed\r\n\
            Status: 5.1.1\r\n\
            Remote-MTA: dns; mail.example.test\r\n\
            Diagnostic-Code: smtp; 550 5.1.1 <no-such-user@example.test> User doesn't\r\n    exist: no-such-user@example.test\r\n\
            \r\n\
            Final-Recipient: utf-8; 张三@example.test\r\n\
            Action: Delayed\r\n\
            Status: 4.4.1\r\n";
        let s = parse(text);
        assert_eq!(s.reporting_mta.as_deref(), Some("dns; mail.example.test"));
        assert_eq!(s.original_envelope_id.as_deref(), Some("run-7"));
        assert_eq!(s.recipients.len(), 2);
        let r = &s.recipients[0];
        assert_eq!(
            r.final_recipient.as_deref(),
            Some("no-such-user@example.test")
        );
        assert_eq!(r.original_recipient.as_deref(), Some("gone@example.test"));
        assert_eq!(r.action.as_deref(), Some("failed"));
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            r.diagnostic_code.as_deref(),
            Some("smtp; 550 5.1.1 <no-such-user@example.test> User doesn't exist: no-such-user@example.test")
        );
        assert_eq!(
            s.recipients[1].final_recipient.as_deref(),
            Some("张三@example.test")
        );
        assert_eq!(s.recipients[1].action.as_deref(), Some("delayed"));
    }

    #[test]
    fn utf8_addresses_lose_their_escapes() {
        assert_eq!(
            address("utf-8; \\x{5F20}\\x{4E09}@xn--fsqu00a.xn--fiqs8s"),
            "张三@xn--fsqu00a.xn--fiqs8s"
        );
        assert_eq!(address("utf-8;张三@x"), "张三@x");
        assert_eq!(address("utf-8; a\\x{zz}b\\x{"), "a\\x{zz}b\\x{");
        assert_eq!(address("rfc822; a\\x{41}@x"), "a\\x{41}@x");
    }
}
