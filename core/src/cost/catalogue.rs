//! The pool catalogue: every pool the fleet may run in, with its price,
//! hardware and interruption rate. One source of truth for placement,
//! accounting, capacity planning and deployment.
//!
//! The built-in entries (`pools.toml` beside `src/`, each with its source)
//! load first; `[[pools]]` tables from the coordinator's TOML or a
//! `--pools` file then override built-in entries field by field, by name,
//! or add new ones.

use std::collections::BTreeMap;

use serde::Deserialize;
use spotenc_proto::domain::{Capacity, Codec, NvencCodec, WorkerInfo};
use spotenc_proto::{Error, Result};

/// The built-in catalogue text.
pub const BUILTIN: &str = include_str!("../../pools.toml");

/// What encodes in a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hardware {
    Cpu,
    Nvenc,
    Qsv,
}

impl Hardware {
    pub fn name(self) -> &'static str {
        match self {
            Hardware::Cpu => "cpu",
            Hardware::Nvenc => "nvenc",
            Hardware::Qsv => "qsv",
        }
    }
}

impl std::str::FromStr for Hardware {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Hardware::Cpu),
            "nvenc" => Ok(Hardware::Nvenc),
            "qsv" => Ok(Hardware::Qsv),
            other => Err(Error::invalid(format!(
                "unknown hardware {other:?} (expected cpu, nvenc or qsv)"
            ))),
        }
    }
}

/// Where a catalogue entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    File,
    /// Made up for a worker whose pool is not in the catalogue.
    Derived,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Builtin => "builtin",
            Origin::File => "file",
            Origin::Derived => "derived",
        }
    }
}

/// One pool: an instance type in a capacity class, optionally in zones.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub capacity: Capacity,
    pub instance_type: String,
    pub zones: Vec<String>,
    pub hardware: Hardware,
    pub gpu: String,
    /// GPUs per instance; `deploy render` requests them from the device
    /// plugin and refuses a GPU pool without them.
    pub gpus: Option<u32>,
    pub vcpus: u32,
    pub memory_gib: f64,
    /// Concurrent tasks (CPU) or NVENC sessions (GPU) per worker.
    pub slots: u32,
    pub price_per_hour: f64,
    /// For spot pools: what the same type costs on demand.
    pub on_demand_price_per_hour: Option<f64>,
    pub interruption_rate_per_hour: f64,
    pub min_workers: u32,
    pub max_workers: u32,
    pub launch_seconds: u32,
    pub source: String,
    pub origin: Origin,
}

impl Pool {
    /// One pool from a complete entry, validated, with no built-in base
    /// (the operator's WorkerPool spec is one such entry).
    pub fn from_entry(e: &PoolEntry) -> Result<Pool> {
        build(e, None, Origin::File).map_err(|e| Error::invalid(e.to_string()))
    }

    /// The price of one slot for one second.
    pub fn slot_price_per_second(&self) -> f64 {
        self.price_per_hour / 3600.0 / f64::from(self.slots.max(1))
    }

    /// The share of a worker one task holds: its NVENC sessions on an NVENC
    /// pool, one slot elsewhere.
    pub fn share(&self, sessions: u32) -> f64 {
        let used = if self.hardware == Hardware::Nvenc {
            sessions.max(1)
        } else {
            1
        };
        (f64::from(used) / f64::from(self.slots.max(1))).min(1.0)
    }

    /// A catalogue entry for a worker whose pool is not in the catalogue:
    /// its own description, priced like a catalogue pool of the same
    /// instance type and capacity when there is one, else like the most
    /// expensive pool of its hardware (so that unknown capacity is never
    /// preferred for looking cheap).
    pub fn derived(info: &WorkerInfo, catalogue: &Catalogue) -> Pool {
        let hardware = match info.encoder.as_str() {
            "nvenc" => Hardware::Nvenc,
            "qsv" => Hardware::Qsv,
            _ => Hardware::Cpu,
        };
        let same_type = catalogue
            .pools
            .values()
            .find(|p| {
                !info.instance_type.is_empty()
                    && p.instance_type == info.instance_type
                    && p.capacity == info.capacity
            })
            .or_else(|| {
                catalogue
                    .pools
                    .values()
                    .filter(|p| p.hardware == hardware && p.capacity == info.capacity)
                    .max_by(|a, b| a.price_per_hour.total_cmp(&b.price_per_hour))
            });
        let (price, od, rate) = same_type.map_or((1.0, None, 0.0), |p| {
            (
                p.price_per_hour,
                p.on_demand_price_per_hour,
                p.interruption_rate_per_hour,
            )
        });
        Pool {
            name: info.pool.clone(),
            capacity: info.capacity,
            instance_type: info.instance_type.clone(),
            zones: if info.zone.is_empty() {
                vec![]
            } else {
                vec![info.zone.clone()]
            },
            hardware,
            gpu: info
                .gpus
                .first()
                .map(|g| g.name.clone())
                .unwrap_or_default(),
            gpus: u32::try_from(info.gpus.len()).ok().filter(|&n| n > 0),
            vcpus: info.cores.max(1),
            memory_gib: info.memory_bytes as f64 / f64::from(1u32 << 30),
            slots: info.slots.max(1),
            price_per_hour: price,
            on_demand_price_per_hour: od,
            interruption_rate_per_hour: rate,
            min_workers: 0,
            max_workers: 0,
            launch_seconds: 0,
            source: match same_type {
                Some(p) => format!("derived from {}", p.name),
                None => "derived: no catalogue pool of this hardware, $1/h assumed".into(),
            },
            origin: Origin::Derived,
        }
    }
}

