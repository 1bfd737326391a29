//! The Open Inference Protocol front door over real gRPC: a model name is a
//! queue, a request's rows become items (or one item), answers come back
//! stacked in order; every malformed request gets INVALID_ARGUMENT or
//! NOT_FOUND naming what is wrong, and the others are served.

use crate::common;

use std::collections::HashMap;

use batchgate::oip::pb::{
    self, InferTensorContents, ModelInferRequest,
    grpc_inference_service_client::GrpcInferenceServiceClient,
    model_infer_request::{InferInputTensor, InferRequestedOutputTensor},
};
use common::{TestServer, config};
use tonic::{Code, transport::Channel};

const CONFIG: &str = r#"
[queues.echo]
max_batch_size = 64
max_delay = "20ms"
v2 = { inputs = [{ name = "x", datatype = "FP32", shape = [2] }], outputs = [{ name = "y", datatype = "FP32", shape = [2] }] }

[queues.pair]
max_delay = "1ms"
v2 = { inputs = [{ name = "a", datatype = "INT32", shape = [1] }, { name = "b", datatype = "INT64", shape = [2] }], outputs = [{ name = "lo", datatype = "INT32", shape = [1] }, { name = "hi", datatype = "INT64", shape = [2] }] }

[queues.whole]
max_delay = "1ms"
v2 = { inputs = [{ name = "x", datatype = "UINT8", shape = [3] }], outputs = [{ name = "y", datatype = "UINT8", shape = [3] }], rows = "together", version = "7" }

[queues.wrong]
max_delay = "1ms"
v2 = { inputs = [{ name = "x", datatype = "FP32", shape = [2] }], outputs = [{ name = "y", datatype = "FP32", shape = [3] }] }

[queues.plain]
max_delay = "1ms"
"#;

async fn client(server: &TestServer) -> GrpcInferenceServiceClient<Channel> {
    GrpcInferenceServiceClient::new(server.channel().await)
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn input(name: &str, datatype: &str, shape: &[i64]) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
        parameters: HashMap::new(),
        contents: None,
    }
}

fn raw_request(model: &str, inputs: Vec<InferInputTensor>, raw: Vec<Vec<u8>>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        id: "req-1".into(),
        inputs,
        raw_input_contents: raw.into_iter().map(Into::into).collect(),
        ..Default::default()
    }
}

fn echo_rows(rows: &[[f32; 2]]) -> ModelInferRequest {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    raw_request(
        "echo",
        vec![input("x", "FP32", &[rows.len() as i64, 2])],
        vec![f32s(&flat)],
    )
}

