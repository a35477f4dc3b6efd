//! The suite's plots (`plotters`, SVG and PNG): each implementation's median against its
//! workload's baseline (`Box`, or `clox` for the Lox programs), with the runs' range as a
//! whisker, for wall time and for peak RSS.
//!
//! Text needs a TrueType font, read at run time from the usual system locations (DejaVu or
//! Liberation Sans); without one the plots are skipped with a message, the figures are not.

use std::path::Path;

use plotters::coord::Shift;
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

/// Register a system font as "sans-serif"; false if none was found.
pub fn load_font() -> bool {
    for p in FONT_PATHS {
        if let Ok(bytes) = std::fs::read(p) {
            // Registered once for the process, which needs it to its end.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

/// Colours by implementation, the same in every plot.
fn colour(implementation: &str) -> RGBColor {
    match implementation {
        "gc-core" => RGBColor(0x1f, 0x77, 0xb4),
        "go" => RGBColor(0x2c, 0xa0, 0x2c),
        "box" => RGBColor(0x7f, 0x7f, 0x7f),
        "clox" => RGBColor(0xff, 0x7f, 0x0e),
        _ => RGBColor(0x94, 0x67, 0xbd),
    }
}

/// Grouped bars of `groups` into `<stem>.svg` and `<stem>.png`.
pub fn bars(stem: &Path, title: &str, y_desc: &str, groups: &[Group]) -> Result<(), String> {
    let size = (1100, 600);
    let svg = stem.with_extension("svg");
    draw(
        SVGBackend::new(&svg, size).into_drawing_area(),
        title,
        y_desc,
        groups,
    )
    .map_err(|e| format!("{}: {e}", svg.display()))?;
    let png = stem.with_extension("png");
    draw(
        BitMapBackend::new(&png, size).into_drawing_area(),
        title,
        y_desc,
        groups,
    )
    .map_err(|e| format!("{}: {e}", png.display()))?;
    Ok(())
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
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// A point of a cost curve: peak RSS (x) and wall time (y) at one setting (`label`).
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

/// Cost curves (time against memory, one line per implementation, each point labelled with its
/// setting) into `<stem>.svg` and `<stem>.png`.
pub fn curves(stem: &Path, title: &str, lines: &[Curve]) -> Result<(), String> {
    let size = (900, 600);
    let svg = stem.with_extension("svg");
    draw_curves(
        SVGBackend::new(&svg, size).into_drawing_area(),
        title,
        lines,
    )
    .map_err(|e| format!("{}: {e}", svg.display()))?;
    let png = stem.with_extension("png");
    draw_curves(
        BitMapBackend::new(&png, size).into_drawing_area(),
        title,
        lines,
    )
    .map_err(|e| format!("{}: {e}", png.display()))?;
    Ok(())
}

fn draw_curves<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
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
        .y_desc("wall time (s)")
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
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
