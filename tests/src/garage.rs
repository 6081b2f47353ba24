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

    /// Object access to the default bucket.
    pub fn client(&self) -> S3Client {
        S3Client {
            endpoint: self.endpoint(),
            region: "garage".into(),
            key: ACCESS_KEY.into(),
            secret: SECRET_KEY.into(),
        }
    }

    /// Uploads a file with the `curl` CLI (SigV4), an independent client.
    pub fn upload(&self, local: &Path, key: &str) {
        self.client().upload(local, &format!("{BUCKET}/{key}"));
    }

    /// Downloads an object to a file; `false` when there is no such object.
    pub fn download(&self, key: &str, local: &Path) -> bool {
        self.client().download(&format!("{BUCKET}/{key}"), local)
    }
}

/// Path-style S3 object access through the `curl` CLI with SigV4.
pub struct S3Client {
    pub endpoint: String,
    pub region: String,
    pub key: String,
    pub secret: String,
}

impl S3Client {
    fn curl(&self, path: &str) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-sf", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{}:s3", self.region))
            .arg("--user")
            .arg(format!("{}:{}", self.key, self.secret))
            .arg(format!("{}/{path}", self.endpoint));
        cmd
    }

    /// Uploads a file to `bucket/key`; curl's error when S3 refused it.
    pub fn try_upload(&self, local: &Path, path: &str) -> Result<(), String> {
        let out = self
            .curl(path)
            .arg("-T")
            .arg(local)
            .output()
            .expect("curl runs");
        match out.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&out.stderr).to_string()),
        }
    }

    /// Uploads a file to `bucket/key`.
    pub fn upload(&self, local: &Path, path: &str) {
        if let Err(e) = self.try_upload(local, path) {
            panic!("curl -T {} {path}: {e}", local.display());
        }
    }

    /// Downloads `bucket/key` to a file; `false` when there is no such object.
    pub fn download(&self, path: &str, local: &Path) -> bool {
        self.curl(path)
            .arg("-o")
            .arg(local)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
