//! `spotenc pools`, `spotenc costs` and `spotenc capacity`: the pool
//! catalogue, the codec cost model and the capacity planner as a
//! coordinator sees them, as tables or JSON.

use spotenc_proto::pb;

use spotenc_proto::client::JobClient;

use crate::client::{self, status_error, ConnArgs};

/// Which of the coordinator's fleet views to show.
#[derive(Debug, Clone, Copy)]
pub enum View {
    Pools,
    Costs,
    Capacity,
}

/// Fetches one view from the coordinator and prints it, as a table or
/// JSON.
pub async fn show(view: View, json: bool, conn: &ConnArgs) -> anyhow::Result<bool> {
    let mut c = client::connect(conn).await?;
    let text = match view {
        View::Pools => {
            let rows = pools(&mut c).await?;
            if json {
                pools_json(&rows) + "\n"
            } else {
                pools_table(&rows)
            }
        }
        View::Costs => {
            let rows = costs(&mut c).await?;
            if json {
                costs_json(&rows) + "\n"
            } else {
                costs_table(&rows)
            }
        }
        View::Capacity => {
            let rows = capacity(&mut c).await?;
            if json {
                capacity_json(&rows) + "\n"
            } else {
                capacity_table(&rows)
            }
        }
    };
    print!("{text}");
    Ok(true)
}

pub async fn pools(client: &mut JobClient) -> anyhow::Result<Vec<pb::PoolStatus>> {
    Ok(client
        .get_pools(pb::GetPoolsRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .pools)
}

pub async fn costs(client: &mut JobClient) -> anyhow::Result<Vec<pb::CostEntry>> {
    Ok(client
        .get_costs(pb::GetCostsRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .entries)
}

pub fn pools_json(pools: &[pb::PoolStatus]) -> String {
    let rows: Vec<serde_json::Value> = pools
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "capacity": p.capacity,
                "instance_type": p.instance_type,
                "zones": p.zones,
                "hardware": p.hardware,
                "gpu": p.gpu,
                "vcpus": p.vcpus,
                "memory_gib": p.memory_gib,
                "slots": p.slots,
                "price_per_hour": p.price_per_hour,
                "on_demand_price_per_hour": p.on_demand_price_per_hour,
                "interruption_rate_per_hour": p.interruption_rate_per_hour,
                "measured_interruption_rate_per_hour": p.measured_interruption_rate_per_hour,
                "interruptions": p.interruptions,
                "worker_hours": p.worker_hours,
                "live_workers": p.live_workers,
                "min_workers": p.min_workers,
                "max_workers": p.max_workers,
                "launch_seconds": p.launch_seconds,
                "origin": p.origin,
                "source": p.source,
            })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

pub fn pools_table(pools: &[pb::PoolStatus]) -> String {
    let mut out = format!(
        "{:<24} {:<9} {:<13} {:<5} {:>5} {:>5} {:>8} {:>8} {:>10} {:>10} {:<8}\n",
        "POOL",
        "CAPACITY",
        "TYPE",
        "HW",
        "SLOTS",
        "LIVE",
        "$/H",
        "OD $/H",
        "INTR/H ASM",
        "INTR/H MSR",
        "ORIGIN"
    );
    for p in pools {
        out.push_str(&format!(
            "{:<24} {:<9} {:<13} {:<5} {:>5} {:>5} {:>8.4} {:>8.4} {:>10.4} {:>10} {:<8}\n",
            p.name,
            p.capacity,
            p.instance_type,
            p.hardware,
            p.slots,
            p.live_workers,
            p.price_per_hour,
            p.on_demand_price_per_hour,
            p.interruption_rate_per_hour,
            if p.worker_hours > 0.0 {
                format!(
                    "{:.4} ({}/{:.2}h)",
                    p.measured_interruption_rate_per_hour, p.interruptions, p.worker_hours
                )
            } else {
                "-".into()
            },
            p.origin,
        ));
    }
    out
}

fn codec_name(c: i32) -> &'static str {
    match pb::Codec::try_from(c) {
        Ok(pb::Codec::H264) => "h264",
        Ok(pb::Codec::Hevc) => "hevc",
        _ => "?",
    }
}

pub fn costs_json(entries: &[pb::CostEntry]) -> String {
    let rows: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            let pools: serde_json::Map<String, serde_json::Value> = e
                .pools
                .iter()
                .map(|p| (p.pool.clone(), p.dollars_per_output_minute.into()))
                .collect();
            serde_json::json!({
                "class": e.class,
                "family": e.family,
                "codec": codec_name(e.codec),
                "preset": e.preset,
                "band": e.band,
                "prior_pixels_per_second": e.prior_pixels_per_second,
                "learned_pixels_per_second": e.learned_pixels_per_second,
                "samples": e.samples,
                "measured": e.measured,
                "bits_per_pixel": e.bits_per_pixel,
                "psnr_db": e.psnr,
                "dollars_per_output_minute_1080p30": pools,
            })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

pub fn costs_table(entries: &[pb::CostEntry]) -> String {
    let mut out = format!(
        "{:<13} {:<8} {:<5} {:<9} {:<6} {:>10} {:>10} {:>7} {:>8} {:>7}  $/OUT-MIN 1080P30 BY POOL\n",
        "CLASS", "FAMILY", "CODEC", "PRESET", "BAND", "PRIOR MP/S", "LEARNED", "SAMPLES", "BITS/PX", "PSNR"
    );
    for e in entries {
        let pools: Vec<String> = e
            .pools
            .iter()
            .map(|p| format!("{} {:.5}", p.pool, p.dollars_per_output_minute))
            .collect();
        let or_dash =
            |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
        out.push_str(&format!(
            "{:<13} {:<8} {:<5} {:<9} {:<6} {:>10.2} {:>10.2} {:>7} {:>8} {:>7}  {}\n",
            e.class,
            e.family,
            codec_name(e.codec),
            e.preset,
            e.band,
            e.prior_pixels_per_second / 1e6,
            e.learned_pixels_per_second / 1e6,
            e.samples,
            or_dash(e.bits_per_pixel, 4),
            or_dash(e.psnr, 2),
            pools.join(", ")
        ));
    }
    out
}

pub async fn capacity(client: &mut JobClient) -> anyhow::Result<Vec<pb::PoolCapacity>> {
    Ok(client
        .get_capacity(pb::GetCapacityRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .pools)
}

pub fn capacity_json(pools: &[pb::PoolCapacity]) -> String {
    let rows: Vec<serde_json::Value> = pools
        .iter()
        .map(|p| {
            serde_json::json!({
                "pool": p.pool,
                "capacity": p.capacity,
                "live": p.live,
                "busy": p.busy,
                "desired": p.desired,
                "backlog_seconds": p.backlog_seconds,
                "work_share": p.work_share,
                "price_per_hour": p.price_per_hour,
                "health": p.health,
                "interruption_rate_per_hour": p.interruption_rate_per_hour,
                "health_until_unix_ms": p.health_until_unix_ms,
                "why": p.reason,
            })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

pub fn capacity_table(pools: &[pb::PoolCapacity]) -> String {
    let mut s = format!(
        "{:<24} {:<9} {:>5} {:>5} {:>8} {:>9} {:<12} why\n",
        "pool", "capacity", "live", "busy", "desired", "$/h", "health"
    );
    for p in pools {
        s.push_str(&format!(
            "{:<24} {:<9} {:>5} {:>5} {:>8} {:>9.4} {:<12} {}\n",
            p.pool, p.capacity, p.live, p.busy, p.desired, p.price_per_hour, p.health, p.reason
        ));
    }
    s
}
