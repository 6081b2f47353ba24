//! Records as Redis stores them: hashes of plain fields, enums by name,
//! opaque JSON, and the scripts' error codes as spotenc errors.

use std::collections::{BTreeMap, HashMap};

use spotenc_proto::domain::AttemptRecord;
use spotenc_proto::{Error, Result};

use super::super::{JobRecord, TaskRecord, Transition};
use spotenc_core::cost::model::Demand;

pub(super) fn redis_error(e: redis::RedisError) -> Error {
    let detail = e.detail().unwrap_or_default().to_string();
    match e.code() {
        Some("STALE") => Error::Stale(detail),
        Some("NOTFOUND") => Error::NotFound(detail),
        Some("INVALID") => Error::Invalid(detail),
        Some("DENIED") => Error::PermissionDenied(detail),
        Some("EXHAUSTED") => Error::Exhausted(detail),
        _ if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
            Error::Unavailable(format!("redis: {e}"))
        }
        _ => Error::Internal(format!("redis: {e}")),
    }
}

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("corrupt {what} in redis: {e}"))
}

/// Parses a unit enum stored by name (`Pending`, `Encode`, ...).
pub(super) fn enum_field<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| corrupt(s, e))
}

pub(super) fn enum_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

pub(super) fn num<T: std::str::FromStr + Default>(h: &HashMap<String, String>, k: &str) -> T {
    h.get(k).and_then(|v| v.parse().ok()).unwrap_or_default()
}

pub(super) fn text(h: &HashMap<String, String>, k: &str) -> String {
    h.get(k).cloned().unwrap_or_default()
}

pub(super) fn json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

/// Field `k` as JSON; an empty or missing field is `None`.
fn optional_json<T: serde::de::DeserializeOwned>(
    h: &HashMap<String, String>,
    k: &str,
    what: &str,
) -> Result<Option<T>> {
    match h.get(k).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(s) => json(s, what).map(Some),
    }
}

/// A task's demand as stored; tasks made before placement have none.
pub(super) fn demand(s: &str) -> Result<Demand> {
    if s.is_empty() {
        Ok(Demand::default())
    } else {
        json(s, "task demand")
    }
}

/// A script's `(job_id, job_state)` reply as a transition.
pub(super) fn transition_of(job_id: String, state: &str) -> Result<Transition> {
    Ok(Transition {
        job_id: job_id.into(),
        state: enum_field(state)?,
    })
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialise")
}

/// A task record from its hash, its attempt history and its interruption
/// counts.
pub(super) fn task_from_fields(
    id: &str,
    h: &HashMap<String, String>,
    history: Vec<String>,
    interruptions: BTreeMap<String, u32>,
) -> Result<TaskRecord> {
    Ok(TaskRecord {
        id: id.to_string(),
        job_id: text(h, "job_id").into(),
        kind: enum_field(&text(h, "kind"))?,
        chunk: num(h, "chunk"),
        work: json(&text(h, "work"), "task work")?,
        state: enum_field(&text(h, "state"))?,
        deps: json(&text(h, "deps"), "task deps")?,
        attempt: num(h, "attempt"),
        failures: num(h, "failures"),
        expiries: num(h, "expiries"),
        worker_id: text(h, "worker_id").into(),
        lease_until_ms: num(h, "lease_until_ms"),
        frames_done: num(h, "frames_done"),
        frames_total: num(h, "frames_total"),
        result: optional_json(h, "result", "task result")?,
        history: history
            .iter()
            .map(|a| json::<AttemptRecord>(a, "attempt record"))
            .collect::<Result<_>>()?,
        interruptions,
        partition: enum_field(&text(h, "partition"))?,
        pending_since_ms: num(h, "pending_since_ms"),
        demand: demand(&text(h, "demand"))?,
        avoid_worker: text(h, "avoid"),
    })
}

/// A job record from its hash and its task list.
pub(super) fn job_from_fields(
    id: &str,
    h: &HashMap<String, String>,
    task_ids: Vec<String>,
) -> Result<JobRecord> {
    Ok(JobRecord {
        id: id.to_string(),
        seq: num(h, "seq"),
        spec: json(&text(h, "spec"), "job spec")?,
        state: enum_field(&text(h, "state"))?,
        error: text(h, "error"),
        idempotency_key: text(h, "idempotency_key"),
        created_unix_ms: num(h, "created_unix_ms"),
        updated_unix_ms: num(h, "updated_unix_ms"),
        finished_unix_ms: num(h, "finished_unix_ms"),
        work_dir: text(h, "work_dir"),
        probe: optional_json(h, "probe", "probe")?,
        task_ids,
        client: text(h, "client"),
        identities: optional_json(h, "identities", "job identities")?.unwrap_or_default(),
        restarts: optional_json(h, "restarts", "job restarts")?.unwrap_or_default(),
    })
}
