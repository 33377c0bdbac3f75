//! Charts drawn as inline SVG on the Rust side: line charts (with bands and
//! markers) over a time or generation axis, and histograms. No dependency
//! and no script needed to see them; the page's small script only adds a
//! crosshair with values.
//!
//! Every chart is an `<svg class="chart" data-chart="ID">` whose series are
//! the elements carrying `data-series` (a `polyline` with one point per
//! `data-points`, a `polygon` band with two, or a `g` with one child each),
//! so a test can count what was drawn from the DOM. Long series are thinned
//! to at most [`MAX_DRAWN`] points (the minimum and maximum of each slice,
//! so spikes stay visible); `data-source-points` keeps the count before.

use std::fmt::Write as _;

use strata_core::Timestamp;

use crate::html::escape;

/// Most points a polyline is drawn with.
pub const MAX_DRAWN: usize = 1_200;

/// Colours of series, in order (readable on white, distinct for the colour-blind in the first four).
pub(crate) const PALETTE: [&str; 6] = ["#2563eb", "#ea580c", "#059669", "#9333ea", "#db2777", "#0891b2"];
/// The colour of a benchmark (buy and hold).
pub(crate) const BENCHMARK: &str = "#6b7280";

/// What the x axis shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XAxis {
    /// Microseconds since the epoch, labelled as dates.
    Time,
    /// Whole numbers (generations), labelled as such.
    Count,
}

/// How y values are labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum YFormat {
    /// As numbers.
    Plain,
    /// Fractions as percentages (`-0.25` is `-25%`).
    Percent,
    /// Growth multiples (`1.5` is `1.5×`).
    Times,
}

impl YFormat {
    fn as_str(self) -> &'static str {
        match self {
            YFormat::Plain => "plain",
            YFormat::Percent => "percent",
            YFormat::Times => "times",
        }
    }

    fn label(self, value: f64, step: f64) -> String {
        match self {
            YFormat::Plain => plain(value, step),
            YFormat::Percent => format!("{}%", plain(value * 100.0, step * 100.0)),
            YFormat::Times => format!("{}×", plain(value, step)),
        }
    }
}

/// A number with as many decimals as the tick step needs.
fn plain(value: f64, step: f64) -> String {
    // As many decimals as the step has (0.25 needs two), at most six.
    let decimals = (0..6).find(|d| ((step * 10f64.powi(*d)).fract()).abs() < 1e-6).unwrap_or(6) as usize;
    let text = format!("{value:.decimals$}");
    if text.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') { "0".to_string() } else { text }
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// Stable name (`data-series`).
    pub(crate) name: String,
    /// What the legend says.
    pub(crate) label: String,
    /// Stroke colour.
    pub(crate) color: &'static str,
    /// Dashed (benchmarks).
    pub(crate) dashed: bool,
    /// Points, in x order; non-finite values are left out.
    pub(crate) points: Vec<(f64, f64)>,
}

/// A shaded band between two lines (the spread around a mean).
#[derive(Debug, Clone)]
pub(crate) struct Band {
    /// Stable name (`data-series`).
    pub(crate) name: String,
    /// What the legend says.
    pub(crate) label: String,
    /// Fill colour.
    pub(crate) color: &'static str,
    /// (x, low, high), in x order.
    pub(crate) points: Vec<(f64, f64, f64)>,
}

/// A marker's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A triangle pointing up, under the point.
    Up,
    /// A triangle pointing down, over the point.
    Down,
    /// A diamond on the point.
    Diamond,
}

impl Shape {
    fn glyph(self) -> &'static str {
        match self {
            Shape::Up => "▲",
            Shape::Down => "▼",
            Shape::Diamond => "◆",
        }
    }

    fn path(self, x: f64, y: f64) -> String {
        match self {
            Shape::Up => format!("M{x},{} l-5,9 h10 z", y + 2.0),
            Shape::Down => format!("M{x},{} l-5,-9 h10 z", y - 2.0),
            Shape::Diamond => format!("M{x},{} l4,4 l-4,4 l-4,-4 z", y - 4.0),
        }
    }
}

