//! `/ui/students`: finding a learner by id or name across all courses (the
//! header's search box sends here), and `/ui/students/{user}`: the
//! student's term, every course with its grade and lock state. The people
//! come from the enrollments read table ([`people`]); each grade is the
//! course page's own, [`course_grades`] over the course view.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use gradebook_domain::UserId;
use gradebook_projections::reports::grades::StudentRow;
use gradebook_projections::reports::grading::GradeStatus;
use gradebook_projections::tables::people::{self, PersonCourse, SEARCH_LIMIT};
use maud::{html, Markup};
use serde::Deserialize;

use super::session::Viewer;
use super::{layout, Nav, UiError, UiResult};
use crate::engine::EngineError;
use crate::http::error::ApiError;
use crate::http::extract::Path as ApiPath;
use crate::http::SharedState;

fn engine_err(e: impl Into<EngineError>) -> UiError {
    UiError::from(ApiError::from(e.into()))
}

#[derive(Deserialize, Default)]
pub struct SearchParams {
    q: Option<String>,
}

pub async fn search(
    State(state): State<SharedState>,
    viewer: Viewer,
    Query(p): Query<SearchParams>,
) -> UiResult<Markup> {
    let q = p.q.unwrap_or_default();
    let text = q.trim();
    let found = if text.is_empty() {
        None
    } else {
        Some(
            people::search_people(&state.engine.db, text)
                .await
                .map_err(engine_err)?,
        )
    };
    Ok(layout(
        "Students",
        Some(&viewer),
        Nav::None,
        html! {
            h1 { "Students" }
            form.filters method="get" action="/ui/students" role="search" {
                div.field {
                    label for="student-q" { "Student id or name contains" }
                    input #student-q type="search" name="q" value=(q);
                }
                div.field.actions { button type="submit" { "Search" } }
            }
            @if let Some(found) = found {
                @if found.is_empty() {
                    p.empty #no-match { "No student's id or name contains \u{201c}" (text) "\u{201d}." }
                } @else {
                    div.table-wrap {
                        table.data #students {
                            caption {
                                (found.len()) " student" @if found.len() != 1 { "s" } " matching \u{201c}" (text) "\u{201d}"
                                @if found.len() as i64 >= SEARCH_LIMIT { " (the first " (SEARCH_LIMIT) "; type more to narrow)" }
                            }
                            thead { tr {
                                th scope="col" { "Student" }
                                th scope="col" { "Name" }
                                th scope="col" { "Courses" }
                            } }
                            tbody {
                                @for m in &found {
                                    tr {
                                        th scope="row" { a href=(format!("/ui/students/{}", m.user_id)) { (m.user_id) } }
                                        td { (m.name.clone().unwrap_or_default()) }
                                        td.num { (m.courses) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// One course of the term page with the student's grade there, if they
/// have one (learners who have not dropped).
struct TermRow {
    course: PersonCourse,
    grade: Option<StudentRow>,
}

pub async fn term(
    State(state): State<SharedState>,
    viewer: Viewer,
    ApiPath(user_id): ApiPath<String>,
) -> UiResult<Markup> {
    let user_id = UserId::parse(user_id)?;
    // The kept grades: the grade report's own rows, one read for all.
    let courses = state
        .engine
        .student_grades(user_id.as_str())
        .await
        .map_err(engine_err)?;
    if courses.is_empty() {
        return Err(UiError::new(
            StatusCode::NOT_FOUND,
            "Student not found",
            format!("{user_id} is not enrolled in any course."),
        ));
    }
    let rows: Vec<TermRow> = courses
        .into_iter()
        .map(|c| TermRow {
            course: PersonCourse {
                course_id: c.course_id,
                title: c.title,
                term: c.term,
                role: c.role,
                status: c.enrollment_status,
                name: c.name,
                locked: c.locked,
            },
            grade: c.grade,
        })
        .collect();
    let name = rows.iter().find_map(|r| r.course.name.clone());
    let title = name.clone().unwrap_or_else(|| user_id.to_string());
    Ok(layout(
        &title,
        Some(&viewer),
        Nav::None,
        html! {
            p.crumbs { a href="/ui/students" { "Students" } " › " (user_id) }
            h1 { (title) @if name.is_some() { " " span.sub { (user_id) } } }
            div.table-wrap {
                table.data #term {
                    caption { (rows.len()) " course" @if rows.len() != 1 { "s" } }
                    thead { tr {
                        th scope="col" { "Course" }
                        th scope="col" { "Term" }
                        th scope="col" { "Role and status" }
                        th scope="col" { "Percentage" }
                        th scope="col" { "Letter" }
                        th scope="col" { "Grade" }
                        th scope="col" { "Lock state" }
                    } }
                    tbody {
                        @for r in &rows {
                            @let c = &r.course;
                            tr data-course=(c.course_id) {
                                th scope="row" {
                                    a href=(format!("/ui/courses/{}/students/{}", c.course_id, user_id)) { (c.course_id) }
                                    div.sub { (c.title) }
                                }
                                td { (c.term) }
                                td { (c.role) " · " (c.status) }
                                @match &r.grade {
                                    Some(g) => {
                                        td.num.percent {
                                            @match (&g.percent, &g.not_computable) {
                                                (Some(p), _) => { (p) "%" },
                                                (None, Some(why)) => { span title=(why) { "not computable" } },
                                                (None, None) => { "—" },
                                            }
                                        }
                                        td.letter { (g.letter.clone().unwrap_or_else(|| "—".into())) }
                                        td.status { @match g.status {
                                            GradeStatus::Final => "final",
                                            GradeStatus::Provisional => "provisional",
                                        } }
                                    },
                                    None => {
                                        td.num.percent { "—" }
                                        td.letter { "—" }
                                        td.status.muted { "no grade (not an enrolled learner)" }
                                    },
                                }
                                td.lock { @if c.locked { span.badge.locked { (super::lock_icon()) " Locked" } } @else { span.badge.open { "Open" } } }
                            }
                        }
                    }
                }
            }
        },
    ))
}
