//! Replays the fuzz corpora (`fuzz/corpus/`) through the worker config fuzz
//! entry points on stable, so CI re-checks every input a fuzzing run kept
//! or found. A panic fails the test and names the file.

#![forbid(unsafe_code)]

use spotenc_tests::replay_fuzz_corpus;

#[test]
fn worker_config_corpus() {
    replay_fuzz_corpus("worker_config", spotenc_worker::fuzzing::config_toml);
}
