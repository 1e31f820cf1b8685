//! PNG plots with plotters (pure Rust: bitmap backend and an embedded DejaVu Sans font,
//! no system libraries): line charts with an optional log scale, and weighted particle
//! scatter plots (marker area proportional to weight, empty particles hollow) with
//! optional density contours drawn as a shaded background.

use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // Registration only fails on a malformed font, and the font is embedded.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn perr<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Other(format!("{}: plotting failed: {e}", path.display()))
}

/// Whether a line-chart point can be drawn: finite, and positive on a log axis.
fn plottable(log_y: bool) -> impl Fn(&&(f64, f64)) -> bool {
    move |(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0)
}

/// The corner of the plot area for a line chart's legend: the one whose box the curves
/// cross least, so that the legend hides as little data as possible.
///
/// `series` are the curves in plot coordinates normalised to `[0, 1]^2` (x right, y up);
/// each segment is sampled at 64 points, so a line crossing a corner counts even without a
/// vertex there. The legend box is `bw x bh` (fractions of the plot area). Ties keep the
/// order upper right, upper left, lower right, lower left. Returns an index into
/// [`LEGEND_CORNERS`].
pub fn legend_corner(series: &[Vec<(f64, f64)>], bw: f64, bh: f64) -> usize {
    let boxes = [
        (1.0 - bw, 1.0, 1.0 - bh, 1.0),
        (0.0, bw, 1.0 - bh, 1.0),
        (1.0 - bw, 1.0, 0.0, bh),
        (0.0, bw, 0.0, bh),
    ];
    let mut hits = [0usize; 4];
    for pts in series {
        let mut add = |x: f64, y: f64| {
            for (k, b) in boxes.iter().enumerate() {
                if x >= b.0 && x <= b.1 && y >= b.2 && y <= b.3 {
                    hits[k] += 1;
                }
            }
        };
        for w in pts.windows(2) {
            for t in 0..64 {
                let f = t as f64 / 64.0;
                add(
                    w[0].0 + f * (w[1].0 - w[0].0),
                    w[0].1 + f * (w[1].1 - w[0].1),
                );
            }
        }
        if let Some(&(x, y)) = pts.last() {
            add(x, y);
        }
    }
    (0..4).min_by_key(|&k| hits[k]).unwrap_or(0)
}

/// The legend positions [`legend_corner`] chooses from, in its order.
pub const LEGEND_CORNERS: [SeriesLabelPosition; 4] = [
    SeriesLabelPosition::UpperRight,
    SeriesLabelPosition::UpperLeft,
    SeriesLabelPosition::LowerRight,
    SeriesLabelPosition::LowerLeft,
];

/// Legend corner of a line chart drawn with `line_chart`'s 900 x 600 layout.
fn auto_legend(series: &[Series], x0: f64, x1: f64, y0: f64, y1: f64, log_y: bool) -> usize {
    let ty = |y: f64| if log_y { y.log10() } else { y };
    let (ly0, ly1) = (ty(y0), ty(y1));
    let sx = (x1 - x0).abs().max(1e-300);
    let sy = (ly1 - ly0).abs().max(1e-300);
    let norm: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .filter(plottable(log_y))
                .map(|&(x, y)| ((x - x0) / sx, (ty(y) - ly0) / sy))
                .collect()
        })
        .collect();
    // plot area about 790 x 500 px; a legend row about 17 px, the box about 120 px wide
    let longest = series.iter().map(|s| s.name.len()).max().unwrap_or(4) as f64;
    let bw = ((50.0 + 8.0 * longest) / 790.0).min(0.5);
    let bh = ((17.0 * series.len() as f64 + 20.0) / 500.0).min(0.9);
    legend_corner(&norm, bw, bh)
}

/// Colours cycled through for series (twelve, so that a benchmark plot of up to twelve
/// methods gives each its own colour).
pub const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(128, 0, 0),
];

/// One named curve.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points `(x, y)`.
    pub points: Vec<(f64, f64)>,
}

