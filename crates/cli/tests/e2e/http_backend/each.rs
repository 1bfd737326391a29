//! `http_each` against a local API that enforces a rate limit (429 with
//! `Retry-After`), fails some requests with 503, answers some slowly,
//! breaks some connections mid-answer and counts what it sees.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
    routing::get,
};
use batchgate::pb::{self, stream_response::Outcome};
use tonic::Code;

use super::common::{self, TestServer, config};

/// What the API saw.
#[derive(Default)]
struct Api {
    /// Requests allowed in one wall-clock second; more get 429.
    limit: u64,
    /// Requests by second (since the start).
    per_second: Mutex<HashMap<u64, u64>>,
    /// Requests by item, and answers of 200 by item.
    tries: Mutex<HashMap<String, u32>>,
    served: Mutex<HashMap<String, u32>>,
    /// 429s sent.
    too_many: Mutex<u64>,
    /// When each request came, for the Retry-After test.
    times: Mutex<Vec<Instant>>,
    /// Answer the first request of each item 429 with this Retry-After.
    retry_after_first: Option<String>,
    started: Option<Instant>,
}

async fn item(State(api): State<Arc<Api>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let now = Instant::now();
    api.times.lock().unwrap().push(now);
    let second = now.duration_since(api.started.unwrap()).as_secs();
    let in_second = {
        let mut per = api.per_second.lock().unwrap();
        let n = per.entry(second).or_default();
        *n += 1;
        *n
    };
    let tries = {
        let mut tries = api.tries.lock().unwrap();
        let n = tries.entry(id.clone()).or_default();
        *n += 1;
        *n
    };
    let answer = |status: StatusCode, body: Body| {
        Response::builder()
            .status(status)
            .header("x-request-no", tries.to_string())
            .body(body)
            .unwrap()
    };
    if let Some(after) = &api.retry_after_first
        && tries == 1
    {
        *api.too_many.lock().unwrap() += 1;
        let mut r = answer(StatusCode::TOO_MANY_REQUESTS, Body::from("slow down"));
        r.headers_mut()
            .insert("retry-after", after.parse().unwrap());
        return r;
    }
    if api.limit > 0 && in_second > api.limit {
        *api.too_many.lock().unwrap() += 1;
        let mut r = answer(StatusCode::TOO_MANY_REQUESTS, Body::from("slow down"));
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }
    let n: u64 = id.trim_start_matches('i').parse().unwrap_or(0);
    if n % 50 == 7 && tries == 1 {
        return answer(StatusCode::SERVICE_UNAVAILABLE, Body::from("busy"));
    }
    if n % 97 == 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if n % 131 == 5 && tries == 1 {
        // Headers go, then the connection breaks mid-body.
        let broken = tokio_stream::once(Err::<axum::body::Bytes, _>(std::io::Error::other("cut")));
        return answer(StatusCode::OK, Body::from_stream(broken));
    }
    if id == "missing" {
        return answer(StatusCode::NOT_FOUND, Body::from("no such page"));
    }
    *api.served.lock().unwrap().entry(id.clone()).or_default() += 1;
    let token = headers
        .get("x-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    answer(StatusCode::OK, Body::from(format!("item {id} {token}")))
}

async fn start_api(api: Api) -> (String, Arc<Api>) {
    let api = Arc::new(Api {
        started: Some(Instant::now()),
        ..api
    });
    let app = Router::new()
        .route("/items/{id}", get(item))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, api)
}

fn each_queue(handler: &str) -> String {
    format!(
        r#"
        [queues.api]
        max_batch_size = 256
        max_delay = "5ms"
        max_queue_items = 20000
        item_timeout = "60s"
        handler = {{ kind = "http_each", {handler} }}
        "#
    )
}

