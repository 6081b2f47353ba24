//! Reliability findings of the security read, each reproduced against the
//! built binaries and a real redis-server: the Redis prefix survives
//! `--redis`, an evicting Redis is refused at start-up, and a multi-rendition
//! commit is all or nothing.

use std::process::Command;
use std::time::{Duration, Instant};

use spotenc_proto::pb;
use spotenc_tests::media::video_clip;
use spotenc_tests::{bin, free_port, Fleet, RedisServer};

use super::{ended, submit_id};

fn redis_keys(port: u16) -> Vec<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--scan"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Before: `--redis URL` replaced the configured `[redis] prefix` with
/// "spotenc", so two tenants sharing a Redis by prefix collided.
#[tokio::test(flavor = "multi_thread")]
async fn the_redis_flag_keeps_the_configured_prefix() {
    let redis = RedisServer::start_volatile();
    let fleet = Fleet::builder()
        .redis(redis.url())
        .config("[redis]\nurl = \"redis://127.0.0.1:1/\"\nprefix = \"tenant-a\"\n")
        .cpu_workers(1)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 2, "320x240");
    let out = dir.path().join("out.mp4");
    let id = submit_id(&fleet, &src, &out, &[]);
    let j = ended(&fleet.url, &id, Duration::from_secs(60), None).await;
    assert_eq!(j.state, pb::JobState::Succeeded as i32, "{j:?}");
    let keys = redis_keys(redis.port);
    assert!(!keys.is_empty());
    let stray: Vec<&String> = keys
        .iter()
        .filter(|k| !k.starts_with("tenant-a:"))
        .collect();
    assert!(
        stray.is_empty(),
        "keys outside the configured prefix: {stray:?}"
    );
}

/// Before: a Redis with `maxmemory-policy allkeys-lru` was accepted, and
/// under memory pressure it would evict job and lease records. Now the
/// coordinator refuses to start and names the policy.
#[test]
fn an_evicting_redis_is_refused_at_start_up() {
    let redis = RedisServer::start_volatile();
    let set = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "CONFIG",
            "SET",
            "maxmemory-policy",
            "allkeys-lru",
        ])
        .output()
        .unwrap();
    assert!(set.status.success());
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin("spotenc"))
        .args([
            "coordinator",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--redis",
            &redis.url(),
        ])
        .arg("--data-dir")
        .arg(data.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().ok();
            panic!("the coordinator started on an evicting Redis");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("maxmemory-policy allkeys-lru") && stderr.contains("noeviction"),
        "{stderr}"
    );
}

/// Before: with rendition `b.mp4` turned into a directory after submission,
/// the job failed but `a.mp4` had already been replaced. Now every target is
/// checked before the first rename: the job fails naming `b.mp4`, the old
/// `a.mp4` is untouched, and no temporaries are left.
#[tokio::test(flavor = "multi_thread")]
async fn a_multi_rendition_commit_replaces_all_outputs_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 2, "320x240");
    let outputs = dir.path().join("o");
    std::fs::create_dir(&outputs).unwrap();
    let a = outputs.join("a.mp4");
    let b = outputs.join("b.mp4");
    std::fs::write(&a, b"the old a.mp4").unwrap();
    let fleet = Fleet::builder().cpu_workers(1).start();
    let id = submit_id(
        &fleet,
        &src,
        &a,
        &["--rendition", &format!("{},scale=160x120", b.display())],
    );
    std::fs::create_dir(&b).unwrap();
    let j = ended(&fleet.url, &id, Duration::from_secs(60), None).await;
    assert_eq!(j.state, pb::JobState::Failed as i32, "{j:?}");
    assert!(
        std::fs::read(&a).unwrap() == b"the old a.mp4",
        "a.mp4 was replaced by a job that failed ({})",
        j.error
    );
    assert!(j.error.contains("b.mp4 is a directory"), "{}", j.error);
    let left: Vec<String> = std::fs::read_dir(&outputs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "a.mp4" && n != "b.mp4")
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
}
