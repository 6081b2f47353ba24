//! spotenc-tests: helpers for the end-to-end tests in `tests/e2e.rs`.
//!
//! Layout:
//! - [`bin`]: the workspace's built binaries (`spotenc`, `cpu-worker`).
//! - [`Fleet`]: a coordinator and CPU workers as real processes on a free
//!   loopback port, killed on drop.
//! - [`media`]: clips made with the `ffmpeg` CLI, and the ffmpeg/ffprobe
//!   oracle that judges outputs (frame counts, durations, PSNR, decode
//!   errors, timestamps).

pub mod media;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A binary built from this workspace, next to the test executable's
/// directory (`target/<profile>/`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A coordinator and its workers, each a separate process.
pub struct Fleet {
    pub url: String,
    pub coordinator: Proc,
    pub workers: Vec<Proc>,
    pub data_dir: tempfile::TempDir,
}

pub struct FleetBuilder {
    cpu_workers: usize,
    lease_ttl_ms: u32,
    heartbeat_interval_ms: u32,
}

impl Fleet {
    pub fn builder() -> FleetBuilder {
        FleetBuilder {
            cpu_workers: 1,
            lease_ttl_ms: 3_000,
            heartbeat_interval_ms: 500,
        }
    }

    /// Starts a CPU worker named `name` (its worker id starts with it).
    pub fn add_worker(&mut self, name: &str) {
        let child = Command::new(bin("cpu-worker"))
            .args(["--coordinator", &self.url, "--name", name, "--slots", "1"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file(self.data_dir.path(), name))
            .spawn()
            .expect("start cpu-worker");
        self.workers.push(Proc {
            child,
            name: name.into(),
        });
    }

    pub fn worker(&mut self, name: &str) -> &mut Proc {
        self.workers
            .iter_mut()
            .find(|w| w.name == name)
            .expect("worker by name")
    }

    /// Runs `spotenc <args> --coordinator URL` and returns its output.
    pub fn spotenc(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin("spotenc"))
            .args(args)
            .args(["--coordinator", &self.url])
            .output()
            .expect("run spotenc")
    }
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    std::fs::File::create(dir.join(format!("{name}.log")))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

impl FleetBuilder {
    pub fn cpu_workers(mut self, n: usize) -> Self {
        self.cpu_workers = n;
        self
    }

    pub fn lease_ttl_ms(mut self, ms: u32) -> Self {
        self.lease_ttl_ms = ms;
        self
    }

    pub fn start(self) -> Fleet {
        let data_dir = tempfile::tempdir().expect("data dir");
        let port = free_port();
        let child = Command::new(bin("spotenc"))
            .args([
                "coordinator",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
                data_dir.path().join("state").to_str().expect("utf-8"),
                "--lease-ttl-ms",
                &self.lease_ttl_ms.to_string(),
                "--heartbeat-interval-ms",
                &self.heartbeat_interval_ms.to_string(),
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file(data_dir.path(), "coordinator"))
            .spawn()
            .expect("start coordinator");
        let coordinator = Proc {
            child,
            name: "coordinator".into(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "coordinator did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut fleet = Fleet {
            url: format!("http://127.0.0.1:{port}"),
            coordinator,
            workers: Vec::new(),
            data_dir,
        };
        for i in 0..self.cpu_workers {
            fleet.add_worker(&format!("w{i}"));
        }
        fleet
    }
}
