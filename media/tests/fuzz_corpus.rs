//! Replays the fuzz corpora (`fuzz/corpus/`) through the probe's fuzz
//! entry points on stable, so CI re-checks every input a fuzzing run kept
//! or found. A panic fails the test and names the file.

#![forbid(unsafe_code)]

use spotenc_tests::replay_fuzz_corpus;

#[test]
fn probe_corpus() {
    replay_fuzz_corpus("probe", spotenc_media::fuzzing::probe_bytes);
}
