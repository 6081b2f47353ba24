//! One slot: lease a task, run its media work on a blocking thread with
//! heartbeats, report the outcome; on an interruption notice, hand the task
//! back with its log unless it will finish well inside the deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use spotenc_media::{audio, encode, probe, stitch, Control};
use spotenc_proto::client::WorkerClient;
use spotenc_proto::domain::{GpuTelemetry, LeasedTask, TaskOutcome, Work};
use spotenc_proto::pb;
use tracing::{error, info, warn};

use crate::hardware::{family_of, hardware_for};
use crate::Result;

/// How long one LeaseTask call waits for work.
const LEASE_WAIT_MS: u32 = 5_000;

/// Time kept for uploading and reporting a task finished after a notice.
const FINISH_MARGIN: Duration = Duration::from_secs(5);

/// How long media work that was called off may take to stop before the
/// slot moves on without it.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// How long before the deadline a task that was expected to finish is
/// called off and handed back after all (at most half the window).
const HAND_BACK_MARGIN: Duration = Duration::from_secs(3);

/// What the slots are allowed to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mode {
    Run,
    /// A rebalance recommendation: finish what is running, lease nothing.
    Drain,
    /// The instance goes away at `deadline`.
    Interrupted {
        reason: String,
        deadline: Instant,
    },
}

/// Whether a task `done` frames into `total` after `elapsed` will finish
/// well inside `left`: twice the estimate plus [`FINISH_MARGIN`]. A task
/// with no progress yet, or no frame count, never fits.
pub(crate) fn fits(done: u64, total: Option<u64>, elapsed: Duration, left: Duration) -> bool {
    let Some(total) = total else { return false };
    if done == 0 || elapsed.is_zero() {
        return false;
    }
    let rate = done as f64 / elapsed.as_secs_f64();
    let remaining = total.saturating_sub(done) as f64 / rate;
    remaining * 2.0 + FINISH_MARGIN.as_secs_f64() <= left.as_secs_f64()
}

/// Whether a completion fits the gRPC message limit; else what to say.
fn fits_in_a_message(req: &pb::CompleteTaskRequest) -> Result<(), String> {
    use prost::Message;
    let len = req.encoded_len();
    if len <= spotenc_proto::MAX_MESSAGE_BYTES {
        return Ok(());
    }
    let what = match &req.result {
        Some(pb::complete_task_request::Result::Probe(p)) => format!(
            "the probe result ({} keyframes)",
            p.video.as_ref().map_or(0, |v| v.keyframes.len())
        ),
        _ => "the task result".to_string(),
    };
    Err(format!(
        "{what} is {:.1} MiB, over the {} MiB message limit",
        len as f64 / f64::from(1 << 20),
        spotenc_proto::MAX_MESSAGE_BYTES >> 20
    ))
}

/// The frames a task produces, when it has a frame count.
fn frames_of(work: &Work) -> Option<u64> {
    match work {
        Work::Encode(e) => Some(e.chunk.frames()),
        Work::Stitch(s) => Some(s.expected_frames),
        Work::Probe(_) | Work::Audio(_) => None,
    }
}

pub(crate) struct Slot {
    pub client: WorkerClient,
    /// For presigned object URLs: downloads (with a read timeout) and
    /// uploads (without: see `run`'s client set-up).
    pub http: reqwest::Client,
    pub upload_http: reqwest::Client,
    pub stream_sources: bool,
    pub worker_id: String,
    pub heartbeat: Duration,
    /// No progress for this long fails a task as stalled.
    pub stall: Duration,
    pub mode: tokio::sync::watch::Receiver<Mode>,
    pub slot: u32,
    /// The encoder this slot uses.
    pub hw: spotenc_media::encode::Hardware,
    /// The latest GPU telemetry, sent with every heartbeat.
    pub gpus: Arc<std::sync::RwLock<Vec<GpuTelemetry>>>,
    /// Hardware families not offered now (shared by the slots).
    pub withdrawn: Arc<crate::hardware::Withdrawn>,
    pub gate: Option<crate::LeaseGate>,
    /// Encoder sessions held by each slot, for the gate.
    pub sessions: Arc<std::sync::Mutex<Vec<u32>>>,
}

