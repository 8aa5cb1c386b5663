//! The parsers of what mail hides, over any bytes: the first byte chooses
//! uuencode blocks in a text (0), a TNEF stream (1; bit 0x10 puts the
//! signature in front so that the fuzzer need not find it), or an
//! Authentication-Results and a DKIM-Signature value (2). Beyond no panic,
//! no hang: decoded uuencode is never larger than its text and its lines lie
//! inside it, TNEF contents are slices of the input, and parsed results
//! serialize.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailpipe::message::{auth_results, tnef, uuencode};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut defects = Vec::new();
    match mode % 3 {
        0 => {
            let text = String::from_utf8_lossy(rest);
            let lines = text.split('\n').count();
            let mut total = 0;
            for b in uuencode::find(&text, &mut defects) {
                total += b.data.len();
                assert!(b.first_line <= b.last_line && b.last_line <= lines);
            }
            assert!(total <= text.len(), "{total} decoded from {}", text.len());
        }
        1 => {
            let mut stream = Vec::new();
            if mode & 0x10 != 0 {
                stream.extend_from_slice(&tnef::SIGNATURE.to_le_bytes());
            }
            stream.extend_from_slice(rest);
            let range = stream.as_ptr_range();
            for a in tnef::attachments(&stream, &mut defects) {
                let r = a.data.as_ptr_range();
                assert!(a.data.is_empty() || (range.start <= r.start && r.end <= range.end));
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let parsed = auth_results::parse(&text, &mut defects);
            serde_json::to_string(&parsed).expect("serializes");
            serde_json::to_string(&auth_results::dkim_signature(&text)).expect("serializes");
        }
    }
});
