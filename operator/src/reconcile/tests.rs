//! The operator's pure decisions.

use super::*;
use crate::crd::{CapacityType, HardwareType, WorkerPoolSpec};
use spotenc_core::cost::catalogue::Catalogue;
use spotenc_deploy::render;

/// The WorkerPool for a built-in catalogue pool, as `kubectl get -o yaml`
/// would show it once created (with a uid).
pub(crate) fn worker_pool(name: &str) -> WorkerPool {
    let p = Catalogue::builtin().get(name).expect(name).clone();
    let mut wp = WorkerPool::new(
        name,
        WorkerPoolSpec {
            capacity: match p.capacity {
                spotenc_proto::domain::Capacity::Spot => CapacityType::Spot,
                spotenc_proto::domain::Capacity::OnDemand => CapacityType::OnDemand,
            },
            instance_type: p.instance_type.clone(),
            zones: p.zones.clone(),
            hardware: match p.hardware.name() {
                "nvenc" => HardwareType::Nvenc,
                "qsv" => HardwareType::Qsv,
                _ => HardwareType::Cpu,
            },
            gpu: (!p.gpu.is_empty()).then(|| p.gpu.clone()),
            gpus: p.gpus,
            vcpus: p.vcpus,
            memory_gib: p.memory_gib,
            slots: p.slots,
            price_per_hour: p.price_per_hour,
            on_demand_price_per_hour: p.on_demand_price_per_hour,
            interruption_rate_per_hour: p.interruption_rate_per_hour,
            min_workers: p.min_workers,
            max_workers: p.max_workers,
            launch_seconds: Some(p.launch_seconds),
            source: Some(p.source.clone()),
        },
    );
    wp.metadata.namespace = Some("spotenc".into());
    wp.metadata.uid = Some("6b1f3c52-0000-4000-8000-000000000001".into());
    wp.metadata.generation = Some(3);
    wp
}

#[test]
fn a_pool_gets_exactly_what_deploy_render_writes_for_it_plus_its_owner() {
    let wp = worker_pool("g4dn-xlarge-spot");
    let o = RenderOptions::default();
    let applied = desired_objects(&wp, &o).unwrap();

    let pools = "[[pools]]\nname = \"g4dn-xlarge-spot\"\n";
    let catalogue = spotenc_core::cost::pools::parse_pools(pools, "pools.toml").unwrap();
    let file = render(&catalogue, &o)
        .unwrap()
        .into_iter()
        .find(|f| f.path == "pools/g4dn-xlarge-spot.yaml")
        .unwrap();
    let rendered: Vec<Value> = file
        .text
        .split("\n---\n")
        .map(|d| serde_yaml::from_str(d).unwrap())
        .collect();
    assert_eq!(applied.len(), 3);
    for (mut a, r) in applied.into_iter().zip(rendered) {
        let owners = a["metadata"]["ownerReferences"].clone();
        assert_eq!(owners[0]["kind"], "WorkerPool");
        assert_eq!(owners[0]["apiVersion"], "spotenc.io/v1alpha1");
        assert_eq!(owners[0]["uid"], "6b1f3c52-0000-4000-8000-000000000001");
        assert_eq!(owners[0]["controller"], true);
        assert_eq!(a["metadata"]["namespace"], "spotenc");
        let meta = a["metadata"].as_object_mut().unwrap();
        meta.remove("ownerReferences");
        meta.remove("namespace");
        assert_eq!(a, r, "{}", r["kind"]);
    }
}

#[test]
fn a_spec_deploy_render_would_refuse_is_refused_naming_the_field() {
    let mut wp = worker_pool("g4dn-xlarge-spot");
    wp.spec.gpus = None;
    let e = desired_objects(&wp, &RenderOptions::default()).unwrap_err();
    assert!(
        e.contains("pool \"g4dn-xlarge-spot\": gpus is missing"),
        "{e}"
    );
    let mut wp = worker_pool("c6i-4xlarge-spot");
    wp.spec.min_workers = 9;
    wp.spec.max_workers = 2;
    let e = desired_objects(&wp, &RenderOptions::default()).unwrap_err();
    assert!(e.contains("min_workers 9 is above max_workers 2"), "{e}");
    let mut wp = worker_pool("c6i-4xlarge-spot");
    wp.metadata.uid = None;
    assert!(desired_objects(&wp, &RenderOptions::default())
        .unwrap_err()
        .contains("no uid"));
}

fn row(busy: u32) -> PoolCapacity {
    PoolCapacity {
        pool: "c6i-4xlarge-spot".into(),
        live: 5,
        busy,
        desired: 7,
        health: "healthy".into(),
        reason: "3 slots of cost work".into(),
        ..PoolCapacity::default()
    }
}

#[test]
fn status_reports_the_coordinators_row_or_why_there_is_none() {
    let wp = worker_pool("c6i-4xlarge-spot");
    let s = status(&wp, Ok(Some(&row(2))));
    assert_eq!(
        (s.observed_workers, s.busy_workers, s.desired_workers),
        (5, 2, 7)
    );
    assert_eq!(s.health, "healthy");
    assert_eq!(s.observed_generation, Some(3));
    let s = status(&wp, Ok(None));
    assert_eq!(s.health, "unknown");
    assert!(s.reason.contains("no pool of this name"), "{}", s.reason);
    let s = status(&wp, Err("connection refused".into()));
    assert!(s
        .reason
        .contains("coordinator unreachable: connection refused"));
}

#[test]
fn a_deleted_pool_waits_for_busy_workers_and_for_an_answer() {
    assert!(
        matches!(deletion(Ok(Some(&row(2)))), Deletion::Wait(w) if w.contains("2 workers still hold leases"))
    );
    assert!(matches!(deletion(Err("down".into())), Deletion::Wait(w) if w.contains("cannot tell")));
    assert_eq!(deletion(Ok(Some(&row(0)))), Deletion::Release);
    assert_eq!(deletion(Ok(None)), Deletion::Release);
}

#[test]
fn errors_back_off_from_5_s_to_5_minutes() {
    let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
}
