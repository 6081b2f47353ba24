//! A local stand-in for the cloud instance metadata services, speaking each
//! one's documented protocol over HTTP on a loopback port: the paths, the
//! required headers, the IMDSv2 token flow, GCP's `wait_for_change`
//! long-poll with ETags, and Azure Scheduled Events with `StartRequests`.
//! It is the one boundary the tests cannot reach for real.
//!
//! One server plays one cloud and answers 404 to the others' paths, so a
//! worker's auto-detection can be pointed at it for all three.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Aws,
    Gcp,
    Azure,
}

/// What the server has seen and will answer.
#[derive(Debug)]
pub struct Seen {
    pub cloud: Cloud,
    /// AWS: tokens issued, with their expiry.
    pub tokens: Vec<(String, Instant)>,
    /// AWS: metadata GETs refused for a missing or expired token.
    pub unauthorized: u32,
    pub instance_action: Option<String>,
    pub rebalance: Option<String>,
    /// GCP: the value of `instance/preempted` and its version.
    pub preempted: bool,
    pub version: u32,
    /// GCP: long-polls that carried a `last_etag`.
    pub long_polls: u32,
    /// Azure: scheduled events, their incarnation, acknowledged ids.
    pub events: Vec<serde_json::Value>,
    pub incarnation: u32,
    pub acks: Vec<String>,
    pub scheduled_event_queries: u32,
    /// Azure: when the first Scheduled Events query came, and how long its
    /// answer is held back (the real service can take up to 2 minutes to
    /// answer the query that turns it on).
    pub first_query_at: Option<Instant>,
    pub first_answer_delay: Duration,
    /// Requests refused for a missing protocol header.
    pub missing_header: u32,
}

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Seen>>,
    changed: Arc<tokio::sync::Notify>,
}

/// The Azure VM name the server reports.
pub const VM_NAME: &str = "spotenc-vm-1";
/// What each cloud says the instance is.
pub const AWS_INSTANCE_TYPE: &str = "c6i.4xlarge";
pub const AWS_ZONE: &str = "us-east-1b";
pub const GCP_MACHINE_TYPE: &str = "projects/1234/machineTypes/n2-standard-8";
pub const GCP_ZONE: &str = "projects/1234/zones/us-central1-a";
pub const AZURE_VM_SIZE: &str = "Standard_F8s_v2";
pub const AZURE_ZONE: &str = "2";

