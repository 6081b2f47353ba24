//! The Docker engine and a compose project, through the `docker` and
//! `docker-compose` CLIs: the images scripts/images.sh built, stand-ins for
//! the third-party images (tests/docker/), and a fleet from
//! docker/compose.yaml on free loopback ports, taken down with its volumes
//! on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::free_port;

/// The tag the test suite's images carry (`scripts/images.sh
/// --from-binaries --tag test`, run by scripts/test.sh).
pub const TAG: &str = "test";

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The compose services a test fleet runs: all of docker/compose.yaml's but
/// Grafana (its image is not built here) and the `gpu` profile (no GPU).
pub const FLEET_SERVICES: &[&str] = &[
    "redis",
    "s3",
    "buckets",
    "coordinator-a",
    "coordinator-b",
    "cpu-worker-a",
    "cpu-worker-b",
    "prometheus",
];

/// A container started with `docker run`, removed with its anonymous
/// volumes on drop.
pub struct Container(pub String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-fv", &self.0]);
    }
}

/// Runs `docker <args>`.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI (scripts/setup.sh installs docker.io)")
}

/// Runs `docker <args>` and returns its trimmed stdout; panics with its
/// stderr when it fails.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Panics, with the reason, unless a Docker engine answers and spotenc's
/// test images exist. Never skips: a machine without an engine fails.
pub fn engine() {
    engine_with(TAG);
}

/// [`engine`], for the images tagged `tag`.
pub fn engine_with(tag: &str) {
    let info = docker(&["info", "--format", "{{.ServerVersion}}"]);
    assert!(
        info.status.success(),
        "no Docker engine answers (scripts/test.sh starts dockerd): {}",
        String::from_utf8_lossy(&info.stderr)
    );
    for image in ["coordinator", "cpu-worker", "gpu-worker"] {
        let name = format!("spotenc/{image}:{tag}");
        assert!(
            docker(&["image", "inspect", &name]).status.success(),
            "{name} is missing: run scripts/images.sh --from-binaries --tag {tag}"
        );
    }
}

