//! The Open Inference Protocol (KServe predict protocol v2,
//! `inference.GRPCInferenceService`, the gRPC API of Triton, MLServer and
//! KServe): its generated code ([`pb`]), tensor datatypes ([`tensor`]) and
//! a queue's v2 model declaration ([`model`]). The front door that serves
//! it is [`crate::api::InferenceService`].

pub mod bytes;
pub mod model;
pub mod rows;
pub mod tensor;

pub use model::{ModelSpec, Rows, TensorSpec};
pub use tensor::DataType;

/// The generated code of `proto/inference/grpc_predict_v2.proto` (from the
/// `batchgate-proto` crate).
pub use batchgate_proto::inference as pb;
