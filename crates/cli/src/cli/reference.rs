//! `batchgate config-reference`: the configuration reference as Markdown
//! (`docs/config-reference.md`, which CI compares with what this prints),
//! generated from the code. A field's help is its doc comment, read from
//! the source embedded at build time (the policy's from the
//! `policy_fields!` table); its default is what the default config
//! prints; its bounds are what validation accepts, found by trying values
//! (each field alone, the others at their defaults); and whether a reload
//! applies it follows from where it lives.

use std::fmt::Write as _;

use batchgate::{
    config::{Config, JobsConfig, ServerConfig},
    handler::config::{HandlerConfig, HandlerKind, fields_of},
    queue::{POLICY_FIELDS, Policy},
};

const SERVER_SRC: &str = include_str!("../../../server/src/config/server.rs");
const TLS_SRC: &str = include_str!("../../../server/src/tls.rs");
const JOBS_SRC: &str = include_str!("../../../server/src/config/jobs.rs");
const HANDLER_SRC: &str = include_str!("../../../server/src/handler/config/settings.rs");

/// The handler kinds, in the order the reference lists them.
const KINDS: [HandlerKind; 6] = [
    HandlerKind::Echo,
    HandlerKind::Sim,
    HandlerKind::Grpc,
    HandlerKind::Http,
    HandlerKind::Kserve,
    HandlerKind::HttpEach,
];

/// Largest whole number and duration (µs) tried for an upper bound.
const TRY_MAX: u64 = 1 << 53;

/// A field of a config struct, as its source declares it.
#[derive(Debug)]
struct Declared {
    name: String,
    ty: String,
    help: String,
}

/// The fields of `pub struct NAME` in `src` with their doc comments
/// (fields serde skips left out).
fn declared(src: &str, name: &str) -> Vec<Declared> {
    let head = format!("pub struct {name} {{");
    let mut out = Vec::new();
    let mut lines = src.lines().skip_while(|l| l.trim() != head).skip(1);
    let (mut doc, mut attrs, mut depth) = (Vec::<String>::new(), String::new(), 0i32);
    for line in lines.by_ref() {
        let t = line.trim();
        if t == "}" && depth == 0 {
            break;
        }
        if depth > 0 || t.starts_with("#[") {
            attrs.push_str(t);
            depth += t.matches('[').count() as i32 - t.matches(']').count() as i32;
            continue;
        }
        if let Some(text) = t.strip_prefix("///") {
            doc.push(text.trim().to_owned());
            continue;
        }
        let field = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub "));
        if let Some((field, ty)) = field.and_then(|f| f.split_once(": ")) {
            let skipped = attrs.contains("skip)") || attrs.contains("skip,");
            if !skipped {
                out.push(Declared {
                    name: field.to_owned(),
                    ty: ty.trim_end_matches(',').to_owned(),
                    help: doc.join(" "),
                });
            }
            doc.clear();
            attrs.clear();
        }
    }
    out
}

/// A Rust type as the config writes its values.
fn type_text(ty: &str) -> String {
    if let Some(inner) = ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
        return format!("{} (optional)", type_text(inner));
    }
    let last = ty.rsplit("::").next().unwrap_or(ty);
    match last {
        "Duration" => "duration".to_owned(),
        "SocketAddr" => "address".to_owned(),
        "PathBuf" => "path".to_owned(),
        "bool" => "bool".to_owned(),
        "String" => "string".to_owned(),
        "usize" | "u32" | "u64" => "integer".to_owned(),
        t if t.starts_with("Vec<") => "list".to_owned(),
        t if t.starts_with("BTreeMap<") => "table".to_owned(),
        "LogFormat" | "StoreKind" | "HandlerKind" | "Encoding" => "name".to_owned(),
        "Rate" => "rate".to_owned(),
        _ => "table".to_owned(),
    }
}

/// The policy field kinds (see `policy_fields!`) as types.
fn kind_text(kind: &str) -> &'static str {
    match kind {
        "count" | "bytes" | "levels" | "amount" => "integer",
        "micros" | "millis" => "duration",
        "flag" => "bool",
        "mode" | "name" => "name",
        "text" => "string",
        "sizes" | "bounds" => "list",
        _ => "table",
    }
}

/// `value` of a TOML table as the reference shows it (unset when absent).
fn shown(table: &toml::Table, field: &str) -> String {
    table
        .get(field)
        .map_or_else(|| "unset".to_owned(), |v| format!("`{v}`"))
}

