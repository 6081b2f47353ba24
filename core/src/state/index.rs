//! Secondary indexes over [`super::machine::State`]: pending tasks by
//! partition × queue class in first-in first-out order, the blocked tasks
//! waiting on each task and how many dependencies each still waits for,
//! leased tasks by worker, pending spot tasks by the time they escalate,
//! the capacity planner's backlog summed as tasks move, running jobs'
//! paths, and jobs not ended by client. They are derived data,
//! never persisted ([`super::machine::State::reindex`] rebuilds them after a
//! load), and they turn leasing, unblocking and session counting into
//! lookups instead of scans over every job and task: leasing, completing,
//! escalating and reading the backlog cost the same with a thousand tasks
//! pending as with one.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use compact_str::CompactString;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use smallvec::SmallVec;

use spotenc_proto::domain::{Capacity, TaskState};

use super::TaskRecord;
use crate::cost::capacity::{shape_order, BacklogItem};
use crate::cost::model::{Demand, Output};
use crate::cost::place::{job_of, Candidate};
use crate::cost::WINDOW_PER_CLASS;

/// A queue: partition (spot first) and the demand's queue class, as its
/// [`Demand::class_rank`] (which sorts as the names do).
pub type QueueKey = (bool, u8);

/// A lease's candidates: room on the stack for two full queues.
pub type Window<'a> = SmallVec<[Candidate<'a>; 2 * WINDOW_PER_CLASS]>;

/// A task's id as the index keeps it: inline up to 24 bytes (ids here are
/// a job's id and a short suffix), so a copy allocates nothing and a
/// lookup compares the key where the table holds it, reading no second
/// cache line.
type Id = CompactString;

/// A pending task as a lease's window reads it: what placement needs, so
/// that building the window looks up no task record.
#[derive(Debug, Clone)]
struct Waiting {
    id: Id,
    latency: bool,
    /// The task's `pending_since_ms` when it was filed (it changes only
    /// with a change of state, which files the task again).
    since: i64,
    /// Its demand in [`Queues::demands`].
    demand: u32,
}

/// What the index needs of a task's job.
#[derive(Debug, Clone, Copy)]
pub struct JobTraits {
    pub latency: bool,
    /// A pending spot task escalates once it waited longer than this.
    pub escalate_after_ms: i64,
}

/// A backlog bucket: the pool running it (0: pending; else a pool name's
/// id + 1), latency, on-demand partition, and the outputs' shape id.
type BucketKey = (u32, bool, bool, u32);

/// Adds `item` to the set under `key`, copying the key only when it is
/// new: the path and client indexes see the same keys again and again.
fn add_to<S: Default + Extend<Id>>(map: &mut HashMap<String, S>, key: &str, item: &str) {
    match map.get_mut(key) {
        Some(set) => set.extend([Id::from(item)]),
        None => {
            let mut set = S::default();
            set.extend([Id::from(item)]);
            map.insert(key.to_string(), set);
        }
    }
}

/// Tasks alike for the capacity planner ([`crate::cost::capacity::aggregate`]
/// sums the same way from a scan).
#[derive(Debug, Default, Clone)]
struct Bucket {
    count: u32,
    frames: u64,
    /// (pending since, order) of each task in it, pending buckets only:
    /// the first is the oldest.
    since: BTreeSet<(i64, u64)>,
}

/// Where a task is filed.
#[derive(Debug, Clone)]
struct Filed {
    order: u64,
    shape: u32,
    frames: u64,
    traits: JobTraits,
    /// Its demand's queue class ([`Demand::class_rank`]) and its demand
    /// interned ([`Queues::demands`]).
    class: u8,
    demand: u32,
    /// Its backlog bucket and the since it was counted with.
    bucket: Option<(BucketKey, i64)>,
    /// When it escalates, while pending in the spot partition.
    escalates_at: Option<i64>,
    /// The pending queue it is in.
    queued: Option<QueueKey>,
    /// Dependencies not yet done (blocked tasks).
    waiting_for: u32,
}

