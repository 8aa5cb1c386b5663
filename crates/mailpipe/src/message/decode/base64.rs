//! The one base64 decoder of the message library, lenient as Python's
//! binascii is when not strict: bodies (Content-Transfer-Encoding), the `B`
//! encoding of RFC 2047 encoded-words, and the shifted runs of UTF-7 all
//! decode here, with one alphabet table and one quantum accumulator.

/// Base64 alphabet values; 0xFF for every other byte.
static ALPHABET: [u8; 256] = {
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

/// A character's value already in its place in a quantum of four (row =
/// position), [`BAD`] for a character outside the alphabet: a quantum is
/// four lookups or-ed together, no shifts in between.
static PLACED: [[u32; 256]; 4] = {
    let mut t = [[BAD; 256]; 4];
    let mut i = 0;
    while i < 256 {
        let v = ALPHABET[i];
        if v < 64 {
            let mut k = 0;
            while k < 4 {
                t[k][i] = (v as u32) << (18 - 6 * k);
                k += 1;
            }
        }
        i += 1;
    }
    t
};
const BAD: u32 = 1 << 31;

/// Four characters as three bytes in the low 24 bits, or [`BAD`] set.
fn quad(c: &[u8]) -> u32 {
    PLACED[0][usize::from(c[0])]
        | PLACED[1][usize::from(c[1])]
        | PLACED[2][usize::from(c[2])]
        | PLACED[3][usize::from(c[3])]
}

/// The 6-bit value of a base64 character.
pub fn value(c: u8) -> Option<u8> {
    let v = ALPHABET[usize::from(c)];
    (v < 64).then_some(v)
}

/// Up to four 6-bit values waiting to become three bytes.
#[derive(Default)]
struct Quantum {
    acc: u32,
    n: u32,
}

impl Quantum {
    fn push(&mut self, v: u8, out: &mut Vec<u8>) {
        self.acc = (self.acc << 6) | u32::from(v);
        self.n += 1;
        if self.n == 4 {
            let a = self.acc;
            out.extend_from_slice(&[(a >> 16) as u8, (a >> 8) as u8, a as u8]);
            *self = Quantum::default();
        }
    }

    /// The whole bytes of an incomplete quantum (two or three characters).
    fn flush(&mut self, out: &mut Vec<u8>) {
        match self.n {
            2 => out.push((self.acc >> 4) as u8),
            3 => out.extend_from_slice(&[(self.acc >> 10) as u8, (self.acc >> 2) as u8]),
            _ => {}
        }
        *self = Quantum::default();
    }
}

/// Decodes the alphabet characters of `text`, skipping everything else
/// (padding included), and keeps the whole bytes of a last partial quantum:
/// encoded-word text and UTF-7 runs.
pub fn decode_lenient(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4 + 2);
    let mut q = Quantum::default();
    for v in text.iter().filter_map(|&c| value(c)) {
        q.push(v, &mut out);
    }
    q.flush(&mut out);
    out
}

/// A base64 body: characters outside the alphabet are skipped, and decoding
/// stops at the padding that ends a quantum (what follows is not part of this
/// content). Text that is only labelled base64 (characters outside the
/// alphabet and a length no base64 can have) is `None`: the caller keeps it
/// as it is, as Python does. Defects are appended.
pub fn decode_body(body: &[u8], defects: &mut Vec<String>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    decode_body_into(body, defects, &mut out).then_some(out)
}

/// [`decode_body`] appending to `out`, a buffer the caller reuses: false
/// (and `out` as it was) for text that is only labelled base64.
pub fn decode_body_into(body: &[u8], defects: &mut Vec<String>, out: &mut Vec<u8>) -> bool {
    decode_clean_lines(body, out) || decode_body_leniently(body, defects, out)
}