/// Sends items with attribute `id` over one stream; answers by id.
async fn send(
    server: &TestServer,
    ids: &[String],
) -> HashMap<String, Result<pb::SubmitResponse, (Code, String)>> {
    let mut client = server.client().await;
    let items = ids
        .iter()
        .map(|id| pb::StreamRequest {
            id: id.clone(),
            queue: "api".into(),
            attributes: HashMap::from([("id".to_owned(), id.clone())]),
            ..Default::default()
        })
        .collect();
    let mut answers = HashMap::new();
    for a in common::stream_all(&mut client, items).await {
        let a = a.unwrap();
        let outcome = match a.outcome.unwrap() {
            Outcome::Result(r) => Ok(r),
            Outcome::Error(e) => Err((Code::from(e.code), e.message)),
        };
        assert!(
            answers.insert(a.id.clone(), outcome).is_none(),
            "{} answered twice",
            a.id
        );
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_is_answered_once_within_the_apis_limit() {
    let (base, api) = start_api(Api {
        limit: 2_500,
        ..Api::default()
    })
    .await;
    // SAFETY: set before the server starts; no other thread reads it.
    unsafe { std::env::set_var("BATCHGATE_EACH_TEST_TOKEN", "t0k3n") };
    let server = TestServer::start(config(&each_queue(&format!(
        r#"url = "{base}/items/{{id}}", rate = "2200/s", max_in_flight = 64,
           headers = {{ x-token = "env:BATCHGATE_EACH_TEST_TOKEN" }}, keep_headers = ["X-Request-No"]"#
    ))))
    .await;
    let n = 10_000;
    let ids: Vec<String> = (0..n).map(|i| format!("i{i}")).collect();
    let answers = send(&server, &ids).await;
    assert_eq!(answers.len(), n);
    for id in &ids {
        let r = answers[id]
            .as_ref()
            .unwrap_or_else(|e| panic!("{id}: {e:?}"));
        assert_eq!(r.payload, format!("item {id} t0k3n").into_bytes(), "{id}");
        assert_eq!(r.attributes["status"], "200");
    }
    // Tried again: 503s and broken answers, never a 429.
    assert_eq!(
        answers["i7"].as_ref().unwrap().attributes["x-request-no"],
        "2"
    );
    assert_eq!(
        answers["i5"].as_ref().unwrap().attributes["x-request-no"],
        "2"
    );
    let served = api.served.lock().unwrap().clone();
    assert_eq!(served.len(), n);
    assert!(served.values().all(|&k| k == 1), "each item served once");
    let busiest = *api.per_second.lock().unwrap().values().max().unwrap();
    assert!(busiest <= 2_500, "the API saw {busiest} in one second");
    assert_eq!(*api.too_many.lock().unwrap(), 0, "no 429 at all");
    let retried = server
        .metric(r#"batchgate_http_each_retries_total{queue="api",reason="503"}"#)
        .await;
    assert_eq!(retried, (0..n).filter(|i| i % 50 == 7).count() as f64);
    server.shutdown().await;
}

#[tokio::test]
async fn retry_after_in_seconds_and_as_a_date_is_honoured() {
    for after in [
        "1".to_owned(),
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3)),
    ] {
        let (base, api) = start_api(Api {
            retry_after_first: Some(after.clone()),
            ..Api::default()
        })
        .await;
        let server = TestServer::start(config(&each_queue(&format!(
            r#"url = "{base}/items/{{id}}", retry_backoff = "1ms""#
        ))))
        .await;
        let answers = send(&server, &["i1".to_owned()]).await;
        let r = answers["i1"].as_ref().unwrap();
        assert_eq!(r.payload, b"item i1 ".to_vec());
        let times = api.times.lock().unwrap().clone();
        assert_eq!(times.len(), 2, "{after}");
        let gap = times[1] - times[0];
        assert!(gap >= Duration::from_millis(950), "{after}: waited {gap:?}");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn placeholders_are_encoded_and_bad_items_fail_alone() {
    let (base, api) = start_api(Api::default()).await;
    let server = TestServer::start(config(&each_queue(&format!(
        r#"url = "{base}/items/{{id}}", retries = 1, retry_backoff = "1ms""#
    ))))
    .await;
    let odd = "a/b?c&d é".to_owned();
    let answers = send(&server, &[odd.clone(), "missing".to_owned()]).await;
    assert_eq!(
        answers[&odd].as_ref().unwrap().payload,
        format!("item {odd} ").into_bytes(),
        "one path segment, decoded back to the attribute"
    );
    let (code, message) = answers["missing"].as_ref().unwrap_err();
    assert_eq!(*code, Code::NotFound);
    assert!(
        message.contains("404") && message.contains("no such page"),
        "{message}"
    );
    // An item without the placeholder's attribute fails alone, naming it.
    let mut client = server.client().await;
    let e = client
        .submit(common::submit_request("api", "x"))
        .await
        .unwrap_err();
    common::assert_status(&e, Code::InvalidArgument, "\"id\"");
    assert_eq!(
        api.tries.lock().unwrap().len(),
        2,
        "the bad item sent nothing"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_api_fails_its_items_unavailable_after_the_retries() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start(config(&each_queue(&format!(
        r#"url = "http://127.0.0.1:{port}/items/{{id}}", retries = 2, retry_backoff = "1ms""#
    ))))
    .await;
    let answers = send(&server, &["i1".to_owned()]).await;
    let (code, message) = answers["i1"].as_ref().unwrap_err();
    assert_eq!(*code, Code::Unavailable);
    assert!(message.contains("request failed"), "{message}");
    let retried = server
        .metric(r#"batchgate_http_each_retries_total{queue="api",reason="connect"}"#)
        .await;
    assert_eq!(retried, 2.0);
    server.shutdown().await;
}

#[test]
fn bad_http_each_configs_are_refused_naming_the_field() {
    for (handler, says) in [
        (r#"url = "http://a/{id""#, "without its"),
        (r#"url = "http://a/x", method = "FETCH""#, "method"),
        (r#"url = "http://a/x", rate = "0/min""#, "allows no request"),
        (r#"url = "http://a/x", burst = 0"#, "burst"),
        (r#"method = "GET""#, "url is required"),
        (r#"url = "ftp://a/x""#, "http://"),
        (r#"url = "http://{host}/x""#, "host"),
        (
            r#"url = "http://a/x", endpoints = ["http://b"]"#,
            "does not apply",
        ),
    ] {
        let toml = each_queue(handler);
        let e = match batchgate::config::Config::from_toml(&toml) {
            Err(e) => e.to_string(),
            Ok(c) => c.validate().unwrap_err().to_string(),
        };
        assert!(e.contains(says), "{handler}: {e}");
    }
}
