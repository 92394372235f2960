//! The population chart: Redis commands per user request against requests per access-token
//! lifetime, both axes logarithmic. Each design's measured points carry their 95 % interval as
//! error bars; the line the design's own rules expect is drawn faintly behind them. A log axis
//! has no zero, so what sits at zero is said in lines under the plot instead of being drawn at
//! a floor the data never had.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::super::charts::{DESC, Draw, LABEL, SIZE, SMALL, font, title_area};
use crate::present::units::quantity;

/// What a design's rules expect at `x` requests per lifetime.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expected {
    /// Nothing to draw: zero expected.
    Zero,
    /// The same at every lifetime.
    Flat(f64),
    /// `per_refresh / (1 + x)`: one refresh's commands spread over the requests of a lifetime.
    PerLifetime { per_refresh: f64 },
}

impl Expected {
    pub fn at(self, x: f64) -> f64 {
        match self {
            Self::Zero => 0.0,
            Self::Flat(v) => v,
            Self::PerLifetime { per_refresh } => per_refresh / (1.0 + x),
        }
    }
}

/// One measured point: the median over the rounds and its 95 % interval.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub x: f64,
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
}

/// One design (variant) of the chart.
#[derive(Debug, Clone)]
pub struct Design {
    pub label: String,
    pub colour: RGBColor,
    /// Only points above zero: a log axis cannot hold the others.
    pub points: Vec<Point>,
    pub expected: Expected,
}

#[derive(Debug, Clone)]
pub struct PopulationChart {
    pub title: String,
    pub designs: Vec<Design>,
    /// Printed under the plot: the designs or points a log axis cannot show.
    pub notes: Vec<String>,
}

/// Width of the legend column right of the plot, pixels.
const LEGEND_W: u32 = 260;
/// Height of one note line under the plot, pixels.
const NOTE_H: u32 = 26;
/// Points closer than this factor in y at the same x are drawn apart by [`DODGE`].
const OVERLAP: f64 = 1.25;
/// Multiplicative x offset between points that would hide each other.
const DODGE: f64 = 1.14;

impl PopulationChart {
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let xs = || self.designs.iter().flat_map(|d| d.points.iter().map(|p| p.x)).filter(|x| *x > 0.0);
        let x_lo = xs().fold(f64::INFINITY, f64::min);
        let x_hi = xs().fold(f64::NEG_INFINITY, f64::max);
        let (x0, x1) = if x_lo.is_finite() { (x_lo / 2.0, x_hi * 2.0) } else { (1.0, 1000.0) };
        // Every point and interval, and every expected line over the whole x range.
        let mut ys: Vec<f64> = self.designs.iter().flat_map(|d| d.points.iter().flat_map(|p| [p.lo, p.hi])).collect();
        for d in &self.designs {
            ys.extend([d.expected.at(x0), d.expected.at(x1)]);
        }
        let ys: Vec<f64> = ys.into_iter().filter(|y| *y > 0.0 && y.is_finite()).collect();
        let y_lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
        let y_hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let y = if y_lo.is_finite() { (y_lo / 2.0, y_hi * 2.0) } else { (0.001, 10.0) };
        ((x0, x1), y)
    }

    /// Whether any point is drawn aside from its x (the caption says so).
    pub fn dodged(&self) -> bool {
        self.placed().iter().zip(&self.designs).any(|(xs, d)| xs.iter().zip(&d.points).any(|(x, p)| *x != p.x))
    }

    /// Each point's drawn x: a point that would cover one drawn before it at the same x moves
    /// aside, alternately right and left.
    fn placed(&self) -> Vec<Vec<f64>> {
        let mut drawn: Vec<(f64, f64)> = Vec::new();
        let mut out = Vec::new();
        for d in &self.designs {
            let mut xs = Vec::new();
            for p in &d.points {
                let k = drawn.iter().filter(|(x, y)| *x == p.x && (p.median / y).max(y / p.median) < OVERLAP).count()
                    as i32;
                let step = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
                drawn.push((p.x, p.median));
                xs.push(p.x * DODGE.powi(step));
            }
            out.push(xs);
        }
        out
    }
}

