//! Where a fetched literal (a message body) is kept until the writer has
//! written it. A lane's thread reads it and the writer's thread frees it, so
//! with glibc's malloc a large body would come from the lane's own arena,
//! and freeing a large mmapped chunk raises glibc's mmap threshold (to up to
//! 32 MB) for good: after the first 7 MB message every body came from the
//! four lanes' arenas, each keeping its peak (the 16x bench peaked at
//! 83-90 MB, 39 MB with one connection). A body of `MAPPED_FROM` bytes or
//! more therefore gets an anonymous map of its own, sized once from the
//! announced literal and unmapped as soon as it is dropped; smaller ones
//! stay on the heap, where they are cheap.

use std::io::Read;
use std::ops::Deref;

use mailpipe::wire::{literal_fits, Deadline, Timed, WireReader};
use mailpipe::Error;
use memmap2::{MmapMut, MmapOptions};

/// Bodies this large or larger are mapped: glibc's own default mmap
/// threshold, before its dynamic rule raises it.
pub const MAPPED_FROM: u64 = 128 * 1024;

/// Mapped bodies up to this size are populated when mapped.
const POPULATED_UP_TO: u64 = 64 << 20;

/// A literal's bytes.
#[derive(Debug)]
pub enum Body {
    Heap(Vec<u8>),
    Mapped(MmapMut),
}

impl Default for Body {
    fn default() -> Body {
        Body::Heap(Vec::new())
    }
}

impl Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Body::Heap(v) => v,
            Body::Mapped(m) => m,
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::Heap(v)
    }
}

impl Body {
    /// Reads a literal of `size` bytes (at most `max`, what the read budget
    /// allows) before `deadline`; `what` names it in errors.
    pub fn read<S: Read + Timed>(
        input: &mut WireReader<S>,
        size: u64,
        max: u64,
        deadline: &Deadline,
        what: &str,
    ) -> Result<Body, Error> {
        literal_fits(size, max, what)?;
        if size >= MAPPED_FROM {
            // A map the system refuses: the heap, as for any other body.
            // Populated at once up to POPULATED_UP_TO: one system call
            // rather than a page fault per 4 KiB (the 16x bench's 84,000
            // faults cost 0.15 s). A larger literal's pages are touched only
            // as its bytes arrive: a server announcing gigabytes it never
            // sends must not take that memory first (the imap_response fuzz
            // target: a 9 GB announcement, 5 bytes sent, 8.8 GB resident).
            let map = usize::try_from(size).ok().map(|n| {
                let mut options = MmapOptions::new();
                options.len(n);
                if size <= POPULATED_UP_TO {
                    options.populate();
                }
                options.map_anon()
            });
            if let Some(Ok(mut map)) = map {
                input.read_literal_into(&mut map, deadline, what)?;
                return Ok(Body::Mapped(map));
            }
        }
        let mut bytes = Vec::new();
        input.read_literal(&mut bytes, size, max, deadline, what)?;
        Ok(Body::Heap(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn read(wire: &[u8], size: u64, max: u64) -> Result<Body, Error> {
        let deadline = Deadline::after(Duration::from_secs(5));
        Body::read(
            &mut WireReader::new(wire, Duration::from_secs(5)),
            size,
            max,
            &deadline,
            "BODY[]",
        )
    }

    /// Small bodies on the heap, large ones mapped: the same bytes either way.
    #[test]
    fn small_on_the_heap_large_mapped_same_bytes() {
        let wire: Vec<u8> = (0..MAPPED_FROM as usize + 10)
            .map(|i| (i % 251) as u8)
            .collect();
        let small = read(&wire, 100, u64::MAX).expect("small");
        assert!(matches!(small, Body::Heap(_)));
        assert_eq!(&small[..], &wire[..100]);
        let large = read(&wire, MAPPED_FROM + 10, u64::MAX).expect("large");
        assert!(matches!(large, Body::Mapped(_)));
        assert_eq!(&large[..], &wire[..]);
    }

    /// Over the budget: 76 before anything is mapped; cut short: 75.
    #[test]
    fn over_budget_and_cut_short() {
        let e = read(b"x", 1 << 40, 1 << 30).expect_err("over budget");
        assert_eq!(e.exit(), mailpipe::Exit::Protocol);
        let e = read(&[b'x'; 1000], MAPPED_FROM, u64::MAX).expect_err("cut");
        assert_eq!(e.exit(), mailpipe::Exit::TempFail);
    }
}
