//! Small SVG bar charts, drawn on the server (no script): a day in hourly bars.

use maud::{Markup, html};

/// A series: its name, CSS class and one value per bar.
pub struct Series<'a> {
    pub name: &'a str,
    pub class: &'a str,
    pub values: Vec<u64>,
}

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 96.0;

/// Bars side by side for each bucket; `labels` name the first and last bucket.
pub fn bars(title: &str, series: &[Series<'_>], labels: (&str, &str)) -> Markup {
    let buckets = series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = WIDTH / buckets as f64;
    let bar = (slot - 2.0) / series.len().max(1) as f64;
    html! {
        figure.chart {
            figcaption {
                (title) " · highest " (top)
                @for s in series { " " span.key.(s.class) { (s.name) } }
            }
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT + 14.0) } role="img" aria-label=(title) {
                line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) class="axis" {}
                @for (k, s) in series.iter().enumerate() {
                    @for (i, value) in s.values.iter().enumerate() {
                        @let h = (*value as f64 / top as f64) * (HEIGHT - 4.0);
                        @if *value > 0 {
                            rect class=(s.class) x=(format!("{:.1}", i as f64 * slot + 1.0 + k as f64 * bar)) y=(format!("{:.1}", HEIGHT - h)) width=(format!("{:.1}", bar)) height=(format!("{:.1}", h)) {
                                title { (s.name) ": " (value) }
                            }
                        }
                    }
                }
                text x="0" y=(HEIGHT + 12.0) class="label" { (labels.0) }
                text x=(WIDTH) y=(HEIGHT + 12.0) class="label end" { (labels.1) }
            }
        }
    }
}