/// The test hook that makes this worker encode damaged frames (the same
/// count and size, their luma inverted) for the chunks it names: `all`, or
/// chunk indices separated by commas. For tests of the outlier guard; unset
/// in production.
pub const DAMAGE_HOOK: &str = "SPOTENC_TEST_DAMAGE_CHUNKS";

fn damage_hook(chunk: u32) -> bool {
    std::env::var(DAMAGE_HOOK).is_ok_and(|v| {
        v.split(',')
            .any(|c| c.trim() == "all" || c.trim().parse() == Ok(chunk))
    })
}

/// Runs the media work of a task. Blocking.
fn run_work(
    work: &Work,
    ctl: &Control,
    hw: spotenc_media::encode::Hardware,
) -> spotenc_media::Result<TaskOutcome> {
    Ok(match work {
        Work::Probe(p) => TaskOutcome::Probe(probe::probe_controlled(&p.input, ctl)?),
        Work::Encode(e) => TaskOutcome::Encode(encode::encode_chunk_on(e, ctl, hw)?),
        Work::Audio(a) => TaskOutcome::Audio(audio::make_audio(a, ctl)?),
        Work::Stitch(s) => TaskOutcome::Stitch(stitch::stitch(s, ctl)?),
    })
}

/// Why a phase of a task was cut short.
enum Stop {
    /// The coordinator says the lease is gone (cancelled, expired, moved).
    Lost,
    /// An interruption notice, or the worker is going away: hand it back.
    HandBack,
    /// No progress for the stall limit: fail it, retryably, with this.
    Stalled(String),
}

/// The three phases of a task.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Staging,
    Running,
    Uploading,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Staging => "staging inputs",
            Phase::Running => "running the media work",
            Phase::Uploading => "uploading outputs",
        }
    }
}

/// One task's progress across its phases.
struct Watch {
    task_id: String,
    attempt: u32,
    ctl: Arc<Control>,
    /// Bytes downloaded and uploaded.
    moved: Arc<AtomicU64>,
    /// When the media work began.
    started: Instant,
    /// Frames the task produces, when known.
    total: Option<u64>,
    /// The last progress reading, and when it last changed.
    last: u64,
    moved_at: Instant,
    /// After a notice: when to give up and hand the task back.
    finish_by: Option<Instant>,
}

impl Watch {
    fn new(task_id: &str, attempt: u32, total: Option<u64>) -> Watch {
        let now = Instant::now();
        Watch {
            task_id: task_id.to_string(),
            attempt,
            ctl: Arc::new(Control::default()),
            moved: Arc::default(),
            started: now,
            total,
            last: 0,
            moved_at: now,
            finish_by: None,
        }
    }

    /// The stall error once nothing (frames, packets, bytes) has moved for
    /// `limit`.
    fn stalled(&mut self, limit: Duration, phase: Phase) -> Option<String> {
        let frames = self.ctl.frames_done.load(Ordering::Relaxed);
        let bytes = self.moved.load(Ordering::Relaxed);
        let now = frames + bytes + self.ctl.progress.load(Ordering::Relaxed);
        if now != self.last {
            self.last = now;
            self.moved_at = Instant::now();
            return None;
        }
        let idle = self.moved_at.elapsed();
        (idle >= limit).then(|| {
            format!(
                "stalled: no progress for {} s while {} (last progress: {frames} frames \
                 encoded, {bytes} bytes transferred)",
                idle.as_secs(),
                phase.name()
            )
        })
    }
}

