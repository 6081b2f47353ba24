//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz and libFuzzer,
//! on nightly) and for the corpus replay that CI runs on stable
//! (`tests/tests/fuzz_corpus.rs`). Each takes arbitrary bytes and must
//! return, never panic, whatever they hold: a panic here is a finding.

use std::collections::HashMap;

use spotenc_proto::domain::{AttemptRecord, JobSpec, ProbeInfo, TaskOutcome, Work};
use spotenc_proto::pb;

use spotenc_core::cost::catalogue::{parse_entries, Catalogue};
use spotenc_core::cost::model::Demand;
use spotenc_core::state::WorkerRecord;

/// A `SubmitJobRequest` as protobuf bytes: decoded, converted and
/// validated as the coordinator does before it plans anything; a valid
/// spec also survives the trip back to protobuf unchanged.
pub fn job_spec(data: &[u8]) {
    let Ok(req) = <pb::SubmitJobRequest as prost::Message>::decode(data) else {
        return;
    };
    let Some(spec) = req.spec else { return };
    let Ok(spec) = JobSpec::try_from(spec) else {
        return;
    };
    if spec.validate().is_ok() {
        let back = JobSpec::try_from(pb::JobSpec::from(spec.clone()));
        assert_eq!(
            back.as_ref().ok(),
            Some(&spec),
            "a valid spec changed on the wire"
        );
    }
}

/// TOML as the coordinator config, a pool catalogue and a pools file (the
/// simulator's workload: `spotenc_fleetsim::fuzz_workload`).
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::config::load(text, &HashMap::new());
    if let Ok(entries) = parse_entries(text) {
        let _ = Catalogue::load(&entries);
    }
    let _ = spotenc_core::cost::pools::parse_pools(text, "fuzz.toml");
}

/// The JSON records the Redis scripts store and hand back opaque (work,
/// outcomes, attempts, specs, demands, probes, worker records): each one
/// that parses must serialise and parse back to itself.
pub fn records(data: &[u8]) {
    fn round_trip<T>(data: &[u8])
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        if let Ok(v) = serde_json::from_slice::<T>(data) {
            let text = serde_json::to_string(&v).expect("a parsed record serialises");
            let again: T = serde_json::from_str(&text).expect("a serialised record parses");
            assert_eq!(again, v, "a record changed in a JSON round trip: {text}");
        }
    }
    round_trip::<Work>(data);
    round_trip::<TaskOutcome>(data);
    round_trip::<AttemptRecord>(data);
    round_trip::<JobSpec>(data);
    round_trip::<Demand>(data);
    round_trip::<ProbeInfo>(data);
    round_trip::<WorkerRecord>(data);
}
