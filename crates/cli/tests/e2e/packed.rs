//! Packed batches (`encoding = "packed"`) against fake `Backend` servers on
//! 127.0.0.1: the wire shape batchgate sends, answers packed or item by
//! item or streamed, per-item errors, `pad_to`, and every malformed packed
//! answer: each fails the call's items INTERNAL with the fault, exactly
//! once, and the next batch is served.

use crate::common;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use batchgate::pb::{
    self, BatchRequest, BatchResponse, ItemError, ItemMeta, ItemOutput, ItemResult, PackedError,
    PackedItems, backend_server::Backend, item_result::Outcome, stream_response,
};
use bytes::Bytes;
use common::{TestServer, config};
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};

/// How the fake answers a packed request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reply {
    /// A packed answer: each payload upper-cased, "bad…" items as errors.
    Packed,
    /// The same, as one ItemResult per position.
    Results,
    /// A packed answer with one result too few.
    TooFew,
    /// A packed answer with one result too many.
    TooMany,
    /// Offsets past the end of the data.
    OffsetsOutOfRange,
    /// Offsets that go back: items overlap.
    OffsetsOverlap,
    /// Offsets that leave the end of the buffer uncovered.
    OffsetsShort,
    /// An item size that does not divide the data.
    ItemSizeNotDividing,
    /// Errors for a position past the end and twice for one position.
    StrayErrors,
}

#[derive(Debug)]
struct Fake {
    reply: Reply,
    /// Requests seen.
    seen: Mutex<Vec<BatchRequest>>,
}

/// The payloads of a packed request, checked against its shape.
fn payloads(p: &PackedItems) -> Vec<Bytes> {
    let n = p.count as usize;
    if p.item_size > 0 {
        let size = p.item_size as usize;
        assert_eq!(p.data.len(), n * size);
        (0..n)
            .map(|i| p.data.slice(i * size..(i + 1) * size))
            .collect()
    } else if p.offsets.is_empty() {
        assert!(p.data.is_empty());
        vec![Bytes::new(); n]
    } else {
        assert_eq!(p.offsets.len(), n + 1);
        p.offsets
            .windows(2)
            .map(|w| p.data.slice(w[0] as usize..w[1] as usize))
            .collect()
    }
}

/// Packs `outputs` with offsets.
fn pack(outputs: &[Vec<u8>]) -> PackedItems {
    let mut data = Vec::new();
    let mut offsets = vec![0];
    for o in outputs {
        data.extend_from_slice(o);
        offsets.push(data.len() as u32);
    }
    PackedItems {
        count: outputs.len() as u32,
        data: data.into(),
        offsets,
        ..Default::default()
    }
}

fn error(position: usize, text: &str) -> PackedError {
    PackedError {
        position: position as u32,
        error: Some(ItemError {
            code: Code::InvalidArgument as i32,
            message: format!("{text} is bad"),
            batch: None,
        }),
    }
}

impl Fake {
    fn answer(&self, request: BatchRequest) -> BatchResponse {
        let packed = request.packed.clone().expect("a packed request");
        assert!(request.items.is_empty(), "no per-item messages when packed");
        self.seen.lock().unwrap().push(request);
        let inputs = payloads(&packed);
        let mut outputs: Vec<Vec<u8>> = Vec::new();
        let mut errors = Vec::new();
        for (position, input) in inputs.iter().enumerate() {
            let text = String::from_utf8_lossy(input).to_string();
            if text.starts_with("bad") {
                errors.push(error(position, &text));
                outputs.push(Vec::new());
            } else {
                outputs.push(text.to_uppercase().into_bytes());
            }
        }
        let mut answer = pack(&outputs);
        answer.meta = vec![ItemMeta {
            position: 0,
            attributes: HashMap::from([("first".to_owned(), "yes".to_owned())]),
            trace_id: String::new(),
        }];
        match self.reply {
            Reply::Packed => {}
            Reply::Results => {
                let results = outputs
                    .into_iter()
                    .enumerate()
                    .map(|(position, payload)| ItemResult {
                        index: position as u32,
                        outcome: Some(
                            match errors.iter().find(|e| e.position as usize == position) {
                                Some(e) => Outcome::Error(e.error.clone().unwrap()),
                                None => Outcome::Ok(ItemOutput {
                                    payload: payload.into(),
                                    attributes: HashMap::new(),
                                }),
                            },
                        ),
                    })
                    .collect();
                return BatchResponse {
                    results,
                    ..Default::default()
                };
            }
            Reply::TooFew => {
                outputs.pop();
                answer = pack(&outputs);
            }
            Reply::TooMany => {
                outputs.push(b"extra".to_vec());
                answer = pack(&outputs);
            }
            Reply::OffsetsOutOfRange => *answer.offsets.last_mut().unwrap() += 100,
            Reply::OffsetsOverlap => answer.offsets.swap(1, 2),
            Reply::OffsetsShort => {
                let last = answer.offsets.len() - 1;
                answer.offsets[last] -= 1;
            }
            Reply::ItemSizeNotDividing => {
                answer.offsets.clear();
                answer.item_size = answer.data.len() as u32 + 1;
            }
            Reply::StrayErrors => {
                errors.push(error(inputs.len() + 5, "stray"));
                errors.push(error(0, "second"));
                errors.push(error(0, "third"));
            }
        }
        BatchResponse {
            results: Vec::new(),
            packed: Some(answer),
            errors,
        }
    }
}