impl Slot {
    pub async fn run(mut self) -> Result<()> {
        loop {
            if *self.mode.borrow_and_update() != Mode::Run {
                return Ok(());
            }
            if let Some(gate) = &self.gate {
                let open = gate(
                    self.slot,
                    &self.gpus.read().expect("telemetry lock"),
                    &self.sessions.lock().expect("sessions lock"),
                );
                if !open {
                    // The GPU is busy enough: ask again shortly.
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = self.mode.changed() => {}
                    }
                    continue;
                }
            }
            let req = pb::LeaseTaskRequest {
                worker_id: self.worker_id.clone(),
                wait_ms: LEASE_WAIT_MS,
                gpus: self.telemetry(),
                withdrawn: self.withdrawn.active(),
            };
            let mut client = self.client.clone();
            let resp = tokio::select! {
                r = client.lease_task(req) => r,
                r = self.mode.changed() => match r {
                    Ok(()) => continue,
                    Err(_) => return Ok(()),
                },
            };
            match resp {
                Ok(r) => {
                    if let Some(task) = r.into_inner().task {
                        // One encoder session per rendition of an encode.
                        let n = match &task.work {
                            Some(pb::task::Work::Encode(e)) => 1 + e.renditions.len() as u32,
                            _ => 0,
                        };
                        self.set_sessions(n);
                        let busy = metrics::gauge!("spotenc_worker_slots_busy");
                        busy.increment(1.0);
                        let started = std::time::Instant::now();
                        let outcome = self.execute(task).await;
                        busy.decrement(1.0);
                        self.set_sessions(0);
                        metrics::counter!("spotenc_worker_tasks_total", "outcome" => outcome)
                            .increment(1);
                        metrics::histogram!("spotenc_worker_task_seconds")
                            .record(started.elapsed().as_secs_f64());
                    }
                }
                Err(status) if status.code() == tonic::Code::NotFound => {
                    return Err(spotenc_proto::Error::from_status(&status).into());
                }
                Err(status) if status.code() == tonic::Code::PermissionDenied => {
                    // Refused for good (too many chunks rejected by the
                    // quality checks, or a token without the worker role):
                    // say why, take no more work, and wait to be stopped.
                    error!(slot = self.slot, reason = %status.message(), "the coordinator refuses this worker work; it takes none until restarted");
                    metrics::gauge!("spotenc_worker_refused").set(1.0);
                    while *self.mode.borrow_and_update() == Mode::Run {
                        if self.mode.changed().await.is_err() {
                            break;
                        }
                    }
                    return Ok(());
                }
                Err(status) => {
                    warn!(slot = self.slot, error = %status.message(), "lease failed, retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Runs one leased task to its end: stage its inputs, run the media
    /// work, upload its outputs, each phase under heartbeats, the notice
    /// rules and the stall watchdog. Returns how it ended (completed,
    /// failed, stalled, interrupted or lost).
    async fn execute(&mut self, task: pb::Task) -> &'static str {
        let (task_id, attempt) = (task.task_id.clone(), task.attempt);
        let task = match LeasedTask::try_from(task) {
            Ok(t) => t,
            Err(e) => {
                let msg = format!("unreadable task: {e}");
                self.fail(&task_id, attempt, &msg, false, String::new())
                    .await;
                return "failed";
            }
        };
        // A chunk is encoded with its lease's identities or not at all.
        let hw = match &task.work {
            Work::Encode(e) => match hardware_for(e, self.hw, &self.withdrawn.active()) {
                Ok(hw) => hw,
                Err(reason) => {
                    // This worker reported the family but a slot cannot run
                    // it: stop offering it, or the chunk comes straight back.
                    if let Some(first) = e.identities.first().filter(|i| i.hardware()) {
                        self.withdrawn.withdraw(&first.family);
                    }
                    self.give_back(&task_id, attempt, &reason, String::new())
                        .await;
                    return "handed back";
                }
            },
            _ => self.hw,
        };
        info!(task = %task_id, attempt, slot = self.slot, "task started");
        let mut w = Watch::new(&task_id, attempt, frames_of(&task.work));
        if let Work::Encode(e) = &task.work {
            if damage_hook(e.chunk.index) {
                warn!(task = %task_id, "test hook {DAMAGE_HOOK}: encoding this chunk's frames damaged");
                w.ctl.damage_frames.store(true, Ordering::Relaxed);
            }
        }
        let http = self.http.clone();
        let moved = w.moved.clone();
        let stage = crate::remote::stage(&http, task.work, self.stream_sources, &moved);
        let staged = match self.supervise(stage, &mut w, Phase::Staging).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.fail(&task_id, attempt, &e.message, e.retryable, String::new())
                    .await;
                return "failed";
            }
            Err(stop) => return self.stopped(stop, &w, String::new()).await,
        };
        let work = staged.work.clone();
        let ctl_run = w.ctl.clone();
        let mut handle = tokio::task::spawn_blocking(move || {
            spotenc_media::capture_log(|| run_work(&work, &ctl_run, hw))
        });
        w.started = Instant::now();
        let (ending, log) = match self.supervise(&mut handle, &mut w, Phase::Running).await {
            Ok(Ok((r, log))) => (r, log),
            Ok(Err(e)) => {
                let msg = format!("worker panicked: {e}");
                self.fail(&task_id, attempt, &msg, true, String::new())
                    .await;
                return "failed";
            }
            Err(stop) => {
                // FFmpeg sees the flag between packets and in blocked reads.
                w.ctl.cancel.store(true, Ordering::Relaxed);
                let log = match tokio::time::timeout(CANCEL_GRACE, &mut handle).await {
                    Ok(Ok((_, log))) => log,
                    Ok(Err(_)) => String::new(),
                    Err(_) => {
                        warn!(task = %task_id, attempt, "media work did not stop within {CANCEL_GRACE:?} of being called off; leaving its thread behind");
                        String::new()
                    }
                };
                return self.stopped(stop, &w, log).await;
            }
        };
        match ending {
            Ok(outcome) => {
                let upload_http = self.upload_http.clone();
                let upload = staged.upload(&upload_http, &moved);
                match self.supervise(upload, &mut w, Phase::Uploading).await {
                    Ok(Ok(())) => {
                        self.complete(&task_id, attempt, outcome).await;
                        "completed"
                    }
                    Ok(Err(e)) => {
                        self.fail(&task_id, attempt, &e.message, e.retryable, log)
                            .await;
                        "failed"
                    }
                    Err(stop) => self.stopped(stop, &w, log).await,
                }
            }
            Err(spotenc_media::Error::Encoder { encoder, reason }) if family_of(hw).is_some() => {
                // The hardware failed: another family would not stitch with
                // the rendition's other chunks, so the chunk goes back and
                // this worker stops offering the family for a while.
                let family = family_of(hw).expect("checked");
                self.withdrawn.withdraw(family);
                let reason = format!(
                    "{encoder} failed ({reason}); handed back, and {family} is withdrawn on this worker until a retry"
                );
                warn!(task = %task_id, attempt, "{reason}");
                self.give_back(&task_id, attempt, &reason, log).await;
                "handed back"
            }
            Err(e) => {
                self.fail(&task_id, attempt, &e.to_string(), e.is_retryable(), log)
                    .await;
                "failed"
            }
        }
    }

    /// Drives `fut` (one phase of a task) while heartbeating its lease,
    /// acting on notices and watching for stalls. `Err` says why the phase
    /// was cut short; `fut` is dropped then (a transfer stops at once).
    async fn supervise<F: std::future::Future>(
        &mut self,
        fut: F,
        w: &mut Watch,
        phase: Phase,
    ) -> Result<F::Output, Stop> {
        tokio::pin!(fut);
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.tick().await;
        // A notice may have come in before this phase began.
        self.mode.mark_changed();
        loop {
            tokio::select! {
                out = &mut fut => return Ok(out),
                _ = tick.tick() => {
                    let frames = w.ctl.frames_done.load(Ordering::Relaxed);
                    if !self.heartbeat(&w.task_id, w.attempt, frames).await {
                        return Err(Stop::Lost);
                    }
                    if let Some(msg) = w.stalled(self.stall, phase) {
                        return Err(Stop::Stalled(msg));
                    }
                }
                changed = self.mode.changed(), if w.finish_by.is_none() => {
                    let mode = self.mode.borrow_and_update().clone();
                    let Mode::Interrupted { deadline, .. } = mode else {
                        if changed.is_err() {
                            return Err(Stop::HandBack);
                        }
                        continue;
                    };
                    let now = Instant::now();
                    let left = deadline.saturating_duration_since(now);
                    let done = w.ctl.frames_done.load(Ordering::Relaxed);
                    let keep = match phase {
                        // Nothing done yet that another worker would redo.
                        Phase::Staging => false,
                        Phase::Running => fits(done, w.total, now - w.started, left),
                        // The work is done: send it if the deadline allows.
                        Phase::Uploading => true,
                    };
                    if !keep {
                        return Err(Stop::HandBack);
                    }
                    info!(task = %w.task_id, attempt = w.attempt, phase = phase.name(), done, total = ?w.total, ?left, "notice: finishing, the rest should fit inside the deadline");
                    w.finish_by = Some(deadline - HAND_BACK_MARGIN.min(left / 2));
                }
                _ = tokio::time::sleep_until(w.finish_by.unwrap_or_else(Instant::now)), if w.finish_by.is_some() => {
                    warn!(task = %w.task_id, attempt = w.attempt, phase = phase.name(), "did not finish in time after the notice; handing it back");
                    return Err(Stop::HandBack);
                }
            }
        }
    }

    /// Reports a task whose phase was cut short.
    async fn stopped(&self, stop: Stop, w: &Watch, log: String) -> &'static str {
        let (task_id, attempt) = (w.task_id.as_str(), w.attempt);
        match stop {
            Stop::Lost => {
                warn!(task = %task_id, attempt, "lease lost; result dropped");
                "lost"
            }
            Stop::Stalled(msg) => {
                self.fail(task_id, attempt, &msg, true, log).await;
                "stalled"
            }
            Stop::HandBack => {
                let reason = match &*self.mode.borrow() {
                    Mode::Interrupted { reason, .. } => reason.clone(),
                    Mode::Run | Mode::Drain => "worker shutting down".to_string(),
                };
                let frames = w.ctl.frames_done.load(Ordering::Relaxed);
                let reason = format!("{reason} ({frames} frames in)");
                self.hand_back(task_id, attempt, &reason, log).await;
                "interrupted"
            }
        }
    }

