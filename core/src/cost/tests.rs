use std::borrow::Cow;

use proptest::prelude::*;
use spotenc_proto::domain::{Capacity, Codec, GpuDevice, WorkerInfo};

use super::catalogue::{parse_entries, Catalogue, Hardware, Origin};
use super::model::{Demand, Model, Output};
use super::place::{
    best, fifo, fifo_best, fifo_rank, place, rank, window, Candidate, Fleet, Policy, Worker,
};
use super::Lease;

fn load(text: &str) -> Result<Catalogue, String> {
    parse_entries(text)
        .and_then(|e| Catalogue::load(&e))
        .map_err(|e| e.to_string())
}

#[test]
fn builtin_catalogue_loads_with_sources() {
    let c = Catalogue::builtin();
    for name in [
        "g4dn-xlarge-spot",
        "g4dn-2xlarge-spot",
        "g5-xlarge-spot",
        "g5-2xlarge-spot",
        "c6i-2xlarge-spot",
        "c6i-4xlarge-spot",
        "c7i-2xlarge-spot",
        "c7i-4xlarge-spot",
        "c6a-4xlarge-spot",
        "m5-4xlarge-ondemand",
    ] {
        let p = c.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(!p.source.is_empty(), "{name} has no source");
        assert_eq!(p.origin, Origin::Builtin);
        if p.capacity == Capacity::Spot {
            assert!(p.price_per_hour < p.on_demand_price_per_hour.unwrap());
        }
    }
    assert_eq!(c.get("g4dn-xlarge-spot").unwrap().hardware, Hardware::Nvenc);
}

#[test]
fn a_file_overrides_fields_by_name_and_adds_pools() {
    let c = load(
        r#"
[[pools]]
name = "c6i-4xlarge-spot"
price_per_hour = 0.25
zones = ["us-east-1a"]

[[pools]]
name = "c8g-4xlarge-spot"
capacity = "spot"
instance_type = "c8g.4xlarge"
hardware = "cpu"
vcpus = 16
memory = 32
slots = 2
price_per_hour = 0.2
max_workers = 10
"#,
    )
    .unwrap();
    let p = c.get("c6i-4xlarge-spot").unwrap();
    assert_eq!(p.price_per_hour, 0.25);
    assert_eq!(p.vcpus, 16, "fields not given stay built-in");
    assert_eq!(p.zones, vec!["us-east-1a".to_string()]);
    assert_eq!(p.origin, Origin::File);
    assert_eq!(c.get("c8g-4xlarge-spot").unwrap().launch_seconds, 180);
}

