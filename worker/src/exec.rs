//! One slot: lease a task, run its media work on a blocking thread with
//! heartbeats, report the outcome.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use spotenc_media::{audio, encode, probe, stitch, Control};
use spotenc_proto::client::WorkerClient;
use spotenc_proto::domain::{LeasedTask, TaskOutcome, Work};
use spotenc_proto::pb;
use tracing::{info, warn};

use crate::Result;

/// How long one LeaseTask call waits for work.
const LEASE_WAIT_MS: u32 = 5_000;

pub(crate) struct Slot {
    pub client: WorkerClient,
    /// For presigned object URLs.
    pub http: reqwest::Client,
    pub stream_sources: bool,
    pub worker_id: String,
    pub heartbeat: Duration,
    pub stop: tokio::sync::watch::Receiver<bool>,
    pub slot: u32,
}

/// Runs the media work of a task. Blocking.
fn run_work(work: &Work, ctl: &Control) -> spotenc_media::Result<TaskOutcome> {
    Ok(match work {
        Work::Probe(p) => TaskOutcome::Probe(probe::probe(&p.input)?),
        Work::Encode(e) => TaskOutcome::Encode(encode::encode_chunk(e, ctl)?),
        Work::Audio(a) => TaskOutcome::Audio(audio::make_audio(a, ctl)?),
        Work::Stitch(s) => TaskOutcome::Stitch(stitch::stitch(s, ctl)?),
    })
}

enum Ending {
    Finished(spotenc_media::Result<TaskOutcome>),
    Panicked(String),
}

impl Slot {
    pub async fn run(mut self) -> Result<()> {
        loop {
            if *self.stop.borrow() {
                return Ok(());
            }
            let req = pb::LeaseTaskRequest {
                worker_id: self.worker_id.clone(),
                wait_ms: LEASE_WAIT_MS,
            };
            let mut client = self.client.clone();
            let resp = tokio::select! {
                r = client.lease_task(req) => r,
                _ = self.stop.changed() => return Ok(()),
            };
            match resp {
                Ok(r) => {
                    if let Some(task) = r.into_inner().task {
                        self.execute(task).await;
                    }
                }
                Err(status) if status.code() == tonic::Code::NotFound => {
                    return Err(spotenc_proto::Error::from_status(&status).into());
                }
                Err(status) => {
                    warn!(slot = self.slot, error = %status.message(), "lease failed, retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn execute(&mut self, task: pb::Task) {
        let (task_id, attempt) = (task.task_id.clone(), task.attempt);
        let task = match LeasedTask::try_from(task) {
            Ok(t) => t,
            Err(e) => {
                self.fail(&task_id, attempt, &format!("unreadable task: {e}"), false)
                    .await;
                return;
            }
        };
        info!(task = %task_id, attempt, slot = self.slot, "task started");
        let staged =
            match crate::remote::stage(&self.http, task.work.clone(), self.stream_sources).await {
                Ok(s) => s,
                Err(e) => {
                    self.fail(&task_id, attempt, &e.message, e.retryable).await;
                    return;
                }
            };
        let ctl = Arc::new(Control::default());
        let work = staged.work.clone();
        let ctl_run = ctl.clone();
        let mut handle = tokio::task::spawn_blocking(move || run_work(&work, &ctl_run));
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.tick().await;
        let (mut lost, mut stopping) = (false, false);
        let ending = loop {
            tokio::select! {
                r = &mut handle => break match r {
                    Ok(r) => Ending::Finished(r),
                    Err(e) => Ending::Panicked(e.to_string()),
                },
                _ = tick.tick() => {
                    let frames = ctl.frames_done.load(Ordering::Relaxed);
                    if !self.heartbeat(&task_id, attempt, frames).await {
                        lost = true;
                        ctl.cancel.store(true, Ordering::Relaxed);
                    }
                }
                _ = self.stop.changed(), if !stopping => {
                    stopping = true;
                    ctl.cancel.store(true, Ordering::Relaxed);
                }
            }
        };
        if lost {
            warn!(task = %task_id, attempt, "lease lost; result dropped");
            return;
        }
        match ending {
            Ending::Finished(Ok(outcome)) => match staged.upload(&self.http).await {
                Ok(()) => self.complete(&task_id, attempt, outcome).await,
                Err(e) => self.fail(&task_id, attempt, &e.message, e.retryable).await,
            },
            Ending::Finished(Err(spotenc_media::Error::Cancelled)) if stopping => {
                self.hand_back(&task_id, attempt, "worker shutting down")
                    .await
            }
            Ending::Finished(Err(e)) => {
                self.fail(&task_id, attempt, &e.to_string(), e.is_retryable())
                    .await
            }
            Ending::Panicked(e) => {
                self.fail(&task_id, attempt, &format!("worker panicked: {e}"), true)
                    .await
            }
        }
    }

    /// `false` when the coordinator says the lease is gone.
    async fn heartbeat(&self, task_id: &str, attempt: u32, frames_done: u64) -> bool {
        let req = pb::HeartbeatRequest {
            worker_id: self.worker_id.clone(),
            task_id: task_id.to_string(),
            attempt,
            frames_done,
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

    async fn fail(&self, task_id: &str, attempt: u32, error: &str, retryable: bool) {
        warn!(task = %task_id, attempt, retryable, error, "task failed");
        let req = pb::FailTaskRequest {
            worker_id: self.worker_id.clone(),
            task_id: task_id.to_string(),
            attempt,
            error: error.to_string(),
            retryable,
        };
        if let Err(s) = self.client.clone().fail_task(req).await {
            warn!(task = %task_id, error = %s.message(), "failure not recorded");
        }
    }

    async fn hand_back(&self, task_id: &str, attempt: u32, reason: &str) {
        let req = pb::HandBackTaskRequest {
            worker_id: self.worker_id.clone(),
            task_id: task_id.to_string(),
            attempt,
            reason: reason.to_string(),
        };
        match self.client.clone().hand_back_task(req).await {
            Ok(_) => info!(task = %task_id, attempt, "task handed back"),
            Err(s) => warn!(task = %task_id, error = %s.message(), "hand-back refused"),
        }
    }
}