/// Shapes at points (trades).
#[derive(Debug, Clone)]
pub(crate) struct Markers {
    /// Stable name (`data-series`).
    pub(crate) name: String,
    /// What the legend says.
    pub(crate) label: String,
    /// Fill colour.
    pub(crate) color: &'static str,
    /// The shape drawn at each point.
    pub(crate) shape: Shape,
    /// Points, each with its tooltip text.
    pub(crate) points: Vec<(f64, f64, String)>,
}

/// A chart of lines, bands and markers over one x axis.
#[derive(Debug, Clone)]
pub(crate) struct LineChart {
    /// `data-chart`.
    pub(crate) id: String,
    /// The x axis.
    pub(crate) x_axis: XAxis,
    /// Labels of the y axis.
    pub(crate) y_format: YFormat,
    /// Width of the view box: about the CSS pixels it is shown at, so text keeps its size.
    pub(crate) width: f64,
    /// Height of the view box.
    pub(crate) height: f64,
    /// Lines, drawn over the bands.
    pub(crate) lines: Vec<Line>,
    /// Bands, drawn first.
    pub(crate) bands: Vec<Band>,
    /// Markers, drawn last.
    pub(crate) markers: Vec<Markers>,
    /// A y value always inside the range (1 for equity, 0 for drawdowns).
    pub(crate) include_y: Option<f64>,
}

/// View-box width of a chart that spans the page (about its CSS width on a laptop).
pub(crate) const FULL_WIDTH: f64 = 1_160.0;
/// View-box width of a chart in one of two columns.
pub(crate) const HALF_WIDTH: f64 = 580.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;

/// Maps data to view-box coordinates.
#[derive(Debug, Clone, Copy)]
struct Frame {
    x_min: f64,
    x_max: f64,
    y_min: f64,
    y_max: f64,
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

impl Frame {
    fn x(&self, x: f64) -> f64 {
        let span = self.x_max - self.x_min;
        let at = if span > 0.0 { (x - self.x_min) / span } else { 0.5 };
        round(self.left + at * self.width)
    }

    fn y(&self, y: f64) -> f64 {
        let span = self.y_max - self.y_min;
        let at = if span > 0.0 { (y - self.y_min) / span } else { 0.5 };
        round(self.top + (1.0 - at) * self.height)
    }

