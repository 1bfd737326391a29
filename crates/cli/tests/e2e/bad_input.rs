//! Every kind of bad input gets its documented status, over real gRPC, and
//! never disturbs other items or the stream it came on.

use crate::common;

use std::time::Duration;

use batchgate::pb::{self, stream_response::Outcome};
use common::{TestServer, config, submit_request as request};
use tokio_stream::StreamExt;
use tonic::Code;

const QUEUES: &str = r#"
[queues.echo]
max_batch_bytes = 16
priority_levels = 2
handler = { kind = "echo" }

[queues.held]
mode = "manual"
max_batch_size = 2
max_batch_bytes = 2048
max_queue_items = 2
item_timeout = "1h"
handler = { kind = "echo" }

[queues.lazy]
max_delay = "200ms"
max_batch_bytes = 2048
handler = { kind = "echo" }

[server]
max_message_bytes = 2048
"#;

async fn server() -> TestServer {
    TestServer::start(config(QUEUES)).await
}

async fn submit_code(server: &TestServer, request: pb::SubmitRequest) -> (Code, String) {
    let mut client = server.client().await;
    match client.submit(request).await {
        Ok(_) => (Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}

#[tokio::test]
async fn unknown_queue_is_not_found() {
    let server = server().await;
    let (code, message) = submit_code(&server, request("nope", b"x")).await;
    assert_eq!(code, Code::NotFound);
    assert_eq!(message, "queue \"nope\" not found");
}

#[tokio::test]
async fn a_huge_unknown_queue_name_is_not_found_with_a_short_message() {
    let server = TestServer::start(config("[queues.echo]\n")).await;
    let name = "q".repeat(1 << 20);
    let (code, message) = submit_code(&server, request(&name, b"x")).await;
    assert_eq!(code, Code::NotFound, "{message:.200}");
    assert!(
        message.ends_with("… (1048576 bytes) not found"),
        "{message:.200}"
    );
    assert!(message.len() < 200, "{message:.200}");
}

/// Sends raw bytes as the request message, so a test can send what is not
/// protobuf.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

#[tokio::test]
async fn a_malformed_protobuf_body_is_invalid_argument() {
    let server = server().await;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    // Field 1 (queue) announced as 100 bytes long, then the body ends.
    let garbage = vec![0x0a, 100, b'e'];
    let status = grpc
        .unary(
            tonic::Request::new(garbage),
            "/batchgate.v1.Batcher/Submit".parse().unwrap(),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with("malformed protobuf message"),
        "{status:?}"
    );
    // The server lives on.
    assert_eq!(
        submit_code(&server, request("echo", b"x")).await.0,
        Code::Ok
    );
}

/// Sends `body` as it is (prefixes included) to `method` and returns the
/// call's status.
async fn raw_call(
    server: &TestServer,
    method: &str,
    body: Vec<u8>,
    encoding: Option<&str>,
) -> tonic::Status {
    use http_body_util::BodyExt;
    let mut channel = server.channel().await;
    let mut request = http::Request::post(format!("{}{method}", server.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(encoding) = encoding {
        request = request.header("grpc-encoding", encoding);
    }
    let request = request
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from(body),
        )))
        .unwrap();
    tower::ServiceExt::ready(&mut channel).await.unwrap();
    let response = tower::Service::call(&mut channel, request).await.unwrap();
    if let Some(status) = tonic::Status::from_header_map(response.headers()) {
        return status;
    }
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    tonic::Status::from_header_map(&trailers).unwrap_or_else(|| tonic::Status::ok(""))
}

/// A gRPC message: flag, length, bytes.
fn framed(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut framed = vec![flag];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

#[tokio::test]
async fn broken_grpc_framing_is_invalid_argument_and_the_server_lives_on() {
    let server = server().await;
    let submit = prost::Message::encode_to_vec(&request("echo", b"x"));
    let whole = framed(0, &submit);
    let cases: Vec<(&str, Vec<u8>, Option<&str>, &str)> = vec![
        (
            "cut in the message",
            whole[..whole.len() - 2].to_vec(),
            None,
            "2 bytes short",
        ),
        (
            "cut in the prefix",
            whole[..3].to_vec(),
            None,
            "3 bytes into",
        ),
        (
            "compressed without grpc-encoding",
            framed(1, &submit),
            None,
            "names no grpc-encoding",
        ),
        (
            "an unknown flag",
            framed(7, &submit),
            None,
            "compression flag 7",
        ),
    ];
    for method in [
        "/batchgate.v1.Batcher/Submit",
        "/inference.GRPCInferenceService/ModelInfer",
    ] {
        for (what, body, encoding, says) in &cases {
            let status = raw_call(&server, method, body.clone(), *encoding).await;
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{method} {what}: {status:?}"
            );
            assert!(
                status.message().contains(says),
                "{method} {what}: {status:?}"
            );
        }
    }
    // A whole message still goes through the same path, and the server lives on.
    let status = raw_call(&server, "/batchgate.v1.Batcher/Submit", whole, None).await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    // A stream cut short: its whole items are answered first.
    let mut body = framed(
        0,
        &prost::Message::encode_to_vec(&pb::StreamRequest {
            id: "1".into(),
            queue: "echo".into(),
            payload: b"a".to_vec().into(),
            ..Default::default()
        }),
    );
    body.extend_from_slice(&[0, 0, 0]);
    let status = raw_call(&server, "/batchgate.v1.Batcher/StreamSubmit", body, None).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        submit_code(&server, request("echo", b"x")).await.0,
        Code::Ok
    );
}