#[derive(Debug, Default, Clone)]
pub struct Index {
    /// Each task's first-in first-out order (job submission, then position
    /// in the job) and where it is filed.
    filed: HashMap<Id, Filed>,
    /// Blocked tasks by the task they wait on: most tasks have one (their
    /// stitch), kept inline.
    dependents: HashMap<Id, SmallVec<[Id; 1]>>,
    q: Queues,
    /// Outputs and inputs of jobs still running, to the jobs.
    outputs: HashMap<String, Id>,
    inputs: HashMap<String, BTreeSet<Id>>,
    /// Jobs not ended, by the client that submitted them (quotas).
    /// (Only counted: a hash set, as every live job is in one set when
    /// clients are not named.)
    live_by_client: HashMap<String, HashSet<Id>>,
}

/// What a task is filed under, apart from [`Index::filed`] itself (so a
/// task is looked up once per change).
#[derive(Debug, Default, Clone)]
struct Queues {
    /// Pending tasks of live jobs: queue → order → the task.
    pending: BTreeMap<QueueKey, BTreeMap<u64, Waiting>>,
    /// Pending spot tasks by (escalation time, order, queue class).
    escalation: BTreeSet<(i64, u64, u8)>,
    /// The backlog, summed as tasks move.
    buckets: HashMap<BucketKey, Bucket>,
    /// Output shapes interned, and each with the tasks that use it
    /// (counted by id, so that forgetting a task hashes no outputs).
    shape_ids: HashMap<Vec<Output>, u32>,
    shapes: HashMap<u32, (Vec<Output>, u32)>,
    next_shape: u32,
    /// Demands interned by (shape, frames), each with its shape and the
    /// tasks that use it (a window borrows them; chunks of a job share
    /// one). Freed slots are reused.
    demand_ids: HashMap<(u32, u64), u32>,
    demands: Vec<(Demand, u32, u32)>,
    free_demands: Vec<u32>,
    /// Pool names of leased work interned (id + 1 in bucket keys).
    pool_ids: HashMap<String, u32>,
    pool_names: Vec<String>,
    /// Leased tasks by worker, sorted (a worker holds a few at most: a
    /// sorted vector, not a tree node per worker).
    leased: HashMap<Id, Vec<Id>>,
}

/// Derived data: two states with the same records are equal whatever their
/// indexes hold.
impl PartialEq for Index {
    fn eq(&self, _: &Index) -> bool {
        true
    }
}

impl Index {
    /// Notes a new task at `order`; a blocked one waits on its deps, of
    /// which `deps_done` are done already. A task not yet ended is noted as
    /// a dependent of its deps whatever its state: a dep done before may be
    /// undone (the outlier guard sends a chunk back) after a reload.
    pub fn add(&mut self, t: &TaskRecord, order: u64, traits: JobTraits, deps_done: u32) {
        let shape = self.q.intern_shape(&t.demand.outputs);
        let demand = self.q.intern_demand(shape, &t.demand);
        let mut waiting_for = 0;
        if matches!(
            t.state,
            TaskState::Blocked | TaskState::Pending | TaskState::Leased
        ) {
            for d in &t.deps {
                self.dependents
                    .entry(Id::from(d.as_str()))
                    .or_default()
                    .push(Id::from(t.id.as_str()));
            }
        }
        if t.state == TaskState::Blocked {
            waiting_for = (t.deps.len() as u32).saturating_sub(deps_done);
        }
        let mut filed = Filed {
            order,
            shape,
            frames: t.demand.frames,
            traits,
            class: t.demand.class_rank(),
            demand,
            bucket: None,
            escalates_at: None,
            queued: None,
            waiting_for,
        };
        if let Some(mut old) = self.filed.remove(t.id.as_str()) {
            self.q.unfile(&mut old, &t.id, None);
            self.q.release(&old);
        }
        self.q.file(&mut filed, t);
        self.filed.insert(Id::from(t.id.as_str()), filed);
    }

    /// Notes that `done` is done; returns its dependents that now wait for
    /// nothing.
    pub fn done(&mut self, done: &str) -> Vec<String> {
        let mut ready = vec![];
        for id in self
            .dependents
            .get(done)
            .map_or(&[][..], SmallVec::as_slice)
        {
            if let Some(f) = self.filed.get_mut(id) {
                if f.waiting_for > 0 {
                    f.waiting_for -= 1;
                    if f.waiting_for == 0 {
                        ready.push(id.to_string());
                    }
                }
            }
        }
        ready
    }

