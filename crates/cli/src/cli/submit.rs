//! `batchgate submit`: one item through `Submit`.

use std::{io::Read, path::PathBuf, process::ExitCode};

use super::{ClientArgs, output};
use batchgate::pb;

/// Flags of `batchgate submit`.
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    /// Connection and item flags.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Read the payload from this file, as bytes (`-`: standard input).
    #[arg(long, value_name = "PATH", conflicts_with = "payload")]
    pub file: Option<PathBuf>,
    /// The payload as text; `@PATH` reads it from a file, as bytes, like
    /// --file.
    #[arg(required_unless_present = "file")]
    pub payload: Option<String>,
}

/// The payload the flags name.
fn payload(args: &SubmitArgs) -> Result<Vec<u8>, String> {
    let path = match (&args.file, &args.payload) {
        (Some(path), _) => path.clone(),
        (None, Some(text)) => match text.strip_prefix('@') {
            Some(path) => PathBuf::from(path),
            None => return Ok(text.clone().into_bytes()),
        },
        (None, None) => return Err("give a payload, @PATH or --file PATH".into()),
    };
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(bytes);
    }
    std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Runs `batchgate submit`.
pub async fn run(args: SubmitArgs) -> ExitCode {
    let payload = match payload(&args) {
        Ok(payload) => payload,
        Err(e) => {
            eprintln!("batchgate: {e}");
            return ExitCode::from(super::EXIT_BAD_CONFIG);
        }
    };
    let mut client = match args.client.connect().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("batchgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let request = args.client.request(pb::SubmitRequest {
        queue: args.client.queue.clone(),
        payload: payload.into(),
        attributes: args.client.attributes(),
        priority: args.client.priority,
        timeout_ms: args.client.timeout_ms,
        batch_key: args.client.batch_key.clone(),
        cost: args.client.cost,
        idempotency_key: args.client.idempotency_key.clone(),
    });
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
