//! Generates the gRPC code for `proto/batchgate/v1/*.proto` with a vendored
//! `protoc`, so a fresh machine needs nothing but the Rust toolchain.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/batchgate/v1/batchgate.proto"];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Payloads as `bytes::Bytes`: decoded without a copy, cloned by refcount.
    config.bytes(["."]);

    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("batchgate_descriptor.bin"))
        .compile_with_config(config, &protos, &["proto"])?;
    Ok(())
}
