//! UTF-7 (RFC 2152), a charset some old mailers label text with: `+` starts
//! base64 of UTF-16 (decoded by [`super::base64`]), `-` or any byte outside
//! the alphabet ends it, `+-` is a plus sign.

use super::base64;

/// The text, and whether some bytes were invalid and became U+FFFD.
pub fn decode(bytes: &[u8]) -> (String, bool) {
    let mut out = String::with_capacity(bytes.len());
    let mut bad = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'+' {
            if b.is_ascii() {
                out.push(b as char);
            } else {
                out.push('\u{FFFD}');
                bad = true;
            }
            i += 1;
            continue;
        }
        i += 1;
        if bytes.get(i) == Some(&b'-') {
            out.push('+');
            i += 1;
            continue;
        }
        let run = bytes[i..]
            .iter()
            .take_while(|&&c| base64::value(c).is_some())
            .count();
        // Bits of a last incomplete 16-bit unit are dropped, as bytes of a
        // last incomplete quantum are.
        let units = base64::decode_lenient(&bytes[i..i + run])
            .chunks_exact(2)
            .map(|p| u16::from_be_bytes([p[0], p[1]]))
            .collect::<Vec<_>>();
        i += run;
        for c in char::decode_utf16(units) {
            out.push(c.unwrap_or_else(|_| {
                bad = true;
                '\u{FFFD}'
            }));
        }
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
    }
    (out, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf7() {
        assert_eq!(decode(b"Hi Mom -+Jjo--!").0, "Hi Mom -\u{263a}-!");
        assert_eq!(decode(b"+ZeVnLIqe-").0, "日本語");
        assert_eq!(decode(b"1 +- 1").0, "1 + 1");
    }
}
