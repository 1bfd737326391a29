//! batchgate's wire types, generated at build time from `proto/` with a
//! vendored `protoc` (a fresh machine needs nothing but the Rust
//! toolchain):
//! - [`v1`]: `batchgate.v1` (the Batcher, BatchControl, Jobs and Backend
//!   services), with the descriptor set that server reflection serves;
//! - [`inference`]: the Open Inference Protocol (KServe predict protocol v2,
//!   `inference.GRPCInferenceService`);
//! - [`codec`]: the codec both use (an undecodable message is
//!   INVALID_ARGUMENT);
//! - [`names`]: the names of the enums that print by name.
//!
//! The server crate (`batchgate`) re-exports them as `batchgate::pb` and
//! `batchgate::oip::pb`.

pub mod codec;
pub mod names;

/// The generated code of `proto/batchgate/v1/*.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("batchgate.v1");

    /// Encoded `FileDescriptorSet` of every batchgate proto, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("batchgate_descriptor");
}

/// The generated code of `proto/inference/grpc_predict_v2.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod inference {
    tonic::include_proto!("inference");
}
