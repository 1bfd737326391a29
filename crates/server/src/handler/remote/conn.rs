//! How one endpoint is reached: a lazily connected gRPC channel (TLS for
//! `https://`), or an HTTP URL on the pool's shared client.

use tonic::Status;

use crate::{
    handler::config::HandlerKind,
    oip::pb::grpc_inference_service_client::GrpcInferenceServiceClient,
    pb::backend_client::BackendClient,
};

/// Largest response accepted from a gRPC backend.
const MAX_BACKEND_MESSAGE: usize = 64 * 1024 * 1024;

/// How one endpoint is reached.
#[derive(Debug, Clone)]
pub(crate) enum Conn {
    /// A lazily connected gRPC channel.
    Grpc(BackendClient<tonic::transport::Channel>),
    /// A lazily connected gRPC channel to a v2 inference server.
    Kserve(GrpcInferenceServiceClient<tonic::transport::Channel>),
    /// An HTTP URL and the pool's shared client.
    Http {
        client: reqwest::Client,
        url: String,
    },
}

impl Conn {
    pub(super) fn new(
        kind: HandlerKind,
        address: &str,
        http: &reqwest::Client,
        tls_ca: Option<&std::path::Path>,
    ) -> Result<Self, Status> {
        match kind {
            HandlerKind::Grpc => Ok(Conn::Grpc(
                BackendClient::new(channel(address, tls_ca)?)
                    .max_decoding_message_size(MAX_BACKEND_MESSAGE),
            )),
            HandlerKind::Kserve => Ok(Conn::Kserve(
                GrpcInferenceServiceClient::new(channel(address, tls_ca)?)
                    .max_decoding_message_size(MAX_BACKEND_MESSAGE)
                    .max_encoding_message_size(MAX_BACKEND_MESSAGE),
            )),
            HandlerKind::Http => Ok(Conn::Http {
                client: http.clone(),
                url: address.to_owned(),
            }),
            other => Err(Status::invalid_argument(format!(
                "a {} queue has no endpoints",
                other.as_str()
            ))),
        }
    }
}

/// A lazily connected channel to a gRPC endpoint (TLS for `https://`).
fn channel(
    address: &str,
    tls_ca: Option<&std::path::Path>,
) -> Result<tonic::transport::Channel, Status> {
    let mut endpoint = tonic::transport::Channel::from_shared(address.to_owned())
        .map_err(|e| Status::invalid_argument(format!("bad endpoint {address:?}: {e}")))?;
    if address.starts_with("https://") {
        let tls = crate::tls::client(tls_ca, None, None)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| Status::invalid_argument(format!("TLS for {address:?}: {e}")))?;
    }
    Ok(endpoint.connect_lazy())
}
