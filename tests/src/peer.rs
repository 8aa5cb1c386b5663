//! A scripted line-protocol server on 127.0.0.1 for one connection, for
//! faults a real server will not produce on demand (a refused RETR, a
//! missing final dot, a server without UIDL): the script answers each
//! command line, and every line the client sent is logged.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The command lines a peer received, in order, without their line ends.
pub type Log = Arc<Mutex<Vec<String>>>;

/// Starts a peer serving one connection with `script`; returns its port and log.
pub fn scripted_peer(script: impl FnOnce(&mut Peer) + Send + 'static) -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let log_for_peer = Arc::clone(&log);
    thread::spawn(move || {
        let Ok((socket, _)) = listener.accept() else {
            return;
        };
        let _ = socket.set_read_timeout(Some(Duration::from_secs(30)));
        let Ok(reading) = socket.try_clone() else {
            return;
        };
        let mut peer = Peer {
            reader: BufReader::new(reading),
            socket,
            log: log_for_peer,
        };
        script(&mut peer);
    });
    (port, log)
}

/// The server side of a scripted connection.
pub struct Peer {
    reader: BufReader<TcpStream>,
    pub socket: TcpStream,
    log: Log,
}

impl Peer {
    /// Sends bytes; false when the client has gone.
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        self.socket.write_all(bytes).is_ok()
    }

    /// The next `n` bytes the client sent (SMTP's BDAT chunk), not logged;
    /// `None` when it closed first.
    pub fn bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; n];
        std::io::Read::read_exact(&mut self.reader, &mut buf).ok()?;
        Some(buf)
    }

    /// The client's next command line, logged; `None` when it closed.
    pub fn command(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(n) if n > 0 => {
                let line = line.trim_end().to_string();
                self.log
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.clone());
                Some(line)
            }
            _ => None,
        }
    }
}
