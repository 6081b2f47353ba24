//! The coordinator's TOML configuration, with `SPOTENC_*` environment
//! overrides. The loader takes the text and an environment map, so tests are
//! deterministic.
//!
//! ```toml
//! listen = "0.0.0.0:50051"
//! metrics_listen = "0.0.0.0:9464"   # Prometheus /metrics (off by default)
//! data_dir = "/var/lib/spotenc"
//! lease_ttl_ms = 15000            # a worker silent this long loses its task
//! heartbeat_interval_ms = 2000    # at most half the TTL
//! stall_seconds = 120             # a task with no progress this long fails, retryably
//! retention_hours = 168           # then ended jobs (logs, keys) and silent workers go
//! max_expiries = 5                # lease expiries a task survives
//! pools_file = "/etc/spotenc/pools.toml"  # more [[pools]] (or SPOTENC_POOLS)
//! builtin_pools = true             # false: exactly the [[pools]] listed here and in pools_file
//! insecure_no_auth = false         # serve a non-loopback address without tokens
//!
//! [redis]                          # omit for the embedded store
//! url = "redis://10.0.0.5:6379/0"  # or redis+cluster://h1:6379,h2:6379 (Redis Cluster)
//! prefix = "spotenc"               # keys are {spotenc}:…, one hash slot
//!
//! [tls]                            # omit for plaintext
//! cert = "/etc/spotenc/tls.crt"
//! key = "/etc/spotenc/tls.key"
//!
//! [[tokens]]                       # none: authentication is off
//! name = "ci"
//! role = "client"                  # client | worker | admin
//! token_env = "SPOTENC_TOKEN_CI"   # or token = "..."
//!
//! [s3]                             # omit: file paths only
//! endpoint = "http://127.0.0.1:3900"  # omit for AWS S3
//! region = "garage"
//! bucket = "spotenc-work"          # intermediate objects
//! allowed_buckets = ["media"]      # inputs and outputs
//! path_style = true                # default true
//! presign_ttl_seconds = 3600
//! multipart_threshold_bytes = 4294967296  # stitched outputs above go up in parts
//! part_size_bytes = 67108864       # 5 MiB ..= 5 GiB
//! # keys from SPOTENC_S3_ACCESS_KEY_ID / SPOTENC_S3_SECRET_ACCESS_KEY
//! # (or the variables access_key_id_env / secret_access_key_env name)
//!
//! [[pools]]                        # override or extend the built-in catalogue
//! name = "c6i-4xlarge-spot"        # a built-in name: only the fields given change
//! price_per_hour = 0.25
//!
//! [quotas]                         # per client (token name; "anonymous" without auth), 0: none
//! queued_jobs_per_client = 10000   # jobs not ended; more are refused (RESOURCE_EXHAUSTED)
//! watch_streams_per_client = 64    # open WatchJob streams, per replica
//!
//! [files]                          # where local inputs and outputs may lie; none: refused
//! input_roots = ["/srv/media/in"]  # or SPOTENC_INPUT_ROOTS=/a:/b
//! output_roots = ["/srv/media/out"] # or SPOTENC_OUTPUT_ROOTS; never inside data_dir
//!
//! [placement]
//! enabled = true                   # false (or SPOTENC_PLACEMENT=fifo): first in, first out
//! max_placement_delay_seconds = 60 # a task waiting longer goes to a worker within max_cost_ratio ...
//! max_wait_for_cheaper_seconds = 600 # ... and after this much longer to any capable worker
//! max_cost_ratio = 2.0             # a spot worker leaves spot work dearer than this × its cheapest pool
//! on_demand_declines_spot = false  # true: on-demand workers leave it too (idle rather than work)
//! nvenc_util_limit_pct = 90        # a GPU at this NVENC utilisation gets no further session
//! affinity_wait_seconds = 300      # a job whose encoder identity no live worker has for this long restarts under another
//! delivered_price_per_gb = 0.0     # $ per GB of output delivered: adds each identity's expected bytes to its cost (0: off)
//!
//! [capacity]                       # the planner behind spotenc_pool_desired_workers
//! latency_target_seconds = 600     # latency work drains within this
//! cost_target_seconds = 7200       # cost work drains within this
//! on_demand_baseline = 0.15        # on-demand floor: this share of the spot work, on the on-demand pool cheapest for it (0..=0.20)
//! max_pool_share = 1.0             # hard cap on one pool's share of the spot work (1: none; spread is by reclaim risk)
//! pool_reclaims_per_day = 0.143    # expected pool-wide reclaims of a spot pool, what spreading is weighed against
//! reclaim_burst = 3                # this many interruptions of a pool ...
//! reclaim_window_seconds = 300     # ... within this mark it reclaimed ...
//! cooldown_seconds = 1800          # ... for this long (also for unavailable pools)
//! ```
//!
//! Overrides: `SPOTENC_LISTEN`, `SPOTENC_DATA_DIR`, `SPOTENC_REDIS`,
//! `SPOTENC_REDIS_PREFIX`, `SPOTENC_LEASE_TTL_MS`,
//! `SPOTENC_HEARTBEAT_INTERVAL_MS`, `SPOTENC_STALL_SECONDS`,
//! `SPOTENC_RETENTION_HOURS`,
//! `SPOTENC_MAX_EXPIRIES`, `SPOTENC_TLS_CERT`, `SPOTENC_TLS_KEY`,
//! `SPOTENC_POOLS`, `SPOTENC_PLACEMENT`, `SPOTENC_INSECURE_NO_AUTH`, `SPOTENC_INPUT_ROOTS`, `SPOTENC_OUTPUT_ROOTS`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use spotenc_proto::auth::Role;
use spotenc_proto::{Error, Result};