/// Whether the config `toml` reads and validates.
fn accepted(toml: &str) -> bool {
    Config::from_toml(toml).is_ok_and(|c| c.validate().is_ok())
}

/// A default as a whole number (a duration in µs).
fn number(default: Option<&toml::Value>) -> Option<u64> {
    match default? {
        toml::Value::Integer(n) => u64::try_from(*n).ok(),
        toml::Value::String(s) => humantime::parse_duration(s)
            .ok()
            .and_then(|d| u64::try_from(d.as_micros()).ok()),
        _ => None,
    }
}

/// A duration of `us` microseconds in the largest unit that writes it
/// whole, as the config reads it.
fn duration_text(us: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (86_400_000_000, "d"),
        (3_600_000_000, "h"),
        (60_000_000, "m"),
        (1_000_000, "s"),
        (1_000, "ms"),
    ];
    if us == 0 {
        return "0s".to_owned();
    }
    UNITS
        .iter()
        .find(|(unit, _)| us.is_multiple_of(*unit))
        .map_or_else(
            || format!("{us}us"),
            |(unit, name)| format!("{}{name}", us / unit),
        )
}

/// The bounds validation puts on a whole number or a duration written
/// into `wrap` (which places `{}` where the value goes), searched from its
/// default: "1 ..= 1024", "≥ 0", or none when it is neither.
fn bounds(ty: &str, default: Option<&toml::Value>, wrap: &dyn Fn(&str) -> String) -> String {
    let duration = ty == "duration";
    if ty != "integer" && !duration {
        return String::new();
    }
    let value = |n: u64| {
        if duration {
            format!("\"{n}us\"")
        } else {
            n.to_string()
        }
    };
    let ok = |n: u64| accepted(&wrap(&value(n)));
    // Some value must pass for the bounds to mean anything.
    let tried = number(default).into_iter().chain([1, 0, 1_000, 1_000_000]);
    let Some(mut inside) = tried.into_iter().find(|&n| ok(n)) else {
        return String::new();
    };
    let low = if ok(0) {
        0
    } else {
        // The smallest accepted: between 0 (refused) and `inside`.
        let (mut lo, mut hi) = (0, inside);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if ok(mid) { hi = mid } else { lo = mid }
        }
        hi
    };
    let high = if ok(TRY_MAX) {
        None
    } else {
        let mut refused = TRY_MAX;
        while refused - inside > 1 {
            let mid = inside + (refused - inside) / 2;
            if ok(mid) { inside = mid } else { refused = mid }
        }
        Some(inside)
    };
    let text = |n: u64| {
        if duration {
            duration_text(n)
        } else {
            n.to_string()
        }
    };
    match high {
        Some(high) => format!("{} ..= {}", text(low), text(high)),
        None => format!("≥ {}", text(low)),
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A section's table of declared fields.
fn section(
    out: &mut String,
    title: &str,
    intro: &str,
    fields: &[Declared],
    defaults: &toml::Table,
    wrap: &dyn Fn(&str, &str) -> String,
) {
    let _ = writeln!(out, "## {title}\n\n{intro}\n");
    let _ = writeln!(out, "| field | type | default | bounds | help |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for f in fields {
        let ty = type_text(&f.ty);
        let bounds = bounds(&ty, defaults.get(&f.name), &|v| wrap(&f.name, v));
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            f.name,
            ty,
            cell(&shown(defaults, &f.name)),
            bounds,
            cell(&f.help)
        );
    }
    out.push('\n');
}

fn table_of<T: serde::Serialize>(value: &T) -> toml::Table {
    toml::Table::try_from(value).unwrap_or_default()
}

