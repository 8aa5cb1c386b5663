//! `--max-bytes`: how much this run may still fetch, over all its mailboxes,
//! counted in RFC822.SIZE, so that a daily download cap (Gmail's 2,500 MB)
//! is never crossed. The run stops cleanly before the first message that
//! would cross it (exit 0, the state saved); the next run resumes there.

use std::cell::Cell;

/// Bytes left of `--max-bytes`.
#[derive(Debug)]
pub struct ByteCap {
    max: u64,
    left: Cell<u64>,
    /// A message did not fit: fetch nothing more.
    reached: Cell<bool>,
}

impl ByteCap {
    pub fn new(max: u64) -> ByteCap {
        ByteCap {
            max,
            left: Cell::new(max),
            reached: Cell::new(false),
        }
    }

    /// The `--max-bytes` given.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// How many of `sized` (UID, RFC822.SIZE), from the first, fit in what is
    /// left; takes their bytes. Once one does not fit, none ever does.
    pub fn take(&self, sized: &[(u32, u32)]) -> usize {
        if self.reached.get() {
            return 0;
        }
        let mut left = self.left.get();
        for (i, &(_, size)) in sized.iter().enumerate() {
            match left.checked_sub(u64::from(size)) {
                Some(rest) => left = rest,
                None => {
                    self.left.set(0);
                    self.reached.set(true);
                    return i;
                }
            }
        }
        self.left.set(left);
        sized.len()
    }

    /// Whether the cap stopped the run.
    pub fn reached(&self) -> bool {
        self.reached.get()
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
