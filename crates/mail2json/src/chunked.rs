//! Regular-file mboxes, read in big blocks: each message goes to the workers
//! as a range of its block, not as a copy made line by line into a fresh
//! allocation (whose page faults were most of the reader thread's time).
//! Blocks come back to a small pool once the workers have dropped their
//! messages, so the same memory is read into again.
//!
//! The splitting rules are `mailpipe::mbox`'s (`mailpipe::mbox_split`); an
//! entry with live framing hands the rest of the file to `MboxReader`.

use std::fs::File;
use std::io::{self, Read};
use std::ops::{Deref, Range};
use std::sync::Arc;

use mailpipe::mbox_split::{self, Rest};
use mailpipe::Error;

use crate::input::{self, InputKind, Item};
use crate::schema::Source;

/// Bytes read at a time; a message longer than this grows its block.
const BLOCK: usize = 4 << 20;
/// Blocks kept for reuse: more than are in flight (two batches of 8 MiB
/// waiting, one being converted, one being read).
const POOL: usize = 12;

/// A message's bytes: its own, or a range of the block it was read in.
pub enum Bytes {
    Owned(Vec<u8>),
    Shared(Arc<Vec<u8>>, Range<usize>),
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Shared(block, range) => &block[range.clone()],
        }
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Bytes {
        Bytes::Owned(v)
    }
}

/// Blocks whose messages may still be with the workers; one is free again
/// when the pool holds its only reference.
#[derive(Default)]
struct Pool(Vec<Arc<Vec<u8>>>);

impl Pool {
    fn take(&mut self) -> Vec<u8> {
        if let Some(i) = self.0.iter().position(|b| Arc::strong_count(b) == 1) {
            if let Ok(mut block) = Arc::try_unwrap(self.0.swap_remove(i)) {
                block.clear();
                return block;
            }
        }
        Vec::with_capacity(BLOCK)
    }

    /// Keeps `block` for reuse, unless it grew for one huge message.
    fn give(&mut self, block: Arc<Vec<u8>>) {
        if self.0.len() < POOL && block.capacity() <= 2 * BLOCK {
            self.0.push(block);
        }
    }
}

/// Appends up to `more` bytes of `file`; false at the end of the file.
fn fill(file: &mut File, block: &mut Vec<u8>, more: usize) -> io::Result<bool> {
    block.reserve(more);
    let n = file.take(more as u64).read_to_end(block)?;
    Ok(n == more)
}

/// Reads a regular file: in blocks when it is an mbox, else as `input`
/// reads any stream (a single message, or a forced mbox that is not one).
pub fn read_file(
    name: &str,
    mut file: File,
    forced: Option<InputKind>,
    sink: &mut dyn FnMut(Item) -> bool,
) -> bool {
    let mut pool = Pool::default();
    let mut block = pool.take();
    let mut more = match fill(&mut file, &mut block, BLOCK) {
        Ok(more) => more,
        Err(e) => return sink(Item::Failed(Error::io(format!("reading {name}"), e))),
    };
    if !block.starts_with(b"From ") || forced == Some(InputKind::Message) {
        let read = io::Cursor::new(block).chain(file);
        return input::read_stream(name, Box::new(read), forced, sink);
    }
    let mut base = 0u64;
    let mut entries = Vec::new();
    let mut failed = None;
    loop {
        // After a read error, the whole messages read so far, then the error.
        let end = !more && failed.is_none();
        let rest = mbox_split::split(&block, end, &mut entries);
        let shared = Arc::new(block);
        for e in entries.drain(..) {
            let data = if e.quoted {
                Bytes::Owned(mbox_split::unquote(&shared[e.data]))
            } else {
                Bytes::Shared(Arc::clone(&shared), e.data)
            };
            let item = Item::Message {
                source: Source {
                    path: name.to_string(),
                    offset: Some(base + e.offset as u64),
                },
                data,
                defect: None,
            };
            if !sink(item) {
                return false;
            }
        }
        if let Some(e) = failed {
            return sink(Item::Failed(Error::io(format!("reading {name}"), e)));
        }
        let at = match rest {
            Rest::Done => return true,
            Rest::Framed(at) => {
                let read = io::Cursor::new(shared[at..].to_vec()).chain(file);
                let read = io::BufReader::with_capacity(BLOCK, read);
                return input::read_mbox(name, base + at as u64, read, sink);
            }
            Rest::More(at) => at,
        };
        // The unfinished message starts the next block; a message longer
        // than a block keeps its block, which doubles.
        block = match Arc::try_unwrap(shared) {
            Ok(mut whole) if at == 0 => {
                whole.reserve(whole.len());
                whole
            }
            Ok(whole) => {
                let mut next = pool.take();
                next.extend_from_slice(&whole[at..]);
                pool.give(Arc::new(whole));
                next
            }
            Err(shared) => {
                let mut next = pool.take();
                next.extend_from_slice(&shared[at..]);
                pool.give(shared);
                next
            }
        };
        base += at as u64;
        let want = (block.capacity() - block.len()).max(BLOCK / 4);
        match fill(&mut file, &mut block, want) {
            Ok(m) => more = m,
            Err(e) => failed = Some(e),
        }
    }
}
