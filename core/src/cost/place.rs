//! Placement: which pending task a worker asking for work gets. One pure,
//! deterministic function that both stores call, over a bounded window of
//! candidates.
//!
//! The rules, in order:
//! 1. **Partitions.** Spot workers take spot work; on-demand workers take
//!    on-demand work first, then spot work.
//! 2. **Capability and affinity.** A worker never gets a task it cannot
//!    encode: every output's codec must be one it encodes, within its NVENC
//!    limits when NVENC would run it. An NVENC worker whose encoder is
//!    saturated, or whose sessions plus the task's renditions would pass its
//!    slots, gets no encode task. A chunk of a job whose renditions are
//!    pinned to encoder identities goes only to a worker that would encode
//!    it with exactly those ([`Worker::identity_names`]), and its ratio is
//!    against the cheapest pool that could.
//! 3. **No starvation, and waiting is priced.** The oldest task of each
//!    latency job goes first, and so does a task pending longer than
//!    `max_placement_delay_ms` on a worker whose ratio is within
//!    `max_cost_ratio`; on a dearer one only once it has also waited
//!    `max_wait_for_cheaper_ms` (a free slot or a launch on its cheap pool
//!    comes well within that, and a cost job's deadline well after it):
//!    4K HEVC waits a few minutes for a GPU rather than run on a CPU at
//!    fifty times the price. Oldest first.
//! 4. **Comparative advantage.** For each candidate, its expected cost on
//!    this worker's pool over its cheapest expected cost on any live pool
//!    that can run it; the lowest ratio wins. Among equal ratios (within
//!    1%) the task where this pool saves most against the next cheapest
//!    pool wins (so a GPU, cheapest for everything, takes HEVC and large
//!    frames first), then the oldest. A spot worker leaves a spot task whose
//!    ratio is above `max_cost_ratio` for a cheaper pool until rule 3 takes
//!    it; an on-demand worker (kept by the capacity planner for latency work
//!    and the on-demand baseline, so idle at on-demand prices otherwise)
//!    takes it, unless `on_demand_declines_spot`.

use std::borrow::Cow;

use smallvec::SmallVec;

use spotenc_proto::domain::{Capacity, Codec, EncoderIdentity, NvencCodec, NVENC, QSV};

use super::catalogue::{Hardware, Pool};
use super::model::{expected_cost, Demand, Model, Shape};

/// A task's first-in first-out order is its job's submission number times
/// this, plus its position in the job, in both stores (`task_order` in the
/// state machine, `submit.lua` and `complete.lua` in Redis).
pub const JOB_ORDER_SPAN: u64 = 1_000_000;

/// The job's submission number in a task's order.
pub fn job_of(order: u64) -> u64 {
    order / JOB_ORDER_SPAN
}

/// A pending task as placement sees it: borrowed from the embedded state
/// (a lease builds a window of these, so no copies), owned when read from
/// Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    pub task_id: Cow<'a, str>,
    /// Its job's submission number: [`job_of`] its order in both stores.
    pub job: u64,
    pub partition: Capacity,
    /// First-in first-out order: job submission, then task order.
    pub order: u64,
    pub pending_since_ms: i64,
    /// The job asked for latency.
    pub latency: bool,
    pub demand: Cow<'a, Demand>,
    /// The demand's id where the store interns demands (the embedded
    /// store's index): two candidates with ids ask alike exactly when the
    /// ids are equal, so placement compares no outputs. `None` elsewhere.
    pub interned: Option<u32>,
    /// The encoder identity names its job's renditions are pinned to, one
    /// per output; empty while unpinned (and for tasks that encode
    /// nothing).
    pub pinned: Cow<'a, [String]>,
}

/// A worker (or a live pool's representative) as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Worker {
    pub pool: Pool,
    /// Instance type, or the hardware class when no type is known.
    pub class: String,
    pub codecs: Vec<Codec>,
    /// What NVENC encodes on its GPUs, with limits (any GPU).
    pub nvenc: Vec<NvencCodec>,
    /// NVENC sessions its leased tasks hold now.
    pub sessions_held: u32,
    /// Every GPU's encoder is at or above the utilisation limit.
    pub encoder_saturated: bool,
    /// The operator's encoder parameters by software family (`libx264`,
    /// `libx265`), part of the identities it produces.
    pub params: std::collections::BTreeMap<String, String>,
    /// Its hardware encoder failed and is withdrawn: it encodes in
    /// software until the hardware recovers.
    pub hardware_down: bool,
    /// Dollars per GB of output delivered: the bytes its encoder makes are
    /// priced beside its time (0: time only).
    pub delivered_price_per_gb: f64,
}

