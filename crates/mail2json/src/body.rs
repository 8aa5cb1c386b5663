//! Content-Transfer-Encoding undone: base64 and quoted-printable decoded
//! leniently (as Python's email package and most mail readers do), uuencode
//! for the `x-uuencode` label, anything else passed through.

use std::borrow::Cow;

use crate::decode::base64_value;
use crate::rfc2047::hex_pair;

/// Transfer encodings mail2json knows.
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
    if memchr::memmem::find(body, b"\r\n").is_none() {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some(i) = memchr::memmem::find(rest, b"\r\n") {
        out.extend_from_slice(&rest[..i]);
        out.push(b'\n');
        rest = &rest[i + 2..];
    }
    out.extend_from_slice(rest);
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
        TransferEncoding::Base64 => match base64(body, defects) {
            Some(decoded) => Cow::Owned(decoded),
            None => crlf_to_lf(body),
        },
        TransferEncoding::QuotedPrintable => Cow::Owned(quoted_printable(body)),
        TransferEncoding::Uuencode => Cow::Owned(uudecode(body)),
    }
}

/// Base64 as Python's binascii decodes it when not strict: characters
/// outside the alphabet are skipped, and decoding stops at the padding that
/// ends a quantum (what follows is not part of this content). Text that is
/// only labelled base64 (characters outside the alphabet and a length no
/// base64 can have) is `None`: the caller keeps it as it is, as Python does.
fn base64(body: &[u8], defects: &mut Vec<String>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut n = 0;
    let mut invalid = false;
    let mut end = body.len();
    let mut i = 0;
    while i < body.len() {
        // Fast path: four alphabet characters at a quantum boundary.
        if n == 0 && i + 4 <= body.len() {
            let q = [
                B64[usize::from(body[i])],
                B64[usize::from(body[i + 1])],
                B64[usize::from(body[i + 2])],
                B64[usize::from(body[i + 3])],
            ];
            if (q[0] | q[1] | q[2] | q[3]) < 64 {
                let v = (u32::from(q[0]) << 18)
                    | (u32::from(q[1]) << 12)
                    | (u32::from(q[2]) << 6)
                    | u32::from(q[3]);
                out.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
                i += 4;
                continue;
            }
        }
        let c = body[i];
        match base64_value(c) {
            Some(v) => {
                acc = (acc << 6) | u32::from(v);
                n += 1;
                if n == 4 {
                    out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
                    acc = 0;
                    n = 0;
                }
            }
            None => match c {
                b'=' if n >= 2 => {
                    flush_partial(&mut out, acc, n);
                    n = 0;
                    end = i;
                    break;
                }
                // Spaces inside a line: words, not base64.
                b' ' | b'\t' if body.get(i + 1).is_some_and(|&b| base64_value(b).is_some()) => {
                    invalid = true
                }
                b' ' | b'\t' | b'\r' | b'\n' | b'=' => {}
                _ => invalid = true,
            },
        }
        i += 1;
    }
    if n == 1 && invalid {
        defects.push("base64-undecodable: kept as it is".to_string());
        return None;
    }
    if n == 1 {
        defects.push("base64-truncated".to_string());
    } else if n > 1 {
        flush_partial(&mut out, acc, n);
        defects.push("base64-missing-padding".to_string());
    }
    let after = &body[end..];
    if end < body.len() && after.iter().any(|&b| base64_value(b).is_some()) {
        defects.push("base64-data-after-padding".to_string());
    }
    if invalid {
        defects.push("base64-invalid-characters".to_string());
    }
    Some(out)
}

/// Base64 alphabet values; 0xFF for every other byte.
static B64: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => 0xFF,
        };
        i += 1;
    }
    t
};

fn flush_partial(out: &mut Vec<u8>, acc: u32, n: u32) {
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
}

/// Quoted-printable as Python's quopri decodes it: `=XX`, soft line breaks,
/// trailing whitespace of each line dropped, line ends become LF, and an
/// `=` not followed by two hex digits kept literally.
fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for raw_line in body.split_inclusive(|&b| b == b'\n') {
        let has_eol = raw_line.ends_with(b"\n");
        let mut line = raw_line.strip_suffix(b"\n").unwrap_or(raw_line);
        while let Some((&last, rest)) = line.split_last() {
            if last == b' ' || last == b'\t' || last == b'\r' {
                line = rest;
            } else {
                break;
            }
        }
        let mut soft = false;
        let mut i = 0;
        while i < line.len() {
            let b = line[i];
            if b == b'=' {
                if i + 1 == line.len() {
                    soft = true;
                    break;
                }
                if let Some(v) = line.get(i + 1..i + 3).and_then(hex_pair) {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
            out.push(b);
            i += 1;
        }
        if has_eol && !soft {
            out.push(b'\n');
        }
    }
    out
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
    fn base64_lenient() {
        let mut d = Vec::new();
        assert_eq!(
            base64(b"aGVs\r\nbG8=\r\n", &mut d).as_deref(),
            Some(&b"hello"[..])
        );
        assert!(d.is_empty());
        assert_eq!(base64(b"aGVsbG8", &mut d).as_deref(), Some(&b"hello"[..]));
        assert_eq!(d, ["base64-missing-padding"]);
        d.clear();
        assert_eq!(base64(b"aGVs!bG8=", &mut d).as_deref(), Some(&b"hello"[..]));
        assert_eq!(d, ["base64-invalid-characters"]);
        assert_eq!(base64(b"plain text, not base64 abc\n", &mut d), None);
    }

    #[test]
    fn qp() {
        assert_eq!(
            quoted_printable(b"caf=E9 =\r\nau lait  \r\nx=3d=zz\r\n"),
            b"caf\xe9 au lait\nx==zz\n"
        );
        assert_eq!(quoted_printable(b"no newline"), b"no newline");
    }

    #[test]
    fn uu() {
        let body = b"begin 644 a.txt\n#86)C\n`\nend\n";
        assert_eq!(uudecode(body), b"abc");
    }
}
