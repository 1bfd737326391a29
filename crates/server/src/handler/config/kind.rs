//! Which kind of handler a queue has, and the gRPC backend's encoding.

use serde::{Deserialize, Serialize};

/// The kinds of handler.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum HandlerKind {
    /// Returns every payload and its attributes unchanged.
    #[default]
    Echo,
    /// A simulated model: each batch takes `base + per_item × n`, then echoes.
    Sim,
    /// A remote backend implementing `batchgate.v1.Backend` over gRPC.
    Grpc,
    /// A remote backend taking one JSON POST per batch.
    Http,
    /// A remote Open Inference Protocol (KServe v2) server: a batch is one
    /// ModelInfer, the items' rows stacked along dim 0.
    Kserve,
    /// Each item is its own HTTP request (an API without a batch
    /// endpoint), within a concurrency and a rate limit.
    #[serde(rename = "http_each")]
    HttpEach,
}

impl HandlerKind {
    /// The lower-case name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerKind::Echo => "echo",
            HandlerKind::Sim => "sim",
            HandlerKind::Grpc => "grpc",
            HandlerKind::Http => "http",
            HandlerKind::Kserve => "kserve",
            HandlerKind::HttpEach => "http_each",
        }
    }

    /// Parses a name as written in the config.
    ///
    /// # Errors
    /// The unknown name.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "echo" => Ok(HandlerKind::Echo),
            "sim" => Ok(HandlerKind::Sim),
            "grpc" => Ok(HandlerKind::Grpc),
            "http" => Ok(HandlerKind::Http),
            "kserve" => Ok(HandlerKind::Kserve),
            "http_each" => Ok(HandlerKind::HttpEach),
            other => Err(format!(
                "unknown handler kind {other:?} (echo, sim, grpc, http, kserve, http_each)"
            )),
        }
    }

    /// Whether batches go to remote endpoints.
    pub fn is_remote(self) -> bool {
        matches!(
            self,
            HandlerKind::Grpc | HandlerKind::Http | HandlerKind::Kserve
        )
    }

    /// Whether its endpoints speak gRPC (so `dns:///` names, `tls_ca_file`
    /// and `resolve_every` apply).
    pub fn is_grpc(self) -> bool {
        matches!(self, HandlerKind::Grpc | HandlerKind::Kserve)
    }
}

/// How a gRPC handler puts a batch on the wire.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// One `BackendItem` message per item.
    #[default]
    Items,
    /// Every payload in one buffer with offsets (`PackedItems`), answered
    /// the same way: no per-item message on either side.
    Packed,
}

impl Encoding {
    /// The lower-case name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Items => "items",
            Encoding::Packed => "packed",
        }
    }

    /// Parses a name as written in the config.
    ///
    /// # Errors
    /// The unknown name.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "items" => Ok(Encoding::Items),
            "packed" => Ok(Encoding::Packed),
            other => Err(format!("unknown encoding {other:?} (items, packed)")),
        }
    }
}
