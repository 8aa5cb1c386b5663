//! The outbox of `--queue DIR`: messages that could not be sent now (the
//! server unreachable, or 4xx), kept until `--flush DIR` sends them.
//!
//! Maildir-like, so that a crash at any moment loses nothing and never
//! shows a half-written message: each message is written to `tmp/`, synced,
//! and renamed into `new/`, then the folder is synced. A message is two
//! files, `ID.eml` (the message as it goes on the wire, Bcc removed, Date
//! and Message-ID added, so every attempt sends the same bytes) and
//! `ID.json` (its envelope: sender, recipients, DSN requests; when it was
//! queued, the attempts and the last error). The sidecar is renamed into
//! `new/` first and removed last: an `ID.eml` in `new/` always has its
//! envelope. IDs sort by the time of queueing (`SECONDS.MICROS.PPID`), so
//! flushing in name order is oldest first. Permanent failures go to `dead/`
//! with the server's replies in their sidecar. `DIR/.lock` (flock) keeps two
//! flushes from sending a message twice.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use mailpipe::{Error, Exit};
use serde_json::{json, Value};

use crate::dsn::{Dsn, Notify, Ret};
use crate::envelope::{parse_address, Envelope};

/// Whether a failure is one the outbox waits out: a 4xx reply or timeout
/// (75), a name that does not resolve (68: offline), a connection refused
/// or unreachable network (69 "cannot connect"). Not a TLS certificate, an
/// authentication or a configuration error, which waiting does not fix.
pub fn worth_queueing(e: &Error) -> bool {
    match e.exit() {
        Exit::TempFail | Exit::NoHost => true,
        Exit::Unavailable => e.message().contains("cannot connect to "),
        _ => false,
    }
}

/// What the sidecar holds: the envelope and the history of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// `None` is `<>`.
    pub sender: Option<String>,
    /// Those not yet delivered to.
    pub recipients: Vec<String>,
    pub utf8_header: Option<(String, String)>,
    pub notify: Option<String>,
    pub ret: Option<String>,
    pub envid: Option<String>,
    pub require_dsn: bool,
    /// Unix seconds.
    pub queued: u64,
    pub attempts: u32,
    pub last_error: Option<String>,
}

impl Meta {
    /// The sidecar of a message about to be queued, its first error `error`.
    pub fn new(envelope: &Envelope, error: &str) -> Meta {
        Meta {
            sender: envelope.sender.as_ref().map(|a| a.to_string()),
            recipients: envelope.recipients.iter().map(|a| a.to_string()).collect(),
            utf8_header: envelope.utf8_header.clone(),
            notify: envelope.dsn.notify.map(|n| n.value()),
            ret: envelope.dsn.ret.map(|r| match r {
                Ret::Full => "full".to_string(),
                Ret::Hdrs => "hdrs".to_string(),
            }),
            envid: envelope.dsn.envid.clone(),
            require_dsn: envelope.dsn.require,
            queued: now(),
            attempts: 1,
            last_error: Some(error.to_string()),
        }
    }

    /// The envelope to send with; a sidecar that does not hold one is 65.
    pub fn envelope(&self) -> Result<Envelope, Error> {
        let address = |text: &str| parse_address(text, Exit::Data, "queued address");
        let bad = |what: &str, e: String| Error::data(format!("queued {what}: {e}"));
        Ok(Envelope {
            sender: self.sender.as_deref().map(address).transpose()?,
            recipients: self
                .recipients
                .iter()
                .map(|r| address(r))
                .collect::<Result<_, _>>()?,
            utf8_header: self.utf8_header.clone(),
            dsn: Dsn {
                notify: self
                    .notify
                    .as_deref()
                    .map(Notify::parse)
                    .transpose()
                    .map_err(|e| bad("NOTIFY", e))?,
                ret: self
                    .ret
                    .as_deref()
                    .map(Ret::parse)
                    .transpose()
                    .map_err(|e| bad("RET", e))?,
                envid: self.envid.clone(),
                require: self.require_dsn,
            },
        })
    }

