//! The registrar web pages under `/ui`: server-rendered HTML (maud) over the
//! same rules as the REST API. Each page handler signs the viewer in through
//! a session (see [`session`]), then calls the engine and the services the
//! JSON API uses too (never its handlers), and only lays out the answer. The
//! stylesheet and the one small script are served by the binary; pages read
//! fine without the script (it adds copy buttons and confirmations).

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use crate::http::error::ApiError;
use crate::http::SharedState;

pub mod audit;
pub mod backfill;
pub mod chart;
pub mod course;
pub mod courses;
pub mod session;
pub mod student;
pub mod students;
pub mod tools;

use session::Viewer;

/// The largest CSV the backfill page takes (larger files go through the API
/// or the command line, which stream and show progress).
pub const MAX_UPLOAD_BYTES: usize = 16 * 1024 * 1024;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/courses") }))
        // The docs write the pages' address with its slash.
        .route("/ui/", get(|| async { Redirect::to("/ui/courses") }))
        .route("/ui/assets/app.css", get(stylesheet))
        .route("/ui/assets/app.js", get(script))
        .route("/ui/sign-in", get(sign_in_form).post(sign_in))
        .route("/ui/sign-out", post(sign_out))
        .route("/ui/courses", get(courses::list))
        .route("/ui/courses/{course_id}", get(course::page))
        .route(
            "/ui/courses/{course_id}/lock",
            get(|s, v, p| course::confirm(s, v, p, true))
                .post(|s, v, p, f| course::set_lock(s, v, p, f, true)),
        )
        .route(
            "/ui/courses/{course_id}/unlock",
            get(|s, v, p| course::confirm(s, v, p, false))
                .post(|s, v, p, f| course::set_lock(s, v, p, f, false)),
        )
        .route(
            "/ui/courses/{course_id}/students/{user_id}",
            get(student::page),
        )
        .route(
            "/ui/courses/{course_id}/backfill",
            get(backfill::form)
                .post(backfill::dry_run)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route(
            "/ui/courses/{course_id}/backfill/template.csv",
            get(backfill::template),
        )
        .route(
            "/ui/courses/{course_id}/backfill/confirm",
            // The confirmed file comes back base64-encoded in the form.
            post(backfill::confirm).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES / 3 * 4 + 4096)),
        )
        .route("/ui/students", get(students::search))
        .route("/ui/students/{user_id}", get(students::term))
        .route("/ui/audit", get(audit::page))
        .route("/ui/tools", get(tools::page))
        .route("/ui/tools/registration", post(tools::start_registration))
        .route("/ui/tools/{tool_id}", post(tools::save))
        .route(
            "/ui/tools/{tool_id}/revoke",
            get(tools::confirm_revoke).post(tools::revoke),
        )
        .route("/ui/{*rest}", get(not_found))
        .layer(middleware::from_fn(security_headers))
}

/// Every page: no framing, no inline script or style, nothing from
/// elsewhere, nothing cached, no referrer leaving the site.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("assets/app.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("assets/app.js"),
    )
        .into_response()
}

// ---- errors as pages ----

/// A refusal or failure shown as a page, with the status the API would give.
#[derive(Debug)]
pub struct UiError {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
}

impl UiError {
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            title: title.into(),
            message: message.into(),
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Check the form", message)
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        let title = match e.status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::UNAUTHORIZED => "Sign in",
            s if s.is_server_error() => "Something went wrong",
            _ => "Could not do that",
        };
        Self::new(e.status, title, e.message)
    }
}

impl From<crate::services::tool_settings::ToolError> for UiError {
    fn from(e: crate::services::tool_settings::ToolError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let body = layout(
            &self.title,
            None,
            Nav::None,
            html! {
                h1 { (self.title) }
                p.error-message { (self.message) }
                p { "Status " (self.status.as_u16()) ". " a href="/ui/courses" { "Back to the courses" } }
            },
        );
        (self.status, body).into_response()
    }
}

