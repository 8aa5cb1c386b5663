//! Files sent inside a text body: uuencode (`begin 644 name` ... `end`) and
//! its base64 form (`begin-base64 644 name` ... `====`), as `uuencode` and
//! `uuencode -m` write them and as mail clients before MIME pasted them.
//!
//! Lenient, as readers are: a data line shorter than its length character
//! says (trailing spaces stripped in transit) is padded, a character outside
//! the alphabet counts as zero, and a block without its `end` line stops at
//! the first line that is not data. Each such repair is a defect naming the
//! file; the bytes decoded so far are kept. Nothing decoded is larger than
//! the text it came from, and at most [`MAX_BLOCKS`] blocks are read.

use super::decode::base64;

/// Blocks read from one text; more are a defect and left as text.
pub const MAX_BLOCKS: usize = 1000;

/// How a block was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Classic uuencode: a length character, then 4 characters per 3 bytes.
    Uuencode,
    /// `begin-base64`: RFC 2045 base64 lines ending with `====`.
    Base64,
}

/// One file found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The name on the `begin` line, as written (a hint, not a path to trust).
    pub name: String,
    /// The octal mode on the `begin` line (`644`).
    pub mode: String,
    pub flavor: Flavor,
    pub data: Vec<u8>,
    /// 1-based lines of the text from the `begin` line to the `end` line (or
    /// the last data line when `end` is missing).
    pub first_line: usize,
    pub last_line: usize,
}

/// Every block in `text`, in order; repairs are appended to `defects`.
pub fn find(text: &str, defects: &mut Vec<String>) -> Vec<Block> {
    let mut blocks = Vec::new();
    // A cheap test first: most texts have no block at all.
    if !text.contains("begin") {
        return blocks;
    }
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut i = 0;
    while i < lines.len() {
        let Some((flavor, mode, name)) = begin_line(lines[i]) else {
            i += 1;
            continue;
        };
        if blocks.len() == MAX_BLOCKS {
            defects.push(format!("uuencode-too-many-blocks: more than {MAX_BLOCKS}"));
            break;
        }
        let (block, next) = read_block(&lines, i, flavor, mode, name, defects);
        blocks.push(block);
        i = next;
    }
    blocks
}

/// `begin MODE NAME` or `begin-base64 MODE NAME`, MODE 3 or 4 octal digits.
fn begin_line(line: &str) -> Option<(Flavor, &str, &str)> {
    let (flavor, rest) = if let Some(rest) = line.strip_prefix("begin-base64 ") {
        (Flavor::Base64, rest)
    } else {
        (Flavor::Uuencode, line.strip_prefix("begin ")?)
    };
    let (mode, name) = rest.split_once(' ')?;
    let octal = (3..=4).contains(&mode.len()) && mode.bytes().all(|b| (b'0'..=b'7').contains(&b));
    let name = name.trim();
    (octal && !name.is_empty()).then_some((flavor, mode, name))
}

fn read_block(
    lines: &[&str],
    begin: usize,
    flavor: Flavor,
    mode: &str,
    name: &str,
    defects: &mut Vec<String>,
) -> (Block, usize) {
    let mut data = Vec::new();
    let mut b64 = Vec::new();
    let mut short = false;
    let mut bad = false;
    let mut i = begin + 1;
    let mut ended = false;
    while i < lines.len() {
        let line = lines[i];
        match flavor {
            Flavor::Uuencode => {
                if line.trim_end() == "end" {
                    ended = true;
                    break;
                }
                if !uu_line(line, &mut data, &mut short, &mut bad) {
                    break;
                }
            }
            Flavor::Base64 => {
                if line.trim_end() == "====" {
                    ended = true;
                    break;
                }
                let l = line.trim_end();
                if !l.bytes().all(|c| base64::value(c).is_some() || c == b'=') {
                    break;
                }
                b64.extend_from_slice(l.as_bytes());
            }
        }
        i += 1;
    }
    if flavor == Flavor::Base64 {
        data = base64::decode_lenient(&b64);
    }
    if short {
        defects.push(format!("uuencode-short-line: {name}"));
    }
    if bad {
        defects.push(format!("uuencode-bad-character: {name}"));
    }
    let last_line = if ended {
        i + 1
    } else {
        defects.push(format!("uuencode-missing-end: {name}"));
        i
    };
    let block = Block {
        name: name.to_string(),
        mode: mode.to_string(),
        flavor,
        data,
        first_line: begin + 1,
        last_line,
    };
    (block, if ended { i + 1 } else { i })
}

