//! The flags of `ctl create` and `ctl update`: one per policy field (from
//! the `policy_fields!` table) and the handler's, with their parsers and
//! how `describe` prints each value.

use std::time::Duration;

use batchgate::pb;

/// The flag type of a policy field.
macro_rules! flag_type {
    (count) => {
        u32
    };
    (bytes) => {
        u64
    };
    (micros) => {
        Duration
    };
    (millis) => {
        Duration
    };
    (flag) => {
        bool
    };
    (mode) => {
        String
    };
    (levels) => {
        u32
    };
    (sizes) => {
        pb::BatchSizes
    };
    (text) => {
        String
    };
    (weights) => {
        pb::KeyWeights
    };
    (name) => {
        String
    };
    (amount) => {
        u64
    };
    (bounds) => {
        pb::CostBuckets
    };
}

/// How a policy flag is parsed.
macro_rules! flag_parser {
    (micros) => {
        humantime::parse_duration
    };
    (millis) => {
        humantime::parse_duration
    };
    (count) => {
        clap::value_parser!(u32)
    };
    (bytes) => {
        clap::value_parser!(u64)
    };
    (flag) => {
        clap::value_parser!(bool)
    };
    (mode) => {
        clap::builder::PossibleValuesParser::new(batchgate::config::Mode::NAMES)
    };
    (levels) => {
        clap::value_parser!(u32)
    };
    (sizes) => {
        parse_sizes
    };
    (text) => {
        clap::value_parser!(String)
    };
    (weights) => {
        parse_weights
    };
    (name) => {
        clap::value_parser!(String)
    };
    (amount) => {
        clap::value_parser!(u64)
    };
    (bounds) => {
        parse_bounds
    };
}

/// A policy flag's value as the control API carries it.
macro_rules! flag_to_pb {
    (micros, $v:expr) => {
        u64::try_from($v.as_micros()).unwrap_or(u64::MAX)
    };
    (millis, $v:expr) => {
        u64::try_from($v.as_millis()).unwrap_or(u64::MAX)
    };
    ($kind:ident, $v:expr) => {
        $v
    };
}

/// A policy value from the control API as `describe` prints it (durations
/// as the config writes them).
macro_rules! pb_text {
    (micros, $v:expr) => {
        micros_text($v.unwrap_or_default())
    };
    (millis, $v:expr) => {
        millis_text($v.unwrap_or_default())
    };
    (sizes, $v:expr) => {
        sizes_text($v.as_ref())
    };
    (weights, $v:expr) => {
        weights_text($v.as_ref())
    };
    (bounds, $v:expr) => {
        bounds_text($v.as_ref())
    };
    ($kind:ident, $v:expr) => {
        $v.clone().unwrap_or_default().to_string()
    };
}

macro_rules! policy_args {
    (; $(($name:ident, $pb:ident, $kind:ident, $help:literal)),* $(,)?) => {
        /// Policy fields; only those given change.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct PolicyArgs {
            $(
                #[doc = $help]
                #[arg(long, value_parser = flag_parser!($kind))]
                $name: Option<flag_type!($kind)>,
            )*
        }

        impl PolicyArgs {
            pub(super) fn to_policy(&self) -> pb::QueuePolicy {
                pb::QueuePolicy {
                    $( $pb: self.$name.clone().map(|v| flag_to_pb!($kind, v)), )*
                }
            }
        }

        /// Every policy field of `p`, named as in the config, as text.
        pub(super) fn policy_lines(p: &pb::QueuePolicy) -> Vec<(&'static str, String)> {
            vec![ $( (stringify!($name), pb_text!($kind, p.$pb)), )* ]
        }
    };
}

batchgate::policy_fields!(policy_args);

/// Parses `--allowed-batch-sizes 1,8,32` ("" for any size).
fn parse_sizes(text: &str) -> Result<pb::BatchSizes, String> {
    let sizes = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>().map_err(|_| {
                format!("{s:?} is not a batch size (a comma-separated list of counts)")
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(pb::BatchSizes { sizes })
}

/// Parses `--weights tenant-a=3,tenant-b=2` ("" for every key 1).
fn parse_weights(text: &str) -> Result<pb::KeyWeights, String> {
    let weights = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let bad = || format!("{pair:?} is not KEY=WEIGHT (e.g. tenant-a=3)");
            let (key, weight) = pair.rsplit_once('=').ok_or_else(bad)?;
            let weight = weight.trim().parse::<u32>().map_err(|_| bad())?;
            Ok((key.trim().to_owned(), weight))
        })
        .collect::<Result<_, String>>()?;
    Ok(pb::KeyWeights { weights })
}

/// Key weights as `describe` prints them, sorted by key.
fn weights_text(weights: Option<&pb::KeyWeights>) -> String {
    let mut pairs: Vec<_> = weights
        .map(|w| w.weights.iter().map(|(k, w)| format!("{k}={w}")).collect())
        .unwrap_or_default();
    if pairs.is_empty() {
        return "all 1".to_owned();
    }
    pairs.sort();
    pairs.join(",")
}

/// Allowed batch sizes as `describe` prints them.
/// Parses `--cost-buckets 32,64,128` ("" for none).
fn parse_bounds(text: &str) -> Result<pb::CostBuckets, String> {
    let bounds = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                format!("{s:?} is not a cost bound (a comma-separated list of whole numbers)")
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(pb::CostBuckets { bounds })
}