#[derive(Clone)]
struct Svc(Arc<Fake>);

#[tonic::async_trait]
impl Backend for Svc {
    async fn process_batch(
        &self,
        r: Request<BatchRequest>,
    ) -> Result<Response<BatchResponse>, Status> {
        Ok(Response::new(self.0.answer(r.into_inner())))
    }

    type ProcessBatchStreamStream =
        std::pin::Pin<Box<dyn Stream<Item = Result<ItemResult, Status>> + Send>>;

    /// Streams one ItemResult per position, last position first.
    async fn process_batch_stream(
        &self,
        r: Request<BatchRequest>,
    ) -> Result<Response<Self::ProcessBatchStreamStream>, Status> {
        let request = r.into_inner();
        let inputs = payloads(request.packed.as_ref().expect("a packed request"));
        self.0.seen.lock().unwrap().push(request);
        let results: Vec<Result<ItemResult, Status>> = inputs
            .iter()
            .enumerate()
            .rev()
            .map(|(position, input)| {
                Ok(ItemResult {
                    index: position as u32,
                    outcome: Some(Outcome::Ok(ItemOutput {
                        payload: input.to_ascii_uppercase().into(),
                        attributes: HashMap::new(),
                    })),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(results))))
    }
}

async fn start_backend(reply: Reply) -> (SocketAddr, Arc<Fake>) {
    let fake = Arc::new(Fake {
        reply,
        seen: Mutex::new(Vec::new()),
    });
    (common::backend::serve(Svc(fake.clone())).await, fake)
}

async fn start_server(addr: SocketAddr, policy: &str, handler: &str) -> TestServer {
    TestServer::start(config(&format!(
        r#"
        [queues.packed]
        max_batch_size = 8
        max_delay = "20ms"
        {policy}
        handler = {{ kind = "grpc", endpoints = ["http://{addr}"], encoding = "packed" {handler} }}
        "#
    )))
    .await
}

type Answer = Result<pb::SubmitResponse, (Code, String)>;

/// Streams `payloads` (ids 0..n) and returns each id's answer, checking
/// that every item is answered exactly once.
async fn send(server: &TestServer, payloads: &[&str]) -> Vec<Answer> {
    let items = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| pb::StreamRequest {
            id: i.to_string(),
            queue: "packed".into(),
            payload: Bytes::copy_from_slice(p.as_bytes()),
            attributes: if i == 1 {
                HashMap::from([("tag".to_owned(), "one".to_owned())])
            } else {
                HashMap::new()
            },
            ..Default::default()
        })
        .collect();
    let answers = common::stream_all(&mut server.client().await, items).await;
    let mut by_id: Vec<Option<Answer>> = vec![None; payloads.len()];
    for a in answers {
        let a = a.expect("the stream ends OK");
        let outcome = match a.outcome.unwrap() {
            stream_response::Outcome::Result(r) => Ok(r),
            stream_response::Outcome::Error(e) => Err((Code::from(e.code), e.message)),
        };
        let slot = &mut by_id[a.id.parse::<usize>().unwrap()];
        assert!(slot.is_none(), "item {} answered twice", a.id);
        *slot = Some(outcome);
    }
    by_id
        .into_iter()
        .enumerate()
        .map(|(i, a)| a.unwrap_or_else(|| panic!("item {i} not answered")))
        .collect()
}

fn payload(a: &Answer) -> &[u8] {
    &a.as_ref().expect("ok").payload
}

