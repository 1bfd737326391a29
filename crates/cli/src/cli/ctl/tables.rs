//! How `ctl` prints: JSON for programs, or plain tables (as `kubectl get`
//! prints them) and `describe`'s sections for people.

use std::time::Duration;

use comfy_table::{Cell, Table};
use serde::Serialize;

use super::flags::{micros_text, millis_text, policy_lines};
use batchgate::pb;

pub(super) fn print_json(value: &impl Serialize) {
    match serde_json::to_string(value) {
        Ok(text) => outln!("{text}"),
        Err(e) => eprintln!("cannot print JSON: {e}"),
    }
}

/// A table with plain columns, as `kubectl get` prints them.
pub(super) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().map(Cell::new));
    table
}

/// Lays the columns out: two spaces between them, the columns `from..`
/// (numbers) right-aligned.
pub(super) fn numbers_from(table: &mut Table, from: usize) {
    for i in 0..table.column_count() {
        if let Some(column) = table.column_mut(i) {
            column.set_padding((0, 2));
            if i >= from {
                column.set_cell_alignment(comfy_table::CellAlignment::Right);
            }
        }
    }
}

pub(super) fn print_table(table: &Table) {
    for line in table.lines() {
        outln!("{}", line.trim_end());
    }
}

/// Items that did not succeed: errors, refusals, timeouts and shed ones.
pub(super) fn failed(stats: &pb::QueueStats) -> u64 {
    stats.items_error + stats.items_rejected + stats.items_timeout + stats.items_shed
}

pub(super) fn print_queue_table(queues: &[pb::QueueInfo]) {
    let mut t = table(&[
        "QUEUE",
        "STATE",
        "HANDLER",
        "DEPTH",
        "FLIGHT",
        "OK",
        "FAILED",
        "BATCHES",
        "SIZE p50",
        "ITEM p99 ms",
    ]);
    for q in queues {
        let stats = q.stats.clone().unwrap_or_default();
        t.add_row(vec![
            q.name.clone(),
            pb::queue_state_name(q.state).to_owned(),
            q.handler
                .as_ref()
                .map_or("", |h| h.kind.as_str())
                .to_owned(),
            stats.depth.to_string(),
            stats.in_flight_batches.to_string(),
            stats.items_ok.to_string(),
            failed(&stats).to_string(),
            stats.batches.to_string(),
            format!("{:.0}", stats.batch_size.unwrap_or_default().p50),
            format!("{:.3}", stats.item_ms.unwrap_or_default().p99),
        ]);
    }
    numbers_from(&mut t, 3);
    print_table(&t);
}

pub(super) fn show_queue(info: &pb::QueueInfo, json: bool) {
    if json {
        print_json(info);
        return;
    }
    print_queue_table(std::slice::from_ref(info));
    if let Some(p) = &info.policy {
        outln!("");
        outln!("policy:");
        let fields = policy_lines(p);
        for (name, value) in fields {
            outln!("  {name} = {value}");
        }
    }
    if let Some(h) = &info.handler {
        outln!("");
        outln!("handler:");
        outln!("  kind = {}", h.kind);
        match h.kind.as_str() {
            "sim" => {
                outln!("  base = {}", micros_text(h.sim_base_us));
                outln!("  per_item = {}", micros_text(h.sim_per_item_us));
                outln!(
                    "  per_cost = {}",
                    humantime::format_duration(Duration::from_nanos(h.sim_per_cost_ns))
                );
                outln!("  padded = {}", h.sim_padded);
            }
            "grpc" | "http" => {
                outln!("  endpoints = {:?}", h.endpoints);
                outln!("  max_in_flight = {}", h.max_in_flight);
                outln!("  timeout = {}", millis_text(h.timeout_ms));
                outln!("  retries = {}", h.retries.unwrap_or_default());
                outln!("  bisect = {}", h.bisect.unwrap_or_default());
                if h.kind == "grpc" {
                    outln!("  streaming = {}", h.streaming);
                    outln!("  encoding = {}", h.encoding);
                } else {
                    outln!("  json_payloads = {}", h.json_payloads);
                }
            }
            _ => {}
        }
    }
    if let Some(stats) = &info.stats {
        show_learned(stats);
    }
    if !info.endpoints.is_empty() {
        outln!("");
        show_endpoints(&info.endpoints, false);
    }
}

/// What an adaptive queue (`mode = "target"` or `"aimd"`) learned.
pub(super) fn show_learned(stats: &pb::QueueStats) {
    let Some(l) = &stats.learned else {
        return;
    };
    outln!("");
    outln!("learned:");
    outln!(
        "  handler time = {} + {} per item (over {} batches)",
        micros_text(l.base_us),
        humantime::format_duration(Duration::from_nanos(l.per_item_ns)),
        l.samples
    );
    outln!("  arrivals = {}/s", l.arrivals_per_sec);
    outln!("  batch cap now = {}", l.batch_cap);
    if l.parallelism > 0 {
        let source = if l.parallelism_learned {
            "learned"
        } else {
            "declared by its endpoints"
        };
        outln!("  paced by = {} at once ({source})", l.parallelism);
        outln!("  backend idle = {:.1}%", l.backend_idle * 100.0);
        outln!(
            "  backend wait = {} a batch",
            micros_text(l.backend_wait_us)
        );
    }
    outln!("  items shed = {}", stats.items_shed);
}

pub(super) fn show_endpoints(endpoints: &[pb::EndpointInfo], json: bool) {
    if json {
        print_json(&endpoints);
        return;
    }
    let mut t = table(&[
        "ENDPOINT",
        "FLIGHT",
        "MAX",
        "PARALLEL",
        "LEASE",
        "EJECTED FOR",
        "OK",
        "FAILED",
    ]);
    let left = |ms: u64| {
        if ms == 0 {
            "-".to_owned()
        } else {
            millis_text(ms)
        }
    };
    for e in endpoints {
        t.add_row(vec![
            e.address.clone(),
            e.in_flight.to_string(),
            e.max_in_flight.to_string(),
            if e.parallelism == 0 {
                "-".to_owned()
            } else {
                e.parallelism.to_string()
            },
            left(e.lease_remaining_ms),
            left(e.ejected_for_ms),
            e.batches_ok.to_string(),
            e.batches_failed.to_string(),
        ]);
    }
    numbers_from(&mut t, 1);
    print_table(&t);
}
