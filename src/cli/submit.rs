//! `batchgate submit`: one item through `Submit`.

use std::{collections::HashMap, process::ExitCode};

use super::{ClientArgs, output};
use crate::pb;

/// Flags of `batchgate submit`.
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    /// Connection and item flags.
    #[command(flatten)]
    pub client: ClientArgs,
    /// An attribute `key=value` (repeatable).
    #[arg(long = "attr", value_parser = parse_attr)]
    pub attrs: Vec<(String, String)>,
    /// The payload (as UTF-8 text).
    pub payload: String,
}

fn parse_attr(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected key=value, got {text:?}"))
}

/// Runs `batchgate submit`.
pub async fn run(args: SubmitArgs) -> ExitCode {
    let mut client = match args.client.connect().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("batchgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let request = pb::SubmitRequest {
        queue: args.client.queue.clone(),
        payload: args.payload.into_bytes().into(),
        attributes: args.attrs.into_iter().collect::<HashMap<_, _>>(),
        priority: args.client.priority,
        timeout_ms: args.client.timeout_ms,
    };
    match client.submit(request).await {
        Ok(response) => {
            let response = response.into_inner();
            if args.client.json {
                outln!("{}", output::result_json(None, &response));
            } else {
                outln!("{}", output::payload_text(&response.payload));
                if let Some(batch) = &response.batch {
                    outln!("{}", output::batch_text(batch));
                }
            }
            ExitCode::SUCCESS
        }
        Err(status) => {
            if args.client.json {
                outln!(
                    "{}",
                    output::error_json(None, status.code(), status.message())
                );
            } else {
                eprintln!(
                    "error: {}",
                    output::status_text(&status, args.client.with_tls())
                );
            }
            ExitCode::FAILURE
        }
    }
}