/// Decodes one uuencoded line into `out`; false when the line is not data
/// (then it ends the block). Blank lines and the zero-length "`" line are
/// data of no bytes.
fn uu_line(line: &str, out: &mut Vec<u8>, short: &mut bool, bad: &mut bool) -> bool {
    let bytes = line.as_bytes();
    let Some((&first, rest)) = bytes.split_first() else {
        return true;
    };
    if !(0x20..=0x60).contains(&first) {
        return false;
    }
    let len = usize::from((first - 0x20) & 0x3f);
    let needed = len.div_ceil(3) * 4;
    // Up to 2 extra characters (a checksum some encoders add) and any number
    // of missing trailing spaces are tolerated; beyond that it is prose.
    if rest.len() > needed + 2 || rest.len() * 2 < needed {
        return false;
    }
    if rest.len() < needed {
        *short = true;
    }
    let mut decoded = Vec::with_capacity(needed / 4 * 3);
    for chunk in (0..needed).step_by(4) {
        let mut v = [0u8; 4];
        for (k, slot) in v.iter_mut().enumerate() {
            let c = rest.get(chunk + k).copied().unwrap_or(b' ');
            if !(0x20..=0x60).contains(&c) {
                *bad = true;
            }
            *slot = c.wrapping_sub(0x20) & 0x3f;
        }
        decoded.push(v[0] << 2 | v[1] >> 4);
        decoded.push(v[1] << 4 | v[2] >> 2);
        decoded.push(v[2] << 6 | v[3]);
    }
    decoded.truncate(len);
    out.extend_from_slice(&decoded);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    // `printf 'Cat' | uuencode cat.txt` and `uuencode -m`.
    const CAT: &str = "begin 644 cat.txt\n#0V%T\n`\nend\n";

    #[test]
    fn classic_block() {
        let mut d = Vec::new();
        let text = format!("Hello,\nhere it is:\n\n{CAT}\nbye\n");
        let b = find(&text, &mut d);
        assert_eq!(d, Vec::<String>::new());
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].name, "cat.txt");
        assert_eq!(b[0].mode, "644");
        assert_eq!(b[0].data, b"Cat");
        assert_eq!((b[0].first_line, b[0].last_line), (4, 7));
    }

    #[test]
    fn base64_block() {
        let mut d = Vec::new();
        let b = find("begin-base64 600 a b.bin\nQ2F0\nAAEC/w==\n====\n", &mut d);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(b[0].flavor, Flavor::Base64);
        assert_eq!(b[0].name, "a b.bin");
        assert_eq!(b[0].data, b"Cat\x00\x01\x02\xff");
    }

    #[test]
    fn stripped_trailing_spaces_are_padded() {
        // "A\0\0" encodes as "!00``" with spaces in older encoders: `!00  `.
        let mut d = Vec::new();
        let b = find("begin 644 z\n#00\nend\n", &mut d);
        assert_eq!(b[0].data, b"A\0\0");
        assert_eq!(d, ["uuencode-short-line: z"]);
    }

    #[test]
    fn missing_end_keeps_the_data() {
        let mut d = Vec::new();
        let b = find("begin 644 cat.txt\n#0V%T\nThanks, Bob\n", &mut d);
        assert_eq!(b[0].data, b"Cat");
        assert_eq!(b[0].last_line, 2);
        assert_eq!(d, ["uuencode-missing-end: cat.txt"]);
    }

    #[test]
    fn bad_characters_are_a_defect() {
        let mut d = Vec::new();
        let b = find("begin 644 x\n#0V{T\nend\n", &mut d);
        assert_eq!(b[0].data.len(), 3);
        assert_eq!(d, ["uuencode-bad-character: x"]);
    }

    #[test]
    fn prose_is_not_a_block() {
        let mut d = Vec::new();
        for text in [
            "begin with this\n",
            "begin 999 x\nend\n",
            "begin 644 \nend\n",
            "we begin 644 x\n",
        ] {
            assert!(find(text, &mut d).is_empty(), "{text:?}");
        }
        assert!(d.is_empty());
    }

    #[test]
    fn crlf_and_two_blocks() {
        let mut d = Vec::new();
        let text = format!("{CAT}{}", CAT.replace("cat.txt", "dog.txt")).replace('\n', "\r\n");
        let b = find(&text, &mut d);
        assert_eq!(b.len(), 2);
        assert_eq!(b[1].name, "dog.txt");
        assert_eq!(b[1].data, b"Cat");
        assert!(d.is_empty());
    }
}
