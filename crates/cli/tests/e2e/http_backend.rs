//! HTTP/JSON backends, against a fake HTTP server on 127.0.0.1: the JSON
//! shapes, per-item errors, retries on 503, bisection on 400, malformed
//! bodies, and raw JSON payloads; `each` has the `http_each` kind.

use crate::common;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use base64::{Engine, engine::general_purpose::STANDARD};
use batchgate::pb::{self, stream_response::Outcome};
use common::{TestServer, config};
use serde_json::{Value, json};
use tonic::Code;

#[derive(Default)]
struct Fake {
    /// The next this-many calls answer 503.
    unavailable_next: AtomicU32,
    /// Answer 200 with a body that is not JSON.
    garbage: bool,
    /// Requests seen.
    requests: Mutex<Vec<Value>>,
}

async fn batch(State(fake): State<Arc<Fake>>, body: Bytes) -> (StatusCode, String) {
    let request: Value = serde_json::from_slice(&body).unwrap();
    fake.requests.lock().unwrap().push(request.clone());
    if fake
        .unavailable_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "busy".into());
    }
    if fake.garbage {
        return (StatusCode::OK, "<html>oops</html>".into());
    }
    let items = request["items"].as_array().unwrap();
    let mut results = Vec::new();
    for item in items {
        let index = item["index"].clone();
        let payload = &item["payload"];
        if let Some(text) = payload.as_str() {
            let bytes = STANDARD.decode(text).unwrap();
            let text = String::from_utf8(bytes).unwrap();
            if text == "poison" {
                return (StatusCode::BAD_REQUEST, "poison in batch".into());
            }
            if text.starts_with("bad") {
                results.push(json!({"index": index, "error": {"code": 3, "message": "bad item"}}));
                continue;
            }
            let upper = STANDARD.encode(text.to_uppercase());
            results.push(json!({"index": index, "payload": upper, "attributes": {"via": "http"}}));
        } else {
            results.push(json!({"index": index, "payload": {"echo": payload}}));
        }
    }
    (StatusCode::OK, json!({ "results": results }).to_string())
}

async fn start(fake: Fake) -> (String, Arc<Fake>) {
    let fake = Arc::new(fake);
    let app = Router::new()
        .route("/batch", post(batch))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/batch", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fake)
}

fn queue(url: &str, extra: &str) -> String {
    format!(
        r#"
        [queues.web]
        max_delay = "20ms"
        handler = {{ kind = "http", endpoints = ["{url}"] {extra} }}
        "#
    )
}

type Answers = HashMap<String, Result<pb::SubmitResponse, (Code, String)>>;

async fn send(server: &TestServer, payloads: &[&str]) -> Answers {
    let mut client = server.client().await;
    let items: Vec<_> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| pb::StreamRequest {
            id: i.to_string(),
            queue: "web".into(),
            payload: p.as_bytes().to_vec().into(),
            ..Default::default()
        })
        .collect();
    let answers = common::stream_all(&mut client, items).await;
    let mut map = HashMap::new();
    for a in answers {
        let a = a.unwrap();
        let outcome = match a.outcome.unwrap() {
            Outcome::Result(r) => Ok(r),
            Outcome::Error(e) => Err((Code::from(e.code), e.message)),
        };
        assert!(map.insert(a.id, outcome).is_none());
    }
    map
}

