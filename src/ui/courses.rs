//! `/ui/courses`: every course with its term, lock state, counts and how
//! many reconciliation findings it has; sortable and filterable through the
//! query string, so it works without script.

use axum::extract::{Query, State};
use gradebook_domain::CourseId;
use maud::{html, Markup};
use serde::Deserialize;

use super::session::Viewer;
use super::{layout, Nav, UiResult};
use crate::http::auth::Caller;
use crate::http::SharedState;

#[derive(Deserialize, Default)]
pub struct ListParams {
    /// Only this term.
    term: Option<String>,
    /// Text found in the course id or title.
    q: Option<String>,
    /// `locked`, `open` or anything else for both.
    state: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
}

struct Row {
    course_id: String,
    title: String,
    term: String,
    locked: bool,
    students: i64,
    line_items: i64,
    findings: usize,
    /// Cells that need a registrar's eye: orphan, rejected, stale, over maximum.
    cells_to_check: usize,
}

const COLUMNS: [(&str, &str); 7] = [
    ("course", "Course"),
    ("term", "Term"),
    ("state", "Lock state"),
    ("students", "Students"),
    ("items", "Line items"),
    ("findings", "Findings"),
    ("cells", "Cells to check"),
];

pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
    Query(p): Query<ListParams>,
) -> UiResult<Markup> {
    let term = p.term.clone().filter(|t| !t.trim().is_empty());
    // All terms for the filter, then this term's courses.
    let all = state.engine.courses(None).await?;
    let mut terms: Vec<String> = all.iter().map(|c| c.term.clone()).collect();
    terms.sort();
    terms.dedup();

    let needle = p.q.clone().unwrap_or_default().trim().to_lowercase();
    let mut rows = Vec::new();
    for c in all {
        if term.as_ref().is_some_and(|t| *t != c.term)
            || (!needle.is_empty()
                && !c.course_id.to_lowercase().contains(&needle)
                && !c.title.to_lowercase().contains(&needle))
            || (p.state.as_deref() == Some("locked") && !c.locked)
            || (p.state.as_deref() == Some("open") && c.locked)
        {
            continue;
        }
        let report = findings(&state, &viewer.caller, &c.course_id).await?;
        rows.push(Row {
            findings: report.findings.len(),
            cells_to_check: ["orphan", "rejected", "stale", "over_maximum"]
                .iter()
                .map(|s| report.summary.get(s).copied().unwrap_or(0))
                .sum(),
            course_id: c.course_id,
            title: c.title,
            term: c.term,
            locked: c.locked,
            students: c.students,
            line_items: c.line_items,
        });
    }
    let sort = p.sort.clone().unwrap_or_else(|| "course".into());
    let desc = p.dir.as_deref() == Some("desc");
    rows.sort_by(|a, b| {
        let o = match sort.as_str() {
            "term" => a.term.cmp(&b.term),
            "state" => a.locked.cmp(&b.locked),
            "students" => a.students.cmp(&b.students),
            "items" => a.line_items.cmp(&b.line_items),
            "findings" => a.findings.cmp(&b.findings),
            "cells" => a.cells_to_check.cmp(&b.cells_to_check),
            _ => std::cmp::Ordering::Equal,
        };
        let o = o.then_with(|| a.course_id.cmp(&b.course_id));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    Ok(layout(
        "Courses",
        Some(&viewer),
        Nav::Courses,
        html! {
            h1 { "Courses" }
            (filters(&p, &terms))
            @if rows.is_empty() {
                p.empty { "No course matches these filters." }
            } @else {
                div.table-wrap {
                    table.data #courses {
                        caption { (rows.len()) " course" @if rows.len() != 1 { "s" } }
                        thead { tr {
                            @for (key, label) in COLUMNS {
                                (header(&p, key, label, &sort, desc))
                            }
                        } }
                        tbody {
                            @for r in &rows {
                                tr {
                                    th scope="row" {
                                        a href=(format!("/ui/courses/{}", r.course_id)) { (r.course_id) }
                                        div.sub { (r.title) }
                                    }
                                    td { (r.term) }
                                    td { @if r.locked { span.badge.locked { (super::lock_icon()) " Locked" } } @else { span.badge.open { "Open" } } }
                                    td.num { (r.students) }
                                    td.num { (r.line_items) }
                                    td.num { @if r.findings > 0 { span.warn { "⚠ " (r.findings) } } @else { "0" } }
                                    td.num { @if r.cells_to_check > 0 { span.warn { "⚠ " (r.cells_to_check) } } @else { "0" } }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// The reconciliation report, as the REST endpoint gives it.
pub async fn findings(
    state: &SharedState,
    caller: &Caller,
    course_id: &str,
) -> UiResult<gradebook_projections::reports::reconciliation::Reconciliation> {
    caller.require_read()?;
    let course_id = CourseId::parse(course_id.to_string())?;
    Ok(state
        .engine
        .reconciliation(&course_id, crate::services::reads::DEFAULT_THRESHOLD)
        .await?)
}

fn query_with(p: &ListParams, sort: &str, dir: &str) -> String {
    let mut pairs = vec![("sort", sort.to_string()), ("dir", dir.to_string())];
    for (k, v) in [("term", &p.term), ("q", &p.q), ("state", &p.state)] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            pairs.push((k, v.clone()));
        }
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

fn header(p: &ListParams, key: &str, label: &str, sort: &str, desc: bool) -> Markup {
    let active = sort == key;
    let next_dir = if active && !desc { "desc" } else { "asc" };
    let aria = match (active, desc) {
        (true, true) => Some("descending"),
        (true, false) => Some("ascending"),
        _ => None,
    };
    html! {
        th scope="col" aria-sort=[aria] {
            a href=(format!("/ui/courses?{}", query_with(p, key, next_dir))) {
                (label)
                @if active { span aria-hidden="true" { @if desc { " ▼" } @else { " ▲" } } }
                span.sr-only { ", sort " @if next_dir == "asc" { "ascending" } @else { "descending" } }
            }
        }
    }
}

fn filters(p: &ListParams, terms: &[String]) -> Markup {
    let term = p.term.clone().unwrap_or_default();
    let state = p.state.clone().unwrap_or_default();
    html! {
        form.filters method="get" action="/ui/courses" role="search" {
            div.field {
                label for="q" { "Course or title contains" }
                input #q type="search" name="q" value=(p.q.clone().unwrap_or_default());
            }
            div.field {
                label for="term" { "Term" }
                select #term name="term" {
                    option value="" selected[term.is_empty()] { "All terms" }
                    @for t in terms { option value=(t) selected[*t == term] { (t) } }
                }
            }
            div.field {
                label for="state" { "Lock state" }
                select #state name="state" {
                    option value="" selected[state.is_empty()] { "Any" }
                    option value="open" selected[state == "open"] { "Open" }
                    option value="locked" selected[state == "locked"] { "Locked" }
                }
            }
            @if let Some(s) = &p.sort { input type="hidden" name="sort" value=(s); }
            @if let Some(d) = &p.dir { input type="hidden" name="dir" value=(d); }
            div.field.actions {
                button type="submit" { "Filter" }
                a href="/ui/courses" { "Clear" }
            }
        }
    }
}