impl Worker {
    pub fn shape(&self) -> Shape {
        Shape::from(&self.pool)
    }

    /// Whether its NVENC can encode `o`.
    fn nvenc_runs(&self, o: &super::model::Output) -> bool {
        self.pool.hardware == Hardware::Nvenc
            && !self.hardware_down
            && self.nvenc.iter().any(|n| {
                n.codec == o.codec
                    && n.max_width >= o.width
                    && n.max_height >= o.height
                    && (n.ten_bit || !o.ten_bit)
            })
    }

    /// Whether it can encode every output of `d` (ignoring load).
    pub fn can_run(&self, d: &Demand) -> bool {
        let hardware = self.hardware_family(d).is_some();
        d.outputs
            .iter()
            .all(|o| hardware || self.codecs.contains(&o.codec))
    }

    /// The hardware family that would encode all of `d` here, if any: one
    /// decode feeds every rendition, so a task runs on one encoder family
    /// (NVENC when it can take every output; QSV on a QSV pool).
    fn hardware_family(&self, d: &Demand) -> Option<&'static str> {
        match self.pool.hardware {
            _ if self.hardware_down || d.outputs.is_empty() => None,
            Hardware::Nvenc if d.outputs.iter().all(|o| self.nvenc_runs(o)) => Some(NVENC),
            Hardware::Qsv => Some(QSV),
            _ => None,
        }
    }

    /// The encoder identity of each output of `d` on this worker: the
    /// hardware family when it takes the whole task, else libx264/libx265
    /// with the operator's parameters.
    pub fn identities(&self, d: &Demand) -> Vec<EncoderIdentity> {
        let hardware = self.hardware_family(d);
        d.outputs
            .iter()
            .map(|o| {
                let family = hardware.unwrap_or(o.codec.software_encoder());
                EncoderIdentity {
                    family: family.to_string(),
                    codec: o.codec,
                    ten_bit: o.ten_bit,
                    params: self.params.get(family).cloned().unwrap_or_default(),
                }
            })
            .collect()
    }

    /// [`Worker::identities`] by name: what a job's pin is compared with.
    pub fn identity_names(&self, d: &Demand) -> Vec<String> {
        self.identities(d)
            .iter()
            .map(EncoderIdentity::name)
            .collect()
    }

    /// Whether it would encode `c` with the identities its job is pinned
    /// to (always, for an unpinned job).
    pub fn keeps_pin(&self, c: &Candidate) -> bool {
        c.pinned.is_empty() || self.identity_names(&c.demand) == *c.pinned
    }

    /// Whether NVENC would encode `d` here (and hold sessions for it).
    pub fn uses_nvenc(&self, d: &Demand) -> bool {
        self.hardware_family(d) == Some(NVENC)
    }

    /// Whether its NVENC sessions allow `d` now.
    fn sessions_allow(&self, d: &Demand) -> bool {
        !self.uses_nvenc(d)
            || (!self.encoder_saturated && self.sessions_held + d.sessions() <= self.pool.slots)
    }

    /// Predicted seconds of `d` on one of its slots, with the encoder
    /// family [`Worker::identities`] gives it (a task NVENC cannot take
    /// whole, such as 10 bits on a GPU that encodes 8, runs in software).
    pub fn seconds(&self, d: &Demand, model: &Model) -> f64 {
        let family = self.hardware_family(d);
        let hardware = match family {
            Some(_) => self.pool.hardware,
            None => Hardware::Cpu,
        };
        let nvenc = |_: Codec, _: bool| family == Some(NVENC);
        d.seconds_on(&self.class, hardware, nvenc, &self.shape(), model)
    }

    /// Expected dollars of `d` here: its encode time, and the bytes it
    /// makes when delivered bytes are priced.
    pub fn cost(&self, d: &Demand, model: &Model) -> f64 {
        expected_cost(&self.pool, d.sessions(), self.seconds(d, model))
            + self.delivered_cost(d, model)
    }

    /// Expected dollars of delivering what `d` makes here: each output's
    /// pixels × the bits per pixel the model learned for its key (with the
    /// encoder family it would run here), at `delivered_price_per_gb`. An
    /// output whose key has no measured encode adds nothing.
    pub fn delivered_cost(&self, d: &Demand, model: &Model) -> f64 {
        if self.delivered_price_per_gb <= 0.0 || d.outputs.is_empty() {
            return 0.0;
        }
        let hardware = match self.hardware_family(d) {
            Some(_) => self.pool.hardware,
            None => Hardware::Cpu,
        };
        let nvenc: Vec<Codec> = if self.uses_nvenc(d) {
            d.outputs.iter().map(|o| o.codec).collect()
        } else {
            Vec::new()
        };
        let bits: f64 = d
            .outputs
            .iter()
            .zip(d.keys(&self.class, hardware, &nvenc))
            .filter_map(|(o, k)| {
                let px = f64::from(o.width) * f64::from(o.height) * d.frames as f64;
                model.bits_per_pixel(&k).map(|bpp| bpp * px)
            })
            .sum();
        bits / 8.0 / 1e9 * self.delivered_price_per_gb
    }

    /// Whether it may take work waiting in `partition` at all.
    pub fn serves(&self, partition: Capacity) -> bool {
        partition == Capacity::Spot || self.pool.capacity == Capacity::OnDemand
    }
}

