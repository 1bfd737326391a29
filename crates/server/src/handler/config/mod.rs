//! A queue's handler settings, as the config file (and CreateQueue) give
//! them: which kind, and the fields of that kind.

pub mod each;
mod endpoint;
mod kind;
mod raw;
mod settings;

pub(crate) use self::raw::RawHandler;
pub use self::{
    each::Rate,
    endpoint::{DNS_SCHEME, DnsName, validate_endpoint},
    kind::{Encoding, HandlerKind},
    raw::fields_of,
    settings::HandlerConfig,
};
