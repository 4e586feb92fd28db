//! Line charts as PNG and SVG with an embedded font (DejaVu Sans), so they draw the same on
//! machines without system fonts.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn as pale dots in the colour of the series after it: the raw points behind a
    /// smoothed line.
    pub faint: bool,
}

impl Series {
    pub fn line(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.into(), points, faint: false }
    }

    pub fn faint(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.into(), points, faint: true }
    }
}

pub struct Panel {
    pub title: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Distinct, print-safe colours (Okabe-Ito), readable on white.
const COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
    RGBColor(0, 0, 0),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // DejaVu Sans is a valid TrueType font; registration cannot fail for it.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Draws `panels` stacked vertically into `<stem>.png` and `<stem>.svg`; returns the PNG's path.
/// The suffixes are appended, so a stem with a dot in its name (`meta-tartan-acl.arc`) keeps it.
pub fn draw(stem: &Path, title: &str, x_label: &str, panels: &[Panel]) -> Result<PathBuf> {
    register_font();
    let size = (960, 360 * panels.len() as u32 + 40);
    let with = |suffix: &str| {
        let mut name = stem.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let (png, svg) = (with(".png"), with(".svg"));
    draw_on(BitMapBackend::new(&png, size).into_drawing_area(), title, x_label, panels)?;
    draw_on(SVGBackend::new(&svg, size).into_drawing_area(), title, x_label, panels)?;
    Ok(png)
}

/// The corner of the plot where the legend's box covers the fewest points, so the legend hides
/// as little as possible (rising curves end upper right, falling ones lower right); upper right
/// on a tie.
fn legend_corner(series: &[Series], x: (f64, f64), y: (f64, f64)) -> SeriesLabelPosition {
    // The box's size as a share of the plot area (about 870 x 260 pixels in a 960-wide panel):
    // 13-pixel text at about 7 pixels a character plus the sample mark, 20 pixels a row.
    let chars = series.iter().map(|s| s.name.chars().count()).max().unwrap_or(0) as f64;
    let w = ((chars * 7.0 + 50.0) / 870.0).min(0.9) * (x.1 - x.0);
    let h = ((series.len() as f64 * 20.0 + 12.0) / 260.0).min(0.9) * (y.1 - y.0);
    let (all_x, all_y) = (f64::NEG_INFINITY, f64::INFINITY);
    let corners = [
        (SeriesLabelPosition::UpperRight, (x.1 - w, all_y), (y.1 - h, all_y)),
        (SeriesLabelPosition::LowerRight, (x.1 - w, all_y), (all_x, y.0 + h)),
        (SeriesLabelPosition::UpperLeft, (all_x, x.0 + w), (y.1 - h, all_y)),
        (SeriesLabelPosition::LowerLeft, (all_x, x.0 + w), (all_x, y.0 + h)),
    ];
    let inside = |(xr, yr): ((f64, f64), (f64, f64))| {
        series
            .iter()
            .flat_map(|s| &s.points)
            .filter(|(px, py)| (xr.0..=xr.1).contains(px) && (yr.0..=yr.1).contains(py))
            .count()
    };
    corners.into_iter().min_by_key(|(_, xr, yr)| inside((*xr, *yr))).map_or(SeriesLabelPosition::UpperRight, |c| c.0)
}

fn draw_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, x_label: &str, panels: &[Panel]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(drawing_error::<DB>)?;
    let root = root.titled(title, ("sans-serif", 24)).map_err(drawing_error::<DB>)?;
    for (panel, area) in panels.iter().zip(root.split_evenly((panels.len(), 1))) {
        draw_panel(&area, panel, x_label)?;
    }
    root.present().map_err(drawing_error::<DB>)?;
    Ok(())
}

fn drawing_error<DB: DrawingBackend>(e: DrawingAreaErrorKind<DB::ErrorType>) -> anyhow::Error
where
    DB::ErrorType: 'static,
{
    anyhow!("drawing a chart: {e:?}")
}

/// The range of the finite points: x exactly, y with 5% to spare; a unit square if none.
fn extent(series: &[Series]) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in series.iter().flat_map(|s| &s.points).filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    ((x0, x1.max(x0 + 1.0)), (y0 - pad, y1 + pad))
}

/// One panel: its axes, each series (faint ones as pale dots), and the legend.
fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel, x_label: &str) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = drawing_error::<DB>;
    let (x, y) = extent(&panel.series);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(&panel.y_label)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    let mut lines = 0;
    for s in &panel.series {
        let color = COLORS[lines % COLORS.len()].to_rgba();
        let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        if s.faint {
            let dot = color.mix(0.3).filled();
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 2, dot)))
                .map_err(err)?
                .label(&s.name)
                .legend(move |(x, y)| Circle::new((x + 9, y), 3, dot));
            continue;
        }
        lines += 1;
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?
            .label(&s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .position(legend_corner(&panel.series, x, y))
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_goes_to_the_emptiest_corner() {
        let line = |f: fn(f64) -> f64| vec![Series::line("s", (0..=10).map(|i| (i as f64, f(i as f64))).collect())];
        let corner = |s: &[Series]| format!("{:?}", legend_corner(s, (0.0, 10.0), (0.0, 10.0)));
        // A rising curve ends upper right and leaves lower right empty; a falling one the reverse.
        assert_eq!(corner(&line(|x| x)), "LowerRight");
        assert_eq!(corner(&line(|x| 10.0 - x)), "UpperRight");
        assert_eq!(corner(&[]), "UpperRight");
    }
}
