//! The one progress display of the tools: a line on stderr (what, messages
//! done of the total, bytes of the total, rate, ETA) for work that can take
//! more than a few seconds.
//!
//! Shown only when stderr is a terminal and neither `--quiet` nor `-v` is
//! given: a `-v` transcript and a redrawn line would garble each other, and a
//! log file or a pipe must never receive escape sequences. Nothing of it goes
//! to stdout. Lines printed while it is shown go through [`suspend`] (as
//! [`crate::exit::report`] does), and it is cleared when dropped, so that an
//! error is always one clean line.

use std::io::{BufRead, IsTerminal, Read};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether a progress display is shown: only on a terminal, and never with
/// `--quiet` or a `-v` transcript.
pub fn shown(stderr_is_terminal: bool, quiet: bool, verbose: bool) -> bool {
    stderr_is_terminal && !quiet && !verbose
}

/// The size of `fd` if it is a regular file (`< mbox`), the total to show;
/// `None` for a pipe or a terminal, whose end is unknown.
pub fn regular_file_size(fd: impl AsFd) -> Option<u64> {
    let stat = rustix::fs::fstat(fd).ok()?;
    let regular =
        rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile;
    regular.then(|| u64::try_from(stat.st_size).ok()).flatten()
}

/// The bytes of all `inputs` (paths, `-` for stdin; none: stdin), the total
/// to show, if every one is a regular file; a pipe or a directory makes it
/// unknown. A path that cannot be read counts nothing (its error is reported
/// when it is read).
pub fn inputs_size(inputs: &[PathBuf]) -> Option<u64> {
    if inputs.is_empty() {
        return regular_file_size(std::io::stdin());
    }
    inputs.iter().try_fold(0u64, |sum, path| {
        let size = if path.as_os_str() == "-" {
            regular_file_size(std::io::stdin())?
        } else {
            match std::fs::metadata(path) {
                Ok(metadata) => metadata.is_file().then_some(metadata.len())?,
                Err(_) => 0,
            }
        };
        Some(sum + size)
    })
}

/// The display being shown, if any, so that [`suspend`] can clear it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn active() -> MutexGuard<'static, Option<ProgressBar>> {
    ACTIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `print` (a line on stderr) with the progress display cleared, then
/// draws it again: the line stays whole and the display stays below it.
pub fn suspend<R>(print: impl FnOnce() -> R) -> R {
    let bar = active().clone();
    match bar {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// What has been done so far, shown as the message of the display.
#[derive(Default)]
struct Counts {
    done: u64,
    total: Option<u64>,
    failed: u64,
}

/// A progress display, or nothing when it is not to be shown; every method
/// is a no-op then, so tools call them unconditionally. Shared by reference
/// between threads.
pub struct Progress {
    bar: Option<ProgressBar>,
    counts: Mutex<Counts>,
    /// What `done` counts ("messages", "sent") and what `failed` counts.
    nouns: (&'static str, &'static str),
}

impl Progress {
    /// A display for a tool run with `--quiet` and `-v` as given; shown only
    /// if [`shown`] says so for the real stderr.
    pub fn new(quiet: bool, verbose: bool) -> Progress {
        Progress::for_terminal(std::io::stderr().is_terminal(), quiet, verbose)
    }

    /// As [`Progress::new`], with whether stderr is a terminal given.
    pub fn for_terminal(stderr_is_terminal: bool, quiet: bool, verbose: bool) -> Progress {
        let bar = shown(stderr_is_terminal, quiet, verbose)
            .then(|| ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()));
        Progress {
            bar,
            counts: Mutex::new(Counts::default()),
            nouns: ("messages", "failed"),
        }
    }

    /// Nothing is shown.
    pub fn hidden() -> Progress {
        Progress::for_terminal(false, false, false)
    }

    /// Names what is counted: `done` items ("messages", "sent") and failed
    /// ones ("refused"), e.g. "12/40 sent, 1 refused".
    pub fn counting(mut self, done: &'static str, failed: &'static str) -> Progress {
        self.nouns = (done, failed);
        self
    }

    pub fn is_shown(&self) -> bool {
        self.bar.is_some()
    }

    /// Starts (or starts again) a piece of work: `label` (a mailbox, a file),
    /// `items` to do and `bytes` in all, if known. Unknown bytes: a spinner.
    pub fn start(&self, label: &str, items: Option<u64>, bytes: Option<u64>) {
        let Some(bar) = &self.bar else { return };
        // One line that fits the terminal, so that redrawing never scrolls:
        // the label (msg) is cut to make room, the counts (prefix) never are.
        let template = match bytes {
            Some(_) => {
                "{wide_msg} {prefix} {bytes}/{total_bytes} {percent:>3}% {binary_bytes_per_sec} ETA {eta}"
            }
            None => "{spinner} {wide_msg} {prefix} {bytes} {binary_bytes_per_sec} {elapsed}",
        };
        let style =
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        match bytes {
            Some(n) => bar.set_length(n),
            None => bar.unset_length(),
        }
        bar.reset();
        // Registered only once started: a display never started is never drawn.
        *active() = Some(bar.clone());
        bar.set_message(label.to_string());
        *self.lock() = Counts {
            total: items,
            ..Counts::default()
        };
        self.show_counts();
    }

    /// `items` more done, `bytes` more processed.
    pub fn advance(&self, items: u64, bytes: u64) {
        let Some(bar) = &self.bar else { return };
        if items > 0 {
            self.lock().done += items;
            self.show_counts();
        }
        bar.inc(bytes);
    }

    /// `items` more failed (refused, not sent).
    pub fn fail(&self, items: u64) {
        if self.bar.is_none() {
            return;
        }
        self.lock().failed += items;
        self.show_counts();
    }

    /// Clears the display (also done when dropped).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// `reader`, with every byte read counted as progress.
    pub fn reader<R: Read>(&self, reader: R) -> ProgressReader<'_, R> {
        ProgressReader {
            inner: reader,
            progress: self,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn show_counts(&self) {
        let Some(bar) = &self.bar else { return };
        bar.set_prefix(self.describe());
    }

    /// "3/10 messages", "12 sent, 1 refused", or nothing before the first.
    fn describe(&self) -> String {
        let c = self.lock();
        let (done, failed) = self.nouns;
        let mut text = String::new();
        if c.done > 0 || c.total.is_some() {
            let of = c.total.map(|t| format!("/{t}")).unwrap_or_default();
            text.push_str(&format!("{}{of} {done}", c.done));
        }
        if c.failed > 0 {
            text.push_str(&format!(", {} {failed}", c.failed));
        }
        text
    }
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::hidden()
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("shown", &self.is_shown())
            .finish()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            let mut active = active();
            if active.as_ref().is_some_and(|a| a.is_finished()) {
                *active = None;
            }
        }
    }
}