fn bounds_text(bounds: Option<&pb::CostBuckets>) -> String {
    match bounds {
        Some(b) if !b.bounds.is_empty() => b
            .bounds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        _ => "none".to_owned(),
    }
}

fn sizes_text(sizes: Option<&pb::BatchSizes>) -> String {
    match sizes {
        Some(s) if !s.sizes.is_empty() => s
            .sizes
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        _ => "any".to_owned(),
    }
}

/// Handler fields of a new queue (or, with `update --kind`, a queue's new
/// handler); unset ones take the kind's defaults.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HandlerArgs {
    /// echo, sim, grpc, http or http_each (create: default echo; update:
    /// replaces the handler, in-flight batches finish on the old one).
    #[arg(long)]
    pub(super) kind: Option<String>,
    /// sim: fixed cost of a batch, e.g. "5ms".
    #[arg(long, value_parser = humantime::parse_duration)]
    base: Option<Duration>,
    /// sim: added cost of each item, e.g. "20us".
    #[arg(long, value_parser = humantime::parse_duration)]
    per_item: Option<Duration>,
    /// sim: added cost per unit of the items' cost (a token), e.g. "2us".
    #[arg(long, value_parser = humantime::parse_duration)]
    per_cost: Option<Duration>,
    /// sim: the items' cost counts padded (largest cost times items).
    #[arg(long)]
    padded: bool,
    /// grpc/http: an endpoint URL (repeatable).
    #[arg(long = "endpoint")]
    endpoints: Vec<String>,
    /// grpc/http: batches one endpoint may process at once.
    #[arg(long)]
    max_in_flight: Option<u32>,
    /// grpc/http: longest a backend call may take, e.g. "30s".
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// grpc/http: retries of a batch that failed for availability.
    #[arg(long)]
    retries: Option<u32>,
    /// grpc/http: split a rejected batch so a poison item fails alone (true or false).
    #[arg(long)]
    bisect: Option<bool>,
    /// grpc: call ProcessBatchStream and forward each result as it comes.
    #[arg(long)]
    streaming: bool,
    /// grpc: "items" (a message per item) or "packed" (one buffer per batch).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["items", "packed"]))]
    encoding: Option<String>,
    /// http: payloads are raw JSON documents instead of base64 strings.
    #[arg(long)]
    json_payloads: bool,
    /// http_each: the URL each item requests, with {attribute} placeholders.
    #[arg(long)]
    url: Option<String>,
    /// http_each: the request method (default GET).
    #[arg(long)]
    method: Option<String>,
    /// http_each: a request header NAME=VALUE (repeatable; literal values
    /// only: env: and file: values belong in the config file).
    #[arg(long = "header", value_parser = header_pair)]
    headers: Vec<(String, String)>,
    /// http_each: requests per period, e.g. "100/min".
    #[arg(long)]
    rate: Option<String>,
    /// http_each: requests the rate lets go at once (default 1).
    #[arg(long)]
    burst: Option<u32>,
    /// http_each: a response header to copy into the item's attributes
    /// (repeatable).
    #[arg(long = "keep-header")]
    keep_headers: Vec<String>,
}

/// `NAME=VALUE`.
fn header_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| format!("{text:?} must be NAME=VALUE"))
}

impl HandlerArgs {
    pub(super) fn to_spec(&self) -> pb::HandlerSpec {
        let micros =
            |d: Option<Duration>| d.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let kind = self.kind.clone().unwrap_or_else(|| "echo".to_owned());
        let sim = kind == "sim";
        let default_sim = batchgate::config::HandlerConfig::of(batchgate::config::HandlerKind::Sim);
        pb::HandlerSpec {
            kind,
            // A sim's costs are always sent; unset ones are the defaults.
            sim_base_us: micros(self.base.or(sim.then_some(default_sim.base))),
            sim_per_item_us: micros(self.per_item.or(sim.then_some(default_sim.per_item))),
            sim_per_cost_ns: self
                .per_cost
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            sim_padded: self.padded,
            endpoints: self.endpoints.clone(),
            max_in_flight: self.max_in_flight.unwrap_or(0),
            timeout_ms: self
                .timeout
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            retries: self.retries,
            bisect: self.bisect,
            streaming: self.streaming,
            json_payloads: self.json_payloads,
            encoding: self.encoding.clone().unwrap_or_default(),
            url: self.url.clone().unwrap_or_default(),
            method: self.method.clone().unwrap_or_default(),
            headers: self.headers.iter().cloned().collect(),
            rate: self.rate.clone().unwrap_or_default(),
            burst: self.burst.unwrap_or(0),
            keep_headers: self.keep_headers.clone(),
        }
    }
}

/// A duration in microseconds as the config writes durations ("2ms").
pub(super) fn micros_text(us: u64) -> String {
    humantime::format_duration(Duration::from_micros(us)).to_string()
}

/// A duration in milliseconds as the config writes durations ("30s").
pub(super) fn millis_text(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_flags_parse_and_print() {
        let w = parse_weights("tenant-a=3, b = 2").unwrap();
        assert_eq!(weights_text(Some(&w)), "b=2,tenant-a=3");
        assert_eq!(weights_text(Some(&parse_weights("").unwrap())), "all 1");
        assert_eq!(
            parse_weights("a").unwrap_err(),
            "\"a\" is not KEY=WEIGHT (e.g. tenant-a=3)"
        );
        assert!(parse_weights("a=x").is_err());
        assert_eq!(parse_sizes("1, 8").unwrap().sizes, [1, 8]);
    }
}
