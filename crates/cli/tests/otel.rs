//! OpenTelemetry traces end to end: the server is configured through the
//! standard `OTEL_*` environment, exports to an OTLP receiver started here,
//! and calls a real gRPC backend. The spans must arrive with the client's
//! parents, the batch's links and their attributes, and the backends (gRPC
//! and HTTP) must get the `traceparent` of their call's span.
//!
//! The environment and the global subscriber are per process: this file
//! holds one test.

use batchgate_test_support as common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use batchgate::{
    pb::{self, BatchRequest, BatchResponse, backend_server::Backend},
    telemetry::{self, LogFormat},
};
use common::TestServer;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, any_value::Value},
    trace::v1::Span,
};
use tokio_stream::{StreamExt, wrappers::TcpListenerStream};
use tonic::{Request, Response, Status, metadata::MetadataValue};

/// An OTLP trace receiver that keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A backend that keeps the `traceparent` of each call and answers as
/// [`Upper`](common::upper::Upper) does.
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Vec<String>>>);

#[tonic::async_trait]
impl Backend for Recording {
    async fn process_batch(
        &self,
        r: Request<BatchRequest>,
    ) -> Result<Response<BatchResponse>, Status> {
        let parent = r
            .metadata()
            .get("traceparent")
            .map(|v| v.to_str().unwrap().to_owned());
        self.0.lock().unwrap().push(parent.unwrap_or_default());
        common::upper::Upper.process_batch(r).await
    }

    type ProcessBatchStreamStream = <common::upper::Upper as Backend>::ProcessBatchStreamStream;

    async fn process_batch_stream(
        &self,
        r: Request<BatchRequest>,
    ) -> Result<Response<Self::ProcessBatchStreamStream>, Status> {
        common::upper::Upper.process_batch_stream(r).await
    }
}

