//! A student's course percentage over time, drawn as SVG on the server.
//!
//! The series replays the student's slice of the log through the same
//! [`CourseView`] fold and grade arithmetic the grades endpoint uses, one
//! event at a time, so every point is the percentage the engine would have
//! reported at that moment. Coordinates are computed in decimals; the chart
//! is plain SVG with presentation attributes (no inline CSS, so the pages'
//! content security policy holds).

use chrono::{DateTime, Utc};
use gradebook_domain::course::CourseEvent;
use gradebook_projections::projector::events::{AnyEvent, Envelope};
use gradebook_projections::reports::grades::{cell_scores, item_specs};
use gradebook_projections::reports::grading::student_grade;
use gradebook_projections::tables::view::CourseView;
use maud::{html, Markup};
use rust_decimal::Decimal;

/// The percentage from `at` on (`None`: no grade yet, nothing counted).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub at: DateTime<Utc>,
    pub percent: Option<Decimal>,
}

/// A span of time the course was locked; `to` is `None` while still locked.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
}

/// A moment worth marking (a completion-only final that counted): when,
/// and the item's label, which the chart writes beside the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub at: DateTime<Utc>,
    pub item: String,
}

fn percent_of(view: &CourseView, user_id: &str) -> Option<Decimal> {
    let learner = view
        .enrollments
        .get(user_id)
        .is_some_and(|e| e.is_learner());
    if !learner {
        return None;
    }
    student_grade(&view.policy, &item_specs(view), &cell_scores(view, user_id)).percent
}

/// The student's course percentage after each event that could move it;
/// a point only where the value changes.
pub fn percent_series(course_id: &str, events: &[Envelope], user_id: &str) -> Vec<Point> {
    let mut view: Option<CourseView> = None;
    let mut out: Vec<Point> = Vec::new();
    for (i, env) in events.iter().enumerate() {
        match view.as_mut() {
            Some(v) => v.apply(env),
            None => view = CourseView::fold(course_id, &events[..=i], None),
        }
        let Some(v) = view.as_ref() else { continue };
        let moves = match &env.event {
            AnyEvent::Course(
                CourseEvent::CourseLocked { .. } | CourseEvent::CourseUnlocked { .. },
            ) => false,
            AnyEvent::Course(_) | AnyEvent::LineItem(_) => true,
            AnyEvent::Enrollment(_) | AnyEvent::Score(_) => {
                env.aggregate_id.rsplit('/').next() == Some(user_id)
            }
        };
        if !moves {
            continue;
        }
        let percent = percent_of(v, user_id);
        if out.last().map(|p| &p.percent) != Some(&percent) {
            out.push(Point {
                at: env.meta.received_at,
                percent,
            });
        }
    }
    out
}

const W: i64 = 760;
const H: i64 = 260;
const LEFT: i64 = 48;
const RIGHT: i64 = 20;
const TOP: i64 = 16;
const BOTTOM: i64 = 40;

/// One decimal place, as SVG reads it.
fn n(d: Decimal) -> String {
    d.round_dp(1).normalize().to_string()
}

struct Scale {
    t0: DateTime<Utc>,
    span_ms: i64,
}

impl Scale {
    fn x(&self, t: DateTime<Utc>) -> Decimal {
        let dt = (t - self.t0).num_milliseconds().clamp(0, self.span_ms);
        Decimal::from(LEFT)
            + Decimal::from(dt) * Decimal::from(W - LEFT - RIGHT) / Decimal::from(self.span_ms)
    }

    fn y(&self, percent: Decimal) -> Decimal {
        // Percentages above 100 (extra credit) are drawn at the top edge.
        let p = percent.clamp(Decimal::ZERO, Decimal::ONE_HUNDRED);
        Decimal::from(TOP)
            + (Decimal::ONE_HUNDRED - p) * Decimal::from(H - TOP - BOTTOM) / Decimal::ONE_HUNDRED
    }
}