/// The reference, as Markdown.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated by `batchgate config-reference` from the code (do not edit:\n\
         CI fails when this file differs from what it prints). Help is each\n\
         field's doc comment; the default is what the embedded defaults print\n\
         (`unset`: none); bounds are what validation accepts, each field alone\n\
         with the others at their defaults. How the file is read, reloaded and\n\
         overridden: [configuration.md](configuration.md).\n\n",
    );
    let server = table_of(&ServerConfig::default());
    section(
        &mut out,
        "`[server]`",
        "Listeners, transport limits and the control token. A change needs a restart (a reload logs it and keeps the running values).",
        &declared(SERVER_SRC, "ServerConfig"),
        &server,
        &|f, v| format!("[server]\n{f} = {v}\n"),
    );
    section(
        &mut out,
        "`[server.tls]`",
        "TLS for the gRPC and control listeners (PEM files). A change needs a restart.",
        &declared(TLS_SRC, "TlsConfig"),
        &toml::Table::new(),
        &|_, _| String::new(),
    );
    let jobs = table_of(&JobsConfig::default());
    section(
        &mut out,
        "`[jobs]`",
        "Present: the Jobs service is on. A change needs a restart.",
        &declared(JOBS_SRC, "JobsConfig"),
        &jobs,
        &|f, v| format!("[jobs]\n{f} = {v}\n"),
    );
    let nats = jobs
        .get("nats")
        .and_then(toml::Value::as_table)
        .cloned()
        .unwrap_or_default();
    section(
        &mut out,
        "`[jobs.nats]`",
        "The NATS JetStream store (`store = \"nats\"`). A change needs a restart.",
        &declared(JOBS_SRC, "NatsConfig"),
        &nats,
        &|f, v| format!("[jobs]\nstore = \"nats\"\n[jobs.nats]\n{f} = {v}\n"),
    );
    policy(&mut out);
    handlers(&mut out);
    out
}

/// The queue policy's fields.
fn policy(out: &mut String) {
    let defaults = table_of(&Policy::default());
    let _ = writeln!(
        out,
        "## `[queues.NAME]`: the policy\n\n\
         Written at the top level of a queue's table; `ctl create` and `ctl update`\n\
         take each as a flag (`--max-delay 2ms`). A reload or `UpdateQueue`\n\
         applies a change from the queue's next batch, except `shards` (fixed\n\
         when the queue is created).\n"
    );
    let _ = writeln!(out, "| field | type | default | bounds | help |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for f in POLICY_FIELDS {
        let ty = kind_text(f.kind);
        let bounds = bounds(ty, defaults.get(f.name), &|v| {
            format!("[queues.q]\n{} = {v}\n", f.name)
        });
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            f.name,
            ty,
            cell(&shown(&defaults, f.name)),
            bounds,
            cell(f.help)
        );
    }
    out.push('\n');
}

/// The handler's fields, kind by kind.
fn handlers(out: &mut String) {
    let docs = declared(HANDLER_SRC, "HandlerConfig");
    let _ = writeln!(
        out,
        "## `handler = {{ kind = ... }}`\n\n\
         A queue's handler, one kind and that kind's fields (a field of another\n\
         kind is refused). A reload or `UpdateQueue` with a handler swaps it:\n\
         batches in flight finish on the old one.\n"
    );
    for kind in KINDS {
        let defaults = table_of(&HandlerConfig::of(kind));
        let _ = writeln!(out, "### `kind = \"{}\"`\n", kind.as_str());
        let fields = fields_of(kind);
        if fields.is_empty() {
            let _ = writeln!(out, "No fields besides `kind`.\n");
            continue;
        }
        let _ = writeln!(out, "| field | type | default | bounds | help |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for name in fields {
            let Some(doc) = docs.iter().find(|d| d.name == *name) else {
                continue;
            };
            let ty = type_text(&doc.ty);
            let base = base_handler(kind);
            let bounds = bounds(&ty, defaults.get(*name), &|v| {
                format!(
                    "[queues.q]\n{}handler = {{ kind = \"{}\"{base}, {name} = {v} }}\n",
                    v2_of(kind),
                    kind.as_str()
                )
            });
            let _ = writeln!(
                out,
                "| `{name}` | {ty} | {} | {bounds} | {} |",
                cell(&shown(&defaults, name)),
                cell(&doc.help)
            );
        }
        out.push('\n');
    }
}

/// What a handler of `kind` needs besides the field tried.
fn base_handler(kind: HandlerKind) -> &'static str {
    match kind {
        HandlerKind::Grpc | HandlerKind::Http | HandlerKind::Kserve => {
            ", endpoints = [\"http://127.0.0.1:1\"]"
        }
        HandlerKind::HttpEach => ", url = \"http://127.0.0.1:1/x\"",
        HandlerKind::Echo | HandlerKind::Sim => "",
    }
}

/// The `v2` declaration a `kserve` queue needs.
fn v2_of(kind: HandlerKind) -> &'static str {
    match kind {
        HandlerKind::Kserve => {
            "v2 = { inputs = [{ name = \"x\", datatype = \"FP32\", shape = [1] }], outputs = [{ name = \"y\", datatype = \"FP32\", shape = [1] }] }\n"
        }
        _ => "",
    }
}
