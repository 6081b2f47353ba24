//! The gRPC edge: `spotenc.v1` JobService and WorkerService. Each handler
//! converts the request to domain types, calls [`Coordinator`], and converts
//! back; errors map to status codes in `spotenc_proto` only.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use spotenc_proto::domain::{self as d, JobSpec, LeasedTask, TaskOutcome, WorkerInfo};
use spotenc_proto::pb::{
    self, job_service_server::JobService, worker_service_server::WorkerService,
};
use spotenc_proto::{job_to_pb, Error};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::core::Coordinator;
use spotenc_core::state::Ending;

/// Longest a LeaseTask call may wait for work.
const MAX_LEASE_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Jobs(pub Arc<Coordinator>);

#[derive(Clone)]
pub struct Workers(pub Arc<Coordinator>);

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::Job, Status>> + Send>>;

#[tonic::async_trait]
impl JobService for Jobs {
    async fn submit_job(
        &self,
        req: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let client = crate::auth::Caller::of(&req);
        let req = req.into_inner();
        let spec = JobSpec::try_from(
            req.spec
                .ok_or_else(|| Error::invalid("missing field spec"))?,
        )?;
        let job = self.0.submit(spec, &req.idempotency_key, &client).await?;
        Ok(Response::new(pb::SubmitJobResponse {
            job: Some(job_to_pb(job)),
        }))
    }

    async fn get_job(&self, req: Request<pb::GetJobRequest>) -> Result<Response<pb::Job>, Status> {
        let job = self.0.job(&req.into_inner().job_id).await?;
        Ok(Response::new(job_to_pb(job)))
    }