#[tokio::test]
async fn a_packed_batch_goes_as_one_buffer_and_comes_back_per_item() {
    let (addr, fake) = start_backend(Reply::Packed).await;
    let server = start_server(addr, "", "").await;
    // Same-size items travel with item_size, mixed sizes with offsets.
    let same = send(&server, &["aaa", "bbb", "bad", "ccc"]).await;
    assert_eq!(payload(&same[0]), b"AAA");
    assert_eq!(same[0].as_ref().unwrap().attributes["first"], "yes");
    assert_eq!(payload(&same[3]), b"CCC");
    assert_eq!(
        same[2].clone().unwrap_err(),
        (Code::InvalidArgument, "bad is bad".to_owned())
    );
    let mixed = send(&server, &["x", "", "yyy"]).await;
    assert_eq!(
        mixed
            .iter()
            .map(|a| payload(a).to_vec())
            .collect::<Vec<_>>(),
        [b"X".to_vec(), b"".to_vec(), b"YYY".to_vec()]
    );
    let seen = fake.seen.lock().unwrap().clone();
    let first = seen[0].packed.as_ref().unwrap();
    assert_eq!((first.count, first.item_size), (4, 3));
    assert!(first.offsets.is_empty());
    assert_eq!(&first.data[..], b"aaabbbbadccc");
    assert_eq!(
        first.meta.len(),
        1,
        "attributes only for the items with some"
    );
    assert_eq!(first.meta[0].position, 1);
    assert_eq!(first.meta[0].attributes["tag"], "one");
    let second = seen[1].packed.as_ref().unwrap();
    assert_eq!((second.count, second.item_size), (3, 0));
    assert_eq!(second.offsets, [0, 1, 1, 4]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_packed_request_may_be_answered_item_by_item_or_streamed() {
    let (addr, _) = start_backend(Reply::Results).await;
    let server = start_server(addr, "", "").await;
    let answers = send(&server, &["a", "bad", "c"]).await;
    assert_eq!(payload(&answers[0]), b"A");
    assert_eq!(answers[1].clone().unwrap_err().0, Code::InvalidArgument);
    assert_eq!(payload(&answers[2]), b"C");
    server.shutdown().await;

    let (addr, _) = start_backend(Reply::Packed).await;
    let server = start_server(addr, "", ", streaming = true").await;
    let answers = send(&server, &["a", "b", "c"]).await;
    for (a, want) in answers.iter().zip([b"A", b"B", b"C"]) {
        assert_eq!(payload(a), want);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_backend_is_asked_to_pad_to_an_allowed_size() {
    let (addr, fake) = start_backend(Reply::Packed).await;
    let server = start_server(addr, "allowed_batch_sizes = [4, 8]", "").await;
    let answers = send(&server, &["a", "b", "c"]).await;
    assert!(answers.iter().all(Result::is_ok));
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(
        (seen[0].packed.as_ref().unwrap().count, seen[0].pad_to),
        (3, 4)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn every_malformed_packed_answer_fails_the_call_internal_with_the_fault() {
    let cases = [
        (Reply::TooFew, "3 packed results for 4 items"),
        (Reply::TooMany, "5 packed results for 4 items"),
        (Reply::OffsetsOutOfRange, "offsets end at"),
        (Reply::OffsetsOverlap, "items would overlap"),
        (Reply::OffsetsShort, "offsets end at"),
        (Reply::ItemSizeNotDividing, "is not the"),
    ];
    for (reply, fault) in cases {
        let (addr, fake) = start_backend(reply).await;
        let server = start_server(addr, "", "").await;
        let answers = send(&server, &["a", "b", "c", "d"]).await;
        for a in &answers {
            let (code, message) = a.clone().expect_err("a malformed answer fails");
            assert_eq!(code, Code::Internal, "{reply:?}");
            assert!(message.contains("packed answer is malformed"), "{message}");
            assert!(message.contains(fault), "{reply:?}: {message}");
        }
        assert_eq!(
            fake.seen.lock().unwrap().len(),
            1,
            "{reply:?}: a malformed answer is neither retried nor bisected"
        );
        // The server is fine: the next batch gets the same treatment, no more.
        let again = send(&server, &["e"]).await;
        assert_eq!(again.len(), 1);
        server.shutdown().await;
    }
}

#[tokio::test]
async fn stray_and_repeated_errors_are_ignored_the_first_answer_stands() {
    let (addr, _) = start_backend(Reply::StrayErrors).await;
    let server = start_server(addr, "", "").await;
    let answers = send(&server, &["a", "b"]).await;
    assert_eq!(
        answers[0].clone().unwrap_err(),
        (Code::InvalidArgument, "second is bad".to_owned())
    );
    assert_eq!(payload(&answers[1]), b"B");
    server.shutdown().await;
}
