//! Replays the fuzz corpora (`fuzz/corpus/`) through the coordinator's fuzz
//! entry points on stable, so CI re-checks every input a fuzzing run kept
//! or found. A panic fails the test and names the file.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| f(&data));
        assert!(r.is_ok(), "{} panics", path.display());
        n += 1;
    }
    assert!(n > 0, "no corpus in {}", dir.display());
}

#[test]
fn job_spec_corpus() {
    replay("job_spec", spotenc_coordinator::fuzzing::job_spec);
}

#[test]
fn config_toml_corpus() {
    replay("config_toml", spotenc_coordinator::fuzzing::config_toml);
}

#[test]
fn records_corpus() {
    replay("records", spotenc_coordinator::fuzzing::records);
}
