//! spotenc-tests: helpers for the end-to-end tests in `tests/e2e.rs`.
//!
//! Layout:
//! - [`bin`]: the workspace's built binaries (`spotenc`, `cpu-worker`).
//! - [`cpu_worker_info`] and [`RawWorker`]: a worker description, and a
//!   worker that registers and leases over raw gRPC.
//! - [`tool`]: the Python validators and clients of `scripts/tools.sh`.
//! - [`Fleet`]: a coordinator and CPU workers as real processes on a free
//!   loopback port, killed on drop (and restartable, for the chaos bench).
//! - [`replay_fuzz_corpus`]: the fuzz corpora, replayed on stable.
//! - [`lease_cycles`]: jobs and simulated workers for the lease benchmarks.
//! - [`RedisServer`] and [`RedisCluster`]: a redis-server, or a three-node
//!   Redis Cluster, on free loopback ports.
//! - [`garage`]: a single-node Garage S3 server, and object access with
//!   the `curl` CLI.
//! - [`docker`]: the Docker engine, the images scripts/images.sh built,
//!   and a compose fleet from docker/compose.yaml on free loopback ports.
//! - [`media`]: clips made with the `ffmpeg` CLI, and the ffmpeg/ffprobe
//!   oracle that judges outputs (frame counts, durations, PSNR, decode
//!   errors, timestamps).
//! - [`promql`]: metric names read by a PromQL expression (a real parser)
//!   and exposed by a `/metrics` scrape.
//! - [`metadata`]: a local AWS/GCP/Azure instance metadata server that
//!   speaks each cloud's notice protocol, to interrupt real workers.
//! - [`proxy`]: a TCP proxy in front of Garage that stalls or slows the
//!   network on demand.

#![forbid(unsafe_code)]

pub mod docker;
pub mod garage;
pub mod lease_cycles;
pub mod media;
pub mod metadata;
pub mod promql;
pub mod proxy;
mod redis_server;

