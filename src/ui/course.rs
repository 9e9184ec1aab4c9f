//! `/ui/courses/{id}`: the grade matrix (students x line items, each cell
//! the counted score and its reconciliation status in words and a symbol),
//! each student's percentage and letter, the course findings, lock and
//! unlock with a confirmation step, and an "as of" picker.
//!
//! The numbers come from [`course_grades`] and the statuses from
//! [`reconcile`], over one [`CourseView`] loaded the way the grades and
//! reconciliation endpoints load it (live, or folded from the log as of a
//! moment).

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use gradebook_domain::course::CourseEvent;
use gradebook_domain::CourseId;
use gradebook_projections::projector::events::AnyEvent;
use gradebook_projections::reports::audit::read_locks_and_refusals;
use gradebook_projections::reports::grades::{course_grades, item_specs, StudentRow};
use gradebook_projections::reports::grading::{GradeStatus, ItemState};
use gradebook_projections::reports::reconciliation::{reconcile, Finding, Reconciliation};
use gradebook_projections::tables::view::CourseView;
use gradebook_projections::tables::{kept, queries};
use maud::{html, Markup};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::session::Viewer;
use super::{csrf_field, layout, local_time_value, parse_local_time, Nav, UiError, UiResult};
use crate::engine::EngineError;
use crate::http::error::ApiError;
use crate::http::extract::Path as ApiPath;
use crate::http::SharedState;
use crate::services::api_tokens::{self, ApiRole};

/// How a cell's status reads: a symbol, a word, and a class for colour.
pub fn status_label(status: &str) -> (&'static str, &'static str) {
    match status {
        "in_sync" => ("✓", "in sync"),
        "provisional" => ("◐", "provisional"),
        "missing" => ("–", "missing"),
        "rejected" => ("✗", "rejected"),
        "stale" => ("↺", "ignored, stale"),
        "orphan" => ("?", "orphan"),
        "over_maximum" => ("▲", "over maximum"),
        _ => ("·", "unknown"),
    }
}

const LEGEND: [&str; 7] = [
    "in_sync",
    "provisional",
    "missing",
    "rejected",
    "stale",
    "orphan",
    "over_maximum",
];

#[derive(Deserialize, Default)]
pub struct CourseParams {
    /// A `datetime-local` value (UTC) or RFC 3339.
    as_of: Option<String>,
    /// `locked` or `unlocked` after a confirmed change, to say it was done.
    done: Option<String>,
}

fn course_not_found(course_id: &str, as_of: bool) -> UiError {
    UiError::new(
        StatusCode::NOT_FOUND,
        "Course not found",
        format!(
            "There is no course {course_id}{}.",
            if as_of { " at that moment" } else { "" }
        ),
    )
}

fn engine_err(e: impl Into<EngineError>) -> UiError {
    UiError::from(ApiError::from(e.into()))
}

/// Everything the matrix needs, computed from one view.
pub struct Matrix {
    pub view: CourseView,
    pub as_of: Option<DateTime<Utc>>,
    pub report: Reconciliation,
    pub grades: HashMap<String, StudentRow>,
    /// Who locked the course, when and why, while it is locked.
    pub lock: Option<LockNote>,
}

