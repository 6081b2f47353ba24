//! What placement and the cost model see of this coordinator: each
//! worker's catalogue pool and placement view, the cached model and live
//! fleet, the lease context a store leases with, what a finished encode
//! teaches the model, and the pools and costs tables.

use spotenc_proto::domain::{OutputObject, WorkerInfo, WorkerStatus};
use spotenc_proto::Result;
use tracing::warn;

use super::{now_ms, Coordinator, LIVE_MS, VIEW_TTL};
use spotenc_core::cost::catalogue::{Hardware, Pool};
use spotenc_core::cost::model::{self, Delivered, Model, Observation};
use spotenc_core::cost::place::{Fleet, Worker};
use spotenc_core::cost::Lease;

impl Coordinator {
    /// The catalogue pool of a worker; a pool not in the catalogue gets a
    /// derived entry and one warning.
    fn pool_of(&self, info: &WorkerInfo) -> Pool {
        let (pool, known) = self.config.pools.resolve(info);
        if !known
            && self
                .warned_pools
                .lock()
                .expect("warned lock")
                .insert(info.pool.clone())
        {
            warn!(pool = %info.pool, instance_type = %info.instance_type, price_per_hour = pool.price_per_hour, source = %pool.source, "pool is not in the catalogue; using a derived entry (add it to [[pools]] to price it)");
        }
        pool
    }

    /// A worker as placement sees it.
    fn placement_worker(&self, status: &WorkerStatus) -> Worker {
        let info = &status.info;
        let pool = self.pool_of(info);
        let limit = self.config.placement.nvenc_util_limit_pct;
        Worker {
            class: if info.instance_type.is_empty() {
                pool.hardware.name().to_string()
            } else {
                info.instance_type.clone()
            },
            codecs: info.codecs.clone(),
            nvenc: info.gpus.iter().flat_map(|g| g.nvenc.clone()).collect(),
            sessions_held: 0,
            encoder_saturated: pool.hardware == Hardware::Nvenc
                && !status.gpus.is_empty()
                && status
                    .gpus
                    .iter()
                    .all(|g| g.encoder_util_pct.is_some_and(|u| u >= limit)),
            params: info.encoder_params.clone(),
            hardware_down: status.withdrawn.iter().any(|f| f == pool.hardware.name()),
            delivered_price_per_gb: self.config.placement.delivered_price_per_gb,
            pool,
        }
    }

    /// The cost model and the live fleet, cached for [`VIEW_TTL`].
    pub(super) async fn view(&self) -> Result<(Model, Fleet)> {
        let mut view = self.view.lock().await;
        if let Some((at, model, fleet)) = view.as_ref() {
            if at.elapsed() < VIEW_TTL {
                return Ok((model.clone(), fleet.clone()));
            }
        }
        let model = self.store.model().await?;
        let mut fleet = Fleet::default();
        let mut seen = std::collections::BTreeSet::new();
        for w in self.store.live_workers(now_ms() - LIVE_MS).await? {
            if seen.insert(w.info.pool.clone()) {
                fleet.pools.push(self.placement_worker(&WorkerStatus {
                    worker_id: w.id,
                    info: w.info,
                    registered_unix_ms: w.registered_unix_ms,
                    last_seen_unix_ms: 0,
                    gpus: Vec::new(),
                    withdrawn: Vec::new(),
                }));
            }
        }
        *view = Some((tokio::time::Instant::now(), model.clone(), fleet.clone()));
        Ok((model, fleet))
    }

    /// Every live worker as placement sees it, with the hardware families
    /// this replica heard it withdraw.
    pub(super) async fn live_placement_workers(&self) -> Result<Vec<Worker>> {
        let mut out = Vec::new();
        for w in self.store.live_workers(now_ms() - LIVE_MS).await? {
            // Heard by this replica from the worker's own recent lease
            // requests only: another replica may be serving it since.
            let fresh = now_ms() - LIVE_MS;
            let withdrawn = self
                .workers
                .lock()
                .expect("workers lock")
                .get(&w.id)
                .filter(|s| s.last_seen_unix_ms >= fresh)
                .map(|s| s.withdrawn.clone())
                .unwrap_or_default();
            out.push(self.placement_worker(&WorkerStatus {
                worker_id: w.id,
                info: w.info,
                registered_unix_ms: w.registered_unix_ms,
                last_seen_unix_ms: 0,
                gpus: Vec::new(),
                withdrawn,
            }));
        }
        Ok(out)
    }

    /// What the store needs to lease for this worker.
    pub(super) async fn lease_context(&self, worker_id: &str) -> Result<Lease> {
        let status = self.worker_status(worker_id).await?;
        let worker = self.placement_worker(&status);
        let (model, mut fleet) = if self.config.placement.enabled {
            self.view().await?
        } else {
            Default::default()
        };
        if !fleet.pools.iter().any(|p| p.pool.name == worker.pool.name) {
            fleet.pools.push(worker.clone());
        }
        let mut policy = self.config.placement.policy;
        // An on-demand pool above its own plan takes no spot work, so it
        // can shrink back to its latency work and baseline.
        policy.spot_closed = worker.pool.capacity == spotenc_proto::domain::Capacity::OnDemand
            && self
                .over_plan
                .lock()
                .expect("plan lock")
                .contains(&worker.pool.name);
        // A chunk the outlier guard sent back avoids the worker that made
        // it while another live worker encodes alike (for as long as a
        // pinned job waits for a worker of its identity: the other may not
        // serve its partition), and only then.
        policy.avoid_rejected_ms = if self.has_peer(worker_id, &status.info).await? {
            self.config.placement.affinity_wait_ms
        } else {
            0
        };
        Ok(Lease {
            worker: Some(worker),
            fleet,
            model,
            policy,
            placement: self.config.placement.enabled,
            pricer: None,
        })
    }