/// Write a line chart to a PNG file (written atomically: rendered to a temporary file,
/// then renamed). With `log_y`, non-positive values are dropped and the y axis is log10.
pub fn line_chart(
    path: impl AsRef<Path>,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[Series],
    log_y: bool,
) -> Result<()> {
    register_font();
    let path = path.as_ref();
    let tmp = tmp_path(path);
    {
        let root = BitMapBackend::new(&tmp, (900, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(perr(path))?;
        let pts: Vec<(f64, f64)> = series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(plottable(log_y))
            .cloned()
            .collect();
        let (x0, x1) = bounds(pts.iter().map(|p| p.0));
        let (mut y0, mut y1) = bounds(pts.iter().map(|p| p.1));
        if log_y {
            y0 = y0.max(1e-300);
            y1 = y1.max(y0 * 10.0);
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 24))
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(80)
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(perr(path))?;
            chart
                .configure_mesh()
                .x_desc(xlabel)
                .y_desc(ylabel)
                .y_label_formatter(&|v| format!("{v:.0e}"))
                .draw()
                .map_err(perr(path))?;
            for (k, s) in series.iter().enumerate() {
                let c = PALETTE[k % PALETTE.len()];
                let data: Vec<(f64, f64)> =
                    s.points.iter().filter(plottable(true)).cloned().collect();
                chart
                    .draw_series(LineSeries::new(data, c.stroke_width(2)))
                    .map_err(perr(path))?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(LEGEND_CORNERS[auto_legend(series, x0, x1, y0, y1, true)].clone())
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(perr(path))?;
        } else {
            let pad = 0.05 * (y1 - y0).abs().max(1e-12);
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 24))
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(80)
                .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
                .map_err(perr(path))?;
            chart
                .configure_mesh()
                .x_desc(xlabel)
                .y_desc(ylabel)
                .draw()
                .map_err(perr(path))?;
            for (k, s) in series.iter().enumerate() {
                let c = PALETTE[k % PALETTE.len()];
                let data: Vec<(f64, f64)> =
                    s.points.iter().filter(plottable(false)).cloned().collect();
                chart
                    .draw_series(LineSeries::new(data, c.stroke_width(2)))
                    .map_err(perr(path))?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                    });
            }
            let corner = auto_legend(series, x0, x1, y0 - pad, y1 + pad, false);
            chart
                .configure_series_labels()
                .position(LEGEND_CORNERS[corner].clone())
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(perr(path))?;
        }
        root.present().map_err(perr(path))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// A set of weighted 2-D points for [`scatter_weighted`].
#[derive(Debug, Clone)]
pub struct WeightedPoints {
    /// Legend label.
    pub name: String,
    /// Points `(x, y, weight)`.
    pub points: Vec<(f64, f64, f64)>,
    /// Draw all markers with the same size (for reference samples).
    pub fixed_size: bool,
}

/// A scalar field on a rectangle, drawn as a shaded background (e.g. a target density).
pub struct Background<'a> {
    /// `f(x, y)`, larger values drawn darker.
    pub f: &'a dyn Fn(f64, f64) -> f64,
    /// Grid resolution per axis.
    pub resolution: usize,
}

