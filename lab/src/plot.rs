//! The suite's plots (`plotters`, SVG and PNG): each implementation's median against its
//! workload's baseline (`Box`, or `clox` for the Lox programs), with the runs' range as a
//! whisker, for wall time and for peak RSS; cost curves (time against memory); and line charts
//! on linear, logarithmic or "nines" axes for the runs' detailed data (latency percentiles,
//! MMU, pause histograms, the heap over time).
//!
//! Text needs a TrueType font, read at run time from the usual system locations (DejaVu or
//! Liberation Sans); without one the plots are skipped with a message, the figures are not.

use std::path::Path;

use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

/// One bar: an implementation's median and the runs' minimum and maximum, as ratios.
pub struct Bar {
    pub implementation: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The bars of one workload.
pub struct Group {
    pub workload: String,
    pub bars: Vec<Bar>,
}

const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// Register a system font as "sans-serif" (once per process); false if none was found.
pub fn load_font() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        FONT_PATHS.iter().any(|p| {
            std::fs::read(p).is_ok_and(|bytes| {
                // Registered once for the process, which needs it to its end.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

/// Colours by implementation (and for the timeline's goal and trigger), the same in every plot.
fn colour(implementation: &str) -> RGBColor {
    match implementation {
        "gc-core" => RGBColor(0x1f, 0x77, 0xb4),
        "go" => RGBColor(0x2c, 0xa0, 0x2c),
        "box" => RGBColor(0x7f, 0x7f, 0x7f),
        "clox" => RGBColor(0xff, 0x7f, 0x0e),
        "gc-arena" => RGBColor(0x94, 0x67, 0xbd),
        "dumpster" => RGBColor(0x8c, 0x56, 0x4b),
        "rust-gc" => RGBColor(0xe3, 0x77, 0xc2),
        "sandpit" => RGBColor(0xbc, 0xbd, 0x22),
        // Quantities of the heap timeline and the pacer lab.
        "goal" => RGBColor(0xd6, 0x27, 0x28),
        "trigger" => RGBColor(0xff, 0x7f, 0x0e),
        "heap" => RGBColor(0x1f, 0x77, 0xb4),
        "marked" => RGBColor(0x94, 0x67, 0xbd),
        "limit" => RGBColor(0x00, 0x00, 0x00),
        "rss" => RGBColor(0x8c, 0x56, 0x4b),
        "target" => RGBColor(0x7f, 0x7f, 0x7f),
        "utilisation" => RGBColor(0x2c, 0xa0, 0x2c),
        "b" => RGBColor(0xe3, 0x77, 0xc2),
        _ => RGBColor(0x17, 0xbe, 0xcf),
    }
}

/// Draw with `$draw` (an expression of the drawing area `$root`) into `<stem>.svg` and
/// `<stem>.png`, `$size` pixels; the function returns `Ok(())` or the first error with its file.
macro_rules! svg_and_png {
    ($stem:expr, $size:expr, |$root:ident| $draw:expr) => {{
        let svg = $stem.with_extension("svg");
        {
            let $root = SVGBackend::new(&svg, $size).into_drawing_area();
            $draw
        }
        .map_err(|e| format!("{}: {e}", svg.display()))?;
        let png = $stem.with_extension("png");
        {
            let $root = BitMapBackend::new(&png, $size).into_drawing_area();
            $draw
        }
        .map_err(|e| format!("{}: {e}", png.display()))?;
        Ok(())
    }};
}

/// The series' legend at `at`, then the drawing finished.
fn legend_and_present<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    root: &DrawingArea<DB, Shift>,
    at: SeriesLabelPosition,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(at)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Grouped bars of `groups` into `<stem>.svg` and `<stem>.png`.
pub fn bars(stem: &Path, title: &str, y_desc: &str, groups: &[Group]) -> Result<(), String> {
    svg_and_png!(stem, (1100, 600), |root| draw(root, title, y_desc, groups))
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    groups: &[Group],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let implementations: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for g in groups {
            for b in &g.bars {
                if !v.contains(&b.implementation.as_str()) {
                    v.push(&b.implementation);
                }
            }
        }
        v
    };
    let top = groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.max.max(b.median)))
        .fold(1.0f64, f64::max)
        * 1.1;
    let n = groups.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(y_desc)
        .draw()?;
    // Workload names under their groups, in pixels below the axis.
    for (k, g) in groups.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(k as f64 + 0.5, 0.0));
        root.draw(&Text::new(
            g.workload.clone(),
            (px, py + 8),
            ("sans-serif", 13).into_font().into_text_style(&root).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Top,
                ),
            ),
        ))?;
    }
    // The baseline, ratio 1.
    chart.draw_series(LineSeries::new(
        [(0.0, 1.0), (n, 1.0)],
        BLACK.mix(0.5).stroke_width(1),
    ))?;
    let slots = implementations.len().max(1) as f64;
    let width = 0.8 / slots;
    for (j, imp) in implementations.iter().enumerate() {
        let c = colour(imp);
        let mut rects = Vec::new();
        let mut whiskers = Vec::new();
        for (k, g) in groups.iter().enumerate() {
            if let Some(b) = g.bars.iter().find(|b| b.implementation == *imp) {
                let x0 = k as f64 + 0.1 + j as f64 * width;
                let x1 = x0 + width * 0.9;
                rects.push(Rectangle::new([(x0, 0.0), (x1, b.median)], c.filled()));
                let xm = (x0 + x1) / 2.0;
                whiskers.push(PathElement::new(
                    vec![(xm, b.min), (xm, b.max)],
                    BLACK.stroke_width(2),
                ));
            }
        }
        chart
            .draw_series(rects)?
            .label(*imp)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        chart.draw_series(whiskers)?;
    }
    legend_and_present(&mut chart, &root, SeriesLabelPosition::UpperLeft)
}