/// Every pool by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalogue {
    pub pools: BTreeMap<String, Pool>,
}

/// A `[[pools]]` table as written: every field optional, so a user's entry
/// can override only some fields of a built-in one.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolEntry {
    pub name: String,
    pub capacity: Option<String>,
    pub instance_type: Option<String>,
    pub zones: Option<Vec<String>>,
    pub hardware: Option<String>,
    pub gpu: Option<String>,
    pub gpus: Option<u32>,
    pub vcpus: Option<u32>,
    pub memory: Option<f64>,
    pub slots: Option<u32>,
    pub price_per_hour: Option<f64>,
    pub on_demand_price_per_hour: Option<f64>,
    pub interruption_rate_per_hour: Option<f64>,
    pub min_workers: Option<u32>,
    pub max_workers: Option<u32>,
    pub launch_seconds: Option<u32>,
    pub source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolsFile {
    #[serde(default)]
    pools: Vec<PoolEntry>,
}

/// Parses a TOML text holding `[[pools]]` tables (and nothing else).
pub fn parse_entries(text: &str) -> Result<Vec<PoolEntry>> {
    let f: PoolsFile =
        toml::from_str(text).map_err(|e| Error::invalid(format!("pool catalogue: {e}")))?;
    Ok(f.pools)
}

impl Catalogue {
    /// The built-in catalogue alone.
    pub fn builtin() -> Catalogue {
        Catalogue::load(&[]).expect("the built-in catalogue is valid")
    }

    /// The built-in catalogue with `entries` applied over it, validated.
    pub fn load(entries: &[PoolEntry]) -> Result<Catalogue> {
        Catalogue::check(entries).map_err(|e| Error::invalid(e.to_string()))
    }

    /// [`Catalogue::load`] with the first bad field as a [`PoolError`].
    pub fn check(entries: &[PoolEntry]) -> std::result::Result<Catalogue, PoolError> {
        let mut pools = BTreeMap::new();
        let builtin = parse_entries(BUILTIN).expect("the built-in catalogue parses");
        for e in &builtin {
            pools.insert(e.name.clone(), build(e, None, Origin::Builtin)?);
        }
        for e in entries {
            let base = pools.get(&e.name).cloned();
            pools.insert(e.name.clone(), build(e, base.as_ref(), Origin::File)?);
        }
        Ok(Catalogue { pools })
    }

    pub fn get(&self, name: &str) -> Option<&Pool> {
        self.pools.get(name)
    }

    /// The pool a worker belongs to: its named catalogue entry, else a
    /// derived one (`None` in the second field means it was found).
    pub fn resolve(&self, info: &WorkerInfo) -> (Pool, bool) {
        match self.pools.get(&info.pool) {
            Some(p) => (p.clone(), true),
            None => (Pool::derived(info, self), false),
        }
    }

    /// The label a metric may carry for `pool`: catalogue names as they
    /// are, anything else folded into `other`, so cardinality stays bounded.
    pub fn label<'a>(&self, pool: &'a str) -> &'a str {
        if self.pools.contains_key(pool) {
            pool
        } else {
            "other"
        }
    }
}

/// A pool entry's first bad or missing field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolError {
    pub pool: String,
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pool {:?}: {} {}", self.pool, self.field, self.reason)
    }
}