    fn attributes(&self) -> String {
        format!(
            r#"data-x-min="{}" data-x-max="{}" data-y-min="{}" data-y-max="{}" data-left="{}" data-top="{}" data-width="{}" data-height="{}""#,
            self.x_min, self.x_max, self.y_min, self.y_max, self.left, self.top, self.width, self.height
        )
    }
}

/// Two decimals are plenty in a view box about as wide as the screen, and keep the page small.
fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// At most `limit` points of `points`: the first, the last, and the lowest
/// and highest of each of `limit / 2 - 1` equal slices in between, in order.
pub(crate) fn thin(points: &[(f64, f64)], limit: usize) -> Vec<(f64, f64)> {
    if points.len() <= limit || limit < 4 {
        return points.to_vec();
    }
    let slices = limit / 2 - 1;
    let inner = &points[1..points.len() - 1];
    let mut kept = Vec::with_capacity(limit);
    kept.push(points[0]);
    for slice in 0..slices {
        let from = slice * inner.len() / slices;
        let to = ((slice + 1) * inner.len() / slices).max(from + 1).min(inner.len());
        let part = &inner[from..to];
        let (mut low, mut high) = (0, 0);
        for (index, point) in part.iter().enumerate() {
            if point.1 < part[low].1 {
                low = index;
            }
            if point.1 > part[high].1 {
                high = index;
            }
        }
        let (first, second) = if low <= high { (low, high) } else { (high, low) };
        kept.push(part[first]);
        if second != first {
            kept.push(part[second]);
        }
    }
    kept.push(points[points.len() - 1]);
    kept
}

/// Round tick values covering `[min, max]`, about `count` of them.
pub(crate) fn nice_ticks(min: f64, max: f64, count: usize) -> (Vec<f64>, f64) {
    let (mut min, mut max) = (min, max);
    if !(min.is_finite() && max.is_finite()) {
        (min, max) = (0.0, 1.0);
    }
    if max - min < 1e-12 {
        let pad = if min.abs() > 1e-9 { min.abs() * 0.1 } else { 1.0 };
        (min, max) = (min - pad, max + pad);
    }
    let raw = (max - min) / count.max(2) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    let first = (min / step).floor() * step;
    let last = (max / step).ceil() * step;
    let ticks = (0..=((last - first) / step).round() as usize).map(|i| first + i as f64 * step).collect();
    (ticks, step)
}

/// Tick positions and labels of a time axis over `[min, max]` microseconds:
/// the first of a year, month or day when the span allows, else even steps.
fn time_ticks(min: f64, max: f64) -> Vec<(f64, String)> {
    let (start, end) = (Timestamp(min as i64).to_string(), Timestamp(max as i64).to_string());
    let year = |text: &str| text.get(0..4).and_then(|y| y.parse::<i32>().ok());
    let span_days = (max - min) / Timestamp::MICROS_PER_DAY as f64;
    let mut ticks = Vec::new();
    if let (Some(first), Some(last)) = (year(&start), year(&end))
        && span_days > 2.0 * 365.0
    {
        let years = (last - first + 1).max(1);
        let step = [1, 2, 5, 10, 20, 50, 100].into_iter().find(|s| years / s <= 8).unwrap_or(100);
        let mut at = first + (step - first.rem_euclid(step)) % step;
        while at <= last {
            if let Ok(instant) = format!("{at:04}-01-01").parse::<Timestamp>()
                && (instant.0 as f64) >= min
                && (instant.0 as f64) <= max
            {
                ticks.push((instant.0 as f64, format!("{at}")));
            }
            at += step;
        }
    } else if span_days > 60.0 {
        let months = (span_days / 30.4) as i32;
        let step = [1, 2, 3, 6, 12].into_iter().find(|s| months / s <= 8).unwrap_or(12);
        let (Some(mut year_at), Some(month_at)) = (year(&start), start.get(5..7).and_then(|m| m.parse::<i32>().ok()))
        else {
            return ticks;
        };
        let mut month = month_at;
        for _ in 0..200 {
            if let Ok(instant) = format!("{year_at:04}-{month:02}-01").parse::<Timestamp>() {
                let at = instant.0 as f64;
                if at > max {
                    break;
                }
                if at >= min && (month - 1) % step == 0 {
                    ticks.push((at, format!("{year_at:04}-{month:02}")));
                }
            }
            month += 1;
            if month > 12 {
                (month, year_at) = (1, year_at + 1);
            }
        }
    }
    if ticks.len() < 2 {
        ticks = (0..=5)
            .map(|i| {
                let at = min + (max - min) * i as f64 / 5.0;
                let text = Timestamp(at as i64).to_string();
                let label = if span_days > 3.0 {
                    text.get(0..10).unwrap_or(&text).to_string()
                } else {
                    text.get(5..16).unwrap_or(&text).replace('T', " ")
                };
                (at, label)
            })
            .collect();
    }
    ticks
}

impl LineChart {
    /// A chart without series yet.
    pub(crate) fn new(id: &str, x_axis: XAxis, y_format: YFormat, width: f64, height: f64) -> Self {
        LineChart {
            id: id.to_string(),
            x_axis,
            y_format,
            width,
            height,
            lines: Vec::new(),
            bands: Vec::new(),
            markers: Vec::new(),
            include_y: None,
        }
    }

    fn series_count(&self) -> usize {
        self.lines.len() + self.bands.len() + self.markers.len()
    }

