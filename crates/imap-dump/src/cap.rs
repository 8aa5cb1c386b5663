//! `--max-bytes`: how much this run may still fetch, over all its mailboxes,
//! counted in RFC822.SIZE, so that a daily download cap (Gmail's 2,500 MB)
//! is never crossed. The run stops cleanly before the first message that
//! would cross it (exit 0, the state saved); the next run resumes there.

use std::sync::Mutex;

/// Bytes left of `--max-bytes`.
#[derive(Debug)]
pub struct ByteCap {
    max: u64,
    /// Bytes left, and whether a message did not fit (then nothing more is
    /// fetched). A lock: `--follow` dumps from a thread per mailbox.
    left: Mutex<(u64, bool)>,
}

impl ByteCap {
    pub fn new(max: u64) -> ByteCap {
        ByteCap {
            max,
            left: Mutex::new((max, false)),
        }
    }

    /// The `--max-bytes` given.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// How many of `sized` (UID, RFC822.SIZE), from the first, fit in what is
    /// left; takes their bytes. Once one does not fit, none ever does.
    pub fn take(&self, sized: &[(u32, u32)]) -> usize {
        let mut guard = self.left.lock().unwrap_or_else(|e| e.into_inner());
        let (left, reached) = &mut *guard;
        if *reached {
            return 0;
        }
        for (i, &(_, size)) in sized.iter().enumerate() {
            match left.checked_sub(u64::from(size)) {
                Some(rest) => *left = rest,
                None => {
                    *left = 0;
                    *reached = true;
                    return i;
                }
            }
        }
        sized.len()
    }

    /// Whether the cap stopped the run.
    pub fn reached(&self) -> bool {
        self.left.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_taken_while_they_fit_and_never_after() {
        let cap = ByteCap::new(1000);
        assert_eq!(cap.take(&[(1, 400), (2, 500)]), 2);
        assert!(!cap.reached());
        assert_eq!(cap.take(&[(3, 100), (4, 1), (5, 1)]), 1, "exactly 1000");
        assert!(cap.reached());
        assert_eq!(cap.take(&[(6, 0)]), 0, "nothing after the cap");
        assert_eq!(ByteCap::new(10).take(&[(1, 11), (2, 1)]), 0);
    }
}
