//! Entry point for the probe fuzz target in `fuzz/` and the corpus replay:
//! arbitrary bytes, written to a file, probed as a job's input would be.
//! An error is fine; a panic or a crash is a finding.

use std::sync::atomic::{AtomicU64, Ordering};

pub fn probe_bytes(data: &[u8]) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "spotenc-fuzz-probe-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    if std::fs::write(&path, data).is_ok() {
        let _ = crate::probe::probe(path.to_str().unwrap_or_default());
    }
    let _ = std::fs::remove_file(&path);
}
