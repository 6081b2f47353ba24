//! A single-node Garage (S3-compatible) server for tests, and object access
//! through the `curl` CLI with SigV4, independent of the code under test.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// A single-node Garage on free loopback ports, killed on drop.
pub struct Garage {
    child: Child,
    pub s3_port: u16,
    _dir: tempfile::TempDir,
}

pub const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
pub const SECRET_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The bucket Garage creates at start.
pub const BUCKET: &str = "spotenc";

impl Garage {
    pub fn start() -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3_port, admin) = (free_port(), free_port(), free_port());
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = {meta:?}\ndata_dir = {data:?}\ndb_engine = \"sqlite\"\nreplication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{SECRET_KEY}\"\n\n[s3_api]\ns3_region = \"garage\"\n\
                 api_bind_addr = \"127.0.0.1:{s3_port}\"\nroot_domain = \".s3.garage.localhost\"\n\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
                meta = dir.path().join("meta"),
                data = dir.path().join("data"),
            ),
        )
        .unwrap();
        let child = Command::new("garage")
            .arg("-c")
            .arg(&config)
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", ACCESS_KEY)
            .env("GARAGE_DEFAULT_SECRET_KEY", SECRET_KEY)
            .env("GARAGE_DEFAULT_BUCKET", BUCKET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("garage is installed (scripts/setup.sh installs it)");
        let health = format!("http://127.0.0.1:{admin}/health");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Command::new("curl")
            .args(["-sf", &health])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "garage did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
        Garage {
            child,
            s3_port,
            _dir: dir,
        }
    }

    /// The S3 endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Uploads a file with the `curl` CLI (SigV4), an independent client.
    pub fn upload(&self, local: &Path, key: &str) {
        self.curl(&["-T", local.to_str().expect("utf-8")], key);
    }

    /// Downloads an object to a file; `false` when there is no such object.
    pub fn download(&self, key: &str, local: &Path) -> bool {
        Command::new("curl")
            .args(["-sf", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .args(["--aws-sigv4", "aws:amz:garage:s3", "--user"])
            .arg(format!("{ACCESS_KEY}:{SECRET_KEY}"))
            .arg("-o")
            .arg(local)
            .arg(format!("{}/{BUCKET}/{key}", self.endpoint()))
            .status()
            .is_ok_and(|s| s.success())
    }

    fn curl(&self, args: &[&str], key: &str) {
        let out = Command::new("curl")
            .args(["-sf", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .args(["--aws-sigv4", "aws:amz:garage:s3", "--user"])
            .arg(format!("{ACCESS_KEY}:{SECRET_KEY}"))
            .args(args)
            .arg(format!("{}/{BUCKET}/{key}", self.endpoint()))
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "curl {args:?} {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