pub use redis_server::{RedisCluster, RedisServer};

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
            if d.ends_with("deps") || d.ends_with("examples") {
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

/// A validator or client from `scripts/tools.sh`'s virtual environment
/// (hadolint, kubernetes-validate, check-jsonschema, yamllint, python with
/// grpcio). `scripts/test.sh` sets `SPOTENC_TOOLS_BIN`; without it the script
/// is run here, which installs the environment if missing.
pub fn tool(name: &str) -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SPOTENC_TOOLS_BIN") {
            return PathBuf::from(dir);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/tools.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/tools.sh");
        assert!(out.status.success(), "scripts/tools.sh failed");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// A worker that speaks the protocol over raw gRPC to the coordinator at
/// `url`: registered as a one-slot on-demand CPU worker of pool `p`.
pub struct RawWorker {
    pub client: spotenc_proto::client::WorkerClient,
    pub id: String,
}

impl RawWorker {
    pub async fn register(url: &str, name: &str) -> RawWorker {
        let conn = spotenc_proto::client::Connection {
            url: url.to_string(),
            ..Default::default()
        };
        let mut client = conn.workers().await.expect("connect as a worker");
        let info = cpu_worker_info(name, "p", spotenc_proto::domain::Capacity::OnDemand);
        let id = client
            .register_worker(spotenc_proto::pb::RegisterWorkerRequest {
                info: Some(info.into()),
            })
            .await
            .expect("register")
            .into_inner()
            .worker_id;
        RawWorker { client, id }
    }

    /// A lease request waiting up to `wait_ms`.
    pub fn lease_request(&self, wait_ms: u32) -> spotenc_proto::pb::LeaseTaskRequest {
        spotenc_proto::pb::LeaseTaskRequest {
            worker_id: self.id.clone(),
            wait_ms,
            gpus: vec![],
            withdrawn: vec![],
        }
    }

    /// The next task, waiting up to 5 s for one.
    pub async fn lease(&mut self) -> Option<spotenc_proto::pb::Task> {
        let req = self.lease_request(5_000);
        self.client
            .lease_task(req)
            .await
            .expect("lease")
            .into_inner()
            .task
    }
}

/// A one-slot H.264 CPU worker's description, for tests and benches that
/// speak the worker protocol over raw gRPC.
pub fn cpu_worker_info(
    name: &str,
    pool: &str,
    capacity: spotenc_proto::domain::Capacity,
) -> spotenc_proto::domain::WorkerInfo {
    spotenc_proto::domain::WorkerInfo {
        name: name.into(),
        pool: pool.into(),
        hardware: "cpu".into(),
        slots: 1,
        cores: 1,
        memory_bytes: 0,
        codecs: vec![spotenc_proto::domain::Codec::H264],
        instance_type: String::new(),
        zone: String::new(),
        capacity,
        gpus: vec![],
        encoder: String::new(),
        encoder_params: Default::default(),
    }
}

/// A loopback port nothing listens on, for a server a test starts.
///
/// Not the kernel's pick (binding port 0): that comes from the ephemeral
/// range, from which the kernel also takes the source port of every
/// outgoing connection, and can hand the same port to the next bind as
/// soon as the probe closes. So a server started a moment later could find
/// its port taken (seen in CI: a worker's gRPC port, "nothing listens").
/// Ports here come from 10000–19999, below that range, each handed out once
/// per test process (from a start that depends on the process id) and only
/// if it binds now; a Redis Cluster node's bus port (port + 10000) stays
/// below the range too. Where the range starts lower than 30000, the
/// kernel's pick it is.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 10_000;
    const SPAN: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let kernel = || {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port")
    };
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    if ephemeral_low < LOW + 2 * SPAN {
        return kernel();
    }
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    kernel()
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

    /// Waits up to `limit` for the process to exit; its status, if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal (`-TERM`, `-STOP`, ...) with the `kill` command.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {}", self.child.id());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Coordinators and their workers, each a separate process. With Redis,
/// several coordinator replicas share the state; workers are spread over
/// them round-robin.
pub struct Fleet {
    /// The first coordinator's URL.
    pub url: String,
    /// Extra flags every worker gets.
    pub worker_args: Vec<String>,
    /// With `secure()`: the CA certificate clients must trust, and the
    /// client, worker and admin tokens.
    pub tls_ca: Option<PathBuf>,
    pub tokens: Option<Tokens>,
    pub urls: Vec<String>,
    /// Each coordinator's Prometheus `/metrics` URL.
    pub metrics: Vec<String>,
    pub coordinators: Vec<Proc>,
    pub workers: Vec<Proc>,
    pub data_dir: tempfile::TempDir,
    /// How each coordinator was started (arguments, environment), to start
    /// it again on the same port.
    coordinator_cmds: Vec<CoordinatorCmd>,
}

/// A coordinator's arguments and environment.
type CoordinatorCmd = (Vec<String>, Vec<(String, String)>);

pub struct FleetBuilder {
    cpu_workers: usize,
    coordinators: usize,
    redis: Option<String>,
    secure: bool,
    s3_endpoint: Option<String>,
    s3_extra: String,
    worker_args: Vec<String>,
    lease_ttl_ms: u32,
    heartbeat_interval_ms: u32,
    extra_config: String,
}

/// Bearer tokens of a secured fleet.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub client: String,
    pub worker: String,
    pub admin: String,
}

