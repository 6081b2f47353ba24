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
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use spotenc_proto::domain::Capacity;
use spotenc_proto::Error;

use crate::{host_resources, slots_for, InputMode, WorkerConfig};

/// Settings from the file, or from flags; flags win.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub coordinator: Option<String>,
    pub token: Option<String>,
    pub token_env: Option<String>,
    pub tls_ca: Option<PathBuf>,
    pub name: Option<String>,
    pub pool: Option<String>,
    pub capacity: Option<String>,
    pub instance_type: Option<String>,
    pub zone: Option<String>,
    pub slots: Option<u32>,
    pub input_mode: Option<String>,
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
    let token = match (s.token, s.token_env) {
        (Some(t), _) => Some(t),
        (None, Some(var)) => Some(env.get(&var).cloned().ok_or_else(|| {
            Error::invalid(format!("token_env: environment variable {var} is not set"))
        })?),
        (None, None) => None,
    };
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
        assert_eq!(c.token.as_deref(), Some("secret"));
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
}
