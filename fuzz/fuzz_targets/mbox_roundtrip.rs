//! Writer then reader: any bytes written as one message read back as that
//! message. The one allowed change is documented in `MboxWriter::write_message`:
//! a message that does not end in a line end gets one, in the style of its
//! first line (CRLF if the first line ends in CRLF, else LF).
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use mailpipe::mbox::{MboxReader, MboxWriter};

fuzz_target!(|data: &[u8]| {
    // The first byte splits the input into two messages, so that the
    // boundary between messages is tested too.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let messages = [&rest[..split], &rest[split..]];
    let Some(time) = Utc.timestamp_opt(1_700_000_000, 0).single() else {
        return;
    };
    let mut writer = MboxWriter::new(Vec::new());
    for message in messages {
        writer
            .write_message("a@example.org", time, message)
            .expect("writing to a Vec");
    }
    let mbox = writer.into_inner();
    let back: Vec<_> = MboxReader::new(&mbox[..])
        .collect::<std::io::Result<_>>()
        .expect("the reader reads what the writer wrote");
    assert_eq!(back.len(), messages.len(), "message count");
    for (message, read) in messages.iter().zip(&back) {
        assert_eq!(read.data, expected(message), "message {message:?}");
    }
});

fn expected(message: &[u8]) -> Vec<u8> {
    let mut out = message.to_vec();
    if !message.is_empty() && !message.ends_with(b"\n") {
        let crlf = message
            .iter()
            .position(|&b| b == b'\n')
            .is_some_and(|i| i > 0 && message[i - 1] == b'\r');
        out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    }
    out
}