/// The pools with live workers, one representative each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fleet {
    pub pools: Vec<Worker>,
}

/// Placement settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub max_placement_delay_ms: i64,
    /// How much longer an overdue task waits for a pool within
    /// `max_cost_ratio` before a dearer worker takes it.
    pub max_wait_for_cheaper_ms: i64,
    pub max_cost_ratio: f64,
    /// On-demand workers leave dear spot work too (`max_cost_ratio`);
    /// by default an idle on-demand worker, which the capacity planner only
    /// keeps for latency work and the baseline, takes spot work in ratio
    /// order rather than sit idle at on-demand prices.
    pub on_demand_declines_spot: bool,
    /// The worker's on-demand pool runs above its planned size: it takes no
    /// spot work at all, overdue or not, so it can shrink.
    pub spot_closed: bool,
    /// How long a chunk the outlier guard sent back waits for another
    /// worker than the one whose chunk it rejected (then that one may take
    /// it too). The coordinator sets it per lease: `affinity_wait_seconds`
    /// while another live worker encodes alike, else 0.
    pub avoid_rejected_ms: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_placement_delay_ms: 60_000,
            max_wait_for_cheaper_ms: 600_000,
            max_cost_ratio: 2.0,
            on_demand_declines_spot: false,
            spot_closed: false,
            avoid_rejected_ms: 300_000,
        }
    }
}

/// The partitions a worker of `capacity` serves, in order: on-demand
/// workers take on-demand work first, then spot work; spot workers only
/// spot work.
pub fn partitions(capacity: Capacity) -> &'static [Capacity] {
    match capacity {
        Capacity::OnDemand => &[Capacity::OnDemand, Capacity::Spot],
        Capacity::Spot => &[Capacity::Spot],
    }
}

/// The cost ratio of `c` on `worker` against its cheapest live pool, and
/// this worker's advantage: the cheapest cost on any other live pool over
/// the cost here (1 when no other pool can run it). Tasks without outputs
/// get (1, 1): any pool suits them.
pub fn ratio(worker: &Worker, c: &Candidate, model: &Model, fleet: &Fleet) -> (f64, f64) {
    if c.demand.outputs.is_empty() {
        return (1.0, 1.0);
    }
    let here = worker.cost(&c.demand, model);
    let others = fleet
        .pools
        .iter()
        .filter(|p| {
            p.pool.name != worker.pool.name
                && p.serves(c.partition)
                && p.can_run(&c.demand)
                && p.keeps_pin(c)
        })
        .map(|p| p.cost(&c.demand, model))
        .fold(f64::INFINITY, f64::min);
    let cheapest = here.min(others);
    let ratio = if cheapest > 0.0 { here / cheapest } else { 1.0 };
    let advantage = if others.is_finite() && here > 0.0 {
        others / here
    } else {
        1.0
    };
    (ratio, advantage)
}

