//! When a pinned job must give up its encoder identities: a job whose
//! renditions are pinned ([`crate::state::JobRecord::identities`]) waits
//! for a worker that encodes with them; when no live worker has for
//! `wait_ms`, it restarts under another identity
//! ([`crate::state::State::restart_identity`] and the stores'
//! `restart_identity`). The coordinator and the simulator both decide
//! with [`Unserved`].

use std::collections::BTreeMap;

use super::place::Worker;
use crate::state::PinnedJob;

/// Whether some worker of `workers` would take `job`'s waiting chunk with
/// its pinned identities.
pub fn served(job: &PinnedJob, workers: &[Worker]) -> bool {
    workers.iter().any(|w| {
        w.serves(job.partition)
            && w.can_run(&job.demand)
            && w.identity_names(&job.demand) == job.identities
    })
}

/// Since when each pinned job has had no worker to serve it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unserved {
    since_ms: BTreeMap<String, i64>,
}

impl Unserved {
    /// Whether no job is waiting unserved.
    pub fn is_empty(&self) -> bool {
        self.since_ms.is_empty()
    }

    /// The pinned jobs (of `pinned`, all of them) that have waited `wait_ms`
    /// or longer with no worker of `workers` to serve them, each with the
    /// reason to record. Forgets jobs that are served again or no longer
    /// pinned.
    pub fn due(
        &mut self,
        pinned: &[PinnedJob],
        workers: &[Worker],
        wait_ms: i64,
        now_ms: i64,
    ) -> Vec<(PinnedJob, String)> {
        let mut due = Vec::new();
        let mut still = BTreeMap::new();
        for job in pinned {
            if served(job, workers) {
                continue;
            }
            let since = *self.since_ms.get(&job.job_id).unwrap_or(&now_ms);
            still.insert(job.job_id.clone(), since);
            if now_ms - since >= wait_ms {
                let reason = format!(
                    "no live worker encodes with {} for {} s (affinity wait {} s)",
                    job.identities.join(", "),
                    (now_ms - since) / 1000,
                    wait_ms / 1000
                );
                due.push((job.clone(), reason));
            }
        }
        self.since_ms = still;
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::capacity::pool_worker;
    use crate::cost::catalogue::Catalogue;
    use crate::cost::model::{Demand, Model, Output};
    use spotenc_proto::domain::{Capacity, Codec};

    use crate::cost::place::{place, rank, Candidate, Fleet, Policy};
    use crate::cost::tests::{cand, policy, worker};
    use std::borrow::Cow;

    fn job(identities: &[&str]) -> PinnedJob {
        PinnedJob {
            job_id: "j".into(),
            identities: identities.iter().map(|s| s.to_string()).collect(),
            demand: Demand {
                outputs: vec![Output {
                    codec: Codec::H264,
                    preset: "medium".into(),
                    width: 1920,
                    height: 1080,
                    ten_bit: false,
                }],
                frames: 300,
                audio: None,
            },
            partition: Capacity::Spot,
        }
    }

    proptest::proptest! {
        // Over any sequence of checks, a pinned job is due exactly when no
        // worker has served it at any check for the wait or longer: never
        // early, and never later than the first check after that.
        #[test]
        fn a_pin_no_worker_serves_restarts_within_the_wait(
            checks in proptest::collection::vec((1i64..120_000, proptest::bool::ANY), 1..40),
            wait in 0i64..300_000,
        ) {
            let cat = Catalogue::builtin();
            let gpu = [pool_worker(cat.get("g4dn-xlarge-spot").unwrap())];
            let cpu = [pool_worker(cat.get("c6i-4xlarge-spot").unwrap())];
            let pinned = vec![job(&["nvenc-h264-8bit"])];
            let mut u = Unserved::default();
            let (mut now, mut since) = (0i64, None::<i64>);
            for (step, served) in checks {
                now += step;
                let due = u.due(&pinned, if served { &gpu } else { &cpu }, wait, now);
                if served {
                    since = None;
                    proptest::prop_assert!(due.is_empty());
                    continue;
                }
                let from = *since.get_or_insert(now);
                proptest::prop_assert_eq!(due.len() == 1, now - from >= wait);
            }
        }
    }

    #[test]
    fn restarts_only_after_the_wait_without_a_serving_worker() {
        let cat = Catalogue::builtin();
        let gpu = pool_worker(cat.get("g4dn-xlarge-spot").unwrap());
        let cpu = pool_worker(cat.get("c6i-4xlarge-spot").unwrap());
        let pinned = vec![job(&["nvenc-h264-8bit"])];
        let (gpu, cpu) = ([gpu], [cpu]);
        let mut u = Unserved::default();
        // Served: never due.
        assert!(u.due(&pinned, &gpu, 1000, 0).is_empty());
        // Unserved from t=10 s: due at 11 s, not before.
        assert!(u.due(&pinned, &cpu, 1000, 10_000).is_empty());
        assert!(u.due(&pinned, &cpu, 1000, 10_999).is_empty());
        let due = u.due(&pinned, &cpu, 1000, 11_000);
        assert_eq!(due.len(), 1);
        assert!(due[0].1.contains("nvenc-h264-8bit"), "{}", due[0].1);
        // Served again: the clock starts over.
        assert!(u.due(&pinned, &gpu, 1000, 12_000).is_empty());
        assert!(u.due(&pinned, &cpu, 1000, 12_500).is_empty());
    }

    /// A pin changes a chunk's ratio (only pools that keep it count): two
    /// chunks of one demand, one pinned to libx264, are priced apart. The CPU
    /// takes the pinned one at once and leaves the unpinned one to the GPU.
    #[test]
    fn chunks_alike_but_pinned_apart_are_priced_apart() {
        let gpu = worker("g4dn-xlarge-spot", &[Codec::H264, Codec::Hevc]);
        let cpu = worker("c6i-4xlarge-spot", &[Codec::H264, Codec::Hevc]);
        let fleet = Fleet {
            pools: vec![gpu, cpu.clone()],
        };
        let p = Policy {
            max_cost_ratio: 2.0,
            ..policy()
        };
        let free = cand(0, Codec::Hevc, 1920, 1080, 0, 0);
        let mut pinned = cand(1, Codec::Hevc, 1920, 1080, 1, 0);
        pinned.job = 1;
        pinned.pinned = Cow::Owned(cpu.identity_names(&pinned.demand));
        let interned = |mut c: Candidate<'static>| {
            c.interned = Some(7);
            c
        };
        let m = Model::default();
        for cands in [
            vec![free.clone(), pinned.clone()],
            vec![interned(free.clone()), interned(pinned.clone())],
        ] {
            assert_eq!(
                place(&cpu, &cands, &m, &fleet, &p, 0).as_deref(),
                Some("t1")
            );
            let ranked = rank(&cpu, &cands, &m, &fleet, &p, 0);
            assert_eq!(ranked, ["t1"], "the unpinned HEVC chunk is the GPU's");
        }
    }
}
