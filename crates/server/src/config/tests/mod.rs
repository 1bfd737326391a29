mod fuzz;

use std::time::Duration;

use super::*;

#[test]
fn embedded_default_parses_validates_and_has_echo_and_sim() {
    let config = Config::embedded_default();
    config.validate().unwrap();
    assert_eq!(config.queues["echo"].handler.kind, HandlerKind::Echo);
    assert_eq!(config.queues["sim"].handler.kind, HandlerKind::Sim);
    assert_eq!(config.server.grpc_addr.port(), 50051);
    assert_eq!(config.server.metrics_addr.port(), 9464);
}

#[test]
fn durations_and_defaults() {
    let config = Config::from_toml(
        r#"
        [queues.q]
        max_delay = "750us"
        handler = { kind = "sim", base = "5ms", per_item = "20us" }
        "#,
    )
    .unwrap();
    let q = &config.queues["q"];
    assert_eq!(q.policy.max_delay, Duration::from_micros(750));
    assert_eq!(
        q.policy.max_batch_size,
        QueueConfig::default().policy.max_batch_size
    );
    assert_eq!(q.handler.kind, HandlerKind::Sim);
    assert_eq!(q.handler.base, Duration::from_millis(5));
    assert_eq!(q.handler.per_item, Duration::from_micros(20));
}

#[test]
fn validation_names_the_field() {
    let mut config = Config::from_toml("[queues.sim]\nmax_batch_size = 0\n").unwrap();
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "queues.sim.max_batch_size must be ≥ 1"
    );
    config.queues.get_mut("sim").unwrap().policy.max_batch_size = 8;
    config.queues.get_mut("sim").unwrap().policy.min_batch_size = 9;
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "queues.sim.min_batch_size must be in 1..=8 (max_batch_size)"
    );
}

#[test]
fn bad_names_types_and_unknown_fields_are_refused() {
    let err = Config::from_toml("[queues.\"a b\"]\n")
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("name must be"), "{err}");
    let err = Config::from_toml("[queues.q]\nmax_batch_size = \"big\"\n").unwrap_err();
    assert!(matches!(err, ConfigError::Parse(_)), "{err}");
    let err = Config::from_toml("[queues.q]\nmax_batch_sise = 3\n").unwrap_err();
    assert!(err.to_string().contains("max_batch_sise"), "{err}");
    let err = Config::from_toml("[queues.q]\nhandler = { kind = \"gpu\" }\n").unwrap_err();
    assert!(matches!(err, ConfigError::Parse(_)), "{err}");
}

#[test]
fn a_queue_field_that_does_not_read_is_named() {
    for (toml, says) in [
        (
            "[queues.q]\nmax_delay = \"5 parsecs\"\n",
            "max_delay: invalid value: string \"5 parsecs\", expected a duration",
        ),
        (
            "[queues.q]\nmax_delay = \"1ms\"\nmax_batch_size = \"ten\"\n",
            "max_batch_size: invalid type: string \"ten\"",
        ),
        (
            "[queues.q]\nhandler = { kind = \"sim\", base = \"x\" }\n",
            "handler.base: invalid value: string \"x\"",
        ),
        (
            "[queues.q]\nhandler = { kind = \"grpc\", max_in_flight = -1 }\n",
            "handler.max_in_flight: invalid value",
        ),
    ] {
        let err = Config::from_toml(toml).unwrap_err().to_string();
        assert!(err.contains(says), "{toml}: {err}");
    }
    let err = Config::from_json(r#"{"queues": {"q": {"max_batch_size": "x"}}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_batch_size: invalid type"), "{err}");
}

#[test]
fn json_has_the_same_shape() {
    let config = Config::from_json(
        r#"{"server": {"grpc_addr": "0.0.0.0:50051", "tls": {"cert_file": "/t/c.pem", "key_file": "/t/k.pem"}},
            "queues": {"q": {"max_delay": "3ms", "handler": {"kind": "sim", "base": "1ms"}}}}"#,
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.queues["q"].policy.max_delay,
        Duration::from_millis(3)
    );
    assert!(config.server.tls.unwrap().client_ca_file.is_none());
    assert!(Config::from_json(r#"{"queues": {"q": {"max_batch_size": "x"}}}"#).is_err());
}

#[test]
fn remote_handlers_need_good_endpoints() {
    let config = Config::from_toml(
        "[queues.r]\nhandler = { kind = \"grpc\", endpoints = [\"http://127.0.0.1:7000\", \"tcp://x\"] }\n",
    )
    .unwrap();
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "queues.r.handler.endpoints[1] \"tcp://x\" must start with http:// or https://"
    );
    let config = Config::from_toml(
        "[queues.r]\nhandler = { kind = \"http\", endpoints = [\"http://127.0.0.1:7000/batch\"], max_in_flight = 0 }\n",
    )
    .unwrap();
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "queues.r.handler.max_in_flight must be ≥ 1"
    );
}

