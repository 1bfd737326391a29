//! `batchgate ctl` across replicas: `--addr dns:///NAME:PORT` (or `--all`
//! with a `NAME:PORT` address) resolves the name (a Kubernetes headless
//! Service) and applies the call to every address it resolves to. `queues`
//! prints the counts summed over the replicas and a per-replica breakdown;
//! every other action prints each replica's own output under a header,
//! then a table of each replica's result.

use std::collections::BTreeMap;

use tonic::Status;

use batchgate::pb;

/// The replicas `addr` names: `dns:///NAME:PORT`, or with `all`, `NAME:PORT`
/// (a scheme is kept for each address); `None` for a single server.
///
/// # Errors
/// UNAVAILABLE when the name cannot be resolved or resolves to nothing.
pub async fn resolve(addr: &str, all: bool) -> Option<Result<Vec<String>, Status>> {
    let (scheme, rest) = match addr.strip_prefix("dns:///") {
        Some(rest) => ("", rest),
        None if all => match addr.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("", addr),
        },
        None => return None,
    };
    let rest = rest.trim_end_matches('/');
    Some(lookup(rest).await.map(|addrs| {
        addrs
            .into_iter()
            .map(|a| match scheme {
                "" => a.to_string(),
                scheme => format!("{scheme}://{a}"),
            })
            .collect()
    }))
}

async fn lookup(host_port: &str) -> Result<Vec<std::net::SocketAddr>, Status> {
    let mut addrs: Vec<_> = tokio::net::lookup_host(host_port)
        .await
        .map_err(|e| Status::unavailable(format!("cannot resolve {host_port:?}: {e}")))?
        .collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(Status::unavailable(format!(
            "{host_port:?} resolves to no address"
        )));
    }
    Ok(addrs)
}

/// A queue's counts summed over replicas.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Totals {
    /// Replicas that have the queue.
    pub replicas: usize,
    pub depth: u64,
    pub in_flight_batches: u64,
    pub items_ok: u64,
    pub items_failed: u64,
    pub batches: u64,
}

/// Sums each queue's counts over the replicas' answers.
pub fn totals(
    per_replica: &[(String, Result<pb::ListQueuesResponse, Status>)],
) -> BTreeMap<String, Totals> {
    let mut sums: BTreeMap<String, Totals> = BTreeMap::new();
    for (_, answer) in per_replica {
        let Ok(list) = answer else { continue };
        for q in &list.queues {
            let s = q.stats.clone().unwrap_or_default();
            let t = sums.entry(q.name.clone()).or_default();
            t.replicas += 1;
            t.depth += s.depth;
            t.in_flight_batches += u64::from(s.in_flight_batches);
            t.items_ok += s.items_ok;
            t.items_failed += super::tables::failed(&s);
            t.batches += s.batches;
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_resolve_to_every_replica() {
        assert!(resolve("127.0.0.1:50051", false).await.is_none());
        let all = resolve("dns:///localhost:50051", false)
            .await
            .unwrap()
            .unwrap();
        assert!(all.iter().any(|a| a == "127.0.0.1:50051"), "{all:?}");
        let https = resolve("https://localhost:50053", true)
            .await
            .unwrap()
            .unwrap();
        assert!(
            https.iter().any(|a| a == "https://127.0.0.1:50053"),
            "{https:?}"
        );
        let missing = resolve("dns:///no-such-host.invalid:1", false)
            .await
            .unwrap();
        assert_eq!(missing.unwrap_err().code(), tonic::Code::Unavailable);
    }

    #[test]
    fn counts_sum_over_replicas() {
        let list = |depth, ok| pb::ListQueuesResponse {
            queues: vec![pb::QueueInfo {
                name: "q".into(),
                stats: Some(pb::QueueStats {
                    depth,
                    items_ok: ok,
                    items_error: 1,
                    ..Default::default()
                }),
                ..Default::default()
            }],
        };
        let answers = vec![
            ("a".to_owned(), Ok(list(2, 10))),
            ("b".to_owned(), Ok(list(3, 5))),
            ("c".to_owned(), Err(Status::unavailable("down"))),
        ];
        let t = &totals(&answers)["q"];
        assert_eq!(
            (t.replicas, t.depth, t.items_ok, t.items_failed),
            (2, 5, 15, 2)
        );
    }
}
