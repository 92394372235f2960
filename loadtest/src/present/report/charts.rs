//! About 580 lines, kept whole: the four chart kinds share private drawing helpers (fonts,
//! title and footer areas, row layout) that a split would have to make public.
//!
//! The chart kinds of the report, drawn with plotters twice: once as SVG (inlined in the HTML
//! page) and once as a 1200-pixel-wide PNG. Text is laid out with the TTF shipped in
//! `loadtest/assets`, registered through plotters' `ab_glyph` backend, so a PNG does not depend
//! on the fonts installed on the machine.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, SegmentedCoord, ValueFormatter};
use plotters::coord::types::{RangedCoordf64, RangedCoordusize};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Pixel size of every chart: legible as a PNG at 1200 px wide.
pub const SIZE: (u32, u32) = (1200, 675);
const FONT: &str = "sans-serif";
const CAPTION: u32 = 28;
pub(super) const LABEL: u32 = 19;
pub(super) const DESC: u32 = 21;
pub(super) const SMALL: u32 = 17;

static FONT_BYTES: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// Registers the bundled font once per process.
pub fn register_font() -> anyhow::Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    anyhow::ensure!(ok, "the bundled chart font (loadtest/assets/DejaVuSans.ttf) could not be read");
    Ok(())
}

/// How tick values of an axis are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Plain,
    /// Requests per second.
    Rate,
    Us,
    Ms,
    Seconds,
    Bytes,
    /// 0..100.
    Percent,
    /// `x = log10(1 / (1 - q))`: 0 is p0, 2 is p99, 4 is p99.99.
    Nines,
    /// A count: `10k`, `1M`.
    Count,
}

pub fn tick(unit: Unit, v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
    };
    match unit {
        Unit::Plain => trim(format!("{v:.2}")),
        Unit::Rate if v.abs() >= 1000.0 => format!("{}k", trim(format!("{:.1}", v / 1000.0))),
        Unit::Rate => format!("{v:.0}"),
        Unit::Us if v.abs() >= 1_000_000.0 => format!("{} s", trim(format!("{:.2}", v / 1e6))),
        Unit::Us if v.abs() >= 1000.0 => format!("{} ms", trim(format!("{:.1}", v / 1000.0))),
        Unit::Us if v.abs() >= 10.0 || v == 0.0 => format!("{v:.0} µs"),
        Unit::Us => format!("{} µs", trim(format!("{v:.1}"))),
        Unit::Ms => trim(format!("{v:.1}")),
        Unit::Seconds => trim(format!("{v:.1}")),
        Unit::Bytes if v.abs() >= 1024.0 * 1024.0 => format!("{} MiB", trim(format!("{:.1}", v / 1048576.0))),
        Unit::Bytes if v.abs() >= 1024.0 => format!("{} KiB", trim(format!("{:.1}", v / 1024.0))),
        Unit::Bytes => format!("{v:.0}"),
        Unit::Percent => format!("{v:.0}"),
        Unit::Count if v.abs() >= 1e6 => format!("{}M", trim(format!("{:.1}", v / 1e6))),
        Unit::Count if v.abs() >= 1e4 => format!("{}k", trim(format!("{:.1}", v / 1e3))),
        Unit::Count => format!("{v:.0}"),
        Unit::Nines => {
            let q = 100.0 * (1.0 - 10f64.powf(-v));
            let digits = (v.ceil() as i64 - 2).clamp(0, 6) as usize;
            format!("p{}", trim(format!("{q:.digits$}")))
        }
    }
}

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub colour: RGBColor,
    pub points: Vec<(f64, f64)>,
    /// Draw a dot at every point (measured points; spectra are dense lines without dots).
    pub markers: bool,
}

/// A shaded x interval (a fault, a grace window).
#[derive(Debug, Clone)]
pub struct Shade {
    pub from: f64,
    pub to: f64,
    pub label: String,
}

/// A labelled point (a knee).
#[derive(Debug, Clone)]
pub struct Mark {
    pub x: f64,
    pub y: f64,
    pub colour: RGBColor,
    pub text: String,
}

/// One set of axes.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: Option<String>,
    pub x_desc: String,
    pub y_desc: String,
    pub x_unit: Unit,
    pub y_unit: Unit,
    pub x_log: bool,
    pub y_log: bool,
    /// Fixed ranges; otherwise fitted to the data (linear y from 0).
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    pub series: Vec<Series>,
    pub shades: Vec<Shade>,
    pub marks: Vec<Mark>,
    pub legend: SeriesLabelPosition,
}

