//! A TCP proxy on a free loopback port in front of a real server (Garage,
//! Redis), to give the network faults the tests need: responses to HTTP
//! requests that name a marker stall part-way, answers to requests holding
//! a marker come late, and every byte can be slowed to a rate. It forwards
//! bytes and understands no protocol beyond spotting markers.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the proxy does to traffic.
#[derive(Debug, Default)]
struct Faults {
    /// Responses to requests whose bytes contain this marker stop after
    /// `stall_after` bytes, with the connection held open.
    marker: std::sync::Mutex<Option<String>>,
    stall_after: AtomicU64,
    /// Bytes per second in each direction of each connection (0: no limit).
    rate: AtomicU64,
    /// The answer to a request containing this marker (any protocol) is
    /// held back this long.
    delay: std::sync::Mutex<Option<(Vec<u8>, Duration)>>,
}

pub struct Proxy {
    pub port: u16,
    faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Forwards `127.0.0.1:<port>` to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let faults = Arc::new(Faults::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s, up) = (faults.clone(), stop.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&up) else {
                    continue;
                };
                connect(client, server, f.clone(), s.clone());
            }
        });
        Proxy { port, faults, stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From now on, responses to requests naming `marker` stall after
    /// `after` bytes.
    pub fn stall(&self, marker: &str, after: u64) {
        self.faults.stall_after.store(after, Ordering::Relaxed);
        *self.faults.marker.lock().expect("marker") = Some(marker.to_string());
    }

    /// From now on, what the server sends after a request containing
    /// `marker` (anywhere in it) is held back for `hold`: the request has
    /// done its work upstream, its answer is late.
    pub fn delay(&self, marker: &[u8], hold: Duration) {
        *self.faults.delay.lock().expect("delay") = Some((marker.to_vec(), hold));
    }

    /// Limits every connection to `bytes_per_second` each way (0: none).
    pub fn throttle(&self, bytes_per_second: u64) {
        self.faults.rate.store(bytes_per_second, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn connect(client: TcpStream, server: TcpStream, faults: Arc<Faults>, stop: Arc<AtomicBool>) {
    // Set while the latest request named the marker.
    let marked = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicBool::new(false));
    // Answers are held until then.
    let hold_until: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let (c_in, s_out) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    {
        let (faults, marked, closed) = (faults.clone(), marked.clone(), closed.clone());
        let hold_until = hold_until.clone();
        std::thread::spawn(move || {
            pump(c_in, s_out, &faults, |chunk| {
                if let Some((m, hold)) = faults.delay.lock().expect("delay").clone() {
                    if chunk.windows(m.len()).any(|w| w == m.as_slice()) {
                        *hold_until.lock().expect("hold") = Some(Instant::now() + hold);
                    }
                }
                let marker = faults.marker.lock().expect("marker").clone();
                if let Some(m) = marker {
                    let starts_request = [&b"GET "[..], b"PUT ", b"POST ", b"HEAD ", b"DELETE "]
                        .iter()
                        .any(|v| chunk.starts_with(v));
                    if starts_request {
                        let named = chunk.windows(m.len()).any(|w| w == m.as_bytes());
                        marked.store(named, Ordering::Relaxed);
                    }
                }
                true
            });
            closed.store(true, Ordering::Relaxed);
        });
    }
    std::thread::spawn(move || {
        let mut sent = 0u64;
        let client_w = client.try_clone().expect("clone");
        pump(server, client_w, &faults, |chunk| {
            let until = *hold_until.lock().expect("hold");
            if let Some(wait) = until.and_then(|t| t.checked_duration_since(Instant::now())) {
                std::thread::sleep(wait);
            }
            if marked.load(Ordering::Relaxed) {
                sent += chunk.len() as u64;
                if sent > faults.stall_after.load(Ordering::Relaxed) {
                    // Hold the connection open, silent, until the client
                    // gives up or the proxy stops.
                    while !closed.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    return false;
                }
            } else {
                sent = 0;
            }
            true
        });
        let _ = client.shutdown(Shutdown::Both);
    });
}

/// Copies `from` to `to` until either closes or `pass` says stop; paces
/// the bytes to the configured rate.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    faults: &Faults,
    mut pass: impl FnMut(&[u8]) -> bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let started = Instant::now();
    let mut total = 0u64;
    loop {
        let rate = faults.rate.load(Ordering::Relaxed);
        let want = if rate > 0 {
            buf.len().min((rate / 10).max(1) as usize)
        } else {
            buf.len()
        };
        let n = match from.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !pass(&buf[..n]) {
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        total += n as u64;
        if rate > 0 {
            let due = Duration::from_secs_f64(total as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
