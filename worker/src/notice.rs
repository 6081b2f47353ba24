//! Interruption notices: the watchers that tell a worker its instance is
//! going away, and what the worker reports back.
//!
//! - **AWS** (IMDSv2): a session token from `PUT /latest/api/token`, renewed
//!   at half its TTL and after a 401; `GET .../spot/instance-action` is the
//!   notice (its `time` is when the instance stops), and
//!   `GET .../events/recommendations/rebalance` means "take no new work".
//! - **GCP**: `GET .../instance/preempted` with `Metadata-Flavor: Google`,
//!   then `wait_for_change` long-polls keyed by the last ETag. GCP gives
//!   about 30 s.
//! - **Azure** Scheduled Events: `Preempt` and `Terminate` events for this
//!   VM are notices (`NotBefore` is the deadline). The first query is made
//!   at start-up because the service can take up to two minutes to answer
//!   it; handled events are acknowledged with `StartRequests` once the
//!   worker has handed its work back.
//! - **SIGTERM/SIGINT** (a Kubernetes eviction, Ctrl-C).
//!
//! The cloud is named or detected (`auto`): each metadata service is asked
//! a question only it answers, at once, with a short timeout. Every watcher
//! sends [`Notice`]s into one channel; [`Notices`] is the receiving end
//! the runtime reads.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

/// The cloud whose metadata service to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Aws,
    Gcp,
    Azure,
}

/// Which cloud watcher to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudChoice {
    /// Ask each metadata service at start-up and watch the one that answers.
    Auto,
    /// Signals only.
    None,
    Named(Cloud),
}

impl std::str::FromStr for CloudChoice {
    type Err = spotenc_proto::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => CloudChoice::Auto,
            "none" => CloudChoice::None,
            "aws" => CloudChoice::Named(Cloud::Aws),
            "gcp" => CloudChoice::Named(Cloud::Gcp),
            "azure" => CloudChoice::Named(Cloud::Azure),
            other => {
                return Err(spotenc_proto::Error::invalid(format!(
                    "invalid cloud {other:?} (expected auto, none, aws, gcp or azure)"
                )))
            }
        })
    }
}

/// How to watch for notices.
#[derive(Debug, Clone)]
pub struct NoticeSettings {
    pub cloud: CloudChoice,
    /// Base URLs of the metadata services (no trailing slash).
    pub aws_url: String,
    pub gcp_url: String,
    pub azure_url: String,
    /// How often to poll AWS and Azure (GCP long-polls).
    pub poll: Duration,
    /// The most time a notice leaves before the worker must have exited;
    /// a notice that gives less wins.
    pub deadline: Duration,
    /// The TTL asked for IMDSv2 session tokens.
    pub aws_token_ttl: Duration,
}

impl Default for NoticeSettings {
    fn default() -> Self {
        NoticeSettings {
            cloud: CloudChoice::Auto,
            aws_url: "http://169.254.169.254".into(),
            gcp_url: "http://metadata.google.internal".into(),
            azure_url: "http://169.254.169.254".into(),
            poll: Duration::from_secs(2),
            deadline: Duration::from_secs(90),
            aws_token_ttl: Duration::from_secs(21_600),
        }
    }
}

/// GCP stops a preempted VM about 30 s after the notice.
const GCP_WINDOW: Duration = Duration::from_secs(30);

/// What a watcher saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Take no new work; finish what is running.
    Rebalance { source: String },
    /// The instance goes away: hand work back and exit before `deadline`.
    Interruption {
        source: String,
        /// When the notice was seen.
        seen: Instant,
        deadline: Instant,
    },
}

impl Notice {
    /// An interruption seen now that leaves `window` (capped by `max`).
    pub fn interruption(source: impl Into<String>, window: Duration, max: Duration) -> Notice {
        let seen = Instant::now();
        Notice::Interruption {
            source: source.into(),
            seen,
            deadline: seen + window.min(max),
        }
    }
}

/// An Azure event to acknowledge once the worker is done with its work.
#[derive(Debug, Clone)]
struct PendingAck {
    url: String,
    event_id: String,
}

/// The receiving end of every watcher.
pub struct Notices {
    rx: mpsc::Receiver<Notice>,
    acks: Arc<Mutex<Vec<PendingAck>>>,
    http: reqwest::Client,
}

