//! The retainer chart: hours used over time against the hours included, as a self-contained SVG.

use std::fmt::Write;

use cutover_core::Project;
use time::Date;

const W: f64 = 640.0;
const H: f64 = 260.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 36.0;

/// The cumulative hours per day of logged time, in date order.
pub fn cumulative(p: &Project) -> Vec<(Date, f64)> {
    let mut entries: Vec<(Date, f64)> = p.retainer.entries.iter().map(|e| (e.date, e.hours.as_f64())).collect();
    entries.sort_by_key(|e| e.0);
    let mut out: Vec<(Date, f64)> = Vec::new();
    let mut total = 0.0;
    for (d, h) in entries {
        total += h;
        match out.last_mut() {
            Some(last) if last.0 == d => last.1 = total,
            _ => out.push((d, total)),
        }
    }
    out
}

/// The chart as SVG: a step line of hours used, a dashed line at the included hours, and axis labels.
pub fn retainer_svg(p: &Project, today: Date) -> String {
    let included = p.retainer.summary().included_hours.as_f64();
    let points = cumulative(p);
    let start = points.first().map_or(p.plan_date, |f| f.0.min(p.plan_date));
    let end = points.last().map_or(today, |l| l.0.max(today)).max(start.next_day().unwrap_or(start));
    let top_hours = points.iter().map(|x| x.1).fold(included, f64::max) * 1.15;
    let span = (end - start).whole_days().max(1) as f64;
    let x = |d: Date| LEFT + (d - start).whole_days() as f64 / span * (W - LEFT - RIGHT);
    let y = |h: f64| TOP + (1.0 - h / top_hours) * (H - TOP - BOTTOM);

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="Retainer hours used against {included} included">"#
    );
    let _ = write!(s, r##"<rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>"##);
    // Axes.
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#888"/><line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#888"/>"##,
        H - BOTTOM,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
    for h in [0.0, included / 2.0, included] {
        let _ = write!(
            s,
            r##"<text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#444">{h} h</text>"##,
            LEFT - 6.0,
            y(h) + 4.0
        );
    }
    let _ = write!(
        s,
        r##"<text x="{LEFT}" y="{}" font-size="11" fill="#444">{start}</text><text x="{}" y="{}" font-size="11" text-anchor="end" fill="#444">{end}</text>"##,
        H - 12.0,
        W - RIGHT,
        H - 12.0
    );
    // The hours included.
    let _ = write!(
        s,
        r##"<line class="included" x1="{LEFT}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#c0392b" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#c0392b">{included} h included</text>"##,
        y(included),
        W - RIGHT,
        y(included),
        W - RIGHT,
        y(included) - 4.0
    );
    // Hours used: a step line from zero at the start.
    let mut path = format!("{:.1},{:.1}", x(start), y(0.0));
    let mut last = 0.0;
    for (d, h) in &points {
        let _ = write!(path, " {:.1},{:.1} {:.1},{:.1}", x(*d), y(last), x(*d), y(*h));
        last = *h;
    }
    let _ = write!(path, " {:.1},{:.1}", x(end), y(last));
    let _ = write!(s, r##"<polyline class="used" points="{path}" fill="none" stroke="#2c6fbb" stroke-width="2"/>"##);
    for (d, h) in &points {
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#2c6fbb"><title>{d}: {h} h</title></circle>"##,
            x(*d),
            y(*h)
        );
    }
    s.push_str("</svg>");
    s
}