/// Where placement gets a candidate's [`ratio`] on a worker. By default
/// it is worked out for every choice; a caller that makes many choices
/// against one fleet and model may keep them (the simulator does, in
/// `spotenc_fleetsim::prices`).
pub trait Pricer: Send + Sync + std::fmt::Debug {
    fn ratio(&self, worker: &Worker, c: &Candidate, model: &Model, fleet: &Fleet) -> (f64, f64);
    /// The fleet or model changed: forget whatever was kept.
    fn forget(&self) {}
}

/// The task `worker` should lease from `candidates`, if any: the first of
/// [`rank`].
pub fn place(
    worker: &Worker,
    candidates: &[Candidate],
    model: &Model,
    fleet: &Fleet,
    policy: &Policy,
    now_ms: i64,
) -> Option<String> {
    best(worker, candidates, model, fleet, policy, now_ms).map(str::to_string)
}

/// Where a candidate stands in its partition: overdue and latency work
/// first, oldest first; then the rest by ratio (within 1%), advantage
/// (higher first) and age. The task id comes last, so no two candidates
/// stand alike and the order does not depend on the candidates' order.
#[derive(Debug, Clone, Copy)]
struct Standing<'c> {
    /// 0: overdue or latency; 1: the rest.
    group: u8,
    ratio_pct: i64,
    advantage: f64,
    order: u64,
    task_id: &'c str,
}

impl<'c> Standing<'c> {
    /// Urgent work: overdue or latency, oldest first.
    fn first(c: &'c Candidate) -> Self {
        Standing {
            group: 0,
            ratio_pct: 0,
            advantage: 0.0,
            order: c.order,
            task_id: c.task_id.as_ref(),
        }
    }

    fn cmp(&self, o: &Standing) -> std::cmp::Ordering {
        // Lazily: ids are compared only on a tie of everything else (a
        // lease compares each candidate with the best so far, and `then`
        // would compare the ids every time).
        self.group
            .cmp(&o.group)
            .then(self.ratio_pct.cmp(&o.ratio_pct))
            .then(o.advantage.total_cmp(&self.advantage))
            .then(self.order.cmp(&o.order))
            .then_with(|| self.task_id.cmp(o.task_id))
    }
}

/// A demand as [`standings`] judged it for one worker: whether the worker
/// can run it now, and its ratio in whole percent and advantage once
/// priced.
struct Judged<'d> {
    demand: &'d Demand,
    /// The candidate's pin: it changes the ratio (only pools keeping it
    /// count), so demands alike but pinned apart are judged apart.
    pinned: &'d [String],
    interned: Option<u32>,
    able: bool,
    priced: Option<(i64, f64)>,
    /// The worker's identity names for it, once a pinned candidate asked.
    names: Option<Vec<String>>,
}

impl Judged<'_> {
    /// Whether `c` asks what this one does. Demands interned by one store
    /// are alike exactly when their ids are; others are compared: the
    /// same one first, then frames (chunks of one job differ there, if
    /// anywhere), then outputs.
    fn is(&self, c: &Candidate) -> bool {
        if self.pinned != &*c.pinned {
            return false;
        }
        match (self.interned, c.interned) {
            (Some(a), Some(b)) => a == b,
            _ => {
                std::ptr::eq(self.demand, c.demand.as_ref())
                    || (self.demand.frames == c.demand.frames
                        && self.demand.outputs == c.demand.outputs)
            }
        }
    }
}