    fn to_json(&self) -> String {
        let mut text = json!({
            "version": 1,
            "sender": self.sender,
            "recipients": self.recipients,
            "utf8_header": self.utf8_header.as_ref().map(|(f, a)| [f, a]),
            "dsn_notify": self.notify,
            "dsn_ret": self.ret,
            "envid": self.envid,
            "require_dsn": self.require_dsn,
            "queued": self.queued,
            "attempts": self.attempts,
            "last_error": self.last_error,
        })
        .to_string();
        text.push('\n');
        text
    }

    fn from_json(bytes: &[u8]) -> Result<Meta, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let text = |key: &str| v[key].as_str().map(str::to_string);
        let recipients = v["recipients"]
            .as_array()
            .ok_or("no recipients")?
            .iter()
            .map(|r| {
                r.as_str()
                    .map(str::to_string)
                    .ok_or("a recipient not a string")
            })
            .collect::<Result<Vec<_>, _>>()?;
        let utf8_header = v["utf8_header"].as_array().and_then(|pair| {
            Some((
                pair.first()?.as_str()?.into(),
                pair.get(1)?.as_str()?.into(),
            ))
        });
        Ok(Meta {
            sender: text("sender"),
            recipients,
            utf8_header,
            notify: text("dsn_notify"),
            ret: text("dsn_ret"),
            envid: text("envid"),
            require_dsn: v["require_dsn"].as_bool().unwrap_or(false),
            queued: v["queued"].as_u64().unwrap_or(0),
            attempts: v["attempts"].as_u64().unwrap_or(0) as u32,
            last_error: text("last_error"),
        })
    }
}

/// One queued (or dead) message.
#[derive(Debug)]
pub struct Entry {
    pub id: String,
    /// `new/ID.eml` or `dead/ID.eml`.
    pub path: PathBuf,
    pub meta: Meta,
    pub size: u64,
}

/// The outbox directory.
pub struct Queue {
    root: PathBuf,
}

/// Held while flushing: `flock` on `DIR/.lock`, released when dropped.
pub struct Lock {
    _file: File,
}

impl Queue {
    pub fn new(root: &Path) -> Queue {
        Queue {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, sub: &str) -> PathBuf {
        self.root.join(sub)
    }

    fn io(&self, doing: &str, e: io::Error) -> Error {
        Error::io(format!("outbox {}: {doing}", self.root.display()), e)
    }

    /// Creates `tmp/`, `new/` and `dead/` (private: mail is personal).
    fn create(&self) -> Result<(), Error> {
        use std::os::unix::fs::DirBuilderExt;
        for sub in ["", "tmp", "new", "dead"] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(self.dir(sub))
                .map_err(|e| self.io("creating it", e))?;
        }
        Ok(())
    }

    /// Waits for any other flush of this outbox to end, then holds it.
    pub fn lock(&self) -> Result<Lock, Error> {
        self.create()?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(".lock"))
            .map_err(|e| self.io("opening .lock", e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| self.io("locking .lock", e.into()))?;
        Ok(Lock { _file: file })
    }

    /// Stores `data` with `meta` in `new/`, durably; returns the path of
    /// the message file.
    pub fn add(&self, data: &[u8], meta: &Meta) -> Result<PathBuf, Error> {
        self.create()?;
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let id = format!(
            "{:010}.{:06}.{}",
            since.as_secs(),
            since.subsec_micros(),
            std::process::id()
        );
        let (tmp, new) = (self.dir("tmp"), self.dir("new"));
        let write = |name: &str, bytes: &[u8]| -> io::Result<()> {
            let mut file = File::create(tmp.join(name))?;
            file.write_all(bytes)?;
            file.sync_all()
        };
        let (eml, sidecar) = (format!("{id}.eml"), format!("{id}.json"));
        write(&sidecar, meta.to_json().as_bytes())
            .and_then(|()| write(&eml, data))
            .and_then(|()| fs::rename(tmp.join(&sidecar), new.join(&sidecar)))
            .and_then(|()| fs::rename(tmp.join(&eml), new.join(&eml)))
            .and_then(|()| sync_dir(&new))
            .map_err(|e| {
                let _ = fs::remove_file(tmp.join(&eml));
                let _ = fs::remove_file(tmp.join(&sidecar));
                self.io("storing a message", e)
            })?;
        Ok(new.join(eml))
    }