/// A point of a cost curve: peak RSS (x) and a cost (y) at one setting (`label`).
pub struct Point {
    pub label: String,
    pub x: f64,
    pub y: f64,
}

/// One implementation's cost curve.
pub struct Curve {
    pub implementation: String,
    pub points: Vec<Point>,
}

/// Cost curves (a cost, described by `y_desc`, against memory, one line per implementation,
/// each point labelled with its setting) into `<stem>.svg` and `<stem>.png`.
pub fn curves(stem: &Path, title: &str, y_desc: &str, lines: &[Curve]) -> Result<(), String> {
    svg_and_png!(stem, (900, 600), |root| draw_curves(
        root, title, y_desc, lines
    ))
}

fn draw_curves<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    lines: &[Curve],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let finite = |v: f64| v.is_finite();
    let xs = lines
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.x))
        .filter(|v| finite(*v));
    let ys = lines
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.y))
        .filter(|v| finite(*v));
    let x_max = xs.fold(1.0f64, f64::max) * 1.1;
    let y_max = ys.fold(0.1f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("peak RSS (MiB)")
        .y_desc(y_desc)
        .draw()?;
    for c in lines {
        let col = colour(&c.implementation);
        let mut pts: Vec<(f64, f64)> = c
            .points
            .iter()
            .filter(|p| finite(p.x) && finite(p.y))
            .map(|p| (p.x, p.y))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))?
            .label(c.implementation.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], col.filled()));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 5, col.filled())))?;
        for p in c.points.iter().filter(|p| finite(p.x) && finite(p.y)) {
            if !p.label.is_empty() {
                chart.draw_series(std::iter::once(Text::new(
                    p.label.clone(),
                    (p.x, p.y),
                    ("sans-serif", 12).into_font(),
                )))?;
            }
        }
    }
    legend_and_present(&mut chart, &root, SeriesLabelPosition::UpperRight)
}

/// How an axis maps values.
#[derive(Clone, Copy, PartialEq)]
pub enum Scale {
    Linear,
    /// Powers of ten equally spaced (values ≤ 0 are left out).
    Log,
    /// Quantiles by their nines: 90 %, 99 %, 99.9 %, … equally spaced (`−log10(1 − q)`;
    /// quantile 1, the maximum, is left out).
    Nines,
}

impl Scale {
    fn map(self, v: f64) -> Option<f64> {
        let m = match self {
            Scale::Linear => v,
            Scale::Log if v > 0.0 => v.log10(),
            Scale::Nines if v < 1.0 => -(1.0 - v).log10(),
            _ => return None,
        };
        m.is_finite().then_some(m)
    }

