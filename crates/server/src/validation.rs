//! What makes a configuration field unusable: [`ConfigError`], and the
//! helpers each layer's validation uses for the fields it owns (the queue
//! its policy, the handler its settings, the server its listeners).

use std::fmt;

/// A configuration that cannot run: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {reason}")]
    Read { path: String, reason: String },
    /// The TOML did not parse or had unknown or mistyped fields.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A field has a value the server cannot run with.
    #[error("{field} {problem}")]
    Invalid { field: String, problem: String },
}

pub(crate) fn invalid(field: impl fmt::Display, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// A policy setting chosen by name (`cost_model = "padded"`), as the
/// config, the control API and `ctl` write it.
pub trait Named: Sized + Copy {
    /// Every name, in order.
    const NAMES: &'static [&'static str];
    /// The name.
    fn as_str(self) -> &'static str;
    /// The setting of a name.
    ///
    /// # Errors
    /// The unknown name, with the valid ones.
    fn parse(name: &str) -> Result<Self, String>;
}

/// Longest part of a client-supplied name quoted in a message.
const QUOTED_MAX: usize = 64;

/// `name` in quotes, cut to its first 64 bytes (on a character
/// boundary) with its full length said, so a huge name cannot blow up a
/// status message. Every message that quotes what a client sent uses
/// it.
pub fn quoted(name: &str) -> String {
    if name.len() <= QUOTED_MAX {
        return format!("{name:?}");
    }
    let mut end = QUOTED_MAX;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &name[..end], name.len())
}
