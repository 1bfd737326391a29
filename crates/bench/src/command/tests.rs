use super::*;

#[test]
fn sweeps_parse_and_step() {
    let points = |t: &str| Sweep::parse(t).map(|s| s.points());
    assert_eq!(points("16:256"), Ok(vec![16.0, 32.0, 64.0, 128.0, 256.0]));
    assert_eq!(points("1000:3000:+1000"), Ok(vec![1000.0, 2000.0, 3000.0]));
    assert_eq!(points("1:10:x3"), Ok(vec![1.0, 3.0, 9.0]));
    assert_eq!(
        points("16:64:16"),
        Ok(vec![16.0, 32.0, 48.0, 64.0]),
        "perf_analyzer's habit"
    );
    for bad in [
        "5",
        "0:4",
        "8:4",
        "1:4:x1",
        "1:4:-1",
        "1:4:0",
        "1:4:y",
        "1:1000000:+1",
        "a:b",
    ] {
        assert!(Sweep::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_bar_fills_over_measured_time_and_shows_the_reported_rate() {
    let plan = Plan {
        queue: "q".into(),
        payload: Bytes::new(),
        batch_key: String::new(),
        costs: None,
        concurrency: 1,
        streams: 0,
        v2_input: None,
        rate: 0.0,
        duration: Duration::from_secs(10),
        items: 0,
        warmup: Duration::from_secs(1),
    };
    let bar = progress_bar(&plan);
    let progress = Progress::default();
    progress
        .done
        .store(5_000, std::sync::atomic::Ordering::Relaxed);
    show_progress(&bar, &plan, &progress, Duration::from_millis(500));
    assert_eq!((bar.position(), bar.message()), (0, "warming up".into()));
    show_progress(&bar, &plan, &progress, Duration::from_secs(11));
    assert_eq!(bar.position(), bar.length().unwrap(), "full at the end");
    assert_eq!(bar.message(), "5000 items · 500 items/s");
}