    /// Notes that `undone`, done before, is to be done again: its blocked
    /// dependents wait for it once more.
    pub fn undone(&mut self, undone: &str) {
        for id in self
            .dependents
            .get(undone)
            .map_or(&[][..], SmallVec::as_slice)
        {
            if let Some(f) = self.filed.get_mut(id) {
                f.waiting_for += 1;
            }
        }
    }

    /// Files `t` under its current state; `was_leased_by` is the worker
    /// that held it before this change, if any.
    pub fn sync(&mut self, t: &TaskRecord, was_leased_by: Option<&str>) {
        let Some(f) = self.filed.get_mut(t.id.as_str()) else {
            return;
        };
        self.q.unfile(f, &t.id, was_leased_by);
        self.q.file(f, t);
    }

    /// The oldest `n` pending tasks of each queue (of the spot partition
    /// only when `spot_only`), as placement's candidates, added to `out`.
    /// A plain loop into the caller's window: a lease builds one each time,
    /// and an iterator chain of filter, flat-map and map cost it twice the
    /// instructions.
    pub fn window_into<'a>(&'a self, n: usize, spot_only: bool, out: &mut Window<'a>) {
        for (&(spot, _), m) in &self.q.pending {
            if spot_only && !spot {
                continue;
            }
            let partition = if spot {
                Capacity::Spot
            } else {
                Capacity::OnDemand
            };
            for (&order, w) in m.iter().take(n) {
                out.push(Candidate {
                    task_id: Cow::Borrowed(&w.id),
                    job: job_of(order),
                    partition,
                    order,
                    pending_since_ms: w.since,
                    latency: w.latency,
                    demand: Cow::Borrowed(&self.q.demands[w.demand as usize].0),
                    interned: Some(w.demand),
                    pinned: Cow::Borrowed(&[]),
                });
            }
        }
    }

    /// Every pending task id.
    pub fn all_pending(&self) -> impl Iterator<Item = &str> + '_ {
        self.q
            .pending
            .values()
            .flat_map(|m| m.values().map(|w| w.id.as_str()))
    }

    /// Pending tasks: (spot, on-demand).
    pub fn depth(&self) -> (u64, u64) {
        let mut d = (0, 0);
        for ((spot, _), m) in &self.q.pending {
            if *spot {
                d.0 += m.len() as u64;
            } else {
                d.1 += m.len() as u64;
            }
        }
        d
    }

    pub fn leased_by(&self, worker: &str) -> impl Iterator<Item = &str> + '_ {
        self.q
            .leased
            .get(worker)
            .into_iter()
            .flat_map(|s| s.iter().map(Id::as_str))
    }

    pub fn all_leased(&self) -> impl Iterator<Item = &str> + '_ {
        self.q
            .leased
            .values()
            .flat_map(|s| s.iter().map(Id::as_str))
    }

    /// Notes a running job's paths.
    pub fn job_paths(&mut self, job_id: &str, input: &str, outputs: &[&str]) {
        for o in outputs {
            self.outputs.insert(o.to_string(), Id::from(job_id));
        }
        add_to(&mut self.inputs, input, job_id);
    }

    /// Forgets an ended job's paths.
    pub fn end_job_paths(&mut self, job_id: &str, input: &str, outputs: &[&str]) {
        for o in outputs {
            if self.outputs.get(*o).is_some_and(|j| j == job_id) {
                self.outputs.remove(*o);
            }
        }
        if let Some(s) = self.inputs.get_mut(input) {
            s.remove(job_id);
            if s.is_empty() {
                self.inputs.remove(input);
            }
        }
    }

    /// Counts (`live`) or uncounts a job towards its client's quota;
    /// repeating either is harmless.
    pub fn client_job(&mut self, client: &str, job_id: &str, live: bool) {
        if live {
            add_to(&mut self.live_by_client, client, job_id);
        } else if let Some(s) = self.live_by_client.get_mut(client) {
            s.remove(job_id);
            if s.is_empty() {
                self.live_by_client.remove(client);
            }
        }
    }

    /// Jobs of `client` that have not ended.
    pub fn client_live(&self, client: &str) -> usize {
        self.live_by_client.get(client).map_or(0, HashSet::len)
    }

    /// The running job that writes `path`, if any.
    pub fn writer(&self, path: &str) -> Option<&str> {
        self.outputs.get(path).map(Id::as_str)
    }

    /// A running job that reads `path`, if any.
    pub fn reader(&self, path: &str) -> Option<&str> {
        self.inputs
            .get(path)
            .and_then(|s| s.iter().next())
            .map(Id::as_str)
    }

    /// Takes a task out of the queues whatever its state says (before its
    /// partition changes).
    pub fn unqueue(&mut self, t: &TaskRecord) {
        if let Some(f) = self.filed.get_mut(t.id.as_str()) {
            self.q.unfile(f, &t.id, None);
        }
    }

    /// Forgets a task that left the state.
    pub fn remove(&mut self, t: &TaskRecord) {
        let leased = (t.state == TaskState::Leased).then_some(t.worker_id.as_str());
        if let Some(mut f) = self.filed.remove(t.id.as_str()) {
            self.q.unfile(&mut f, &t.id, leased);
            self.q.release(&f);
        }
        self.dependents.remove(t.id.as_str());
    }

    /// Pending spot tasks whose escalation time is before `now_ms`, in
    /// queue order (as [`Index::all_pending`] lists them).
    pub fn escalations_due(&self, now_ms: i64) -> Vec<&str> {
        let mut due: Vec<(u8, u64)> = self
            .q
            .escalation
            .iter()
            .take_while(|(at, _, _)| *at < now_ms)
            .map(|&(_, order, class)| (class, order))
            .collect();
        due.sort_unstable();
        due.into_iter()
            .filter_map(|(class, order)| {
                self.q
                    .pending
                    .get(&(true, class))
                    .and_then(|m| m.get(&order))
                    .map(|w| w.id.as_str())
            })
            .collect()
    }

    /// Pending and leased work summed into backlog items, in the order and
    /// with the values [`crate::cost::capacity::aggregate`] gives from a
    /// scan of the same tasks.
    pub fn backlog(&self) -> Vec<BacklogItem> {
        let mut items: Vec<(BucketKey, BacklogItem)> = self
            .q
            .buckets
            .iter()
            .map(|(&key, b)| {
                let (pool, latency, on_demand, shape) = key;
                let running = pool != 0;
                let item = BacklogItem {
                    demand: Demand {
                        outputs: self.q.shapes[&shape].0.clone(),
                        frames: b.frames / u64::from(b.count.max(1)),
                        audio: None,
                    },
                    running,
                    pool: if running {
                        self.q.pool_names[pool as usize - 1].clone()
                    } else {
                        String::new()
                    },
                    latency,
                    on_demand,
                    count: b.count,
                    oldest_ms: b.since.first().map_or(0, |(since, _)| *since),
                };
                (key, item)
            })
            .collect();
        fn order(x: &BacklogItem) -> (Option<&str>, bool, bool) {
            (x.running.then_some(x.pool.as_str()), x.latency, x.on_demand)
        }
        items.sort_by(|(_, a), (_, b)| {
            order(a)
                .cmp(&order(b))
                .then_with(|| shape_order(&a.demand.outputs).cmp(&shape_order(&b.demand.outputs)))
        });
        items.into_iter().map(|(_, item)| item).collect()
    }
}

