//! The `batchgate` binary as a user runs it: exit codes, messages, and the
//! client subcommands against a real server.

mod common;

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