/// Write a scatter plot of weighted particles to a PNG file (atomically). Marker area is
/// proportional to weight relative to the largest weight in its set (uniform weights give
/// a medium marker); particles whose weight is below `1e-3 / n` are drawn hollow.
pub fn scatter_weighted(
    path: impl AsRef<Path>,
    title: &str,
    sets: &[WeightedPoints],
    background: Option<Background<'_>>,
    bounds_hint: Option<((f64, f64), (f64, f64))>,
) -> Result<()> {
    register_font();
    let path = path.as_ref();
    let tmp = tmp_path(path);
    {
        let root = BitMapBackend::new(&tmp, (800, 800)).into_drawing_area();
        root.fill(&WHITE).map_err(perr(path))?;
        let ((x0, x1), (y0, y1)) = bounds_hint.unwrap_or_else(|| {
            let (a, b) = bounds(sets.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
            let (c, d) = bounds(sets.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
            let px = 0.05 * (b - a);
            let py = 0.05 * (d - c);
            ((a - px, b + px), (c - py, d + py))
        });
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(perr(path))?;
        chart.configure_mesh().draw().map_err(perr(path))?;
        if let Some(bg) = background {
            let r = bg.resolution.max(2);
            let dx = (x1 - x0) / r as f64;
            let dy = (y1 - y0) / r as f64;
            let mut vals = Vec::with_capacity(r * r);
            for i in 0..r {
                for j in 0..r {
                    let cx = x0 + (i as f64 + 0.5) * dx;
                    let cy = y0 + (j as f64 + 0.5) * dy;
                    vals.push((cx, cy, (bg.f)(cx, cy)));
                }
            }
            let vmax = vals
                .iter()
                .map(|v| v.2)
                .filter(|v| v.is_finite())
                .fold(f64::MIN, f64::max);
            if vmax > 0.0 {
                chart
                    .draw_series(vals.iter().filter(|v| v.2.is_finite()).map(|&(cx, cy, v)| {
                        let t = (v / vmax).clamp(0.0, 1.0);
                        let shade = (255.0 - 120.0 * t) as u8;
                        Rectangle::new(
                            [
                                (cx - dx / 2.0, cy - dy / 2.0),
                                (cx + dx / 2.0, cy + dy / 2.0),
                            ],
                            RGBColor(shade, shade, 255).filled(),
                        )
                    }))
                    .map_err(perr(path))?;
            }
        }
        for (k, s) in sets.iter().enumerate() {
            let c = PALETTE[k % PALETTE.len()];
            let n = s.points.len().max(1) as f64;
            let wmax = s.points.iter().map(|p| p.2).fold(0.0f64, f64::max);
            let uniform = s
                .points
                .iter()
                .all(|p| (p.2 - wmax).abs() <= 1e-12 * wmax.max(1e-300));
            let style_for = |w: f64| -> (i32, bool) {
                if s.fixed_size || uniform {
                    return (3, true);
                }
                if w < 1e-3 / n {
                    return (4, false); // empty particle: hollow
                }
                // area proportional to weight: radius ~ sqrt(w / wmax)
                let r = (12.0 * (w / wmax).max(0.0).sqrt()).max(1.5);
                (r.round() as i32, true)
            };
            chart
                .draw_series(s.points.iter().map(|&(x, y, w)| {
                    let (r, filled) = style_for(w);
                    let st = if filled {
                        c.mix(0.7).filled()
                    } else {
                        c.stroke_width(1)
                    };
                    Circle::new((x, y), r, st)
                }))
                .map_err(perr(path))?
                .label(s.name.clone())
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, c.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(perr(path))?;
        root.present().map_err(perr(path))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn tmp_path(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let _ = std::fs::create_dir_all(dir);
    // keep the .png extension: plotters picks the encoder from it
    dir.join(format!(".tmp{}-{name}", std::process::id()))
}

fn bounds(it: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut a, mut b) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in it.filter(|v| v.is_finite()) {
        a = a.min(v);
        b = b.max(v);
    }
    if !a.is_finite() {
        return (0.0, 1.0);
    }
    if b - a < 1e-12 {
        return (a - 0.5, b + 0.5);
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legend_goes_to_the_emptiest_corner() {
        // Falling lines (top left to bottom right): the upper right is free.
        let falling = vec![vec![(0.0, 1.0), (1.0, 0.0)], vec![(0.0, 0.9), (1.0, 0.1)]];
        assert_eq!(legend_corner(&falling, 0.2, 0.3), 0);
        // Rising lines: upper right and lower left are crossed; upper left is free.
        let rising = vec![vec![(0.0, 0.0), (1.0, 1.0)], vec![(0.0, 0.1), (1.0, 0.9)]];
        assert_eq!(legend_corner(&rising, 0.2, 0.3), 1);
        // Everything high: a lower corner (the first of them in the tie order).
        let high = vec![vec![(0.0, 0.95), (1.0, 0.9)]];
        assert_eq!(legend_corner(&high, 0.2, 0.3), 2);
        // A line ending in the upper right with no vertex inside the lower boxes.
        let hook = vec![
            vec![(0.0, 0.5), (1.0, 1.0)],
            vec![(0.0, 0.6), (0.5, 0.55), (1.0, 0.95)],
        ];
        assert_ne!(legend_corner(&hook, 0.2, 0.3), 0);
        // No data: the default corner.
        assert_eq!(legend_corner(&[], 0.2, 0.3), 0);
    }
}