impl Panel {
    pub fn new(x_desc: &str, x_unit: Unit, y_desc: &str, y_unit: Unit) -> Self {
        Self {
            title: None,
            x_desc: x_desc.to_owned(),
            y_desc: y_desc.to_owned(),
            x_unit,
            y_unit,
            x_log: false,
            y_log: false,
            x_range: None,
            y_range: None,
            series: Vec::new(),
            shades: Vec::new(),
            marks: Vec::new(),
            legend: SeriesLabelPosition::UpperRight,
        }
    }

    fn fitted(&self) -> ((f64, f64), (f64, f64)) {
        let pts = || self.series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
        let fit = |vals: Vec<f64>, log: bool, from_zero: bool| -> (f64, f64) {
            let vals: Vec<f64> = vals.into_iter().filter(|v| !log || *v > 0.0).collect();
            let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if !lo.is_finite() || !hi.is_finite() {
                return if log { (1.0, 10.0) } else { (0.0, 1.0) };
            }
            if log {
                let (lo, hi) = (lo / 1.5, hi * 1.5);
                if hi / lo < 10.0 { (lo / 2.0, hi * 2.0) } else { (lo, hi) }
            } else {
                let lo = if from_zero { lo.min(0.0) } else { lo };
                let span = (hi - lo).max(hi.abs() * 0.1).max(1e-9);
                (if from_zero { lo } else { lo - span * 0.04 }, hi + span * 0.08)
            }
        };
        let x = self.x_range.unwrap_or_else(|| fit(pts().map(|p| p.0).collect(), self.x_log, false));
        let y = self.y_range.unwrap_or_else(|| fit(pts().map(|p| p.1).collect(), self.y_log, true));
        (x, y)
    }
}

/// A titled figure of one or more panels, `columns` per row.
#[derive(Debug, Clone)]
pub struct Figure {
    pub title: String,
    pub panels: Vec<Panel>,
    pub columns: usize,
}

impl Figure {
    pub fn single(title: impl Into<String>, panel: Panel) -> Self {
        Self { title: title.into(), panels: vec![panel], columns: 1 }
    }

    fn rows(&self) -> usize {
        self.panels.len().div_ceil(self.columns.max(1)).max(1)
    }
}

/// Horizontal bars with a min..max whisker (throughput per variant).
#[derive(Debug, Clone)]
pub struct Bars {
    pub title: String,
    pub x_desc: String,
    pub unit: Unit,
    pub rows: Vec<Bar>,
    pub legend: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub colour: RGBColor,
    pub value: f64,
    pub min: f64,
    pub max: f64,
    /// Printed after the bar; a flagged bar is drawn hatched-light.
    pub note: String,
    pub flagged: bool,
}

/// Outcome of a run of probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Rejected,
    Error,
}

impl Outcome {
    fn colour(self) -> RGBColor {
        match self {
            Outcome::Accepted => RGBColor(214, 39, 40),
            Outcome::Rejected => RGBColor(44, 160, 44),
            Outcome::Error => RGBColor(150, 150, 150),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted (token still works)",
            Outcome::Rejected => "rejected (401)",
            Outcome::Error => "error (503, timeout)",
        }
    }
}

/// Rows of outcome segments against time (revocation probes).
#[derive(Debug, Clone)]
pub struct Timeline {
    pub title: String,
    pub x_desc: String,
    pub rows: Vec<TimelineRow>,
}

#[derive(Debug, Clone)]
pub struct TimelineRow {
    pub label: String,
    pub colour: RGBColor,
    pub segments: Vec<(f64, f64, Outcome)>,
    pub note: String,
}

/// Something that draws itself on any plotters backend.
pub trait Draw {
    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static;

    fn height(&self) -> u32 {
        SIZE.1
    }
}

/// Writes `<file>.svg` and `<file>.png` into `dir`; returns the SVG text.
pub fn save<C: Draw>(chart: &C, dir: &Path, file: &str) -> anyhow::Result<String> {
    register_font()?;
    let size = (SIZE.0, chart.height());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        chart.draw(&root).with_context(|| format!("drawing {file}.svg"))?;
        root.present().map_err(|e| anyhow!("writing {file}.svg: {e}"))?;
    }
    std::fs::write(dir.join(format!("{file}.svg")), &svg)
        .with_context(|| format!("cannot write {}", dir.join(format!("{file}.svg")).display()))?;
    let png = dir.join(format!("{file}.png"));
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        chart.draw(&root).with_context(|| format!("drawing {file}.png"))?;
        root.present().map_err(|e| anyhow!("writing {}: {e}", png.display()))?;
    }
    Ok(svg)
}

pub(super) fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

pub(super) fn title_area<DB>(root: &DrawingArea<DB, Shift>, title: &str) -> anyhow::Result<DrawingArea<DB, Shift>>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    Ok(root.titled(title, font(CAPTION))?)
}

