//! `batchgate bench-chart`: latency against throughput for each series of a
//! benchmark suite, as an SVG.
//!
//! Input is the JSON lines `batchgate bench --json` printed. A report's
//! series is its label up to the first `/` (`batchgate-unary/c=64` belongs
//! to `batchgate-unary`); each series is one line, point by point.

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

fn draw(reports: &[Report], args: &ChartArgs) -> Result<(), String> {
    let mut series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.items > 0) {
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