impl Draw for PopulationChart {
    fn height(&self) -> u32 {
        SIZE.1 + NOTE_H * u32::try_from(self.notes.len()).unwrap_or(4)
    }

    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let area = title_area(root, &self.title)?;
        let (w, h) = area.dim_in_pixel();
        let notes_h =
            if self.notes.is_empty() { 0 } else { 10 + NOTE_H * u32::try_from(self.notes.len()).unwrap_or(4) };
        let (upper, foot) = area.split_vertically(h.saturating_sub(notes_h));
        let (plot, legend) = upper.split_horizontally(w.saturating_sub(LEGEND_W));
        let ((x0, x1), (y0, y1)) = self.ranges();
        let mut chart = ChartBuilder::on(&plot)
            .margin(14)
            .margin_right(20)
            .x_label_area_size(62)
            .y_label_area_size(96)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
        let label = |v: &f64| quantity(*v);
        chart
            .configure_mesh()
            .x_desc("requests per access-token lifetime (user rate × lifetime)")
            .y_desc("Redis commands per user request")
            .x_labels(8)
            .y_labels(10)
            .x_label_formatter(&label)
            .y_label_formatter(&label)
            .label_style(font(LABEL))
            .axis_desc_style(font(DESC))
            .light_line_style(RGBColor(0, 0, 0).mix(0.04))
            .bold_line_style(RGBColor(0, 0, 0).mix(0.12))
            .draw()?;
        // The expected lines first, faint, so the measured points sit on top of them.
        let samples = 80;
        let along = |i: usize| x0 * (x1 / x0).powf(i as f64 / samples as f64);
        for d in &self.designs {
            if d.expected == Expected::Zero {
                continue;
            }
            let line = (0..=samples).map(|i| (along(i), d.expected.at(along(i))));
            chart.draw_series(LineSeries::new(line, d.colour.mix(0.35).stroke_width(3)))?;
        }
        for (d, xs) in self.designs.iter().zip(self.placed()) {
            let style = d.colour.stroke_width(2);
            for (p, x) in d.points.iter().zip(xs) {
                if p.hi > p.lo {
                    let lo = p.lo.max(y0);
                    chart.draw_series(std::iter::once(ErrorBar::new_vertical(x, lo, p.median, p.hi, style, 12)))?;
                }
                chart.draw_series(std::iter::once(Circle::new((x, p.median), 6, d.colour.filled())))?;
            }
        }
        self.legend(&legend)?;
        for (i, note) in self.notes.iter().enumerate() {
            let y = 6 + NOTE_H * u32::try_from(i).unwrap_or(0);
            foot.draw(&Text::new(note.clone(), (110, i32::try_from(y).unwrap_or(0)), font(SMALL)))?;
        }
        Ok(())
    }
}

impl PopulationChart {
    /// The legend in a column of its own, so it never covers a point.
    fn legend<DB>(&self, area: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let mut y = 40;
        for d in &self.designs {
            if d.expected != Expected::Zero {
                area.draw(&PathElement::new(vec![(8, y + 9), (40, y + 9)], d.colour.mix(0.35).stroke_width(3)))?;
            }
            area.draw(&Circle::new((24, y + 9), 6, d.colour.filled()))?;
            area.draw(&Text::new(d.label.clone(), (52, y), font(SMALL)))?;
            y += 28;
        }
        y += 10;
        let grey = RGBColor(90, 90, 90);
        area.draw(&Circle::new((24, y + 9), 6, grey.filled()))?;
        area.draw(&PathElement::new(vec![(24, y - 3), (24, y + 21)], grey.stroke_width(2)))?;
        area.draw(&Text::new("median, 95 % interval", (52, y), font(SMALL)))?;
        y += 28;
        area.draw(&PathElement::new(vec![(8, y + 9), (40, y + 9)], grey.mix(0.35).stroke_width(3)))?;
        area.draw(&Text::new("expected by the", (52, y), font(SMALL)))?;
        area.draw(&Text::new("design's rules", (52, y + 22), font(SMALL)))?;
        Ok(())
    }
}
