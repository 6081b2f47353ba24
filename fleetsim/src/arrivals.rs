//! The arrival process, planned ahead on a thread of its own. A job's
//! arrival time, shape and spec depend only on the seed and the workload,
//! and what its probe finds and the tasks the probe plans
//! ([`spotenc_core::graph::expand_spec`]) only on the job, so all of it is
//! worked out before the event loop needs it. The event loop, on the other
//! core, submits each job when its arrival comes and hands the plan to the
//! state machine when the probe completes: the same calls in the same
//! order as planning on the spot, so reports stay byte-identical. The
//! same thread frees finished jobs' records.

use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

use spotenc_proto::domain::{JobSpec, Priority, ProbeInfo};

use super::workload::{Arrival, Workload, MONTH_SECONDS};
use crate::replay::{probe, spec, Rng, SimJob};
use spotenc_core::state::{JobRecord, Key, NewTask, TaskRecord};

/// Arrivals per message: few enough to start at once, enough that the
/// channel costs nothing per job.
const BATCH: usize = 256;

/// Batches in flight: the planner runs at most this far ahead.
const AHEAD: usize = 8;

/// A job planned ahead of its arrival.
pub(super) struct Planned {
    pub at_ms: i64,
    pub id: Key,
    /// The job's spec and id, for submission.
    pub spec: JobSpec,
    pub job_id: String,
    /// The job's shape, what its probe finds and the tasks it plans.
    pub ahead: Box<Ahead>,
}

/// A live job's shape, with its probe's result and plan until the probe
/// completes.
pub(super) struct Ahead {
    pub job: SimJob,
    pub planned: Option<(ProbeInfo, Vec<NewTask>)>,
}

/// A finished job's records and shape, for the planning thread to free.
pub(super) type Ended = (Box<JobRecord>, Vec<Box<TaskRecord>>, Option<Box<Ahead>>);

/// The event loop's end of the channels.
pub(super) struct Arrivals {
    rx: Option<Receiver<Vec<Planned>>>,
    batch: std::vec::IntoIter<Planned>,
    /// Finished jobs' records, sent back in batches.
    trash: Option<Sender<Vec<Ended>>>,
    ended: Vec<Ended>,
}

impl Arrivals {
    /// The next arrival in time order; `None` once there are no more.
    pub fn next(&mut self) -> Option<Planned> {
        loop {
            if let Some(p) = self.batch.next() {
                return Some(p);
            }
            self.batch = self.rx.as_ref()?.recv().ok()?.into_iter();
        }
    }

    /// Hands a finished job's records to the planning thread to free: a
    /// block is freed fastest by the thread that allocated it, and the
    /// event loop is the busier thread.
    pub fn discard(&mut self, ended: Ended) {
        self.ended.push(ended);
        if self.ended.len() == BATCH {
            let full = std::mem::replace(&mut self.ended, Vec::with_capacity(BATCH));
            if let Some(t) = &self.trash {
                // A planner that is gone leaves them to be freed here.
                let _ = t.send(full);
            }
        }
    }

    /// Stops the planner (it may be blocked sending a batch nobody reads,
    /// or waiting for records to free).
    pub fn close(&mut self) {
        self.rx = None;
        self.trash = None;
    }
}

/// Starts planning in `scope`: every arrival before `end_ms` of workload
/// `w` with `seed`, and the first one even when it is later (the event
/// loop counts its event and submits nothing, as it always has).
pub(super) fn start<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    w: &'scope Workload,
    seed: u64,
    chunk_seconds: f64,
    end_ms: i64,
) -> Arrivals {
    let (tx, rx) = sync_channel(AHEAD);
    let (trash, trash_rx) = channel();
    let planner = Planner {
        w,
        rng: Rng::new(seed ^ 0xA11),
        chunk_seconds,
        end_ms,
        now: 0,
        n: 0,
    };
    scope.spawn(move || planner.run(tx, trash_rx));
    Arrivals {
        rx: Some(rx),
        batch: Vec::new().into_iter(),
        trash: Some(trash),
        ended: Vec::with_capacity(BATCH),
    }
}