#[tokio::test]
async fn oversized_payload_is_invalid_argument() {
    let server = server().await;
    let (code, message) = submit_code(&server, request("echo", [7; 17])).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.contains("17 bytes exceeds max_batch_bytes 16"),
        "{message}"
    );
}

#[tokio::test]
async fn priority_out_of_range_is_invalid_argument() {
    let server = server().await;
    let mut req = request("echo", b"x");
    req.priority = 2;
    let (code, message) = submit_code(&server, req).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("levels 0..=1"), "{message}");
}

#[tokio::test]
async fn a_full_queue_is_resource_exhausted() {
    let server = server().await;
    let client = server.client().await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = client.clone();
        held.push(tokio::spawn(async move {
            c.submit(request("held", b"x")).await
        }));
    }
    // The two held items fill the queue; the third is refused at once.
    let mut refused = None;
    for _ in 0..1000 {
        let (code, message) = submit_code(&server, request("held", b"y")).await;
        if code == Code::ResourceExhausted {
            refused = Some(message);
            break;
        }
        assert_eq!(code, Code::Ok, "{message}");
        tokio::task::yield_now().await;
    }
    let message = refused.expect("the queue filled up");
    assert!(message.contains("is full (2 items waiting)"), "{message}");
    server.shutdown().await;
    for h in held {
        let result = h.await.unwrap();
        // Shutdown drains the manual queue: the held items succeed.
        assert!(result.is_ok(), "{result:?}");
    }
}

#[tokio::test]
async fn an_item_past_its_timeout_is_deadline_exceeded() {
    let server = server().await;
    let mut req = request("held", b"x");
    req.timeout_ms = 30;
    let (code, message) = submit_code(&server, req).await;
    assert_eq!(code, Code::DeadlineExceeded);
    assert!(message.contains("past its timeout"), "{message}");
}

#[tokio::test]
async fn the_grpc_deadline_also_bounds_the_wait() {
    let server = server().await;
    let mut client = server.client().await;
    let mut req = tonic::Request::new(request("held", b"x"));
    req.set_timeout(Duration::from_millis(30));
    // The item could wait an hour; the call's deadline ends it. The server
    // answers DEADLINE_EXCEEDED 2 ms before the deadline; tonic's client
    // enforces the same deadline itself and reports CANCELLED ("Timeout
    // expired") if that answer is late, as it can be on a loaded machine.
    let status = client.submit(req).await.unwrap_err();
    let client_side = status.code() == Code::Cancelled && status.message() == "Timeout expired";
    assert!(
        status.code() == Code::DeadlineExceeded || client_side,
        "{status:?}"
    );
}

