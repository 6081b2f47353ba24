#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spotenc_worker::fuzzing::config_toml(data));