impl From<gradebook_projections::tables::queries::QueryError> for UiError {
    fn from(e: gradebook_projections::tables::queries::QueryError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<sqlx::Error> for UiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl From<crate::engine::EngineError> for UiError {
    fn from(e: crate::engine::EngineError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<gradebook_domain::DomainError> for UiError {
    fn from(e: gradebook_domain::DomainError) -> Self {
        ApiError::from(e).into()
    }
}

pub type UiResult<T> = Result<T, UiError>;

async fn not_found() -> UiError {
    UiError::new(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page at this address.",
    )
}

// ---- layout ----

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    None,
    Courses,
    Audit,
    Tools,
}

/// The frame of every page: header with navigation and sign-out, then `body`.
pub fn layout(title: &str, viewer: Option<&Viewer>, nav: Nav, body: Markup) -> Markup {
    let item = |href: &str, label: &str, me: Nav| {
        html! {
            li { a href=(href) aria-current=[(nav == me).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Gradebook" }
                link rel="stylesheet" href="/ui/assets/app.css";
                script src="/ui/assets/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/courses" { "Gradebook" }
                    @if let Some(v) = viewer {
                        nav aria-label="Main" {
                            ul {
                                (item("/ui/courses", "Courses", Nav::Courses))
                                (item("/ui/audit", "Audit log", Nav::Audit))
                                (item("/ui/tools", "Tools", Nav::Tools))
                            }
                        }
                        form.header-search method="get" action="/ui/students" role="search" aria-label="Students" {
                            label for="header-q" { "Find a student" }
                            input #header-q type="search" name="q" placeholder="id or name";
                            button type="submit" { "Search" }
                        }
                        div.who {
                            span { "Signed in as " strong { (v.role().as_str()) }
                                @if let Some(n) = &v.token_name { " (" (n) ")" } }
                            form method="post" action="/ui/sign-out" {
                                (csrf_field(v))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// A padlock drawn inline, so it shows the same whatever fonts the
/// registrar's machine has (an emoji needs one that has it).
pub fn lock_icon() -> Markup {
    html! {
        svg.icon width="12" height="12" viewBox="0 0 12 12" aria-hidden="true" focusable="false" {
            path d="M3.5 5V3.5a2.5 2.5 0 0 1 5 0V5" fill="none" stroke="currentColor" stroke-width="1.4" {}
            rect x="2" y="5" width="8" height="6" rx="1" fill="currentColor" {}
        }
    }
}

pub fn csrf_field(v: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.csrf); }
}

/// A moment as the pages show it: UTC, to the second.
pub fn when(t: &str) -> String {
    DateTime::parse_from_rfc3339(t)
        .map(|d| {
            d.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

/// Reads a `datetime-local` field (`2026-05-01T10:00[:05]`, taken as UTC)
/// or a full RFC 3339 time; none for anything else, and for a time outside
/// what the engine's times can be ([`gradebook_domain::time`]: offsets up
/// to ±15:59, years 0001 to 9999).
pub fn parse_local_time(s: &str) -> Option<DateTime<Utc>> {
    use gradebook_domain::time;
    let s = s.trim();
    match time::parse_utc(s) {
        Ok(t) => return Some(t),
        Err(time::TimeError::NotRfc3339) => {}
        Err(_) => return None,
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    // A date alone means the end of that day (UTC): "grades as of
    // 2026-05-01" are the grades once that day is over.
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999))
    })
    .and_then(|n| time::check_utc(n.and_utc()).ok())
}

/// The value a `datetime-local` field shows for a moment.
pub fn local_time_value(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

// ---- sign-in and sign-out ----

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    /// Why the browser was sent here (`expired`, `unsent`).
    why: Option<String>,
}

async fn sign_in_form(
    State(state): State<SharedState>,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    sign_in_answer(
        &state,
        StatusCode::OK,
        &session::safe_next(q.next.as_deref()),
        session::why_text(q.why.as_deref()),
    )
}

/// The sign-in page with a fresh form nonce, paired with the browser by a
/// short-lived cookie (the form has no session to carry a CSRF token yet).
fn sign_in_answer(
    state: &SharedState,
    status: StatusCode,
    next: &str,
    problem: Option<&str>,
) -> Response {
    let nonce = session::new_sign_in_nonce();
    let mut res = (status, sign_in_page(&nonce, next, problem)).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            state,
            session::SIGN_IN_COOKIE,
            Some(&nonce),
            chrono::Duration::hours(1),
        ),
    );
    res
}

fn sign_in_page(nonce: &str, next: &str, problem: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        Nav::None,
        html! {
            section.sign-in {
                h1 { "Sign in" }
                p { "Paste an API token. Registrars can lock courses, backfill grades and manage tools; auditors and SIS tokens can read." }
                @if let Some(p) = problem { p.error-message role="alert" { (p) } }
                form method="post" action="/ui/sign-in" {
                    input type="hidden" name="csrf" value=(nonce);
                    input type="hidden" name="next" value=(next);
                    label for="token" { "API token" }
                    input #token type="password" name="token" autocomplete="off" required spellcheck="false";
                    button type="submit" { "Sign in" }
                }
                p.hint { "A token looks like " code { "gb_…" } "; an administrator makes one with " code { "gradebook token create" } "." }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
    csrf: Option<String>,
    next: Option<String>,
}

async fn sign_in(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> UiResult<Response> {
    let next = session::safe_next(f.next.as_deref());
    if !session::sign_in_nonce_ok(&headers, f.csrf.as_deref().unwrap_or_default()) {
        return Err(session::csrf_refused());
    }
    let opened = session::open(&state.engine.db, &f.token)
        .await
        .map_err(|e| UiError::from(ApiError::from(crate::engine::EngineError::from(e))))?;
    let Some(id) = opened else {
        return Ok(sign_in_answer(
            &state,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That token is unknown or was revoked."),
        ));
    };
    let mut res = Redirect::to(&next).into_response();
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        session::set_cookie(&state, session::COOKIE, Some(&id), session::SESSION_TTL),
    );
    h.append(
        header::SET_COOKIE,
        session::set_cookie(
            &state,
            session::SIGN_IN_COOKIE,
            None,
            chrono::Duration::zero(),
        ),
    );
    Ok(res)
}

/// A form that carries nothing but this session's CSRF token (sign-out,
/// revoking a tool).
#[derive(Deserialize)]
pub struct CsrfOnly {
    pub csrf: Option<String>,
}

async fn sign_out(
    State(state): State<SharedState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> UiResult<Response> {
    viewer.check_csrf(f.csrf.as_deref())?;
    if let Some(id) = session::cookie_value(&headers, session::COOKIE) {
        session::close(&state.engine.db, &id)
            .await
            .map_err(|e| UiError::from(ApiError::from(crate::engine::EngineError::from(e))))?;
    }
    let mut res = Redirect::to("/ui/sign-in").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(&state, session::COOKIE, None, chrono::Duration::zero()),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_time_field_is_read_as_utc() {
        let t = parse_local_time("2026-05-01T10:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-05-01T10:00:00+00:00");
        let t = parse_local_time("2026-05-01T10:00:05").unwrap();
        assert_eq!(local_time_value(t), "2026-05-01T10:00:05");
        assert!(parse_local_time("yesterday").is_none());
        for out_of_range in [
            "9999-12-31T23:59:59-23:59",
            "2026-05-01T10:00:00+16:00",
            "0000-01-01T00:00",
            "10000-01-01T00:00",
            "+10000-01-01T00:00",
            "-0001-01-01T00:00",
        ] {
            assert!(parse_local_time(out_of_range).is_none(), "{out_of_range}");
        }
        assert!(parse_local_time("9999-12-31T23:59:59").is_some());
        let end_of_day = parse_local_time("2026-05-01").unwrap();
        assert_eq!(end_of_day.to_rfc3339(), "2026-05-01T23:59:59.999999+00:00");
        assert!(parse_local_time("2026-02-30").is_none());
        assert!(parse_local_time("2026-05-01T10:00:00+15:59").is_some());
    }
}