/// Calls `f` with the standing of every candidate of partition `p` that
/// the worker may take; declined spot work is left out.
fn standings<'c>(
    placing: &Placement,
    candidates: &'c [Candidate],
    p: Capacity,
    mut f: impl FnMut(Standing<'c>),
) {
    let Placement {
        worker,
        policy,
        now_ms,
        ..
    } = *placing;
    let able = |c: &Candidate| able_now(worker, c, p);
    // Latency work is urgent for the oldest task of its job only (rare:
    // the scan runs for latency candidates alone).
    let oldest_of_job = |c: &Candidate| {
        candidates
            .iter()
            .filter(|o| o.job == c.job && able(o))
            .all(|o| o.order >= c.order)
    };
    // Chunks of one job mostly ask alike: judge and price each demand once
    // (a window holds a few demands, kept on the stack). With each: whether
    // the worker can run it now, and once asked its ratio in whole percent
    // (rounding is a library call on the baseline x86-64 target).
    let mut seen: SmallVec<[Judged; 8]> = SmallVec::new();
    for c in candidates.iter().filter(|c| c.partition == p) {
        let at = match seen.iter().position(|j| j.is(c)) {
            Some(at) => at,
            None => {
                seen.push(Judged {
                    demand: &c.demand,
                    pinned: &c.pinned,
                    interned: c.interned,
                    able: worker.can_run(&c.demand) && worker.sessions_allow(&c.demand),
                    priced: None,
                    names: None,
                });
                seen.len() - 1
            }
        };
        if !seen[at].able {
            continue;
        }
        // Affinity: a pinned job's chunks only where the pin is kept.
        if !c.pinned.is_empty()
            && *seen[at]
                .names
                .get_or_insert_with(|| worker.identity_names(&c.demand))
                != *c.pinned
        {
            continue;
        }
        let waited = now_ms - c.pending_since_ms;
        let overdue = waited >= policy.max_placement_delay_ms;
        let past_wait = waited >= policy.max_placement_delay_ms + policy.max_wait_for_cheaper_ms;
        if past_wait || (c.latency && oldest_of_job(c)) {
            f(Standing::first(c));
            continue;
        }
        let (ratio_pct, advantage) = *seen[at].priced.get_or_insert_with(|| {
            let (r, advantage) = placing.ratio(c);
            // Ratios within 1% count as equal.
            ((r * 100.0).round() as i64, advantage)
        });
        let within = ratio_pct as f64 <= policy.max_cost_ratio * 100.0;
        if overdue && within {
            f(Standing::first(c));
            continue;
        }
        let taken = p == Capacity::OnDemand
            || (worker.pool.capacity == Capacity::OnDemand && !policy.on_demand_declines_spot)
            || within;
        if taken {
            f(Standing {
                group: 1,
                ratio_pct,
                advantage,
                order: c.order,
                task_id: c.task_id.as_ref(),
            });
        }
    }
}

/// The partitions a worker of `capacity` takes work from now, in order:
/// [`partitions`], less spot work for an on-demand pool closed to it
/// ([`Policy::spot_closed`]) when placement is on (FIFO, the baseline,
/// ignores the policy).
pub fn open_partitions(
    capacity: Capacity,
    policy: &Policy,
    placement: bool,
) -> impl Iterator<Item = Capacity> {
    let closed = placement && capacity == Capacity::OnDemand && policy.spot_closed;
    partitions(capacity)
        .iter()
        .copied()
        .filter(move |&p| !(p == Capacity::Spot && closed))
}

/// Every candidate `worker` may take, best first by the rules above:
/// partition by partition, overdue and latency work oldest first, then the
/// rest by ratio, advantage and age; declined spot work is left out. A
/// store claims the first that is still pending, so workers reading the
/// same window do not all fight over one task.
pub fn rank<'c>(
    worker: &Worker,
    candidates: &'c [Candidate],
    model: &Model,
    fleet: &Fleet,
    policy: &Policy,
    now_ms: i64,
) -> Vec<&'c str> {
    Placement {
        worker,
        model,
        fleet,
        policy,
        now_ms,
        pricer: None,
    }
    .rank(candidates)
}

/// The first of [`rank`], without ranking the rest (the embedded store
/// leases it at once, so it needs no runner-up).
pub fn best<'c>(
    worker: &Worker,
    candidates: &'c [Candidate],
    model: &Model,
    fleet: &Fleet,
    policy: &Policy,
    now_ms: i64,
) -> Option<&'c str> {
    Placement {
        worker,
        model,
        fleet,
        policy,
        now_ms,
        pricer: None,
    }
    .best(candidates)
}

