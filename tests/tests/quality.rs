//! Quality end to end, with real cpu-workers: every chunk is measured, a
//! seam under a tight VBV is flagged where CRF's is not, and the outlier
//! guard catches a worker whose encoder damages frames (a test hook that
//! inverts their luma and keeps their count): the chunk is encoded again
//! elsewhere and the job commits clean; damaged again it fails the job and
//! names the chunk; a worker that does it twice is refused work.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spotenc_proto::pb;
use spotenc_tests::media::{make_clip, psnr};
use spotenc_tests::Fleet;

use super::{assert_faithful, ended, job, keyed_clip, submit_id};

const DAMAGE: &str = "SPOTENC_TEST_DAMAGE_CHUNKS";

/// `spotenc status --json` of one job.
fn status_json(fleet: &Fleet, id: &str) -> serde_json::Value {
    let out = fleet.spotenc(&["status", "--json", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

/// 4 s of one still picture, then 4 s of moving, noisy testsrc2 (a cut
/// from still to high motion at 4 s), a keyframe every second.
fn still_then_motion(dir: &Path) -> PathBuf {
    make_clip(
        dir,
        "cut.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=25:duration=1,trim=end_frame=1,\
             loop=loop=99:size=1:start=0,setpts=N/25/TB",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=25:duration=4,noise=alls=40:allf=t",
            "-filter_complex",
            "[0:v][1:v]concat=n=2:v=1,format=yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "10",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
        ],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tight_vbv_flags_the_seam_at_a_cut_and_crf_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let src = still_then_motion(dir.path());
    let fleet = Fleet::builder().cpu_workers(1).start();
    let submit = |name: &str, rate: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec!["--chunk-seconds", "2", "--preset", "veryfast"];
        args.extend_from_slice(rate);
        (submit_id(&fleet, &src, &out, &args), out)
    };
    let crf = submit("crf.mp4", &["--crf", "23"]);
    let vbv = submit(
        "vbv.mp4",
        &[
            "--bitrate",
            "200k",
            "--maxrate",
            "200k",
            "--bufsize",
            "100000",
        ],
    );
    for (id, out) in [&crf, &vbv] {
        let done = ended(&fleet.url, id, Duration::from_secs(120), Some(out)).await;
        assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    }
    let (crf_json, vbv_json) = (status_json(&fleet, &crf.0), status_json(&fleet, &vbv.0));
    for (j, out) in [(&crf_json, &crf.1), (&vbv_json, &vbv.1)] {
        let q = &j["quality"][0];
        assert_eq!(q["chunks_measured"], 4, "{j}");
        // The report's mean is the whole output's: ffmpeg's PSNR of the
        // committed file against the source agrees.
        let whole = psnr(out, &src);
        let ours = q["psnr_db"].as_f64().unwrap();
        assert!(
            (ours - whole).abs() < 0.5,
            "ours {ours}, ffmpeg {whole}: {j}"
        );
        assert!(q["ssim"].as_f64().unwrap() > 0.5, "{j}");
        let bytes = j["cost"]["output_bytes"].as_u64().unwrap();
        assert_eq!(bytes, std::fs::metadata(out).unwrap().len(), "{j}");
        assert!(
            j["cost"]["gb_per_output_hour"].as_f64().unwrap() > 0.0,
            "{j}"
        );
        assert!(
            q["vmaf_unavailable"].as_str().unwrap().contains("libvmaf"),
            "{j}"
        );
    }
    assert_eq!(
        crf_json["quality"][0]["seams"],
        serde_json::json!([]),
        "{crf_json}"
    );
    let seams = vbv_json["quality"][0]["seams"].as_array().unwrap();
    let at_cut = seams
        .iter()
        .find(|s| s["chunk"] == 2)
        .unwrap_or_else(|| panic!("no seam at the cut: {vbv_json}"));
    assert!((at_cut["at_seconds"].as_f64().unwrap() - 4.0).abs() < 0.01);
    assert!(at_cut["step_db"].as_f64().unwrap().abs() > 1.0);
    // The table says where.
    let table = fleet.spotenc(&["status", &vbv.0]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("seam flagged before chunk 2 at 4.00 s"),
        "{text}"
    );

    // The cost model learned throughput from every encode (re-encodes
    // included) of its key (libx264, veryfast, sd), and bits and PSNR from
    // those at a constant quality (the CRF job's).
    let mut encodes = Vec::new();
    for id in [&crf.0, &vbv.0] {
        let j = job(&fleet.url, id).await;
        encodes.push(
            j.tasks
                .iter()
                .filter(|t| t.kind == pb::TaskKind::Encode as i32)
                .flat_map(|t| t.history.iter())
                .filter(|a| a.outcome == "done" || a.outcome == "rejected")
                .count(),
        );
    }
    let (crf_encodes, encodes) = (encodes[0], encodes[0] + encodes[1]);
    let costs = fleet.spotenc(&["costs", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&costs.stdout).unwrap();
    let row = rows
        .iter()
        .find(|r| r["family"] == "libx264" && r["preset"] == "veryfast")
        .unwrap_or_else(|| panic!("no key: {rows:?}"));
    assert_eq!(row["samples"], encodes, "{row}");
    assert_eq!(row["measured"], crf_encodes, "{row}");
    let bpp = row["bits_per_pixel"].as_f64().unwrap();
    let psnr_db = row["psnr_db"].as_f64().unwrap();
    assert!(bpp > 0.0 && bpp < 10.0, "{row}");
    assert!((15.0..60.0).contains(&psnr_db), "{row}");

    // /metrics: every measured chunk in the histogram, the CRF job's
    // re-encodes and the VBV job's seams counted.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let metrics = spotenc_tests::promql::scrape(&fleet.metrics[0]);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let count = "spotenc_chunk_psnr_db_count{codec=\"h264\",identity=\"libx264-h264-8bit\"}";
    assert_eq!(value(count), encodes as f64);
    assert_eq!(value("spotenc_seams_flagged_total"), seams.len() as f64);
    let reencodes = (encodes - 8) as f64;
    assert_eq!(value("spotenc_outlier_reencodes_total"), reencodes);
}

/// Waits until encode chunk `chunk` of the job is done.
async fn chunk_done(url: &str, id: &str, chunk: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = job(url, id).await;
        if j.tasks.iter().any(|t| {
            t.kind == pb::TaskKind::Encode as i32
                && t.chunk == chunk
                && t.state == pb::TaskState::Done as i32
        }) {
            return;
        }
        assert!(Instant::now() < deadline, "chunk {chunk} never done: {j:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The attempts of encode chunk `chunk`, as (worker, outcome).
fn attempts(j: &pb::Job, chunk: u32) -> Vec<(String, String)> {
    j.tasks
        .iter()
        .filter(|t| t.kind == pb::TaskKind::Encode as i32 && t.chunk == chunk)
        .flat_map(|t| t.history.iter())
        .map(|a| (a.worker_id.clone(), a.outcome.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_chunk_is_encoded_again_elsewhere_and_the_job_commits_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (src, mut fleet) = fleet_with_a_damaging_chunk_1(dir.path());
    let (out, url) = (dir.path().join("out.mp4"), fleet.url.clone());
    let done = damaged_by_a_then_b_joins(&mut fleet, (&src, &out), ("b", &[]), &[]).await;
    let id = done.id.clone();
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    // Chunk 1: a's attempt rejected, b's done.
    let tries = attempts(&done, 1);
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert!(
        tries[0].0.starts_with("a-") && tries[0].1 == "rejected",
        "{tries:?}"
    );
    assert!(
        tries[1].0.starts_with("b-") && tries[1].1 == "done",
        "{tries:?}"
    );
    // The output is clean: every frame, and close to the source.
    assert_faithful(&src, &out);
    let whole = psnr(&out, &src);
    assert!(whole > 35.0, "PSNR {whole}");
    // The report names the re-encoded chunk and the worker it came from.
    let j = status_json(&fleet, &id);
    let re = &j["quality"][0]["reencoded"];
    assert_eq!(re.as_array().map(Vec::len), Some(1), "{j}");
    assert_eq!(re[0]["chunk"], 1, "{j}");
    assert!(
        re[0]["worker_id"].as_str().unwrap().starts_with("a-"),
        "{j}"
    );
    assert!(re[0]["reason"].as_str().unwrap().contains("faulty"), "{j}");
    assert!(j["cost"]["wasted_dollars"].as_f64().unwrap() > 0.0, "{j}");
    // One strike is not enough to be refused: a takes the next job.
    let out2 = dir.path().join("out2.mp4");
    fleet.worker("b").kill();
    let id2 = submit_id(&fleet, &src, &out2, &["--chunk-seconds", "4"]);
    let done2 = ended(&url, &id2, Duration::from_secs(120), Some(&out2)).await;
    assert_eq!(
        done2.state,
        pb::JobState::Succeeded as i32,
        "{}",
        done2.error
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunk_damaged_on_every_worker_fails_its_job_under_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let (src, mut fleet) = fleet_with_a_damaging_chunk_1(dir.path());
    let out = dir.path().join("out.mp4");
    let b = ("b", &[(DAMAGE, "1")][..]);
    let done = damaged_by_a_then_b_joins(&mut fleet, (&src, &out), b, &["--min-psnr", "25"]).await;
    assert_eq!(done.state, pb::JobState::Failed as i32, "{done:?}");
    assert!(done.error.contains("chunk 1 of"), "{}", done.error);
    assert!(
        done.error.contains("under the job's floor"),
        "{}",
        done.error
    );
    assert!(!out.exists(), "a failed job leaves no output");
    let tries = attempts(&done, 1);
    assert!(
        tries[0].0.starts_with("a-") && tries[0].1 == "rejected",
        "{tries:?}"
    );
    assert!(tries[1].0.starts_with("b-"), "{tries:?}");
}

/// A 4 s clip in `dir`, and a fleet whose only worker, a, encodes chunk 1
/// of every job damaged.
fn fleet_with_a_damaging_chunk_1(dir: &Path) -> (PathBuf, Fleet) {
    let src = keyed_clip(dir, 4, "320x180");
    let mut fleet = Fleet::builder().cpu_workers(0).start();
    let url = fleet.url.clone();
    fleet.add_worker_env("cpu-worker", "a", &url, "on-demand", &[], &[(DAMAGE, "1")]);
    (src, fleet)
}

/// Worker a (damaging chunk 1) alone makes the job's first chunks; once
/// chunk 1 is done, worker `b` (with `b_env`) joins and encodes it again.
/// Returns the ended job.
async fn damaged_by_a_then_b_joins(
    fleet: &mut Fleet,
    (src, out): (&Path, &Path),
    (b, b_env): (&str, &[(&str, &str)]),
    extra: &[&str],
) -> pb::Job {
    let url = fleet.url.clone();
    let mut args = vec!["--chunk-seconds", "1"];
    args.extend_from_slice(extra);
    let id = submit_id(fleet, src, out, &args);
    chunk_done(&url, &id, 1).await;
    // a waits until b is registered: b is live when the guard judges, so
    // the re-encode avoids a.
    fleet.worker("a").signal("-STOP");
    fleet.add_worker_env("cpu-worker", b, &url, "on-demand", &[], b_env);
    registered(fleet, b).await;
    fleet.worker("a").signal("-CONT");
    ended(&url, &id, Duration::from_secs(120), Some(out)).await
}

/// Waits until a worker named `name` has registered.
async fn registered(fleet: &Fleet, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = fleet.spotenc(&["workers"]);
        let text = String::from_utf8_lossy(&out.stdout);
        if text.lines().any(|l| l.starts_with(&format!("{name}-"))) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never registered: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_damages_two_chunks_is_refused_work_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (src, mut fleet) = fleet_with_a_damaging_chunk_1(dir.path());
    let url = fleet.url.clone();
    // Two jobs, each with a chunk of a's re-encoded better by another.
    for (i, b) in ["b", "c"].iter().enumerate() {
        let out = dir.path().join(format!("out{i}.mp4"));
        let done = damaged_by_a_then_b_joins(&mut fleet, (&src, &out), (b, &[]), &[]).await;
        assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
        assert_faithful(&src, &out);
        fleet.worker(b).kill();
    }
    // a is refused: the next job waits, and a's log says why.
    let out = dir.path().join("out2.mp4");
    let id = submit_id(&fleet, &src, &out, &["--chunk-seconds", "1"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = job(&url, &id).await;
    assert!(
        waiting.tasks.iter().all(|t| t.history.is_empty()),
        "a took work: {waiting:?}"
    );
    let log = std::fs::read_to_string(fleet.data_dir.path().join("a.log")).unwrap();
    assert!(log.contains("takes no more work"), "{log}");
    assert!(log.contains("2 of its chunks"), "{log}");
    assert!(fleet.worker("a").is_running(), "a waits to be stopped");
    // Another worker takes the job.
    fleet.add_worker_with("d", &url, "on-demand");
    let done = ended(&url, &id, Duration::from_secs(120), Some(&out)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
}
