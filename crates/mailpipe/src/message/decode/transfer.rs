//! Content-Transfer-Encoding undone: base64 and quoted-printable decoded
//! leniently (as Python's email package and most mail readers do), uuencode
//! for the `x-uuencode` label, anything else passed through.

use std::borrow::Cow;

use super::{base64, quoted_printable};

/// The transfer encodings the message library undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferEncoding {
    Identity,
    Base64,
    QuotedPrintable,
    Uuencode,
}

impl TransferEncoding {
    pub fn from_label(label: &str) -> (TransferEncoding, bool) {
        match label.trim().to_ascii_lowercase().as_str() {
            "" | "7bit" | "8bit" | "binary" | "7-bit" | "8-bit" => {
                (TransferEncoding::Identity, true)
            }
            "base64" => (TransferEncoding::Base64, true),
            "quoted-printable" => (TransferEncoding::QuotedPrintable, true),
            "x-uuencode" | "uuencode" | "x-uue" | "uue" => (TransferEncoding::Uuencode, true),
            _ => (TransferEncoding::Identity, false),
        }
    }
}

/// Line ends of a part that is not transfer-encoded are an accident of
/// storage (LF in an mbox or maildir, CRLF over IMAP and SMTP); they become
/// LF, as in Python's email package, so that sizes and hashes do not depend
/// on where the message was kept. Encoded content is left byte for byte.
fn crlf_to_lf(body: &[u8]) -> Cow<'_, [u8]> {
    // One searcher for the whole body, not one per line.
    let finder = memchr::memmem::Finder::new(b"\r\n");
    let mut found = finder.find_iter(body).peekable();
    if found.peek().is_none() {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut start = 0;
    for i in found {
        out.extend_from_slice(&body[start..i]);
        out.push(b'\n');
        start = i + 2;
    }
    out.extend_from_slice(&body[start..]);
    Cow::Owned(out)
}

/// Decodes a body; defects (truncated base64, bad characters) are appended.
pub fn decode<'a>(
    body: &'a [u8],
    encoding: TransferEncoding,
    defects: &mut Vec<String>,
) -> Cow<'a, [u8]> {
    match encoding {
        TransferEncoding::Identity => crlf_to_lf(body),
        TransferEncoding::Base64 => match base64::decode_body(body, defects) {
            Some(decoded) => Cow::Owned(decoded),
            None => crlf_to_lf(body),
        },
        TransferEncoding::QuotedPrintable => Cow::Owned(quoted_printable::decode_body(body)),
        TransferEncoding::Uuencode => Cow::Owned(uudecode(body)),
    }
}

/// [`decode`], with base64 decoded into `scratch` (cleared first) rather
/// than a new allocation: for callers that only measure and hash the bytes,
/// so that one buffer per thread serves every attachment.
pub fn decode_in<'a>(
    body: &'a [u8],
    encoding: TransferEncoding,
    defects: &mut Vec<String>,
    scratch: &'a mut Vec<u8>,
) -> Cow<'a, [u8]> {
    if encoding != TransferEncoding::Base64 {
        return decode(body, encoding, defects);
    }
    scratch.clear();
    if base64::decode_body_into(body, defects, scratch) {
        Cow::Borrowed(scratch)
    } else {
        crlf_to_lf(body)
    }
}

/// uuencode: `begin MODE NAME` ... lines ... `end`.
fn uudecode(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut started = false;
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !started {
            started = line.starts_with(b"begin ");
            continue;
        }
        if line == b"end" {
            break;
        }
        let Some((&len_char, data)) = line.split_first() else {
            continue;
        };
        let len = usize::from(len_char.wrapping_sub(b' ') & 0x3f);
        let mut chunk = Vec::with_capacity(len + 3);
        for quad in data.chunks(4) {
            let v: Vec<u32> = quad
                .iter()
                .map(|&c| u32::from(c.wrapping_sub(b' ') & 0x3f))
                .collect();
            let get = |k: usize| v.get(k).copied().unwrap_or(0);
            let acc = (get(0) << 18) | (get(1) << 12) | (get(2) << 6) | get(3);
            chunk.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
        }
        chunk.truncate(len);
        out.extend_from_slice(&chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uu() {
        let body = b"begin 644 a.txt\n#86)C\n`\nend\n";
        assert_eq!(uudecode(body), b"abc");
    }

    #[test]
    fn crlf_becomes_lf_and_lone_cr_stays() {
        assert_eq!(&*crlf_to_lf(b"a\r\nb\rc\r\n\r\n"), b"a\nb\rc\n\n");
        assert!(matches!(crlf_to_lf(b"a\nb\r"), Cow::Borrowed(_)));
    }
}
