//! The `/metrics` text merged from several recorders, family by family.

use std::{collections::BTreeMap, fmt::Write as _};

use super::names;

/// Metric families gathered from several recorders' expositions, each
/// written once: its HELP and TYPE, then every recorder's samples.
#[derive(Debug, Default)]
pub(super) struct Families {
    /// By name: the TYPE line and the samples.
    by_name: BTreeMap<String, (String, String)>,
}

impl Families {
    /// Adds one recorder's exposition (families as blocks, each a TYPE
    /// line, maybe a HELP line before it, and its samples).
    pub(super) fn add(&mut self, text: &str) {
        let mut current: Option<&mut (String, String)> = None;
        for line in text.lines() {
            if line.starts_with("# HELP ") {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or(rest);
                let family = self
                    .by_name
                    .entry(name.to_owned())
                    .or_insert_with(|| (line.to_owned(), String::new()));
                current = Some(family);
                continue;
            }
            if line.is_empty() {
                continue;
            }
            if let Some((_, samples)) = current.as_deref_mut() {
                samples.push_str(line);
                samples.push('\n');
            }
        }
    }

    /// The merged exposition.
    pub(super) fn render(&self) -> String {
        let mut out = String::new();
        for (name, (type_line, samples)) in &self.by_name {
            if let Some(help) = names::help_of(name) {
                let _ = writeln!(out, "# HELP {name} {help}");
            }
            let _ = writeln!(out, "{type_line}");
            out.push_str(samples);
            out.push('\n');
        }
        out
    }
}