/// A reader that counts what passes through it (see [`Progress::reader`]).
pub struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(0, n as u64);
        Ok(n)
    }
}

/// Counts what is consumed, so a buffered reader adds no second buffer.
impl<R: BufRead> BufRead for ProgressReader<'_, R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
        self.progress.advance(0, amount as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_only_on_a_terminal_without_quiet_or_verbose() {
        assert!(shown(true, false, false));
        assert!(!shown(false, false, false), "not a terminal");
        assert!(!shown(true, true, false), "--quiet");
        assert!(!shown(true, false, true), "-v transcript");
        assert!(!shown(false, true, true));
    }

    #[test]
    fn inputs_size_is_known_for_regular_files_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, [0u8; 100]).expect("write a");
        std::fs::write(&b, [0u8; 23]).expect("write b");
        let missing = dir.path().join("missing");
        assert_eq!(inputs_size(&[a.clone(), b, missing]), Some(123));
        assert_eq!(
            inputs_size(&[a, dir.path().to_path_buf()]),
            None,
            "a maildir"
        );
        let file = std::fs::File::open(dir.path().join("a")).expect("open a");
        assert_eq!(regular_file_size(&file), Some(100));
    }

    #[test]
    fn a_hidden_display_does_nothing_and_passes_bytes_through() {
        for p in [
            Progress::for_terminal(false, false, false),
            Progress::for_terminal(true, true, false),
            Progress::for_terminal(true, false, true),
            Progress::hidden(),
        ] {
            assert!(!p.is_shown());
            p.start("INBOX", Some(2), Some(10));
            p.advance(1, 5);
            p.fail(1);
            let mut read = Vec::new();
            p.reader(&b"abc"[..])
                .read_to_end(&mut read)
                .expect("reading a slice");
            assert_eq!(read, b"abc");
            p.finish();
        }
    }

    #[test]
    fn counts_read_as_the_user_sees_them() {
        // A terminal display, drawn into the void: the counts are what matter.
        let p = Progress::for_terminal(true, false, false).counting("sent", "refused");
        if let Some(bar) = &p.bar {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        assert!(p.is_shown());
        p.start("", None, None);
        p.advance(2, 100);
        p.fail(1);
        assert_eq!(p.describe(), "2 sent, 1 refused");
        let p = Progress::for_terminal(true, false, false);
        if let Some(bar) = &p.bar {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        p.start("INBOX", Some(10), Some(1000));
        p.advance(3, 300);
        assert_eq!(p.describe(), "3/10 messages");
        assert_eq!(
            p.bar.as_ref().map(|b| b.message()).as_deref(),
            Some("INBOX")
        );
        let mut sink = Vec::new();
        p.reader(&[0u8; 50][..])
            .read_to_end(&mut sink)
            .expect("reading a slice");
        assert_eq!(p.bar.as_ref().map(|b| b.position()), Some(350));
        p.start("mbox", None, Some(10));
        assert_eq!(p.describe(), "");
    }
}