#[tokio::test]
async fn a_call_deadline_passing_in_the_handler_is_answered_by_the_queue() {
    let server = TestServer::start(config(
        "[queues.slow]\nmax_delay = \"0s\"\nhandler = { kind = \"sim\", base = \"5s\", per_item = \"0s\" }\n",
    ))
    .await;
    let mut client = server.client().await;
    let mut req = tonic::Request::new(request("slow", b"x"));
    req.set_timeout(Duration::from_millis(300));
    // Dispatched at once, then stuck in a 5 s handler: the queue answers at
    // the deadline with the same message as for a queued item (or tonic's
    // client, enforcing the same deadline, says CANCELLED first on a
    // loaded machine).
    let status = client.submit(req).await.unwrap_err();
    let client_side = status.code() == Code::Cancelled && status.message() == "Timeout expired";
    let by_queue =
        status.code() == Code::DeadlineExceeded && status.message().contains("past its timeout");
    assert!(client_side || by_queue, "{status:?}");
}

#[tokio::test]
async fn a_message_over_max_message_bytes_is_refused_and_the_server_lives_on() {
    let server = server().await;
    let (code, _) = submit_code(&server, request("echo", [0; 4096])).await;
    assert_eq!(code, Code::OutOfRange);
    let (code, message) = submit_code(&server, request("echo", b"fine")).await;
    assert_eq!(code, Code::Ok, "{message}");
}