use crate::auth::Tokens;
use crate::{Config, Placement, StateBackend, TlsFiles};
use spotenc_core::cost::capacity::CapacityPolicy;
use spotenc_core::cost::catalogue::{Catalogue, PoolEntry};
use spotenc_core::cost::place::Policy;
use spotenc_core::cost::pools::parse_pool_entries;
use spotenc_storage::broker::S3Config;
use spotenc_storage::s3::S3Settings;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    metrics_listen: Option<String>,
    data_dir: Option<PathBuf>,
    lease_ttl_ms: Option<u32>,
    heartbeat_interval_ms: Option<u32>,
    stall_seconds: Option<u32>,
    retention_hours: Option<f64>,
    max_expiries: Option<u32>,
    redis: Option<RedisSection>,
    tls: Option<TlsFiles>,
    #[serde(default)]
    tokens: Vec<TokenSection>,
    s3: Option<S3Section>,
    quotas: Option<QuotasSection>,
    /// A TOML file of `[[pools]]` tables, applied after the ones here.
    pools_file: Option<PathBuf>,
    /// false: the catalogue is exactly the pools listed, without the
    /// built-in ones (what `spotenc deploy render` writes, so the planner
    /// never plans a pool that has no Deployment).
    builtin_pools: Option<bool>,
    #[serde(default)]
    pools: Vec<PoolEntry>,
    insecure_no_auth: Option<bool>,
    placement: Option<PlacementSection>,
    capacity: Option<CapacitySection>,
    files: Option<FilesSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesSection {
    #[serde(default)]
    input_roots: Vec<PathBuf>,
    #[serde(default)]
    output_roots: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlacementSection {
    enabled: Option<bool>,
    max_placement_delay_seconds: Option<f64>,
    max_wait_for_cheaper_seconds: Option<f64>,
    max_cost_ratio: Option<f64>,
    on_demand_declines_spot: Option<bool>,
    nvenc_util_limit_pct: Option<u32>,
    affinity_wait_seconds: Option<f64>,
    delivered_price_per_gb: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CapacitySection {
    latency_target_seconds: Option<f64>,
    cost_target_seconds: Option<f64>,
    on_demand_baseline: Option<f64>,
    max_pool_share: Option<f64>,
    pool_reclaims_per_day: Option<f64>,
    reclaim_burst: Option<u32>,
    reclaim_window_seconds: Option<f64>,
    cooldown_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotasSection {
    queued_jobs_per_client: Option<u32>,
    watch_streams_per_client: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct S3Section {
    endpoint: Option<String>,
    region: String,
    bucket: String,
    #[serde(default)]
    allowed_buckets: Vec<String>,
    #[serde(default = "yes")]
    path_style: bool,
    access_key_id_env: Option<String>,
    secret_access_key_env: Option<String>,
    presign_ttl_seconds: Option<u64>,
    multipart_threshold_bytes: Option<u64>,
    part_size_bytes: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisSection {
    url: String,
    prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSection {
    name: String,
    role: Role,
    token: Option<spotenc_proto::secret::Secret>,
    token_env: Option<String>,
}

fn parse_env<T: std::str::FromStr>(env: &HashMap<String, String>, key: &str) -> Result<Option<T>> {
    env.get(key)
        .map(|v| {
            v.parse()
                .map_err(|_| Error::invalid(format!("invalid {key}={v:?}")))
        })
        .transpose()
}

/// The defaults every deployment starts from.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
pub const DEFAULT_LEASE_TTL_MS: u32 = 15_000;
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u32 = 2_000;
pub const DEFAULT_MAX_EXPIRIES: u32 = 5;
/// Jobs one client may have queued or running: a runaway script stops here
/// instead of filling the store.
pub const DEFAULT_QUEUED_JOBS_PER_CLIENT: u32 = 10_000;
/// WatchJob streams one client may hold open on one replica.
pub const DEFAULT_WATCH_STREAMS_PER_CLIENT: u32 = 64;
/// A week: long enough to look at last week's failures.
pub const DEFAULT_RETENTION_HOURS: f64 = 168.0;

/// The process environment, as `load` reads it.
type Env = HashMap<String, String>;

/// Builds a [`Config`] from TOML text (may be empty) and environment
/// overrides, then validates it. Each part has its phase below; an
/// environment variable wins over the file, the file over the default.
pub fn load(text: &str, env: &Env) -> Result<Config> {
    let file: FileConfig =
        toml::from_str(text).map_err(|e| Error::invalid(format!("config: {e}")))?;
    let (listen, metrics_listen) = addresses(file.listen, file.metrics_listen, env)?;
    let state = state_backend(file.redis, env);
    let tls = tls(file.tls, env)?;
    let tokens = tokens(file.tokens, env)?;
    let s3 = file.s3.map(|s| s3(s, env)).transpose()?;
    let pools = pools(file.pools, file.pools_file, file.builtin_pools, env)?;
    let placement = placement(file.placement.unwrap_or_default(), env)?;
    let mut capacity = capacity(file.capacity.unwrap_or_default())?;
    // The planner plans spot overflow only where placement would run it.
    capacity.max_cost_ratio = placement.policy.max_cost_ratio;
    let insecure_no_auth = match env.get("SPOTENC_INSECURE_NO_AUTH").map(String::as_str) {
        Some("1" | "true") => true,
        Some("0" | "false") | None => file.insecure_no_auth.unwrap_or(false),
        Some(other) => {
            return Err(Error::invalid(format!(
                "invalid SPOTENC_INSECURE_NO_AUTH={other:?} (expected 1 or 0)"
            )))
        }
    };
    let data_dir = env
        .get("SPOTENC_DATA_DIR")
        .map(PathBuf::from)
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./spotenc-data"));
    let files = files(file.files.unwrap_or_default(), data_dir.clone(), env)?;
    let q = file.quotas.unwrap_or_default();
    let config = Config {
        files,
        insecure_no_auth,
        pools,
        placement,
        capacity,
        s3,
        listen,
        metrics_listen,
        state,
        data_dir,
        lease_ttl_ms: parse_env(env, "SPOTENC_LEASE_TTL_MS")?
            .or(file.lease_ttl_ms)
            .unwrap_or(DEFAULT_LEASE_TTL_MS),
        heartbeat_interval_ms: parse_env(env, "SPOTENC_HEARTBEAT_INTERVAL_MS")?
            .or(file.heartbeat_interval_ms)
            .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL_MS),
        quotas: crate::Quotas {
            queued_jobs_per_client: q
                .queued_jobs_per_client
                .unwrap_or(DEFAULT_QUEUED_JOBS_PER_CLIENT),
            watch_streams_per_client: q
                .watch_streams_per_client
                .unwrap_or(DEFAULT_WATCH_STREAMS_PER_CLIENT),
        },
        retention: retention(file.retention_hours, env)?,
        stall_seconds: parse_env(env, "SPOTENC_STALL_SECONDS")?
            .or(file.stall_seconds)
            .unwrap_or(spotenc_proto::DEFAULT_STALL_SECONDS),
        max_expiries: parse_env(env, "SPOTENC_MAX_EXPIRIES")?
            .or(file.max_expiries)
            .unwrap_or(DEFAULT_MAX_EXPIRIES),
        reap_interval_ms: 500,
        tokens,
        tls,
    };
    config.validate()?;
    Ok(config)
}

/// The gRPC and metrics addresses.
fn addresses(
    listen: Option<String>,
    metrics_listen: Option<String>,
    env: &Env,
) -> Result<(SocketAddr, Option<SocketAddr>)> {
    let listen = env
        .get("SPOTENC_LISTEN")
        .cloned()
        .or(listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen: SocketAddr = listen
        .parse()
        .map_err(|_| Error::invalid(format!("invalid listen address {listen:?}")))?;
    let metrics_listen = match env
        .get("SPOTENC_METRICS_LISTEN")
        .cloned()
        .or(metrics_listen)
    {
        Some(a) => Some(
            a.parse::<SocketAddr>()
                .map_err(|_| Error::invalid(format!("invalid metrics_listen address {a:?}")))?,
        ),
        None => None,
    };
    Ok((listen, metrics_listen))
}

/// Redis when a URL is given, else the embedded store.
fn state_backend(redis: Option<RedisSection>, env: &Env) -> StateBackend {
    let url = env
        .get("SPOTENC_REDIS")
        .cloned()
        .or(redis.as_ref().map(|r| r.url.clone()));
    match url {
        None => StateBackend::Embedded,
        Some(url) => StateBackend::Redis {
            url,
            prefix: env
                .get("SPOTENC_REDIS_PREFIX")
                .cloned()
                .or(redis.and_then(|r| r.prefix))
                .unwrap_or_else(|| "spotenc".into()),
        },
    }
}

/// The TLS files: both from the environment, or the file's.
fn tls(from_file: Option<TlsFiles>, env: &Env) -> Result<Option<TlsFiles>> {
    match (
        env.get("SPOTENC_TLS_CERT"),
        env.get("SPOTENC_TLS_KEY"),
        from_file,
    ) {
        (Some(cert), Some(key), _) => Ok(Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
        })),
        (None, None, t) => Ok(t),
        _ => Err(Error::invalid(
            "SPOTENC_TLS_CERT and SPOTENC_TLS_KEY go together",
        )),
    }
}

/// Bearer tokens, each given inline or by the variable holding it, and at
/// least 16 characters long.
fn tokens(sections: Vec<TokenSection>, env: &Env) -> Result<Tokens> {
    let mut tokens = Tokens::default();
    for t in sections {
        let secret = match (&t.token, &t.token_env) {
            (Some(s), None) => s.expose().to_string(),
            (None, Some(var)) => env.get(var).cloned().ok_or_else(|| {
                Error::invalid(format!(
                    "token {:?}: environment variable {var} is not set",
                    t.name
                ))
            })?,
            _ => {
                return Err(Error::invalid(format!(
                    "token {:?}: set exactly one of token and token_env",
                    t.name
                )))
            }
        };
        if secret.len() < 16 {
            return Err(Error::invalid(format!(
                "token {:?} is {} characters (expected at least 16)",
                t.name,
                secret.len()
            )));
        }
        tokens.add(&t.name, &secret, t.role);
    }
    Ok(tokens)
}

/// The S3 section, its keys read from the environment.
fn s3(s: S3Section, env: &Env) -> Result<S3Config> {
    let secret = |var: Option<String>, default: &str| {
        let var = var.unwrap_or_else(|| default.to_string());
        env.get(&var)
            .cloned()
            .ok_or_else(|| Error::invalid(format!("[s3]: environment variable {var} is not set")))
    };
    Ok(S3Config {
        settings: S3Settings {
            endpoint: s.endpoint,
            region: s.region,
            bucket: s.bucket,
            access_key_id: secret(s.access_key_id_env, "SPOTENC_S3_ACCESS_KEY_ID")?,
            secret_access_key: secret(s.secret_access_key_env, "SPOTENC_S3_SECRET_ACCESS_KEY")?
                .into(),
            path_style: s.path_style,
        },
        allowed_buckets: s.allowed_buckets,
        presign_ttl: Duration::from_secs(
            s.presign_ttl_seconds.unwrap_or(3600).clamp(60, 7 * 86_400),
        ),
        // One PUT takes at most 5 GB; stay well below it.
        multipart_threshold_bytes: s.multipart_threshold_bytes.unwrap_or(4 << 30),
        // S3 parts are 5 MiB to 5 GiB, at most 10,000 of them.
        part_size_bytes: s
            .part_size_bytes
            .unwrap_or(64 << 20)
            .clamp(5 << 20, 5 << 30),
    })
}

/// The catalogue: the built-in pools with the file's `[[pools]]` and the
/// pools file's applied over them, or exactly the listed ones.
fn pools(
    mut entries: Vec<PoolEntry>,
    pools_file: Option<PathBuf>,
    builtin_pools: Option<bool>,
    env: &Env,
) -> Result<Catalogue> {
    if let Some(path) = env.get("SPOTENC_POOLS").map(PathBuf::from).or(pools_file) {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::invalid(format!("pool catalogue {}: {e}", path.display())))?;
        let file = path.display().to_string();
        entries
            .extend(parse_pool_entries(&text, &file).map_err(|e| Error::invalid(e.to_string()))?);
    }
    let mut pools = Catalogue::load(&entries)?;
    if builtin_pools == Some(false) {
        if entries.is_empty() {
            return Err(Error::invalid(
                "builtin_pools = false but no [[pools]] are listed: the catalogue would be empty",
            ));
        }
        pools
            .pools
            .retain(|name, _| entries.iter().any(|e| &e.name == name));
    }
    Ok(pools)
}

/// Placement: on unless SPOTENC_PLACEMENT=fifo, and its policy.
fn placement(p: PlacementSection, env: &Env) -> Result<Placement> {
    let delay = p.max_placement_delay_seconds.unwrap_or(60.0);
    if !(delay.is_finite() && (0.0..=86_400.0).contains(&delay)) {
        return Err(Error::invalid(format!(
            "invalid placement.max_placement_delay_seconds {delay} (expected 0..=86400)"
        )));
    }
    let cheaper = p.max_wait_for_cheaper_seconds.unwrap_or(600.0);
    if !(cheaper.is_finite() && (0.0..=86_400.0).contains(&cheaper)) {
        return Err(Error::invalid(format!(
            "invalid placement.max_wait_for_cheaper_seconds {cheaper} (expected 0..=86400)"
        )));
    }
    let ratio = p.max_cost_ratio.unwrap_or(Policy::default().max_cost_ratio);
    if !(ratio.is_finite() && ratio >= 1.0) {
        return Err(Error::invalid(format!(
            "invalid placement.max_cost_ratio {ratio} (expected >= 1)"
        )));
    }
    let util = p.nvenc_util_limit_pct.unwrap_or(90);
    if !(1..=100).contains(&util) {
        return Err(Error::invalid(format!(
            "invalid placement.nvenc_util_limit_pct {util} (expected 1..=100)"
        )));
    }
    let wait = p.affinity_wait_seconds.unwrap_or(300.0);
    if !(wait.is_finite() && (0.0..=86_400.0).contains(&wait)) {
        return Err(Error::invalid(format!(
            "invalid placement.affinity_wait_seconds {wait} (expected 0..=86400)"
        )));
    }
    let delivered = p.delivered_price_per_gb.unwrap_or(0.0);
    if !(delivered.is_finite() && delivered >= 0.0) {
        return Err(Error::invalid(format!(
            "invalid placement.delivered_price_per_gb {delivered} (expected >= 0)"
        )));
    }
    let enabled = match env.get("SPOTENC_PLACEMENT").map(String::as_str) {
        Some("cost") => true,
        Some("fifo") => false,
        Some(other) => {
            return Err(Error::invalid(format!(
                "invalid SPOTENC_PLACEMENT={other:?} (expected cost or fifo)"
            )))
        }
        None => p.enabled.unwrap_or(true),
    };
    Ok(Placement {
        enabled,
        policy: Policy {
            max_placement_delay_ms: (delay * 1000.0) as i64,
            max_wait_for_cheaper_ms: (cheaper * 1000.0) as i64,
            max_cost_ratio: ratio,
            on_demand_declines_spot: p.on_demand_declines_spot.unwrap_or(false),
            spot_closed: false,
            // Set per lease, from the live workers.
            avoid_rejected_ms: Policy::default().avoid_rejected_ms,
        },
        nvenc_util_limit_pct: util,
        affinity_wait_ms: (wait * 1000.0) as i64,
        delivered_price_per_gb: delivered,
    })
}

/// The capacity planner's policy, each field over its default.
fn capacity(c: CapacitySection) -> Result<CapacityPolicy> {
    let d = CapacityPolicy::default();
    let capacity = CapacityPolicy {
        latency_target_seconds: c.latency_target_seconds.unwrap_or(d.latency_target_seconds),
        cost_target_seconds: c.cost_target_seconds.unwrap_or(d.cost_target_seconds),
        on_demand_baseline: c.on_demand_baseline.unwrap_or(d.on_demand_baseline),
        max_pool_share: c.max_pool_share.unwrap_or(d.max_pool_share),
        pool_reclaims_per_day: c.pool_reclaims_per_day.unwrap_or(d.pool_reclaims_per_day),
        // Placement's, set by the caller.
        max_cost_ratio: d.max_cost_ratio,
        reclaim_burst: c.reclaim_burst.unwrap_or(d.reclaim_burst),
        reclaim_window_seconds: c.reclaim_window_seconds.unwrap_or(d.reclaim_window_seconds),
        cooldown_seconds: c.cooldown_seconds.unwrap_or(d.cooldown_seconds),
    };
    capacity
        .validate()
        .map_err(|e| Error::invalid(format!("invalid {e}")))?;
    Ok(capacity)
}

/// Where local inputs and outputs may lie (absolute roots; a variable's
/// list is `:`-separated).
fn files(f: FilesSection, data_dir: PathBuf, env: &Env) -> Result<spotenc_storage::Files> {
    let roots = |var: &str, from_file: Vec<PathBuf>| -> Result<Vec<PathBuf>> {
        let roots: Vec<PathBuf> = match env.get(var) {
            Some(v) => v
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
            None => from_file,
        };
        match roots.iter().find(|r| !r.is_absolute()) {
            Some(r) => Err(Error::invalid(format!(
                "[files] root {} is not an absolute path",
                r.display()
            ))),
            None => Ok(roots),
        }
    };
    Ok(spotenc_storage::Files {
        input_roots: roots("SPOTENC_INPUT_ROOTS", f.input_roots)?,
        output_roots: roots("SPOTENC_OUTPUT_ROOTS", f.output_roots)?,
        data_dir,
    })
}

/// How long ended jobs and silent workers are kept.
fn retention(from_file: Option<f64>, env: &Env) -> Result<Duration> {
    let hours = parse_env(env, "SPOTENC_RETENTION_HOURS")?
        .or(from_file)
        .unwrap_or(DEFAULT_RETENTION_HOURS);
    if !(hours > 0.0 && hours <= 1e6) {
        return Err(Error::invalid(format!(
            "invalid retention_hours {hours} (expected above 0, at most 1000000)"
        )));
    }
    Ok(Duration::from_secs_f64(hours * 3600.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const EXAMPLE: &str = r#"
listen = "0.0.0.0:6000"
data_dir = "/srv/spotenc"
lease_ttl_ms = 20000
[redis]
url = "redis://10.0.0.5:6379/0"
[[tokens]]
name = "ci"
role = "client"
token_env = "CI_TOKEN"
[[tokens]]
name = "fleet"
role = "worker"
token = "0123456789abcdef-worker"
"#;

    #[test]
    fn file_then_environment() {
        let c = load(
            EXAMPLE,
            &env(&[
                ("CI_TOKEN", "0123456789abcdef-ci"),
                ("SPOTENC_LEASE_TTL_MS", "30000"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:6000".parse().unwrap());
        assert_eq!(c.lease_ttl_ms, 30_000);
        assert_eq!(c.heartbeat_interval_ms, DEFAULT_HEARTBEAT_INTERVAL_MS);
        assert_eq!(
            c.state,
            StateBackend::Redis {
                url: "redis://10.0.0.5:6379/0".into(),
                prefix: "spotenc".into()
            }
        );
        assert!(!c.tokens.is_empty());
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = load("", &env(&[])).unwrap();
        assert_eq!(c.state, StateBackend::Embedded);
        assert!(c.tokens.is_empty());
        assert_eq!(c.lease_ttl_ms, DEFAULT_LEASE_TTL_MS);
    }

    #[test]
    fn mistakes_are_named() {
        let e = load(EXAMPLE, &env(&[])).unwrap_err().to_string();
        assert!(e.contains("CI_TOKEN is not set"), "{e}");
        let e = load("lease_ttl = 5", &env(&[])).unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
        let e = load("", &env(&[("SPOTENC_LEASE_TTL_MS", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SPOTENC_LEASE_TTL_MS"), "{e}");
        let short = "[[tokens]]\nname = \"x\"\nrole = \"admin\"\ntoken = \"short\"\n";
        let e = load(short, &env(&[])).unwrap_err().to_string();
        assert!(e.contains("at least 16"), "{e}");
    }

    #[test]
    fn builtin_pools_false_keeps_exactly_the_listed_pools() {
        let listed = "builtin_pools = false\n[[pools]]\nname = \"c6i-4xlarge-spot\"\n\
                      [[pools]]\nname = \"mine\"\ncapacity = \"spot\"\ninstance_type = \"x.large\"\n\
                      hardware = \"cpu\"\nvcpus = 2\nmemory = 4\nslots = 1\nprice_per_hour = 0.1\n\
                      max_workers = 3\n";
        let c = load(listed, &env(&[])).unwrap();
        let names: Vec<&str> = c.pools.pools.keys().map(String::as_str).collect();
        assert_eq!(names, ["c6i-4xlarge-spot", "mine"]);
        // The built-in entry still supplies the fields not given.
        assert_eq!(c.pools.get("c6i-4xlarge-spot").unwrap().vcpus, 16);
        assert!(load("", &env(&[])).unwrap().pools.pools.len() > 2);
        let e = load("builtin_pools = false", &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("catalogue would be empty"), "{e}");
    }
}
