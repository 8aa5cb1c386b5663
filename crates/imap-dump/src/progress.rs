//! Progress on stderr (messages, bytes, rate) while a mailbox is dumped, only
//! when stderr is a terminal and neither `--quiet` nor `-v` is given.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix} {msg} {bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress { bar }
    }

    /// A new mailbox of `messages` messages and `bytes` bytes.
    pub fn start(&self, mailbox: &str, messages: usize, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_prefix(mailbox.to_string());
            bar.set_length(bytes);
            bar.set_position(0);
            bar.set_message(format!("0/{messages} messages"));
        }
    }

    pub fn advance(&self, done: usize, total: usize, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
            bar.set_message(format!("{done}/{total} messages"));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
