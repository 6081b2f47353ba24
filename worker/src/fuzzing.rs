//! Entry point for the worker-config fuzz target in `fuzz/` and the corpus
//! replay: arbitrary bytes as the worker's TOML config must give a config
//! or an error, never a panic.

use std::collections::HashMap;

use crate::config::{load, WorkerSettings};

pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = load(
        WorkerSettings::default(),
        text,
        &HashMap::new(),
        "cpu",
        "local-cpu",
    );
}
