//! The `batchgate` binary as a user runs it: exit codes, messages, and the
//! client subcommands against a real server.

use crate::common;

use std::{
    io::Write,
    net::TcpListener,
    path::PathBuf,
    process::{Command, Output, Stdio},
};

/// The built binary.
fn batchgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_batchgate"));
    command
        .env_remove("BATCHGATE_CONTROL_TOKEN")
        .env_remove("BATCHGATE_CONFIG")
        .env_remove("BATCHGATE_ADDR")
        .env_remove("BATCHGATE_CONTROL_ADDR")
        .env_remove("RUST_LOG");
    command
}

/// A config file in a fresh temporary folder.
struct TempConfig {
    dir: PathBuf,
}

impl TempConfig {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("batchgate-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn write(&self, toml: &str) -> PathBuf {
        let path = self.path("batchgate.toml");
        std::fs::write(&path, toml).unwrap();
        path
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `serve` with `toml`, on an address this test holds bound, so a
/// server that got as far as binding would fail differently.
fn serve_with(name: &str, toml: &str) -> Output {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let config = TempConfig::new(name);
    let path = config.write(&format!(
        "[server]\ngrpc_addr = \"{addr}\"\nmetrics_addr = \"127.0.0.1:0\"\n{toml}"
    ));
    batchgate()
        .args(["serve", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn missing_files_exit_64_before_binding_and_name_the_field() {
    let cases = [
        (
            "[server.tls]\ncert_file = \"/nonexistent/tls.crt\"\nkey_file = \"/nonexistent/tls.key\"\n",
            "server.tls.cert_file cannot read /nonexistent/tls.crt",
        ),
        (
            "control_token_file = \"/nonexistent/token\"\n",
            "server.control_token_file cannot read /nonexistent/token",
        ),
        (
            "[queues.r]\nhandler = { kind = \"grpc\", endpoints = [\"https://127.0.0.1:1\"], tls_ca_file = \"/nonexistent/ca.pem\" }\n",
            "queues.r.handler.tls_ca_file cannot read /nonexistent/ca.pem",
        ),
    ];
    for (toml, want) in cases {
        let output = serve_with("files", toml);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(64), "{toml}: {err}");
        assert!(err.contains(want), "{toml}: {err}");
        assert!(
            !err.contains("cannot bind"),
            "checked before binding: {err}"
        );
    }
}

#[test]
fn a_config_for_another_machine_can_be_checked_without_its_files() {
    let config = TempConfig::new("skip");
    let path = config.write(
        "[server.tls]\ncert_file = \"/nonexistent/tls.crt\"\nkey_file = \"/nonexistent/tls.key\"\n",
    );
    let checked = |skip: bool| {
        let mut command = batchgate();
        command
            .args(["serve", "--check-config", "--config"])
            .arg(&path);
        if skip {
            command.arg("--skip-file-checks");
        }
        command.output().unwrap().status.code()
    };
    assert_eq!(checked(false), Some(64));
    assert_eq!(checked(true), Some(0));
}

#[test]
fn an_address_that_cannot_be_bound_exits_64_naming_the_field() {
    let output = serve_with("bind", "");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(64), "{err}");
    assert!(err.contains("server.grpc_addr: cannot bind"), "{err}");
}

#[test]
fn bounds_are_checked_the_same_from_file_flags_and_environment() {
    let output = serve_with("bounds", "[queues.q]\nmax_delay = \"500000000y\"\n");
    assert_eq!(output.status.code(), Some(64));
    assert!(stderr(&output).contains("queues.q.max_delay must be ≤ 1h"));

    let flag = batchgate()
        .args(["serve", "--check-config", "--shutdown-grace", "500000000y"])
        .output()
        .unwrap();
    assert_eq!(flag.status.code(), Some(64), "{}", stderr(&flag));
    assert!(stderr(&flag).contains("server.shutdown_grace must be ≤ 1h"));

    let env = batchgate()
        .args(["serve", "--check-config"])
        .env("BATCHGATE_SHUTDOWN_GRACE", "500000000y")
        .output()
        .unwrap();
    assert_eq!(env.status.code(), Some(64), "{}", stderr(&env));
    assert!(stderr(&env).contains("server.shutdown_grace must be ≤ 1h"));

    // A value that does not parse at all is a bad configuration too.
    for (var, value) in [
        ("BATCHGATE_SHUTDOWN_GRACE", "5 parsecs"),
        ("BATCHGATE_LOG_FORMAT", "xml"),
    ] {
        let env = batchgate()
            .args(["serve", "--check-config"])
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(env.status.code(), Some(64), "{var}: {}", stderr(&env));
        assert!(stderr(&env).contains(value), "{var}: {}", stderr(&env));
    }
    let usage = batchgate().args(["serve", "--nope"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));
}

#[test]
fn a_token_file_that_exists_is_accepted() {
    let config = TempConfig::new("token");
    let token = config.path("token");
    std::fs::File::create(&token)
        .unwrap()
        .write_all(b"s3cret\n")
        .unwrap();
    let path = config.write(&format!(
        "[server]\ncontrol_token_file = \"{}\"\n",
        token.display()
    ));
    let output = batchgate()
        .args(["serve", "--check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// Runs the built binary with `args` (stdin from `input`); with
/// `close_stdout` its stdout is closed before it writes, as when piped into
/// `head` that has already exited.
async fn run_cli(args: Vec<String>, input: &'static str, close_stdout: bool) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = batchgate()
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if close_stdout {
            drop(child.stdout.take());
        }
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_the_client_quietly() {
    let server =
        common::TestServer::start(common::config("[queues.a]\n[queues.b]\n[queues.c]\n")).await;
    let addr = server.grpc.to_string();
    for args in [
        strings(&["ctl", "--addr", &addr, "queues"]),
        strings(&["stream", "--addr", &addr, "--queue", "a"]),
        strings(&["submit", "--addr", &addr, "--queue", "a", "x"]),
    ] {
        let output = run_cli(args.clone(), "1\n2\n3\n", true).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output), "", "{args:?}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn host_port_addresses_work_and_refused_ones_say_so() {
    let server = common::TestServer::start(common::config("[queues.a]\n")).await;
    let addr = server.grpc.to_string();
    let ok = run_cli(
        strings(&["submit", "--addr", &addr, "--queue", "a", "hi"]),
        "",
        false,
    )
    .await;
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("hi\n"));
    let bench = run_cli(
        strings(&[
            "bench",
            "--addr",
            &addr,
            "--queue",
            "a",
            "--items",
            "50",
            "--warmup",
            "0s",
            "--quiet",
            "--fail-on-error",
        ]),
        "",
        false,
    )
    .await;
    assert_eq!(bench.status.code(), Some(0), "{}", stderr(&bench));
    server.shutdown().await;

    for command in ["ctl", "bench"] {
        let args = if command == "ctl" {
            strings(&["ctl", "--addr", &addr, "queues"])
        } else {
            strings(&["bench", "--addr", &addr, "--duration", "1s"])
        };
        let refused = run_cli(args, "", false).await;
        let said = stderr(&refused);
        assert_eq!(refused.status.code(), Some(1), "{command}: {said}");
        assert_eq!(
            said.matches("connection refused: is batchgate running there")
                .count(),
            1,
            "{command}: said once: {said}"
        );
        assert!(said.contains("os error"), "{command}: the cause: {said}");
    }
}

#[test]
fn check_config_prints_the_effective_config_as_toml_or_json() {
    let output = batchgate()
        .args(["serve", "--check-config"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    let config = batchgate::config::Config::from_toml(&text).expect("prints TOML that reads back");
    assert_eq!(config, batchgate::config::Config::embedded_default());
    assert!(
        text.contains(
            "[queues.sim.handler]\nkind = \"sim\"\nbase = \"5ms\"\nper_item = \"20us\"\n"
        ),
        "{text}"
    );
    assert!(
        !text.contains("endpoints"),
        "only the kind's fields: {text}"
    );

    let json = batchgate()
        .args(["serve", "--check-config", "--json"])
        .output()
        .unwrap();
    let config =
        batchgate::config::Config::from_json(&String::from_utf8(json.stdout).unwrap()).unwrap();
    assert_eq!(config, batchgate::config::Config::embedded_default());
}

#[test]
fn a_handler_field_of_another_kind_is_refused() {
    let config = TempConfig::new("kind");
    let path = config.write(
        "[queues.s]\nhandler = { kind = \"sim\", endpoints = [\"http://127.0.0.1:7000\"] }\n",
    );
    let output = batchgate()
        .args(["serve", "--check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(
        stderr(&output).contains("handler field `endpoints` does not apply to kind \"sim\""),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_sends_files_attributes_and_headers_and_stream_sends_attributes() {
    let server = common::TestServer::start(common::config("[queues.a]\n")).await;
    let addr = server.grpc.to_string();
    let files = TempConfig::new("payload");
    let binary = files.path("payload.bin");
    std::fs::write(&binary, [0u8, 255, 1]).unwrap();
    let binary = binary.display().to_string();

    let by_flag = run_cli(
        strings(&[
            "submit",
            "--addr",
            &addr,
            "-q",
            "a",
            "--file",
            &binary,
            "--attr",
            "lang=rust",
            "-H",
            "x-request-id:abc",
            "--json",
        ]),
        "",
        false,
    )
    .await;
    assert_eq!(by_flag.status.code(), Some(0), "{}", stderr(&by_flag));
    let line: serde_json::Value = serde_json::from_slice(&by_flag.stdout).unwrap();
    assert_eq!(line["payload"], "base64:AP8B", "{line}");
    assert_eq!(line["attributes"]["lang"], "rust", "{line}");

    let at_file = run_cli(
        strings(&["submit", "--addr", &addr, "-q", "a", &format!("@{binary}")]),
        "",
        false,
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&at_file.stdout).lines().next(),
        Some("base64:AP8B")
    );

    let from_stdin = run_cli(
        strings(&["submit", "--addr", &addr, "-q", "a", "--file", "-"]),
        "piped",
        false,
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&from_stdin.stdout).lines().next(),
        Some("piped")
    );

    let bad_header = run_cli(
        strings(&["submit", "--addr", &addr, "-H", "no-colon", "x"]),
        "",
        false,
    )
    .await;
    assert_eq!(bad_header.status.code(), Some(2));
    assert!(
        stderr(&bad_header).contains("expected key:value"),
        "{}",
        stderr(&bad_header)
    );

    let stream = run_cli(
        strings(&[
            "stream", "--addr", &addr, "-q", "a", "--attr", "k=v", "--json",
        ]),
        "one\ntwo\n",
        false,
    )
    .await;
    assert_eq!(stream.status.code(), Some(0), "{}", stderr(&stream));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&stream.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines.iter().all(|l| l["attributes"]["k"] == "v"),
        "{lines:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_gives_each_line_a_key_of_its_own_so_a_rerun_replays() {
    let server = common::TestServer::start(common::config("[queues.a]\n")).await;
    let addr = server.grpc.to_string();
    let args = strings(&[
        "stream",
        "--addr",
        &addr,
        "-q",
        "a",
        "--idempotency-key",
        "job-7",
    ]);
    for _ in 0..2 {
        let out = run_cli(args.clone(), "one\ntwo\n", false).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["1\tone", "2\ttwo"], "{text}");
    }
    let series = |outcome: &str| {
        format!("batchgate_idempotent_items_total{{queue=\"a\",outcome=\"{outcome}\"}}")
    };
    assert_eq!(
        server.metric(&series("first")).await,
        2.0,
        "each line ran once"
    );
    assert_eq!(
        server.metric(&series("replayed")).await,
        2.0,
        "the rerun replayed both"
    );
    // Another line 1 under the same key is a reuse, refused by name.
    let reused = run_cli(args, "three\n", false).await;
    assert_eq!(reused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&reused.stdout).contains("job-7:1"),
        "{}",
        String::from_utf8_lossy(&reused.stdout)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_takes_handler_fields_prints_names_durations_and_aligned_tables() {
    let server = common::TestServer::start(common::config("[queues.echo]\n")).await;
    let addr = server.grpc.to_string();
    let long = "a_queue_name_well_over_twenty_characters";
    let created = run_cli(
        strings(&[
            "ctl",
            "create",
            long,
            "--kind",
            "sim",
            "--base",
            "3ms",
            "--per-item",
            "0s",
            "--max-delay",
            "1ms",
            "--addr",
            &addr,
        ]),
        "",
        false,
    )
    .await;
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));

    // Global flags after the subcommand; state by name in JSON.
    let json = run_cli(
        strings(&["ctl", "describe", long, "--addr", &addr, "--json"]),
        "",
        false,
    )
    .await;
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let info: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(info["state"], "active", "{info}");
    assert_eq!(info["handler"]["sim_base_us"], 3000, "{info}");

    let described = run_cli(
        strings(&["ctl", "describe", long, "--addr", &addr]),
        "",
        false,
    )
    .await;
    let text = String::from_utf8_lossy(&described.stdout).into_owned();
    for line in [
        "  max_delay = 1ms",
        "  item_timeout = 30s",
        "  kind = sim",
        "  base = 3ms",
        "  per_item = 0s",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }

    let queues = run_cli(strings(&["ctl", "queues", "--addr", &addr]), "", false).await;
    let text = String::from_utf8_lossy(&queues.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let state_at = lines[0].find("STATE").unwrap();
    for line in &lines[1..] {
        assert_eq!(
            &line[state_at..state_at + 6],
            "active",
            "columns line up:\n{text}"
        );
    }

    // watch: the time, then rates from the second snapshot on.
    let addr_for_watch = addr.clone();
    let watched = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut child = batchgate()
            .args([
                "ctl",
                "watch",
                "--interval",
                "100ms",
                "--addr",
                &addr_for_watch,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        while let Some(Ok(line)) = lines.next() {
            seen.push(line);
            if seen.iter().filter(|l| l.starts_with("20")).count() == 3 {
                break;
            }
        }
        child.kill().unwrap();
        let _ = child.wait();
        seen
    })
    .await
    .unwrap();
    let rate_rows: Vec<&String> = watched.iter().filter(|l| l.starts_with("echo")).collect();
    assert!(rate_rows.len() >= 2, "{watched:?}");
    assert!(watched.iter().any(|l| l.contains("OK/s")), "{watched:?}");
    assert!(
        rate_rows[0].contains(" - "),
        "no rate without a previous snapshot: {watched:?}"
    );
    assert!(
        rate_rows[1].contains("0.0"),
        "a rate from the second on: {watched:?}"
    );
    server.shutdown().await;
}

#[test]
fn bench_sweeps_print_csv_with_exact_batch_sizes() {
    // Batches of 256 are where a 2-digit HDR histogram said 257.
    let config = TempConfig::new("bench");
    let path = config.write("[queues.echo]\nmax_batch_size = 256\nmax_delay = \"20ms\"\n");
    let output = batchgate()
        .args(["bench", "--in-process", "--config"])
        .arg(&path)
        .args(["--concurrency-range", "64:256", "--duration", "300ms"])
        .args(["--warmup", "0s", "--csv"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "a header and one line per point:\n{text}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for (line, concurrency) in lines[1..].iter().zip([64, 128, 256]) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[column("concurrency")], concurrency.to_string());
        let max: u64 = fields[column("batch_max")].parse().unwrap();
        assert!(
            max <= concurrency,
            "a batch is never larger than the calls in flight: {line}"
        );
    }
}

#[test]
fn sighup_reloads_the_config_file() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = TempConfig::new("sighup");
    let server =
        format!("[server]\ngrpc_addr = \"127.0.0.1:{port}\"\nmetrics_addr = \"127.0.0.1:0\"\n");
    let path = config.write(&format!("{server}[queues.first]\n"));
    let mut child = batchgate()
        .args(["serve", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let queues = || {
        let out = batchgate()
            .args(["ctl", "queues", "--addr", &addr])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let wait_for = |what: &str, want: &dyn Fn(&str) -> bool| {
        for _ in 0..200 {
            let text = queues();
            if want(&text) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("waited for {what}: {}", queues());
    };
    wait_for("the server", &|t| t.contains("first"));
    config.write(&format!("{server}[queues.second]\n"));
    let sent = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    wait_for("the reload", &|t| {
        t.contains("second") && !t.contains("first")
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_applies_a_call_to_every_replica_behind_a_name() {
    let server = common::TestServer::start(common::config("[queues.echo]\n")).await;
    let port = server.grpc.port();
    let name = format!("dns:///localhost:{port}");
    let replicas: Vec<std::net::SocketAddr> = {
        use std::net::ToSocketAddrs;
        format!("localhost:{port}")
            .to_socket_addrs()
            .unwrap()
            .collect()
    };
    let only_ipv4 = replicas.iter().all(std::net::SocketAddr::is_ipv4);
    let ours = format!("127.0.0.1:{port}");

    let queues = run_cli(strings(&["ctl", "--addr", &name, "queues"]), "", false).await;
    let text = String::from_utf8_lossy(&queues.stdout).into_owned();
    assert!(text.contains("REPLICAS"), "totals first:\n{text}");
    assert!(text.contains(&ours), "then each replica:\n{text}");
    let paused = run_cli(
        strings(&["ctl", "--addr", &name, "pause", "echo"]),
        "",
        false,
    )
    .await;
    let text = String::from_utf8_lossy(&paused.stdout).into_owned();
    assert!(text.contains(&format!("== {ours}")), "{text}");
    assert!(text.contains("REPLICA") && text.contains("ok"), "{text}");
    if only_ipv4 {
        assert!(paused.status.success(), "{}", stderr(&paused));
    }
    let json = run_cli(
        strings(&["ctl", "--addr", &name, "--json", "queues"]),
        "",
        false,
    )
    .await;
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["totals"]["echo"]["replicas"], 1);
    assert_eq!(value["replicas"][0]["queues"][0]["state"], "paused");

    let watch = run_cli(strings(&["ctl", "--addr", &name, "watch"]), "", false).await;
    assert!(!watch.status.success());
    assert!(
        stderr(&watch).contains("watch follows one server"),
        "{}",
        stderr(&watch)
    );
    let missing = run_cli(
        strings(&["ctl", "--addr", "dns:///no-such-host.invalid:1", "queues"]),
        "",
        false,
    )
    .await;
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("cannot resolve"),
        "{}",
        stderr(&missing)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn ctl_sets_and_describes_cost_settings_and_submit_sends_a_cost() {
    let server = common::TestServer::start(common::config("[queues.echo]\n")).await;
    let addr = server.grpc.to_string();
    let ctl = |args: &[&str]| {
        let mut all = strings(&["ctl"]);
        all.extend(strings(args));
        all.extend(strings(&["--addr", &addr]));
        run_cli(all, "", false)
    };
    let created = ctl(&[
        "create",
        "tok",
        "--kind",
        "sim",
        "--base",
        "0s",
        "--per-cost",
        "1us",
        "--padded",
        "--max-batch-cost",
        "512",
        "--cost-model",
        "padded",
        "--cost-buckets",
        "32,64,128",
        "--max-delay",
        "1ms",
    ])
    .await;
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
    let updated = ctl(&[
        "update",
        "tok",
        "--oversize",
        "alone",
        "--cost-attribute",
        "tokens",
    ])
    .await;
    assert_eq!(updated.status.code(), Some(0), "{}", stderr(&updated));
    // A change is confirmed in one line.
    for (said, line) in [
        (&created, "created tok (active,"),
        (&updated, "updated tok (active,"),
    ] {
        let text = String::from_utf8_lossy(&said.stdout).into_owned();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with(line), "{text}");
    }
    for (verb, state) in [
        ("pause", "paused tok (paused,"),
        ("resume", "resumed tok (active,"),
    ] {
        let said = ctl(&[verb, "tok"]).await;
        let text = String::from_utf8_lossy(&said.stdout).into_owned();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with(state), "{text}");
    }
    let described = ctl(&["describe", "tok"]).await;
    let text = String::from_utf8_lossy(&described.stdout).into_owned();
    for line in [
        "  cost = unit",
        "  cost_attribute = tokens",
        "  max_batch_cost = 512",
        "  cost_model = padded",
        "  oversize = alone",
        "  cost_buckets = 32,64,128",
        "  per_cost = 1us",
        "  padded = true",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }
    let bad = ctl(&["update", "tok", "--cost-buckets", "64,x"]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("\"x\" is not a cost bound"),
        "{}",
        stderr(&bad)
    );

    let submitted = run_cli(
        strings(&[
            "submit", "--queue", "tok", "--cost", "7", "--addr", &addr, "hi",
        ]),
        "",
        false,
    )
    .await;
    assert_eq!(submitted.status.code(), Some(0), "{}", stderr(&submitted));
    assert_eq!(
        server
            .metric("batchgate_batch_cost_sum{queue=\"tok\"}")
            .await,
        7.0
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_submit_wait_ends_with_the_id_alone_and_results_come_back() {
    let dir = TempConfig::new("jobs");
    let server = common::TestServer::start(common::config(&format!(
        "[queues.a]\nmax_delay = \"1ms\"\n[jobs]\npath = \"{}\"\n",
        dir.path("jobs.sqlite3").display()
    )))
    .await;
    let addr = server.grpc.to_string();
    let lines = "{\"custom_id\": \"d1\", \"payload\": \"hello\"}\n{\"custom_id\": \"d2\", \"payload_b64\": \"AAE=\"}\n";
    let output = run_cli(
        strings(&[
            "jobs", "--addr", &addr, "submit", "--queue", "a", "-", "--wait",
        ]),
        lines,
        false,
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let id = stdout.lines().last().unwrap_or_default().to_owned();
    assert!(id.starts_with("job_") && !id.contains(' '), "{stdout:?}");
    assert!(stderr(&output).contains("completed"), "{}", stderr(&output));
    let results = run_cli(
        strings(&["jobs", "--addr", &addr, "results", &id]),
        "",
        false,
    )
    .await;
    let text = String::from_utf8_lossy(&results.stdout).into_owned();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("\"custom_id\":\"d1\"") && text.contains("\"payload\":\"hello\""),
        "{text}"
    );
    server.shutdown().await;
}

/// docs/config-reference.md is what `batchgate config-reference` prints:
/// a field added, renamed or re-documented without regenerating it fails
/// here (regenerate: `cargo run -- config-reference > docs/config-reference.md`).
#[test]
fn the_checked_in_config_reference_is_what_the_binary_prints() {
    let out = batchgate().arg("config-reference").output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let checked_in = include_str!("../../../../docs/config-reference.md");
    assert!(
        printed == checked_in,
        "docs/config-reference.md differs from `batchgate config-reference`: regenerate it with\n  cargo run -- config-reference > docs/config-reference.md"
    );
    for field in [
        "`grpc_addr`",
        "`max_batch_size`",
        "`ack_wait`",
        "`keep_headers`",
        "`admin_addr`",
    ] {
        assert!(printed.contains(field), "{field} is listed");
    }
}