thread_local! {
    /// The lines of a body without their ends, one buffer per thread.
    static JOINED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The common case, fast: a body that is nothing but whole quanta in lines
/// (padding only at its very end) is joined without its line ends and
/// decoded with SIMD, several times faster than quantum by quantum. Anything
/// else (a stray character, missing padding, data after padding) is false
/// with `out` untouched, and goes to the lenient decoder, which yields the
/// same bytes for every body this one accepts.
fn decode_clean_lines(body: &[u8], out: &mut Vec<u8>) -> bool {
    JOINED.with_borrow_mut(|joined| {
        joined.clear();
        joined.reserve(body.len());
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len())) {
            let line = &body[start..end];
            joined.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
            start = end + 1;
        }
        let decoded = base64_simd::STANDARD
            .decode_append(&joined[..], out)
            .is_ok();
        if joined.capacity() > MAX_JOINED {
            *joined = Vec::new();
        }
        decoded
    })
}

/// The joined lines of one huge body are not kept after it.
const MAX_JOINED: usize = 16 << 20;

/// The decoder for every body: quantum by quantum, skipping what is not
/// base64 and recording it as a defect.
fn decode_body_leniently(body: &[u8], defects: &mut Vec<String>, out: &mut Vec<u8>) -> bool {
    let kept = out.len();
    out.reserve(body.len() / 4 * 3 + 3);
    let mut q = Quantum::default();
    let mut invalid = false;
    let mut end = body.len();
    let mut i = 0;
    while i < body.len() {
        // Fast path: runs of eight alphabet characters (six bytes) at a
        // quantum boundary, the bulk of a 76-character line.
        if q.n == 0 {
            while let Some(chunk) = body.get(i..i + 8) {
                let (a, b) = (quad(&chunk[..4]), quad(&chunk[4..]));
                if (a | b) & BAD != 0 {
                    break;
                }
                let (a, b) = (a.to_be_bytes(), b.to_be_bytes());
                out.extend_from_slice(&[a[1], a[2], a[3], b[1], b[2], b[3]]);
                i += 8;
            }
            if i == body.len() {
                break;
            }
        }
        // Four alphabet characters at a quantum boundary.
        if q.n == 0 && i + 4 <= body.len() {
            let v = [
                ALPHABET[usize::from(body[i])],
                ALPHABET[usize::from(body[i + 1])],
                ALPHABET[usize::from(body[i + 2])],
                ALPHABET[usize::from(body[i + 3])],
            ];
            if (v[0] | v[1] | v[2] | v[3]) < 64 {
                let a = (u32::from(v[0]) << 18)
                    | (u32::from(v[1]) << 12)
                    | (u32::from(v[2]) << 6)
                    | u32::from(v[3]);
                out.extend_from_slice(&[(a >> 16) as u8, (a >> 8) as u8, a as u8]);
                i += 4;
                continue;
            }
        }
        let c = body[i];
        match value(c) {
            Some(v) => q.push(v, out),
            None => match c {
                b'=' if q.n >= 2 => {
                    q.flush(out);
                    end = i;
                    break;
                }
                // Spaces inside a line: words, not base64.
                b' ' | b'\t' if body.get(i + 1).is_some_and(|&b| value(b).is_some()) => {
                    invalid = true
                }
                b' ' | b'\t' | b'\r' | b'\n' | b'=' => {}
                _ => invalid = true,
            },
        }
        i += 1;
    }
    if q.n == 1 && invalid {
        defects.push("base64-undecodable: kept as it is".to_string());
        out.truncate(kept);
        return false;
    }
    if q.n == 1 {
        defects.push("base64-truncated".to_string());
    } else if q.n > 1 {
        q.flush(out);
        defects.push("base64-missing-padding".to_string());
    }
    let after = &body[end..];
    if end < body.len() && after.iter().any(|&b| value(b).is_some()) {
        defects.push("base64-data-after-padding".to_string());
    }
    if invalid {
        defects.push("base64-invalid-characters".to_string());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_lenient() {
        let mut d = Vec::new();
        assert_eq!(
            decode_body(b"aGVs\r\nbG8=\r\n", &mut d).as_deref(),
            Some(&b"hello"[..])
        );
        assert!(d.is_empty());
        assert_eq!(
            decode_body(b"aGVsbG8", &mut d).as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(d, ["base64-missing-padding"]);
        d.clear();
        assert_eq!(
            decode_body(b"aGVs!bG8=", &mut d).as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(d, ["base64-invalid-characters"]);
        assert_eq!(decode_body(b"plain text, not base64 abc\n", &mut d), None);
    }

    #[test]
    fn body_in_runs_of_eight_characters() {
        let mut d = Vec::new();
        // Ending exactly after a run of eight, then runs cut by line ends.
        assert_eq!(
            decode_body(b"YWJjZGVm", &mut d).as_deref(),
            Some(&b"abcdef"[..])
        );
        assert_eq!(
            decode_body(b"YWJjZGVmZ2hp\r\namts\nbW5v\r\n", &mut d).as_deref(),
            Some(&b"abcdefghijklmno"[..])
        );
        assert!(d.is_empty());
        assert_eq!(
            decode_body(b"YWJjZGVmZ2g=", &mut d).as_deref(),
            Some(&b"abcdefgh"[..])
        );
        assert!(d.is_empty());
    }

    /// Whatever the fast path accepts, the lenient decoder decodes to the
    /// same bytes without a defect; what it refuses leaves `out` as it was.
    #[test]
    fn clean_lines_decode_as_the_lenient_decoder_does() {
        use base64::Engine as _;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut bodies: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\r\n\r\n".to_vec(),
            b"aGVsbG8=\r\n".to_vec(),
            b"aGVs\nbG8=\n\n".to_vec(),
            b"aGVsbG8\n".to_vec(),
            b"aGVsbG8=\naGk=\n".to_vec(),
            b"aGVs bG8=\n".to_vec(),
            b"aGVsbG9=\n".to_vec(),
            b"aGVsbG8=\n--\n".to_vec(),
        ];
        for len in [1usize, 2, 3, 56, 57, 58, 1000, 4099] {
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let text = base64::engine::general_purpose::STANDARD.encode(&data);
            for (width, end) in [(76, "\r\n"), (76, "\n"), (64, "\n"), (72, "\r\n")] {
                let mut body = Vec::new();
                for line in text.as_bytes().chunks(width) {
                    body.extend_from_slice(line);
                    body.extend_from_slice(end.as_bytes());
                }
                bodies.push(body);
            }
        }
        for body in &bodies {
            let (mut fast, mut slow, mut defects) = (vec![7u8], vec![7u8], Vec::new());
            if decode_clean_lines(body, &mut fast) {
                assert!(decode_body_leniently(body, &mut defects, &mut slow));
                assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(body));
                assert!(defects.is_empty(), "{defects:?}");
            } else {
                assert_eq!(fast, [7u8], "refused, but wrote");
            }
        }
        // Random bodies of base64 characters, padding, line ends and a few
        // strangers: every one the fast path takes decodes alike.
        let pick =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/====\r\n\n\n \t-.";
        let mut taken = 0;
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let body: Vec<u8> = (0..len)
                .map(|_| pick[(next() % pick.len() as u64) as usize])
                .collect();
            let (mut fast, mut slow, mut defects) = (Vec::new(), Vec::new(), Vec::new());
            if decode_clean_lines(&body, &mut fast) {
                taken += 1;
                assert!(decode_body_leniently(&body, &mut defects, &mut slow));
                assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(&body));
                assert!(defects.is_empty(), "{defects:?} for {body:?}");
            } else {
                assert!(fast.is_empty(), "refused, but wrote");
            }
        }
        assert!(
            taken > 100,
            "the random bodies reached the fast path {taken} times"
        );
        // Bodies with defects are the lenient decoder's.
        for body in [&b"aGVsbG8\n"[..], b"aGVs bG8=\n", b"aGVsbG8=\naGk=\n"] {
            assert!(!decode_clean_lines(body, &mut Vec::new()));
        }
        // The encoder's own output in lines always takes the fast path.
        assert!(decode_clean_lines(
            &bodies[bodies.len() - 1],
            &mut Vec::new()
        ));
    }

    #[test]
    fn lenient_words() {
        assert_eq!(decode_lenient(b"xOO6"), b"\xc4\xe3\xba");
        assert_eq!(decode_lenient(b"ww=="), b"\xc3");
        assert_eq!(decode_lenient(b"aGVsbG8"), b"hello");
    }
}
