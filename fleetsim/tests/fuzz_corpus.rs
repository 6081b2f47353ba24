//! Replays the `config_toml` fuzz corpus (`fuzz/corpus/`) through the
//! workload parser on stable: a panic fails the test and names the file.

#![forbid(unsafe_code)]

use spotenc_tests::replay_fuzz_corpus;

#[test]
fn workload_toml_corpus() {
    replay_fuzz_corpus("config_toml", spotenc_fleetsim::fuzz_workload);
}
