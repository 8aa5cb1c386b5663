//! The one quoted-printable decoder of the message library: bodies
//! (Content-Transfer-Encoding, as Python's quopri decodes them) and the `Q`
//! encoding of RFC 2047 encoded-words share the `=XX` unescaping.

use super::hex_pair;

/// `=XX` to its byte, an `=` not followed by two hex digits kept literally;
/// with `underscore_is_space` (the `Q` encoding) `_` is a space.
fn unescape(text: &[u8], underscore_is_space: bool, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'_' if underscore_is_space => out.push(b' '),
            b'=' => {
                if let Some(v) = text.get(i + 1..i + 3).and_then(hex_pair) {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'=');
            }
            b => out.push(b),
        }
        i += 1;
    }
}

/// The `Q` encoding of an encoded-word.
pub fn decode_word(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    unescape(text, true, &mut out);
    out
}

/// [`unescape`] without the `Q` encoding's underscore, by runs between the
/// `=` signs (a body is mostly plain text).
fn unescape_runs(mut text: &[u8], out: &mut Vec<u8>) {
    while let Some(at) = memchr::memchr(b'=', text) {
        out.extend_from_slice(&text[..at]);
        match text.get(at + 1..at + 3).and_then(hex_pair) {
            Some(v) => {
                out.push(v);
                text = &text[at + 3..];
            }
            None => {
                out.push(b'=');
                text = &text[at + 1..];
            }
        }
    }
    out.extend_from_slice(text);
}

/// A quoted-printable body: `=XX`, soft line breaks, trailing whitespace of
/// each line dropped, line ends become LF, and an `=` not followed by two hex
/// digits kept literally.
pub fn decode_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while !rest.is_empty() {
        let (raw_line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => rest.split_at(i + 1),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        let has_eol = raw_line.ends_with(b"\n");
        let mut line = raw_line.strip_suffix(b"\n").unwrap_or(raw_line);
        while let Some((&last, rest)) = line.split_last() {
            if last == b' ' || last == b'\t' || last == b'\r' {
                line = rest;
            } else {
                break;
            }
        }
        let soft = match line.strip_suffix(b"=") {
            Some(rest) => {
                line = rest;
                true
            }
            None => false,
        };
        unescape_runs(line, &mut out);
        if has_eol && !soft {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body() {
        assert_eq!(
            decode_body(b"caf=E9 =\r\nau lait  \r\nx=3d=zz\r\n"),
            b"caf\xe9 au lait\nx==zz\n"
        );
        assert_eq!(decode_body(b"no newline"), b"no newline");
        assert_eq!(decode_body(b"a=4=\nb=\n"), b"a=4b");
        assert_eq!(decode_body(b"=\n\n=4"), b"\n=4");
        assert_eq!(decode_body(b"x=3D=3\r\n==41 \t\r\n\n"), b"x==3\n=A\n\n");
        assert_eq!(decode_body(b""), b"");
    }

    #[test]
    fn word() {
        assert_eq!(decode_word(b"caf=E9_=5F=zz"), b"caf\xe9 _=zz");
    }
}