/// The first validation error of a config text, as printed.
fn first_error(toml: &str) -> String {
    match Config::from_toml(toml) {
        Ok(config) => config
            .validate()
            .map_or_else(|e| e.to_string(), |()| "valid".into()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_field_has_a_sane_upper_bound() {
    let cases = [
        (
            "[server]\nmax_concurrent_streams = 0\n",
            "server.max_concurrent_streams must be ≥ 1",
        ),
        (
            "[server]\nmax_concurrent_streams = 100000\n",
            "server.max_concurrent_streams must be ≤ 65536",
        ),
        (
            "[server]\nmax_header_list_bytes = 100\n",
            "server.max_header_list_bytes must be ≥ 1024",
        ),
        (
            "[server]\nmax_pending_reset_streams = 0\n",
            "server.max_pending_reset_streams must be ≥ 1",
        ),
        (
            "[server]\nmax_error_reset_streams = 1000000\n",
            "server.max_error_reset_streams must be ≤ 100000",
        ),
        (
            "[server]\nmax_requests_per_connection = 0\n",
            "server.max_requests_per_connection must be ≥ 1",
        ),
        (
            "[server]\nmax_connections = 0\n",
            "server.max_connections must be ≥ 1",
        ),
        (
            "[server]\nkeepalive_interval = \"2h\"\n",
            "server.keepalive_interval must be ≤ 1h",
        ),
        (
            "[server]\nkeepalive_timeout = \"0s\"\n",
            "server.keepalive_timeout must be > 0 when keepalive_interval is set",
        ),
        (
            "[queues.q]\nmax_batch_size = 200\nmax_queue_items = 100\n",
            "queues.q.max_batch_size must be ≤ max_queue_items (100): a batch that size could never fill",
        ),
        (
            "[queues.q]\nmax_delay = \"500000000y\"\n",
            "queues.q.max_delay must be ≤ 1h",
        ),
        (
            "[queues.q]\nitem_timeout = \"500000000y\"\n",
            "queues.q.item_timeout must be ≤ 1day",
        ),
        (
            "[queues.q]\nmax_queue_items = 18446744073709551615\n",
            "queues.q.max_queue_items must be ≤ 10000000",
        ),
        (
            "[queues.q]\nmax_in_flight_batches = 5000\n",
            "queues.q.max_in_flight_batches must be ≤ 1024",
        ),
        (
            "[queues.q]\nmax_batch_size = 2000000\nmax_queue_items = 10000000\n",
            "queues.q.max_batch_size must be ≤ 1000000",
        ),
        (
            "[queues.q]\nhandler = { kind = \"sim\", base = \"2h\" }\n",
            "queues.q.handler.base must be ≤ 1h",
        ),
        (
            "[queues.q]\nhandler = { kind = \"grpc\", timeout = \"500000000y\" }\n",
            "queues.q.handler.timeout must be ≤ 1day",
        ),
        (
            "[queues.q]\nhandler = { kind = \"grpc\", retries = 1000 }\n",
            "queues.q.handler.retries must be ≤ 100",
        ),
        (
            "[queues.q]\nhandler = { kind = \"grpc\", retry_backoff = \"2s\", retry_backoff_max = \"1s\" }\n",
            "queues.q.handler.retry_backoff must be ≤ retry_backoff_max",
        ),
        (
            "[queues.q]\nhandler = { kind = \"http\", eject_after = 0 }\n",
            "queues.q.handler.eject_after must be ≥ 1",
        ),
        (
            "[queues.q]\nhandler = { kind = \"http\", max_in_flight = 100000 }\n",
            "queues.q.handler.max_in_flight must be ≤ 1024",
        ),
        (
            "[queues.q]\nhandler = { kind = \"grpc\", parallelism = 5000 }\n",
            "queues.q.handler.parallelism must be ≤ 1024",
        ),
        (
            "[queues.q]\nmax_batch_cost = 9007199254740993\n",
            "queues.q.max_batch_cost must be ≤ 9007199254740992",
        ),
        (
            "[queues.q]\ncost_buckets = [64, 32]\n",
            "queues.q.cost_buckets must be strictly ascending, got [64, 32]",
        ),
        (
            "[queues.q]\ncost_buckets = [0, 32]\n",
            "queues.q.cost_buckets bounds must be ≥ 1",
        ),
        (
            "[server]\nshutdown_grace = \"500000000y\"\n",
            "server.shutdown_grace must be ≤ 1h",
        ),
        (
            "[server]\nstream_window = 100000000\n",
            "server.stream_window must be ≤ 1048576",
        ),
        (
            "[server]\nmax_message_bytes = 100000000000\n",
            "server.max_message_bytes must be ≤ 1073741824 bytes",
        ),
        (
            "[server]\nhttp2_stream_window = 100\n",
            "server.http2_stream_window must be ≥ 1024",
        ),
        (
            "[server]\nhttp2_stream_window = 1048576\nhttp2_connection_window = 65536\n",
            "server.http2_connection_window must be between server.http2_stream_window (1048576) and 2147483647 bytes",
        ),
    ];
    for (toml, want) in cases {
        assert_eq!(first_error(toml), want, "{toml}");
    }
}

#[test]
fn max_batch_bytes_fits_in_a_message() {
    let err =
        first_error("[server]\nmax_message_bytes = 65536\n[queues.q]\nmax_batch_bytes = 65537\n");
    assert!(
        err.starts_with("queues.q.max_batch_bytes must be ≤ server.max_message_bytes (65536)"),
        "{err}"
    );
    assert_eq!(
        first_error("[server]\nmax_message_bytes = 65536\n[queues.q]\nmax_batch_bytes = 65536\n"),
        "valid"
    );
}

#[test]
fn named_files_are_checked_before_anything_binds() {
    let dir = std::env::temp_dir().join(format!("batchgate-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("ok.pem");
    std::fs::write(
        &pem,
        "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let missing = dir.join("missing.pem");
    let check = |toml: String| {
        Config::from_toml(&toml)
            .unwrap()
            .check_files()
            .map_err(|e| e.to_string())
    };
    let (pem, not_pem, missing) = (pem.display(), not_pem.display(), missing.display());
    let err = check(format!(
        "[server.tls]\ncert_file = \"{missing}\"\nkey_file = \"{pem}\"\n"
    ))
    .unwrap_err();
    assert!(
        err.starts_with(&format!("server.tls.cert_file cannot read {missing}")),
        "{err}"
    );
    let err = check(format!(
        "[server.tls]\ncert_file = \"{pem}\"\nkey_file = \"{not_pem}\"\n"
    ))
    .unwrap_err();
    assert_eq!(
        err,
        format!("server.tls.key_file {not_pem} holds no PEM block (-----BEGIN …)")
    );
    let err = check(format!(
        "[server.tls]\ncert_file = \"{pem}\"\nkey_file = \"{pem}\"\nclient_ca_file = \"{missing}\"\n"
    ))
    .unwrap_err();
    assert!(
        err.starts_with("server.tls.client_ca_file cannot read"),
        "{err}"
    );
    let err = check(format!(
        "[queues.r]\nhandler = {{ kind = \"grpc\", tls_ca_file = \"{missing}\" }}\n"
    ))
    .unwrap_err();
    assert!(
        err.starts_with("queues.r.handler.tls_ca_file cannot read"),
        "{err}"
    );
    check(format!(
        "[server.tls]\ncert_file = \"{pem}\"\nkey_file = \"{pem}\"\n"
    ))
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_printed_config_reads_back_the_same() {
    let mut config = Config::from_toml(
        r#"
        [server]
        control_addr = "127.0.0.1:50052"
        [queues.r]
        max_delay = "1m 30s"
        handler = { kind = "grpc", endpoints = ["http://127.0.0.1:7000"], retries = 5 }
        [queues.h]
        handler = { kind = "http", json_payloads = true }
        "#,
    )
    .unwrap();
    config.queues.insert(
        "sim".into(),
        Config::embedded_default().queues["sim"].clone(),
    );
    let text = config.to_toml().unwrap();
    assert_eq!(Config::from_toml(&text).unwrap(), config, "{text}");
    assert!(text.contains("max_delay = \"1m 30s\""), "{text}");
    assert!(
        !text.contains("json_payloads = false"),
        "grpc shows no http fields: {text}"
    );
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(Config::from_json(&json).unwrap(), config);
}

#[test]
fn handler_fields_of_another_kind_are_refused() {
    let err = Config::from_toml(
        "[queues.s]\nhandler = { kind = \"sim\", endpoints = [\"http://x:1\"] }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("handler field `endpoints` does not apply to kind \"sim\" (it takes only base, per_item, per_cost, padded)"),
        "{err}"
    );
    let err = Config::from_toml("[queues.e]\nhandler = { kind = \"echo\", base = \"1ms\" }\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("(it takes no other fields)"), "{err}");
    let err =
        Config::from_toml("[queues.g]\nhandler = { kind = \"grpc\", json_payloads = true }\n")
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("`json_payloads` does not apply to kind \"grpc\""),
        "{err}"
    );
    let err = Config::from_toml("[queues.g]\nhandler = { kind = \"grpc\", colour = 1 }\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn the_consoles_own_port_must_be_a_port_of_its_own() {
    for clash in ["127.0.0.1:9464", "127.0.0.1:50051", "127.0.0.1:8000"] {
        let err = first_error(&format!(
            "[server]\nhttp_addr = \"127.0.0.1:8000\"\nadmin_addr = \"{clash}\"\n"
        ));
        assert_eq!(
            err, "server.admin_addr must differ from the server's other addresses",
            "{clash}"
        );
    }
    assert_eq!(
        first_error("[server]\nadmin_addr = \"127.0.0.1:9465\"\n"),
        "valid"
    );
}
