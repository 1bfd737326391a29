//! A queue's Open Inference Protocol model: the tensors a v2 client sends
//! and gets back, per row (dim 0 is the batch), and how a request's rows
//! become items. Configured as `[queues.NAME] v2 = { ... }`.
//!
//! An item's payload is its row of every input, concatenated in the
//! declared order (one input: just its row, so an existing packed backend
//! reads it unchanged); its answer is its row of every output the same way.
//! With `rows = "together"` a request is one item holding all its rows
//! (input by input), answered with all its rows.
//!
//! A `-1` in a declared row shape is a variable dimension: each request
//! gives its own (all its rows share it, as a tensor has one shape), and
//! a variable tensor's rows in a payload or an answer are led by its
//! variable dimensions, each a 4-byte little-endian integer.

use serde::{Deserialize, Serialize};

use super::tensor::DataType;
use crate::{
    limits::model as limits,
    validation::{ConfigError, invalid},
};

/// Default of `max_rows_per_request`: what one request may bring.
pub const DEFAULT_MAX_ROWS_PER_REQUEST: usize = 65_536;

/// One tensor of a model: its name, element type and the shape of one row
/// (without dim 0).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    /// Its name in requests and responses.
    pub name: String,
    /// Its element type (`"FP32"`, `"INT64"`, ...).
    pub datatype: DataType,
    /// One row's shape, each dimension ≥ 1 or `-1` (variable: each
    /// request gives its own); `[]` for one value per row.
    #[serde(default)]
    pub shape: Vec<i64>,
    /// Most a variable (`-1`) dimension may be in a request (default:
    /// whatever fits `server.max_message_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<u64>,
}

impl TensorSpec {
    /// Elements in one row (a variable dimension counted as 1, its least).
    pub fn row_elements(&self) -> usize {
        elements(self.shape.iter().map(|&d| d.max(1)))
    }

    /// Bytes of one row (a variable dimension counted as 1).
    pub fn row_bytes(&self) -> usize {
        self.row_elements().saturating_mul(self.datatype.size())
    }

    /// Whether a dimension of its row is `-1`.
    pub fn is_variable(&self) -> bool {
        self.shape.contains(&VARIABLE)
    }

    /// Checks a request's row shape (`given`, without dim 0) against the
    /// declared one and gives its variable dimensions, in order.
    ///
    /// # Errors
    /// What is wrong, for an `INVALID_ARGUMENT`.
    pub fn variable_dims(&self, given: &[i64]) -> Result<Vec<u32>, String> {
        if given.len() != self.shape.len() {
            return Err(format!(
                "{} dimensions a row where the model declares {}",
                given.len(),
                self.shape.len()
            ));
        }
        let mut dims = Vec::new();
        for (k, (&g, &d)) in given.iter().zip(&self.shape).enumerate() {
            if d != VARIABLE {
                if g != d {
                    return Err(format!("dimension {} is {g}, not {d}", k + 1));
                }
                continue;
            }
            let most = self.max_len.unwrap_or(u64::from(u32::MAX));
            let len = u64::try_from(g).unwrap_or(0);
            if len == 0 {
                return Err(format!(
                    "dimension {} (variable) is {g}; it must be ≥ 1",
                    k + 1
                ));
            }
            if len > most {
                return Err(format!(
                    "dimension {} (variable) is {g}, past its max_len {most}",
                    k + 1
                ));
            }
            dims.push(u32::try_from(len).unwrap_or(u32::MAX));
        }
        Ok(dims)
    }

    /// Elements of a row whose variable dimensions are `dims`.
    pub fn elements_with(&self, dims: &[u32]) -> usize {
        let mut vars = dims.iter();
        elements(self.shape.iter().map(|&d| {
            if d == VARIABLE {
                vars.next().map_or(1, |&v| i64::from(v))
            } else {
                d
            }
        }))
    }

    /// Its row shape with `dims` in place of its variable dimensions.
    pub fn shape_with(&self, dims: &[u32]) -> Vec<i64> {
        let mut vars = dims.iter();
        self.shape
            .iter()
            .map(|&d| {
                if d == VARIABLE {
                    vars.next().map_or(d, |&v| i64::from(v))
                } else {
                    d
                }
            })
            .collect()
    }
}

/// A variable dimension in a declared shape.
pub const VARIABLE: i64 = -1;

/// The product of `dims` (`usize::MAX` past it).
fn elements(dims: impl Iterator<Item = i64>) -> usize {
    dims.into_iter()
        .try_fold(1usize, |n, d| n.checked_mul(usize::try_from(d).ok()?))
        .unwrap_or(usize::MAX)
}

/// How a request's rows become items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rows {
    /// Each row is an item, batched with rows of other requests.
    #[default]
    Split,
    /// The request is one item (its rows stay together).
    Together,
}

/// A queue's v2 model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The inputs every request carries, in payload order.
    pub inputs: Vec<TensorSpec>,
    /// The outputs every answer holds, in payload order.
    pub outputs: Vec<TensorSpec>,
    /// Rows as items (`split`) or a request as one item (`together`).
    #[serde(default)]
    pub rows: Rows,
    /// The one version served (a request naming another gets NOT_FOUND;
    /// one naming none gets this).
    #[serde(default = "default_version")]
    pub version: String,
    /// Most rows one request may bring (INVALID_ARGUMENT past it), checked
    /// before any row becomes an item.
    #[serde(default = "default_max_rows")]
    pub max_rows_per_request: usize,
}

fn default_max_rows() -> usize {
    DEFAULT_MAX_ROWS_PER_REQUEST
}

fn default_version() -> String {
    "1".to_owned()
}

impl ModelSpec {
    /// Bytes of one row of every input together (an item's payload).
    pub fn input_row_bytes(&self) -> usize {
        self.inputs.iter().map(TensorSpec::row_bytes).sum()
    }

