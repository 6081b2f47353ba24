//! A redis-server, or a three-node Redis Cluster, on free loopback ports,
//! killed on drop.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, wait_for_port, Proc};

/// A redis-server on a free loopback port, killed on drop; with AOF
/// persistence, restartable on the same port and data.
pub struct RedisServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    aof: bool,
    proc: Option<Proc>,
}

impl RedisServer {
    /// With AOF persistence (fsync on every write).
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// Without persistence: faster, for tests that never restart it.
    pub fn start_volatile() -> Self {
        Self::start_with(false)
    }

    fn start_with(aof: bool) -> Self {
        let mut r = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().expect("redis dir"),
            aof,
            proc: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn kill(&mut self) {
        self.proc = None;
    }

    /// (Re)starts the server on the same port (and append-only file).
    pub fn restart(&mut self) {
        self.kill();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(self.dir.path());
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/setup.sh installs it)");
        self.proc = Some(Proc {
            child,
            name: "redis".into(),
        });
        wait_for_port(self.port);
    }
}

/// A Redis Cluster of three primaries (no replicas) on free loopback
/// ports, built with `redis-cli --cluster create` as an operator would;
/// every node is killed on drop.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    pub dir: tempfile::TempDir,
    _nodes: Vec<Proc>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("redis cluster dir");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for port in &ports {
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir(&node_dir).expect("node dir");
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .args(["--appendonly", "no", "--cluster-enabled", "yes"])
                .args(["--cluster-node-timeout", "5000", "--dir"])
                .arg(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed (scripts/setup.sh installs it)");
            nodes.push(Proc {
                child,
                name: format!("redis-cluster-{port}"),
            });
        }
        for port in &ports {
            wait_for_port(*port);
        }
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed (scripts/setup.sh installs it)");
        assert!(out.status.success(), "redis-cli --cluster create: {out:?}");
        // Every node must agree the cluster is whole before it serves.
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in &ports {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster never became ok on {port}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        RedisCluster {
            ports,
            dir,
            _nodes: nodes,
        }
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The keys each node holds, by port.
    pub fn keys_by_node(&self) -> Vec<(u16, Vec<String>)> {
        self.ports
            .iter()
            .map(|port| {
                let out = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "--scan"])
                    .output()
                    .expect("redis-cli");
                let keys = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect();
                (*port, keys)
            })
            .collect()
    }
}