impl Queues {
    /// Files a task under its current state.
    fn file(&mut self, f: &mut Filed, t: &TaskRecord) {
        let on_demand = t.partition == Capacity::OnDemand;
        let (latency, shape, order) = (f.traits.latency, f.shape, f.order);
        let bucket = match t.state {
            TaskState::Pending => {
                let q = (!on_demand, f.class);
                let waiting = Waiting {
                    id: Id::from(t.id.as_str()),
                    latency,
                    since: t.pending_since_ms,
                    demand: f.demand,
                };
                self.pending.entry(q).or_default().insert(order, waiting);
                f.queued = Some(q);
                if !on_demand {
                    let at = t
                        .pending_since_ms
                        .saturating_add(f.traits.escalate_after_ms);
                    self.escalation.insert((at, order, f.class));
                    f.escalates_at = Some(at);
                }
                (0, latency, on_demand, shape)
            }
            TaskState::Leased => {
                // The worker's id is copied only for its first lease.
                match self.leased.get_mut(t.worker_id.as_str()) {
                    Some(s) => {
                        if let Err(at) = s.binary_search_by(|x| x.as_str().cmp(&t.id)) {
                            s.insert(at, Id::from(t.id.as_str()));
                        }
                    }
                    None => {
                        let ids = vec![Id::from(t.id.as_str())];
                        self.leased.insert(t.worker_id.clone(), ids);
                    }
                }
                let pool = t.history.last().map_or("", |a| a.pool.as_str());
                (self.intern_pool(pool), latency, on_demand, shape)
            }
            _ => return,
        };
        let b = self.buckets.entry(bucket).or_default();
        b.count += 1;
        b.frames += f.frames;
        // Running work's age is read nowhere: no tree node per lease.
        if bucket.0 == 0 {
            b.since.insert((t.pending_since_ms, order));
        }
        f.bucket = Some((bucket, t.pending_since_ms));
    }