    /// Bytes of one row of every output together (an item's answer).
    pub fn output_row_bytes(&self) -> usize {
        self.outputs.iter().map(TensorSpec::row_bytes).sum()
    }

    /// Checks the model; `path` is the queue's field path
    /// (`queues.NAME`), `max_message_bytes` the server's.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate(&self, path: &str, max_message_bytes: usize) -> Result<(), ConfigError> {
        let field = |f: &str| format!("{path}.v2.{f}");
        if self.version.is_empty() {
            return Err(invalid(field("version"), "must not be empty"));
        }
        limits::NAME_BYTES.check(&field("version"), self.version.len())?;
        limits::ROWS_PER_REQUEST
            .check(&field("max_rows_per_request"), self.max_rows_per_request)?;
        for (what, tensors) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            if tensors.is_empty() {
                return Err(invalid(field(what), "must name at least one tensor"));
            }
            limits::TENSORS.check(&field(what), tensors.len())?;
            for (i, t) in tensors.iter().enumerate() {
                let at = format!("{}[{i}]", field(what));
                if t.name.is_empty() {
                    return Err(invalid(format!("{at}.name"), "must not be empty"));
                }
                limits::NAME_BYTES.check(&format!("{at}.name"), t.name.len())?;
                if tensors[..i].iter().any(|o| o.name == t.name) {
                    return Err(invalid(
                        format!("{at}.name"),
                        format!("{:?} is named twice", t.name),
                    ));
                }
                limits::DIMS.check(&format!("{at}.shape"), t.shape.len())?;
                if t.shape.iter().any(|&d| d < 1 && d != VARIABLE) {
                    return Err(invalid(
                        format!("{at}.shape"),
                        "dimensions must be ≥ 1, or -1 for a variable one (dim 0, the batch, is left out)",
                    ));
                }
                if t.max_len.is_some() && !t.is_variable() {
                    return Err(invalid(
                        format!("{at}.max_len"),
                        "applies to -1 dimensions; the shape has none",
                    ));
                }
                if t.max_len == Some(0) {
                    return Err(invalid(format!("{at}.max_len"), "must be ≥ 1"));
                }
                if t.row_bytes() > max_message_bytes {
                    return Err(invalid(
                        format!("{at}.shape"),
                        format!(
                            "a row of it must fit server.max_message_bytes ({max_message_bytes})"
                        ),
                    ));
                }
            }
        }
        if self.input_row_bytes() > max_message_bytes || self.output_row_bytes() > max_message_bytes
        {
            return Err(invalid(
                field("inputs"),
                format!(
                    "a row of every tensor together must fit server.max_message_bytes ({max_message_bytes})"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(text: &str) -> Result<ModelSpec, String> {
        toml::from_str::<ModelSpec>(text).map_err(|e| e.to_string())
    }

    const GOOD: &str = r#"
inputs = [{ name = "x", datatype = "FP32", shape = [4] }, { name = "ids", datatype = "INT64", shape = [2, 3] }]
outputs = [{ name = "y", datatype = "FP32", shape = [2] }]
"#;

    #[test]
    fn rows_are_sized_from_the_declared_shapes() {
        let m = model(GOOD).unwrap();
        assert_eq!(m.inputs[0].row_bytes(), 16);
        assert_eq!(m.inputs[1].row_bytes(), 48);
        assert_eq!(m.input_row_bytes(), 64);
        assert_eq!(m.output_row_bytes(), 8);
        assert_eq!(m.rows, Rows::Split);
        assert_eq!(m.version, "1");
        m.validate("queues.m", 1 << 20).unwrap();
    }

    #[test]
    fn bad_models_name_their_field() {
        let check = |text: &str| {
            model(text)
                .unwrap()
                .validate("queues.m", 1024)
                .unwrap_err()
                .to_string()
        };
        assert!(
            check("inputs = []\noutputs = [{ name = \"y\", datatype = \"FP32\" }]")
                .starts_with("queues.m.v2.inputs must name at least one tensor")
        );
        let twice = check(
            "inputs = [{ name = \"x\", datatype = \"FP32\" }, { name = \"x\", datatype = \"INT8\" }]\noutputs = [{ name = \"y\", datatype = \"FP32\" }]",
        );
        assert!(
            twice.starts_with("queues.m.v2.inputs[1].name \"x\" is named twice"),
            "{twice}"
        );
        let zero = check(
            "inputs = [{ name = \"x\", datatype = \"FP32\", shape = [0] }]\noutputs = [{ name = \"y\", datatype = \"FP32\" }]",
        );
        assert!(
            zero.starts_with("queues.m.v2.inputs[0].shape dimensions must be ≥ 1"),
            "{zero}"
        );
        let big = check(
            "inputs = [{ name = \"x\", datatype = \"FP32\", shape = [1000] }]\noutputs = [{ name = \"y\", datatype = \"FP32\" }]",
        );
        assert!(
            big.starts_with("queues.m.v2.inputs[0].shape a row of it must fit"),
            "{big}"
        );
        let huge = check(
            "inputs = [{ name = \"x\", datatype = \"FP32\", shape = [4294967296, 4294967296, 4294967296] }]\noutputs = [{ name = \"y\", datatype = \"FP32\" }]",
        );
        assert!(
            huge.starts_with("queues.m.v2.inputs[0].shape a row of it must fit"),
            "{huge}"
        );
        assert!(
            model("inputs = [{ name = \"x\", datatype = \"FLOAT\" }]\noutputs = []")
                .unwrap_err()
                .contains("unknown variant")
        );
        assert!(
            model("inputs = []\noutputs = []\nrows = \"grouped\"")
                .unwrap_err()
                .contains("unknown variant")
        );
    }
}
