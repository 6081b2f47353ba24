//! A worker's TOML configuration, under command-line flags (which clap also
//! reads from `SPOTENC_*` variables). The loader takes the text and an
//! environment map, so tests are deterministic.
//!
//! ```toml
//! coordinator = "https://coordinator.internal:50051"
//! token_env = "SPOTENC_WORKER_TOKEN"   # or token = "..."
//! tls_ca = "/etc/spotenc/ca.pem"
//! name = "c6i-a1"
//! pool = "spot-cpu-eu-west-1a"
//! capacity = "spot"                    # spot | on-demand
//! instance_type = "c6i.4xlarge"
//! zone = "eu-west-1a"
//! slots = 2                            # default: from cores and memory
//! input_mode = "stream"                # FFmpeg range reads (default), or "download"
//! cloud = "auto"                       # auto | aws | gcp | azure | none
//! aws_metadata_url = "http://169.254.169.254"
//! gcp_metadata_url = "http://metadata.google.internal"
//! azure_metadata_url = "http://169.254.169.254"
//! notice_poll_ms = 2000
//! notice_deadline_seconds = 90         # a notice that gives less wins
//! aws_token_ttl_seconds = 21600
//! metrics_listen = "0.0.0.0:9464"      # Prometheus /metrics (off by default)
//! x264_params = "level=4.1:ref=3"      # operator's libx264 parameters (default none)
//! x265_params = "level-idc=5.1"        # operator's libx265 parameters (default none)
//! hardware_retry_seconds = 300         # a failed NVENC/QSV is offered again after this
//! ```
//!
//! The encoder parameters shape the chunks' parameter sets, so they are part
//! of the encoder identities the worker reports: a job's chunks all come from
//! workers with equal parameters.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use spotenc_proto::domain::Capacity;
use spotenc_proto::Error;

use crate::notice::{CloudChoice, NoticeSettings};
use crate::{host_resources, slots_for, InputMode, WorkerConfig};

/// Settings from the file, or from flags; flags win.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub coordinator: Option<String>,
    pub token: Option<spotenc_proto::secret::Secret>,
    pub token_env: Option<String>,
    pub tls_ca: Option<PathBuf>,
    pub name: Option<String>,
    pub pool: Option<String>,
    pub capacity: Option<String>,
    pub instance_type: Option<String>,
    pub zone: Option<String>,
    pub slots: Option<u32>,
    pub input_mode: Option<String>,
    pub cloud: Option<String>,
    pub aws_metadata_url: Option<String>,
    pub gcp_metadata_url: Option<String>,
    pub azure_metadata_url: Option<String>,
    pub notice_poll_ms: Option<u64>,
    pub notice_deadline_seconds: Option<u64>,
    pub aws_token_ttl_seconds: Option<u64>,
    pub metrics_listen: Option<String>,
    pub x264_params: Option<String>,
    pub x265_params: Option<String>,
    pub hardware_retry_seconds: Option<u64>,
}

impl WorkerSettings {
    fn or(self, other: WorkerSettings) -> WorkerSettings {
        WorkerSettings {
            coordinator: self.coordinator.or(other.coordinator),
            token: self.token.or(other.token),
            token_env: self.token_env.or(other.token_env),
            tls_ca: self.tls_ca.or(other.tls_ca),
            name: self.name.or(other.name),
            pool: self.pool.or(other.pool),
            capacity: self.capacity.or(other.capacity),
            instance_type: self.instance_type.or(other.instance_type),
            zone: self.zone.or(other.zone),
            slots: self.slots.or(other.slots),
            input_mode: self.input_mode.or(other.input_mode),
            cloud: self.cloud.or(other.cloud),
            aws_metadata_url: self.aws_metadata_url.or(other.aws_metadata_url),
            gcp_metadata_url: self.gcp_metadata_url.or(other.gcp_metadata_url),
            azure_metadata_url: self.azure_metadata_url.or(other.azure_metadata_url),
            notice_poll_ms: self.notice_poll_ms.or(other.notice_poll_ms),
            notice_deadline_seconds: self
                .notice_deadline_seconds
                .or(other.notice_deadline_seconds),
            aws_token_ttl_seconds: self.aws_token_ttl_seconds.or(other.aws_token_ttl_seconds),
            metrics_listen: self.metrics_listen.or(other.metrics_listen),
            x264_params: self.x264_params.or(other.x264_params),
            x265_params: self.x265_params.or(other.x265_params),
            hardware_retry_seconds: self.hardware_retry_seconds.or(other.hardware_retry_seconds),
        }
    }
}

