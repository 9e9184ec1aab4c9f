//! `/ui/courses/{id}/students/{user}`: a student's grade history. The
//! provenance report (the same [`provenance`] the REST endpoint builds) as
//! one timeline: who sent what, when, through which door, and what the
//! engine did with it; above it, the course percentage over time as SVG
//! with lock periods and completion-only finals marked.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use gradebook_domain::{CourseId, UserId};
use gradebook_projections::reports::audit::read_student_events;
use gradebook_projections::reports::provenance::{
    knows_student, provenance, Origin, PostOutcome, Provenance,
};
use gradebook_projections::tables::queries;
use maud::{html, Markup};

use super::chart::{self, Mark, Span};
use super::session::Viewer;
use super::{layout, when, Nav, UiError, UiResult};
use crate::engine::EngineError;
use crate::http::error::ApiError;
use crate::http::extract::Path as ApiPath;
use crate::http::SharedState;

fn engine_err(e: impl Into<EngineError>) -> UiError {
    UiError::from(ApiError::from(e.into()))
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// One line of the timeline.
struct Entry<'a> {
    origin: &'a Origin,
    item: Option<&'a str>,
    what: Markup,
    outcome: Markup,
}

pub async fn page(
    State(state): State<SharedState>,
    viewer: Viewer,
    ApiPath((course_id, user_id)): ApiPath<(String, String)>,
) -> UiResult<Markup> {
    let course_id = CourseId::parse(course_id)?;
    let user_id = UserId::parse(user_id)?;
    let db = &state.engine.db;
    // The same reads the provenance endpoint makes.
    let view = queries::load_course_view(db, course_id.as_str())
        .await
        .map_err(engine_err)?
        .ok_or_else(|| {
            UiError::new(
                StatusCode::NOT_FOUND,
                "Course not found",
                format!("There is no course {course_id}."),
            )
        })?;
    let events = read_student_events(db, course_id.as_str(), user_id.as_str())
        .await
        .map_err(|e| engine_err(queries::QueryError::from(e)))?;
    if !knows_student(&events, user_id.as_str()) {
        return Err(UiError::new(
            StatusCode::NOT_FOUND,
            "Student not found",
            format!("{user_id} was never enrolled in {course_id} and no tool ever posted a score for them."),
        ));
    }
    let p = provenance(&view, &events, user_id.as_str());
    // The chart replays the whole course log (grading policy changes move
    // the percentage too), the read the as-of grades use.
    let course_log =
        gradebook_projections::reports::audit::read_course_events(db, course_id.as_str())
            .await
            .map_err(|e| engine_err(queries::QueryError::from(e)))?;
    let series = chart::percent_series(course_id.as_str(), &course_log, user_id.as_str());
    let locks: Vec<Span> = p
        .locks
        .iter()
        .filter_map(|l| {
            Some(Span {
                from: time(&l.locked.received_at)?,
                to: l.unlocked.as_ref().and_then(|u| time(&u.received_at)),
            })
        })
        .collect();
    let completion_only: Vec<&str> = view
        .line_items
        .iter()
        .filter(|li| li.spec.completion_only)
        .map(|li| li.line_item_id.as_str())
        .collect();
    let marks: Vec<Mark> = p
        .items
        .iter()
        .filter(|i| completion_only.contains(&i.line_item_id.as_str()))
        .flat_map(|i| {
            i.posts
                .iter()
                .filter(|e| {
                    e.applied
                        && e.post.activity_progress == "Completed"
                        && e.post.grading_progress == "FullyGraded"
                })
                .filter_map(move |e| {
                    Some(Mark {
                        at: time(&e.origin.received_at)?,
                        item: i.label.clone(),
                    })
                })
        })
        .collect();
    let svg = chart::svg(&series, &locks, &marks, Utc::now());
    Ok(render(&viewer, &p, svg, &series))
}

fn outcome(o: PostOutcome, reason: Option<&str>, kept: Option<&str>) -> Markup {
    html! {
        @match o {
            PostOutcome::Accepted => span.chip.st-in_sync { "✓ accepted" },
            PostOutcome::Cleared => span.chip.st-missing { "– cleared" },
            PostOutcome::Stale => span.chip.st-stale { "↺ ignored, stale"
                @if let Some(k) = kept { " (kept " (when(k)) ")" } },
            PostOutcome::Rejected => span.chip.st-rejected { "✗ rejected"
                @if let Some(r) = reason { ": " (r.replace('_', " ")) } },
        }
    }
}

