//! `/ui/courses/{id}/backfill`: upload a CSV of past grades, see the dry
//! run (what would be accepted, what is already recorded, what is refused
//! and why, line by line), then confirm. Both steps run the backfill the
//! REST endpoint runs, as the session's caller; the confirmed file travels back in
//! the confirmation form, so nothing is kept between the two steps.

use axum::extract::{Form, Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use gradebook_domain::enrollment::EnrollmentStatus;
use gradebook_domain::CourseId;
use gradebook_projections::tables::queries;
use gradebook_projections::tables::view::CourseView;

use crate::backfill::{Batch, CsvRows};
use crate::http::error::{current_request_id, ApiError};
use maud::{html, Markup};
use serde::Deserialize;

use super::session::Viewer;
use super::{csrf_field, layout, Nav, UiError, UiResult};
use crate::backfill::Report;
use crate::http::auth::RegistrarCaller;
use crate::http::extract::Path as ApiPath;
use crate::http::SharedState;
use crate::services::api_tokens::ApiRole;

/// The header a backfill file starts with, as the page shows it.
fn header_line() -> String {
    crate::backfill::COLUMNS.join(",")
}

pub async fn form(
    State(state): State<SharedState>,
    viewer: Viewer,
    ApiPath(course_id): ApiPath<String>,
) -> UiResult<Markup> {
    let (course_id, view) = registrar_course(&state, &viewer, course_id).await?;
    Ok(page(
        &viewer,
        &course_id,
        html! {
            @if view.locked {
                p.error-message role="alert" { "This course is locked: unlock it before backfilling grades." }
            }
            (upload_form(&viewer, &course_id))
            h2 #items { "Line items of " (course_id) }
            p {
                "A row's " code { "line_item_id" } " is one of these. "
                a #template href=(format!("/ui/courses/{course_id}/backfill/template.csv")) download { "Download a CSV template" }
                " with the header and one row for each active learner and line item, the scores left to fill in."
            }
            table.items {
                thead { tr { th { "Label" } th { "line_item_id" } th.num { "Maximum" } } }
                tbody {
                    @for li in view.line_items.iter().filter(|li| !li.deleted) {
                        tr data-item=(li.line_item_id) { td { (li.spec.label) } td { code { (li.line_item_id) } } td.num { (li.spec.score_maximum) } }
                    }
                }
            }
        },
    ))
}

/// The course a registrar's backfill page or template is about, as the
/// read side holds it; 403 for other roles, 404 for an unknown course.
async fn registrar_course(
    state: &SharedState,
    viewer: &Viewer,
    course_id: String,
) -> UiResult<(CourseId, CourseView)> {
    viewer.require(&[ApiRole::Registrar])?;
    let course_id = CourseId::parse(course_id)?;
    let view = queries::load_course_view(&state.engine.db, course_id.as_str())
        .await?
        .ok_or_else(|| {
            UiError::from(ApiError::from(
                gradebook_domain::DomainError::CourseNotFound,
            ))
        })?;
    Ok((course_id, view))
}

/// `/ui/courses/{id}/backfill/template.csv`: the backfill header and a row
/// for every active learner and live line item, its maximum filled in and
/// the score, timestamp and comment left blank.
pub async fn template(
    State(state): State<SharedState>,
    viewer: Viewer,
    course: ApiPath<String>,
) -> UiResult<Response> {
    let (course_id, view) = registrar_course(&state, &viewer, course.0).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let write = |out: &mut csv::Writer<Vec<u8>>, row: &[&str]| {
        out.write_record(row)
            .map_err(|e| UiError::from(ApiError::internal(e.to_string())))
    };
    write(&mut out, &crate::backfill::COLUMNS)?;
    for e in view
        .enrollments
        .values()
        .filter(|e| e.is_learner() && e.status == EnrollmentStatus::Active)
    {
        for li in view.line_items.iter().filter(|li| !li.deleted) {
            let maximum = li.spec.score_maximum.to_string();
            write(
                &mut out,
                &[&li.line_item_id, &e.user_id, "", &maximum, "", ""],
            )?;
        }
    }
    let body = out
        .into_inner()
        .map_err(|e| UiError::from(ApiError::internal(e.to_string())))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{course_id}-backfill-template.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}

fn page(viewer: &Viewer, course_id: &CourseId, body: Markup) -> Markup {
    let base = format!("/ui/courses/{course_id}");
    layout(
        &format!("Backfill {course_id}"),
        Some(viewer),
        Nav::Courses,
        html! {
            nav.crumbs aria-label="Breadcrumb" { a href="/ui/courses" { "Courses" } " › " a href=(base) { (course_id) } " › Backfill" }
            h1 { "Backfill grades into " (course_id) }
            (body)
        },
    )
}

fn upload_form(viewer: &Viewer, course_id: &CourseId) -> Markup {
    html! {
        form.upload method="post" action=(format!("/ui/courses/{course_id}/backfill")) enctype="multipart/form-data" {
            (csrf_field(viewer))
            p { "Upload a CSV file with the header " code { (header_line()) } ". Nothing changes until you confirm the dry run." }
            div.field {
                label for="file" { "CSV file" }
                input #file type="file" name="file" accept=".csv,text/csv" required;
            }
            button #dry-run type="submit" { "Check the file (dry run)" }
        }
    }
}

async fn run(
    state: &SharedState,
    caller: &RegistrarCaller,
    course_id: &CourseId,
    csv: Vec<u8>,
    dry_run: bool,
) -> UiResult<Report> {
    let mut batch = Batch::new(course_id.clone(), caller.0.actor(), current_request_id());
    batch.dry_run = dry_run;
    let mut rows = CsvRows::new(&csv[..]).map_err(ApiError::from)?;
    Ok(
        crate::backfill::run(&state.engine, &batch, &mut rows, &mut |_| {})
            .await
            .map_err(ApiError::from)?,
    )
}

fn report_tables(r: &Report) -> Markup {
    html! {
        table.data.compact #backfill-summary {
            caption { @if r.dry_run { "Dry run: what would happen" } @else { "What happened" } }
            thead { tr { th scope="col" { "Outcome" } th scope="col" { "Rows" } } }
            tbody {
                tr { th scope="row" { "✓ " @if r.dry_run { "Would be accepted" } @else { "Accepted" } } td.num #accepted { (r.accepted) } }
                tr { th scope="row" { "= Unchanged (already recorded)" } td.num #unchanged { (r.unchanged) } }
                tr { th scope="row" { "✗ Rejected" } td.num #rejected { (r.rejected) } }
            }
        }
        @if !r.rejections.is_empty() {
            div.table-wrap {
                table.data #rejections {
                    caption { "Rejected rows" }
                    thead { tr { th scope="col" { "Line" } th scope="col" { "Reason" } th scope="col" { "Detail" } } }
                    tbody { @for x in &r.rejections {
                        tr { td.num { (x.line) } td { code { (x.reason) } } td { (x.message) } }
                    } }
                }
            }
        }
    }
}

pub async fn dry_run(
    State(state): State<SharedState>,
    viewer: Viewer,
    ApiPath(course_id): ApiPath<String>,
    mut multipart: Multipart,
) -> UiResult<Markup> {
    let mut csrf = None;
    let mut file: Option<Vec<u8>> = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| UiError::bad_input(format!("The upload could not be read: {e}")))?
    {
        match field.name() {
            Some("csrf") => csrf = field.text().await.ok(),
            Some("file") => {
                file = Some(
                    field
                        .bytes()
                        .await
                        .map_err(|e| {
                            UiError::bad_input(format!("The file could not be read: {e}"))
                        })?
                        .to_vec(),
                )
            }
            _ => {}
        }
    }
    let caller = viewer.registrar_form(csrf.as_deref())?;
    let course_id = CourseId::parse(course_id)?;
    let csv = file
        .filter(|f| !f.is_empty())
        .ok_or_else(|| UiError::bad_input("Choose a CSV file to upload."))?;
    let report = run(&state, &caller, &course_id, csv.clone(), true).await?;
    let nothing = report.accepted == 0;
    Ok(page(
        &viewer,
        &course_id,
        html! {
            (report_tables(&report))
            @if nothing {
                p.ok #nothing-to-change role="status" {
                    "Nothing to change: "
                    @if report.rejected == 0 { "every row is already recorded." } @else { "no row would be accepted." }
                }
                (upload_form(&viewer, &course_id))
            } @else {
                form.confirm method="post" action=(format!("/ui/courses/{course_id}/backfill/confirm")) {
                    (csrf_field(&viewer))
                    input type="hidden" name="file" value=(STANDARD.encode(&csv));
                    p { "Confirm to record " strong { (report.accepted) } " grade" @if report.accepted != 1 { "s" } ". Rows already recorded are skipped; rejected rows are not sent." }
                    button #confirm type="submit" { "Confirm and record" }
                    " "
                    a href=(format!("/ui/courses/{course_id}/backfill")) { "Cancel" }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    csrf: Option<String>,
    file: Option<String>,
}

pub async fn confirm(
    State(state): State<SharedState>,
    viewer: Viewer,
    ApiPath(course_id): ApiPath<String>,
    Form(f): Form<ConfirmForm>,
) -> UiResult<Markup> {
    let caller = viewer.registrar_form(f.csrf.as_deref())?;
    let course_id = CourseId::parse(course_id)?;
    let csv = f
        .file
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .ok_or_else(|| {
            UiError::bad_input("The confirmation did not carry the file; upload it again.")
        })?;
    let report = run(&state, &caller, &course_id, csv, false).await?;
    Ok(page(
        &viewer,
        &course_id,
        html! {
            p.ok role="status" #done { "✓ Backfill recorded (batch " code { (report.batch_id) } ")." }
            (report_tables(&report))
            p { a href=(format!("/ui/courses/{course_id}")) { "Back to the course" } }
        },
    ))
}