    fn set_sessions(&self, n: u32) {
        if let Some(s) = self
            .sessions
            .lock()
            .expect("sessions lock")
            .get_mut(self.slot as usize)
        {
            *s = n;
        }
    }

    /// The latest GPU telemetry, for the coordinator.
    fn telemetry(&self) -> Vec<pb::GpuTelemetry> {
        self.gpus
            .read()
            .expect("telemetry lock")
            .iter()
            .cloned()
            .map(Into::into)
            .collect()
    }

    /// `false` when the coordinator says the lease is gone.
    async fn heartbeat(&self, task_id: &str, attempt: u32, frames_done: u64) -> bool {
        let req = pb::HeartbeatRequest {
            worker_id: self.worker_id.clone(),
            task_id: task_id.to_string(),
            attempt,
            frames_done,
            gpus: self.telemetry(),
        };
        match self.client.clone().heartbeat(req).await {
            Ok(r) => r.into_inner().keep_going,
            // The coordinator may be restarting; the lease TTL covers a gap.
            Err(status) => {
                warn!(task = %task_id, error = %status.message(), "heartbeat failed");
                true
            }
        }
    }

    async fn complete(&self, task_id: &str, attempt: u32, outcome: TaskOutcome) {
        let req = pb::CompleteTaskRequest {
            worker_id: self.worker_id.clone(),
            task_id: task_id.to_string(),
            attempt,
            result: Some(outcome.into()),
        };
        // Beyond the coordinator's message limit the call would be refused
        // (OutOfRange) and the task rerun after each lease expiry: fail it
        // at once, saying why.
        if let Err(msg) = fits_in_a_message(&req) {
            self.fail(task_id, attempt, &msg, false, String::new())
                .await;
            return;
        }
        for _ in 0..5 {
            match self.client.clone().complete_task(req.clone()).await {
                Ok(_) => {
                    info!(task = %task_id, attempt, "task completed");
                    return;
                }
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(s) => {
                    warn!(task = %task_id, attempt, error = %s.message(), "completion refused");
                    return;
                }
            }
        }
    }