pub struct FakeMetadata {
    pub url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMetadata {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeMetadata {
    /// Serves `cloud`'s metadata protocol on a free loopback port. Call it
    /// inside a tokio runtime.
    pub async fn start(cloud: Cloud) -> FakeMetadata {
        let shared = Shared {
            seen: Arc::new(Mutex::new(Seen {
                cloud,
                tokens: Vec::new(),
                unauthorized: 0,
                instance_action: None,
                rebalance: None,
                preempted: false,
                version: 0,
                long_polls: 0,
                events: Vec::new(),
                incarnation: 1,
                acks: Vec::new(),
                scheduled_event_queries: 0,
                first_query_at: None,
                first_answer_delay: Duration::ZERO,
                missing_header: 0,
            })),
            changed: Arc::new(tokio::sync::Notify::new()),
        };
        let app = Router::new()
            .route("/latest/api/token", put(aws_token))
            .route("/latest/meta-data/{*path}", get(aws_get))
            .route("/computeMetadata/v1/instance/id", get(gcp_id))
            .route(
                "/computeMetadata/v1/instance/machine-type",
                get(gcp_machine_type),
            )
            .route("/computeMetadata/v1/instance/zone", get(gcp_zone))
            .route("/computeMetadata/v1/instance/preempted", get(gcp_preempted))
            .route("/metadata/instance", get(azure_instance))
            .route("/metadata/instance/compute/name", get(azure_name))
            .route(
                "/metadata/scheduledevents",
                get(azure_events).post(azure_ack),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind metadata port");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("metadata server");
        });
        FakeMetadata { url, shared, task }
    }

    /// Reads or changes the server's state.
    pub fn with<T>(&self, f: impl FnOnce(&mut Seen) -> T) -> T {
        let out = f(&mut self.shared.seen.lock().expect("metadata lock"));
        self.shared.changed.notify_waiters();
        out
    }

    /// AWS: a spot `instance-action` of `action` at `in_secs` from now.
    pub fn aws_instance_action(&self, action: &str, in_secs: u64) {
        let at = time_rfc3339(SystemTime::now() + Duration::from_secs(in_secs));
        let body = format!(r#"{{"action": "{action}", "time": "{at}"}}"#);
        self.with(|s| s.instance_action = Some(body));
    }

    /// AWS: a rebalance recommendation.
    pub fn aws_rebalance(&self) {
        let at = time_rfc3339(SystemTime::now());
        self.with(|s| s.rebalance = Some(format!(r#"{{"noticeTime": "{at}"}}"#)));
    }

    /// GCP: the instance is preempted.
    pub fn gcp_preempt(&self) {
        self.with(|s| {
            s.preempted = true;
            s.version += 1;
        });
    }

    /// Azure: a scheduled event of `kind` for `resources`, not before
    /// `in_secs` from now.
    pub fn azure_event(&self, id: &str, kind: &str, resources: &[&str], in_secs: u64) {
        let nb = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(in_secs));
        let event = serde_json::json!({
            "EventId": id,
            "EventType": kind,
            "ResourceType": "VirtualMachine",
            "Resources": resources,
            "EventStatus": "Scheduled",
            "NotBefore": nb,
            "Description": "",
            "EventSource": "Platform",
            "DurationInSeconds": -1,
        });
        self.with(|s| {
            s.events.push(event);
            s.incarnation += 1;
        });
    }
}

fn time_rfc3339(t: SystemTime) -> String {
    // Whole seconds, UTC, as IMDS writes it: 2017-09-18T08:22:00Z.
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .expect("valid time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn is(st: &Shared, cloud: Cloud) -> bool {
    st.seen.lock().expect("metadata lock").cloud == cloud
}

// --- AWS IMDSv2 ----------------------------------------------------------

async fn aws_token(State(st): State<Shared>, h: HeaderMap) -> Response {
    if !is(&st, Cloud::Aws) {
        return not_found();
    }
    let ttl =
        header(&h, "x-aws-ec2-metadata-token-ttl-seconds").and_then(|v| v.parse::<u64>().ok());
    let Some(ttl) = ttl.filter(|t| (1..=21_600).contains(t)) else {
        st.seen.lock().expect("metadata lock").missing_header += 1;
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut s = st.seen.lock().expect("metadata lock");
    let token = format!("token-{}", s.tokens.len());
    s.tokens
        .push((token.clone(), Instant::now() + Duration::from_secs(ttl)));
    (
        [("x-aws-ec2-metadata-token-ttl-seconds", ttl.to_string())],
        token,
    )
        .into_response()
}

async fn aws_get(
    State(st): State<Shared>,
    axum::extract::Path(path): axum::extract::Path<String>,
    h: HeaderMap,
) -> Response {
    let mut s = st.seen.lock().expect("metadata lock");
    if s.cloud != Cloud::Aws {
        return not_found();
    }
    let valid = header(&h, "x-aws-ec2-metadata-token").is_some_and(|t| {
        s.tokens
            .iter()
            .any(|(tok, exp)| tok == t && Instant::now() < *exp)
    });
    if !valid {
        s.unauthorized += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let body = match path.as_str() {
        "spot/instance-action" => s.instance_action.clone(),
        "events/recommendations/rebalance" => s.rebalance.clone(),
        "instance-id" => Some("i-0123456789abcdef0".into()),
        "instance-type" => Some(AWS_INSTANCE_TYPE.into()),
        "placement/availability-zone" => Some(AWS_ZONE.into()),
        _ => None,
    };
    match body {
        Some(b) => b.into_response(),
        None => not_found(),
    }
}

// --- GCP -------------------------------------------------------------------

fn google(body: String, etag: Option<String>) -> Response {
    let mut r = ([("metadata-flavor", "Google")], body).into_response();
    if let Some(e) = etag {
        r.headers_mut()
            .insert("etag", e.parse().expect("etag header"));
    }
    r
}

async fn gcp_id(State(st): State<Shared>, h: HeaderMap) -> Response {
    if !is(&st, Cloud::Gcp) {
        return not_found();
    }
    if header(&h, "metadata-flavor") != Some("Google") {
        st.seen.lock().expect("metadata lock").missing_header += 1;
        return StatusCode::FORBIDDEN.into_response();
    }
    google("4520031799277581759".into(), None)
}

async fn gcp_machine_type(State(st): State<Shared>, h: HeaderMap) -> Response {
    gcp_value(&st, &h, GCP_MACHINE_TYPE)
}

async fn gcp_zone(State(st): State<Shared>, h: HeaderMap) -> Response {
    gcp_value(&st, &h, GCP_ZONE)
}

fn gcp_value(st: &Shared, h: &HeaderMap, value: &str) -> Response {
    if !is(st, Cloud::Gcp) {
        return not_found();
    }
    if header(h, "metadata-flavor") != Some("Google") {
        st.seen.lock().expect("metadata lock").missing_header += 1;
        return StatusCode::FORBIDDEN.into_response();
    }
    google(value.into(), None)
}

async fn gcp_preempted(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if !is(&st, Cloud::Gcp) {
        return not_found();
    }
    if header(&h, "metadata-flavor") != Some("Google") {
        st.seen.lock().expect("metadata lock").missing_header += 1;
        return StatusCode::FORBIDDEN.into_response();
    }
    let etag_of = |v: u32| format!("etag-{v}");
    if q.get("wait_for_change").map(String::as_str) == Some("true") {
        let timeout = q
            .get("timeout_sec")
            .and_then(|t| t.parse().ok())
            .unwrap_or(300u64);
        let until = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let last = q.get("last_etag").cloned();
        if last.is_some() {
            st.seen.lock().expect("metadata lock").long_polls += 1;
        }
        loop {
            let notified = st.changed.notified();
            let version = st.seen.lock().expect("metadata lock").version;
            // Without last_etag, wait for the next change; with it, answer
            // at once if the value has moved on since.
            let moved = last.as_deref().is_some_and(|l| l != etag_of(version));
            if moved {
                break;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                break;
            }
            if last.is_none() {
                break;
            }
        }
    }
    let s = st.seen.lock().expect("metadata lock");
    let body = if s.preempted { "TRUE" } else { "FALSE" };
    google(body.into(), Some(etag_of(s.version)))
}

// --- Azure -------------------------------------------------------------

fn azure_checks(st: &Shared, h: &HeaderMap, q: &HashMap<String, String>) -> Option<Response> {
    if !is(st, Cloud::Azure) {
        return Some(not_found());
    }
    if header(h, "metadata") != Some("true") {
        st.seen.lock().expect("metadata lock").missing_header += 1;
        return Some(StatusCode::BAD_REQUEST.into_response());
    }
    if !q.contains_key("api-version") {
        return Some(StatusCode::BAD_REQUEST.into_response());
    }
    None
}

async fn azure_instance(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if let Some(r) = azure_checks(&st, &h, &q) {
        return r;
    }
    let doc = serde_json::json!({ "compute": {
        "name": VM_NAME,
        "location": "westeurope",
        "vmSize": AZURE_VM_SIZE,
        "zone": AZURE_ZONE,
    } });
    ([("content-type", "application/json")], doc.to_string()).into_response()
}

async fn azure_name(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if let Some(r) = azure_checks(&st, &h, &q) {
        return r;
    }
    VM_NAME.into_response()
}

async fn azure_events(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if let Some(r) = azure_checks(&st, &h, &q) {
        return r;
    }
    let delay = {
        let mut s = st.seen.lock().expect("metadata lock");
        s.scheduled_event_queries += 1;
        if s.first_query_at.is_none() {
            s.first_query_at = Some(Instant::now());
            s.first_answer_delay
        } else {
            Duration::ZERO
        }
    };
    tokio::time::sleep(delay).await;
    let s = st.seen.lock().expect("metadata lock");
    let doc = serde_json::json!({
        "DocumentIncarnation": s.incarnation,
        "Events": s.events,
    });
    ([("content-type", "application/json")], doc.to_string()).into_response()
}

async fn azure_ack(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    body: String,
) -> Response {
    if let Some(r) = azure_checks(&st, &h, &q) {
        return r;
    }
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(reqs) = doc.get("StartRequests").and_then(|r| r.as_array()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut s = st.seen.lock().expect("metadata lock");
    for r in reqs {
        if let Some(id) = r.get("EventId").and_then(|i| i.as_str()) {
            s.acks.push(id.to_string());
            s.events.retain(|e| e["EventId"] != id);
        }
    }
    s.incarnation += 1;
    StatusCode::OK.into_response()
}
