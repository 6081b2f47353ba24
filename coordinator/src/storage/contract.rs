//! The contract every [`ObjectStore`] meets, run against the file store and
//! against a real Garage server started by the test. Presigned URLs are
//! exercised with the `curl` CLI, an independent HTTP client.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spotenc_proto::Error;

use super::object::{FileStore, ObjectStore};
use super::s3::{S3Settings, S3Store};

/// A single-node Garage on free loopback ports, killed on drop.
struct Garage {
    child: Child,
    s3_port: u16,
    _dir: tempfile::TempDir,
}

const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
const SECRET_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Garage {
    fn start() -> Garage {
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
            .env("GARAGE_DEFAULT_BUCKET", "spotenc")
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

    fn store(&self) -> S3Store {
        S3Store::new(&S3Settings {
            endpoint: Some(format!("http://127.0.0.1:{}", self.s3_port)),
            region: "garage".into(),
            bucket: "spotenc".into(),
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
            path_style: true,
        })
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl(args: &[&str]) -> (bool, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sf"])
        .args(args)
        .output()
        .expect("curl runs");
    (out.status.success(), out.stdout)
}

async fn contract(s: Arc<dyn ObjectStore>) {
    // put, get, size, list.
    s.put("jobs/j1/chunk-00000.a1.nut", b"chunk zero".to_vec())
        .await
        .unwrap();
    s.put("jobs/j1/chunk-00001.a1.nut", b"chunk one!".to_vec())
        .await
        .unwrap();
    s.put("jobs/j2/audio.a1.nut", b"aac".to_vec())
        .await
        .unwrap();
    assert_eq!(
        s.get("jobs/j1/chunk-00001.a1.nut").await.unwrap(),
        b"chunk one!"
    );
    assert_eq!(s.size("jobs/j2/audio.a1.nut").await.unwrap(), Some(3));
    assert_eq!(s.size("jobs/j2/missing").await.unwrap(), None);
    assert!(matches!(
        s.get("jobs/j2/missing").await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        s.list("jobs/j1/").await.unwrap(),
        vec!["jobs/j1/chunk-00000.a1.nut", "jobs/j1/chunk-00001.a1.nut"]
    );

    // delete is idempotent.
    s.delete("jobs/j2/audio.a1.nut").await.unwrap();
    s.delete("jobs/j2/audio.a1.nut").await.unwrap();
    assert_eq!(s.size("jobs/j2/audio.a1.nut").await.unwrap(), None);

    // commit replaces the final object whole and removes the temporary.
    s.put("out/movie.mp4", b"old".to_vec()).await.unwrap();
    s.put("out/.movie.mp4.j1.a1.part", b"new and longer".to_vec())
        .await
        .unwrap();
    s.commit("out/.movie.mp4.j1.a1.part", "out/movie.mp4")
        .await
        .unwrap();
    assert_eq!(s.get("out/movie.mp4").await.unwrap(), b"new and longer");
    assert_eq!(s.size("out/.movie.mp4.j1.a1.part").await.unwrap(), None);
    assert!(matches!(
        s.commit("out/.movie.mp4.j1.a1.part", "out/movie.mp4").await,
        Err(Error::NotFound(_))
    ));

    // Presigned URLs work with no credentials.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("upload.bin");
    std::fs::write(&src, b"uploaded through a presigned url").unwrap();
    let put = s
        .presign_put("jobs/j3/chunk.nut", Duration::from_secs(60))
        .await
        .unwrap();
    let (ok, _) = curl(&["-T", src.to_str().unwrap(), &put]);
    assert!(ok, "presigned put failed: {put}");
    assert_eq!(
        s.get("jobs/j3/chunk.nut").await.unwrap(),
        b"uploaded through a presigned url"
    );
    let get = s
        .presign_get("jobs/j3/chunk.nut", Duration::from_secs(60))
        .await
        .unwrap();
    let (ok, body) = curl(&[&get]);
    assert!(ok, "presigned get failed: {get}");
    assert_eq!(body, b"uploaded through a presigned url");
}

#[tokio::test]
async fn file_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(Arc::new(FileStore::new(dir.path()))).await;
}

#[tokio::test]
async fn s3_store_on_garage_meets_the_contract() {
    let garage = Garage::start();
    contract(Arc::new(garage.store())).await;
}

// Objects above the CopyObject limit are committed with UploadPartCopy; a
// small part size exercises that path with 11 MiB.
#[tokio::test]
async fn s3_commit_copies_large_objects_in_parts() {
    let garage = Garage::start();
    let s = garage.store().with_copy_part_bytes(5 << 20);
    let big: Vec<u8> = (0..11u32 << 20).map(|i| (i % 251) as u8).collect();
    s.put("out/.big.mp4.j.a1.part", big.clone()).await.unwrap();
    s.commit("out/.big.mp4.j.a1.part", "out/big.mp4")
        .await
        .unwrap();
    let got = s.get("out/big.mp4").await.unwrap();
    assert_eq!(got.len(), big.len());
    assert!(got == big, "multipart copy changed the bytes");
    assert_eq!(s.size("out/.big.mp4.j.a1.part").await.unwrap(), None);
}

#[tokio::test]
async fn file_store_refuses_keys_that_escape_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::new(dir.path());
    for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", ""] {
        assert!(matches!(s.get(bad).await, Err(Error::Invalid(_))), "{bad}");
    }
}