    async fn list_jobs(
        &self,
        req: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let req = req.into_inner();
        let states = req
            .states
            .iter()
            .map(|s| {
                pb::JobState::try_from(*s)
                    .map_err(|_| Error::invalid(format!("invalid job state {s}")))
                    .and_then(d::JobState::try_from)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let limit = if req.limit == 0 {
            100
        } else {
            req.limit as usize
        };
        let jobs = self.0.list_jobs(&states, limit).await?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: jobs.into_iter().map(job_to_pb).collect(),
        }))
    }

    type WatchJobStream = WatchStream;

    async fn watch_job(
        &self,
        req: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let client = crate::auth::Caller::of(&req);
        let job_id = req.into_inner().job_id;
        let first = self.0.job(&job_id).await?;
        // Counted while open (per client, for the quota); the guard
        // uncounts on every way out.
        let open = self.0.open_watch(&client)?;
        let coord = self.0.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let _open = open;
            let mut last = first;
            if tx.send(Ok(job_to_pb(last.clone()))).await.is_err() {
                return;
            }
            while !last.state.is_terminal() {
                // A client that goes away ends the stream at once, not when
                // (if ever) the job changes.
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                let job = match coord.job(&job_id).await {
                    Ok(j) => j,
                    Err(e) => {
                        let _ = tx.send(Err(e.into_status())).await;
                        return;
                    }
                };
                if job != last {
                    if tx.send(Ok(job_to_pb(job.clone()))).await.is_err() {
                        return;
                    }
                    last = job;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn get_task_logs(
        &self,
        req: Request<pb::GetTaskLogsRequest>,
    ) -> Result<Response<pb::GetTaskLogsResponse>, Status> {
        let req = req.into_inner();
        let logs = self.0.task_logs(&req.job_id, &req.task_id).await?;
        Ok(Response::new(pb::GetTaskLogsResponse {
            logs: logs.into_iter().map(Into::into).collect(),
        }))
    }

    async fn list_workers(
        &self,
        _req: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        Ok(Response::new(pb::ListWorkersResponse {
            workers: self.0.workers().into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_pools(
        &self,
        _req: Request<pb::GetPoolsRequest>,
    ) -> Result<Response<pb::GetPoolsResponse>, Status> {
        Ok(Response::new(pb::GetPoolsResponse {
            pools: self.0.pools().await?.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_capacity(
        &self,
        _req: Request<pb::GetCapacityRequest>,
    ) -> Result<Response<pb::GetCapacityResponse>, Status> {
        let pools = self
            .0
            .capacity()
            .await?
            .into_iter()
            .map(|t| pb::PoolCapacity {
                capacity: if t.on_demand { "on-demand" } else { "spot" }.into(),
                live: t.live,
                busy: t.busy,
                desired: t.desired_workers,
                backlog_seconds: t.backlog_seconds,
                work_share: t.work_share,
                price_per_hour: t.price_per_hour,
                health: t.health.state.name().into(),
                interruption_rate_per_hour: t.health.interruption_rate_per_hour,
                health_until_unix_ms: t.health.until_ms,
                reason: t.reason,
                pool: t.pool,
            })
            .collect();
        Ok(Response::new(pb::GetCapacityResponse { pools }))
    }

    async fn get_costs(
        &self,
        _req: Request<pb::GetCostsRequest>,
    ) -> Result<Response<pb::GetCostsResponse>, Status> {
        Ok(Response::new(pb::GetCostsResponse {
            entries: self.0.costs().await?.into_iter().map(Into::into).collect(),
        }))
    }

    async fn cancel_job(
        &self,
        req: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let job = self.0.cancel(&req.into_inner().job_id).await?;
        Ok(Response::new(job_to_pb(job)))
    }
}

#[tonic::async_trait]
impl WorkerService for Workers {
    async fn register_worker(
        &self,
        req: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerResponse>, Status> {
        let info = WorkerInfo::try_from(
            req.into_inner()
                .info
                .ok_or_else(|| Error::invalid("missing field info"))?,
        )?;
        let worker_id = self.0.register(info).await?;
        let c = self.0.config();
        Ok(Response::new(pb::RegisterWorkerResponse {
            worker_id,
            lease_ttl_ms: c.lease_ttl_ms,
            heartbeat_interval_ms: c.heartbeat_interval_ms,
            stall_seconds: c.stall_seconds,
        }))
    }

    async fn lease_task(
        &self,
        req: Request<pb::LeaseTaskRequest>,
    ) -> Result<Response<pb::LeaseTaskResponse>, Status> {
        let req = req.into_inner();
        let wait = Duration::from_millis(u64::from(req.wait_ms)).min(MAX_LEASE_WAIT);
        let gpus = req.gpus.into_iter().map(Into::into).collect();
        self.0.seen(
            &req.worker_id,
            gpus,
            Some(req.withdrawn),
            crate::core::now_ms(),
        );
        let task = self.0.lease(&req.worker_id, wait).await?;
        Ok(Response::new(pb::LeaseTaskResponse {
            task: task.map(|t: LeasedTask| t.into()),
        }))
    }

    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let req = req.into_inner();
        let gpus = req.gpus.into_iter().map(Into::into).collect();
        let keep_going = self
            .0
            .heartbeat(
                &req.worker_id,
                &req.task_id,
                req.attempt,
                req.frames_done,
                gpus,
            )
            .await?;
        Ok(Response::new(pb::HeartbeatResponse {
            keep_going,
            lease_ttl_ms: self.0.config().lease_ttl_ms,
        }))
    }

    async fn complete_task(
        &self,
        req: Request<pb::CompleteTaskRequest>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        let req = req.into_inner();
        let outcome = TaskOutcome::try_from(
            req.result
                .ok_or_else(|| Error::invalid("missing field result"))?,
        )?;
        self.0
            .complete(&req.worker_id, &req.task_id, req.attempt, outcome)
            .await?;
        Ok(Response::new(pb::CompleteTaskResponse {}))
    }

    async fn fail_task(
        &self,
        req: Request<pb::FailTaskRequest>,
    ) -> Result<Response<pb::FailTaskResponse>, Status> {
        let req = req.into_inner();
        self.0
            .check_holder(&req.worker_id, &req.task_id, req.attempt)
            .await?;
        let failure = Ending::from_worker(&req.error, req.retryable, &req.log);
        self.0.fail(&req.task_id, req.attempt, &failure).await?;
        Ok(Response::new(pb::FailTaskResponse {}))
    }

    async fn hand_back_task(
        &self,
        req: Request<pb::HandBackTaskRequest>,
    ) -> Result<Response<pb::HandBackTaskResponse>, Status> {
        let req = req.into_inner();
        let notice = Ending::from_worker(&req.reason, true, &req.log);
        if req.encoder_unavailable {
            self.0
                .give_back(&req.worker_id, &req.task_id, req.attempt, &notice)
                .await?;
        } else {
            self.0
                .hand_back(&req.worker_id, &req.task_id, req.attempt, &notice)
                .await?;
        }
        Ok(Response::new(pb::HandBackTaskResponse {}))
    }
}
