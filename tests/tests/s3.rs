//! Jobs on S3 (a real Garage): `s3://` input and output, two coordinator
//! replicas on Redis, three workers that hold no storage credentials and
//! move objects only through presigned URLs.

use spotenc_tests::garage::Garage;
use spotenc_tests::{Fleet, RedisServer};

use super::{assert_faithful, assert_ok, keyed_clip, video_size};

#[tokio::test(flavor = "multi_thread")]
async fn s3_job_through_two_replicas_and_three_workers() {
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 6, "640x360");
    let garage = Garage::start();
    garage.upload(&src, "in/src.mp4");
    let redis = RedisServer::start();
    let fleet = Fleet::builder()
        .redis(redis.url())
        .coordinators(2)
        .cpu_workers(3)
        .s3(&garage)
        .start();

    let r = fleet.spotenc_at(
        1,
        &[
            "submit",
            "s3://spotenc/in/src.mp4",
            "s3://spotenc/out/movie.mp4",
            "--wait",
            "--chunk-seconds",
            "1",
            "--preset",
            "veryfast",
            "--rendition",
            "s3://spotenc/out/movie-360.mkv,scale=480x270,codec=hevc",
        ],
    );
    assert_ok(&r, "s3 job");
    let job_id = String::from_utf8_lossy(&r.stdout).trim().to_string();

    let out = dir.path().join("movie.mp4");
    assert!(
        garage.download("out/movie.mp4", &out),
        "no object at the final key"
    );
    assert_faithful(&src, &out);
    // The further rendition, from the same chunk tasks, at its own key.
    let small = dir.path().join("movie-360.mkv");
    assert!(
        garage.download("out/movie-360.mkv", &small),
        "no rendition at its key"
    );
    assert_faithful(&src, &small);
    assert_eq!(video_size(&small), (480, 270));
    // Intermediates and temporaries are gone.
    let tmp = dir.path().join("tmp");
    assert!(!garage.download(&format!("out/.movie.mp4.{job_id}.a1.part"), &tmp));
    assert!(!garage.download(&format!("spotenc/jobs/{job_id}/chunk-00000.a1.nut"), &tmp));

    // A bucket outside the allowlist and a missing object fail cleanly.
    let r = fleet.spotenc(&["submit", "s3://elsewhere/a.mp4", "s3://spotenc/out/b.mp4"]);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("not allowed"),
        "{r:?}"
    );
    let r = fleet.spotenc(&[
        "submit",
        "s3://spotenc/in/missing.mp4",
        "s3://spotenc/out/c.mp4",
        "--wait",
    ]);
    assert!(!r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(!garage.download("out/c.mp4", &tmp));
}

// Workers that download the source instead of letting FFmpeg read it with
// HTTP range requests (the default) produce the same result.
#[tokio::test(flavor = "multi_thread")]
async fn s3_job_with_downloaded_sources() {
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 4, "640x360");
    let garage = Garage::start();
    garage.upload(&src, "in/src.mp4");
    let fleet = Fleet::builder()
        .cpu_workers(2)
        .worker_arg("--input-mode=download")
        .s3(&garage)
        .start();
    let r = fleet.spotenc(&[
        "submit",
        "s3://spotenc/in/src.mp4",
        "s3://spotenc/out/downloaded.mkv",
        "--wait",
        "--chunk-seconds",
        "1",
        "--preset",
        "veryfast",
    ]);
    assert_ok(&r, "s3 job with downloaded sources");
    let out = dir.path().join("downloaded.mkv");
    assert!(garage.download("out/downloaded.mkv", &out));
    assert_faithful(&src, &out);
}

// A stitched output above the multipart threshold goes up through presigned
// UploadPart URLs; the coordinator completes the upload from the parts S3
// holds, then commits it.
#[tokio::test(flavor = "multi_thread")]
async fn large_s3_output_goes_up_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 6, "1280x720");
    let garage = Garage::start();
    garage.upload(&src, "in/src.mp4");
    let fleet = Fleet::builder()
        .cpu_workers(2)
        .s3(&garage)
        .s3_multipart(1, 5 << 20)
        .start();
    let r = fleet.spotenc(&[
        "submit",
        "s3://spotenc/in/src.mp4",
        "s3://spotenc/out/big.mp4",
        "--wait",
        "--chunk-seconds",
        "2",
        "--preset",
        "ultrafast",
        "--crf",
        "6",
    ]);
    assert_ok(&r, "s3 job uploaded in parts");
    let out = dir.path().join("big.mp4");
    assert!(garage.download("out/big.mp4", &out));
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(
        size > 5 << 20,
        "output of {size} bytes fits one part; the test needs more"
    );
    println!("output {size} bytes, {} parts", size.div_ceil(5 << 20));
    assert_faithful(&src, &out);
}
