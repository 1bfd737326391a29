//! `ctl watch`: a stats snapshot every interval, with the rates since the
//! previous one.

use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::Status;

use super::{
    Ctl,
    tables::{failed, numbers_from, print_json, print_table, table},
};
use batchgate::pb;

/// Prints each snapshot of `queue` (every queue: `None`) until the server
/// ends the stream or the user interrupts.
pub(super) async fn run(
    ctl: &mut Ctl,
    queue: Option<&str>,
    interval: Duration,
    json: bool,
) -> Result<(), Status> {
    let mut stream = ctl
        .watch_stats(pb::WatchStatsRequest {
            queue: queue.unwrap_or_default().to_owned(),
            interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
        })
        .await?
        .into_inner();
    let mut previous: Option<(std::time::Instant, Vec<pb::QueueInfo>)> = None;
    while let Some(snapshot) = stream.next().await {
        let snapshot = snapshot?;
        if json {
            print_json(&snapshot);
            continue;
        }
        let now = std::time::Instant::now();
        let rates = previous
            .as_ref()
            .map(|(at, before)| (now.duration_since(*at).as_secs_f64(), before.as_slice()));
        outln!(
            "{}",
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        print_watch_table(&snapshot.queues, rates);
        outln!("");
        previous = Some((now, snapshot.queues));
    }
    Ok(())
}

/// The queue table of `watch`, with rates since the previous snapshot
/// (`seconds` ago) when there was one.
fn print_watch_table(queues: &[pb::QueueInfo], previous: Option<(f64, &[pb::QueueInfo])>) {
    let mut t = table(&[
        "QUEUE",
        "STATE",
        "DEPTH",
        "FLIGHT",
        "OK/s",
        "FAILED/s",
        "BATCHES/s",
        "SIZE p50",
        "ITEM p99 ms",
    ]);
    for q in queues {
        let stats = q.stats.clone().unwrap_or_default();
        let rate = |pick: fn(&pb::QueueStats) -> u64| -> String {
            let Some((seconds, before)) = previous else {
                return "-".to_owned();
            };
            let Some(old) = before.iter().find(|b| b.name == q.name) else {
                return "-".to_owned();
            };
            let delta = pick(&stats).saturating_sub(pick(&old.stats.clone().unwrap_or_default()));
            format!("{:.1}", delta as f64 / seconds.max(1e-9))
        };
        t.add_row(vec![
            q.name.clone(),
            pb::queue_state_name(q.state).to_owned(),
            stats.depth.to_string(),
            stats.in_flight_batches.to_string(),
            rate(|s| s.items_ok),
            rate(failed),
            rate(|s| s.batches),
            format!("{:.0}", stats.batch_size.unwrap_or_default().p50),
            format!("{:.3}", stats.item_ms.unwrap_or_default().p99),
        ]);
    }
    numbers_from(&mut t, 2);
    print_table(&t);
}
