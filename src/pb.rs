//! The generated protobuf and gRPC code for `batchgate.v1` (see
//! `proto/batchgate/v1/batchgate.proto`), plus the descriptor set that server
//! reflection serves.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("batchgate.v1");

/// Encoded `FileDescriptorSet` of every batchgate proto, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("batchgate_descriptor");