/// The chart, from the first point to a little after the last; a lock
/// still open at `now` runs to the right edge.
pub fn svg(points: &[Point], locks: &[Span], marks: &[Mark], now: DateTime<Utc>) -> Markup {
    let first = points
        .first()
        .map(|p| p.at)
        .into_iter()
        .chain(locks.iter().map(|l| l.from))
        .min()
        .unwrap_or(now);
    // The axis ends a little after the last thing that happened (not at
    // `now`, which could squash a term's history into a corner); the last
    // value holds to the edge.
    let last = points
        .iter()
        .map(|p| p.at)
        .chain(locks.iter().flat_map(|l| [Some(l.from), l.to]).flatten())
        .chain(marks.iter().map(|m| m.at))
        .max()
        .unwrap_or(now)
        .min(now);
    let span = (last - first).max(chrono::Duration::minutes(1));
    let end = last + span / 10;
    let s = Scale {
        t0: first,
        span_ms: (end - first).num_milliseconds().max(1),
    };
    // A step line: each value holds until the next one; gaps where no grade.
    let mut path = String::new();
    for (i, p) in points.iter().enumerate() {
        let Some(percent) = p.percent else { continue };
        let x0 = s.x(p.at);
        let x1 = s.x(points.get(i + 1).map_or(end, |q| q.at));
        let y = s.y(percent);
        path.push_str(&format!("M{} {}H{}", n(x0), n(y), n(x1)));
        if let Some(next) = points.get(i + 1).and_then(|q| q.percent) {
            path.push_str(&format!("V{}", n(s.y(next))));
        }
    }
    // Tick labels as fine as the span needs.
    let label_format = match end - first {
        d if d < chrono::Duration::hours(2) => "%H:%M:%S",
        d if d < chrono::Duration::days(3) => "%m-%d %H:%M",
        _ => "%Y-%m-%d",
    };
    let bottom = Decimal::from(H - BOTTOM);
    let plot_w = Decimal::from(W - LEFT - RIGHT);
    let last = points.iter().rev().find_map(|p| p.percent);
    let desc = match last {
        Some(p) => format!(
            "Course percentage from {} to {}; now {}%. {} lock period(s).",
            first.format("%Y-%m-%d %H:%M"),
            end.format("%Y-%m-%d %H:%M"),
            n(p),
            locks.len()
        ),
        None => "No course percentage yet.".to_string(),
    };
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {H}")) role="img" aria-labelledby="chart-title chart-desc" {
            title #chart-title { "Course percentage over time" }
            desc #chart-desc { (desc) }
            @for l in locks {
                @let x0 = s.x(l.from);
                @let x1 = s.x(l.to.unwrap_or(end));
                rect.lock x=(n(x0)) y=(TOP) width=(n((x1 - x0).max(Decimal::ONE))) height=(H - TOP - BOTTOM) fill="#f3d9a4" fill-opacity="0.55" {
                    title { "Locked " (l.from.format("%Y-%m-%d %H:%M")) " – " (l.to.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "now".into())) }
                }
            }
            @for pct in [0, 25, 50, 75, 100] {
                @let y = s.y(Decimal::from(pct));
                line x1=(LEFT) x2=(W - RIGHT) y1=(n(y)) y2=(n(y)) stroke="#d5dae1" stroke-width="1" {}
                text x=(LEFT - 6) y=(n(y + Decimal::from(4))) text-anchor="end" font-size="11" fill="#4a5361" { (pct) "%" }
            }
            line x1=(LEFT) x2=(W - RIGHT) y1=(n(bottom)) y2=(n(bottom)) stroke="#8a93a3" stroke-width="1" {}
            @for k in 0..=4i64 {
                @let t = first + chrono::Duration::milliseconds(s.span_ms * k / 4);
                @let x = Decimal::from(LEFT) + plot_w * Decimal::from(k) / Decimal::from(4);
                text x=(n(x)) y=(H - BOTTOM + 16) text-anchor=(match k { 0 => "start", 4 => "end", _ => "middle" }) font-size="11" fill="#4a5361" {
                    (t.format(label_format))
                }
            }
            @for m in marks {
                @let x = s.x(m.at);
                line.final x1=(n(x)) x2=(n(x)) y1=(TOP) y2=(n(bottom)) stroke="#6b3fa0" stroke-width="1.5" stroke-dasharray="4 3" {
                    title { (m.item) " (completion-only) counted" }
                }
                text.final-label x=(n(x + Decimal::from(3))) y=(TOP + 10) font-size="11" fill="#6b3fa0" { (m.item) " counted" }
            }
            path d=(path) fill="none" stroke="#1f5fbf" stroke-width="2.5" stroke-linejoin="round" {}
            @for p in points {
                @if let Some(pc) = p.percent {
                    circle cx=(n(s.x(p.at))) cy=(n(s.y(pc))) r="3" fill="#1f5fbf" {
                        title { (p.at.format("%Y-%m-%d %H:%M:%S UTC")) ": " (n(pc)) "%" }
                    }
                }
            }
            text x=(LEFT) y=(H - 6) font-size="11" fill="#4a5361" { "Time (UTC)" }
        }
    }
}
