//! The `kserve` backend kind over real gRPC, with a second batchgate's v2
//! front door as the Open Inference Protocol server: a batch goes as one
//! ModelInfer of its items' rows stacked along dim 0, the output rows come
//! back to their items; padding rows are dropped; an item that is not
//! whole rows fails alone; a malformed answer fails the call INTERNAL.

use crate::common;

use std::collections::HashMap;

use batchgate::oip::pb::{
    ModelInferRequest, grpc_inference_service_client::GrpcInferenceServiceClient,
    model_infer_request::InferInputTensor,
};
use common::{TestServer, config, submit_request};
use tonic::Code;

/// The v2 server: an echo model of FP32 rows of 2, and one whose output
/// rows are declared longer than what its echo answers.
const SERVER: &str = r#"
[queues.m]
max_delay = "1ms"
v2 = { inputs = [{ name = "x", datatype = "FP32", shape = [2] }], outputs = [{ name = "y", datatype = "FP32", shape = [2] }] }

[queues.short]
max_delay = "1ms"
v2 = { inputs = [{ name = "x", datatype = "FP32", shape = [2] }], outputs = [{ name = "y", datatype = "FP32", shape = [2] }] }
"#;

fn front(port: u16) -> String {
    format!(
        r#"
[queues.front]
max_batch_size = 8
# Long enough that three concurrent callers always meet in one batch.
max_delay = "300ms"
allowed_batch_sizes = [4, 8]
v2 = {{ inputs = [{{ name = "x", datatype = "FP32", shape = [2] }}], outputs = [{{ name = "y", datatype = "FP32", shape = [2] }}] }}
handler = {{ kind = "kserve", endpoints = ["http://127.0.0.1:{port}"], model = "m", retries = 0 }}

[queues.broken]
max_delay = "1ms"
v2 = {{ inputs = [{{ name = "x", datatype = "FP32", shape = [2] }}], outputs = [{{ name = "y", datatype = "FP32", shape = [3] }}] }}
handler = {{ kind = "kserve", endpoints = ["http://127.0.0.1:{port}"], model = "short" }}
"#
    )
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[tokio::test]
async fn a_batch_is_one_model_infer_of_stacked_rows_and_padding_is_dropped() {
    let backend = TestServer::start(config(SERVER)).await;
    let server = TestServer::start(config(&front(backend.grpc.port()))).await;
    // Three rows from three callers: one batch of 3, padded to 4.
    let mut v2 = GrpcInferenceServiceClient::new(server.channel().await);
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let mut v2 = v2.clone();
            tokio::spawn(async move {
                let row = [i as f32, -(i as f32)];
                let request = ModelInferRequest {
                    model_name: "front".into(),
                    inputs: vec![InferInputTensor {
                        name: "x".into(),
                        datatype: "FP32".into(),
                        shape: vec![1, 2],
                        parameters: HashMap::new(),
                        contents: None,
                    }],
                    raw_input_contents: vec![f32s(&row).into()],
                    ..Default::default()
                };
                let answer = v2.model_infer(request).await.unwrap().into_inner();
                assert_eq!(answer.raw_output_contents, vec![f32s(&row)]);
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    // The v2 server saw one ModelInfer of 4 rows (3 and a padding row).
    let text = backend.metrics_text().await;
    assert_eq!(
        common::sample(&text, "batchgate_batch_size_sum{queue=\"m\"}"),
        Some(4.0)
    );
    assert_eq!(
        common::sample(&text, "batchgate_batch_size_count{queue=\"m\"}"),
        Some(1.0)
    );

    // batchgate.v1 items of the same layout go the same way; one that is
    // not whole rows fails alone.
    let mut client = server.client().await;
    let good = client.submit(submit_request("front", f32s(&[1.5, 2.5])));
    let mut bad_client = server.client().await;
    let bad = bad_client.submit(submit_request("front", [1u8, 2, 3]));
    let (good, bad) = tokio::join!(good, bad);
    assert_eq!(good.unwrap().into_inner().payload, f32s(&[1.5, 2.5]));
    let e = bad.unwrap_err();
    common::assert_status(&e, Code::InvalidArgument, "3 bytes is not whole rows");

    // Several rows in one request stay in order through both servers.
    let rows = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let answer = v2
        .model_infer(ModelInferRequest {
            model_name: "front".into(),
            inputs: vec![InferInputTensor {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![3, 2],
                parameters: HashMap::new(),
                contents: None,
            }],
            raw_input_contents: vec![f32s(&rows).into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.raw_output_contents, vec![f32s(&rows)]);
    server.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test]
async fn a_malformed_answer_fails_the_call_internal() {
    let backend = TestServer::start(config(SERVER)).await;
    let server = TestServer::start(config(&front(backend.grpc.port()))).await;
    let mut client = server.client().await;
    let e = client
        .submit(submit_request("broken", f32s(&[1.0, 2.0])))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Internal);
    assert!(
        e.message()
            .contains("output \"y\" has shape [1, 2], not [1, 3]"),
        "{}",
        e.message()
    );
    server.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test]
async fn an_unknown_remote_model_is_the_servers_not_found() {
    let backend = TestServer::start(config(SERVER)).await;
    let toml = front(backend.grpc.port()).replace("model = \"m\"", "model = \"absent\"");
    let server = TestServer::start(config(&toml)).await;
    let mut client = server.client().await;
    let e = client
        .submit(submit_request("front", f32s(&[1.0, 2.0])))
        .await
        .unwrap_err();
    common::assert_status(&e, Code::NotFound, "no model named \"absent\"");
    server.shutdown().await;
    backend.shutdown().await;
}

#[test]
fn a_kserve_queue_without_v2_is_refused_by_name() {
    let e = batchgate::config::Config::from_toml(
        "[queues.q]\nhandler = { kind = \"kserve\", endpoints = [\"http://127.0.0.1:1\"] }\n",
    )
    .unwrap()
    .validate()
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("queues.q.handler kind \"kserve\" needs the queue's v2"),
        "{e}"
    );
    let e = batchgate::config::Config::from_toml(
        "[queues.q]\nhandler = { kind = \"grpc\", endpoints = [\"http://127.0.0.1:1\"], model = \"m\" }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("handler field `model` does not apply to kind \"grpc\""),
        "{e}"
    );
}

#[tokio::test]
async fn input_that_is_not_whole_rows_is_invalid_argument_with_no_endpoint_up() {
    // Nothing listens on the only endpoint: whole rows are UNAVAILABLE,
    // input that can never work is the caller's to fix.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let server = TestServer::start(config(&front(port).replace("300ms", "1ms"))).await;
    let mut client = server.client().await;
    let e = client
        .submit(submit_request("front", vec![0; 5]))
        .await
        .unwrap_err();
    common::assert_status(&e, Code::InvalidArgument, "not whole rows");
    let e = client
        .submit(submit_request("front", f32s(&[1.0, 2.0])))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{}", e.message());
    server.shutdown().await;
}

/// Text and token ids toward a v2 server: a BYTES input and a `-1` one.
const TEXT_MODEL: &str = r#"v2 = { inputs = [{ name = "text", datatype = "BYTES", shape = [1] }, { name = "ids", datatype = "INT64", shape = [-1] }], outputs = [{ name = "text_out", datatype = "BYTES", shape = [1] }, { name = "ids_out", datatype = "INT64", shape = [-1] }] }"#;

fn text_request(model: &str, text: &[u8], ids: &[i64]) -> ModelInferRequest {
    let tensor = |name: &str, datatype: &str, shape: Vec<i64>| InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape,
        parameters: HashMap::new(),
        contents: None,
    };
    let mut raw_text = (text.len() as u32).to_le_bytes().to_vec();
    raw_text.extend_from_slice(text);
    ModelInferRequest {
        model_name: model.into(),
        inputs: vec![
            tensor("text", "BYTES", vec![1, 1]),
            tensor("ids", "INT64", vec![1, ids.len() as i64]),
        ],
        raw_input_contents: vec![
            raw_text.into(),
            ids.iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
        ],
        ..Default::default()
    }
}

#[tokio::test]
async fn bytes_and_variable_rows_go_to_a_v2_server_one_model_infer_per_length() {
    let backend = TestServer::start(config(&format!(
        "[queues.text]\nmax_delay = \"1ms\"\n{TEXT_MODEL}\n"
    )))
    .await;
    let port = backend.grpc.port();
    let server = TestServer::start(config(&format!(
        r#"
[queues.front]
max_batch_size = 8
# Long enough that concurrent callers always meet in one batch.
max_delay = "300ms"
allowed_batch_sizes = [4, 8]
{TEXT_MODEL}
handler = {{ kind = "kserve", endpoints = ["http://127.0.0.1:{port}"], model = "text", retries = 0 }}
"#
    )))
    .await;
    let v2 = GrpcInferenceServiceClient::new(server.channel().await);
    let requests = async |sent: Vec<(&'static [u8], Vec<i64>)>| {
        let calls: Vec<_> = sent
            .into_iter()
            .map(|(text, ids)| {
                let mut v2 = v2.clone();
                tokio::spawn(async move {
                    let r = v2
                        .model_infer(text_request("front", text, &ids))
                        .await
                        .unwrap()
                        .into_inner();
                    let mut raw_text = (text.len() as u32).to_le_bytes().to_vec();
                    raw_text.extend_from_slice(text);
                    assert_eq!(r.outputs[0].shape, vec![1, 1]);
                    assert_eq!(r.outputs[1].shape, vec![1, ids.len() as i64]);
                    assert_eq!(&r.raw_output_contents[0][..], &raw_text[..]);
                    let got: Vec<u8> = ids.iter().flat_map(|v| v.to_le_bytes()).collect();
                    assert_eq!(&r.raw_output_contents[1][..], &got[..]);
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap();
        }
    };
    let stats = async || {
        let mut c = GrpcInferenceServiceClient::new(backend.channel().await);
        let s = c
            .model_statistics(batchgate::oip::pb::ModelStatisticsRequest {
                name: "text".into(),
                version: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let s = &s.model_stats[0];
        (
            s.inference_stats
                .as_ref()
                .unwrap()
                .success
                .as_ref()
                .unwrap()
                .count,
            s.inference_count,
        )
    };
    // Three rows of one length (texts empty, not UTF-8, accented): one
    // ModelInfer of 4 rows (padded with an empty text and zero ids).
    requests(vec![
        (b"", vec![1, 2]),
        (b"\xff\xfe", vec![3, 4]),
        ("h\u{e9}llo".as_bytes(), vec![5, 6]),
    ])
    .await;
    assert_eq!(stats().await, (1, 4));
    // Lengths 2, 2 and 3 in one batch: a ModelInfer per length.
    requests(vec![
        (b"a", vec![1, 2]),
        (b"b", vec![3, 4, 5]),
        (b"c", vec![6, 7]),
    ])
    .await;
    assert_eq!(stats().await, (3, 7));

    // A batchgate.v1 item that is not a row of the model fails alone.
    let mut client = server.client().await;
    let e = client
        .submit(submit_request("front", [1u8, 0, 0, 0]))
        .await
        .unwrap_err();
    common::assert_status(
        &e,
        Code::InvalidArgument,
        "is not 1 rows of the v2 inputs: \"text\": element 0: its length 1 passes the end",
    );
    server.shutdown().await;
    backend.shutdown().await;
}