    /// Takes a task out of the pending queues, its worker's leases, the
    /// escalation times and the backlog.
    fn unfile(&mut self, f: &mut Filed, id: &str, leased_by: Option<&str>) {
        let order = f.order;
        if let Some(at) = f.escalates_at.take() {
            self.escalation.remove(&(at, order, f.class));
        }
        if let Some((key, since)) = f.bucket.take() {
            if let Some(b) = self.buckets.get_mut(&key) {
                b.count -= 1;
                b.frames -= f.frames;
                if key.0 == 0 {
                    b.since.remove(&(since, order));
                }
                if b.count == 0 {
                    self.buckets.remove(&key);
                }
            }
        }
        if let Some(q) = f.queued.take() {
            if let Some(m) = self.pending.get_mut(&q) {
                if m.remove(&order).is_some() && m.is_empty() {
                    self.pending.remove(&q);
                }
            }
        }
        if let Some(w) = leased_by {
            if let Some(s) = self.leased.get_mut(w) {
                if let Ok(at) = s.binary_search_by(|x| x.as_str().cmp(id)) {
                    s.remove(at);
                }
                if s.is_empty() {
                    self.leased.remove(w);
                }
            }
        }
    }

    fn intern_shape(&mut self, outputs: &[Output]) -> u32 {
        if let Some(&id) = self.shape_ids.get(outputs) {
            self.shapes.get_mut(&id).expect("interned").1 += 1;
            return id;
        }
        let id = self.next_shape;
        self.next_shape += 1;
        self.shape_ids.insert(outputs.to_vec(), id);
        self.shapes.insert(id, (outputs.to_vec(), 1));
        id
    }

    /// `demand` (of shape `shape`) interned.
    fn intern_demand(&mut self, shape: u32, demand: &Demand) -> u32 {
        match self.demand_ids.entry((shape, demand.frames)) {
            Entry::Occupied(e) => {
                let id = *e.get();
                self.demands[id as usize].2 += 1;
                id
            }
            Entry::Vacant(e) => {
                let held = (demand.clone(), shape, 1);
                let id = match self.free_demands.pop() {
                    Some(id) => {
                        self.demands[id as usize] = held;
                        id
                    }
                    None => {
                        self.demands.push(held);
                        self.demands.len() as u32 - 1
                    }
                };
                *e.insert(id)
            }
        }
    }

    /// Drops a forgotten task's hold on its demand and shape; the last
    /// one forgets them.
    fn release(&mut self, f: &Filed) {
        let (demand, shape, refs) = &mut self.demands[f.demand as usize];
        *refs -= 1;
        if *refs == 0 {
            self.demand_ids.remove(&(*shape, demand.frames));
            *demand = Demand::default();
            self.free_demands.push(f.demand);
        }
        self.release_shape(f.shape);
    }

    /// Drops a task's hold on its shape; the last one forgets it.
    fn release_shape(&mut self, id: u32) {
        let Some((_, refs)) = self.shapes.get_mut(&id) else {
            return;
        };
        *refs -= 1;
        if *refs == 0 {
            let (outputs, _) = self.shapes.remove(&id).expect("interned");
            self.shape_ids.remove(&outputs);
        }
    }

    /// A pool name's bucket id (id + 1; 0 is pending). Pool names come
    /// from registered workers, so there are few.
    fn intern_pool(&mut self, pool: &str) -> u32 {
        if let Some(id) = self.pool_ids.get(pool) {
            return id + 1;
        }
        let id = self.pool_names.len() as u32;
        self.pool_names.push(pool.to_string());
        self.pool_ids.insert(pool.to_string(), id);
        id + 1
    }
}