impl Draw for Figure {
    fn height(&self) -> u32 {
        match self.rows() {
            1 => SIZE.1,
            n => u32::try_from(n).unwrap_or(4) * 360 + 50,
        }
    }

    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let area = title_area(root, &self.title)?;
        let columns = self.columns.clamp(1, self.panels.len().max(1));
        let parts = area.split_evenly((self.rows(), columns));
        for (panel, part) in self.panels.iter().zip(parts.iter()) {
            let ((x0, x1), (y0, y1)) = panel.fitted();
            match (panel.x_log, panel.y_log) {
                (false, false) => draw_panel(part, panel, x0..x1, y0..y1)?,
                (true, false) => draw_panel(part, panel, (x0..x1).log_scale(), y0..y1)?,
                (false, true) => draw_panel(part, panel, x0..x1, (y0..y1).log_scale())?,
                (true, true) => draw_panel(part, panel, (x0..x1).log_scale(), (y0..y1).log_scale())?,
            }
        }
        Ok(())
    }
}

fn draw_panel<DB, X, Y>(area: &DrawingArea<DB, Shift>, p: &Panel, x: X, y: Y) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut builder = ChartBuilder::on(area);
    builder.margin(14).margin_right(28).x_label_area_size(62).y_label_area_size(96);
    if let Some(title) = &p.title {
        builder.caption(title, font(DESC + 1));
    }
    let mut chart = builder.build_cartesian_2d(x, y)?;
    let (xu, yu) = (p.x_unit, p.y_unit);
    let fx = move |v: &f64| tick(xu, *v);
    let fy = move |v: &f64| tick(yu, *v);
    chart
        .configure_mesh()
        .x_desc(p.x_desc.as_str())
        .y_desc(p.y_desc.as_str())
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .label_style(font(LABEL))
        .axis_desc_style(font(DESC))
        .light_line_style(RGBColor(0, 0, 0).mix(0.04))
        .bold_line_style(RGBColor(0, 0, 0).mix(0.12))
        .draw()?;
    let y_range = chart.y_range();
    for shade in &p.shades {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(shade.from, y_range.start), (shade.to, y_range.end)],
            RGBColor(120, 120, 120).mix(0.16).filled(),
        )))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((shade.from, y_range.end)) + Text::new(shade.label.clone(), (6, 6), font(SMALL)),
        ))?;
    }
    for s in &p.series {
        let colour = s.colour;
        let style = colour.stroke_width(3);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))?
            .label(s.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(4)));
        if s.markers {
            chart.draw_series(s.points.iter().map(|&(x, y)| Circle::new((x, y), 4, colour.filled())))?;
        }
    }
    for m in &p.marks {
        chart.draw_series(std::iter::once(
            EmptyElement::at((m.x, m.y))
                + Circle::new((0, 0), 9, m.colour.stroke_width(3))
                + Text::new(m.text.clone(), (10, -24), font(SMALL)),
        ))?;
    }
    if p.series.iter().any(|s| !s.label.is_empty()) {
        chart
            .configure_series_labels()
            .position(p.legend.clone())
            .background_style(WHITE.mix(0.88))
            .border_style(RGBColor(0, 0, 0).mix(0.3))
            .label_font(font(SMALL))
            .draw()?;
    }
    Ok(())
}

/// Splits a strip off the bottom for a legend line.
fn footer<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    wanted: bool,
) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
    let h = area.dim_in_pixel().1;
    area.split_vertically(if wanted { h.saturating_sub(34) } else { h })
}

/// Row height of bar and timeline charts, so long lists stay legible.
const ROW: u32 = 56;

fn rows_height(rows: usize) -> u32 {
    (u32::try_from(rows).unwrap_or(20) * ROW + 190).max(360)
}

type RowChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, SegmentedCoord<RangedCoordusize>>>;