    fn label(self, m: f64) -> String {
        let trim = |v: f64| {
            let s = format!("{v:.6}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        };
        // Log and nines axes are labelled at whole powers of ten only.
        if self != Scale::Linear && (m - m.round()).abs() > 1e-9 {
            return String::new();
        }
        match self {
            Scale::Linear => trim(m),
            Scale::Log => trim(10f64.powf(m.round())),
            Scale::Nines => format!("{}%", trim(100.0 * (1.0 - 10f64.powf(-m.round())))),
        }
    }
}

/// An axis: its description and scale.
pub struct Axis {
    pub desc: &'static str,
    pub scale: Scale,
}

/// One line of a chart: an implementation's (or a quantity's) points, dashed or not.
pub struct Series {
    pub name: String,
    /// The implementation (or timeline quantity) whose colour the line takes.
    pub colour_of: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// A line chart.
pub struct LineChart {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    /// The y axis starts at zero (else at the data's minimum).
    pub y_from_zero: bool,
    pub series: Vec<Series>,
}

/// `chart` into `<stem>.svg` and `<stem>.png`.
pub fn lines(stem: &Path, chart: &LineChart) -> Result<(), String> {
    svg_and_png!(stem, (900, 560), |root| draw_panels(
        root,
        std::slice::from_ref(chart)
    ))
}

/// `charts` stacked top to bottom in one figure, into `<stem>.svg` and `<stem>.png`.
pub fn panels(stem: &Path, charts: &[LineChart]) -> Result<(), String> {
    let height = 40 + 330 * charts.len() as u32;
    svg_and_png!(stem, (1000, height), |root| draw_panels(root, charts))
}

fn draw_panels<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    charts: &[LineChart],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let areas = root.split_evenly((charts.len().max(1), 1));
    for (area, c) in areas.iter().zip(charts) {
        draw_lines(area, c)?;
    }
    root.present()?;
    Ok(())
}

fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &LineChart,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let mapped: Vec<Vec<(f64, f64)>> = c
        .series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .filter_map(|&(x, y)| Some((c.x.scale.map(x)?, c.y.scale.map(y)?)))
                .collect()
        })
        .collect();
    let all = || mapped.iter().flatten();
    let bounds = |v: &mut dyn Iterator<Item = f64>| {
        v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        })
    };
    let (mut x0, mut x1) = bounds(&mut all().map(|p| p.0));
    let (mut y0, mut y1) = bounds(&mut all().map(|p| p.1));
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if c.y_from_zero {
        y0 = y0.min(0.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let pad = (y1 - y0) * 0.05;
    let mut chart = ChartBuilder::on(root)
        .caption(&c.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            x0..x1,
            (y0 - if c.y_from_zero { 0.0 } else { pad })..(y1 + pad),
        )?;
    let (xs, ys) = (c.x.scale, c.y.scale);
    let xf = move |v: &f64| xs.label(*v);
    let yf = move |v: &f64| ys.label(*v);
    chart
        .configure_mesh()
        .x_desc(c.x.desc)
        .y_desc(c.y.desc)
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .draw()?;
    for (s, pts) in c.series.iter().zip(&mapped) {
        let col = colour(&s.colour_of);
        let style = col.stroke_width(2);
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(pts.clone(), 8, 5, style))?
        } else {
            chart.draw_series(LineSeries::new(pts.clone(), style))?
        };
        anno.label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        if pts.len() <= 40 {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, col.filled())))?;
        }
    }
    legend_and_present(&mut chart, root, SeriesLabelPosition::UpperLeft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_map_and_label() {
        assert_eq!(Scale::Log.map(100.0), Some(2.0));
        assert_eq!(Scale::Log.map(0.0), None);
        assert!((Scale::Nines.map(0.999).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(Scale::Nines.map(1.0), None);
        assert_eq!(Scale::Nines.label(3.0), "99.9%");
        assert_eq!(Scale::Log.label(-1.0), "0.1");
        assert_eq!(Scale::Linear.label(2.5), "2.5");
        assert_eq!(Scale::Log.label(0.5), "", "no label between powers of ten");
    }
}
