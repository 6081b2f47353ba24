//! The contract every [`ObjectStore`] meets, run against the file store and
//! against a real Garage server started by the test. Presigned URLs are
//! exercised with the `curl` CLI, an independent HTTP client.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use spotenc_tests::garage::{Garage, ACCESS_KEY, BUCKET, SECRET_KEY};

use spotenc_proto::Error;

use super::object::{FileStore, ObjectStore};
use super::s3::{S3Settings, S3Store};

/// Settings for the work bucket of a test Garage.
pub(crate) fn garage_settings(g: &Garage) -> S3Settings {
    S3Settings {
        endpoint: Some(g.endpoint()),
        region: "garage".into(),
        bucket: BUCKET.into(),
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        path_style: true,
    }
}

fn store(g: &Garage) -> S3Store {
    S3Store::new(&garage_settings(g))
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
    s.commit(
        "out/.movie.mp4.j1.a1.part",
        "out/movie.mp4",
        &sha(b"new and longer"),
    )
    .await
    .unwrap();
    assert_eq!(s.get("out/movie.mp4").await.unwrap(), b"new and longer");
    // The committed object answers with its checksum (a repeated commit
    // tells it from another object of the same size by it).
    assert_eq!(
        s.sha256("out/movie.mp4").await.unwrap(),
        Some(sha(b"new and longer"))
    );
    assert_eq!(s.sha256("out/none.mp4").await.unwrap(), None);
    assert_eq!(s.size("out/.movie.mp4.j1.a1.part").await.unwrap(), None);
    assert!(matches!(
        s.commit("out/.movie.mp4.j1.a1.part", "out/movie.mp4", "")
            .await,
        Err(Error::NotFound(_))
    ));

    // Keys that need URL-encoding in a copy source commit too (before: a
    // `+`, a space or non-ASCII in the key failed the copy).
    for name in [
        "a+b.mp4",
        "with space.mp4",
        "caf\u{e9} \u{65e5}\u{672c}.mp4",
        "100%.mp4",
    ] {
        let (tmp, fin) = (format!("out/.{name}.j1.a1.part"), format!("out/{name}"));
        s.put(&tmp, name.as_bytes().to_vec()).await.unwrap();
        s.commit(&tmp, &fin, &sha(name.as_bytes()))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.get(&fin).await.unwrap(), name.as_bytes(), "{name}");
        assert_eq!(s.size(&tmp).await.unwrap(), None, "{name}");
    }

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
    contract(Arc::new(store(&garage))).await;
}

// Objects above the CopyObject limit are committed with UploadPartCopy; a
// small part size exercises that path with 11 MiB.
#[tokio::test]
async fn s3_commit_copies_large_objects_in_parts() {
    let garage = Garage::start();
    let s = store(&garage).with_copy_part_bytes(5 << 20);
    let big: Vec<u8> = (0..11u32 << 20).map(|i| (i % 251) as u8).collect();
    for (tmp, fin) in [
        ("out/.big.mp4.j.a1.part", "out/big.mp4"),
        ("out/.big +\u{e9}.mp4.j.a1.part", "out/big +\u{e9}.mp4"),
    ] {
        s.put(tmp, big.clone()).await.unwrap();
        s.commit(tmp, fin, &sha(&big))
            .await
            .unwrap_or_else(|e| panic!("{fin}: {e}"));
        assert_eq!(s.sha256(fin).await.unwrap(), Some(sha(&big)));
        let got = s.get(fin).await.unwrap();
        assert_eq!(got.len(), big.len());
        assert!(got == big, "multipart copy changed the bytes of {fin}");
        assert_eq!(s.size(tmp).await.unwrap(), None);
    }
}

// A stitch uploaded in more parts than one ListParts page holds completes
// whole (before: only the first page was completed, the tail was lost).
#[tokio::test]
async fn s3_completes_uploads_of_more_parts_than_a_page() {
    let garage = Garage::start();
    let s = store(&garage).with_list_parts_page(2);
    let key = "out/.paged.mp4.j.a1.part";
    let upload = s.create_multipart(key).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut whole = Vec::new();
    for n in 1..=5u8 {
        // S3's minimum part is 5 MiB, except the last.
        let len = if n == 5 { 1000 } else { 5 << 20 };
        let part = vec![n; len];
        whole.extend_from_slice(&part);
        let file = dir.path().join(format!("part{n}"));
        std::fs::write(&file, &part).unwrap();
        let url = s
            .presign_upload_part(key, &upload, i32::from(n), Duration::from_secs(60))
            .await
            .unwrap();
        let (ok, _) = curl(&["-T", file.to_str().unwrap(), &url]);
        assert!(ok, "part {n}");
    }
    assert!(s.complete_uploaded_parts(key).await.unwrap());
    let got = s.get(key).await.unwrap();
    assert_eq!(got.len(), whole.len(), "parts completed");
    assert!(got == whole);
}

#[tokio::test]
async fn file_store_refuses_keys_that_escape_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::new(dir.path());
    for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", ""] {
        assert!(matches!(s.get(bad).await, Err(Error::Invalid(_))), "{bad}");
    }
}

fn sha(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