impl Notices {
    /// Starts the signal watcher and the cloud watcher `settings` name.
    pub fn watch(settings: &NoticeSettings) -> Notices {
        let (tx, rx) = mpsc::channel(16);
        let acks = Arc::new(Mutex::new(Vec::new()));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("http client builds");
        tokio::spawn(signals(tx.clone(), settings.deadline));
        let (s, h, a) = (settings.clone(), http.clone(), acks.clone());
        tokio::spawn(async move {
            let cloud = match s.cloud {
                CloudChoice::None => return,
                CloudChoice::Named(c) => c,
                CloudChoice::Auto => match detect(&h, &s).await {
                    Some(c) => c,
                    None => {
                        info!("no cloud metadata service answered; watching signals only");
                        return;
                    }
                },
            };
            info!(?cloud, "watching for interruption notices");
            match cloud {
                Cloud::Aws => aws(&h, &s, tx).await,
                Cloud::Gcp => gcp(&h, &s, tx).await,
                Cloud::Azure => azure(&h, &s, tx, a).await,
            }
        });
        Notices { rx, acks, http }
    }

    /// Notices from a future alone: when it completes, an interruption with
    /// `window` to go (for workers run inside another process).
    pub fn when(
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        window: Duration,
    ) -> Notices {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx
                .send(Notice::interruption("shutdown", window, window))
                .await;
        });
        Notices {
            rx,
            acks: Arc::default(),
            http: reqwest::Client::new(),
        }
    }

    /// The next notice; `None` once no watcher is left.
    pub async fn recv(&mut self) -> Option<Notice> {
        self.rx.recv().await
    }

    /// Tells the cloud the worker is ready to go (Azure `StartRequests`);
    /// gives up at `by`.
    pub async fn acknowledge(&self, by: Instant) {
        let acks: Vec<PendingAck> = std::mem::take(&mut *self.acks.lock().expect("ack lock"));
        for ack in acks {
            let body = serde_json::json!({ "StartRequests": [{ "EventId": ack.event_id }] });
            let req = self
                .http
                .post(&ack.url)
                .header("Metadata", "true")
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send();
            match tokio::time::timeout_at(by, req).await {
                Ok(Ok(r)) if r.status().is_success() => {
                    info!(event = %ack.event_id, "azure scheduled event acknowledged")
                }
                Ok(Ok(r)) => {
                    warn!(event = %ack.event_id, status = %r.status(), "azure refused the acknowledgement")
                }
                Ok(Err(e)) => {
                    warn!(event = %ack.event_id, error = %e, "azure acknowledgement failed")
                }
                Err(_) => warn!(event = %ack.event_id, "no time left to acknowledge"),
            }
        }
    }
}

async fn signals(tx: mpsc::Sender<Notice>, window: Duration) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    let _ = tx.send(Notice::interruption(name, window, window)).await;
}

/// Asks every metadata service at once; the first (in AWS, GCP, Azure
/// order) that answers as itself wins.
pub async fn detect(http: &reqwest::Client, s: &NoticeSettings) -> Option<Cloud> {
    const WAIT: Duration = Duration::from_millis(1500);
    let aws = async {
        http.put(format!("{}/latest/api/token", s.aws_url))
            .header("X-aws-ec2-metadata-token-ttl-seconds", "60")
            .timeout(WAIT)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    };
    let gcp = async {
        http.get(format!("{}/computeMetadata/v1/instance/id", s.gcp_url))
            .header("Metadata-Flavor", "Google")
            .timeout(WAIT)
            .send()
            .await
            .is_ok_and(|r| {
                r.status().is_success()
                    && r.headers()
                        .get("metadata-flavor")
                        .is_some_and(|v| v == "Google")
            })
    };
    let azure = async {
        http.get(format!(
            "{}/metadata/instance?api-version=2021-02-01",
            s.azure_url
        ))
        .header("Metadata", "true")
        .timeout(WAIT)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    };
    let (aws, gcp, azure) = tokio::join!(aws, gcp, azure);
    [(aws, Cloud::Aws), (gcp, Cloud::Gcp), (azure, Cloud::Azure)]
        .into_iter()
        .find_map(|(ok, c)| ok.then_some(c))
}

/// Time left until a wall-clock instant (zero if it has passed).
fn until(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::now()).unwrap_or_default()
}

// --- AWS ---------------------------------------------------------------

/// An IMDSv2 session.
pub(crate) struct Imds<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    ttl: Duration,
    token: Option<(String, Instant)>,
}

impl<'a> Imds<'a> {
    pub(crate) fn new(http: &'a reqwest::Client, base: &'a str, ttl: Duration) -> Self {
        Imds {
            http,
            base,
            ttl,
            token: None,
        }
    }

    async fn token(&mut self) -> reqwest::Result<String> {
        if let Some((t, renew_at)) = &self.token {
            if Instant::now() < *renew_at {
                return Ok(t.clone());
            }
        }
        let t = self
            .http
            .put(format!("{}/latest/api/token", self.base))
            .header(
                "X-aws-ec2-metadata-token-ttl-seconds",
                self.ttl.as_secs().max(1).to_string(),
            )
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        // Renew at half the TTL, well before the service rejects it.
        self.token = Some((t.clone(), Instant::now() + self.ttl / 2));
        Ok(t)
    }

