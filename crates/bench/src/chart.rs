//! `batchgate bench-chart`: latency against throughput for each series of a
//! benchmark suite, as an SVG.
//!
//! Input is the JSON lines `batchgate bench --json` printed. A report's
//! series is its label up to the first `/` (`batchgate-unary/c=64` belongs
//! to `batchgate-unary`); each series is one line, point by point. A label
//! measured several times is drawn once, as its median run (by items/s,
//! or by p99 latency at a fixed rate).

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode};

use plotters::prelude::*;

use super::report::Report;

/// Flags of `batchgate bench-chart`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChartArgs {
    /// JSON lines of `batchgate bench --json`.
    #[arg(long)]
    pub input: PathBuf,
    /// SVG file to write.
    #[arg(long)]
    pub output: PathBuf,
    /// Chart title.
    #[arg(long, default_value = "batchgate: p99 latency vs throughput")]
    pub title: String,
}

/// Reads the reports of a suite, skipping lines that are not reports.
///
/// # Errors
/// The file cannot be read.
pub fn read_reports(path: &std::path::Path) -> std::io::Result<Vec<Report>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<Report>(line).ok())
        .collect())
}

/// Runs `batchgate bench-chart`.
pub fn run(args: ChartArgs) -> ExitCode {
    let reports = match read_reports(&args.input) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("batchgate bench-chart: {}: {e}", args.input.display());
            return ExitCode::FAILURE;
        }
    };
    match draw(&reports, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("batchgate bench-chart: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One report per label: the median run (the lower middle one of an even
/// count) by items/s, or by p99 latency for an open loop (fixed rate), in
/// the order labels first appear.
fn medians(reports: &[Report]) -> Vec<&Report> {
    let mut order: Vec<&str> = Vec::new();
    let mut runs: BTreeMap<&str, Vec<&Report>> = BTreeMap::new();
    for r in reports {
        let label = r.label.as_str();
        if !runs.contains_key(label) {
            order.push(label);
        }
        runs.entry(label).or_default().push(r);
    }
    order
        .into_iter()
        .filter_map(|label| {
            let mut reps = runs.remove(label)?;
            let key = |r: &Report| {
                if r.rate > 0.0 {
                    r.latency_us.p99 as f64
                } else {
                    r.items_per_sec
                }
            };
            reps.sort_by(|a, b| key(a).total_cmp(&key(b)));
            Some(reps[(reps.len() - 1) / 2])
        })
        .collect()
}

fn draw(reports: &[Report], args: &ChartArgs) -> Result<(), String> {
    let mut series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for r in medians(reports).into_iter().filter(|r| r.items > 0) {
        let name = r.label.split('/').next().unwrap_or(&r.label);
        let p99_ms = (r.latency_us.p99 as f64 / 1000.0).max(0.001);
        series
            .entry(name)
            .or_default()
            .push((r.items_per_sec.max(1.0), p99_ms));
    }
    if series.is_empty() {
        return Err("no reports with items in the input".into());
    }
    let (mut x_max, mut y_min, mut y_max) = (10.0f64, f64::MAX, 0.0f64);
    for points in series.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        for &(x, y) in points.iter() {
            x_max = x_max.max(x);
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
    }
    let root = SVGBackend::new(&args.output, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&args.title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (100f64..x_max * 2.0).log_scale(),
            ((y_min / 2.0).max(0.001)..y_max * 2.0).log_scale(),
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("items per second (log)")
        .y_desc("p99 latency, ms (log)")
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(label: &str, rate: f64, items_per_sec: f64, p99: u64) -> Report {
        let line = format!(
            r#"{{"label":"{label}","mode":"unary","queue":"q","concurrency":1,"connections":1,"streams":0,"rate":{rate},"payload_bytes":16,"seconds":1.0,"items":1,"errors":{{}},"items_per_sec":{items_per_sec},"latency_us":{{"p50":1,"p90":1,"p99":{p99},"p999":1,"max":1,"mean":1.0}},"batch_size":{{"mean":1.0,"p50":1,"max":1}},"client_cpu_percent":1.0}}"#
        );
        serde_json::from_str(&line).expect("a report")
    }

    fn run(label: &str, items_per_sec: f64) -> Report {
        point(label, 0.0, items_per_sec, 1)
    }

    #[test]
    fn an_open_loop_label_is_drawn_as_its_median_p99() {
        let reports = [
            point("open/half", 100.0, 100.0, 900),
            point("open/half", 100.0, 99.0, 300),
            point("open/half", 100.0, 101.0, 500),
        ];
        let picked = medians(&reports);
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].latency_us.p99, 500);
    }

    #[test]
    fn each_label_is_drawn_once_as_its_median_run() {
        let reports = [
            run("a/1", 30.0),
            run("b/1", 5.0),
            run("a/1", 10.0),
            run("a/1", 20.0),
            run("b/1", 7.0),
        ];
        let picked: Vec<_> = medians(&reports)
            .iter()
            .map(|r| (r.label.as_str(), r.items_per_sec))
            .collect();
        assert_eq!(picked, [("a/1", 20.0), ("b/1", 5.0)]);
    }
}
