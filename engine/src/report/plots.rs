//! The report's plots, as SVG (`plotters`' SVG backend: text stays text, no fonts needed):
//!
//! - `mu_vs_m_<benchmark>.svg` per benchmark and `mu_vs_m_mean.svg` over benchmarks: mu against
//!   the pool size m (log axis), one line per router with its intervals as error bars, the
//!   oracle and random bounds dashed: the paper's "model-level scaling" picture;
//! - `vb_heatmap.svg`: V_B per router (rows) and benchmark (columns), averaged over the
//!   benchmark's pools, the value written in each cell.
//!
//! The legend sits in its own column to the right of the plot, so it never covers a line.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::eval::metrics::{self, Metrics};
use crate::eval::run::EvalResult;
use crate::report::analysis::Analysis;
use crate::report::first_seen;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 560;
const LEGEND_WIDTH: u32 = 230;

/// A point of a scaling plot: m, mu and mu's interval.
type Point = (f64, f64, Option<(f64, f64)>);

/// One line of a scaling plot: a router's (m, mu, interval) points.
struct Series {
    name: String,
    bound: bool,
    points: Vec<Point>,
}

/// A file-name-safe version of a benchmark's name.
fn file_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if s.is_empty() { "_".into() } else { s }
}

/// The rows of `router` on `bench` with pool size `m`, when all succeeded.
fn cell_rows(results: &[EvalResult], bench: &str, m: usize, router: &str) -> Option<Vec<usize>> {
    let rows: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.benchmark == bench && r.m == m && r.router == router)
        .map(|(i, _)| i)
        .collect();
    (!rows.is_empty() && rows.iter().all(|&i| results[i].is_ok())).then_some(rows)
}

fn mean_of(results: &[EvalResult], rows: &[usize]) -> Option<Metrics> {
    let ms: Vec<Metrics> = rows
        .iter()
        .filter_map(|&i| results[i].metrics().copied())
        .collect();
    metrics::mean(&ms)
}