#[test]
fn invalid_entries_refuse_to_load_with_the_field_named() {
    let cases = [
        (
            "[[pools]]\nname = \"c6i-4xlarge-spot\"\nprice_per_hour = -1.0\n",
            "price_per_hour",
        ),
        (
            "[[pools]]\nname = \"c6i-4xlarge-spot\"\nhardware = \"tpu\"\n",
            "unknown hardware \"tpu\"",
        ),
        (
            "[[pools]]\nname = \"c6i-4xlarge-spot\"\nprice_per_hour = 0.9\n",
            "above on_demand_price_per_hour",
        ),
        (
            "[[pools]]\nname = \"new\"\ncapacity = \"spot\"\nhardware = \"cpu\"\n",
            "pool \"new\": instance_type is missing",
        ),
        (
            "[[pools]]\nname = \"c6i-4xlarge-spot\"\ncapacity = \"sometimes\"\n",
            "capacity",
        ),
        (
            "[[pools]]\nname = \"c6i-4xlarge-spot\"\nslots = 0\n",
            "slots 0 is invalid",
        ),
        (
            "[[pools]]\nname = \"x\"\nprice = 1\n",
            "unknown field `price`",
        ),
    ];
    for (text, want) in cases {
        let e = load(text).unwrap_err();
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

fn cpu_info(pool: &str, instance_type: &str) -> WorkerInfo {
    WorkerInfo {
        name: "w".into(),
        pool: pool.into(),
        hardware: "cpu".into(),
        slots: 2,
        cores: 8,
        memory_bytes: 16 << 30,
        codecs: vec![Codec::H264, Codec::Hevc],
        instance_type: instance_type.into(),
        zone: "us-east-1a".into(),
        capacity: Capacity::Spot,
        gpus: vec![],
        encoder: "libx264/libx265".into(),
        encoder_params: Default::default(),
    }
}

#[test]
fn an_unknown_pool_gets_a_derived_entry_priced_like_its_type() {
    let c = Catalogue::builtin();
    let (p, known) = c.resolve(&cpu_info("spot-cpu-a", "c6i.4xlarge"));
    assert!(!known);
    assert_eq!(p.origin, Origin::Derived);
    assert_eq!(
        p.price_per_hour,
        c.get("c6i-4xlarge-spot").unwrap().price_per_hour
    );
    assert_eq!(p.slots, 2);
    // No type: priced like the dearest pool of its hardware and capacity.
    let (p, _) = c.resolve(&cpu_info("mystery", ""));
    assert_eq!(p.price_per_hour, 0.2924);
    assert_eq!(c.label("mystery"), "other");
    assert_eq!(c.label("c6i-4xlarge-spot"), "c6i-4xlarge-spot");
}

// --- placement -----------------------------------------------------------

fn pool(name: &str) -> super::catalogue::Pool {
    Catalogue::builtin().get(name).unwrap().clone()
}

pub(super) fn worker(pool_name: &str, codecs: &[Codec]) -> Worker {
    let p = pool(pool_name);
    let nvenc = if p.hardware == Hardware::Nvenc {
        super::catalogue::nvenc_caps(codecs, 4096)
    } else {
        vec![]
    };
    Worker {
        class: p.instance_type.clone(),
        codecs: codecs.to_vec(),
        nvenc,
        sessions_held: 0,
        encoder_saturated: false,
        params: Default::default(),
        hardware_down: false,
        delivered_price_per_gb: 0.0,
        pool: p,
    }
}

pub(super) fn cand(
    id: usize,
    codec: Codec,
    w: u32,
    h: u32,
    order: u64,
    since: i64,
) -> Candidate<'static> {
    Candidate {
        task_id: format!("t{id}").into(),
        job: id as u64,
        partition: Capacity::Spot,
        order,
        pending_since_ms: since,
        latency: false,
        demand: Cow::Owned(Demand {
            outputs: vec![Output {
                codec,
                preset: "medium".into(),
                width: w,
                height: h,
                ten_bit: false,
            }],
            frames: 1800,
            audio: None,
        }),
        interned: None,
        pinned: Cow::Borrowed(&[]),
    }
}

pub(super) fn policy() -> Policy {
    Policy {
        max_placement_delay_ms: 60_000,
        max_wait_for_cheaper_ms: 600_000,
        max_cost_ratio: 1000.0,
        on_demand_declines_spot: true,
        spot_closed: false,
        avoid_rejected_ms: 300_000,
    }
}

#[test]
fn gpu_takes_hevc_and_cpu_takes_h264() {
    let gpu = worker("g4dn-xlarge-spot", &[Codec::H264, Codec::Hevc]);
    let cpu = worker("c6i-4xlarge-spot", &[Codec::H264, Codec::Hevc]);
    let fleet = Fleet {
        pools: vec![gpu.clone(), cpu.clone()],
    };
    let cands = vec![
        cand(0, Codec::H264, 1920, 1080, 0, 0),
        cand(1, Codec::Hevc, 1920, 1080, 1, 0),
    ];
    let m = Model::default();
    assert_eq!(
        place(&gpu, &cands, &m, &fleet, &policy(), 0).as_deref(),
        Some("t1")
    );
    assert_eq!(
        place(&cpu, &cands, &m, &fleet, &policy(), 0).as_deref(),
        Some("t0")
    );
    // The GPU prefers 4K HEVC over 1080p HEVC: more saved against the CPU.
    let cands = vec![
        cand(0, Codec::Hevc, 1920, 1080, 0, 0),
        cand(1, Codec::Hevc, 3840, 2160, 1, 0),
    ];
    assert_eq!(
        place(&gpu, &cands, &m, &fleet, &policy(), 0).as_deref(),
        Some("t1")
    );
}

/// A spot worker several times dearer than the task's cheapest pool leaves
/// it: past the placement delay it still waits for the cheap pool, and only
/// once it has also waited `max_wait_for_cheaper_ms` does the dear worker
/// take it. A worker within `max_cost_ratio` takes it at the delay.
#[test]
fn dear_spot_work_waits_for_a_cheaper_pool_for_a_priced_while() {
    let gpu = worker("g4dn-xlarge-spot", &[Codec::H264, Codec::Hevc]);
    let cpu = worker("c6i-4xlarge-spot", &[Codec::H264, Codec::Hevc]);
    let fleet = Fleet {
        pools: vec![gpu, cpu.clone()],
    };
    let p = Policy {
        max_placement_delay_ms: 60_000,
        max_wait_for_cheaper_ms: 600_000,
        max_cost_ratio: 4.0,
        on_demand_declines_spot: true,
        spot_closed: false,
        avoid_rejected_ms: 300_000,
    };
    let cands = vec![cand(0, Codec::Hevc, 1920, 1080, 0, 0)];
    let m = Model::default();
    assert_eq!(place(&cpu, &cands, &m, &fleet, &p, 59_999), None);
    assert_eq!(place(&cpu, &cands, &m, &fleet, &p, 60_000), None);
    assert_eq!(place(&cpu, &cands, &m, &fleet, &p, 659_999), None);
    assert_eq!(
        place(&cpu, &cands, &m, &fleet, &p, 660_000).as_deref(),
        Some("t0")
    );
    // Overdue and within the ratio (a second CPU pool is as cheap): at once.
    let c6a = worker("c6a-4xlarge-spot", &[Codec::H264, Codec::Hevc]);
    let cpus = Fleet {
        pools: vec![c6a, cpu.clone()],
    };
    let tight = Policy {
        max_cost_ratio: 1.1,
        ..p
    };
    assert_eq!(
        place(&cpu, &cands, &m, &cpus, &tight, 60_000).as_deref(),
        Some("t0")
    );
}

/// By default an idle on-demand worker takes dear spot work rather than
/// sit idle at on-demand prices; with `on_demand_declines_spot` it waits.
#[test]
fn idle_on_demand_takes_dear_spot_work_unless_told_not_to() {
    let gpu = worker("g4dn-xlarge-spot", &[Codec::H264, Codec::Hevc]);
    let m5 = worker("m5-4xlarge-ondemand", &[Codec::H264, Codec::Hevc]);
    let fleet = Fleet {
        pools: vec![gpu, m5.clone()],
    };
    let cands = vec![cand(0, Codec::Hevc, 1920, 1080, 0, 0)];
    let m = Model::default();
    let p = Policy::default();
    assert_eq!(
        place(&m5, &cands, &m, &fleet, &p, 1_000).as_deref(),
        Some("t0")
    );
    let declines = Policy {
        on_demand_declines_spot: true,
        spot_closed: false,
        avoid_rejected_ms: 300_000,
        ..p
    };
    assert_eq!(place(&m5, &cands, &m, &fleet, &declines, 1_000), None);
}

#[test]
fn the_oldest_task_of_a_latency_job_goes_first() {
    let cpu = worker("m5-4xlarge-ondemand", &[Codec::H264, Codec::Hevc]);
    let mut a = cand(0, Codec::H264, 640, 360, 0, 0);
    let mut b = cand(1, Codec::Hevc, 3840, 2160, 1, 0);
    a.partition = Capacity::OnDemand;
    b.partition = Capacity::OnDemand;
    b.latency = true;
    let fleet = Fleet {
        pools: vec![cpu.clone()],
    };
    let got = place(&cpu, &[a, b], &Model::default(), &fleet, &policy(), 0);
    assert_eq!(got.as_deref(), Some("t1"));
}

#[test]
fn a_saturated_gpu_gets_no_encode_but_still_gets_small_tasks() {
    let mut gpu = worker("g4dn-xlarge-spot", &[Codec::H264, Codec::Hevc]);
    gpu.encoder_saturated = true;
    let mut stitch = cand(9, Codec::H264, 0, 0, 9, 0);
    stitch.demand = Cow::Owned(Demand::default());
    let cands = vec![cand(0, Codec::H264, 1920, 1080, 0, 0), stitch];
    let fleet = Fleet {
        pools: vec![gpu.clone()],
    };
    let got = place(&gpu, &cands, &Model::default(), &fleet, &policy(), 0);
    assert_eq!(got.as_deref(), Some("t9"));
}

#[test]
fn nvenc_limits_decide_capability() {
    let mut gpu = worker("g4dn-xlarge-spot", &[Codec::H264]);
    gpu.codecs = vec![];
    gpu.nvenc[0].max_width = 1920;
    gpu.nvenc[0].max_height = 1080;
    let fleet = Fleet {
        pools: vec![gpu.clone()],
    };
    let cands = vec![
        cand(0, Codec::H264, 3840, 2160, 0, 0),
        cand(1, Codec::Hevc, 1920, 1080, 1, 0),
    ];
    let m = Model::default();
    assert_eq!(place(&gpu, &cands, &m, &fleet, &policy(), 999_999), None);
    assert_eq!(fifo(&gpu, &cands), None);
}

#[test]
fn the_window_keeps_the_oldest_of_each_class() {
    let mut all: Vec<Candidate> = (0..20)
        .map(|i| cand(i, Codec::H264, 1920, 1080, i as u64, 0))
        .collect();
    all.push(cand(99, Codec::Hevc, 1920, 1080, 99, 0));
    let w = window(all, 4);
    let ids: Vec<&str> = w.iter().map(|c| c.task_id.as_ref()).collect();
    assert_eq!(ids, ["t0", "t1", "t2", "t3", "t99"]);
}

fn arb_candidate() -> impl Strategy<Value = Candidate<'static>> {
    (
        0usize..50,
        prop::bool::ANY,
        prop_oneof![
            Just((640u32, 360u32)),
            Just((1920, 1080)),
            Just((3840, 2160))
        ],
        0u64..100,
        0i64..200_000,
        prop::bool::ANY,
        prop::bool::ANY,
        0usize..3,
    )
        .prop_map(|(id, hevc, (w, h), order, since, od, latency, misc)| {
            let codec = if hevc { Codec::Hevc } else { Codec::H264 };
            let mut c = cand(id, codec, w, h, order * 100 + id as u64, since);
            c.job = (id % 5) as u64;
            c.latency = latency;
            if od {
                c.partition = Capacity::OnDemand;
            }
            if misc == 0 {
                c.demand = Cow::Owned(Demand::default());
            }
            c
        })
}