/// One worker's placement at one moment: what [`rank`] and [`best`] judge
/// candidates with.
#[derive(Clone, Copy)]
pub struct Placement<'a> {
    pub worker: &'a Worker,
    pub model: &'a Model,
    pub fleet: &'a Fleet,
    pub policy: &'a Policy,
    pub now_ms: i64,
    /// Where ratios come from; `None` works each out afresh.
    pub pricer: Option<&'a dyn Pricer>,
}

impl Placement<'_> {
    /// Every candidate the worker may take, best first ([`rank`]).
    pub fn rank<'c>(&self, candidates: &'c [Candidate]) -> Vec<&'c str> {
        let mut out = Vec::new();
        for p in open_partitions(self.worker.pool.capacity, self.policy, true) {
            let mut all = Vec::new();
            standings(self, candidates, p, |s| all.push(s));
            all.sort_by(Standing::cmp);
            out.extend(all.iter().map(|s| s.task_id));
        }
        out
    }

    /// The first of [`Placement::rank`], without ranking the rest.
    pub fn best<'c>(&self, candidates: &'c [Candidate]) -> Option<&'c str> {
        for p in open_partitions(self.worker.pool.capacity, self.policy, true) {
            let mut first: Option<Standing> = None;
            standings(self, candidates, p, |s| {
                if first.is_none_or(|f| s.cmp(&f).is_lt()) {
                    first = Some(s);
                }
            });
            if let Some(s) = first {
                return Some(s.task_id);
            }
        }
        None
    }

    /// `c`'s [`ratio`] on the worker, from the pricer when there is one.
    fn ratio(&self, c: &Candidate) -> (f64, f64) {
        match self.pricer {
            Some(pricer) => pricer.ratio(self.worker, c, self.model, self.fleet),
            None => ratio(self.worker, c, self.model, self.fleet),
        }
    }
}

/// First in, first out among the tasks `worker` can run: the baseline
/// placement is measured against.
pub fn fifo(worker: &Worker, candidates: &[Candidate]) -> Option<String> {
    fifo_best(worker, candidates).map(str::to_string)
}

/// Whether `c` is of partition `p` and `worker` can run it now.
fn able_now(worker: &Worker, c: &Candidate, p: Capacity) -> bool {
    c.partition == p
        && worker.can_run(&c.demand)
        && worker.sessions_allow(&c.demand)
        && worker.keeps_pin(c)
}

fn fifo_cmp(a: &&Candidate, b: &&Candidate) -> std::cmp::Ordering {
    a.order
        .cmp(&b.order)
        .then_with(|| a.task_id.cmp(&b.task_id))
}

/// The tasks `worker` can run, its partitions in order, oldest first.
pub fn fifo_rank<'c>(worker: &Worker, candidates: &'c [Candidate]) -> Vec<&'c str> {
    let mut out = Vec::new();
    for p in open_partitions(worker.pool.capacity, &Policy::default(), false) {
        let mut able: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| able_now(worker, c, p))
            .collect();
        able.sort_by(fifo_cmp);
        out.extend(able.iter().map(|c| c.task_id.as_ref()));
    }
    out
}

/// The first of [`fifo_rank`].
pub fn fifo_best<'c>(worker: &Worker, candidates: &'c [Candidate]) -> Option<&'c str> {
    open_partitions(worker.pool.capacity, &Policy::default(), false).find_map(|p| {
        candidates
            .iter()
            .filter(|c| able_now(worker, c, p))
            .min_by(fifo_cmp)
            .map(|c| c.task_id.as_ref())
    })
}

/// The bounded window both stores pass to [`place`]: the oldest
/// `per_class` tasks of each partition × queue class, in order.
pub fn window(mut all: Vec<Candidate<'_>>, per_class: usize) -> Vec<Candidate<'_>> {
    all.sort_by_key(|c| c.order);
    let mut taken: std::collections::BTreeMap<(bool, &str), usize> = Default::default();
    all.into_iter()
        .filter(|c| {
            let n = taken
                .entry((c.partition == Capacity::Spot, c.demand.class()))
                .or_default();
            *n += 1;
            *n <= per_class
        })
        .collect()
}
