//! The queue actions of `ctl`: list, describe, create, update, delete,
//! pause, resume, flush and drain.

use tonic::Status;

use super::{
    Ctl,
    flags::{HandlerArgs, PolicyArgs},
    tables::{print_json, print_queue_table, show_queue},
};
use batchgate::pb;

/// The queue actions.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum QueueAction {
    /// List queues with live stats.
    Queues,
    /// Show one queue: policy, handler, endpoints, stats.
    Describe {
        /// The queue.
        name: String,
    },
    /// Create a queue.
    Create {
        /// The new queue's name.
        name: String,
        #[command(flatten)]
        handler: HandlerArgs,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Change policy fields of a queue (applies from its next batch).
    Update {
        /// The queue.
        name: String,
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        handler: HandlerArgs,
    },
    /// Delete a queue (drains it; --force answers pending items UNAVAILABLE).
    Delete {
        /// The queue.
        name: String,
        /// Answer pending items UNAVAILABLE instead of dispatching them.
        #[arg(long)]
        force: bool,
    },
    /// Stop dispatching (items still accepted).
    Pause {
        /// The queue.
        name: String,
    },
    /// Dispatch again.
    Resume {
        /// The queue.
        name: String,
    },
    /// Dispatch everything pending now.
    Flush {
        /// The queue.
        name: String,
    },
    /// Refuse new items and dispatch the rest.
    Drain {
        /// The queue.
        name: String,
    },
}

fn queue(name: &str) -> pb::QueueRef {
    pb::QueueRef {
        name: name.to_owned(),
    }
}

/// Runs one queue action and prints its answer.
pub(super) async fn run(ctl: &mut Ctl, action: &QueueAction, json: bool) -> Result<(), Status> {
    let info = match action {
        QueueAction::Queues => {
            let list = ctl
                .list_queues(pb::ListQueuesRequest {})
                .await?
                .into_inner();
            if json {
                print_json(&list);
            } else {
                print_queue_table(&list.queues);
            }
            return Ok(());
        }
        QueueAction::Delete { name, force } => {
            let request = pb::DeleteQueueRequest {
                name: name.clone(),
                force: *force,
            };
            let done = ctl.delete_queue(request).await?.into_inner();
            if json {
                print_json(&done);
            } else {
                outln!(
                    "deleted {name} ({} pending items answered UNAVAILABLE)",
                    done.dropped
                );
            }
            return Ok(());
        }
        QueueAction::Flush { name } => {
            let done = ctl.flush_queue(queue(name)).await?.into_inner();
            if json {
                print_json(&done);
            } else {
                outln!("flushed {} items from {name}", done.flushed);
            }
            return Ok(());
        }
        QueueAction::Describe { name } => ctl.get_queue(queue(name)).await?,
        QueueAction::Create {
            name,
            handler,
            policy,
        } => {
            let request = pb::CreateQueueRequest {
                name: name.clone(),
                policy: Some(policy.to_policy()),
                handler: Some(handler.to_spec()),
            };
            ctl.create_queue(request).await?
        }
        QueueAction::Update {
            name,
            policy,
            handler,
        } => {
            let request = pb::UpdateQueueRequest {
                name: name.clone(),
                policy: Some(policy.to_policy()),
                handler: handler.kind.is_some().then(|| handler.to_spec()),
            };
            ctl.update_queue(request).await?
        }
        QueueAction::Pause { name } => ctl.pause_queue(queue(name)).await?,
        QueueAction::Resume { name } => ctl.resume_queue(queue(name)).await?,
        QueueAction::Drain { name } => ctl.drain_queue(queue(name)).await?,
    };
    let info = info.into_inner();
    let done = match action {
        QueueAction::Create { .. } => "created",
        QueueAction::Update { .. } => "updated",
        QueueAction::Pause { .. } => "paused",
        QueueAction::Resume { .. } => "resumed",
        QueueAction::Drain { .. } => "drained",
        _ => "",
    };
    if json || done.is_empty() {
        show_queue(&info, json);
    } else {
        // A change is confirmed in a line; `describe` shows the rest.
        let stats = info.stats.unwrap_or_default();
        outln!(
            "{done} {} ({}, {} pending, {} in flight; ctl describe {} for its settings)",
            info.name,
            pb::queue_state_name(info.state),
            stats.depth,
            stats.in_flight_batches,
            info.name
        );
    }
    Ok(())
}
