//! Outlook's `winmail.dat` (application/ms-tnef, [MS-OXTNEF]): the files it
//! carries. No maintained Rust crate reads TNEF, so this is a bounded reader
//! of the parts that hold attachments; the message's own body and
//! properties are skipped.
//!
//! A stream is the signature 0x223E9F78, a 16-bit key, then attributes:
//! level (1 message, 2 attachment), a 32-bit id (type in the high half),
//! a 32-bit length, the data and a 16-bit checksum. `attAttachRenddata`
//! starts an attachment; `attAttachTitle` (8.3 name), `attAttachData`
//! (content) and `attAttachment` (MAPI properties: the long file name
//! PidTagAttachLongFilename, the MIME type, and the content again as
//! PidTagAttachDataBinary when `attAttachData` is missing) fill it.
//!
//! Everything read is bounds-checked: a length past the end stops the
//! reader with a defect and the attachments read so far are returned.
//! Contents borrow from the input, so nothing is larger than the input;
//! counts are capped ([`MAX_ATTACHMENTS`], [`MAX_PROPERTIES`]).

use std::borrow::Cow;

use encoding_rs::{UTF_16LE, WINDOWS_1252};

pub const SIGNATURE: u32 = 0x223E_9F78;
/// Attachments read from one stream; more are a defect.
pub const MAX_ATTACHMENTS: usize = 1000;
/// MAPI properties read from one attribute; more are a defect.
pub const MAX_PROPERTIES: usize = 10_000;
/// Names longer than this (bytes) are cut.
const MAX_NAME: usize = 1024;

const LEVEL_ATTACHMENT: u8 = 2;
const ATT_ATTACH_DATA: u16 = 0x800F;
const ATT_ATTACH_TITLE: u16 = 0x8010;
const ATT_ATTACH_RENDDATA: u16 = 0x9002;
const ATT_ATTACHMENT: u16 = 0x9005;

const PID_ATTACH_DATA: u16 = 0x3701;
const PID_ATTACH_LONG_FILENAME: u16 = 0x3707;
const PID_ATTACH_MIME_TAG: u16 = 0x370E;
const PID_DISPLAY_NAME: u16 = 0x3001;
/// IID_IMessage, {00020307-0000-0000-C000-000000000046}, as stored.
const IID_IMESSAGE: [u8; 16] = [
    0x07, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46,
];

/// One file of a TNEF stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachment<'a> {
    /// PidTagAttachLongFilename, else attAttachTitle, else PidTagDisplayName.
    pub name: Option<String>,
    /// PidTagAttachMimeTag, when Outlook recorded one.
    pub mime_type: Option<String>,
    pub data: &'a [u8],
    title: Option<String>,
    display_name: Option<String>,
    has_data: bool,
    embedded: bool,
}

/// Whether `data` starts like a TNEF stream.
pub fn is_tnef(data: &[u8]) -> bool {
    data.get(..4) == Some(&SIGNATURE.to_le_bytes()[..])
}

/// The attachments of a TNEF stream; problems are appended to `defects`.
pub fn attachments<'a>(data: &'a [u8], defects: &mut Vec<String>) -> Vec<Attachment<'a>> {
    let mut out: Vec<Attachment<'a>> = Vec::new();
    if !is_tnef(data) {
        defects.push("tnef-bad-signature".to_string());
        return out;
    }
    let mut r = Reader { data, pos: 6 };
    let mut bad_checksum = false;
    while r.pos < data.len() {
        let start = r.pos;
        let Some((level, id, value, checksum)) = r.attribute() else {
            defects.push(format!("tnef-truncated: at byte {start}"));
            break;
        };
        if !bad_checksum && sum16(value) != checksum {
            bad_checksum = true;
            defects.push("tnef-bad-checksum".to_string());
        }
        if level != LEVEL_ATTACHMENT {
            continue;
        }
        let attribute = (id & 0xffff) as u16;
        if attribute == ATT_ATTACH_RENDDATA {
            if out.len() == MAX_ATTACHMENTS {
                defects.push(format!(
                    "tnef-too-many-attachments: more than {MAX_ATTACHMENTS}"
                ));
                break;
            }
            out.push(Attachment::default());
            continue;
        }
        // An attribute before any attAttachRenddata starts an attachment too.
        if out.is_empty() {
            out.push(Attachment::default());
        }
        let Some(current) = out.last_mut() else {
            break;
        };
        match attribute {
            ATT_ATTACH_TITLE => current.title = Some(string8(value)),
            // An embedded message's attAttachData is only a placeholder text.
            ATT_ATTACH_DATA if !current.embedded => {
                current.data = value;
                current.has_data = true;
            }
            ATT_ATTACHMENT => properties(value, current, defects),
            _ => {}
        }
    }
    // An attachment cut off before its name and data has nothing to show.
    out.retain(|a| {
        a.has_data || a.embedded || !a.data.is_empty() || a.title.is_some() || a.name.is_some()
    });
    for a in &mut out {
        a.name = a
            .name
            .take()
            .or_else(|| a.title.take())
            .or_else(|| a.display_name.take())
            .filter(|n| !n.is_empty());
    }
    out
}

