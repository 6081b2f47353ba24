use std::borrow::Cow;
use std::sync::Arc;

use proptest::prelude::*;
use spotenc_core::cost::catalogue::{nvenc_caps, Catalogue, Hardware};
use spotenc_core::cost::model::{Demand, Model, Output};
use spotenc_core::cost::place::{Candidate, Fleet, Policy, Worker};
use spotenc_core::cost::Lease;
use spotenc_proto::domain::{Capacity, Codec};

use super::Prices;

fn worker(pool: &str, codecs: Vec<Codec>, held: u32, saturated: bool) -> Worker {
    let p = Catalogue::builtin().get(pool).unwrap().clone();
    Worker {
        class: p.instance_type.clone(),
        nvenc: if p.hardware == Hardware::Nvenc {
            nvenc_caps(&codecs, 4096)
        } else {
            vec![]
        },
        codecs,
        sessions_held: held,
        encoder_saturated: saturated,
        params: Default::default(),
        hardware_down: false,
        delivered_price_per_gb: 0.0,
        pool: p,
    }
}

fn arb_worker() -> impl Strategy<Value = Worker> {
    (
        prop_oneof![
            Just("g4dn-xlarge-spot"),
            Just("c6i-4xlarge-spot"),
            Just("m5-4xlarge-ondemand"),
        ],
        prop_oneof![
            Just(vec![Codec::H264]),
            Just(vec![Codec::H264, Codec::Hevc])
        ],
        0u32..4,
        prop::bool::ANY,
    )
        .prop_map(|(p, codecs, held, saturated)| worker(p, codecs, held, saturated))
}

/// Candidates of a few demands (chunks of one job mostly ask alike).
fn arb_window() -> impl Strategy<Value = Vec<Candidate<'static>>> {
    let one = (
        prop::bool::ANY,
        prop_oneof![
            Just((640u32, 360u32)),
            Just((1920, 1080)),
            Just((3840, 2160))
        ],
        prop_oneof![Just(900u64), Just(1800)],
        0u64..100,
        0i64..200_000,
        prop::bool::ANY,
        prop::bool::ANY,
        0usize..4,
    );
    prop::collection::vec(one, 0..12).prop_map(|cands| {
        cands
            .into_iter()
            .enumerate()
            .map(
                |(i, (hevc, (w, h), frames, order, since, od, latency, misc))| Candidate {
                    task_id: format!("t{i}").into(),
                    job: (i % 5) as u64,
                    partition: if od {
                        Capacity::OnDemand
                    } else {
                        Capacity::Spot
                    },
                    order: order * 100 + i as u64,
                    pending_since_ms: since,
                    latency,
                    demand: Cow::Owned(if misc == 0 {
                        Demand::default()
                    } else {
                        Demand {
                            outputs: vec![Output {
                                codec: if hevc { Codec::Hevc } else { Codec::H264 },
                                preset: "medium".into(),
                                width: w,
                                height: h,
                                ten_bit: false,
                            }],
                            frames,
                            audio: None,
                        }
                    }),
                    interned: None,
                    // Some jobs pinned to NVENC, some to libx264/libx265.
                    pinned: Cow::Owned(match (misc, i % 3) {
                        (0, _) | (_, 0) => vec![],
                        (_, f) => {
                            let codec = if hevc { Codec::Hevc } else { Codec::H264 };
                            let family = if f == 1 {
                                "nvenc"
                            } else {
                                codec.software_encoder()
                            };
                            vec![format!("{family}-{}-8bit", codec.name())]
                        }
                    }),
                },
            )
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // A lease that keeps its ratios from one choice to the next (the
    // simulator's) chooses as one that works them out afresh, window after
    // window and through fleet changes.
    #[test]
    fn kept_prices_choose_as_fresh_ones(
        w in arb_worker(),
        fleets in prop::collection::vec(prop::collection::vec(arb_worker(), 0..4), 1..4),
        windows in prop::collection::vec(arb_window(), 1..6),
        now in 0i64..300_000,
    ) {
        let mut kept = Lease {
            worker: Some(w.clone()),
            fleet: Fleet::default(),
            model: Model::default(),
            policy: Policy::default(),
            placement: true,
            pricer: Some(Arc::new(Prices::default())),
        };
        for pools in fleets {
            kept.set_fleet(Fleet { pools });
            let fresh = Lease { pricer: None, ..kept.clone() };
            for cands in &windows {
                prop_assert_eq!(
                    kept.choose(cands, w.sessions_held, now),
                    fresh.choose(cands, w.sessions_held, now)
                );
            }
        }
    }
}