/// Replays the fuzz corpus `fuzz/corpus/<target>/` through `f` (each
/// crate's `tests/fuzz_corpus.rs`): a panic fails, naming the file.
pub fn replay_fuzz_corpus(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus directory") {
        let path = entry.expect("a corpus entry").path();
        let data = std::fs::read(&path).expect("a corpus file");
        let r = std::panic::catch_unwind(|| f(&data));
        assert!(r.is_ok(), "{} panics", path.display());
        n += 1;
    }
    assert!(n > 0, "no corpus in {}", dir.display());
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Fleet {
    pub fn builder() -> FleetBuilder {
        FleetBuilder {
            cpu_workers: 1,
            coordinators: 1,
            redis: None,
            secure: false,
            s3_endpoint: None,
            s3_extra: String::new(),
            worker_args: Vec::new(),
            lease_ttl_ms: 3_000,
            heartbeat_interval_ms: 500,
            extra_config: String::new(),
        }
    }

    /// Starts a CPU worker named `name` (its worker id starts with it) on
    /// the first coordinator.
    pub fn add_worker(&mut self, name: &str) {
        let url = self.url.clone();
        self.add_worker_at(name, &url);
    }

    /// Starts an on-demand CPU worker talking to the coordinator at `url`.
    pub fn add_worker_at(&mut self, name: &str, url: &str) {
        self.add_worker_with(name, url, "on-demand");
    }

    /// Starts a CPU worker of a capacity class (`spot` or `on-demand`).
    pub fn add_worker_with(&mut self, name: &str, url: &str, capacity: &str) {
        self.add_worker_args(name, url, capacity, &[]);
    }

    /// Starts a CPU worker with extra flags. Unless they name a cloud, the
    /// worker watches signals only (`--cloud none`), so no test asks a real
    /// metadata address.
    pub fn add_worker_args(&mut self, name: &str, url: &str, capacity: &str, extra: &[&str]) {
        self.add_worker_bin("cpu-worker", name, url, capacity, extra);
    }

    /// Starts a worker from binary `program` (`cpu-worker`, `gpu-worker`).
    pub fn add_worker_bin(
        &mut self,
        program: &str,
        name: &str,
        url: &str,
        capacity: &str,
        extra: &[&str],
    ) {
        self.add_worker_env(program, name, url, capacity, extra, &[]);
    }

    /// [`Fleet::add_worker_bin`] with environment variables (test hooks).
    pub fn add_worker_env(
        &mut self,
        program: &str,
        name: &str,
        url: &str,
        capacity: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) {
        let mut cmd = Command::new(bin(program));
        cmd.envs(env.iter().copied());
        cmd.args(["--coordinator", url, "--name", name, "--slots", "1"])
            .args(["--capacity", capacity])
            .args(&self.worker_args)
            .args(extra);
        if !extra.contains(&"--cloud") && !self.worker_args.iter().any(|a| a == "--cloud") {
            cmd.args(["--cloud", "none"]);
        }
        if let (Some(ca), Some(t)) = (&self.tls_ca, &self.tokens) {
            cmd.arg("--tls-ca").arg(ca).args(["--token", &t.worker]);
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file(self.data_dir.path(), name))
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        self.workers.push(Proc {
            child,
            name: name.into(),
        });
    }

    /// Kills coordinator `i` (SIGKILL) and starts it again on its port.
    pub fn restart_coordinator(&mut self, i: usize) {
        self.coordinators[i].kill();
        let (args, env) = &self.coordinator_cmds[i];
        let name = format!("coordinator{i}-again");
        self.coordinators[i] = spawn_coordinator(self.data_dir.path(), &name, args, env);
        let port: u16 = self.urls[i]
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port in the url");
        wait_for_port(port);
    }

    /// Kills worker `name` (SIGKILL) and starts a new one of that name on
    /// coordinator `url`.
    pub fn restart_worker(&mut self, name: &str, url: &str) {
        if let Some(i) = self.workers.iter().position(|w| w.name == name) {
            self.workers.remove(i).kill();
        }
        self.add_worker_at(name, url);
    }

    /// A worker by name, to signal (see [`Fleet::worker`] to wait on it).
    pub fn proc(&self, name: &str) -> &Proc {
        self.workers
            .iter()
            .find(|w| w.name == name)
            .expect("worker by name")
    }

    pub fn worker(&mut self, name: &str) -> &mut Proc {
        self.workers
            .iter_mut()
            .find(|w| w.name == name)
            .expect("worker by name")
    }

    /// Runs `spotenc <args> --coordinator URL` against the first
    /// coordinator and returns its output.
    pub fn spotenc(&self, args: &[&str]) -> std::process::Output {
        self.spotenc_at(0, args)
    }

    /// Runs `spotenc <args>` against coordinator `i` (trusting the fleet's
    /// CA, if any; no token).
    pub fn spotenc_at(&self, i: usize, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(bin("spotenc"));
        cmd.args(args).args(["--coordinator", &self.urls[i]]);
        if let Some(ca) = &self.tls_ca {
            cmd.arg("--tls-ca").arg(ca);
        }
        cmd.output().expect("run spotenc")
    }
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    std::fs::File::create(dir.join(format!("{name}.log")))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

impl FleetBuilder {
    /// TOML put at the top of every coordinator's config (top-level keys
    /// and tables such as `[[pools]]` or `[placement]`).
    pub fn config(mut self, toml: &str) -> Self {
        self.extra_config.push_str(toml);
        self.extra_config.push('\n');
        self
    }

    pub fn cpu_workers(mut self, n: usize) -> Self {
        self.cpu_workers = n;
        self
    }

    pub fn lease_ttl_ms(mut self, ms: u32) -> Self {
        self.lease_ttl_ms = ms;
        self
    }

    pub fn coordinators(mut self, n: usize) -> Self {
        self.coordinators = n;
        self
    }

    /// Serves TLS (a self-signed certificate for localhost made with the
    /// openssl CLI) and requires bearer tokens.
    pub fn secure(mut self) -> Self {
        self.secure = true;
        self
    }

    /// Sends stitched outputs above `threshold` bytes up in parts of
    /// `part_size` bytes.
    pub fn s3_multipart(mut self, threshold: u64, part_size: u64) -> Self {
        self.s3_extra =
            format!("multipart_threshold_bytes = {threshold}\npart_size_bytes = {part_size}\n");
        self
    }

    /// Passes an extra flag to every worker.
    pub fn worker_arg(mut self, arg: &str) -> Self {
        self.worker_args.push(arg.to_string());
        self
    }

    /// Lets jobs use `s3://` objects in this Garage, through the broker.
    pub fn s3(mut self, garage: &garage::Garage) -> Self {
        self.s3_endpoint = Some(garage.endpoint());
        self
    }

    /// Lets jobs use `s3://` objects through another endpoint for the same
    /// Garage (a [`proxy::Proxy`] in front of it).
    pub fn s3_via(mut self, endpoint: String) -> Self {
        self.s3_endpoint = Some(endpoint);
        self
    }

    /// Keeps state in this Redis (required for more than one coordinator).
    pub fn redis(mut self, url: String) -> Self {
        self.redis = Some(url);
        self
    }

    pub fn start(self) -> Fleet {
        assert!(
            self.coordinators == 1 || self.redis.is_some(),
            "replicas need redis"
        );
        let data_dir = tempfile::tempdir().expect("data dir");
        let (mut config_text, tls_ca, tokens) = if self.secure {
            let (ca, text, tokens) = secure_config(data_dir.path());
            (text, Some(ca), Some(tokens))
        } else {
            (String::new(), None, None)
        };
        if let Some(endpoint) = &self.s3_endpoint {
            config_text.push_str(&format!(
                "\n[s3]\nendpoint = {endpoint:?}\nregion = \"garage\"\nbucket = {:?}\npath_style = true\n{}",
                garage::BUCKET,
                self.s3_extra
            ));
        }
        // Tests keep their media in temporary directories.
        let tmp = std::env::temp_dir()
            .canonicalize()
            .expect("temp dir")
            .display()
            .to_string();
        let files = format!("[files]\ninput_roots = [{tmp:?}]\noutput_roots = [{tmp:?}]\n");
        let config_text = format!("{}{files}{config_text}", self.extra_config);
        let config = data_dir.path().join("coordinator.toml");
        std::fs::write(&config, &config_text).expect("write coordinator config");
        let scheme = if self.secure {
            "https://127.0.0.1"
        } else {
            "http://127.0.0.1"
        };
        let mut coordinators = Vec::new();
        let mut coordinator_cmds = Vec::new();
        let mut urls = Vec::new();
        let mut metrics = Vec::new();
        for i in 0..self.coordinators {
            let port = free_port();
            let name = format!("coordinator{i}");
            let mut args: Vec<String> = [
                "coordinator",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
                data_dir.path().join("state").to_str().expect("utf-8"),
                "--lease-ttl-ms",
                &self.lease_ttl_ms.to_string(),
                "--heartbeat-interval-ms",
                &self.heartbeat_interval_ms.to_string(),
            ]
            .map(String::from)
            .to_vec();
            if let Some(redis) = &self.redis {
                args.extend(["--redis".to_string(), redis.clone()]);
            }
            args.extend([
                "--config".to_string(),
                config.to_str().expect("utf-8").to_string(),
            ]);
            let metrics_port = free_port();
            metrics.push(format!("http://127.0.0.1:{metrics_port}/metrics"));
            let env = vec![
                (
                    "SPOTENC_METRICS_LISTEN".to_string(),
                    format!("127.0.0.1:{metrics_port}"),
                ),
                ("SPOTENC_S3_ACCESS_KEY_ID".into(), garage::ACCESS_KEY.into()),
                (
                    "SPOTENC_S3_SECRET_ACCESS_KEY".into(),
                    garage::SECRET_KEY.into(),
                ),
            ];
            coordinators.push(spawn_coordinator(data_dir.path(), &name, &args, &env));
            coordinator_cmds.push((args, env));
            wait_for_port(port);
            urls.push(format!("{scheme}:{port}"));
        }
        let mut fleet = Fleet {
            url: urls[0].clone(),
            worker_args: self.worker_args.clone(),
            tls_ca,
            tokens,
            urls,
            metrics,
            coordinators,
            workers: Vec::new(),
            data_dir,
            coordinator_cmds,
        };
        for i in 0..self.cpu_workers {
            let url = fleet.urls[i % fleet.urls.len()].clone();
            fleet.add_worker_at(&format!("w{i}"), &url);
        }
        fleet
    }
}

fn spawn_coordinator(dir: &Path, name: &str, args: &[String], env: &[(String, String)]) -> Proc {
    let child = Command::new(bin("spotenc"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log_file(dir, name))
        .spawn()
        .expect("start coordinator");
    Proc {
        child,
        name: name.to_string(),
    }
}

/// Writes a test CA and a certificate for localhost/127.0.0.1 signed by it
/// (made with the openssl CLI). Returns the CA path, coordinator config text
/// that serves TLS with it and accepts three tokens, and the tokens.
fn secure_config(dir: &Path) -> (PathBuf, String, Tokens) {
    let p = |n: &str| dir.join(n).to_str().expect("utf-8").to_string();
    let (ca_key, ca, key, csr, cert, ext) = (
        p("ca.key"),
        p("ca.crt"),
        p("tls.key"),
        p("tls.csr"),
        p("tls.crt"),
        p("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write ext");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=spotenc-test-ca",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (cert, key) = (PathBuf::from(cert), PathBuf::from(key));
    let tokens = Tokens {
        client: "client-token-0123456789".into(),
        worker: "worker-token-0123456789".into(),
        admin: "admin-token-0123456789".into(),
    };
    let config = format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n\n[[tokens]]\nname = \"ci\"\nrole = \"client\"\ntoken = {:?}\n\n[[tokens]]\nname = \"fleet\"\nrole = \"worker\"\ntoken = {:?}\n\n[[tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken = {:?}\n",
            cert, key, tokens.client, tokens.worker, tokens.admin
    );
    (PathBuf::from(ca), config, tokens)
}
