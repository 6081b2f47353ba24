//! The placement replay against FIFO on small fleets.

use proptest::prelude::*;
use spotenc_core::cost::catalogue::Catalogue;
use spotenc_core::cost::model::{prior, Key, Model, Shape};
use spotenc_core::cost::place::Policy;
use spotenc_proto::domain::{Codec, Priority};

use super::{bench_fleet, mixed_workload, replay, SimJob, SimPool};

fn pool(name: &str) -> spotenc_core::cost::catalogue::Pool {
    Catalogue::builtin().get(name).unwrap().clone()
}

fn small_fleet(g4dn: u32, c6i: u32, m5: u32) -> Vec<SimPool> {
    bench_fleet(&Catalogue::builtin(), g4dn, c6i, m5)
}

fn jobs_strategy() -> impl Strategy<Value = Vec<SimJob>> {
    prop::collection::vec(
        (
            prop::bool::ANY,
            prop_oneof![
                Just((1280u32, 720u32)),
                Just((1920, 1080)),
                Just((3840, 2160))
            ],
            10u32..120,
            0u32..600,
        ),
        1..10,
    )
    .prop_map(|jobs| {
        let mut v: Vec<SimJob> = jobs
            .into_iter()
            .map(|(hevc, (w, h), dur, at)| SimJob {
                submit_at_s: f64::from(at),
                codec: if hevc { Codec::Hevc } else { Codec::H264 },
                preset: "medium".into(),
                width: w,
                height: h,
                fps: 30,
                duration_s: dur,
                chunk_seconds: 20.0,
                priority: Priority::Cost,
            })
            .collect();
        v.sort_by(|a, b| a.submit_at_s.total_cmp(&b.submit_at_s));
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    // On the same replay, every job finishes, no task waits beyond the
    // placement delay plus the queue ahead of it, and while no task goes
    // overdue (the fleet keeps up) placement never costs more than FIFO
    // (1% tolerance). Overdue tasks go to any capable worker, as the
    // starvation rule says, and then a replay can cost more than FIFO:
    // 4K HEVC on a CPU because it waited 60 s for a GPU. The replay bills
    // busy time only (idle workers cost nothing in it), so on-demand
    // workers decline dear spot work here, as an autoscaled fleet's idle
    // on-demand workers need not.
    #[test]
    fn placement_costs_no_more_than_fifo_and_starves_nothing(
        jobs in jobs_strategy(),
        (g, c, m) in (0u32..3, 1u32..4, 0u32..2),
    ) {
        let fleet = small_fleet(g, c, m);
        let m0 = Model::default();
        let policy = Policy { on_demand_declines_spot: true, ..Policy::default() };
        let f = replay(&fleet, &jobs, false, policy, &m0, &m0);
        let p = replay(&fleet, &jobs, true, policy, &m0, &m0);
        prop_assert_eq!(f.jobs_done, jobs.len());
        prop_assert_eq!(p.jobs_done, jobs.len());
        if p.max_wait_s < policy.max_placement_delay_ms as f64 / 1000.0 {
            prop_assert!(
                p.dollars <= f.dollars * 1.01,
                "placement ${} > fifo ${}", p.dollars, f.dollars
            );
        }
        // Longest single encode: a 20 s 4K HEVC chunk on one c6i slot.
        let longest = 20.0 * 30.0 * 3840.0 * 2160.0
            / prior(&Key {
                class: "c6i.4xlarge".into(),
                family: "libx265".into(),
                codec: Codec::Hevc,
                preset: "medium".into(),
                band: "uhd".into(),
            }, &Shape::from(&pool("c6i-4xlarge-spot")));
        let bound = (policy.max_placement_delay_ms + policy.max_wait_for_cheaper_ms) as f64
            / 1000.0
            + longest * jobs.len() as f64 * 8.0;
        prop_assert!(p.max_wait_s <= bound, "waited {} s (bound {bound})", p.max_wait_s);
    }
}

#[test]
fn the_bench_workload_costs_no_more_with_placement() {
    let fleet = small_fleet(2, 8, 1);
    let jobs = mixed_workload(60, 300, 3600.0, 7);
    let m = Model::default();
    let f = replay(&fleet, &jobs, false, Policy::default(), &m, &m);
    let p = replay(&fleet, &jobs, true, Policy::default(), &m, &m);
    assert_eq!(p.jobs_done, 60);
    // With encoder affinity a job's first chunk fixes the pool family of
    // all its chunks, which leaves placement little to choose on this
    // small fleet: it must not cost more than FIFO (here it ties).
    assert!(
        p.dollars_per_output_minute() <= f.dollars_per_output_minute() * 1.0001,
        "placement {} fifo {}",
        p.dollars_per_output_minute(),
        f.dollars_per_output_minute()
    );
}