fn arb_worker() -> impl Strategy<Value = Worker> {
    (
        prop_oneof![
            Just("g4dn-xlarge-spot"),
            Just("c6i-4xlarge-spot"),
            Just("m5-4xlarge-ondemand"),
            Just("c7i-2xlarge-spot"),
        ],
        prop_oneof![
            Just(vec![Codec::H264]),
            Just(vec![Codec::Hevc]),
            Just(vec![Codec::H264, Codec::Hevc]),
        ],
        0u32..4,
        prop::bool::ANY,
    )
        .prop_map(|(p, codecs, held, saturated)| {
            let mut w = worker(p, &codecs);
            w.sessions_held = held;
            w.encoder_saturated = saturated;
            w
        })
}

/// Task ids made unique, as a store's are.
fn unique(mut cands: Vec<Candidate>) -> Vec<Candidate> {
    for (i, c) in cands.iter_mut().enumerate() {
        c.task_id = format!("t{i}").into();
    }
    cands
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // What place picks is a candidate the worker can encode, in a
    // partition it serves, and the same whatever the candidates' order.
    #[test]
    fn place_is_capable_and_deterministic(
        w in arb_worker(),
        fleet in prop::collection::vec(arb_worker(), 0..4),
        cands in prop::collection::vec(arb_candidate(), 0..12),
        now in 0i64..300_000,
    ) {
        let cands = unique(cands);
        let fleet = Fleet { pools: fleet };
        let m = Model::default();
        let got = place(&w, &cands, &m, &fleet, &Policy::default(), now);
        let mut reversed = cands.clone();
        reversed.reverse();
        prop_assert_eq!(&got, &place(&w, &reversed, &m, &fleet, &Policy::default(), now));
        if let Some(id) = got {
            let c = cands.iter().find(|c| c.task_id == id).unwrap();
            prop_assert!(w.can_run(&c.demand));
            prop_assert!(c.partition == Capacity::Spot || w.pool.capacity == Capacity::OnDemand);
        }
    }

    // The embedded store leases `best` without ranking the rest; Redis
    // claims down the ranking: both start from the same task.
    #[test]
    fn best_is_the_first_of_the_ranking(
        w in arb_worker(),
        fleet in prop::collection::vec(arb_worker(), 0..4),
        cands in prop::collection::vec(arb_candidate(), 0..12),
        now in 0i64..300_000,
        declines in prop::bool::ANY,
        closed in prop::bool::ANY,
    ) {
        let cands = unique(cands);
        let fleet = Fleet { pools: fleet };
        let m = Model::default();
        let policy = Policy { on_demand_declines_spot: declines, spot_closed: closed, ..Policy::default() };
        let ranked = rank(&w, &cands, &m, &fleet, &policy, now);
        prop_assert_eq!(best(&w, &cands, &m, &fleet, &policy, now), ranked.first().copied());
        prop_assert_eq!(fifo_best(&w, &cands), fifo_rank(&w, &cands).first().copied());
        for placement in [true, false] {
            for worker in [Some(w.clone()), None] {
                let lease = Lease { worker, fleet: fleet.clone(), model: m.clone(), policy, placement, pricer: None };
                let held = w.sessions_held + 1;
                prop_assert_eq!(
                    lease.choose(&cands, held, now),
                    lease.rank(&cands, held, now).first().copied()
                );
            }
        }
    }

    // No starvation: once a capable task has waited past the delay and the
    // priced wait for a cheaper pool, the worker takes some task (never
    // nothing).
    #[test]
    fn overdue_work_is_never_declined(
        w in arb_worker(),
        cands in prop::collection::vec(arb_candidate(), 1..12),
    ) {
        let cands = unique(cands);
        let p = Policy { max_placement_delay_ms: 60_000, max_wait_for_cheaper_ms: 600_000, max_cost_ratio: 1.0, on_demand_declines_spot: true, spot_closed: false, avoid_rejected_ms: 300_000 };
        let now = 1_000_000;
        let fleet = Fleet { pools: vec![worker("g4dn-xlarge-spot", &[Codec::H264, Codec::Hevc])] };
        let got = place(&w, &cands, &Model::default(), &fleet, &p, now);
        let able = |c: &Candidate| {
            w.can_run(&c.demand)
                && (c.partition == Capacity::Spot || w.pool.capacity == Capacity::OnDemand)
                && (c.demand.outputs.is_empty()
                    || w.pool.hardware != Hardware::Nvenc
                    || (!w.encoder_saturated
                        && w.sessions_held + c.demand.sessions() <= w.pool.slots))
        };
        if cands.iter().any(able) {
            prop_assert!(got.is_some());
        }
    }
}

