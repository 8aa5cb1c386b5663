//! Modified UTF-7 (RFC 3501 section 5.1.3), the encoding of IMAP mailbox
//! names: printable ASCII stands for itself (`&` as `&-`), anything else is
//! UTF-16 in base64 with `,` for `/`, between `&` and `-`. Users type and read
//! UTF-8 (`已发送`); the server sees `&XfJT0ZAB-`.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// The modified UTF-7 form of a mailbox name.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush_shifted(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush_shifted(&mut out, &mut pending);
    out
}

fn flush_shifted(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        // 1 byte -> 2 characters, 2 -> 3, 3 -> 4; no padding.
        for s in &sextets[..chunk.len() + 1] {
            out.push(char::from(ALPHABET[*s as usize]));
        }
    }
    out.push('-');
    units.clear();
}

/// The UTF-8 form of a modified UTF-7 name, or `None` if it is not valid
/// modified UTF-7 (then callers show the name as the server sent it).
pub fn decode(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            out.push_str(&decode_shifted(encoded)?);
        }
        rest = &after[end + 1..];
    }
    if !rest.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

fn decode_shifted(encoded: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut bytes = Vec::with_capacity(encoded.len() * 3 / 4);
    for c in encoded.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            bytes.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    // Leftover bits must be zero padding, and whole UTF-16 units must remain.
    if bits != 0 || nbits >= 6 || bytes.is_empty() || bytes.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    let text = String::from_utf16(&units).ok()?;
    // A shifted run must not hide what could be written directly.
    if text.chars().any(|c| (' '..='~').contains(&c)) {
        return None;
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_pairs_round_trip() {
        let pairs = [
            ("INBOX", "INBOX"),
            ("已发送", "&XfJT0ZAB-"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("R&D", "R&-D"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
            ("😀 smile", "&2D3eAA- smile"),
            ("", ""),
        ];
        for (utf8, utf7) in pairs {
            assert_eq!(encode(utf8), utf7, "encode {utf8}");
            assert_eq!(decode(utf7).as_deref(), Some(utf8), "decode {utf7}");
        }
    }

    #[test]
    fn invalid_forms_are_refused() {
        for bad in ["&", "&XfJT0ZAB", "&A-", "&AGE-", "&Zg-", "a\u{7f}b", "é"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