    async fn fail(&self, task_id: &str, attempt: u32, error: &str, retryable: bool, log: String) {
        // Presigned URLs carry credentials in their query: never log them.
        let error = &*spotenc_proto::redact::redact_urls(error);
        warn!(task = %task_id, attempt, retryable, error, "task failed");
        let req = pb::FailTaskRequest {
            worker_id: self.worker_id.clone(),
            task_id: task_id.to_string(),
            attempt,
            error: error.to_string(),
            retryable,
            log,
        };
        if let Err(s) = self.client.clone().fail_task(req).await {
            warn!(task = %task_id, error = %s.message(), "failure not recorded");
        }
    }

    /// Hands a task back after a notice or at shutdown.
    async fn hand_back(&self, task_id: &str, attempt: u32, reason: &str, log: String) {
        self.hand_back_as(task_id, attempt, reason, log, false)
            .await
    }

    /// Hands back a chunk this worker cannot encode with its lease's
    /// identities: not an interruption, nothing is counted.
    async fn give_back(&self, task_id: &str, attempt: u32, reason: &str, log: String) {
        self.hand_back_as(task_id, attempt, reason, log, true).await
    }

    async fn hand_back_as(
        &self,
        task_id: &str,
        attempt: u32,
        reason: &str,
        log: String,
        encoder_unavailable: bool,
    ) {
        let req = pb::HandBackTaskRequest {
            worker_id: self.worker_id.clone(),
            task_id: task_id.to_string(),
            attempt,
            reason: reason.to_string(),
            log,
            encoder_unavailable,
        };
        match self.client.clone().hand_back_task(req).await {
            Ok(_) => info!(task = %task_id, attempt, reason, "task handed back"),
            Err(s) => warn!(task = %task_id, error = %s.message(), "hand-back refused"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_over_the_message_limit_is_named_not_sent() {
        let probe = |keyframes: u64| pb::CompleteTaskRequest {
            result: Some(pb::complete_task_request::Result::Probe(pb::ProbeResult {
                video: Some(pb::VideoStreamInfo {
                    keyframes: (0..keyframes)
                        .map(|i| pb::Keyframe {
                            frame: i,
                            pts: i as i64 * 1001,
                        })
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert!(fits_in_a_message(&probe(500_000)).is_ok());
        let e = fits_in_a_message(&probe(7_000_000)).unwrap_err();
        assert!(
            e.contains("probe result (7000000 keyframes)") && e.contains("64 MiB"),
            "{e}"
        );
    }

    #[test]
    fn only_tasks_that_finish_well_inside_the_deadline_are_kept() {
        let s = Duration::from_secs;
        // 100 of 200 frames in 10 s: 10 s to go, 25 s needed with margin.
        assert!(fits(100, Some(200), s(10), s(25)));
        assert!(!fits(100, Some(200), s(10), s(24)));
        // No progress yet, or nothing to count: hand it back.
        assert!(!fits(0, Some(200), s(10), s(90)));
        assert!(!fits(10, None, s(1), s(90)));
    }
}