    /// A metadata path's body, or `None` when it does not exist (404).
    pub(crate) async fn get(&mut self, path: &str) -> reqwest::Result<Option<String>> {
        for _ in 0..2 {
            let token = self.token().await?;
            let r = self
                .http
                .get(format!("{}/latest/meta-data/{path}", self.base))
                .header("X-aws-ec2-metadata-token", token)
                .timeout(Duration::from_secs(5))
                .send()
                .await?;
            match r.status().as_u16() {
                404 => return Ok(None),
                // The token expired or was revoked: get a new one.
                401 => self.token = None,
                _ => return Ok(Some(r.error_for_status()?.text().await?)),
            }
        }
        Ok(None)
    }
}

#[derive(Deserialize)]
struct InstanceAction {
    action: String,
    time: String,
}

/// What an `instance-action` document leaves: the action and the time to go.
pub fn aws_action(body: &str) -> Option<(String, Duration)> {
    let a: InstanceAction = serde_json::from_str(body).ok()?;
    let t = time::OffsetDateTime::parse(&a.time, &time::format_description::well_known::Rfc3339)
        .ok()?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.unix_timestamp()).ok()?);
    Some((a.action, until(at)))
}

async fn aws(http: &reqwest::Client, s: &NoticeSettings, tx: mpsc::Sender<Notice>) {
    let mut imds = Imds::new(http, &s.aws_url, s.aws_token_ttl);
    let mut rebalance_sent = false;
    let mut tick = tokio::time::interval(s.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match imds.get("spot/instance-action").await {
            Ok(Some(body)) => {
                let (what, window) = aws_action(&body).unwrap_or_else(|| {
                    warn!(
                        body,
                        "unreadable instance-action; assuming the default deadline"
                    );
                    ("unknown".into(), s.deadline)
                });
                let source = format!("aws spot instance-action {what}");
                let _ = tx
                    .send(Notice::interruption(source, window, s.deadline))
                    .await;
                return;
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "instance metadata unreachable"),
        }
        if !rebalance_sent {
            match imds.get("events/recommendations/rebalance").await {
                Ok(Some(_)) => {
                    rebalance_sent = true;
                    let source = "aws rebalance recommendation".to_string();
                    let _ = tx.send(Notice::Rebalance { source }).await;
                }
                Ok(None) => {}
                Err(e) => warn!(error = %e, "instance metadata unreachable"),
            }
        }
    }
}

// --- GCP ---------------------------------------------------------------

async fn gcp(http: &reqwest::Client, s: &NoticeSettings, tx: mpsc::Sender<Notice>) {
    const LONG_POLL_S: u64 = 60;
    let url = format!("{}/computeMetadata/v1/instance/preempted", s.gcp_url);
    let mut etag: Option<String> = None;
    loop {
        let req = match &etag {
            None => http.get(&url).timeout(Duration::from_secs(10)),
            Some(e) => http
                .get(&url)
                .query(&[
                    ("wait_for_change", "true"),
                    ("last_etag", e.as_str()),
                    ("timeout_sec", &LONG_POLL_S.to_string()),
                ])
                .timeout(Duration::from_secs(LONG_POLL_S + 10)),
        };
        let answer = async {
            let r = req
                .header("Metadata-Flavor", "Google")
                .send()
                .await?
                .error_for_status()?;
            let tag = r
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok::<_, reqwest::Error>((tag, r.text().await?))
        };
        match answer.await {
            Ok((tag, body)) => {
                if body.trim().eq_ignore_ascii_case("TRUE") {
                    let notice = Notice::interruption("gcp preempted", GCP_WINDOW, s.deadline);
                    let _ = tx.send(notice).await;
                    return;
                }
                etag = tag.or(etag);
                if etag.is_none() {
                    // No ETag to wait on: fall back to polling.
                    tokio::time::sleep(s.poll).await;
                }
            }
            Err(e) => {
                warn!(error = %e, "gcp metadata unreachable");
                etag = None;
                tokio::time::sleep(s.poll).await;
            }
        }
    }
}

// --- Azure -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduledEvents {
    #[serde(default)]
    events: Vec<ScheduledEvent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduledEvent {
    event_id: String,
    event_type: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    not_before: String,
}