fn timeline(p: &Provenance) -> Vec<Entry<'_>> {
    let mut out: Vec<Entry> = Vec::new();
    for item in &p.items {
        for h in &item.history {
            out.push(Entry {
                origin: &h.origin,
                item: Some(&item.label),
                what: html! { "Line item " (h.event_type.trim_start_matches("LineItem").to_lowercase()) },
                outcome: html! { span.chip.st-in_sync { "recorded" } },
            });
        }
        for e in &item.posts {
            out.push(Entry {
                origin: &e.origin,
                item: Some(&item.label),
                what: html! {
                    "Score "
                    strong { (e.post.score_given.clone().unwrap_or_else(|| "none".into())) }
                    @if let Some(m) = &e.post.score_maximum { " / " (m) }
                    @if let Some(pts) = &e.points { span.sub { " = " (pts) " / " (item.maximum) " pts" } }
                    div.sub { (e.post.activity_progress) ", " (e.post.grading_progress) " · tool time " (when(&e.post.timestamp))
                        @if let Some(c) = &e.post.comment { " · “" (c) "”" } }
                    // Numbers a decimal had to round, as the tool sent them.
                    @if let Some(t) = &e.post.score_given_as_sent { div.sub { "score sent as " (t) } }
                    @if let Some(t) = &e.post.score_maximum_as_sent { div.sub { "maximum sent as " (t) } }
                },
                outcome: outcome(e.outcome, e.reason, e.kept_timestamp.as_deref()),
            });
        }
    }
    for h in &p.enrollment_history {
        out.push(Entry {
            origin: &h.origin,
            item: None,
            what: html! { (h.event_type) " " span.sub { (h.detail.to_string()) } },
            outcome: html! { span.chip.st-in_sync { "recorded" } },
        });
    }
    for l in &p.locks {
        out.push(Entry {
            origin: &l.locked,
            item: None,
            what: html! { "Course locked" @if let Some(r) = &l.reason { " · “" (r) "”" } },
            outcome: html! { span.chip.st-rejected { (super::lock_icon()) " grade changes refused" } },
        });
        if let Some(u) = &l.unlocked {
            out.push(Entry {
                origin: u,
                item: None,
                what: html! { "Course unlocked" @if let Some(r) = &l.unlock_reason { " · “" (r) "”" } },
                outcome: html! { span.chip.st-in_sync { "grade changes allowed" } },
            });
        }
    }
    out.sort_by_key(|e| e.origin.position);
    out
}

fn render(viewer: &Viewer, p: &Provenance, svg: Markup, series: &[chart::Point]) -> Markup {
    let base = format!("/ui/courses/{}", p.course_id);
    let name = p.name.clone().unwrap_or_else(|| p.user_id.clone());
    let entries = timeline(p);
    layout(
        &format!("{name} in {}", p.course_id),
        Some(viewer),
        Nav::Courses,
        html! {
            nav.crumbs aria-label="Breadcrumb" { a href="/ui/courses" { "Courses" } " › " a href=(base) { (p.course_id) } " › " (name) }
            h1 { (name) " " span.sub { (p.user_id) " in " (p.course_id) } }
            @match &p.grade {
                Some(g) => {
                    dl.summary #grade-summary {
                        div { dt { "Course percentage" } dd #percent { @match &g.percent { Some(x) => { (x) "%" }, None => "—" } } }
                        div { dt { "Letter" } dd #letter { (g.letter.clone().unwrap_or_else(|| "—".into())) } }
                        div { dt { "Points" } dd { (g.points_earned.as_deref().unwrap_or("—")) " / " (g.points_possible.as_deref().unwrap_or("—")) } }
                        @if let Some(e) = &p.enrollment { div { dt { "Enrollment" } dd { (e.role) ", " (e.status) } } }
                    }
                    @if let Some(why) = &g.not_computable { p.note #not-computable { (why) } }
                },
                None => p.note { (p.grade_note.clone().unwrap_or_default()) },
            }
            h2 { "Course percentage over time" }
            figure.chart-box {
                (svg)
                figcaption.chart-legend {
                    span.key.line { "Course percentage" }
                    span.key.lock { "Course locked" }
                    span.key.final { "Completion-only final counted" }
                }
            }
            details {
                summary { "Chart data as a table" }
                table.data.compact {
                    thead { tr { th scope="col" { "From" } th scope="col" { "Course percentage" } } }
                    tbody { @for pt in series { tr {
                        td { (pt.at.format("%Y-%m-%d %H:%M:%S UTC")) }
                        td.num { @match pt.percent { Some(x) => { (x.round_dp(2)) "%" }, None => "no grade" } }
                    } } }
                }
            }
            h2 { "Line items now" }
            div.table-wrap {
                table.data #items {
                    thead { tr {
                        th scope="col" { "Line item" } th scope="col" { "Counted score" } th scope="col" { "State" } th scope="col" { "Why" } th scope="col" { "Posts" }
                    } }
                    tbody { @for i in &p.items {
                        tr {
                            th scope="row" { (i.label) div.sub { (i.line_item_id) @if i.deleted { " · deleted" } } }
                            td.num { @match i.grade_item.as_ref().and_then(|g| g.score.clone()) { Some(s) => { (s) " / " (i.maximum) }, None => "—" } }
                            td { @if let Some(g) = &i.grade_item { (serde_json::to_value(g.state).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_default()) } }
                            td { @if let Some(g) = &i.grade_item { (g.reason) } }
                            td.num { (i.posts.len()) }
                        }
                    } }
                }
            }
            h2 { "Timeline" }
            p.hint { "Every event behind these numbers, oldest first: who sent it, when the engine received it, through which door, and what the engine did." }
            div.table-wrap {
                table.data #timeline {
                    thead { tr {
                        th scope="col" { "#" } th scope="col" { "Received" } th scope="col" { "Line item" } th scope="col" { "What was sent" }
                        th scope="col" { "Who" } th scope="col" { "From" } th scope="col" { "What the engine did" }
                    } }
                    tbody { @for e in &entries {
                        tr {
                            td.num { (e.origin.position) }
                            td.nowrap { (when(&e.origin.received_at)) }
                            td { (e.item.unwrap_or("—")) }
                            td { (e.what) }
                            td { code { (e.origin.actor) } }
                            td { (e.origin.source) div.sub { "request " code { (e.origin.request_id) }
                                @if let Some(b) = &e.origin.batch_id { " · batch " code { (b) } } } }
                            td { (e.outcome) }
                        }
                    } }
                }
            }
        },
    )
}
