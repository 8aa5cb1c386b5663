//! smtp-send's SMTP reply reader over a server whose every byte is fuzz
//! input: replies are read one after another, as a session reads them, until
//! one is refused. Any reply may be refused (76, or 75 when the bytes run
//! out); none may panic or hang, and an accepted reply has a three-digit code
//! and at most as many lines as the input.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mailpipe::wire::WireReader;
use smtp_send::session::read_reply;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, replies)) = data.split_first() else {
        return;
    };
    let buffer = usize::from(mode) + 1;
    let mut input = WireReader::with_capacity(replies, Duration::from_secs(60), buffer);
    for _ in 0..64 {
        match read_reply(&mut input, "the reply") {
            Ok(reply) => {
                let code = reply.code();
                assert!((100..1000).contains(&code), "code {code}");
                assert!(reply.response.message().count() <= replies.len() + 1);
            }
            Err(e) => {
                assert!(matches!(e.exit().code(), 75 | 76), "{e}");
                return;
            }
        }
    }
});