struct Planner<'a> {
    w: &'a Workload,
    rng: Rng,
    chunk_seconds: f64,
    end_ms: i64,
    /// The last arrival's time.
    now: i64,
    /// Jobs planned so far.
    n: usize,
}

impl Planner<'_> {
    /// Plans and sends every arrival, freeing finished jobs between
    /// batches; once planning is over, frees them until the event loop
    /// closes.
    fn run(mut self, tx: SyncSender<Vec<Planned>>, trash: Receiver<Vec<Ended>>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut at = self.gap();
        loop {
            self.now = at;
            let past = at >= self.end_ms;
            batch.push(self.plan(at));
            if !past {
                at = self.gap();
            }
            if past || at >= self.end_ms || batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if tx.send(full).is_err() || past || at >= self.end_ms {
                    break;
                }
                trash.try_iter().for_each(drop);
            }
        }
        drop(tx);
        trash.iter().for_each(drop);
    }

    /// Milliseconds from the start to the arrival after the one at `now`.
    fn gap(&mut self) -> i64 {
        let w = self.w;
        let per_second = w.output_minutes_per_month / MONTH_SECONDS / w.mean_minutes();
        let mean_gap = 1.0 / per_second;
        let gap = match w.arrival {
            Arrival::Uniform => mean_gap,
            Arrival::Poisson => self.rng.exp(mean_gap),
            Arrival::Diurnal => {
                // Thinning against the peak rate.
                let r = w.diurnal_peak_ratio;
                let a = (r - 1.0) / (r + 1.0);
                let mut t = self.now as f64 / 1000.0;
                loop {
                    t += self.rng.exp(mean_gap / (1.0 + a));
                    let phase = (t / 86_400.0 - 14.0 / 24.0) * std::f64::consts::TAU;
                    let rate = 1.0 + a * phase.cos();
                    if self.rng.unit() * (1.0 + a) <= rate {
                        break;
                    }
                }
                t - self.now as f64 / 1000.0
            }
        };
        self.now + (gap * 1000.0).round().max(1.0) as i64
    }

    fn pick<T: Copy>(rng: &mut Rng, items: impl Iterator<Item = (T, f64)>) -> T {
        let r = rng.unit();
        let mut acc = 0.0;
        let mut last = None;
        for (v, share) in items {
            acc += share;
            if r < acc {
                return v;
            }
            last = Some(v);
        }
        last.expect("validated non-empty")
    }

    /// The job arriving at `at_ms`, planned through its probe.
    fn plan(&mut self, at_ms: i64) -> Planned {
        let w = self.w;
        let mix = Self::pick(&mut self.rng, w.mix.iter().map(|m| m.share).enumerate());
        let m = &w.mix[mix];
        let minutes = Self::pick(
            &mut self.rng,
            w.lengths.iter().map(|l| (l.minutes, l.share)),
        );
        let latency = self.rng.unit() < w.latency_share;
        let job = SimJob {
            submit_at_s: at_ms as f64 / 1000.0,
            codec: m.codec.parse().expect("validated"),
            preset: m.preset.clone(),
            width: m.width,
            height: m.height,
            fps: w.fps,
            duration_s: (minutes * 60.0).round().max(1.0) as u32,
            chunk_seconds: self.chunk_seconds,
            priority: if latency {
                Priority::Latency
            } else {
                Priority::Cost
            },
        };
        let mut s = spec(&job, self.n);
        s.escalate_after_wait_seconds = w.escalate_after_wait_seconds;
        let id = format!("j{}", self.n);
        self.n += 1;
        let probe = probe(&job);
        let tasks =
            spotenc_core::graph::expand_spec(&id, &s, &probe, "/w").expect("simulated jobs plan");
        Planned {
            at_ms,
            id: Key::from(id.as_str()),
            spec: s,
            job_id: id,
            ahead: Box::new(Ahead {
                job,
                planned: Some((probe, tasks)),
            }),
        }
    }
}