#[tokio::test]
async fn a_cancelled_call_leaves_its_queue_before_dispatch() {
    let server = server().await;
    let client = server.client().await;
    let mut c = client.clone();
    let cancelled = tokio::spawn(async move { c.submit(request("lazy", b"gone")).await });
    // Wait until the item is queued, then cancel the call.
    server
        .wait_for_metric("batchgate_queue_depth{queue=\"lazy\"}", 1.0)
        .await;
    cancelled.abort();
    let mut c = client.clone();
    let kept = c
        .submit(request("lazy", b"kept"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept.payload, b"kept".as_slice());
    assert_eq!(
        kept.batch.unwrap().batch_size,
        1,
        "the cancelled item rode along"
    );
    assert_eq!(
        server
            .metric("batchgate_items_total{queue=\"lazy\",outcome=\"cancelled\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn bad_items_on_a_stream_fail_alone() {
    let server = server().await;
    let mut client = server.client().await;
    let item = |id: &str, queue: &str, payload: &[u8]| pb::StreamRequest {
        id: id.into(),
        queue: queue.into(),
        payload: payload.to_vec().into(),
        ..Default::default()
    };
    let mut bad_priority = item("prio", "echo", b"x");
    bad_priority.priority = 9;
    let items = vec![
        item("first", "echo", b"1"),
        item("unknown", "nope", b"x"),
        item("", "echo", b"no id"),
        item("big", "echo", &[1; 17]),
        bad_priority,
        item("last", "echo", b"2"),
    ];
    let mut answers = client
        .stream_submit(tokio_stream::iter(items))
        .await
        .unwrap()
        .into_inner();
    let mut got = std::collections::HashMap::new();
    while let Some(answer) = answers.next().await {
        let answer = answer.expect("the stream itself ends OK");
        let code = match answer.outcome.unwrap() {
            Outcome::Result(_) => Code::Ok,
            Outcome::Error(e) => Code::from(e.code),
        };
        assert!(got.insert(answer.id, code).is_none());
    }
    let expected = [
        ("first", Code::Ok),
        ("unknown", Code::NotFound),
        ("", Code::InvalidArgument),
        ("big", Code::InvalidArgument),
        ("prio", Code::InvalidArgument),
        ("last", Code::Ok),
    ];
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for (id, code) in expected {
        assert_eq!(got[id], code, "item {id:?}");
    }
}

#[tokio::test]
async fn a_batch_key_over_256_bytes_is_invalid_argument_and_too_many_keys_resource_exhausted() {
    let server = TestServer::start(config(
        "[queues.k]\nmode = \"manual\"\nmax_keys = 1\nhandler = { kind = \"echo\" }\n",
    ))
    .await;
    let long = pb::SubmitRequest {
        batch_key: "k".repeat(257),
        ..request("k", b"x")
    };
    let (code, message) = submit_code(&server, long).await;
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(
        message,
        "batch key of 257 bytes exceeds the limit of 256 bytes"
    );
    // One key pending (manual queue) fills max_keys: a second key is
    // refused at once, the first's item still waits and is answered.
    let mut client = server.client().await;
    let first = tokio::spawn(async move {
        let mut request = tonic::Request::new(request("k", b"a"));
        request
            .metadata_mut()
            .insert("x-batch-key", "tenant-a".parse().unwrap());
        client.submit(request).await
    });
    common::wait_until("the first key", || async {
        (server.metric("batchgate_queue_depth{queue=\"k\"}").await == 1.0).then_some(())
    })
    .await;
    let other = pb::SubmitRequest {
        batch_key: "tenant-b".into(),
        ..request("k", b"b")
    };
    let (code, message) = submit_code(&server, other).await;
    assert_eq!(code, Code::ResourceExhausted);
    assert!(message.contains("max_keys"), "{message}");
    let mut ctl = pb::batch_control_client::BatchControlClient::new(server.channel().await);
    ctl.flush_queue(pb::QueueRef { name: "k".into() })
        .await
        .unwrap();
    assert_eq!(
        first.await.unwrap().unwrap().into_inner().payload,
        &b"a"[..]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_costs_are_invalid_argument_naming_their_source_and_other_items_go_on() {
    let server = TestServer::start(config(
        "[queues.tok]\ncost_attribute = \"tokens\"\nmax_batch_cost = 100\n\
         cost_model = \"padded\"\nmax_delay = \"1ms\"\nhandler = { kind = \"echo\" }\n",
    ))
    .await;
    let with_tokens = |tokens: &str| {
        let mut r = request("tok", tokens.as_bytes());
        r.attributes.insert("tokens".into(), tokens.into());
        r
    };
    for (tokens, why) in [
        ("-3", "negative"),
        ("NaN", "not a number (NaN)"),
        ("many", "not a number"),
        ("9007199254740993", "over 2^53"),
        ("2.5", "not a whole number"),
    ] {
        let (code, message) = submit_code(&server, with_tokens(tokens)).await;
        assert_eq!(code, Code::InvalidArgument, "{tokens}: {message}");
        assert!(
            message.contains("attribute \"tokens\"") && message.contains(why),
            "{tokens}: {message}"
        );
    }
    let huge = pb::SubmitRequest {
        cost: Some((1 << 53) + 1),
        ..request("tok", b"x")
    };
    let (code, message) = submit_code(&server, huge).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("request field cost"), "{message}");
    let (code, message) = submit_code(&server, with_tokens("101")).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("max_batch_cost 100"), "{message}");
    assert_eq!(submit_code(&server, with_tokens("40")).await.0, Code::Ok);

    // On a stream, each bad cost fails its own item and the rest are served.
    let mut client = server.client().await;
    let item = |id: &str, tokens: &str| pb::StreamRequest {
        id: id.into(),
        queue: "tok".into(),
        payload: id.as_bytes().to_vec().into(),
        attributes: [("tokens".to_owned(), tokens.to_owned())].into(),
        ..Default::default()
    };
    let items = vec![
        item("first", "10"),
        item("negative", "-1"),
        item("nan", "nan"),
        item("word", "ten"),
        item("huge", "1e300"),
        item("over", "101"),
        pb::StreamRequest {
            cost: Some(u64::MAX),
            ..item("field", "1")
        },
        item("last", "100"),
    ];
    let mut answers = client
        .stream_submit(tokio_stream::iter(items))
        .await
        .unwrap()
        .into_inner();
    let mut got = std::collections::HashMap::new();
    while let Some(answer) = answers.next().await {
        let answer = answer.expect("the stream itself ends OK");
        let outcome = match answer.outcome.unwrap() {
            Outcome::Result(r) => (Code::Ok, String::from_utf8_lossy(&r.payload).into_owned()),
            Outcome::Error(e) => (Code::from(e.code), e.message),
        };
        assert!(got.insert(answer.id, outcome).is_none());
    }
    assert_eq!(got.len(), 8, "{got:?}");
    assert_eq!(got["first"], (Code::Ok, "first".to_owned()));
    assert_eq!(got["last"], (Code::Ok, "last".to_owned()));
    for id in ["negative", "nan", "word", "huge"] {
        let (code, message) = &got[id];
        assert_eq!(*code, Code::InvalidArgument, "{id}: {message}");
        assert!(message.contains("attribute \"tokens\""), "{id}: {message}");
    }
    assert_eq!(got["over"].0, Code::InvalidArgument);
    assert!(
        got["over"].1.contains("max_batch_cost"),
        "{:?}",
        got["over"]
    );
    assert_eq!(got["field"].0, Code::InvalidArgument);
    assert!(
        got["field"].1.contains("request field cost"),
        "{:?}",
        got["field"]
    );
    server.shutdown().await;
}