/// A chart with one horizontal band per label (first label at the top) over a numeric x axis.
fn row_chart<'a, DB>(
    area: &DrawingArea<DB, Shift>,
    labels: &[String],
    x: std::ops::Range<f64>,
    x_desc: &str,
    unit: Unit,
    label_width: u32,
) -> anyhow::Result<RowChart<'a, DB>>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
{
    let n = labels.len().max(1);
    let labels = labels.to_vec();
    let fy = move |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => labels.get(n - 1 - (*i).min(n - 1)).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let fx = move |v: &f64| tick(unit, *v);
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .margin_right(30)
        .x_label_area_size(62)
        .y_label_area_size(label_width)
        .build_cartesian_2d(x, (0..n - 1).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(x_desc)
        .x_labels(10)
        .y_labels(n)
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .label_style(font(LABEL))
        .axis_desc_style(font(DESC))
        .light_line_style(RGBColor(0, 0, 0).mix(0.04))
        .draw()?;
    Ok(chart)
}

impl Draw for Bars {
    fn height(&self) -> u32 {
        rows_height(self.rows.len())
    }

    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let area = title_area(root, &self.title)?;
        let (area, foot) = footer(&area, self.legend.is_some());
        let n = self.rows.len().max(1);
        let top = self.rows.iter().map(|r| r.max.max(r.value)).fold(0.0, f64::max).max(1.0) * 1.32;
        let mut chart = row_chart(
            &area,
            &self.rows.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
            0.0..top,
            &self.x_desc,
            self.unit,
            190,
        )?;
        for (k, row) in self.rows.iter().enumerate() {
            // The first row is drawn at the top.
            let i = n - 1 - k;
            let fill = if row.flagged { row.colour.mix(0.45).filled() } else { row.colour.filled() };
            let mut bar =
                Rectangle::new([(0.0, SegmentValue::Exact(i)), (row.value, SegmentValue::Exact(i + 1))], fill);
            bar.set_margin(10, 10, 0, 0);
            chart.draw_series(std::iter::once(bar))?;
            if row.max > row.min {
                chart.draw_series(std::iter::once(ErrorBar::new_horizontal(
                    SegmentValue::CenterOf(i),
                    row.min,
                    row.value,
                    row.max,
                    BLACK.stroke_width(2),
                    18,
                )))?;
            }
            chart.draw_series(std::iter::once(
                EmptyElement::at((row.max.max(row.value), SegmentValue::CenterOf(i)))
                    + Text::new(row.note.clone(), (12, -9), font(SMALL)),
            ))?;
        }
        if let Some(legend) = &self.legend {
            foot.draw(&Text::new(legend.clone(), (210, 4), font(SMALL)))?;
        }
        Ok(())
    }
}

impl Draw for Timeline {
    fn height(&self) -> u32 {
        rows_height(self.rows.len())
    }

    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let area = title_area(root, &self.title)?;
        let (area, foot) = footer(&area, true);
        let n = self.rows.len().max(1);
        let all = || self.rows.iter().flat_map(|r| r.segments.iter());
        let lo = all().map(|s| s.0).fold(0.0, f64::min);
        let hi = all().map(|s| s.1).fold(1.0, f64::max);
        let span = hi - lo;
        // Room on the right for the per-row note.
        let (x0, x1) = (lo - span * 0.02, hi + span * 0.30);
        let mut chart = row_chart(
            &area,
            &self.rows.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
            x0..x1,
            &self.x_desc,
            Unit::Ms,
            230,
        )?;
        // A single probe still shows: every segment is at least 0.25 % of the axis wide.
        let min_width = (x1 - x0) * 0.0025;
        for (k, row) in self.rows.iter().enumerate() {
            let i = n - 1 - k;
            for &(from, to, outcome) in &row.segments {
                let to = to.max(from + min_width);
                let mut r = Rectangle::new(
                    [(from, SegmentValue::Exact(i)), (to, SegmentValue::Exact(i + 1))],
                    outcome.colour().filled(),
                );
                r.set_margin(12, 12, 0, 0);
                chart.draw_series(std::iter::once(r))?;
            }
            chart.draw_series(std::iter::once(
                EmptyElement::at((hi, SegmentValue::CenterOf(i))) + Text::new(row.note.clone(), (14, -9), font(SMALL)),
            ))?;
            chart.draw_series(std::iter::once(
                EmptyElement::at((x0, SegmentValue::CenterOf(i)))
                    + Rectangle::new([(2, -14), (9, 14)], row.colour.filled()),
            ))?;
        }
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Last)],
            BLACK.stroke_width(2),
        )))?;
        let mut x = 250;
        for outcome in [Outcome::Accepted, Outcome::Rejected, Outcome::Error] {
            foot.draw(&Rectangle::new([(x, 4), (x + 20, 22)], outcome.colour().filled()))?;
            foot.draw(&Text::new(outcome.label(), (x + 28, 4), font(SMALL)))?;
            x += 330;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_read_as_units() {
        assert_eq!(tick(Unit::Nines, 0.0), "p0");
        assert_eq!(tick(Unit::Nines, 2.0), "p99");
        assert_eq!(tick(Unit::Nines, 3.0), "p99.9");
        assert_eq!(tick(Unit::Nines, 4.0), "p99.99");
        assert_eq!(tick(Unit::Rate, 75_000.0), "75k");
        assert_eq!(tick(Unit::Us, 2500.0), "2.5 ms");
        assert_eq!(tick(Unit::Bytes, 2048.0), "2 KiB");
    }
}