    /// What the cost model learns from a finished encode: the encoder that
    /// actually ran (a fallback from NVENC counts as x264/x265), over the
    /// wall time of the encode.
    pub(super) async fn observe(
        &self,
        task: &spotenc_core::state::TaskRecord,
        a: &spotenc_proto::domain::AttemptRecord,
        obj: &OutputObject,
    ) {
        let Ok(status) = self.worker_status(&a.worker_id).await else {
            return;
        };
        let worker = self.placement_worker(&status);
        let wall = if obj.encode_ms > 0 {
            obj.encode_ms as f64 / 1000.0
        } else {
            (now_ms() - a.started_unix_ms) as f64 / 1000.0
        };
        let nvenc: Vec<_> = worker.nvenc.iter().map(|n| n.codec).collect();
        let mut keys = task
            .demand
            .keys(&worker.class, worker.pool.hardware, &nvenc);
        for k in &mut keys {
            let ten_bit = k.family.ends_with("-10");
            // An identity name (`nvenc-h264-8bit`) or, from older workers,
            // an FFmpeg encoder name (`h264_nvenc`).
            let ran = match obj.encoder.as_str() {
                "" => continue,
                e if e.starts_with("nvenc-") || e.ends_with("_nvenc") => "nvenc",
                e if e.starts_with("qsv-") || e.ends_with("_qsv") => "qsv",
                _ => k.codec.software_encoder(),
            };
            k.family = model::with_depth(ran, ten_bit).into();
        }
        let model = match self.view().await {
            Ok((m, _)) => m,
            Err(_) => Model::default(),
        };
        let mut obs: Vec<Observation> = task.demand.observe(&keys, &worker.shape(), &model, wall);
        // What each measured output delivered, beside the throughput; only
        // at a constant quality (CRF), as a bitrate target sets the bits.
        let crf: Vec<bool> = match &task.work {
            spotenc_proto::domain::Work::Encode(e) => std::iter::once(&e.video)
                .chain(e.renditions.iter().map(|r| &r.video))
                .map(|v| matches!(v.rate, spotenc_proto::domain::RateControl::Crf(_)))
                .collect(),
            _ => Vec::new(),
        };
        let objects = std::iter::once(obj).chain(obj.renditions.iter());
        for ((o, made), crf) in obs.iter_mut().zip(objects).zip(crf) {
            o.delivered = made.quality.as_ref().filter(|_| crf).map(|q| Delivered {
                bits_per_pixel: q.bits_per_pixel(),
                psnr: q.psnr,
            });
        }
        if let Err(e) = self.store.learn(&obs).await {
            warn!(task = %task.id, error = %e, "cost model not updated");
        }
    }

    /// The catalogue as this coordinator sees it.
    pub async fn pools(&self) -> Result<Vec<spotenc_proto::domain::PoolStatus>> {
        let live = self.store.live_workers(now_ms() - LIVE_MS).await?;
        let stats = self.store.pool_stats().await?;
        let mut pools: std::collections::BTreeMap<String, Pool> = self.config.pools.pools.clone();
        for w in &live {
            if !pools.contains_key(&w.info.pool) {
                pools.insert(w.info.pool.clone(), self.pool_of(&w.info));
            }
        }
        Ok(pools
            .into_values()
            .map(|p| {
                let s = stats.get(&p.name).copied().unwrap_or_default();
                let hours = s.attempt_seconds / 3600.0 / f64::from(p.slots.max(1));
                spotenc_proto::domain::PoolStatus {
                    live_workers: live.iter().filter(|w| w.info.pool == p.name).count() as u32,
                    interruptions: s.interruptions,
                    worker_hours: hours,
                    measured_interruption_rate_per_hour: if hours > 0.0 {
                        f64::from(s.interruptions) / hours
                    } else {
                        0.0
                    },
                    name: p.name,
                    capacity: match p.capacity {
                        spotenc_proto::domain::Capacity::Spot => "spot".into(),
                        spotenc_proto::domain::Capacity::OnDemand => "on-demand".into(),
                    },
                    instance_type: p.instance_type,
                    zones: p.zones,
                    hardware: p.hardware.name().into(),
                    gpu: p.gpu,
                    vcpus: p.vcpus,
                    memory_gib: p.memory_gib,
                    slots: p.slots,
                    price_per_hour: p.price_per_hour,
                    on_demand_price_per_hour: p
                        .on_demand_price_per_hour
                        .unwrap_or(p.price_per_hour),
                    interruption_rate_per_hour: p.interruption_rate_per_hour,
                    min_workers: p.min_workers,
                    max_workers: p.max_workers,
                    launch_seconds: p.launch_seconds,
                    source: p.source,
                    origin: p.origin.name().into(),
                }
            })
            .collect())
    }

    /// Every key of the cost model with samples, and the 1080p30 H.264 and
    /// HEVC medium keys of every catalogue pool, with their prices.
    pub async fn costs(&self) -> Result<Vec<spotenc_proto::domain::CostEntry>> {
        let model = self.store.model().await?;
        Ok(spotenc_core::cost::costs_table(&self.config.pools, &model))
    }
}