pub struct LockNote {
    pub by: String,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

/// Loads the course live, or as the engine held it at `as_of`, and runs the
/// grade and reconciliation arithmetic on it.
pub async fn matrix(
    state: &SharedState,
    course_id: &CourseId,
    as_of: Option<DateTime<Utc>>,
) -> UiResult<Matrix> {
    let db = &state.engine.db;
    let view = match as_of {
        // A future moment is the current state, as in the grades endpoint.
        Some(t) if t < Utc::now() => queries::course_view_as_of(db, course_id.as_str(), t).await,
        _ => queries::load_course_view(db, course_id.as_str()).await,
    }
    .map_err(engine_err)?
    .ok_or_else(|| course_not_found(course_id.as_str(), as_of.is_some()))?;
    let mut refusals = read_locks_and_refusals(db, course_id.as_str())
        .await
        .map_err(|e| engine_err(queries::QueryError::from(e)))?;
    if let Some(t) = as_of {
        refusals.retain(|e| e.meta.received_at <= t);
    }
    let report = reconcile(&view, &refusals, Decimal::ONE);
    let last_lock = refusals.iter().rev().find_map(|e| match &e.event {
        AnyEvent::Course(CourseEvent::CourseLocked { reason }) => Some((e, reason)),
        _ => None,
    });
    let lock = match last_lock.filter(|_| view.locked) {
        None => None,
        Some((e, reason)) => Some(LockNote {
            by: api_tokens::actor_in_words(db, &e.meta.actor)
                .await
                .map_err(|e| engine_err(queries::QueryError::from(e)))?,
            at: e.meta.received_at,
            reason: reason.clone(),
        }),
    };
    // Live, the kept rows; as of a moment, the arithmetic on that view.
    let grades = match as_of.filter(|t| *t < Utc::now()) {
        Some(t) => course_grades(&view, Some(t)),
        None => match kept::course_grades(db, course_id.as_str())
            .await
            .map_err(engine_err)?
        {
            Some(g) => g,
            None => course_grades(&view, None),
        },
    }
    .students
    .into_iter()
    .map(|s| (s.user_id.clone(), s))
    .collect();
    Ok(Matrix {
        view,
        as_of,
        report,
        grades,
        lock,
    })
}

pub async fn page(
    State(state): State<SharedState>,
    viewer: Viewer,
    ApiPath(course_id): ApiPath<String>,
    Query(p): Query<CourseParams>,
) -> UiResult<Response> {
    let course_id = CourseId::parse(course_id)?;
    let as_of = match p.as_of.as_deref().filter(|s| !s.trim().is_empty()) {
        None => None,
        Some(s) => Some(parse_local_time(s).ok_or_else(|| {
            UiError::bad_input(
                "The \"as of\" moment must be a date and time in UTC such as 2026-05-01T10:00, or a date such as 2026-05-01 (the end of that day).",
            )
        })?),
    };
    let started = std::time::Instant::now();
    let m = matrix(&state, &course_id, as_of).await?;
    let loaded = started.elapsed();
    let done = match p.done.as_deref() {
        Some("locked") => Some("Locked: tools and backfills can no longer change grades."),
        Some("unlocked") => Some("Unlocked: tools and backfills can change grades again."),
        _ => None,
    };
    let page = render(&viewer, &m, done).into_string();
    let total = started.elapsed();
    // What the page cost on the server, readable in the browser's tools.
    let timing = format!(
        "load;dur={:.1}, render;dur={:.1}, total;dur={:.1}",
        loaded.as_secs_f64() * 1000.0,
        (total - loaded).as_secs_f64() * 1000.0,
        total.as_secs_f64() * 1000.0
    );
    Ok((
        [(HeaderName::from_static("server-timing"), timing)],
        Html(page),
    )
        .into_response())
}

pub fn render(viewer: &Viewer, m: &Matrix, done: Option<&str>) -> Markup {
    let v = &m.view;
    let specs = item_specs(v);
    let base = format!("/ui/courses/{}", v.course_id);
    layout(
        &v.course_id,
        Some(viewer),
        Nav::Courses,
        html! {
            nav.crumbs aria-label="Breadcrumb" { a href="/ui/courses" { "Courses" } " › " (v.course_id) }
            @if let Some(done) = done {
                p.notice #done role="status" { (done) }
            }
            div.title-row {
                div {
                    h1 { (v.course_id) " " span.sub { (v.title) } }
                    p.meta {
                        "Term " strong { (v.term) } " · Scheme " strong { (v.policy.scheme.name()) }
                        " · "
                        @if v.locked { span.badge.locked #lock-state { (super::lock_icon()) " Locked" } } @else { span.badge.open #lock-state { "Open" } }
                        @if let Some(t) = m.as_of { " · " span.badge.asof { "As of " (t.format("%Y-%m-%d %H:%M:%S UTC")) } }
                    }
                    @if let Some(l) = &m.lock {
                        p.meta #lock-note {
                            "Locked by " strong { (l.by) } " on " (l.at.format("%Y-%m-%d %H:%M UTC"))
                            @if let Some(r) = &l.reason { ": " q { (r) } } @else { " (no reason given)" }
                        }
                    }
                }
                div.actions {
                    @if viewer.role() == ApiRole::Registrar && m.as_of.is_none() {
                        @if v.locked {
                            a.button #unlock href=(format!("{base}/unlock")) { "Unlock course…" }
                        } @else {
                            a.button #lock href=(format!("{base}/lock")) { "Lock course…" }
                            " "
                            a.button.secondary href=(format!("{base}/backfill")) { "Backfill grades…" }
                        }
                    }
                    " "
                    a.button.secondary href=(format!("/ui/audit?course_id={}", v.course_id)) { "Audit log" }
                }
            }
            form.asof method="get" action=(base) {
                label for="as_of" { "Show grades as of (UTC)" }
                input #as_of type="datetime-local" step="1" name="as_of"
                    value=[m.as_of.map(local_time_value)];
                button type="submit" { "Show" }
                @if m.as_of.is_some() { a href=(base) { "Back to now" } }
            }
            (matrix_table(m, &specs, &base))
            (legend())
            (findings(&m.report.findings))
        },
    )
}

fn matrix_table(
    m: &Matrix,
    specs: &[gradebook_projections::reports::grading::ItemSpec],
    base: &str,
) -> Markup {
    html! {
        h2 #grades { "Grades" }
        @if m.report.people.is_empty() {
            p.empty { "No students yet." }
        } @else {
            div.table-wrap.matrix-wrap {
                table.data.matrix #matrix {
                    caption { (m.report.people.len()) " people × " (specs.len()) " line items. Each cell: counted score, then its state." }
                    thead { tr {
                        th scope="col" { "Student" }
                        th scope="col" { "Percent" }
                        th scope="col" { "Letter" }
                        @for s in specs {
                            th scope="col" data-item=(s.line_item_id) {
                                (s.label)
                                div.sub { "/" (gradebook_projections::reports::grades::fmt2(s.maximum))
                                    @if s.completion_only { " · completion" }
                                    @if s.course_total { " · course total" } }
                            }
                        }
                    } }
                    tbody {
                        @for person in &m.report.people {
                            @let grade = m.grades.get(&person.user_id);
                            tr data-user=(person.user_id) {
                                th scope="row" {
                                    a href=(format!("{base}/students/{}", person.user_id)) {
                                        (person.name.clone().unwrap_or_else(|| person.user_id.clone()))
                                    }
                                    div.sub { (person.user_id)
                                        @if let Some(s) = person.enrollment_status { @if s != "active" { " · " (s) } }
                                        @if person.enrollment_status.is_none() { " · not enrolled" } }
                                }
                                td.num.percent { @match grade.map(|g| (&g.percent, &g.not_computable)) {
                                    Some((Some(p), _)) => { (p) "%" },
                                    Some((None, Some(why))) => span.muted title=(why) { "not computable" },
                                    _ => span.muted { "—" },
                                } }
                                td.letter { @match grade.and_then(|g| g.letter.clone()) {
                                    Some(l) => strong { (l) },
                                    None => span.muted { "—" },
                                } }
                                @for spec in specs {
                                    @let cell = person.cells.iter().find(|c| c.line_item_id == spec.line_item_id);
                                    @let item = grade.and_then(|g| g.items.iter().find(|i| i.line_item_id == spec.line_item_id));
                                    @match cell {
                                        None => td.cell { span.muted { "" } },
                                        Some(c) => {
                                            @let (symbol, word) = status_label(c.status);
                                            @let score = item.and_then(|i| i.score.clone()).or_else(|| c.score.clone());
                                            @let title = item.map(|i| i.reason.clone()).unwrap_or_else(|| word.to_string());
                                            td class=(format!("cell st-{}", c.status)) data-item=(spec.line_item_id) data-status=(c.status) title=(title) {
                                                span.score { (score.unwrap_or_else(|| "—".into())) }
                                                " "
                                                span.state { span aria-hidden="true" { (symbol) } " " (word) }
                                                @for also in &c.also {
                                                    span.also { " +" (status_label(also).1) }
                                                }
                                            }
                                        },
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn legend() -> Markup {
    html! {
        details.legend {
            summary { "What the cell states mean" }
            dl {
                @for s in LEGEND {
                    @let (symbol, word) = status_label(s);
                    dt { span class=(format!("chip st-{s}")) { (symbol) " " (word) } }
                    dd { (match s {
                        "in_sync" => "A counted score; nothing to do.",
                        "provisional" => "A score is kept but does not count yet (not fully graded, or a completion-only item not completed).",
                        "missing" => "No score is kept: never sent, or cleared.",
                        "rejected" => "The latest post was refused (course locked, person not enrolled, item deleted).",
                        "stale" => "The latest post was ignored as older than the score kept.",
                        "orphan" => "Posts exist, but the person is not an active learner.",
                        "over_maximum" => "The kept points are above the item's maximum.",
                        _ => "",
                    }) }
                }
            }
        }
    }
}

fn findings(list: &[Finding]) -> Markup {
    html! {
        h2 #findings { "Reconciliation findings" }
        @if list.is_empty() {
            p.ok { "✓ No course-level findings." }
        } @else {
            ul.findings {
                @for f in list {
                    @let v = serde_json::to_value(f).unwrap_or_default();
                    li {
                        strong { "⚠ " (v["kind"].as_str().unwrap_or_default().replace('_', " ")) }
                        ": " (v["message"].as_str().unwrap_or_default())
                    }
                }
            }
        }
    }
}

// ---- lock and unlock, with a confirmation page ----

/// The confirmation page of a lock (`lock`) or an unlock; the routes
/// pass which.
pub async fn confirm(
    State(state): State<SharedState>,
    viewer: Viewer,
    ApiPath(course_id): ApiPath<String>,
    lock: bool,
) -> UiResult<Markup> {
    viewer.require(&[ApiRole::Registrar])?;
    let course_id = CourseId::parse(course_id)?;
    let detail = state.engine.course_detail(&course_id).await?;
    // What locking would freeze as it is: said before the registrar confirms.
    let open_work = if lock && !detail.summary.locked {
        let m = matrix(&state, &course_id, None).await?;
        let count = |state: ItemState| {
            m.grades
                .values()
                .flat_map(|g| &g.items)
                .filter(|i| i.state == state)
                .count()
        };
        Some((
            count(ItemState::Missing),
            m.grades
                .values()
                .filter(|g| g.status == GradeStatus::Provisional)
                .count(),
            count(ItemState::PendingManual),
            m.report.findings.len(),
        ))
    } else {
        None
    };
    let verb = if lock { "Lock" } else { "Unlock" };
    let base = format!("/ui/courses/{course_id}");
    Ok(layout(
        &format!("{verb} {course_id}"),
        Some(&viewer),
        Nav::Courses,
        html! {
            nav.crumbs aria-label="Breadcrumb" { a href="/ui/courses" { "Courses" } " › " a href=(base) { (course_id) } " › " (verb) }
            h1 { (verb) " " (course_id) "?" }
            @if lock == detail.summary.locked {
                p { "The course is already " @if lock { "locked" } @else { "open" } "; confirming changes nothing." }
            }
            @if let Some((missing, provisional, pending, findings)) = open_work {
                @if missing + provisional + pending + findings > 0 {
                    section.notice #lock-warning role="alert" {
                        h2 { "Not everything is final" }
                        ul {
                            @if missing > 0 { li #warn-missing { (missing) " missing score" @if missing != 1 { "s" } } }
                            @if provisional > 0 { li #warn-provisional { (provisional) " provisional course grade" @if provisional != 1 { "s" } } }
                            @if pending > 0 { li #warn-pending { (pending) " score" @if pending != 1 { "s" } " waiting for manual grading" } }
                            @if findings > 0 { li #warn-findings { (findings) " open reconciliation finding" @if findings != 1 { "s" } } }
                        }
                        p { "Locking keeps them as they are. " a href=(base) { "Review the course first" } "." }
                    }
                }
            }
            @if lock {
                p { "While " strong { (detail.summary.title) } " is locked, every grade a tool or a backfill sends is refused and recorded; the grades shown stay as they are now. You can unlock it later." }
            } @else {
                p { "Unlocking " strong { (detail.summary.title) } " lets tools and backfills change grades again. Posts refused while it was locked are not replayed; tools resend them." }
            }
            form.confirm method="post" action=(format!("{base}/{}", verb.to_lowercase())) {
                (csrf_field(&viewer))
                div.field {
                    @if lock {
                        label for="reason" { "Reason (kept in the audit log, optional)" }
                        input #reason type="text" name="reason" maxlength="500";
                    } @else {
                        // Grades may change again: the audit log says why.
                        label for="reason" { "Reason (kept in the audit log, required)" }
                        input #reason type="text" name="reason" maxlength="500" required;
                    }
                }
                div.actions {
                    button #confirm type="submit" class=(if lock { "danger" } else { "" }) { "Yes, " (verb.to_lowercase()) " the course" }
                    " "
                    a href=(base) { "Cancel" }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct LockForm {
    csrf: Option<String>,
    reason: Option<String>,
}

/// Runs the REST lock/unlock handler with the session's caller.
pub async fn set_lock(
    State(state): State<SharedState>,
    viewer: Viewer,
    ApiPath(course_id): ApiPath<String>,
    Form(f): Form<LockForm>,
    lock: bool,
) -> UiResult<Response> {
    let caller = viewer.registrar_form(f.csrf.as_deref())?;
    let course_id = CourseId::parse(course_id)?;
    let reason = f
        .reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    let meta = caller.0.meta(gradebook_domain::Source::Registrar);
    if lock {
        state.engine.lock_course(&course_id, reason, &meta).await?;
    } else {
        let reason = reason.ok_or_else(|| {
            UiError::bad_input("Unlocking needs a reason: say why grades may change again.")
        })?;
        state
            .engine
            .unlock_course(&course_id, Some(reason), &meta)
            .await?;
    }
    let done = if lock { "locked" } else { "unlocked" };
    Ok(Redirect::to(&format!("/ui/courses/{course_id}?done={done}#done")).into_response())
}