#[tokio::test]
async fn items_round_trip_as_base64_json_with_per_item_errors() {
    let (url, fake) = start(Fake::default()).await;
    let server = TestServer::start(config(&queue(&url, ""))).await;
    let answers = send(&server, &["hello", "bad apple", "world"]).await;
    assert_eq!(answers["0"].as_ref().unwrap().payload, b"HELLO".as_slice());
    assert_eq!(answers["0"].as_ref().unwrap().attributes["via"], "http");
    assert_eq!(answers["2"].as_ref().unwrap().payload, b"WORLD".as_slice());
    assert_eq!(
        answers["1"].as_ref().unwrap_err(),
        &(Code::InvalidArgument, "bad item".to_owned())
    );
    let requests = fake.requests.lock().unwrap().clone();
    let first = &requests[0];
    assert_eq!(first["queue"], "web");
    assert!(first["batch_id"].as_u64().unwrap() >= 1);
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    assert!(first["items"][0]["trace_id"].as_str().is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn a_503_is_retried() {
    let (url, fake) = start(Fake {
        unavailable_next: AtomicU32::new(2),
        ..Default::default()
    })
    .await;
    let server = TestServer::start(config(&queue(&url, ", eject_after = 10"))).await;
    let answers = send(&server, &["again"]).await;
    assert_eq!(answers["0"].as_ref().unwrap().payload, b"AGAIN".as_slice());
    assert_eq!(fake.requests.lock().unwrap().len(), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn a_400_for_the_batch_is_bisected_to_the_poison_item() {
    let (url, _fake) = start(Fake::default()).await;
    let server = TestServer::start(config(&queue(&url, ""))).await;
    let answers = send(&server, &["a", "b", "poison", "c"]).await;
    for id in ["0", "1", "3"] {
        assert!(answers[id].is_ok(), "{id}: {:?}", answers[id]);
    }
    let (code, message) = answers["2"].as_ref().unwrap_err();
    assert_eq!(*code, Code::InvalidArgument);
    assert!(message.contains("HTTP 400"), "{message}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_body_that_is_not_json_fails_the_items_internal() {
    let (url, _fake) = start(Fake {
        garbage: true,
        ..Default::default()
    })
    .await;
    let server = TestServer::start(config(&queue(&url, ""))).await;
    let answers = send(&server, &["x", "y"]).await;
    for outcome in answers.values() {
        let (code, message) = outcome.as_ref().unwrap_err();
        assert_eq!(*code, Code::Internal);
        assert!(message.contains("not valid JSON"), "{message}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn json_payloads_travel_as_raw_json() {
    let (url, fake) = start(Fake::default()).await;
    let server = TestServer::start(config(&queue(&url, ", json_payloads = true"))).await;
    let answers = send(&server, &[r#"{"n": 1}"#, "not json"]).await;
    let echoed: Value = serde_json::from_slice(&answers["0"].as_ref().unwrap().payload).unwrap();
    assert_eq!(echoed, json!({"echo": {"n": 1}}));
    let (code, message) = answers["1"].as_ref().unwrap_err();
    assert_eq!(*code, Code::InvalidArgument);
    assert!(message.contains("not JSON"), "{message}");
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests[0]["items"][0]["payload"], json!({"n": 1}));
    assert_eq!(requests[0]["items"].as_array().unwrap().len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn each_batch_holds_one_key_and_the_backend_is_told_which() {
    let (url, fake) = start(Fake::default()).await;
    let server = TestServer::start(config(&queue(&url, ""))).await;
    let mut client = server.client().await;
    let items: Vec<_> = ["a", "b", "a", "", "b"]
        .iter()
        .enumerate()
        .map(|(i, key)| pb::StreamRequest {
            id: i.to_string(),
            queue: "web".into(),
            payload: format!("p{i}").into_bytes().into(),
            batch_key: (*key).to_owned(),
            ..Default::default()
        })
        .collect();
    for answer in common::stream_all(&mut client, items).await {
        assert!(matches!(answer.unwrap().outcome, Some(Outcome::Result(_))));
    }
    let mut batches: Vec<(String, usize)> = fake
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            let key = r["batch_key"].as_str().unwrap_or("(none)").to_owned();
            (key, r["items"].as_array().unwrap().len())
        })
        .collect();
    batches.sort();
    assert_eq!(
        batches,
        [("(none)".into(), 1), ("a".into(), 2), ("b".into(), 2)]
    );
    server.shutdown().await;
}

mod each;