/// Builds one pool from an entry over an optional base, naming the first
/// bad or missing field.
fn build(
    e: &PoolEntry,
    base: Option<&Pool>,
    origin: Origin,
) -> std::result::Result<Pool, PoolError> {
    let name = e.name.trim();
    let bad = |field: &str, why: String| PoolError {
        pool: name.to_string(),
        field: field.to_string(),
        reason: why,
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(bad(
            "name",
            format!("{name:?} is invalid (expected letters, digits, '-', '_' or '.')"),
        ));
    }
    let missing = |field: &str| bad(field, "is missing".into());
    let capacity = match (&e.capacity, base) {
        (Some(c), _) => c.parse::<Capacity>().map_err(|_| {
            bad(
                "capacity",
                format!("{c:?} is invalid (expected spot or on-demand)"),
            )
        })?,
        (None, Some(b)) => b.capacity,
        (None, None) => return Err(missing("capacity")),
    };
    let hardware = match (&e.hardware, base) {
        (Some(h), _) => h
            .parse::<Hardware>()
            .map_err(|err| bad("hardware", err.to_string()))?,
        (None, Some(b)) => b.hardware,
        (None, None) => return Err(missing("hardware")),
    };
    macro_rules! field {
        ($f:ident, $b:ident) => {
            match (e.$f.clone(), base) {
                (Some(v), _) => v,
                (None, Some(b)) => b.$b.clone(),
                (None, None) => return Err(missing(stringify!($f))),
            }
        };
    }
    let pool = Pool {
        name: name.to_string(),
        capacity,
        instance_type: field!(instance_type, instance_type),
        zones: e
            .zones
            .clone()
            .or(base.map(|b| b.zones.clone()))
            .unwrap_or_default(),
        hardware,
        gpu: e
            .gpu
            .clone()
            .or(base.map(|b| b.gpu.clone()))
            .unwrap_or_default(),
        gpus: e.gpus.or(base.and_then(|b| b.gpus)),
        vcpus: field!(vcpus, vcpus),
        memory_gib: field!(memory, memory_gib),
        slots: field!(slots, slots),
        price_per_hour: field!(price_per_hour, price_per_hour),
        on_demand_price_per_hour: e
            .on_demand_price_per_hour
            .or(base.and_then(|b| b.on_demand_price_per_hour)),
        interruption_rate_per_hour: e
            .interruption_rate_per_hour
            .or(base.map(|b| b.interruption_rate_per_hour))
            .unwrap_or(0.0),
        min_workers: e.min_workers.or(base.map(|b| b.min_workers)).unwrap_or(0),
        max_workers: field!(max_workers, max_workers),
        launch_seconds: e
            .launch_seconds
            .or(base.map(|b| b.launch_seconds))
            .unwrap_or(180),
        source: e
            .source
            .clone()
            .or(base.map(|b| b.source.clone()))
            .unwrap_or_default(),
        origin,
    };
    validate(&pool).map_err(|(field, why)| bad(field, why))?;
    Ok(pool)
}

fn validate(p: &Pool) -> std::result::Result<(), (&'static str, String)> {
    let money = |v: f64| v.is_finite() && (0.0..=1000.0).contains(&v);
    if p.instance_type.is_empty() {
        return Err(("instance_type", "is empty".into()));
    }
    if !money(p.price_per_hour) {
        return Err((
            "price_per_hour",
            format!("{} is invalid (expected 0..=1000 $/h)", p.price_per_hour),
        ));
    }
    if let Some(od) = p.on_demand_price_per_hour {
        if !money(od) {
            return Err((
                "on_demand_price_per_hour",
                format!("{od} is invalid (expected 0..=1000 $/h)"),
            ));
        }
        if p.capacity == Capacity::Spot && p.price_per_hour > od {
            return Err((
                "price_per_hour",
                format!(
                    "{} is above on_demand_price_per_hour {od} (a spot price never exceeds on-demand)",
                    p.price_per_hour
                ),
            ));
        }
    }
    let rate = p.interruption_rate_per_hour;
    if !(rate.is_finite() && (0.0..=1.0).contains(&rate)) {
        return Err((
            "interruption_rate_per_hour",
            format!("{rate} is invalid (expected 0..=1 per hour)"),
        ));
    }
    if !(1..=1024).contains(&p.vcpus) {
        return Err((
            "vcpus",
            format!("{} is invalid (expected 1..=1024)", p.vcpus),
        ));
    }
    if !(p.memory_gib.is_finite() && p.memory_gib > 0.0) {
        return Err((
            "memory",
            format!("{} is invalid (expected > 0 GiB)", p.memory_gib),
        ));
    }
    if !(1..=256).contains(&p.slots) {
        return Err((
            "slots",
            format!("{} is invalid (expected 1..=256)", p.slots),
        ));
    }
    if p.min_workers > p.max_workers {
        return Err((
            "min_workers",
            format!("{} is above max_workers {}", p.min_workers, p.max_workers),
        ));
    }
    if p.gpus == Some(0) || p.gpus.is_some_and(|n| n > 16) {
        return Err((
            "gpus",
            format!(
                "{} is invalid (expected 1..=16 per instance)",
                p.gpus.unwrap_or(0)
            ),
        ));
    }
    if p.hardware != Hardware::Cpu && p.gpu.is_empty() {
        return Err((
            "gpu",
            format!("is empty for {} hardware", p.hardware.name()),
        ));
    }
    Ok(())
}

/// NVENC limits of a T4/A10G-class engine for `codecs`, up to `max` pixels
/// a side.
pub fn nvenc_caps(codecs: &[Codec], max: u32) -> Vec<NvencCodec> {
    codecs
        .iter()
        .map(|&codec| NvencCodec {
            codec,
            max_width: max,
            max_height: max,
            ten_bit: false,
            max_b_frames: 4,
        })
        .collect()
}
