//! Making output durable before state says it exists: a state file must never
//! run ahead of the output it describes (the tools promise that nothing is
//! lost), so the output is synced first and the state replaced atomically.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::FileType;

use crate::exit::{Error, Exit};

/// Replaces `path` with `bytes` so that a reader, or the next run after a
/// crash, sees the old file or the new one, never a mix: temporary file beside
/// it, fsync, rename over it, fsync of the folder (without which the rename
/// itself may not survive a power cut).
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_string());
    let temporary = folder.join(format!(".{name}.tmp{}", std::process::id()));
    let written = File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    File::open(&folder)?.sync_all()
}

/// Syncs stdout to disk when it is a regular file (`> archive.mbox`), so that
/// a state file saved next cannot describe messages a crash would lose. A
/// pipe or terminal has nothing to sync.
pub fn sync_stdout() -> io::Result<()> {
    let file = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    if file.metadata()?.is_file() {
        file.sync_data()?;
    }
    Ok(())
}

/// Refuses, before anything happens on the server, a run whose stdout is
/// /dev/null when `option` (`--delete`, `--state`) would make the server or
/// the state forget what was written. A closed stdout (`>&-`) looks the same:
/// Rust's runtime reopens a closed descriptor 1 on /dev/null.
pub fn refuse_discarded_stdout(option: &str) -> Result<(), Error> {
    let stdout = io::stdout();
    let Ok(out) = rustix::fs::fstat(stdout.as_fd()) else {
        return Ok(());
    };
    let Ok(null) = rustix::fs::stat("/dev/null") else {
        return Ok(());
    };
    let is_char = FileType::from_raw_mode(out.st_mode) == FileType::CharacterDevice;
    if is_char && out.st_rdev == null.st_rdev {
        return Err(Error::new(
            Exit::Io,
            format!(
                "stdout is /dev/null or closed: with {option} the messages would be written \
                 nowhere and never fetched again; send stdout to a file or a pipe"
            ),
        ));
    }
    Ok(())
}

/// When stdout is a pipe, waits until its reader has taken every byte
/// written (FIONREAD on the write end reads 0), so that DELE or a state
/// save never covers output still in the pipe buffer, where a reader that
/// exits (`| head -c 10`) would drop it. Fails (74) when the reader is gone
/// first; `undone` says what was therefore not done. Waits as long as the
/// reader takes: a slow reader (`| less`) is not an error. Anything other
/// than a pipe returns at once.
pub fn wait_stdout_read(undone: &str) -> Result<(), Error> {
    let stdout = io::stdout();
    let fd = stdout.as_fd();
    let is_pipe = rustix::fs::fstat(fd)
        .map(|s| FileType::from_raw_mode(s.st_mode) == FileType::Fifo)
        .unwrap_or(false);
    if !is_pipe {
        return Ok(());
    }
    let tick = Timespec::try_from(Duration::from_millis(20)).unwrap_or(Timespec {
        tv_sec: 0,
        tv_nsec: 20_000_000,
    });
    let unread = || {
        Error::new(
            Exit::Io,
            format!(
                "stdout: the reader of the pipe exited before reading all the output; \
                 {undone}; run again"
            ),
        )
    };
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut wait = &zero;
    loop {
        // No events asked for: poll reports only POLLERR (the reader closed
        // its end) or POLLHUP, else waits out the timeout.
        let mut fds = [PollFd::new(&fd, PollFlags::empty())];
        match rustix::event::poll(&mut fds, Some(wait)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io("stdout", e.into())),
        }
        if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) {
            return Err(unread());
        }
        match rustix::io::ioctl_fionread(fd) {
            Ok(0) => return Ok(()),
            Ok(_) => wait = &tick,
            // A kernel without FIONREAD on a pipe's write end: no way to know.
            Err(_) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_file_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("inbox.state");
        replace_file(&path, b"one").expect("first");
        replace_file(&path, b"two").expect("second");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("inbox.state")]);
    }

    #[test]
    fn replace_file_failure_keeps_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        replace_file(&path, b"old").expect("first");
        // A directory where the file should go: rename fails, the old file stays.
        let blocked = dir.path().join("sub");
        fs::create_dir(&blocked).expect("mkdir");
        fs::write(blocked.join("x"), b"").expect("fill");
        assert!(replace_file(&blocked, b"new").is_err());
        assert_eq!(fs::read(&path).expect("read"), b"old");
        assert!(fs::read_dir(dir.path()).expect("list").all(|e| !e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .contains(".tmp")));
    }
}
