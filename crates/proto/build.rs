//! Generates the gRPC code for `proto/batchgate/v1/*.proto` and the Open
//! Inference Protocol (`proto/inference/grpc_predict_v2.proto`) with a
//! vendored `protoc`, so a fresh machine needs nothing but the Rust
//! toolchain.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "../../proto/batchgate/v1/batchgate.proto",
        "../../proto/batchgate/v1/backend.proto",
        "../../proto/batchgate/v1/control.proto",
        "../../proto/batchgate/v1/jobs.proto",
        "../../proto/inference/grpc_predict_v2.proto",
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Payloads as `bytes::Bytes`: decoded without a copy, cloned by refcount.
    config.bytes(["."]);

    // Control-plane answers print as JSON in `batchgate ctl --json`.
    let mut builder = tonic_prost_build::configure();
    for message in [
        "QueueInfo",
        "QueuePolicy",
        "BatchSizes",
        "KeyWeights",
        "CostBuckets",
        "HandlerSpec",
        "EndpointInfo",
        "QueueStats",
        "Learned",
        "Percentiles",
        "SizeBucket",
        "KeyShare",
        "StatsSnapshot",
        "ListQueuesResponse",
        "ListEndpointsResponse",
        "FlushQueueResponse",
        "DeleteQueueResponse",
        "Job",
        "JobCounts",
    ] {
        builder = builder.type_attribute(
            format!(".batchgate.v1.{message}"),
            "#[derive(serde::Serialize)]",
        );
    }
    // The console sends a policy change as JSON (a field it does not know
    // is refused, naming it).
    for message in ["QueuePolicy", "BatchSizes", "KeyWeights", "CostBuckets"] {
        builder = builder.type_attribute(
            format!(".batchgate.v1.{message}"),
            "#[derive(serde::Deserialize)] #[serde(deny_unknown_fields)]",
        );
    }
    // The queue state prints by name, not number.
    builder = builder.field_attribute(
        ".batchgate.v1.QueueInfo.state",
        "#[serde(serialize_with = \"crate::names::serialize_queue_state\")]",
    );
    builder = builder.field_attribute(
        ".batchgate.v1.Job.state",
        "#[serde(serialize_with = \"crate::names::serialize_job_state\")]",
    );
    // Undecodable messages are INVALID_ARGUMENT, not prost's INTERNAL.
    builder
        .codec_path("crate::codec::ProtoCodec")
        .file_descriptor_set_path(out_dir.join("batchgate_descriptor.bin"))
        .compile_with_config(config, &protos, &["../../proto"])?;
    Ok(())
}
