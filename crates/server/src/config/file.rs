//! The configuration file: [`Config`] with its queues ([`QueueConfig`],
//! whose policy, handler and `v2` model fields sit side by side in one
//! table), reading it, and the checks that span its sections.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

use super::{
    ConfigError, ENV_CONTROL_TOKEN, HandlerConfig, HandlerKind, JobsConfig, ModelSpec, Policy,
    ServerConfig,
};
use crate::validation::invalid;

/// The configuration `batchgate serve` runs with when given no file.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../../../examples/batchgate.toml");

/// Everything the server needs to start.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners and process-wide limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Queues by name; a name is what clients put in `SubmitRequest.queue`.
    #[serde(default)]
    pub queues: BTreeMap<String, QueueConfig>,
    /// Jobs (durable bulk work); absent: the Jobs service is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<JobsConfig>,
}

/// A queue: its batching policy (owned by the queue) and the handler its
/// batches go to (owned by the handler).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct QueueConfig {
    /// The policy fields, written at the top level of the queue's table.
    #[serde(flatten)]
    pub policy: Policy,
    /// What processes this queue's batches.
    pub handler: HandlerConfig,
    /// The Open Inference Protocol model this queue serves (its name is
    /// the queue's); unset: not served over the v2 protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v2: Option<ModelSpec>,
}

impl<'de> Deserialize<'de> for QueueConfig {
    /// The table minus `handler` is the policy, read with its own unknown
    /// field check (serde's `flatten` would let unknown fields through).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let handler = match table.remove("handler") {
            Some(serde_json::Value::Object(h)) => {
                from_table::<HandlerConfig>("handler.", h).map_err(D::Error::custom)?
            }
            Some(h) => {
                serde_json::from_value(h).map_err(|e| D::Error::custom(format!("handler: {e}")))?
            }
            None => HandlerConfig::default(),
        };
        let v2 = match table.remove("v2") {
            Some(m) => {
                Some(serde_json::from_value(m).map_err(|e| D::Error::custom(format!("v2: {e}")))?)
            }
            None => None,
        };
        let policy = from_table::<Policy>("", table).map_err(D::Error::custom)?;
        Ok(Self {
            policy,
            handler,
            v2,
        })
    }
}

/// A `T` from a table's fields; a field that does not read is named in
/// the message (the table's position alone does not say which it was).
fn from_table<T: serde::de::DeserializeOwned>(
    prefix: &str,
    table: serde_json::Map<String, serde_json::Value>,
) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::Object(table.clone())).map_err(|e| {
        let message = e.to_string();
        let culprit = table.into_iter().find(|(k, v)| {
            let alone = serde_json::Map::from_iter([(k.clone(), v.clone())]);
            serde_json::from_value::<T>(serde_json::Value::Object(alone))
                .is_err_and(|e| e.to_string() == message)
        });
        match culprit {
            Some((field, _)) => format!("{prefix}{field}: {message}"),
            None if prefix.is_empty() => message,
            None => format!("{}: {message}", prefix.trim_end_matches('.')),
        }
    })
}

impl QueueConfig {
    /// Checks this queue's values; `path` prefixes the field names and
    /// `max_message_bytes` is the server's `max_message_bytes`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate(&self, path: &str, max_message_bytes: usize) -> Result<(), ConfigError> {
        self.policy.validate(path, max_message_bytes)?;
        if let Some(model) = &self.v2 {
            model.validate(path, max_message_bytes)?;
        } else if self.handler.kind == HandlerKind::Kserve {
            return Err(invalid(
                format!("{path}.handler"),
                "kind \"kserve\" needs the queue's v2 = { inputs, outputs } (the tensors of a row it stacks)",
            ));
        }
        self.handler.validate(&format!("{path}.handler"))
    }
}

const MAX_QUEUE_NAME: usize = 64;

impl Config {
    /// Parses a TOML document.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] on bad TOML, unknown fields or wrong types.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Parses a JSON document with the same shape as the TOML (what the
    /// Helm chart renders from its values).
    ///
    /// # Errors
    /// [`ConfigError::Parse`] on bad JSON, unknown fields or wrong types.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Reads and parses a config file: JSON if its name ends in `.json`,
    /// else TOML.
    ///
    /// # Errors
    /// [`ConfigError::Read`] if the file cannot be read, else as
    /// [`Config::from_toml`] or [`Config::from_json`].
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    /// The embedded default configuration (an `echo` and a `sim` queue).
    ///
    /// # Panics
    /// Never in a released build: a unit test parses the embedded text.
    pub fn embedded_default() -> Self {
        Self::from_toml(DEFAULT_CONFIG_TOML).expect("embedded default config parses")
    }

    /// The configuration as TOML, the way a config file writes it (a
    /// handler shows only its kind's fields).
    ///
    /// # Errors
    /// A message if a value cannot be written as TOML.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string_pretty(self).map_err(|e| e.to_string())
    }

    /// Checks every value the types alone cannot, naming the first bad field.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with the field's dotted path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        let max_message_bytes = self.server.max_message_bytes;
        for (name, queue) in &self.queues {
            validate_queue_name(name)?;
            queue.validate(&format!("queues.{name}"), max_message_bytes)?;
        }
        if let Some(jobs) = &self.jobs {
            jobs.validate()?;
        }
        Ok(())
    }
}

impl Config {
    /// Checks that every file the configuration names can be read and
    /// holds what it should (a PEM block, a non-empty token), so a
    /// missing certificate or token file stops the server before it binds
    /// a port, naming the field.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the field of the first bad file.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if let Some(tls) = &s.tls {
            check_pem("server.tls.cert_file", &tls.cert_file)?;
            check_pem("server.tls.key_file", &tls.key_file)?;
            if let Some(ca) = &tls.client_ca_file {
                check_pem("server.tls.client_ca_file", ca)?;
            }
        }
        let token_from_env = std::env::var(ENV_CONTROL_TOKEN).is_ok_and(|t| !t.trim().is_empty());
        if let Some(path) = &s.control_token_file
            && !token_from_env
        {
            let token = read_file("server.control_token_file", path)?;
            if String::from_utf8_lossy(&token).trim().is_empty() {
                return Err(invalid(
                    "server.control_token_file",
                    format!("{} is empty", path.display()),
                ));
            }
        }
        for (name, queue) in &self.queues {
            if let Some(ca) = &queue.handler.tls_ca_file {
                check_pem(&format!("queues.{name}.handler.tls_ca_file"), ca)?;
            }
        }
        Ok(())
    }
}

fn read_file(field: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| invalid(field, format!("cannot read {}: {e}", path.display())))
}

fn check_pem(field: &str, path: &Path) -> Result<(), ConfigError> {
    let text = read_file(field, path)?;
    if !String::from_utf8_lossy(&text).contains("-----BEGIN ") {
        return Err(invalid(
            field,
            format!("{} holds no PEM block (-----BEGIN …)", path.display()),
        ));
    }
    Ok(())
}

/// Checks a queue name: it becomes a metric label and a log field.
///
/// # Errors
/// [`ConfigError::Invalid`] for an empty, long or oddly spelled name.
pub fn validate_queue_name(name: &str) -> Result<(), ConfigError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if name.is_empty() || name.len() > MAX_QUEUE_NAME || !ok_chars {
        return Err(invalid(
            format!("queues.{}", crate::error::quoted(name)),
            format!("name must be 1..={MAX_QUEUE_NAME} characters of A-Z a-z 0-9 _ - ."),
        ));
    }
    Ok(())
}
