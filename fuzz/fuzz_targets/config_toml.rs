#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spotenc_coordinator::fuzzing::config_toml(data);
    spotenc_fleetsim::fuzz_workload(data);
});