fn sum16(data: &[u8]) -> u16 {
    data.iter()
        .fold(0u16, |sum, &b| sum.wrapping_add(u16::from(b)))
}

/// An 8-bit string: NUL-terminated, UTF-8 when valid, else Windows-1252
/// (the code page Outlook uses in the west; attOemCodepage is not consulted).
fn string8(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let text = &data[..end.min(MAX_NAME)];
    match std::str::from_utf8(text) {
        Ok(s) => s.to_string(),
        Err(_) => WINDOWS_1252
            .decode_without_bom_handling(text)
            .0
            .into_owned(),
    }
}

fn unicode(data: &[u8]) -> String {
    let text = &data[..data.len().min(MAX_NAME * 2)];
    let (s, _) = UTF_16LE.decode_without_bom_handling(text);
    match s {
        Cow::Borrowed(b) => b.trim_end_matches('\0').to_string(),
        Cow::Owned(o) => o.trim_end_matches('\0').to_string(),
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.u32()?).ok()
    }

    /// level, id, value, checksum.
    fn attribute(&mut self) -> Option<(u8, u32, &'a [u8], u16)> {
        let level = *self.take(1)?.first()?;
        let id = self.u32()?;
        let len = self.len()?;
        let value = self.take(len)?;
        let checksum = self.u16()?;
        Some((level, id, value, checksum))
    }

    /// A variable-length value: length, bytes, padding to 4.
    fn padded(&mut self) -> Option<&'a [u8]> {
        let len = self.len()?;
        let value = self.take(len)?;
        let pad = (4 - len % 4) % 4;
        // The last value of a block may go without its padding.
        let _ = self.take(pad.min(self.data.len() - self.pos));
        Some(value)
    }
}

/// Reads the MAPI properties of `attAttachment` into `a`; stops at the first
/// value it cannot read (a defect), keeping what it read.
fn properties<'a>(block: &'a [u8], a: &mut Attachment<'a>, defects: &mut Vec<String>) {
    let mut r = Reader {
        data: block,
        pos: 0,
    };
    let Some(count) = r.len() else {
        defects.push("tnef-bad-properties".to_string());
        return;
    };
    if count > MAX_PROPERTIES {
        defects.push(format!("tnef-too-many-properties: {count}"));
    }
    for _ in 0..count.min(MAX_PROPERTIES) {
        if property(&mut r, a).is_none() {
            defects.push("tnef-bad-properties".to_string());
            return;
        }
    }
}

fn property<'a>(r: &mut Reader<'a>, a: &mut Attachment<'a>) -> Option<()> {
    let ptype = r.u16()?;
    let id = r.u16()?;
    if id >= 0x8000 {
        // A named property: GUID, then a number or a UTF-16 name.
        r.take(16)?;
        match r.u32()? {
            0 => {
                r.u32()?;
            }
            1 => {
                r.padded()?;
            }
            _ => return None,
        }
    }
    let multi = ptype & 0x1000 != 0;
    let base = ptype & !0x1000;
    let variable = matches!(base, 0x001E | 0x001F | 0x0102 | 0x000D);
    // Variable-length types always carry a count; fixed ones only when multi.
    let count = if multi || variable { r.len()? } else { 1 };
    // Every value takes at least 4 bytes: a count past the block is bad.
    if count > r.data.len().saturating_sub(r.pos) / 4 + 1 {
        return None;
    }
    for _ in 0..count {
        if variable {
            let value = r.padded()?;
            if !multi {
                store(a, id, base, value);
            }
        } else {
            r.take(fixed_size(base)?)?;
        }
    }
    Some(())
}

/// Bytes of a fixed-size MAPI type, padded to 4; `None` for a type that
/// does not exist (then the rest cannot be read).
fn fixed_size(ptype: u16) -> Option<usize> {
    Some(match ptype {
        0x0001 | 0x0002 | 0x0003 | 0x0004 | 0x000A | 0x000B => 4,
        0x0005 | 0x0006 | 0x0007 | 0x0014 | 0x0040 => 8,
        0x0048 => 16,
        _ => return None,
    })
}