#[test]
fn gpu_worker_info_resolves_to_nvenc() {
    let mut info = cpu_info("g4dn-xlarge-spot", "g4dn.xlarge");
    info.encoder = "nvenc".into();
    info.gpus = vec![GpuDevice {
        index: 0,
        name: "Tesla T4".into(),
        uuid: String::new(),
        pci_bus_id: String::new(),
        memory_total_bytes: 0,
        driver_version: String::new(),
        nvenc: vec![],
        nvenc_unavailable: String::new(),
    }];
    let (p, known) = Catalogue::builtin().resolve(&info);
    assert!(known);
    assert_eq!(p.hardware, Hardware::Nvenc);
}

#[test]
fn class_ranks_sort_as_class_names_do() {
    let mut demands = vec![Demand::default()];
    for codec in [Codec::H264, Codec::Hevc] {
        for (w, h) in [(640, 360), (1280, 720), (1920, 1080), (3840, 2160)] {
            let mut d = cand(0, codec, w, h, 0, 0).demand.into_owned();
            d.frames = 1;
            demands.push(d);
        }
    }
    let mut names: Vec<&str> = demands.iter().map(Demand::class).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 9, "every class once: {names:?}");
    for a in &demands {
        for b in &demands {
            assert_eq!(
                a.class_rank().cmp(&b.class_rank()),
                a.class().cmp(b.class()),
                "{} against {}",
                a.class(),
                b.class()
            );
        }
    }
}

