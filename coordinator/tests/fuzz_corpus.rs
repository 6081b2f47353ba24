//! Replays the fuzz corpora (`fuzz/corpus/`) through the coordinator's fuzz
//! entry points on stable, so CI re-checks every input a fuzzing run kept
//! or found. A panic fails the test and names the file.

#![forbid(unsafe_code)]

use spotenc_tests::replay_fuzz_corpus;

#[test]
fn job_spec_corpus() {
    replay_fuzz_corpus("job_spec", spotenc_coordinator::fuzzing::job_spec);
}

#[test]
fn config_toml_corpus() {
    replay_fuzz_corpus("config_toml", spotenc_coordinator::fuzzing::config_toml);
}

#[test]
fn records_corpus() {
    replay_fuzz_corpus("records", spotenc_coordinator::fuzzing::records);
}
