//! The mbox reader on any bytes: it returns messages or an error, never
//! panics, and every message's offset points at its From_ line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailpipe::mbox::MboxReader;

fuzz_target!(|data: &[u8]| {
    // A small buffer, so that lines cross buffer boundaries.
    let input = std::io::BufReader::with_capacity(7, data);
    let mut total = 0usize;
    for message in MboxReader::new(input) {
        let Ok(message) = message else { break };
        let offset = usize::try_from(message.offset).expect("offset fits");
        assert!(data[offset..].starts_with(b"From "), "offset {offset}");
        assert!(data[offset..].starts_with(&message.from_line));
        total += message.data.len();
        assert!(total <= data.len(), "more message bytes than input");
    }
});