#[tokio::test]
async fn rows_of_many_requests_share_batches_and_come_back_in_order() {
    let server = TestServer::start(config(CONFIG)).await;
    let c = client(&server).await;
    // 16 requests of 1..=4 rows at once: every row an item, batched across
    // requests, each answer the request's own rows in order.
    let calls: Vec<_> = (0..16)
        .map(|r| {
            let mut c = c.clone();
            tokio::spawn(async move {
                let rows: Vec<[f32; 2]> = (0..(r % 4 + 1)).map(|i| [r as f32, i as f32]).collect();
                let answer = c.model_infer(echo_rows(&rows)).await.unwrap().into_inner();
                (rows, answer)
            })
        })
        .collect();
    for call in calls {
        let (rows, answer) = call.await.unwrap();
        assert_eq!(answer.model_name, "echo");
        assert_eq!(answer.model_version, "1");
        assert_eq!(answer.id, "req-1");
        assert_eq!(answer.outputs.len(), 1);
        assert_eq!(answer.outputs[0].name, "y");
        assert_eq!(answer.outputs[0].datatype, "FP32");
        assert_eq!(answer.outputs[0].shape, vec![rows.len() as i64, 2]);
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        assert_eq!(answer.raw_output_contents, vec![f32s(&flat)]);
    }
    let text = server.metrics_text().await;
    let items = common::sample(&text, "batchgate_batch_size_sum{queue=\"echo\"}").unwrap();
    let batches = common::sample(&text, "batchgate_batch_size_count{queue=\"echo\"}").unwrap();
    assert_eq!(items, 40.0, "every row is one item");
    assert!(
        batches < 16.0,
        "rows of different requests shared batches ({batches} batches)"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn several_inputs_typed_contents_and_chosen_outputs() {
    let server = TestServer::start(config(CONFIG)).await;
    let mut c = client(&server).await;
    // Typed contents: two rows of a (INT32 [1]) and b (INT64 [2]); the echo
    // answers each row's a then b, cut back into lo and hi.
    let mut a = input("a", "INT32", &[2, 1]);
    a.contents = Some(InferTensorContents {
        int_contents: vec![7, -8],
        ..Default::default()
    });
    let mut b = input("b", "INT64", &[2, 2]);
    b.contents = Some(InferTensorContents {
        int64_contents: vec![1, 2, 3, 1 << 40],
        ..Default::default()
    });
    let request = ModelInferRequest {
        model_name: "pair".into(),
        inputs: vec![b, a],
        ..Default::default()
    };
    let answer = c.model_infer(request.clone()).await.unwrap().into_inner();
    let names: Vec<_> = answer.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["lo", "hi"]);
    assert_eq!(answer.outputs[1].shape, vec![2, 2]);
    let lo: Vec<u8> = [7i32, -8].iter().flat_map(|v| v.to_le_bytes()).collect();
    let hi: Vec<u8> = [1i64, 2, 3, 1 << 40]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(answer.raw_output_contents, vec![lo, hi.clone()]);
    // Only the output asked for.
    let mut only_hi = request;
    only_hi.outputs = vec![InferRequestedOutputTensor {
        name: "hi".into(),
        parameters: HashMap::new(),
    }];
    let answer = c.model_infer(only_hi).await.unwrap().into_inner();
    assert_eq!(answer.outputs.len(), 1);
    assert_eq!(answer.outputs[0].name, "hi");
    assert_eq!(answer.raw_output_contents, vec![hi]);
    server.shutdown().await;
}

#[tokio::test]
async fn rows_together_are_one_item_and_versions_are_checked() {
    let server = TestServer::start(config(CONFIG)).await;
    let mut c = client(&server).await;
    let mut request = raw_request(
        "whole",
        vec![input("x", "UINT8", &[2, 3])],
        vec![vec![1, 2, 3, 4, 5, 6]],
    );
    request.model_version = "7".into();
    let answer = c.model_infer(request.clone()).await.unwrap().into_inner();
    assert_eq!(answer.outputs[0].shape, vec![2, 3]);
    assert_eq!(answer.raw_output_contents, vec![vec![1, 2, 3, 4, 5, 6]]);
    let text = server.metrics_text().await;
    assert_eq!(
        common::sample(&text, "batchgate_batch_size_sum{queue=\"whole\"}"),
        Some(1.0)
    );
    request.model_version = "8".into();
    let e = c.model_infer(request).await.unwrap_err();
    common::assert_status(&e, Code::NotFound, "no version \"8\"");
    server.shutdown().await;
}

#[tokio::test]
async fn health_and_metadata_answer() {
    let server = TestServer::start(config(CONFIG)).await;
    let mut c = client(&server).await;
    assert!(
        c.server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = |name: &str, version: &str| pb::ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    assert!(
        c.model_ready(ready("echo", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        c.model_ready(ready("whole", "7"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !c.model_ready(ready("whole", "1"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !c.model_ready(ready("nope", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !c.model_ready(ready("plain", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let meta = c
        .server_metadata(pb::ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "batchgate");
    let meta = c
        .model_metadata(pb::ModelMetadataRequest {
            name: "pair".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.versions, vec!["1".to_owned()]);
    let inputs: Vec<_> = meta
        .inputs
        .iter()
        .map(|t| (t.name.as_str(), t.datatype.as_str(), t.shape.clone()))
        .collect();
    assert_eq!(
        inputs,
        [("a", "INT32", vec![-1, 1]), ("b", "INT64", vec![-1, 2])]
    );
    assert_eq!(meta.outputs[1].shape, vec![-1, 2]);
    for (name, wanted) in [
        ("nope", "no model named \"nope\""),
        ("plain", "serves no v2 model"),
    ] {
        let e = c
            .model_metadata(pb::ModelMetadataRequest {
                name: name.into(),
                version: String::new(),
            })
            .await
            .unwrap_err();
        common::assert_status(&e, Code::NotFound, wanted);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_their_status_and_the_others_go_on() {
    let server = TestServer::start(config(CONFIG)).await;
    let mut c = client(&server).await;
    let x = |shape: &[i64]| input("x", "FP32", shape);
    let mut typed_and_raw = echo_rows(&[[1.0, 2.0]]);
    typed_and_raw.inputs[0].contents = Some(InferTensorContents {
        fp32_contents: vec![1.0, 2.0],
        ..Default::default()
    });
    let mut typed_wrong_field = raw_request("echo", vec![x(&[1, 2])], vec![]);
    typed_wrong_field.inputs[0].contents = Some(InferTensorContents {
        int_contents: vec![1, 2],
        ..Default::default()
    });
    let mut typed_short = raw_request("echo", vec![x(&[2, 2])], vec![]);
    typed_short.inputs[0].contents = Some(InferTensorContents {
        fp32_contents: vec![1.0, 2.0, 3.0],
        ..Default::default()
    });
    let mut unknown_output = echo_rows(&[[1.0, 2.0]]);
    unknown_output.outputs = vec![InferRequestedOutputTensor {
        name: "z".into(),
        parameters: HashMap::new(),
    }];
    let mut bad_priority = echo_rows(&[[1.0, 2.0]]);
    bad_priority.parameters.insert(
        "priority".into(),
        pb::InferParameter {
            parameter_choice: Some(pb::infer_parameter::ParameterChoice::Int64Param(-1)),
        },
    );
    let cases: Vec<(&str, ModelInferRequest, Code, &str)> = vec![
        (
            "unknown model",
            raw_request("nope", vec![x(&[1, 2])], vec![f32s(&[1.0, 2.0])]),
            Code::NotFound,
            "no model named \"nope\"",
        ),
        (
            "queue without v2",
            raw_request("plain", vec![x(&[1, 2])], vec![f32s(&[1.0, 2.0])]),
            Code::NotFound,
            "serves no v2 model",
        ),
        (
            "missing input",
            raw_request("pair", vec![input("a", "INT32", &[1, 1])], vec![vec![0; 4]]),
            Code::InvalidArgument,
            "input \"b\" is missing",
        ),
        (
            "unknown input",
            raw_request(
                "echo",
                vec![x(&[1, 2]), input("q", "FP32", &[1, 2])],
                vec![f32s(&[1.0, 2.0]), f32s(&[1.0, 2.0])],
            ),
            Code::InvalidArgument,
            "model \"echo\" has no input \"q\"",
        ),
        (
            "input twice",
            raw_request(
                "echo",
                vec![x(&[1, 2]), x(&[1, 2])],
                vec![f32s(&[1.0, 2.0]), f32s(&[1.0, 2.0])],
            ),
            Code::InvalidArgument,
            "input \"x\" is given twice",
        ),
        (
            "wrong datatype",
            raw_request("echo", vec![input("x", "FP64", &[1, 2])], vec![vec![0; 16]]),
            Code::InvalidArgument,
            "input \"x\" is \"FP64\"; model \"echo\" takes FP32",
        ),
        (
            "unknown datatype",
            raw_request("echo", vec![input("x", "FLOAT", &[1, 2])], vec![vec![0; 8]]),
            Code::InvalidArgument,
            "input \"x\" is \"FLOAT\"",
        ),
        (
            "wrong row shape",
            raw_request("echo", vec![x(&[1, 3])], vec![f32s(&[1.0, 2.0, 3.0])]),
            Code::InvalidArgument,
            "input \"x\" has shape [1, 3]; model \"echo\" takes [N, 2]",
        ),
        (
            "no batch dimension",
            raw_request("echo", vec![x(&[2])], vec![f32s(&[1.0, 2.0])]),
            Code::InvalidArgument,
            "has shape [2]",
        ),
        (
            "zero rows",
            raw_request("echo", vec![x(&[0, 2])], vec![vec![]]),
            Code::InvalidArgument,
            "(N ≥ 1 rows)",
        ),
        (
            "negative rows",
            raw_request("echo", vec![x(&[-1, 2])], vec![vec![]]),
            Code::InvalidArgument,
            "has shape [-1, 2]",
        ),
        (
            "rows disagree",
            raw_request(
                "pair",
                vec![input("a", "INT32", &[2, 1]), input("b", "INT64", &[1, 2])],
                vec![vec![0; 8], vec![0; 16]],
            ),
            Code::InvalidArgument,
            "input \"b\" has 1 rows, input \"a\" has 2",
        ),
        (
            "raw too short",
            raw_request("echo", vec![x(&[2, 2])], vec![f32s(&[1.0, 2.0, 3.0])]),
            Code::InvalidArgument,
            "raw_input_contents[0] holds 12 bytes; [2, 2] FP32 needs 16",
        ),
        (
            "raw count",
            raw_request("echo", vec![x(&[1, 2])], vec![f32s(&[1.0, 2.0]), vec![]]),
            Code::InvalidArgument,
            "raw_input_contents holds 2 buffers for 1 inputs",
        ),
        (
            "typed and raw",
            typed_and_raw,
            Code::InvalidArgument,
            "has contents while the request uses raw_input_contents",
        ),
        (
            "typed in the wrong field",
            typed_wrong_field,
            Code::InvalidArgument,
            "FP32 contents go in fp32_contents, not int_contents",
        ),
        (
            "typed too few",
            typed_short,
            Code::InvalidArgument,
            "fp32_contents holds 3 values where the shape needs 4",
        ),
        (
            "no contents at all",
            raw_request("echo", vec![x(&[1, 2])], vec![]),
            Code::InvalidArgument,
            "fp32_contents holds 0 values",
        ),
        (
            "unknown output",
            unknown_output,
            Code::InvalidArgument,
            "model \"echo\" has no output \"z\" (it gives y)",
        ),
        (
            "bad priority",
            bad_priority,
            Code::InvalidArgument,
            "parameter priority must be ≥ 0",
        ),
        (
            "answer of the wrong size",
            raw_request("wrong", vec![x(&[1, 2])], vec![f32s(&[1.0, 2.0])]),
            Code::Internal,
            "answered what the v2 outputs (y) cannot be read from: \"y\": 1 rows of it need 12 bytes, 8 are left",
        ),
    ];
    // Good requests in flight meanwhile are all served.
    let good = {
        let c = c.clone();
        tokio::spawn(async move {
            let calls: Vec<_> = (0..32)
                .map(|i| {
                    let mut c = c.clone();
                    tokio::spawn(async move {
                        let rows = [[i as f32, 1.0]];
                        let a = c.model_infer(echo_rows(&rows)).await.unwrap().into_inner();
                        assert_eq!(a.raw_output_contents, vec![f32s(&[i as f32, 1.0])]);
                    })
                })
                .collect();
            for call in calls {
                call.await.unwrap();
            }
        })
    };
    for (what, request, code, wanted) in cases {
        let e = c.model_infer(request).await.unwrap_err();
        assert_eq!(e.code(), code, "{what}: {}", e.message());
        assert!(
            e.message().contains(wanted),
            "{what}: {:?} lacks {wanted:?}",
            e.message()
        );
    }
    good.await.unwrap();
    let answer = c
        .model_infer(echo_rows(&[[5.0, 6.0]]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.raw_output_contents, vec![f32s(&[5.0, 6.0])]);
    server.shutdown().await;
}

/// One-byte rows: the cheapest way to turn one request into many items.
const TINY: &str = r#"
[server]
max_pending_bytes = 8388608

[queues.tiny]
max_delay = "1ms"
max_batch_size = 4096
max_queue_items = 10000
v2 = { inputs = [{ name = "x", datatype = "UINT8" }], outputs = [{ name = "y", datatype = "UINT8" }] }

[queues.roomy]
max_delay = "1ms"
max_batch_size = 4096
max_queue_items = 1000000
v2 = { inputs = [{ name = "x", datatype = "UINT8" }], outputs = [{ name = "y", datatype = "UINT8" }], max_rows_per_request = 1000000 }
"#;

fn byte_rows(model: &str, rows: usize) -> ModelInferRequest {
    let bytes: Vec<u8> = (0..rows).map(|i| i as u8).collect();
    raw_request(
        model,
        vec![input("x", "UINT8", &[rows as i64])],
        vec![bytes],
    )
}

#[tokio::test]
async fn a_request_of_many_rows_is_refused_whole_before_its_items_exist() {
    let server = TestServer::start(config(TINY)).await;
    let mut c = client(&server).await;
    let cases = [
        // Past the model's max_rows_per_request (default 65,536).
        (
            "tiny",
            1_000_000,
            Code::InvalidArgument,
            "max_rows_per_request",
        ),
        // Within it, past the queue's room.
        (
            "tiny",
            20_000,
            Code::ResourceExhausted,
            "max_queue_items 10000",
        ),
        // Within both, past the server's memory budget (8 MiB).
        (
            "roomy",
            100_000,
            Code::ResourceExhausted,
            "server.max_pending_bytes = 8388608",
        ),
    ];
    for (model, rows, code, says) in cases {
        let status = c
            .model_infer(byte_rows(model, rows))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{rows} rows: {status:?}");
        assert!(status.message().contains(says), "{status:?}");
        assert!(status.message().len() < 512, "{status:?}");
    }
    // Refused whole: no row of them ran, and nothing is held.
    assert_eq!(
        server
            .metric("batchgate_items_total{queue=\"tiny\",outcome=\"ok\"}")
            .await,
        0.0
    );
    assert_eq!(
        server
            .metric("batchgate_items_total{queue=\"roomy\",outcome=\"rejected\"}")
            .await,
        100_000.0
    );
    assert_eq!(server.metric("batchgate_pending_bytes").await, 0.0);
    // A request that fits is answered exactly, and gives its bytes back.
    let answer = c
        .model_infer(byte_rows("roomy", 10_000))
        .await
        .expect("fits")
        .into_inner();
    let expected: Vec<u8> = (0..10_000).map(|i| i as u8).collect();
    assert_eq!(answer.raw_output_contents[0].as_ref(), &expected[..]);
    assert_eq!(server.metric("batchgate_pending_bytes").await, 0.0);
    server.shutdown().await;
}

#[tokio::test]
async fn the_memory_budget_refuses_unary_calls_and_holds_streams_back() {
    let server = TestServer::start(config(
        r#"
[server]
max_pending_bytes = 8388608

[queues.held]
mode = "manual"
"#,
    ))
    .await;
    let big = vec![7u8; 3 << 20];
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let mut c = server.client().await;
        let request = common::submit_request("held", &big);
        waiting.push(tokio::spawn(async move { c.submit(request).await }));
    }
    common::wait_until("two items held", || async {
        (server.metric("batchgate_queue_depth{queue=\"held\"}").await == 2.0).then_some(())
    })
    .await;
    let held = server.metric("batchgate_pending_bytes").await;
    assert!(held > 6.0 * 1024.0 * 1024.0, "{held}");
    // A third would pass 8 MiB: refused at once, by name.
    let mut c = server.client().await;
    let status = c
        .submit(common::submit_request("held", &big))
        .await
        .expect_err("over the budget");
    common::assert_status(&status, Code::ResourceExhausted, "server.max_pending_bytes");
    // A stream is held back instead: its big item waits for room (the
    // client's window fills), the small one before it is queued.
    let item = |id: &str, payload: &[u8]| batchgate::pb::StreamRequest {
        id: id.into(),
        queue: "held".into(),
        payload: payload.to_vec().into(),
        ..Default::default()
    };
    let mut streaming = server.client().await;
    let answers = common::stream_all(
        &mut streaming,
        vec![item("small", b"small"), item("big", &big)],
    );
    let flushes = async {
        let mut control =
            batchgate::pb::batch_control_client::BatchControlClient::new(server.channel().await);
        for depth in [3.0, 1.0] {
            common::wait_until("items held", || async {
                (server.metric("batchgate_queue_depth{queue=\"held\"}").await == depth)
                    .then_some(())
            })
            .await;
            control
                .flush_queue(batchgate::pb::QueueRef {
                    name: "held".into(),
                })
                .await
                .expect("flush");
        }
    };
    let (answers, ()) = tokio::join!(answers, flushes);
    use batchgate::pb::stream_response::Outcome;
    let mut by_id: HashMap<String, Vec<u8>> = HashMap::new();
    for a in answers {
        let a = a.expect("the stream was slowed, not cut");
        match a.outcome.expect("an outcome") {
            Outcome::Result(r) => by_id.insert(a.id, r.payload.to_vec()),
            Outcome::Error(e) => panic!("{}: {e:?}", a.id),
        };
    }
    assert_eq!(by_id["small"], b"small");
    assert_eq!(by_id["big"], big);
    for w in waiting {
        let answer = w.await.unwrap().expect("held items answered");
        assert_eq!(answer.into_inner().payload.len(), 3 << 20);
    }
    common::wait_until("every byte given back", || async {
        (server.metric("batchgate_pending_bytes").await == 0.0).then_some(())
    })
    .await;
    server.shutdown().await;
}

/// Resident memory of this process, bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Measures what one held item costs beside its payload, the figure
/// behind `budget::ITEM_OVERHEAD_BYTES`: run alone, with
/// `cargo test --release --test inference -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run alone"]
async fn measure_item_overhead() {
    let server = TestServer::start(config(
        r#"
[server]
max_pending_bytes = 4294967296

[queues.held]
mode = "manual"
max_queue_items = 1000000
max_batch_size = 1000000
v2 = { inputs = [{ name = "x", datatype = "UINT8" }], outputs = [{ name = "y", datatype = "UINT8" }], max_rows_per_request = 1000000 }
"#,
    ))
    .await;
    let rows = 1_000_000;
    let request = byte_rows("held", rows);
    let mut c = client(&server).await;
    let before = rss();
    let call = tokio::spawn(async move { c.model_infer(request).await });
    common::wait_until("every row held", || async {
        (server.metric("batchgate_queue_depth{queue=\"held\"}").await == rows as f64).then_some(())
    })
    .await;
    let after = rss();
    let charged = server.metric("batchgate_pending_bytes").await;
    println!(
        "rss per held row: {} bytes (1 byte of payload); charged per row: {} bytes",
        (after - before) / rows,
        charged as usize / rows
    );
    call.abort();
}

#[tokio::test]
async fn huge_client_strings_are_quoted_short_and_a_huge_priority_is_too_large() {
    let server = TestServer::start(config(CONFIG)).await;
    let mut c = client(&server).await;
    let huge = "n".repeat(1 << 20);
    let x = |shape: &[i64]| input("x", "FP32", shape);
    let with = |f: &dyn Fn(&mut ModelInferRequest)| {
        let mut r = echo_rows(&[[1.0, 2.0]]);
        f(&mut r);
        r
    };
    let cases: Vec<(&str, ModelInferRequest, Code, &str)> = vec![
        (
            "model",
            raw_request(&huge, vec![x(&[1, 2])], vec![f32s(&[1.0, 2.0])]),
            Code::NotFound,
            "no model named \"nnnn",
        ),
        (
            "version",
            with(&|r| r.model_version = huge.clone()),
            Code::NotFound,
            "has no version \"nnnn",
        ),
        (
            "input",
            with(&|r| {
                r.inputs.push(input(&huge, "FP32", &[1, 2]));
                r.raw_input_contents.push(f32s(&[1.0, 2.0]).into());
            }),
            Code::InvalidArgument,
            "has no input \"nnnn",
        ),
        (
            "datatype",
            with(&|r| r.inputs[0].datatype = huge.clone()),
            Code::InvalidArgument,
            "input \"x\" is \"nnnn",
        ),
        (
            "output",
            with(&|r| {
                r.outputs = vec![InferRequestedOutputTensor {
                    name: huge.clone(),
                    parameters: HashMap::new(),
                }]
            }),
            Code::InvalidArgument,
            "has no output \"nnnn",
        ),
        (
            "shape",
            with(&|r| r.inputs[0].shape = vec![1; 100_000]),
            Code::InvalidArgument,
            "has shape [1, 1, 1, 1, 1, 1, 1, 1, … 99992 more]",
        ),
        (
            "priority",
            with(&|r| {
                r.parameters.insert(
                    "priority".into(),
                    pb::InferParameter {
                        parameter_choice: Some(pb::infer_parameter::ParameterChoice::Int64Param(
                            1 << 40,
                        )),
                    },
                );
            }),
            Code::InvalidArgument,
            "parameter priority 1099511627776 is past the model's levels",
        ),
    ];
    for (what, request, code, says) in cases {
        let status = c.model_infer(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{what}: {status:?}");
        assert!(status.message().contains(says), "{what}: {status:?}");
        assert!(
            status.message().len() < 400,
            "{what}: {} bytes",
            status.message().len()
        );
        if what != "shape" && what != "priority" {
            assert!(
                status.message().contains("(1048576 bytes)"),
                "{what}: {status:?}"
            );
        }
    }
    let status = c
        .model_metadata(pb::ModelMetadataRequest {
            name: huge.clone(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().len() < 200, "{status:?}");
}

#[tokio::test]
async fn triton_streaming_answers_each_request_with_its_id_and_errors_inline() {
    use tokio_stream::StreamExt;
    let server = TestServer::start(config(CONFIG)).await;
    let mut c = client(&server).await;
    let n = 200;
    let mut requests: Vec<ModelInferRequest> = (0..n)
        .map(|i| ModelInferRequest {
            id: format!("r{i}"),
            ..echo_rows(&[[i as f32, -(i as f32)]])
        })
        .collect();
    // One bad request in the middle: its error comes back inline, with its
    // id; the others are answered.
    requests.insert(
        50,
        ModelInferRequest {
            id: "bad".into(),
            ..raw_request(
                "echo",
                vec![input("x", "FP32", &[1, 3])],
                vec![f32s(&[1.0, 2.0, 3.0])],
            )
        },
    );
    let mut answers = c
        .model_stream_infer(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut seen = HashMap::new();
    while let Some(a) = answers.next().await {
        let a = a.unwrap();
        let r = a.infer_response.unwrap();
        seen.insert(r.id.clone(), (a.error_message, r.raw_output_contents));
    }
    assert_eq!(seen.len(), n + 1);
    let (error, _) = &seen["bad"];
    assert!(error.contains("InvalidArgument"), "{error}");
    for i in 0..n {
        let (error, raw) = &seen[&format!("r{i}")];
        assert!(error.is_empty(), "{error}");
        assert_eq!(raw[0], f32s(&[i as f32, -(i as f32)]));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn triton_config_statistics_and_index_describe_the_queues() {
    let server = TestServer::start(config(CONFIG)).await;
    let mut c = client(&server).await;
    let config = c
        .model_config(pb::ModelConfigRequest {
            name: "echo".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(config.max_batch_size, 64, "the queue's max_batch_size");
    assert_eq!(config.input[0].name, "x");
    assert_eq!(config.input[0].data_type, pb::DataType::TypeFp32 as i32);
    assert_eq!(config.input[0].dims, [2]);
    let Some(pb::model_config::SchedulingChoice::DynamicBatching(batching)) =
        config.scheduling_choice
    else {
        panic!("a dynamic batcher")
    };
    assert_eq!(batching.max_queue_delay_microseconds, 20_000);
    let missing = c
        .model_config(pb::ModelConfigRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // Three requests of two rows: six inferences, queue and compute time
    // for each row; one request refused.
    for _ in 0..3 {
        c.model_infer(echo_rows(&[[1.0, 2.0], [3.0, 4.0]]))
            .await
            .unwrap();
    }
    c.model_infer(raw_request(
        "echo",
        vec![input("x", "FP32", &[1, 3])],
        vec![f32s(&[1.0, 2.0, 3.0])],
    ))
    .await
    .unwrap_err();
    let stats = c
        .model_statistics(pb::ModelStatisticsRequest {
            name: "echo".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let echo = &stats.model_stats[0];
    assert_eq!(echo.name, "echo");
    assert_eq!(echo.inference_count, 6);
    assert!(echo.execution_count >= 1 && echo.execution_count <= 3);
    let infer = echo.inference_stats.as_ref().unwrap();
    assert_eq!(infer.success.as_ref().unwrap().count, 3, "requests");
    assert!(infer.success.as_ref().unwrap().ns > 0);
    assert_eq!(infer.fail.as_ref().unwrap().count, 1);
    assert_eq!(infer.queue.as_ref().unwrap().count, 6);
    assert!(infer.queue.as_ref().unwrap().ns > 0, "waited max_delay");
    assert_eq!(infer.compute_infer.as_ref().unwrap().count, 6);
    assert!(echo.last_inference > 0);
    let all = c
        .model_statistics(pb::ModelStatisticsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = all.model_stats.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["echo", "pair", "whole", "wrong"],
        "the queues with a v2 model"
    );

    let index = c
        .repository_index(pb::RepositoryIndexRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(index.models.len(), 4);
    assert!(index.models.iter().all(|m| m.state == "READY"));
    assert_eq!(index.models[2].version, "7");
    server.shutdown().await;
}

#[tokio::test]
async fn the_rest_side_answers_json_and_binary_tensors_with_the_same_errors() {
    let server = TestServer::start(config(&format!(
        "[server]\nhttp_addr = \"127.0.0.1:0\"\n{CONFIG}"
    )))
    .await;
    let base = format!("http://{}", server.http.expect("http_addr bound"));
    let tls = batchgate::tls::http_client_tls(None).unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    let get = |path: &str| http.get(format!("{base}{path}")).send();
    assert_eq!(get("/v2/health/ready").await.unwrap().status(), 200);
    assert_eq!(get("/v2/models/echo/ready").await.unwrap().status(), 200);
    assert_eq!(get("/v2/models/nope/ready").await.unwrap().status(), 400);
    let meta: serde_json::Value = get("/v2/models/echo").await.unwrap().json().await.unwrap();
    assert_eq!(meta["inputs"][0]["shape"], serde_json::json!([-1, 2]));
    let cfg: serde_json::Value = get("/v2/models/echo/config")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["max_batch_size"], 64);
    assert_eq!(cfg["input"][0]["data_type"], "TYPE_FP32");

    // JSON tensors in and out.
    let body = serde_json::json!({
        "id": "j1",
        "inputs": [{ "name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1.5, 2.0], [3.0, -4.0]] }],
    });
    let r = http
        .post(format!("{base}/v2/models/echo/infer"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["id"], "j1");
    assert_eq!(answer["outputs"][0]["shape"], serde_json::json!([2, 2]));
    assert_eq!(
        answer["outputs"][0]["data"],
        serde_json::json!([1.5, 2.0, 3.0, -4.0])
    );

    // Triton's binary extension both ways.
    let header = serde_json::json!({
        "inputs": [{ "name": "x", "datatype": "FP32", "shape": [1, 2], "parameters": { "binary_data_size": 8 } }],
        "outputs": [{ "name": "y", "parameters": { "binary_data": true } }],
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend(f32s(&[7.0, 8.0]));
    let r = http
        .post(format!("{base}/v2/models/echo/infer"))
        .header("Inference-Header-Content-Length", header.len())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let json_len: usize = r.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    let head: serde_json::Value = serde_json::from_slice(&bytes[..json_len]).unwrap();
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 8);
    assert_eq!(&bytes[json_len..], &f32s(&[7.0, 8.0])[..]);

    // The same refusals as the gRPC side, as HTTP statuses.
    let post = |path: &str, body: String| http.post(format!("{base}{path}")).body(body).send();
    let refused = [
        (
            "/v2/models/nope/infer",
            body_of("x", "FP32", "[1, 2]", "[1, 2]"),
            404,
            "no model named",
        ),
        (
            "/v2/models/echo/infer",
            body_of("x", "FP32", "[1, 3]", "[1, 2, 3]"),
            400,
            "shape",
        ),
        (
            "/v2/models/echo/infer",
            body_of("x", "FP32", "[1, 2]", "[\"a\", 2]"),
            400,
            "is not a FP32",
        ),
        (
            "/v2/models/echo/infer",
            "{not json".to_owned(),
            400,
            "not JSON",
        ),
        (
            "/v2/models/echo/infer",
            body_of("x", "FP16", "[1, 2]", "[1, 2]"),
            400,
            "binary data only",
        ),
    ];
    for (path, body, status, says) in refused {
        let r = post(path, body.clone()).await.unwrap();
        assert_eq!(r.status(), status, "{body}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert!(e["error"].as_str().unwrap().contains(says), "{body}: {e}");
    }
    let r = http
        .post(format!("{base}/v2/models/echo/infer"))
        .header("Inference-Header-Content-Length", 9999)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let stats: serde_json::Value = get("/v2/models/echo/stats")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["model_stats"][0]["inference_count"], 3);
    server.shutdown().await;
}

fn body_of(name: &str, datatype: &str, shape: &str, data: &str) -> String {
    format!(
        r#"{{"inputs":[{{"name":"{name}","datatype":"{datatype}","shape":{shape},"data":{data}}}]}}"#
    )
}

const TEXT: &str = r#"
[server]
http_addr = "127.0.0.1:0"

[queues.text]
max_batch_size = 16
max_delay = "5ms"
v2 = { inputs = [{ name = "text", datatype = "BYTES", shape = [2] }, { name = "n", datatype = "INT64", shape = [1] }], outputs = [{ name = "text_out", datatype = "BYTES", shape = [2] }, { name = "n_out", datatype = "INT64", shape = [1] }] }
"#;

/// Raw BYTES: each element a 4-byte little-endian length and its bytes.
fn prefixed(elements: &[&[u8]]) -> Vec<u8> {
    elements
        .iter()
        .flat_map(|e| {
            (e.len() as u32)
                .to_le_bytes()
                .into_iter()
                .chain(e.iter().copied())
        })
        .collect()
}

#[tokio::test]
async fn bytes_tensors_travel_raw_typed_and_as_json_strings_row_by_row() {
    let server = TestServer::start(config(TEXT)).await;
    let mut c = client(&server).await;
    let i64s = |v: &[i64]| v.iter().flat_map(|n| n.to_le_bytes()).collect::<Vec<u8>>();
    // Three rows of two strings (one empty, one not UTF-8) and a number,
    // raw; each row an item, answered stacked in order.
    let rows: [[&[u8]; 2]; 3] = [
        [b"hello", b""],
        [b"\xff\xfe", b"x"],
        [b"long text here", b"\xc3\xa9"],
    ];
    let flat: Vec<&[u8]> = rows.iter().flatten().copied().collect();
    let r = c
        .model_infer(raw_request(
            "text",
            vec![
                input("text", "BYTES", &[3, 2]),
                input("n", "INT64", &[3, 1]),
            ],
            vec![prefixed(&flat), i64s(&[1, 2, 3])],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outputs[0].datatype, "BYTES");
    assert_eq!(r.outputs[0].shape, [3, 2]);
    assert_eq!(r.raw_output_contents[0], prefixed(&flat));
    assert_eq!(r.raw_output_contents[1], i64s(&[1, 2, 3]));
    // Typed bytes_contents.
    let typed = ModelInferRequest {
        model_name: "text".into(),
        inputs: vec![
            InferInputTensor {
                contents: Some(InferTensorContents {
                    bytes_contents: vec![b"a".to_vec().into(), b"bc".to_vec().into()],
                    ..Default::default()
                }),
                ..input("text", "BYTES", &[1, 2])
            },
            InferInputTensor {
                contents: Some(InferTensorContents {
                    int64_contents: vec![9],
                    ..Default::default()
                }),
                ..input("n", "INT64", &[1, 1])
            },
        ],
        ..Default::default()
    };
    let r = c.model_infer(typed).await.unwrap().into_inner();
    assert_eq!(r.raw_output_contents[0], prefixed(&[b"a", b"bc"]));
    // Bad BYTES, each named; the others go on.
    for (raw, says) in [
        (
            prefixed(&[b"a"]),
            "row 0, element 1: its length prefix passes the end",
        ),
        (
            [255, 255, 255, 255, b'a'].to_vec(),
            "its length 4294967295 passes the end",
        ),
        (
            [prefixed(&[b"a", b"b"]), vec![0]].concat(),
            "1 bytes left after its 1 rows",
        ),
    ] {
        let e = c
            .model_infer(raw_request(
                "text",
                vec![
                    input("text", "BYTES", &[1, 2]),
                    input("n", "INT64", &[1, 1]),
                ],
                vec![raw, i64s(&[1])],
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains(says), "{says}: {}", e.message());
    }
    // The REST side: JSON strings in and out.
    let tls = batchgate::tls::http_client_tls(None).unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    let body = serde_json::json!({
        "inputs": [
            { "name": "text", "datatype": "BYTES", "shape": [2, 2], "data": [["un", "deux"], ["trois", ""]] },
            { "name": "n", "datatype": "INT64", "shape": [2, 1], "data": [1, 2] },
        ],
    });
    let answer: serde_json::Value = http
        .post(format!(
            "http://{}/v2/models/text/infer",
            server.http.unwrap()
        ))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["outputs"][0]["data"],
        serde_json::json!(["un", "deux", "trois", ""])
    );
    assert_eq!(answer["outputs"][1]["data"], serde_json::json!([1, 2]));
    server.shutdown().await;
}

#[tokio::test]
async fn rest_bodies_are_charged_to_the_memory_budget_before_they_are_read() {
    let server = TestServer::start(config(
        r#"
[server]
http_addr = "127.0.0.1:0"
max_message_bytes = 65536
max_pending_bytes = 65536

[queues.held]
mode = "manual"
max_batch_bytes = 50000
v2 = { inputs = [{ name = "x", datatype = "UINT8", shape = [40000] }], outputs = [{ name = "y", datatype = "UINT8", shape = [40000] }] }
"#,
    ))
    .await;
    let tls = batchgate::tls::http_client_tls(None).unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    let url = format!("http://{}/v2/models/held/infer", server.http.unwrap());
    let request = || {
        let header = serde_json::json!({
            "inputs": [{ "name": "x", "datatype": "UINT8", "shape": [1, 40000], "parameters": { "binary_data_size": 40000 } }],
        })
        .to_string();
        let mut body = header.clone().into_bytes();
        body.extend(std::iter::repeat_n(7u8, 40_000));
        http.post(&url)
            .header("Inference-Header-Content-Length", header.len())
            .body(body)
            .send()
    };
    // The first is held in the manual queue with its 40 KB; a second
    // finds no room in the 64 KiB budget and is refused before its body
    // is read.
    let first = tokio::spawn(request());
    common::wait_until("the first request to wait in the queue", || async {
        let depth = server.metric("batchgate_queue_depth{queue=\"held\"}").await;
        (depth == 1.0).then_some(())
    })
    .await;
    let second = request().await.unwrap();
    assert_eq!(second.status(), 429);
    let said: serde_json::Value = second.json().await.unwrap();
    assert!(said["error"].as_str().unwrap().contains("memory"), "{said}");
    // Past the largest body: refused by its Content-Length alone.
    let huge = http
        .post(&url)
        .body(vec![0u8; 70_000])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let mut control =
        batchgate::pb::batch_control_client::BatchControlClient::new(server.channel().await);
    control
        .flush_queue(batchgate::pb::QueueRef {
            name: "held".into(),
        })
        .await
        .unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 200);
    // Its charge given back: another fits again.
    let again = tokio::spawn(request());
    common::wait_until("the next request to wait in the queue", || async {
        let depth = server.metric("batchgate_queue_depth{queue=\"held\"}").await;
        (depth == 1.0).then_some(())
    })
    .await;
    control
        .flush_queue(batchgate::pb::QueueRef {
            name: "held".into(),
        })
        .await
        .unwrap();
    assert_eq!(again.await.unwrap().unwrap().status(), 200, "room again");
    server.shutdown().await;
}

const VARIABLE: &str = r#"
[server]
http_addr = "127.0.0.1:0"

[queues.tokens]
max_batch_size = 16
max_delay = "2ms"
v2 = { inputs = [{ name = "ids", datatype = "INT64", shape = [-1], max_len = 8 }, { name = "mask", datatype = "INT8", shape = [-1, 2] }], outputs = [{ name = "ids_out", datatype = "INT64", shape = [-1], max_len = 8 }, { name = "mask_out", datatype = "INT8", shape = [-1, 2] }] }

[queues.buckets]
max_batch_size = 2
max_delay = "1h"
cost_attribute = "length"
cost_buckets = [4]
v2 = { inputs = [{ name = "ids", datatype = "INT64", shape = [-1] }], outputs = [{ name = "ids_out", datatype = "INT64", shape = [-1] }] }
"#;

fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|n| n.to_le_bytes()).collect()
}

/// A request of `rows` rows of `len` token ids (and a mask of `len` x 2).
fn tokens(model: &str, rows: i64, len: i64) -> ModelInferRequest {
    let ids: Vec<i64> = (0..rows * len).map(|k| k * 10 + len).collect();
    let mask: Vec<u8> = (0..rows * len * 2).map(|k| (k % 2) as u8).collect();
    let mut inputs = vec![input("ids", "INT64", &[rows, len])];
    let mut raw = vec![i64s(&ids)];
    if model == "tokens" {
        inputs.push(input("mask", "INT8", &[rows, len, 2]));
        raw.push(mask);
    }
    raw_request(model, inputs, raw)
}

#[tokio::test]
async fn variable_dimensions_keep_each_requests_shape_and_batch_by_length() {
    let server = TestServer::start(config(VARIABLE)).await;
    let c = client(&server).await;
    // Requests of 1..=8 tokens, 1..=3 rows, at once: rows of different
    // lengths share batches (each row led by its dims), and every answer
    // has its request's shape.
    let calls: Vec<_> = (1..=8)
        .map(|len| {
            let mut c = c.clone();
            tokio::spawn(async move {
                let rows = len % 3 + 1;
                let sent = tokens("tokens", rows, len);
                let got = c.model_infer(sent.clone()).await.unwrap().into_inner();
                (sent, got)
            })
        })
        .collect();
    for call in calls {
        let (sent, got) = call.await.unwrap();
        assert_eq!(got.outputs[0].shape, sent.inputs[0].shape);
        assert_eq!(got.outputs[1].shape, sent.inputs[1].shape);
        assert_eq!(got.raw_output_contents, sent.raw_input_contents);
    }
    let text = server.metrics_text().await;
    let batches = common::sample(&text, "batchgate_batch_size_count{queue=\"tokens\"}").unwrap();
    assert!(batches < 8.0, "lengths shared batches ({batches} batches)");

    // Bad variable dimensions, each named; the others go on.
    let mut c = client(&server).await;
    for (request, want) in [
        (
            tokens("tokens", 1, 0),
            "dimension 1 (variable) is 0; it must be ≥ 1",
        ),
        (
            tokens("tokens", 1, 9),
            "dimension 1 (variable) is 9, past its max_len 8",
        ),
        (
            raw_request(
                "tokens",
                vec![
                    input("ids", "INT64", &[1, 2]),
                    input("mask", "INT8", &[1, 2, 3]),
                ],
                vec![i64s(&[1, 2]), vec![0; 6]],
            ),
            "dimension 2 is 3, not 2",
        ),
        (
            raw_request(
                "tokens",
                vec![
                    input("ids", "INT64", &[1, 2, 2]),
                    input("mask", "INT8", &[1, 2, 2]),
                ],
                vec![i64s(&[1, 2, 3, 4]), vec![0; 4]],
            ),
            "2 dimensions a row where the model declares 1",
        ),
        (
            raw_request(
                "tokens",
                vec![
                    input("ids", "INT64", &[1, 3]),
                    input("mask", "INT8", &[1, 3, 2]),
                ],
                vec![i64s(&[1, 2]), vec![0; 6]],
            ),
            "holds 16 bytes; [1, 3] INT64 needs 24",
        ),
    ] {
        let e = c.model_infer(request).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{want}: {e:?}");
        assert!(e.message().contains(want), "{want}: {}", e.message());
    }
    let fine = c
        .model_infer(tokens("tokens", 2, 8))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fine.outputs[0].shape, vec![2, 8]);

    // The REST side: JSON tensors of a variable shape.
    let rest = format!("http://{}/v2/models/tokens/infer", server.http.unwrap());
    let body = serde_json::json!({
        "inputs": [
            { "name": "ids", "datatype": "INT64", "shape": [1, 3], "data": [5, 6, 7] },
            { "name": "mask", "datatype": "INT8", "shape": [1, 3, 2], "data": [1, 0, 1, 0, 1, 0] },
        ],
    })
    .to_string();
    let tls = batchgate::tls::http_client_tls(None).unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    let got: serde_json::Value = http
        .post(&rest)
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        got["outputs"][0]["shape"],
        serde_json::json!([1, 3]),
        "{got}"
    );
    assert_eq!(got["outputs"][0]["data"], serde_json::json!([5, 6, 7]));
    let metadata: serde_json::Value = http
        .get(format!("http://{}/v2/models/tokens", server.http.unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["inputs"][1]["shape"],
        serde_json::json!([-1, -1, 2])
    );

    // With cost_attribute = "length" and cost_buckets = [4], rows of 3
    // and 5 tokens never share a batch: the two wait (a batch of 2 would
    // have closed at once), and a row of 2 tokens closes the first's.
    let mut long = c.clone();
    let five = tokio::spawn(async move { long.model_infer(tokens("buckets", 1, 5)).await });
    let mut short = c.clone();
    let three = tokio::spawn(async move { short.model_infer(tokens("buckets", 1, 3)).await });
    server
        .wait_for_metric("batchgate_queue_depth{queue=\"buckets\"}", 2.0)
        .await;
    let two = c
        .model_infer(tokens("buckets", 1, 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(two.outputs[0].shape, vec![1, 2]);
    let three = three.await.unwrap().unwrap().into_inner();
    assert_eq!(three.outputs[0].shape, vec![1, 3]);
    assert!(
        !five.is_finished(),
        "the 5-token row waits in its own bucket"
    );
    five.abort();
    server.shutdown().await;
}

#[test]
fn variable_shapes_are_checked_at_config_time() {
    let check = |v2: &str, handler: &str| {
        let toml = format!("[queues.m]\nv2 = {v2}\n{handler}");
        batchgate::config::Config::from_toml(&toml)
            .and_then(|c| c.validate().map(|()| c))
            .map_err(|e| e.to_string())
    };
    let fixed_max = check(
        r#"{ inputs = [{ name = "t", datatype = "INT64", shape = [3], max_len = 4 }], outputs = [{ name = "y", datatype = "FP32" }] }"#,
        "",
    )
    .unwrap_err();
    assert!(
        fixed_max.contains("queues.m.v2.inputs[0].max_len applies to -1 dimensions"),
        "{fixed_max}"
    );
    let minus_two = check(
        r#"{ inputs = [{ name = "t", datatype = "INT64", shape = [-2] }], outputs = [{ name = "y", datatype = "FP32" }] }"#,
        "",
    )
    .unwrap_err();
    assert!(
        minus_two.contains("queues.m.v2.inputs[0].shape dimensions must be ≥ 1, or -1"),
        "{minus_two}"
    );
    check(
        r#"{ inputs = [{ name = "t", datatype = "BYTES", shape = [-1], max_len = 512 }], outputs = [{ name = "y", datatype = "FP32", shape = [-1, 4] }] }"#,
        "",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_streamed_requests_are_each_answered_once() {
    use tokio_stream::StreamExt;
    let server = TestServer::start(config(CONFIG)).await;
    // 10,000 requests written at once on four streams (more than a
    // stream keeps in progress, 4,096): each answered once with its own
    // rows; a request without an id is answered too, with an empty id (as
    // Triton does; the client that sends none matches by content).
    let n = 10_000;
    let mut streams = Vec::new();
    for s in 0..4 {
        let mut c = client(&server).await;
        streams.push(tokio::spawn(async move {
            let requests = (0..n / 4).map(move |i| {
                let k: usize = s * (n / 4) + i;
                ModelInferRequest {
                    id: if k.is_multiple_of(1000) {
                        String::new()
                    } else {
                        format!("r{k}")
                    },
                    ..echo_rows(&[[k as f32, 1.0]])
                }
            });
            let mut answers = c
                .model_stream_infer(tokio_stream::iter(requests))
                .await
                .unwrap()
                .into_inner();
            let mut got = Vec::new();
            while let Some(a) = answers.next().await {
                let a = a.unwrap();
                assert!(a.error_message.is_empty(), "{}", a.error_message);
                let r = a.infer_response.unwrap();
                let row = &r.raw_output_contents[0];
                let k = f32::from_le_bytes([row[0], row[1], row[2], row[3]]) as usize;
                let want = if k.is_multiple_of(1000) {
                    String::new()
                } else {
                    format!("r{k}")
                };
                assert_eq!(r.id, want);
                got.push(k);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for s in streams {
        all.extend(s.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (0..n).collect::<Vec<_>>(),
        "each request answered once"
    );
    server.shutdown().await;
}

fn with_parameter(
    mut r: ModelInferRequest,
    name: &str,
    p: pb::infer_parameter::ParameterChoice,
) -> ModelInferRequest {
    r.parameters.insert(
        name.into(),
        pb::InferParameter {
            parameter_choice: Some(p),
        },
    );
    r
}

#[tokio::test]
async fn triton_priorities_go_one_highest_and_the_timeout_parameter_is_a_deadline() {
    use pb::infer_parameter::ParameterChoice::{Int64Param, StringParam, Uint64Param};
    let server = TestServer::start(config(
        r#"
[queues.ranked]
max_batch_size = 1
max_in_flight_batches = 1
priority_levels = 3
v2 = { inputs = [{ name = "x", datatype = "FP32", shape = [2] }], outputs = [{ name = "y", datatype = "FP32", shape = [2] }] }
"#,
    ))
    .await;
    let mut c = client(&server).await;
    let row = |v: f32| ModelInferRequest {
        model_name: "ranked".into(),
        ..echo_rows(&[[v, v]])
    };
    // ModelConfig says Triton's levels: 1..=3, a request without one in 3.
    let config = c
        .model_config(pb::ModelConfigRequest {
            name: "ranked".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    let Some(pb::model_config::SchedulingChoice::DynamicBatching(batching)) =
        config.scheduling_choice
    else {
        panic!("no dynamic_batching");
    };
    assert_eq!(
        (batching.priority_levels, batching.default_priority_level),
        (3, 3)
    );

    // Paused, the queue holds: the default (0), Triton's lowest (3), its
    // highest (1, as tritonclient sends it: uint64) and its middle (2).
    let mut ctl =
        batchgate::pb::batch_control_client::BatchControlClient::new(server.channel().await);
    let queue = || batchgate::pb::QueueRef {
        name: "ranked".into(),
    };
    ctl.pause_queue(queue()).await.unwrap();
    let (tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    let sent = [
        (0.0, None),
        (3.0, Some(Int64Param(3))),
        (1.0, Some(Uint64Param(1))),
        (2.0, Some(Int64Param(2))),
    ];
    for (k, (v, p)) in sent.into_iter().enumerate() {
        let request = match p {
            Some(p) => with_parameter(row(v), "priority", p),
            None => row(v),
        };
        let (mut c, tx) = (c.clone(), tx.clone());
        tokio::spawn(async move {
            let r = c.model_infer(request).await.unwrap().into_inner();
            let y = f32::from_le_bytes(r.raw_output_contents[0][..4].try_into().unwrap());
            tx.send(y).unwrap();
        });
        server
            .wait_for_metric("batchgate_queue_depth{queue=\"ranked\"}", (k + 1) as f64)
            .await;
    }
    ctl.resume_queue(queue()).await.unwrap();
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(done.recv().await.unwrap());
    }
    // 1 first; the default and 3 (both the lowest) in arrival order.
    assert_eq!(order, vec![1.0, 2.0, 0.0, 3.0]);

    // Past the levels, negative or of another type: refused, named.
    for (p, says) in [
        (
            Int64Param(4),
            "parameter priority 4 is past the model's levels (Triton's convention: 1 the highest ..= 3 the lowest",
        ),
        (Int64Param(-2), "parameter priority must be ≥ 0, got -2"),
        (
            StringParam("high".into()),
            "parameter priority must be an int64_param or uint64_param",
        ),
    ] {
        let e = c
            .model_infer(with_parameter(row(1.0), "priority", p))
            .await
            .unwrap_err();
        common::assert_status(&e, Code::InvalidArgument, says);
    }

    // The timeout parameter (microseconds) is the rows' deadline: on a
    // paused queue a row of 50 ms ends DEADLINE_EXCEEDED.
    ctl.pause_queue(queue()).await.unwrap();
    let e = c
        .model_infer(with_parameter(row(1.0), "timeout", Int64Param(50_000)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    let e = c
        .model_infer(with_parameter(row(1.0), "timeout", Int64Param(-1)))
        .await
        .unwrap_err();
    assert!(
        e.message()
            .contains("parameter timeout must be ≥ 0 microseconds"),
        "{}",
        e.message()
    );
    server.shutdown().await;
}