    /// The messages in `new/` (or `dead/`), oldest first. A sidecar that
    /// cannot be read is an error naming it.
    pub fn entries(&self, dead: bool) -> Result<Vec<Entry>, Error> {
        let dir = self.dir(if dead { "dead" } else { "new" });
        let listing = match fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io("listing it", e)),
        };
        let mut ids: Vec<String> = listing
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                Some(name.strip_suffix(".eml")?.to_string())
            })
            .filter(|id| !id.starts_with('.'))
            .collect();
        ids.sort();
        let mut entries = Vec::with_capacity(ids.len());
        for id in ids {
            let path = dir.join(format!("{id}.eml"));
            let sidecar = dir.join(format!("{id}.json"));
            let bytes = match fs::read(&sidecar) {
                Ok(b) => b,
                // Sent and removed by a flush since the listing (the
                // message goes first, then its sidecar).
                Err(e) if e.kind() == io::ErrorKind::NotFound && !path.exists() => continue,
                Err(e) => return Err(self.io(&format!("reading {}", sidecar.display()), e)),
            };
            let meta = Meta::from_json(&bytes).map_err(|e| {
                Error::data(format!(
                    "outbox {}: {} is not a queue sidecar: {e}",
                    self.root.display(),
                    sidecar.display()
                ))
            })?;
            let size = match fs::metadata(&path) {
                Ok(m) => m.len(),
                // Sent and removed by another flush since the listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io(&format!("reading {}", path.display()), e)),
            };
            entries.push(Entry {
                id,
                path,
                meta,
                size,
            });
        }
        Ok(entries)
    }

    /// Replaces a queued message's sidecar (after an attempt).
    pub fn update(&self, entry: &Entry) -> Result<(), Error> {
        let sidecar = entry.path.with_extension("json");
        mailpipe::durable::replace_file(&sidecar, entry.meta.to_json().as_bytes())
            .map_err(|e| self.io(&format!("writing {}", sidecar.display()), e))
    }

    /// Removes a message that was sent: the message first, so that a crash
    /// in between leaves only a sidecar, which nothing sends.
    pub fn remove(&self, entry: &Entry) -> Result<(), Error> {
        let sidecar = entry.path.with_extension("json");
        fs::remove_file(&entry.path)
            .and_then(|()| fs::remove_file(&sidecar))
            .and_then(|()| sync_dir(&self.dir("new")))
            .map_err(|e| self.io(&format!("removing {}", entry.path.display()), e))
    }

    /// Moves a message refused for good to `dead/`, its sidecar holding
    /// the refusal. Returns where it is now.
    pub fn bury(&self, entry: &Entry) -> Result<PathBuf, Error> {
        let dead = self.dir("dead");
        let eml = dead.join(format!("{}.eml", entry.id));
        let sidecar = dead.join(format!("{}.json", entry.id));
        mailpipe::durable::replace_file(&sidecar, entry.meta.to_json().as_bytes())
            .and_then(|()| fs::rename(&entry.path, &eml))
            .and_then(|()| fs::remove_file(entry.path.with_extension("json")))
            .and_then(|()| sync_dir(&dead))
            .and_then(|()| sync_dir(&self.dir("new")))
            .map_err(|e| self.io(&format!("moving {} to dead/", entry.id), e))?;
        Ok(eml)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `--list DIR`: one line per message, tab-separated: id, `queued` or
/// `dead`, age, size in bytes, sender, recipients (comma-separated), the last
/// error. Nothing for an empty or missing outbox.
pub fn list(root: &Path, out: &mut dyn Write) -> Result<(), Error> {
    let queue = Queue::new(root);
    let now = now();
    let mut text = String::new();
    for (dead, state) in [(false, "queued"), (true, "dead")] {
        for entry in queue.entries(dead)? {
            let m = &entry.meta;
            let line = format!(
                "{}\t{state}\t{}\t{}\t{}\t{}\t{}",
                entry.id,
                age(now.saturating_sub(m.queued)),
                entry.size,
                m.sender.as_deref().unwrap_or("<>"),
                m.recipients.join(","),
                m.last_error.as_deref().unwrap_or("-"),
            );
            // One line per message, whatever a server put in its reply.
            text.extend(line.chars().map(|c| match c {
                '\t' => '\t',
                c if c.is_control() => ' ',
                c => c,
            }));
            text.push('\n');
        }
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing stdout", e))
}

/// `42s`, `5m`, `3h`, `2d`.
fn age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        let envelope = Envelope {
            sender: Some("a@example.org".parse().expect("address")),
            recipients: vec![
                "b@example.org".parse().expect("address"),
                "c@xn--fsqu00a.xn--fiqs8s".parse().expect("address"),
            ],
            utf8_header: None,
            dsn: Dsn {
                notify: Some(Notify::parse("failure,delay").expect("notify")),
                ret: Some(Ret::Hdrs),
                envid: Some("id-1".into()),
                require: true,
            },
        };
        Meta::new(&envelope, "cannot connect to localhost:1: refused")
    }

    #[test]
    fn a_queued_message_keeps_its_bytes_and_envelope() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = Queue::new(dir.path());
        let m = meta();
        let path = queue.add(b"Subject: x\r\n\r\nbody\r\n", &m).expect("add");
        assert!(path.starts_with(dir.path().join("new")));
        let entries = queue.entries(false).expect("entries");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].meta, m);
        assert_eq!(
            fs::read(&entries[0].path).expect("read"),
            b"Subject: x\r\n\r\nbody\r\n"
        );
        let envelope = entries[0].meta.envelope().expect("envelope");
        assert_eq!(envelope.recipients.len(), 2);
        assert_eq!(envelope.dsn.ret, Some(Ret::Hdrs));
        assert!(envelope.dsn.require);
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
            0
        );

        let dead = queue.bury(&entries[0]).expect("bury");
        assert!(dead.exists());
        assert!(queue.entries(false).expect("entries").is_empty());
        assert_eq!(queue.entries(true).expect("dead").len(), 1);
        let mut listed = Vec::new();
        list(dir.path(), &mut listed).expect("list");
        let listed = String::from_utf8(listed).expect("utf8");
        assert!(
            listed.contains("\tdead\t0s\t20\ta@example.org\tb@example.org,c@"),
            "{listed}"
        );
    }

    #[test]
    fn only_waitable_failures_are_queued() {
        assert!(worth_queueing(&Error::new(Exit::TempFail, "451 later")));
        assert!(worth_queueing(&Error::new(
            Exit::NoHost,
            "cannot resolve host x"
        )));
        assert!(worth_queueing(&Error::new(
            Exit::Unavailable,
            "smtps://x: cannot connect to x:465: Connection refused"
        )));
        assert!(!worth_queueing(&Error::new(
            Exit::Unavailable,
            "TLS: certificate expired"
        )));
        assert!(!worth_queueing(&Error::new(
            Exit::NoPerm,
            "authentication failed"
        )));
        assert!(!worth_queueing(&Error::new(
            Exit::NoUser,
            "550 no such user"
        )));
    }
}
