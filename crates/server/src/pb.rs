//! The generated protobuf and gRPC code for `batchgate.v1` (see
//! `proto/batchgate/v1/batchgate.proto`), from the `batchgate-proto` crate,
//! with the enum names `ctl` prints and the mapping of the contract's
//! trigger onto the wire's.

pub use batchgate_proto::{
    names::{job_state_name, queue_state_name, serialize_job_state, serialize_queue_state},
    v1::*,
};

impl From<crate::contract::Trigger> for Trigger {
    fn from(t: crate::contract::Trigger) -> Self {
        use crate::contract::Trigger as T;
        match t {
            T::Size => Trigger::Size,
            T::Bytes => Trigger::Bytes,
            T::Delay => Trigger::Delay,
            T::Flush => Trigger::Flush,
            T::Drain => Trigger::Drain,
            T::Target => Trigger::Target,
            T::Cost => Trigger::Cost,
            T::Pace => Trigger::Pace,
        }
    }
}
