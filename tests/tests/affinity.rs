//! Encoder affinity end to end: real cpu-workers whose operator settings
//! (`--x264-params`) give their chunks different parameter sets share one
//! queue; every job's chunks come from one identity, so every output
//! stitches and decodes. When the only worker of a pinned identity dies,
//! the job restarts under the other and records the waste.

use std::path::Path;
use std::time::{Duration, Instant};

use spotenc_proto::pb;
use spotenc_tests::media::video_stream;
use spotenc_tests::Fleet;

use super::{assert_faithful, ended, job, keyed_clip, submit_id};

/// Two identities of libx264 whose SPS differ: A keeps the preset's three
/// B-frames (reorder depth 2), B allows one (reorder depth 1).
const A: &[&str] = &["--x264-params", "ref=1"];
const B: &[&str] = &["--x264-params", "ref=3:bframes=1"];

/// The frame reorder depth a file's video SPS declares (ffprobe's
/// `has_b_frames`): "2" for A's chunks, "1" for B's.
fn reorder(path: &Path) -> String {
    video_stream(path, "has_b_frames")
}

/// Every done encode attempt of `j` names the job's pinned identities.
fn one_identity_per_rendition(j: &pb::Job) {
    assert_eq!(j.identities.len(), 2, "{:?}", j.identities);
    for t in j
        .tasks
        .iter()
        .filter(|t| t.kind == pb::TaskKind::Encode as i32)
    {
        let done: Vec<_> = t.history.iter().filter(|a| a.outcome == "done").collect();
        assert_eq!(done.len(), 1, "{t:?}");
        assert_eq!(done[0].identities, j.identities, "{}", t.task_id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_of_two_identities_share_a_queue_and_every_job_stitches() {
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 4, "640x360");
    let mut fleet = Fleet::builder().cpu_workers(0).start();
    let url = fleet.url.clone();
    fleet.add_worker_args("a", &url, "on-demand", A);
    fleet.add_worker_args("b", &url, "on-demand", B);
    let mut jobs = Vec::new();
    for i in 0..4 {
        let out = dir.path().join(format!("out-{i}.mp4"));
        let r = dir.path().join(format!("out-{i}-small.mkv"));
        let id = submit_id(
            &fleet,
            &src,
            &out,
            &[
                "--chunk-seconds",
                "1",
                "--preset",
                "veryfast",
                "--rendition",
                &format!("{},scale=320x180", r.display()),
            ],
        );
        jobs.push((id, out, r));
    }
    let mut made_by = std::collections::BTreeSet::new();
    for (id, out, r) in &jobs {
        let done = ended(&url, id, Duration::from_secs(180), Some(out)).await;
        assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
        one_identity_per_rendition(&done);
        let name = &done.identities[0];
        assert!(name.starts_with("libx264-h264-8bit+"), "{name}");
        made_by.insert(name.clone());
        // The output's SPS is the pinned worker's.
        let workers: Vec<&str> = done
            .tasks
            .iter()
            .filter(|t| t.kind == pb::TaskKind::Encode as i32)
            .flat_map(|t| t.history.iter().map(|a| a.worker_id.as_str()))
            .collect();
        let want = if workers[0].starts_with("a-") {
            "2"
        } else {
            "1"
        };
        for path in [out, r] {
            assert_faithful(&src, path);
            assert_eq!(reorder(path), want, "{}", path.display());
        }
    }
    println!("identities that made the jobs: {made_by:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_identity_died_restarts_under_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 8, "1280x720");
    let out = dir.path().join("out.mp4");
    let r = dir.path().join("out-small.mp4");
    let mut fleet = Fleet::builder()
        .cpu_workers(0)
        .lease_ttl_ms(2_000)
        .config("[placement]\naffinity_wait_seconds = 2\n")
        .start();
    let url = fleet.url.clone();
    fleet.add_worker_args("a", &url, "on-demand", A);
    let id = submit_id(
        &fleet,
        &src,
        &out,
        &[
            "--chunk-seconds",
            "1",
            "--preset",
            "slow",
            "--rendition",
            &format!("{},scale=640x360", r.display()),
        ],
    );
    // Once a has finished a chunk and is in the next one, it dies.
    let deadline = Instant::now() + Duration::from_secs(60);
    let pinned = loop {
        let j = job(&url, &id).await;
        let done = j
            .tasks
            .iter()
            .filter(|t| {
                t.kind == pb::TaskKind::Encode as i32 && t.state == pb::TaskState::Done as i32
            })
            .count();
        let leased = j.tasks.iter().any(|t| {
            t.kind == pb::TaskKind::Encode as i32 && t.state == pb::TaskState::Leased as i32
        });
        if done >= 1 && leased {
            break j.identities;
        }
        assert!(Instant::now() < deadline, "a never got going: {j:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    fleet.worker("a").kill();
    fleet.add_worker_args("b", &url, "on-demand", B);

    let done = ended(&url, &id, Duration::from_secs(180), Some(&out)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    assert_ne!(
        done.identities, pinned,
        "still pinned to the dead worker's identity"
    );
    one_identity_per_rendition(&done);
    assert_eq!(done.restarts.len(), 1, "{:?}", done.restarts);
    assert!(
        done.restarts[0].contains(&pinned[0]) && done.restarts[0].contains("discarding"),
        "{}",
        done.restarts[0]
    );
    // What a made is discarded and counted as waste.
    let discarded = done
        .tasks
        .iter()
        .flat_map(|t| &t.history)
        .filter(|a| a.outcome == "discarded")
        .count();
    assert!(discarded >= 1, "{done:?}");
    for path in [&out, &r] {
        assert_faithful(&src, path);
        assert_eq!(reorder(path), "1", "{} is not all b's", path.display());
    }
    // `spotenc status` says which identity made it and why it restarted.
    let status = fleet.spotenc(&["status", &id]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("encoded by: {}", done.identities[0]))
            && text.contains("restarted: no live worker encodes with"),
        "{text}"
    );
}
