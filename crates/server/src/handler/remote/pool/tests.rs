use super::*;

/// A lease from `pool`, waiting at most `wait` for it.
async fn within(pool: &EndpointPool, wait: Duration) -> Result<Lease, Status> {
    pool.acquire(Instant::now() + wait).await
}

fn pool() -> EndpointPool {
    EndpointPool::new(
        "q".into(),
        PoolSettings {
            kind: HandlerKind::Grpc,
            max_in_flight: 1,
            eject_after: 2,
            eject_for: Duration::from_secs(5),
            tls_ca_file: None,
            parallelism: 0,
        },
        Arc::new(Metrics::new()),
    )
}

#[tokio::test(start_paused = true)]
async fn a_lease_lapses_unless_renewed() {
    let pool = pool();
    pool.register(
        "http://127.0.0.1:1",
        0,
        Some(Duration::from_secs(10)),
        false,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    pool.register(
        "http://127.0.0.1:1",
        0,
        Some(Duration::from_secs(10)),
        false,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(pool.list().len(), 1, "renewed at 8 s, so alive at 16 s");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(pool.list().is_empty(), "lapsed at 18 s");
    let err = within(&pool, Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
}

#[tokio::test(start_paused = true)]
async fn slots_free_up_failing_endpoints_are_ejected_and_return() {
    let pool = pool();
    pool.register("http://127.0.0.1:1", 0, None, true).unwrap();
    let lease = within(&pool, Duration::from_secs(1)).await.unwrap();
    // The only slot is taken: a second caller waits, then times out.
    let waited = within(&pool, Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(waited.code(), tonic::Code::DeadlineExceeded);
    let endpoint = lease.endpoint().clone();
    drop(lease);
    pool.record(&endpoint, CallOutcome::Unavailable);
    pool.record(&endpoint, CallOutcome::Unavailable);
    let ejected = within(&pool, Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(ejected.code(), tonic::Code::Unavailable);
    assert!(pool.list()[0].ejected_for_ms > 4_000);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        within(&pool, Duration::from_secs(1)).await.is_ok(),
        "back after the ejection period"
    );
}

#[tokio::test(start_paused = true)]
async fn deadlines_are_not_held_against_an_endpoint() {
    let pool = pool();
    pool.register("http://127.0.0.1:1", 0, None, true).unwrap();
    let endpoint = within(&pool, Duration::from_secs(1))
        .await
        .unwrap()
        .endpoint()
        .clone();
    for _ in 0..10 {
        pool.record(&endpoint, CallOutcome::Deadline);
    }
    assert!(
        within(&pool, Duration::from_secs(1)).await.is_ok(),
        "ten deadlines in a row do not eject"
    );
    let info = &pool.list()[0];
    assert_eq!((info.ejected_for_ms, info.batches_failed), (0, 10));
    // Nor do they break a run of availability failures.
    pool.record(&endpoint, CallOutcome::Unavailable);
    pool.record(&endpoint, CallOutcome::Deadline);
    pool.record(&endpoint, CallOutcome::Unavailable);
    assert!(pool.list()[0].ejected_for_ms > 4_000);
}

fn pool_of(addresses: &[&str], max_in_flight: usize) -> EndpointPool {
    let pool = pool();
    for address in addresses {
        pool.register(address, max_in_flight, None, true).unwrap();
    }
    pool
}

const A: &str = "http://127.0.0.1:1";
const B: &str = "http://127.0.0.1:2";

/// Calls from `callers` closed loops of `rounds` calls each, where a call
/// on `A` takes 10x as long as on `B`; returns the calls that went to `B`.
async fn calls_on_the_fast_endpoint(pool: EndpointPool, callers: u32, rounds: u32) -> u32 {
    let pool = Arc::new(pool);
    let mut calls = Vec::new();
    for _ in 0..callers {
        let pool = pool.clone();
        calls.push(tokio::spawn(async move {
            let mut on_b = 0_u32;
            for _ in 0..rounds {
                let lease = within(&pool, Duration::from_secs(1)).await.unwrap();
                let slow = lease.endpoint().address == A;
                tokio::time::sleep(Duration::from_millis(if slow { 20 } else { 2 })).await;
                on_b += u32::from(!slow);
            }
            on_b
        }));
    }
    let mut on_b = 0;
    for call in calls {
        on_b += call.await.unwrap();
    }
    on_b
}

#[tokio::test(start_paused = true)]
async fn a_slow_endpoint_gets_fewer_batches() {
    let on_b = calls_on_the_fast_endpoint(pool_of(&[A, B], 8), 4, 100).await;
    assert!(on_b > 300, "{on_b} of 400 calls went to the fast endpoint");
}

#[tokio::test(start_paused = true)]
async fn a_batch_waits_for_a_busy_fast_endpoint_rather_than_take_a_slow_one() {
    // Two slots each and four callers: the fast endpoint is always full,
    // yet a wait for one of its slots (about 2 ms) beats a 20 ms call;
    // only the first calls, before any was timed, may go to the slow one.
    let on_b = calls_on_the_fast_endpoint(pool_of(&[A, B], 2), 4, 100).await;
    assert!(on_b >= 390, "{on_b} of 400 calls went to the fast endpoint");
}

#[tokio::test(start_paused = true)]
async fn after_a_failure_the_next_call_goes_elsewhere() {
    let pool = pool_of(&[A, B], 4);
    for _ in 0..20 {
        let lease = within(&pool, Duration::from_secs(1)).await.unwrap();
        let failed = lease.endpoint().clone();
        drop(lease);
        pool.record(&failed, CallOutcome::Unavailable);
        let retry = within(&pool, Duration::from_secs(1)).await.unwrap();
        assert_ne!(retry.endpoint().address, failed.address);
        // An answer clears the mark.
        pool.record(&failed, CallOutcome::Ok);
    }
}

#[tokio::test(start_paused = true)]
async fn a_busy_endpoint_loses_to_an_idle_one_and_a_removed_one_is_never_picked() {
    let pool = pool_of(&[A, B], 1);
    let first = within(&pool, Duration::from_secs(1)).await.unwrap();
    let second = within(&pool, Duration::from_secs(1)).await.unwrap();
    assert_ne!(first.endpoint().address, second.endpoint().address);
    let in_flight: Vec<u32> = pool.list().iter().map(|e| e.in_flight).collect();
    assert_eq!(in_flight, [1, 1]);
    drop((first, second));
    assert!(pool.deregister(A));
    for _ in 0..10 {
        let lease = within(&pool, Duration::from_secs(1)).await.unwrap();
        assert_eq!(lease.endpoint().address, B);
    }
    assert!(pool.list().iter().all(|e| e.in_flight == 0));
}

#[tokio::test(start_paused = true)]
async fn a_batch_waiting_on_a_removed_endpoint_is_told_at_once() {
    let pool = Arc::new(pool_of(&[A], 1));
    let held = within(&pool, Duration::from_secs(1)).await.unwrap();
    let start = Instant::now();
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move { within(&pool, Duration::from_secs(10)).await }
    });
    tokio::task::yield_now().await;
    assert!(pool.deregister(A));
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(start.elapsed(), Duration::ZERO, "not at its deadline");
    drop(held);
}