    /// The legend as HTML: a swatch and a label per series.
    pub(crate) fn legend(&self) -> String {
        let mut html = String::from(r#"<div class="legend">"#);
        for band in &self.bands {
            let _ = write!(
                html,
                r#"<span><i class="swatch band" style="background:{}"></i>{}</span>"#,
                band.color,
                escape(&band.label)
            );
        }
        for line in &self.lines {
            let class = if line.dashed { "swatch dashed" } else { "swatch" };
            let _ = write!(
                html,
                r#"<span><i class="{class}" style="border-color:{}"></i>{}</span>"#,
                line.color,
                escape(&line.label)
            );
        }
        for markers in &self.markers {
            let _ = write!(
                html,
                r#"<span><b style="color:{}">{}</b> {}</span>"#,
                markers.color,
                markers.shape.glyph(),
                escape(&markers.label)
            );
        }
        html.push_str("</div>");
        html
    }

    /// The chart as an `<svg>` element.
    pub(crate) fn to_svg(&self) -> String {
        let xs = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .chain(self.bands.iter().flat_map(|b| b.points.iter().map(|p| p.0)))
            .filter(|x| x.is_finite());
        let ys = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .chain(self.bands.iter().flat_map(|b| b.points.iter().flat_map(|p| [p.1, p.2])))
            .chain(self.markers.iter().flat_map(|m| m.points.iter().map(|p| p.1)))
            .chain(self.include_y)
            .filter(|y| y.is_finite());
        let (x_min, x_max) = bounds(xs);
        let (y_low, y_high) = bounds(ys);
        let (y_ticks, y_step) = nice_ticks(y_low, y_high, 5);
        let frame = Frame {
            x_min,
            x_max,
            y_min: y_ticks.first().copied().unwrap_or(0.0),
            y_max: y_ticks.last().copied().unwrap_or(1.0),
            left: LEFT,
            top: TOP,
            width: self.width - LEFT - RIGHT,
            height: self.height - TOP - BOTTOM,
        };
        let mut svg = format!(
            r#"<svg class="chart" data-chart="{}" data-series-count="{}" data-x-kind="{}" data-y-format="{}" {} viewBox="0 0 {} {}" role="img">"#,
            escape(&self.id),
            self.series_count(),
            if self.x_axis == XAxis::Time { "time" } else { "count" },
            self.y_format.as_str(),
            frame.attributes(),
            self.width,
            self.height
        );
        // Grid and y labels.
        svg.push_str(r#"<g class="grid">"#);
        for tick in &y_ticks {
            let y = frame.y(*tick);
            let _ = write!(
                svg,
                r#"<line x1="{}" x2="{}" y1="{y}" y2="{y}"{}/><text class="y-label" x="{}" y="{}">{}</text>"#,
                frame.left,
                frame.left + frame.width,
                if tick.abs() < y_step * 1e-6 { r#" class="zero""# } else { "" },
                frame.left - 8.0,
                y + 4.0,
                escape(&self.y_format.label(*tick, y_step))
            );
        }
        let x_ticks: Vec<(f64, String)> = match self.x_axis {
            XAxis::Time => time_ticks(x_min, x_max),
            XAxis::Count => {
                let (ticks, _) = nice_ticks(x_min, x_max, (self.width / 90.0) as usize);
                ticks
                    .into_iter()
                    .filter(|t| *t >= x_min - 1e-9 && *t <= x_max + 1e-9 && t.fract().abs() < 1e-9)
                    .map(|t| (t, plain(t, 1.0)))
                    .collect()
            }
        };
        let bottom = frame.top + frame.height;
        for (at, label) in &x_ticks {
            let x = frame.x(*at);
            let _ = write!(
                svg,
                r#"<line class="x-tick" x1="{x}" x2="{x}" y1="{bottom}" y2="{}"/><text class="x-label" x="{x}" y="{}">{}</text>"#,
                bottom + 5.0,
                bottom + 20.0,
                escape(label)
            );
        }
        let _ = write!(
            svg,
            r#"<line class="axis" x1="{}" x2="{}" y1="{bottom}" y2="{bottom}"/></g>"#,
            frame.left,
            frame.left + frame.width
        );
        for band in &self.bands {
            let kept: Vec<&(f64, f64, f64)> =
                band.points.iter().filter(|p| p.0.is_finite() && p.1.is_finite() && p.2.is_finite()).collect();
            let mut points = String::new();
            for p in &kept {
                let _ = write!(points, "{},{} ", frame.x(p.0), frame.y(p.2));
            }
            for p in kept.iter().rev() {
                let _ = write!(points, "{},{} ", frame.x(p.0), frame.y(p.1));
            }
            let _ = write!(
                svg,
                r#"<polygon class="band" data-series="{}" data-label="{}" data-points="{}" fill="{}" points="{}"/>"#,
                escape(&band.name),
                escape(&band.label),
                kept.len(),
                band.color,
                points.trim_end()
            );
        }
        for line in &self.lines {
            let finite: Vec<(f64, f64)> =
                line.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
            let drawn = thin(&finite, MAX_DRAWN);
            let mut points = String::with_capacity(drawn.len() * 14);
            for (x, y) in &drawn {
                let _ = write!(points, "{},{} ", frame.x(*x), frame.y(*y));
            }
            let _ = write!(
                svg,
                r#"<polyline class="line{}" data-series="{}" data-label="{}" data-points="{}" data-source-points="{}" stroke="{}" points="{}"/>"#,
                if line.dashed { " dashed" } else { "" },
                escape(&line.name),
                escape(&line.label),
                drawn.len(),
                finite.len(),
                line.color,
                points.trim_end()
            );
        }
        for markers in &self.markers {
            let _ = write!(
                svg,
                r#"<g class="markers" data-series="{}" data-label="{}" data-points="{}" fill="{}">"#,
                escape(&markers.name),
                escape(&markers.label),
                markers.points.len(),
                markers.color
            );
            for (x, y, title) in &markers.points {
                let path = markers.shape.path(frame.x(*x), frame.y(*y));
                let _ = write!(svg, r#"<path d="{path}"><title>{}</title></path>"#, escape(title));
            }
            svg.push_str("</g>");
        }
        let _ = write!(
            svg,
            r#"<line class="crosshair" x1="0" x2="0" y1="{}" y2="{bottom}" visibility="hidden"/></svg>"#,
            frame.top
        );
        svg
    }
}

/// The smallest and largest of `values` (0 and 1 when there are none).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if low.is_finite() { (low, high) } else { (0.0, 1.0) }
}

/// One bar of a histogram.
#[derive(Debug, Clone)]
pub(crate) struct Bin {
    /// What the x axis says under it.
    pub(crate) label: String,
    /// Individuals in it.
    pub(crate) count: u64,
    /// The tooltip.
    pub(crate) title: String,
}

/// A histogram: counts per bin, and where the best genome's value falls.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    /// `data-chart`.
    pub(crate) id: String,
    /// The bins, in order.
    pub(crate) bins: Vec<Bin>,
    /// The bin holding the best genome's value, if known.
    pub(crate) best_bin: Option<usize>,
}

impl Histogram {
    /// The histogram as an `<svg>` element (a 320 x 170 view box: small multiples).
    pub(crate) fn to_svg(&self) -> String {
        let (width, height, left, top, bottom) = (320.0, 170.0, 36.0, 10.0, 36.0);
        let plot_width = width - left - 10.0;
        let plot_height = height - top - bottom;
        let most = self.bins.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64;
        let (ticks, step) = nice_ticks(0.0, most, 3);
        let ceiling = ticks.last().copied().unwrap_or(most).max(1.0);
        let y = |count: f64| round(top + (1.0 - count / ceiling) * plot_height);
        let slot = plot_width / self.bins.len().max(1) as f64;
        let has_best = self.best_bin.is_some_and(|bin| bin < self.bins.len());
        let mut svg = format!(
            r#"<svg class="chart histogram" data-chart="{}" data-series-count="{}" viewBox="0 0 {width} {height}" role="img"><g class="grid">"#,
            escape(&self.id),
            1 + usize::from(has_best)
        );
        for tick in &ticks {
            let at = y(*tick);
            let _ = write!(
                svg,
                r#"<line x1="{left}" x2="{}" y1="{at}" y2="{at}"/><text class="y-label" x="{}" y="{}">{}</text>"#,
                left + plot_width,
                left - 6.0,
                at + 4.0,
                plain(*tick, step.max(1.0))
            );
        }
        svg.push_str("</g>");
        let _ = write!(
            svg,
            r#"<g class="bars" data-series="count" data-label="individuals" data-points="{}">"#,
            self.bins.len()
        );
        for (index, bin) in self.bins.iter().enumerate() {
            let x = round(left + index as f64 * slot + slot * 0.08);
            let top_at = y(bin.count as f64);
            let _ = write!(
                svg,
                r#"<rect x="{x}" y="{top_at}" width="{}" height="{}" data-count="{}"><title>{}</title></rect>"#,
                round(slot * 0.84),
                round(top + plot_height - top_at),
                bin.count,
                escape(&bin.title)
            );
        }
        svg.push_str("</g>");
        // Labels under a few bins: every one when they fit, else about five.
        let every = self.bins.len().div_ceil(5).max(1);
        for (index, bin) in self.bins.iter().enumerate() {
            if index % every == 0 || (index + 1 == self.bins.len() && self.bins.len() <= 6) {
                let _ = write!(
                    svg,
                    r#"<text class="x-label" x="{}" y="{}">{}</text>"#,
                    round(left + (index as f64 + 0.5) * slot),
                    top + plot_height + 16.0,
                    escape(&bin.label)
                );
            }
        }
        if let Some(best) = self.best_bin.filter(|bin| *bin < self.bins.len()) {
            let x = round(left + (best as f64 + 0.5) * slot);
            let _ = write!(
                svg,
                r#"<g class="best-marker" data-series="best" data-label="best genome" data-points="1"><line x1="{x}" x2="{x}" y1="{top}" y2="{}"/></g>"#,
                top + plot_height
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_ends_and_extremes() {
        let points: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, if i == 5_000 { 99.0 } else { 0.0 })).collect();
        let kept = thin(&points, 100);
        assert!(kept.len() <= 100, "{}", kept.len());
        assert_eq!(kept.first(), Some(&(0.0, 0.0)));
        assert_eq!(kept.last(), Some(&(9_999.0, 0.0)));
        assert!(kept.contains(&(5_000.0, 99.0)), "the spike stays");
        assert!(kept.windows(2).all(|w| w[0].0 < w[1].0), "in order");
        assert_eq!(thin(&points[..50], 100).len(), 50, "short series are drawn whole");
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let (ticks, step) = nice_ticks(0.13, 0.87, 5);
        assert_eq!(step, 0.2);
        assert!(ticks[0] <= 0.13 && *ticks.last().unwrap_or(&0.0) >= 0.87, "{ticks:?}");
        let (flat, _) = nice_ticks(1.0, 1.0, 5);
        assert!(flat.len() >= 2, "a flat series still gets an axis: {flat:?}");
        assert_eq!(YFormat::Percent.label(-0.25, 0.05), "-25%");
        assert_eq!(YFormat::Times.label(1.5, 0.5), "1.5×");
        assert_eq!(YFormat::Plain.label(-0.0, 0.1), "0");
        assert_eq!(YFormat::Times.label(1.25, 0.25), "1.25×", "a quarter step keeps two decimals");
        assert_eq!(YFormat::Plain.label(40.0, 20.0), "40");
    }

    #[test]
    fn time_axes_are_labelled_by_year_month_or_date() {
        let at = |text: &str| text.parse::<Timestamp>().map(|t| t.0 as f64).unwrap_or_default();
        let years = time_ticks(at("2003-01-02"), at("2009-12-31"));
        let labels: Vec<&str> = years.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["2004", "2005", "2006", "2007", "2008", "2009"]);
        let months = time_ticks(at("2010-01-04"), at("2010-12-31"));
        assert!(months.iter().all(|t| t.1.starts_with("2010-")), "{months:?}");
        let minutes = time_ticks(at("2024-01-02T09:30:00Z"), at("2024-01-02T16:00:00Z"));
        assert_eq!(minutes.len(), 6);
        assert_eq!(minutes[0].1, "01-02 09:30");
    }

    #[test]
    fn a_chart_says_what_it_drew() {
        let mut chart = LineChart::new("c", XAxis::Count, YFormat::Plain, HALF_WIDTH, 200.0);
        chart.lines.push(Line {
            name: "best".into(),
            label: "Best <fitness>".into(),
            color: PALETTE[0],
            dashed: false,
            points: vec![(1.0, 0.5), (2.0, f64::NAN), (3.0, 0.7)],
        });
        chart.bands.push(Band {
            name: "spread".into(),
            label: "spread".into(),
            color: PALETTE[1],
            points: vec![(1.0, 0.1, 0.3), (3.0, 0.2, 0.4)],
        });
        let svg = chart.to_svg();
        assert!(svg.contains(r#"data-series-count="2""#), "{svg}");
        assert!(svg.contains(r#"data-series="best" data-label="Best &lt;fitness&gt;" data-points="2""#), "{svg}");
        assert!(svg.contains(r#"data-series="spread" data-label="spread" data-points="2""#), "{svg}");
        assert!(!svg.contains("NaN"), "{svg}");
        assert!(chart.legend().contains("Best &lt;fitness&gt;"));
    }
}