#[test]
fn ten_bit_work_goes_to_nvenc_only_where_the_gpu_encodes_ten_bits() {
    let ten_bit = |c: Candidate<'static>| {
        let mut d = c.demand.into_owned();
        d.outputs[0].ten_bit = true;
        d
    };
    let d = ten_bit(cand(1, Codec::Hevc, 1920, 1080, 0, 0));
    // A GPU worker whose NVENC lacks 10-bit and has no software HEVC.
    let mut gpu = worker("g4dn-xlarge-spot", &[Codec::H264, Codec::Hevc]);
    gpu.codecs.clear();
    for n in &mut gpu.nvenc {
        n.ten_bit = false;
    }
    assert!(!gpu.can_run(&d), "NVENC without 10-bit took 10-bit work");
    assert!(gpu.can_run(&cand(1, Codec::Hevc, 1920, 1080, 0, 0).demand));
    for n in &mut gpu.nvenc {
        n.ten_bit = true;
    }
    assert!(gpu.can_run(&d));
    // A CPU worker with libx265 runs it either way.
    assert!(worker("c6i-2xlarge-spot", &[Codec::Hevc]).can_run(&d));
}

#[test]
fn ten_bit_work_on_an_eight_bit_gpu_is_priced_as_the_cpu_it_falls_back_to() {
    let mut gpu = worker("g4dn-xlarge-spot", &[Codec::H264, Codec::Hevc]);
    for n in &mut gpu.nvenc {
        n.ten_bit = false;
    }
    let mut d = cand(1, Codec::Hevc, 1920, 1080, 0, 0).demand.into_owned();
    let model = Model::default();
    let nvenc_8 = gpu.seconds(&d, &model);
    d.outputs[0].ten_bit = true;
    let cpu_10 = d.seconds_on(
        &gpu.class,
        Hardware::Nvenc,
        |_, _| false,
        &gpu.shape(),
        &model,
    );
    assert_eq!(gpu.seconds(&d, &model), cpu_10);
    assert!(cpu_10 > nvenc_8, "x265 on the host is slower than NVENC");
    for n in &mut gpu.nvenc {
        n.ten_bit = true;
    }
    assert!(gpu.seconds(&d, &model) < cpu_10);
}
