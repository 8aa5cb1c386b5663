//! imap-dump's reader of the bulk `UID FETCH` response (lines, `{n}`
//! literals, the FETCH item lists) over a server whose every byte is fuzz
//! input. The first byte sets the read budget (how much the literals may
//! take) and the reader's buffer size, so that lines, literals and their
//! announcements cross buffer boundaries; its bit 0x40 reads any untagged
//! responses instead and parses their values (as LIST does). Any input may be refused; none
//! may panic, hang or allocate beyond the budget; a literal read whole is
//! exactly its announced size.
#![no_main]

use std::time::Duration;

use imap_dump::fetch::{read_fetch_response, read_responses, values, FetchError};
use libfuzzer_sys::fuzz_target;
use mailpipe::wire::WireReader;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, replies)) = data.split_first() else {
        return;
    };
    let budget = if mode & 0x80 == 0 {
        u64::MAX
    } else {
        u64::from(mode & 0x3f) * 64
    };
    let buffer = usize::from(mode & 0x0f) + 1;
    let mut input = WireReader::with_capacity(replies, Duration::from_secs(60), buffer);
    if mode & 0x40 != 0 {
        let _ = read_responses(&mut input, budget, |parts| values(&parts).map(|_| ()));
        return;
    }
    match read_fetch_response(&mut input, budget) {
        Ok((fetched, _tag)) => {
            let bodies: usize = fetched
                .iter()
                .filter_map(|f| f.body.as_ref().map(|b| b.len()))
                .sum();
            assert!(bodies <= replies.len(), "bodies larger than the input");
        }
        Err(FetchError::Failed(e)) => {
            assert!(matches!(e.exit().code(), 75 | 76), "{e}");
            assert!(!e.message().contains('\n'), "{e}");
        }
        Err(FetchError::Refused { .. }) => {}
    }
});
