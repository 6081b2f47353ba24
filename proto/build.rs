//! Generates the spotenc.v1 messages and gRPC stubs, plus a descriptor set for
//! gRPC reflection.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // Services only with the `grpc` feature: the messages alone need prost.
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        .file_descriptor_set_path(out.join("spotenc_descriptor.bin"))
        .compile_protos(&["spotenc/v1/spotenc.proto"], &["."])?;
    println!("cargo:rerun-if-changed=spotenc/v1/spotenc.proto");
    Ok(())
}