/// An HTTP backend that echoes, keeping the `traceparent` header of each
/// call; returns its URL.
async fn http_backend(seen: Recording) -> String {
    use axum::{Router, extract::State, http::HeaderMap, routing::post};
    async fn batch(State(seen): State<Recording>, headers: HeaderMap, body: String) -> String {
        let parent = headers
            .get("traceparent")
            .map(|v| v.to_str().unwrap().to_owned());
        seen.0.lock().unwrap().push(parent.unwrap_or_default());
        let request: serde_json::Value = serde_json::from_str(&body).unwrap();
        let results: Vec<_> = request["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| serde_json::json!({"index": i["index"], "payload": i["payload"]}))
            .collect();
        serde_json::json!({ "results": results }).to_string()
    }
    let app = Router::new().route("/batch", post(batch)).with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/batch", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Serves `service` on a port of its own; returns the address.
async fn serve<S>(listener: std::net::TcpListener, service: S) -> SocketAddr
where
    S: tonic::server::NamedService
        + tower::Service<
            tonic::codegen::http::Request<tonic::body::Body>,
            Response = tonic::codegen::http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|AnyValue { value }| value)
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// A client `traceparent`: trace `t` repeated, parent span `p` repeated.
fn traceparent(t: char, p: char) -> (String, String, String) {
    let (trace, parent) = (t.to_string().repeat(32), p.to_string().repeat(16));
    (format!("00-{trace}-{parent}-01"), trace, parent)
}

#[test]
fn spans_arrive_with_the_clients_parents_the_batchs_links_and_the_backends_traceparent() {
    let otlp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", otlp.local_addr().unwrap());
    // SAFETY: this binary's one test sets the environment before it starts
    // any thread of its own; nothing else reads it meanwhile.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
        std::env::set_var("OTEL_SERVICE_NAME", "batchgate-test");
    }
    assert!(batchgate::otel::wanted(|k| std::env::var(k).ok()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(otlp));
}

async fn run(otlp: std::net::TcpListener) {
    let received = Receiver::default();
    serve(otlp, TraceServiceServer::new(received.clone())).await;
    let recording = Recording::default();
    let backend = serve(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        pb::backend_server::BackendServer::new(recording.clone()),
    )
    .await;
    let http_seen = Recording::default();
    let http = http_backend(http_seen.clone()).await;
    let traces = telemetry::init(LogFormat::Compact).expect("the environment turns traces on");
    assert!(batchgate::otel::enabled());

    let server = TestServer::start(common::config(&format!(
        "[queues.q]\nmax_batch_size = 2\nmax_delay = \"10s\"\nhandler = {{ kind = \"grpc\", endpoints = [\"http://{backend}\"] }}\n\n\
         [queues.s]\nmax_batch_size = 2\nmax_delay = \"10s\"\nhandler = {{ kind = \"http\", endpoints = [\"{http}\"] }}\n"
    )))
    .await;

    // Two unary calls from two client traces, batched together.
    let (tp1, trace1, parent1) = traceparent('a', '1');
    let (tp2, trace2, parent2) = traceparent('b', '2');
    let call = |tp: String, payload: &'static [u8]| {
        let server = &server;
        async move {
            let mut request = Request::new(common::submit_request("q", payload));
            let value: MetadataValue<_> = tp.parse().unwrap();
            request.metadata_mut().insert("traceparent", value);
            server
                .client()
                .await
                .submit(request)
                .await
                .unwrap()
                .into_inner()
        }
    };
    let (r1, r2) = tokio::join!(call(tp1, b"one"), call(tp2, b"two"));
    let batch_id = r1.batch.unwrap().batch_id;
    assert_eq!(r2.batch.unwrap().batch_id, batch_id, "one batch");

    // A stream of two items, from a third client trace.
    let (tp3, trace3, parent3) = traceparent('c', '3');
    let items = tokio_stream::iter((0..2).map(|i| pb::StreamRequest {
        id: i.to_string(),
        queue: "s".into(),
        payload: vec![b'x'].into(),
        ..Default::default()
    }));
    let mut request = Request::new(items);
    request
        .metadata_mut()
        .insert("traceparent", tp3.parse().unwrap());
    let mut answers = server
        .client()
        .await
        .stream_submit(request)
        .await
        .unwrap()
        .into_inner();
    let mut answered = 0;
    while let Some(answer) = answers.next().await {
        answer.unwrap();
        answered += 1;
    }
    assert_eq!(answered, 2);

    let spans = common::wait_until("the spans", || {
        let received = received.clone();
        let traces = &traces;
        async move {
            traces.flush().await;
            let spans = received.0.lock().unwrap().clone();
            let complete = named(&spans, "batchgate.submit").len() == 2
                && named(&spans, "batchgate.batch").len() == 2
                && named(&spans, "batchgate.backend_call").len() == 2
                && named(&spans, "batchgate.stream").len() == 1;
            complete.then_some(spans)
        }
    })
    .await;

    // Each call's span is a child of the client's span, in its trace.
    let submits = named(&spans, "batchgate.submit");
    for (trace, parent) in [(&trace1, &parent1), (&trace2, &parent2)] {
        let span = submits
            .iter()
            .find(|s| hex(&s.trace_id) == *trace)
            .expect("a span in the client's trace");
        assert_eq!(hex(&span.parent_span_id), *parent);
        assert_eq!(
            attribute(span, "batchgate.queue"),
            Some(Value::StringValue("q".into()))
        );
        assert_eq!(
            attribute(span, "batchgate.batch_id"),
            Some(Value::IntValue(batch_id as i64))
        );
        assert_eq!(
            attribute(span, "rpc.grpc.status_code"),
            Some(Value::IntValue(0))
        );
    }

    // The batch starts a trace of its own, linked to both calls.
    let batch = named(&spans, "batchgate.batch")
        .into_iter()
        .find(|s| attribute(s, "batchgate.queue") == Some(Value::StringValue("q".into())))
        .expect("the batch of q");
    assert!(batch.parent_span_id.is_empty(), "a root span");
    assert_ne!(hex(&batch.trace_id), trace1);
    let mut links: Vec<(Vec<u8>, Vec<u8>)> = batch
        .links
        .iter()
        .map(|l| (l.trace_id.clone(), l.span_id.clone()))
        .collect();
    links.sort();
    let mut calls: Vec<(Vec<u8>, Vec<u8>)> = submits
        .iter()
        .map(|s| (s.trace_id.clone(), s.span_id.clone()))
        .collect();
    calls.sort();
    assert_eq!(links, calls, "one link per call");
    assert_eq!(
        attribute(batch, "batchgate.batch_id"),
        Some(Value::IntValue(batch_id as i64))
    );
    assert_eq!(
        attribute(batch, "batchgate.batch_size"),
        Some(Value::IntValue(2))
    );
    assert_eq!(
        attribute(batch, "batchgate.trigger"),
        Some(Value::StringValue("size".into()))
    );

    // The backend call is inside the batch, and the backend got its
    // context as `traceparent`.
    let calls = named(&spans, "batchgate.backend_call");
    let call = calls
        .iter()
        .find(|c| c.parent_span_id == batch.span_id)
        .expect("a call inside the batch of q");
    assert_eq!(call.trace_id, batch.trace_id);
    assert_eq!(call.parent_span_id, batch.span_id);
    assert_eq!(
        attribute(call, "server.address"),
        Some(Value::StringValue(format!("http://{backend}")))
    );
    let sent = recording.0.lock().unwrap().clone();
    assert_eq!(
        sent,
        [format!(
            "00-{}-{}-01",
            hex(&call.trace_id),
            hex(&call.span_id)
        )]
    );

    // The stream's span is a child of its client's; its batch links to it
    // once, for both items.
    let stream = named(&spans, "batchgate.stream")[0];
    assert_eq!(
        (hex(&stream.trace_id), hex(&stream.parent_span_id)),
        (trace3, parent3)
    );
    let stream_batch = named(&spans, "batchgate.batch")
        .into_iter()
        .find(|s| attribute(s, "batchgate.queue") == Some(Value::StringValue("s".into())))
        .expect("the batch of s");
    assert_eq!(stream_batch.links.len(), 1);
    assert_eq!(stream_batch.links[0].span_id, stream.span_id);
    // Its HTTP backend got the context as a header.
    let http_call = calls
        .iter()
        .find(|c| c.parent_span_id == stream_batch.span_id)
        .expect("a call inside the batch of s");
    assert_eq!(
        http_seen.0.lock().unwrap().clone(),
        [format!(
            "00-{}-{}-01",
            hex(&http_call.trace_id),
            hex(&http_call.span_id)
        )]
    );

    server.shutdown().await;
    traces.shutdown().await;
}