/// One series per router (those with no point left out), a point per pool size where
/// `point(router, m)` gives mu and its interval.
fn series_of(
    routers: &[(String, bool)],
    sizes: &[usize],
    point: impl Fn(&str, usize) -> Option<(f64, Option<(f64, f64)>)>,
) -> Vec<Series> {
    routers
        .iter()
        .map(|(name, bound)| Series {
            name: name.clone(),
            bound: *bound,
            points: sizes
                .iter()
                .filter_map(|&m| point(name, m).map(|(mu, ci)| (m as f64, mu, ci)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

/// The color of series `i` (bounds are drawn in grey whatever their index).
fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(127, 127, 127),
    ];
    COLORS[i % COLORS.len()]
}

fn bound_color(i: usize) -> RGBColor {
    [
        RGBColor(0, 0, 0),
        RGBColor(110, 110, 110),
        RGBColor(170, 170, 170),
    ][i % 3]
}

/// Writes the plots of `results` into `dir` (created if missing); returns the files written.
///
/// # Errors
/// The directory or a file cannot be written.
pub fn write_plots(
    results: &[EvalResult],
    analysis: &Analysis,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the plots directory `{}`", dir.display()))?;
    let benches = first_seen(results.iter().map(|r| r.benchmark.clone()));
    let routers = {
        let mut rs = first_seen(results.iter().map(|r| (r.router.clone(), r.is_bound())));
        rs.sort_by_key(|&(_, b)| b);
        rs
    };
    let mut sizes = first_seen(results.iter().map(|r| r.m));
    sizes.sort_unstable();
    let mut written = Vec::new();
    for bench in &benches {
        let series = series_of(&routers, &sizes, |name, m| {
            let rows = cell_rows(results, bench, m, name)?;
            let mu = mean_of(results, &rows)?.mu;
            Some((mu, analysis.mean_interval(&rows)))
        });
        let path = dir.join(format!("mu_vs_m_{}.svg", file_safe(bench)));
        scaling_plot(&path, &format!("{bench}: mu against pool size"), &series)?;
        written.push(path);
    }
    if benches.len() > 1 {
        let series = series_of(&routers, &sizes, |name, m| {
            let cells: Vec<Vec<usize>> = benches
                .iter()
                .filter_map(|b| cell_rows(results, b, m, name))
                .collect();
            if cells.is_empty() {
                return None;
            }
            let mus: Vec<f64> = cells
                .iter()
                .filter_map(|c| mean_of(results, c).map(|m| m.mu))
                .collect();
            let mu = mus.iter().sum::<f64>() / mus.len() as f64;
            Some((mu, analysis.mean_of_means_interval(&cells)))
        });
        let path = dir.join("mu_vs_m_mean.svg");
        scaling_plot(
            &path,
            &format!(
                "Mean over {} benchmarks: mu against pool size",
                benches.len()
            ),
            &series,
        )?;
        written.push(path);
    }
    let path = dir.join("vb_heatmap.svg");
    heatmap(&path, results, &benches, &routers)?;
    written.push(path);
    Ok(written)
}

fn legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    entries: &[(String, RGBColor, bool)],
) -> Result<()> {
    let font = ("sans-serif", 15).into_font();
    for (i, (name, c, dashed)) in entries.iter().enumerate() {
        let y = 60 + 24 * i as i32;
        let style = c.stroke_width(2);
        if *dashed {
            for k in 0..3 {
                area.draw(&PathElement::new(
                    vec![(8 + 11 * k, y), (14 + 11 * k, y)],
                    style,
                ))?;
            }
        } else {
            area.draw(&PathElement::new(vec![(8, y), (36, y)], style))?;
            area.draw(&Circle::new((22, y), 3, c.filled()))?;
        }
        let shown = crate::util::clip(&crate::util::terminal_safe(name), 26).to_string();
        area.draw(&Text::new(shown, (44, y - 8), font.clone()))?;
    }
    Ok(())
}

fn scaling_plot(path: &Path, title: &str, series: &[Series]) -> Result<()> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, side) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .flat_map(|p| [p.1, p.2.map_or(p.1, |c| c.0), p.2.map_or(p.1, |c| c.1)])
        })
        .collect();
    let (xmin, xmax) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, &x| {
        (a.0.min(x), a.1.max(x))
    });
    let (ymin, ymax) = ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, &y| {
        (a.0.min(y), a.1.max(y))
    });
    let (xmin, xmax) = if xmin.is_finite() {
        (xmin / 1.25, xmax * 1.25)
    } else {
        (1.0, 10.0)
    };
    let pad = ((ymax - ymin) * 0.08).max(0.01);
    let (ymin, ymax) = if ymin.is_finite() {
        ((ymin - pad).max(0.0), (ymax + pad).min(1.05))
    } else {
        (0.0, 1.0)
    };
    let title = crate::util::terminal_safe(title).into_owned();
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((xmin..xmax).log_scale(), ymin..ymax)?;
    let mut ticks: Vec<f64> = xs.clone();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    // The x ticks are the pool sizes themselves (a log axis's own ticks, 1, 10, 100, would
    // mostly miss them): no generated x labels, a faint guide and a label at each m instead.
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .x_desc("pool size m (log scale)")
        .y_desc("mu (mean test score of the routed model)")
        .y_label_formatter(&|v| format!("{v:.2}"))
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .draw()?;
    for &m in &ticks {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(m, ymin), (m, ymax)],
            RGBColor(225, 225, 225),
        )))?;
        let (px, py) = chart.backend_coord(&(m, ymin));
        plot.draw(&Text::new(
            format!("{m:.0}"),
            (px - 4 * format!("{m:.0}").len() as i32, py + 8),
            ("sans-serif", 13).into_font(),
        ))?;
    }
    // Routers at one m are nudged apart (multiplicatively: even on the log axis) so that their
    // error bars do not hide one another; bounds stay on the tick.
    let routers_n = series.iter().filter(|s| !s.bound).count();
    let mut entries = Vec::new();
    let (mut ri, mut bi) = (0, 0);
    for s in series {
        let (c, dodge) = if s.bound {
            bi += 1;
            (bound_color(bi - 1), 1.0)
        } else {
            ri += 1;
            let k = ri as f64 - 1.0 - (routers_n as f64 - 1.0) / 2.0;
            (color(ri - 1), 1.0 + 0.012 * k)
        };
        let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0 * dodge, p.1)).collect();
        if s.bound {
            chart.draw_series(DashedLineSeries::new(pts.clone(), 7, 5, c.stroke_width(2)))?;
        } else {
            chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?;
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
        }
        chart.draw_series(s.points.iter().filter_map(|&(x, y, ci)| {
            ci.map(|(lo, hi)| ErrorBar::new_vertical(x * dodge, lo, y, hi, c.stroke_width(1), 6))
        }))?;
        let label = if s.bound {
            format!("{} (bound)", s.name)
        } else {
            s.name.clone()
        };
        entries.push((label, c, s.bound));
    }
    legend(&side, &entries)?;
    side.draw(&Text::new(
        "bars: 95% intervals",
        (8, 60 + 24 * entries.len() as i32 + 6),
        ("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90)),
    ))?;
    root.present()
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

fn heatmap(
    path: &Path,
    results: &[EvalResult],
    benches: &[String],
    routers: &[(String, bool)],
) -> Result<()> {
    let rows: Vec<&(String, bool)> = routers.iter().collect();
    let cell = |router: &str, bench: &str| -> Option<f64> {
        let rs: Vec<&EvalResult> = results
            .iter()
            .filter(|r| r.router == router && r.benchmark == bench)
            .collect();
        if rs.is_empty() || rs.iter().any(|r| !r.is_ok()) {
            return None;
        }
        let vbs: Option<Vec<f64>> = rs.iter().map(|r| r.metrics().and_then(|m| m.vb)).collect();
        let vbs = vbs?;
        Some(vbs.iter().sum::<f64>() / vbs.len() as f64)
    };
    let values: Vec<Vec<Option<f64>>> = rows
        .iter()
        .map(|(r, _)| benches.iter().map(|b| cell(r, b)).collect())
        .collect();
    // The scale spans the routers' values (the bounds', far above and below, would wash the
    // routers' differences out); bounds outside it take its end colors.
    let routers_only = rows
        .iter()
        .zip(&values)
        .any(|((_, bound), v)| !bound && v.iter().any(Option::is_some));
    let (lo, hi) = rows
        .iter()
        .zip(&values)
        .filter(|((_, bound), _)| !routers_only || !bound)
        .flat_map(|(_, v)| v.iter().flatten())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |a, &v| {
            (a.0.min(v), a.1.max(v))
        });
    let (lo, hi) = if lo.is_finite() {
        (lo, hi.max(lo + 1e-9))
    } else {
        (0.0, 1.0)
    };
    let cw = 96u32;
    let ch = 30u32;
    let left = 200u32;
    let top = 60u32;
    // Room for the rotated benchmark names (about 7 px a character) and the scale's note.
    let longest = benches
        .iter()
        .map(|b| b.chars().count().min(32))
        .max()
        .unwrap_or(4) as u32;
    let bottom = 60 + 7 * longest;
    let width = (left + cw * benches.len() as u32 + 40).max(520);
    let height = top + ch * rows.len() as u32 + bottom;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        "V_B (mu / best single model), mean over each benchmark's pools",
        (12, 18),
        ("sans-serif", 18).into_font(),
    ))?;
    let label = ("sans-serif", 13).into_font();
    for (j, (name, bound)) in rows.iter().enumerate() {
        let y = (top + ch * j as u32) as i32;
        let mut shown = crate::util::clip(&crate::util::terminal_safe(name), 22).to_string();
        if *bound {
            shown.push_str(" (bound)");
        }
        root.draw(&Text::new(shown, (8, y + 9), label.clone()))?;
        for (i, v) in values[j].iter().enumerate() {
            let x = (left + cw * i as u32) as i32;
            let (fill, text) = match v {
                Some(v) => {
                    let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
                    // White (low) to a deep blue (high); text turns white on dark cells.
                    let c = RGBColor(
                        (255.0 - 200.0 * t) as u8,
                        (255.0 - 150.0 * t) as u8,
                        (255.0 - 60.0 * t) as u8,
                    );
                    (c, format!("{v:.3}"))
                }
                None => (RGBColor(235, 235, 235), "–".to_string()),
            };
            root.draw(&Rectangle::new(
                [(x, y), (x + cw as i32 - 2, y + ch as i32 - 2)],
                fill.filled(),
            ))?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cw as i32 - 2, y + ch as i32 - 2)],
                RGBColor(200, 200, 200),
            ))?;
            let dark = v.is_some_and(|v| (v - lo) / (hi - lo) > 0.6);
            let tc = if dark { WHITE } else { BLACK };
            root.draw(&Text::new(
                text,
                (x + 24, y + 8),
                ("sans-serif", 13).into_font().color(&tc),
            ))?;
        }
    }
    let base = (top + ch * rows.len() as u32 + 8) as i32;
    for (i, b) in benches.iter().enumerate() {
        let x = (left + cw * i as u32) as i32 + cw as i32 / 2 - 6;
        let shown = crate::util::clip(&crate::util::terminal_safe(b), 32).to_string();
        root.draw(&Text::new(
            shown,
            (x, base),
            ("sans-serif", 13)
                .into_font()
                .transform(FontTransform::Rotate90),
        ))?;
    }
    root.draw(&Text::new(
        format!(
            "color scale: {lo:.3} (white) to {hi:.3} (blue){}; grey: failed or undefined",
            if routers_only {
                ", the routers' range (bounds beyond it take its end colors)"
            } else {
                ""
            }
        ),
        (12, height as i32 - 20),
        ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90)),
    ))?;
    root.present()
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}
