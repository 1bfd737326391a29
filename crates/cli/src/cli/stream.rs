//! `batchgate stream`: every line of stdin becomes an item on one
//! `StreamSubmit` stream (its id is the line number, from 1); every result is
//! printed as one line the moment it arrives, so the command fits in a shell
//! pipeline. With `--idempotency-key K` line N carries the key `K:N`.
//! Exits 1 if any item failed.

use std::process::ExitCode;

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::mpsc,
};
use tokio_stream::wrappers::ReceiverStream;

use super::{ClientArgs, output};
use batchgate::pb;

/// Flags of `batchgate stream`.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// Connection and item flags.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `batchgate stream`.
pub async fn run(args: StreamArgs) -> ExitCode {
    let mut client = match args.client.connect().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("batchgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (tx, rx) = mpsc::channel(1024);
    let item = args.client.clone();
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut n: u64 = 0;
        while let Ok(Some(line)) = lines.next_line().await {
            n += 1;
            let request = pb::StreamRequest {
                id: n.to_string(),
                queue: item.queue.clone(),
                payload: line.into_bytes().into(),
                attributes: item.attributes(),
                priority: item.priority,
                timeout_ms: item.timeout_ms,
                batch_key: item.batch_key.clone(),
                cost: item.cost,
                // One key per line: a rerun of the same input finds the
                // answers instead of running the items again.
                idempotency_key: if item.idempotency_key.is_empty() {
                    String::new()
                } else {
                    format!("{}:{n}", item.idempotency_key)
                },
            };
            if tx.send(request).await.is_err() {
                break;
            }
        }
    });
    let mut responses = match client
        .stream_submit(args.client.request(ReceiverStream::new(rx)))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => {
            eprintln!(
                "error: {}",
                output::status_text(&status, args.client.with_tls())
            );
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    loop {
        match responses.message().await {
            Ok(Some(response)) => {
                failed |= print(&response, args.client.json);
            }
            Ok(None) => break,
            Err(status) => {
                eprintln!(
                    "stream ended: {}",
                    output::status_text(&status, args.client.with_tls())
                );
                failed = true;
                break;
            }
        }
    }
    reader.abort();
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints one answer; returns whether it was an error.
fn print(response: &pb::StreamResponse, json: bool) -> bool {
    use pb::stream_response::Outcome;
    let id = response.id.as_str();
    let (line, failed) = match &response.outcome {
        Some(Outcome::Result(result)) if json => {
            (output::result_json(Some(id), result).to_string(), false)
        }
        Some(Outcome::Result(result)) => (
            format!("{id}\t{}", output::payload_text(&result.payload)),
            false,
        ),
        Some(Outcome::Error(e)) => {
            let code = tonic::Code::from(e.code);
            if json {
                (
                    output::error_json(Some(id), code, &e.message).to_string(),
                    true,
                )
            } else {
                (
                    format!("{id}\terror {}: {}", output::code_name(code), e.message),
                    true,
                )
            }
        }
        None => (format!("{id}\terror: empty answer"), true),
    };
    outln!("{line}");
    failed
}