/// Builds the stand-in images of tests/docker/Dockerfile once per test
/// process (the engine's layer cache makes later runs quick).
pub fn standins() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let ctx = tempfile::tempdir().unwrap();
        for f in ["Dockerfile", "redis-entry.sh", "garage-entry.sh"] {
            std::fs::copy(repo().join("tests/docker").join(f), ctx.path().join(f)).unwrap();
        }
        let garage = Command::new("sh")
            .args(["-c", "command -v garage"])
            .output()
            .expect("sh");
        let garage = String::from_utf8_lossy(&garage.stdout).trim().to_string();
        assert!(!garage.is_empty(), "garage is installed (scripts/setup.sh)");
        std::fs::copy(&garage, ctx.path().join("garage")).unwrap();
        for target in ["redis", "prometheus", "garage"] {
            let tag = format!("spotenc-test/{target}:latest");
            let out = Command::new("docker")
                .args([
                    "build",
                    "-q",
                    "--network",
                    "host",
                    "--target",
                    target,
                    "-t",
                    &tag,
                ])
                .arg(ctx.path())
                .env("DOCKER_BUILDKIT", "0")
                .output()
                .expect("docker build");
            assert!(
                out.status.success(),
                "building {tag}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
}

/// Random hex of `n` bytes, from the kernel.
fn hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A compose project of docker/compose.yaml with tests/docker/compose.test.yaml
/// on top, its env file written with fresh secrets and free ports.
pub struct Compose {
    pub project: String,
    pub client_token: String,
    pub admin_token: String,
    pub worker_token: String,
    pub s3_key: String,
    pub s3_secret: String,
    pub grpc_ports: [u16; 2],
    pub s3_port: u16,
    pub prometheus_port: u16,
    env_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Compose {
    /// A project of the images tagged [`TAG`].
    pub fn new() -> Compose {
        Compose::with_tag(TAG)
    }

    /// A project of the images tagged `tag`.
    pub fn with_tag(tag: &str) -> Compose {
        engine_with(tag);
        standins();
        let dir = tempfile::tempdir().unwrap();
        let c = Compose {
            project: format!("spotenc-test-{}-{}", std::process::id(), &hex(3)),
            client_token: hex(32),
            admin_token: hex(32),
            worker_token: hex(32),
            // Garage's key format.
            s3_key: format!("GK{}", hex(12)),
            s3_secret: hex(32),
            grpc_ports: [free_port(), free_port()],
            s3_port: free_port(),
            prometheus_port: free_port(),
            env_file: dir.path().join("spotenc.env"),
            _dir: dir,
        };
        let env = format!(
            "SPOTENC_TAG={tag}\nSPOTENC_CLIENT_TOKEN={}\nSPOTENC_WORKER_TOKEN={}\n\
             SPOTENC_ADMIN_TOKEN={}\nSPOTENC_S3_ACCESS_KEY_ID={}\nSPOTENC_S3_SECRET_ACCESS_KEY={}\n\
             GRAFANA_ADMIN_PASSWORD={}\nSPOTENC_PORT_A={}\nSPOTENC_PORT_B={}\n\
             SPOTENC_S3_PORT={}\nPROMETHEUS_PORT={}\nGRAFANA_PORT={}\n",
            c.client_token,
            c.worker_token,
            c.admin_token,
            c.s3_key,
            c.s3_secret,
            hex(8),
            c.grpc_ports[0],
            c.grpc_ports[1],
            c.s3_port,
            c.prometheus_port,
            free_port(),
        );
        std::fs::write(&c.env_file, env).unwrap();
        c
    }

    /// Runs `docker-compose <args>` on the project.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(repo().join("docker/compose.yaml"))
            .arg("-f")
            .arg(repo().join("tests/docker/compose.test.yaml"))
            .arg("--env-file")
            .arg(&self.env_file)
            .args(args)
            .output()
            .expect("docker-compose (scripts/setup.sh installs it)")
    }

    /// Runs `docker-compose <args>`; panics with its stderr when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The container id of a service.
    pub fn container(&self, service: &str) -> String {
        let id = self.ok(&["ps", "-q", service]);
        assert!(!id.is_empty(), "no container for {service}");
        id
    }

    /// The network the project's services share.
    pub fn network(&self) -> String {
        format!("{}_default", self.project)
    }

    /// A coordinator's gRPC URL through its published port.
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.grpc_ports[i])
    }

    /// Prometheus's URL through its published port.
    pub fn prometheus(&self) -> String {
        format!("http://127.0.0.1:{}", self.prometheus_port)
    }

    /// The S3 endpoint through its published port.
    pub fn s3(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Brings up [`FLEET_SERVICES`] from the images already built.
    pub fn up(&self) {
        let mut args = vec!["up", "-d", "--no-build"];
        args.extend_from_slice(FLEET_SERVICES);
        self.ok(&args);
    }

    /// Waits until every container of the project that has a health check
    /// reports `healthy`, and every other one runs (the one-shot `buckets`
    /// has exited 0); returns the names of the healthy ones. A container
    /// that stopped otherwise fails at once.
    pub fn wait_healthy(&self, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let mut healthy = Vec::new();
            let mut waiting = Vec::new();
            for id in self.ok(&["ps", "-q"]).lines() {
                let state = docker_ok(&[
                    "inspect",
                    "--format",
                    "{{.Name}} {{.State.Status}} {{.State.ExitCode}} \
                     {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
                    id,
                ]);
                let f: Vec<&str> = state.split_whitespace().collect();
                let name = f[0].trim_start_matches('/').to_string();
                match (f[1], f[2], f[3]) {
                    ("running", _, "healthy") => healthy.push(name),
                    ("running", _, "none") => {}
                    ("exited", "0", "none") if name.contains("_buckets_") => {}
                    ("running" | "created" | "restarting", _, health) => {
                        waiting.push(format!("{name}: {health}"))
                    }
                    (status, code, _) => panic!(
                        "{name} {status} with {code}: {}",
                        docker_ok(&["logs", "--tail", "30", id])
                    ),
                }
            }
            if waiting.is_empty() {
                return healthy;
            }
            assert!(
                Instant::now() < deadline,
                "not healthy after {limit:?}: {waiting:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Runs `spotenc <args> --coordinator <replica i>` on the host with the
    /// given token.
    pub fn spotenc(&self, i: usize, token: &str, args: &[&str]) -> Output {
        Command::new(crate::bin("spotenc"))
            .args(args)
            .args(["--coordinator", &self.url(i)])
            .env("SPOTENC_TOKEN", token)
            .output()
            .expect("run spotenc")
    }

    /// Object access to the fleet's S3 through its published port.
    pub fn s3_client(&self) -> crate::garage::S3Client {
        crate::garage::S3Client {
            endpoint: self.s3(),
            region: "us-east-1".into(),
            key: self.s3_key.clone(),
            secret: self.s3_secret.clone(),
        }
    }

    /// Uploads a file to `bucket/key` once the stand-in S3 has made its
    /// buckets.
    pub fn upload(&self, local: &Path, path: &str) {
        let s3 = self.s3_client();
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(e) = s3.try_upload(local, path) {
            assert!(Instant::now() < deadline, "S3 never took {path}: {e}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// A service's last log lines (for a failing test's message).
    pub fn logs(&self, service: &str) -> String {
        let out = self.run(&["logs", "--no-color", "--tail", "60", service]);
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Default for Compose {
    fn default() -> Self {
        Compose::new()
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--remove-orphans", "-t", "5"]);
    }
}