/// The first Preempt or Terminate event that concerns `vm` (any, when the
/// VM's name is unknown), with the time it leaves.
fn azure_notice(doc: &str, vm: Option<&str>) -> Option<(String, String, Duration)> {
    let doc: ScheduledEvents = serde_json::from_str(doc).ok()?;
    doc.events.into_iter().find_map(|e| {
        let ours = match vm {
            Some(vm) => e.resources.is_empty() || e.resources.iter().any(|r| r == vm),
            None => true,
        };
        if !ours || !matches!(e.event_type.as_str(), "Preempt" | "Terminate") {
            return None;
        }
        // NotBefore is empty once the event has started: no time left.
        let window = httpdate::parse_http_date(&e.not_before)
            .map(until)
            .unwrap_or_default();
        Some((e.event_id, e.event_type, window))
    })
}

async fn azure(
    http: &reqwest::Client,
    s: &NoticeSettings,
    tx: mpsc::Sender<Notice>,
    acks: Arc<Mutex<Vec<PendingAck>>>,
) {
    let url = format!(
        "{}/metadata/scheduledevents?api-version=2020-07-01",
        s.azure_url
    );
    let vm = http
        .get(format!(
            "{}/metadata/instance/compute/name?api-version=2021-02-01&format=text",
            s.azure_url
        ))
        .header("Metadata", "true")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()
        .filter(|r| r.status().is_success());
    let vm = match vm {
        Some(r) => r.text().await.ok().filter(|n| !n.is_empty()),
        None => None,
    };
    // The first query turns the service on and can take up to 2 minutes.
    let mut first = true;
    loop {
        let wait = if first { 150 } else { 10 };
        let doc = async {
            http.get(&url)
                .header("Metadata", "true")
                .timeout(Duration::from_secs(wait))
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        };
        match doc.await {
            Ok(doc) => {
                first = false;
                if let Some((event_id, kind, window)) = azure_notice(&doc, vm.as_deref()) {
                    acks.lock().expect("ack lock").push(PendingAck {
                        url: url.clone(),
                        event_id: event_id.clone(),
                    });
                    let source = format!("azure scheduled event {kind} {event_id}");
                    let _ = tx
                        .send(Notice::interruption(source, window, s.deadline))
                        .await;
                    return;
                }
            }
            Err(e) => warn!(error = %e, "azure scheduled events unreachable"),
        }
        tokio::time::sleep(s.poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_action_gives_its_time() {
        let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(100);
        let body = format!(
            r#"{{"action": "terminate", "time": "{}"}}"#,
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        );
        let (action, left) = aws_action(&body).unwrap();
        assert_eq!(action, "terminate");
        assert!((95..=100).contains(&left.as_secs()), "{left:?}");
        assert!(aws_action("{}").is_none());
        let past = r#"{"action": "stop", "time": "2017-09-18T08:22:00Z"}"#;
        assert_eq!(aws_action(past).unwrap().1, Duration::ZERO);
    }

    #[test]
    fn azure_events_for_other_vms_or_of_other_kinds_are_ignored() {
        let nb = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        let doc = format!(
            r#"{{"DocumentIncarnation": 3, "Events": [
              {{"EventId": "a", "EventType": "Freeze", "ResourceType": "VirtualMachine",
                "Resources": ["vm1"], "EventStatus": "Scheduled", "NotBefore": "{nb}"}},
              {{"EventId": "b", "EventType": "Preempt", "ResourceType": "VirtualMachine",
                "Resources": ["vm2"], "EventStatus": "Scheduled", "NotBefore": "{nb}"}},
              {{"EventId": "c", "EventType": "Terminate", "ResourceType": "VirtualMachine",
                "Resources": ["vm1"], "EventStatus": "Scheduled", "NotBefore": "{nb}"}}]}}"#
        );
        let (id, kind, left) = azure_notice(&doc, Some("vm1")).unwrap();
        assert_eq!((id.as_str(), kind.as_str()), ("c", "Terminate"));
        assert!((55..=60).contains(&left.as_secs()), "{left:?}");
        assert_eq!(azure_notice(&doc, None).unwrap().0, "b");
        assert!(azure_notice(r#"{"DocumentIncarnation": 1, "Events": []}"#, None).is_none());
    }

    #[test]
    fn a_notice_never_leaves_more_than_the_configured_deadline() {
        let Notice::Interruption { seen, deadline, .. } =
            Notice::interruption("x", Duration::from_secs(120), Duration::from_secs(90))
        else {
            unreachable!()
        };
        assert_eq!(deadline - seen, Duration::from_secs(90));
    }

    #[test]
    fn cloud_names_parse() {
        assert_eq!(
            "gcp".parse::<CloudChoice>().unwrap(),
            CloudChoice::Named(Cloud::Gcp)
        );
        assert!("oracle".parse::<CloudChoice>().is_err());
    }
}