fn store<'a>(a: &mut Attachment<'a>, id: u16, ptype: u16, value: &'a [u8]) {
    let text = || match ptype {
        0x001F => Some(unicode(value)),
        0x001E => Some(string8(value)),
        _ => None,
    };
    match id {
        PID_ATTACH_LONG_FILENAME => a.name = text().filter(|n| !n.is_empty()),
        PID_DISPLAY_NAME => a.display_name = text(),
        PID_ATTACH_MIME_TAG => a.mime_type = text().filter(|t| !t.is_empty()),
        // An embedded message (an object value with IMessage's IID) is a
        // TNEF stream of its own: it wins over attAttachData, which then
        // only says "this attachment is a MAPI 1.0 embedded object".
        PID_ATTACH_DATA if ptype == 0x000D && value.starts_with(&IID_IMESSAGE) => {
            a.data = &value[IID_IMESSAGE.len()..];
            a.embedded = true;
            a.mime_type
                .get_or_insert_with(|| "application/ms-tnef".to_string());
        }
        // Other objects (OLE storages) start with their IID too.
        PID_ATTACH_DATA if !a.has_data && !a.embedded => {
            a.data = if ptype == 0x000D {
                value.get(16..).unwrap_or(&[])
            } else {
                value
            };
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(level: u8, id: u32, value: &[u8]) -> Vec<u8> {
        let mut v = vec![level];
        v.extend_from_slice(&id.to_le_bytes());
        v.extend_from_slice(&(value.len() as u32).to_le_bytes());
        v.extend_from_slice(value);
        v.extend_from_slice(&sum16(value).to_le_bytes());
        v
    }

    fn stream(attributes: &[Vec<u8>]) -> Vec<u8> {
        let mut v = SIGNATURE.to_le_bytes().to_vec();
        v.extend_from_slice(&[0x01, 0x00]);
        for a in attributes {
            v.extend_from_slice(a);
        }
        v
    }

    /// attAttachment with one unicode PidTagAttachLongFilename.
    fn long_name(name: &str) -> Vec<u8> {
        let utf16: Vec<u8> = name
            .encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect();
        let mut v = 1u32.to_le_bytes().to_vec();
        v.extend_from_slice(&0x001Fu16.to_le_bytes());
        v.extend_from_slice(&PID_ATTACH_LONG_FILENAME.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&(utf16.len() as u32).to_le_bytes());
        v.extend_from_slice(&utf16);
        v.resize(v.len().div_ceil(4) * 4, 0);
        v
    }

    fn two_files() -> Vec<u8> {
        stream(&[
            attribute(1, 0x0008_8008, b"IPM.Microsoft Mail.Note\0"),
            attribute(2, 0x0006_9002, &[0; 14]),
            attribute(2, 0x0001_8010, b"REPORT~1.PDF\0"),
            attribute(2, 0x0006_800F, b"%PDF-1.4 hello"),
            attribute(2, 0x0006_9005, &long_name("Report ä 2026.pdf")),
            attribute(2, 0x0006_9002, &[0; 14]),
            attribute(2, 0x0001_8010, b"notes.txt\0"),
            attribute(2, 0x0006_800F, b""),
        ])
    }

    #[test]
    fn names_and_contents() {
        let mut d = Vec::new();
        let data = two_files();
        let a = attachments(&data, &mut d);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].name.as_deref(), Some("Report ä 2026.pdf"));
        assert_eq!(a[0].data, b"%PDF-1.4 hello");
        assert_eq!(a[1].name.as_deref(), Some("notes.txt"));
        assert_eq!(a[1].data, b"");
    }

    #[test]
    fn every_truncation_is_a_defect_not_a_panic() {
        let data = two_files();
        for cut in 0..data.len() {
            let mut d = Vec::new();
            let a = attachments(&data[..cut], &mut d);
            assert!(a.len() <= 2);
        }
        // Inside the first attribute: nothing read, said so.
        let mut d = Vec::new();
        assert!(attachments(&data[..10], &mut d).is_empty());
        assert_eq!(d, ["tnef-truncated: at byte 6"]);
        // Cut after the second attAttachRenddata: nothing of it to show.
        let mut d = Vec::new();
        let a = attachments(&data[..data.len() - 32 + 3], &mut d);
        assert_eq!(a.len(), 1);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn bad_signature_and_checksum() {
        let mut d = Vec::new();
        assert!(attachments(b"not tnef at all", &mut d).is_empty());
        assert_eq!(d, ["tnef-bad-signature"]);
        let mut data = two_files();
        let last = data.len() - 1;
        data[last] ^= 1;
        let mut d = Vec::new();
        assert_eq!(attachments(&data, &mut d).len(), 2);
        assert_eq!(d, ["tnef-bad-checksum"]);
    }

    #[test]
    fn huge_property_counts_are_bounded() {
        let mut props = u32::MAX.to_le_bytes().to_vec();
        props.extend_from_slice(&0x1003u16.to_le_bytes());
        props.extend_from_slice(&0x0001u16.to_le_bytes());
        props.extend_from_slice(&u32::MAX.to_le_bytes());
        let data = stream(&[
            attribute(2, 0x0006_9002, &[0; 14]),
            attribute(2, 0x0001_8010, b"x\0"),
            attribute(2, 0x0006_9005, &props),
        ]);
        let mut d = Vec::new();
        assert_eq!(attachments(&data, &mut d).len(), 1);
        assert!(d.iter().any(|x| x == "tnef-bad-properties"), "{d:?}");
    }
}