/// Builds a worker's config from flags over the file's text. `hardware` and
/// `default_pool` come from the binary.
pub fn load(
    flags: WorkerSettings,
    file_text: &str,
    env: &HashMap<String, String>,
    hardware: &str,
    default_pool: &str,
) -> Result<WorkerConfig, Error> {
    let file: WorkerSettings =
        toml::from_str(file_text).map_err(|e| Error::invalid(format!("config: {e}")))?;
    let s = flags.or(file);
    let notices = notice_settings(&s)?;
    let token = match (s.token, s.token_env) {
        (Some(t), _) => Some(t),
        (None, Some(var)) => Some(env.get(&var).map(|t| t.as_str().into()).ok_or_else(|| {
            Error::invalid(format!("token_env: environment variable {var} is not set"))
        })?),
        (None, None) => None,
    };
    let mut encoder_params = std::collections::BTreeMap::new();
    for (family, params) in [("libx264", &s.x264_params), ("libx265", &s.x265_params)] {
        if let Some(p) = params.as_deref().filter(|p| !p.is_empty()) {
            spotenc_proto::domain::check_params(family, p)?;
            encoder_params.insert(family.to_string(), p.to_string());
        }
    }
    let (cores, memory) = host_resources();
    let name = s.name.unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| hardware.to_string())
    });
    Ok(WorkerConfig {
        coordinator: s.coordinator.ok_or_else(|| {
            Error::invalid("no coordinator: pass --coordinator or set it in the config")
        })?,
        token,
        tls_ca: s.tls_ca,
        name,
        pool: s.pool.unwrap_or_else(|| default_pool.to_string()),
        hardware: hardware.to_string(),
        slots: s.slots.unwrap_or_else(|| slots_for(cores, memory)),
        cores,
        memory_bytes: memory,
        capacity: s
            .capacity
            .as_deref()
            .unwrap_or("on-demand")
            .parse::<Capacity>()?,
        instance_type: s.instance_type.unwrap_or_default(),
        zone: s.zone.unwrap_or_default(),
        input_mode: s
            .input_mode
            .as_deref()
            .unwrap_or("stream")
            .parse::<InputMode>()?,
        connect_timeout: Duration::from_secs(30),
        notices,
        metrics_listen: s
            .metrics_listen
            .as_deref()
            .map(|a| {
                a.parse().map_err(|_| {
                    Error::invalid(format!(
                        "invalid metrics_listen {a:?} (expected host:port, e.g. 0.0.0.0:9464)"
                    ))
                })
            })
            .transpose()?,
        gpus: Vec::new(),
        encoder: String::new(),
        encoder_params,
        hardware_retry: Duration::from_secs(s.hardware_retry_seconds.unwrap_or(300)),
    })
}

fn notice_settings(s: &WorkerSettings) -> Result<NoticeSettings, Error> {
    let d = NoticeSettings::default();
    let url = |v: &Option<String>, default: String, key: &str| -> Result<String, Error> {
        let u = v.clone().unwrap_or(default);
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(Error::invalid(format!(
                "invalid {key} {u:?} (expected an http:// or https:// URL)"
            )));
        }
        Ok(u.trim_end_matches('/').to_string())
    };
    let poll = s.notice_poll_ms.unwrap_or(2000);
    if !(50..=60_000).contains(&poll) {
        return Err(Error::invalid(format!(
            "invalid notice_poll_ms {poll} (expected 50..=60000)"
        )));
    }
    let deadline = s.notice_deadline_seconds.unwrap_or(90);
    if !(1..=3600).contains(&deadline) {
        return Err(Error::invalid(format!(
            "invalid notice_deadline_seconds {deadline} (expected 1..=3600)"
        )));
    }
    let ttl = s.aws_token_ttl_seconds.unwrap_or(21_600);
    if !(1..=21_600).contains(&ttl) {
        return Err(Error::invalid(format!(
            "invalid aws_token_ttl_seconds {ttl} (expected 1..=21600, the IMDSv2 limits)"
        )));
    }
    Ok(NoticeSettings {
        cloud: s
            .cloud
            .as_deref()
            .unwrap_or("auto")
            .parse::<CloudChoice>()?,
        aws_url: url(&s.aws_metadata_url, d.aws_url, "aws_metadata_url")?,
        gcp_url: url(&s.gcp_metadata_url, d.gcp_url, "gcp_metadata_url")?,
        azure_url: url(&s.azure_metadata_url, d.azure_url, "azure_metadata_url")?,
        poll: Duration::from_millis(poll),
        deadline: Duration::from_secs(deadline),
        aws_token_ttl: Duration::from_secs(ttl),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_tokens_come_from_the_environment() {
        let file =
            "coordinator = \"http://c:1\"\ncapacity = \"spot\"\nslots = 3\ntoken_env = \"TOK\"\n";
        let env: HashMap<String, String> = [("TOK".to_string(), "secret".to_string())].into();
        let flags = WorkerSettings {
            slots: Some(1),
            ..Default::default()
        };
        let c = load(flags, file, &env, "cpu", "p").unwrap();
        assert_eq!((c.slots, c.capacity), (1, Capacity::Spot));
        assert_eq!(c.token.as_ref().map(|t| t.expose()), Some("secret"));
        // A config printed with {:?} (logs, panics) does not show it.
        assert!(!format!("{c:?}").contains("secret"), "{c:?}");
        assert_eq!(c.coordinator, "http://c:1");
        let e = load(
            WorkerSettings::default(),
            "capacity = \"preemptible\"\ncoordinator = \"x\"",
            &env,
            "cpu",
            "p",
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"preemptible\""), "{e}");
    }

    #[test]
    fn notice_settings_default_to_auto_and_two_second_polls() {
        let c = load(
            WorkerSettings::default(),
            "coordinator = \"x\"",
            &HashMap::new(),
            "cpu",
            "p",
        )
        .unwrap();
        assert_eq!(c.notices.cloud, CloudChoice::Auto);
        assert_eq!(c.notices.poll, Duration::from_secs(2));
        assert_eq!(c.notices.deadline, Duration::from_secs(90));
        let file =
            "coordinator = \"x\"\ncloud = \"gcp\"\ngcp_metadata_url = \"http://127.0.0.1:9/\"\n";
        let c = load(WorkerSettings::default(), file, &HashMap::new(), "cpu", "p").unwrap();
        assert_eq!(c.notices.gcp_url, "http://127.0.0.1:9");
        for bad in [
            "cloud = \"ibm\"",
            "notice_poll_ms = 1",
            "aws_metadata_url = \"file:///etc\"",
        ] {
            let text = format!("coordinator = \"x\"\n{bad}\n");
            assert!(
                load(
                    WorkerSettings::default(),
                    &text,
                    &HashMap::new(),
                    "cpu",
                    "p"
                )
                .is_err(),
                "{bad}"
            );
        }
    }
}
