//! `/ui/tools`: registered tools with their launch and deep-linking URLs
//! and their settings (grading full / sync only / off, roster access with
//! hidden names or emails, the courses the tool reaches), editable by
//! registrars; the platform details a Moodle admin copies, with copy
//! buttons; and the start of a dynamic registration. Every action runs the
//! same tool service as `/api/tools` with the session's caller.

use std::collections::BTreeMap;

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use gradebook_projections::tables::tool_reads;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::session::Viewer;
use super::{csrf_field, layout, when, Nav, UiError, UiResult};
use crate::http::extract::Path as ApiPath;
use crate::http::SharedState;
use crate::services::api_tokens::ApiRole;
use crate::services::tool_settings;
use crate::services::tools as tool_store;
use crate::services::urls::Urls;

fn copyable(id: &str, label: &str, value: &str) -> Markup {
    html! {
        div.copy-row {
            label for=(id) { (label) }
            input id=(id) type="text" readonly value=(value);
            button.copy type="button" data-copy=(id) aria-label=(format!("Copy {label}")) hidden { "Copy" }
        }
    }
}

/// What a tool's `courses` says, in words.
fn courses_text(courses: &Value) -> String {
    match courses {
        Value::String(s) if s == "all" => "All courses, those opened later included".into(),
        Value::Array(ids) if ids.is_empty() => "No course".into(),
        Value::Array(ids) => format!(
            "Only {}",
            ids.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => "The courses that deploy it".into(),
    }
}

/// The radio choice a tool's `courses` falls under.
fn courses_choice(courses: &Value) -> &'static str {
    match courses {
        Value::String(_) => "all",
        Value::Array(_) => "only",
        _ => "deployed",
    }
}

const COURSES: [(&str, &str); 3] = [
    ("deployed", "The courses that deploy it"),
    ("all", "All courses, those opened later included"),
    ("only", "Only these courses:"),
];

const GRADING: [(&str, &str); 3] = [
    ("full", "Grading and assignment management"),
    ("sync_only", "Grade sync only"),
    ("off", "Off"),
];

#[derive(Deserialize)]
pub struct ToolsParams {
    /// The tool whose settings were just saved (after the redirect).
    saved: Option<String>,
    /// The tool just revoked (after the redirect).
    revoked: Option<String>,
}

/// What the page says after a change, and to which tool.
struct Done<'a> {
    saved: Option<&'a str>,
    revoked: Option<&'a str>,
}

pub async fn page(
    State(state): State<SharedState>,
    viewer: Viewer,
    Query(p): Query<ToolsParams>,
) -> UiResult<Markup> {
    let tools = tool_settings::views(&state.engine.db).await?;
    let urls = Urls::of(&state.settings);
    let deployed = tool_reads::deployments(&state.engine.db).await?;
    let name_of = |id: &Option<String>| {
        id.as_deref().and_then(|id| {
            tools
                .iter()
                .find(|t| t["tool_id"].as_str() == Some(id))
                .map(|t| t["name"].as_str().unwrap_or(id).to_string())
        })
    };
    let (saved, revoked) = (name_of(&p.saved), name_of(&p.revoked));
    let done = Done {
        saved: saved.as_deref(),
        revoked: revoked.as_deref(),
    };
    Ok(render(&viewer, &urls, &tools, &deployed, None, done))
}

fn render(
    viewer: &Viewer,
    urls: &Urls,
    tools: &[Value],
    deployed: &BTreeMap<String, Vec<String>>,
    started: Option<Value>,
    done: Done,
) -> Markup {
    let editable = viewer.role() == ApiRole::Registrar;
    layout(
        "Tools",
        Some(viewer),
        Nav::Tools,
        html! {
            h1 { "Tools" }
            @if let Some(name) = done.saved {
                p.notice #saved role="status" { "Saved: the settings of " strong { (name) } " are in force." }
            }
            @if let Some(name) = done.revoked {
                p.notice #revoked role="status" { "Revoked: " strong { (name) } " can no longer launch, post grades or read rosters." }
            }
            @if let Some(s) = &started {
                section.notice #registration-started role="status" {
                    h2 { "Registration link ready" }
                    p { "Open this link in the tool (or paste it into the tool's registration screen) before "
                        (when(s["expires_at"].as_str().unwrap_or_default())) ". It works once." }
                    (copyable("registration-link", "Registration link", s["url"].as_str().unwrap_or_default()))
                    p { a href=(s["url"].as_str().unwrap_or_default()) target="_blank" rel="noopener noreferrer" { "Open the tool's registration page" } }
                }
            }
            section.platform {
                h2 { "Platform details for Moodle" }
                p.hint { "An LTI tool's administrator copies these into the tool. Client id and deployment id differ per tool; they are listed with each tool below." }
                (copyable("issuer", "Issuer (platform id)", &urls.issuer))
                (copyable("jwks", "Public keyset URL (JWKS)", &urls.jwks()))
                (copyable("auth", "Authentication request URL", &urls.authorization()))
                (copyable("token", "Access token URL", &urls.token()))
            }
            @if editable {
                section.register {
                    h2 { "Register a tool" }
                    form method="post" action="/ui/tools/registration" {
                        (csrf_field(viewer))
                        div.field {
                            label for="registration_url" { "The tool's dynamic registration URL" }
                            input #registration_url type="url" name="registration_url" required placeholder="https://moodle.example.edu/enrol/lti/register.php?token=…";
                        }
                        button type="submit" { "Start registration" }
                    }
                }
            }
            h2 { "Registered tools" }
            @if tools.is_empty() { p.empty { "No tools are registered yet." } }
            @for t in tools {
                @let id = t["tool_id"].as_str().unwrap_or_default();
                @let live = t["revoked_at"].is_null();
                @let grading = t["grading"].as_str().unwrap_or("off");
                @let check = |k: &str| t["roster"][k].as_bool().unwrap_or(false);
                section.tool data-tool=(id) {
                    h3 { (t["name"].as_str().unwrap_or(id)) " " span.sub { (id) }
                        @if !live { " " span.badge.locked { "Revoked" } } }
                    (copyable(&format!("client-{id}"), "Client id", t["client_id"].as_str().unwrap_or_default()))
                    (copyable(&format!("deployment-{id}"), "Deployment id", t["deployment_id"].as_str().unwrap_or_default()))
                    p.meta { "Registered " (t["registered_via"].as_str().unwrap_or_default()) " on " (when(t["created_at"].as_str().unwrap_or_default()))
                        " · scopes: " (t["allowed_scopes"].as_array().map(|a| a.iter().filter_map(Value::as_str).map(|s| s.rsplit('/').next().unwrap_or(s)).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                    dl.settings.urls {
                        dt { "Launch URL" }
                        dd.launch-url { @match t["launch_url"].as_str() { Some(u) => code { (u) }, None => span.hint { "None: links launch only at a URL of their own" } } }
                        dt { "Deep-linking URL" }
                        dd.deep-linking-url { @match t["deep_linking_url"].as_str() { Some(u) => code { (u) }, None => span.hint { "None: the registration offers no deep linking" } } }
                        @if !editable || !live {
                            dt { "Courses" }
                            dd.courses { (courses_text(&t["courses"])) }
                        }
                        dt { "Deployed by" }
                        dd.deployed {
                            @match deployed.get(id) {
                                Some(courses) => {
                                    @for (n, c) in courses.iter().enumerate() {
                                        @if n > 0 { ", " }
                                        a href=(format!("/ui/courses/{c}")) { (c) }
                                    }
                                }
                                None => span.hint { "No course deploys it itself" },
                            }
                        }
                    }
                    @if editable && live {
                        p.actions { a.button.danger.revoke href=(format!("/ui/tools/{id}/revoke")) { "Revoke…" } }
                    }
                    @if editable && live {
                        form.settings method="post" action=(format!("/ui/tools/{id}")) {
                            (csrf_field(viewer))
                            fieldset {
                                legend { "Grading" }
                                @for (value, label) in GRADING {
                                    div.choice {
                                        input type="radio" id=(format!("grading-{id}-{value}")) name="grading" value=(value) checked[grading == value];
                                        label for=(format!("grading-{id}-{value}")) { (label) }
                                    }
                                }
                            }
                            fieldset {
                                legend { "Roster" }
                                @for (key, label) in [("access", "Share the course roster"), ("hide_names", "Hide names"), ("hide_emails", "Hide emails")] {
                                    div.choice {
                                        input type="checkbox" id=(format!("{key}-{id}")) name=(key) value="on" checked[check(key)];
                                        label for=(format!("{key}-{id}")) { (label) }
                                    }
                                }
                            }
                            @let chosen = courses_choice(&t["courses"]);
                            @let listed = t["courses"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default();
                            fieldset.courses {
                                legend { "Courses" }
                                @for (value, label) in COURSES {
                                    div.choice {
                                        input type="radio" id=(format!("courses-{id}-{value}")) name="courses" value=(value) checked[chosen == value];
                                        label for=(format!("courses-{id}-{value}")) { (label) }
                                    }
                                }
                                input type="text" id=(format!("course-ids-{id}")) name="course_ids" value=(listed)
                                    aria-label="Course ids, separated by commas or spaces" placeholder="HIST-101-2026FA, BIO-200-2026FA";
                            }
                            button type="submit" { "Save settings" }
                        }
                    } @else {
                        dl.settings {
                            dt { "Grading" } dd { (GRADING.iter().find(|g| g.0 == grading).map_or(grading, |g| g.1)) }
                            dt { "Roster" } dd { @if check("access") { "shared" @if check("hide_names") { ", names hidden" } @if check("hide_emails") { ", emails hidden" } } @else { "not shared" } }
                        }
                    }
                }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct SettingsForm {
    csrf: Option<String>,
    grading: Option<String>,
    access: Option<String>,
    hide_names: Option<String>,
    hide_emails: Option<String>,
    /// `deployed`, `all` or `only`; left out keeps the tool's courses.
    courses: Option<String>,
    /// The list for `only`, separated by commas or spaces.
    course_ids: Option<String>,
}

pub async fn save(
    State(state): State<SharedState>,
    viewer: Viewer,
    ApiPath(tool_id): ApiPath<String>,
    Form(f): Form<SettingsForm>,
) -> UiResult<Response> {
    let caller = viewer.registrar_form(f.csrf.as_deref())?;
    let on = |v: &Option<String>| v.as_deref() == Some("on");
    let mut patch = json!({
        "grading": f.grading.unwrap_or_else(|| "off".into()),
        "roster": {"access": on(&f.access), "hide_names": on(&f.hide_names), "hide_emails": on(&f.hide_emails)},
    });
    match f.courses.as_deref() {
        None => {}
        Some("deployed") => patch["courses"] = Value::Null,
        Some("all") => patch["courses"] = json!("all"),
        Some("only") => {
            let ids: Vec<&str> = f
                .course_ids
                .as_deref()
                .unwrap_or_default()
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .collect();
            patch["courses"] = json!(ids);
        }
        Some(_) => {
            return Err(UiError::bad_input(
                "Courses must be the courses that deploy the tool, all courses, or a list.",
            ))
        }
    }
    let patch = serde_json::from_value(patch)
        .map_err(|_| UiError::bad_input("Grading must be full, sync only or off."))?;
    tool_settings::change_settings(&state.engine.db, &tool_id, patch, &caller.0.actor()).await?;
    // A tool id is hex the platform made; it needs no escaping in a URL.
    Ok(Redirect::to(&format!("/ui/tools?saved={tool_id}#saved")).into_response())
}

#[derive(Deserialize)]
pub struct RegistrationForm {
    csrf: Option<String>,
    registration_url: Option<String>,
}

pub async fn start_registration(
    State(state): State<SharedState>,
    viewer: Viewer,
    Form(f): Form<RegistrationForm>,
) -> UiResult<Markup> {
    let caller = viewer.registrar_form(f.csrf.as_deref())?;
    let body =
        serde_json::from_value(json!({"registration_url": f.registration_url.unwrap_or_default()}))
            .map_err(|_| UiError::bad_input("Paste the tool's registration URL."))?;
    let started = tool_settings::start_dynamic_registration(
        &state.engine.db,
        &Urls::of(&state.settings),
        body,
        &caller.0.actor(),
    )
    .await?;
    let tools = tool_settings::views(&state.engine.db).await?;
    Ok(render(
        &viewer,
        &Urls::of(&state.settings),
        &tools,
        &tool_reads::deployments(&state.engine.db).await?,
        Some(started),
        Done {
            saved: None,
            revoked: None,
        },
    ))
}

// ---- revoking, with a confirmation page ----

pub async fn confirm_revoke(
    State(state): State<SharedState>,
    viewer: Viewer,
    ApiPath(tool_id): ApiPath<String>,
) -> UiResult<Markup> {
    viewer.require(&[ApiRole::Registrar])?;
    let tool = tool_settings::load(&state.engine.db, &tool_id).await?;
    let name = if tool.name.is_empty() {
        tool.tool_id.clone()
    } else {
        tool.name.clone()
    };
    Ok(layout(
        &format!("Revoke {name}"),
        Some(&viewer),
        Nav::Tools,
        html! {
            nav.crumbs aria-label="Breadcrumb" { a href="/ui/tools" { "Tools" } " › Revoke" }
            h1 { "Revoke " (name) "?" }
            @if tool.revoked_at.is_some() {
                p { "The tool is already revoked; confirming changes nothing." }
            }
            p { "Once revoked, " strong { (name) } " can no longer launch, post grades, read rosters or get tokens, in any course, at once. Its grades stay. To use it again, register it again." }
            form.confirm method="post" action=(format!("/ui/tools/{}/revoke", tool.tool_id)) {
                (csrf_field(&viewer))
                div.actions {
                    button #confirm type="submit" class="danger" { "Yes, revoke the tool" }
                    " "
                    a href="/ui/tools" { "Cancel" }
                }
            }
        },
    ))
}

pub async fn revoke(
    State(state): State<SharedState>,
    viewer: Viewer,
    ApiPath(tool_id): ApiPath<String>,
    Form(f): Form<super::CsrfOnly>,
) -> UiResult<Response> {
    let caller = viewer.registrar_form(f.csrf.as_deref())?;
    let tool = tool_settings::load(&state.engine.db, &tool_id).await?;
    if tool_store::revoke(&state.engine.db, &tool.tool_id).await? {
        tracing::info!(tool_id = %tool.tool_id, actor = %caller.0.actor(), "tool revoked");
    }
    Ok(Redirect::to(&format!("/ui/tools?revoked={}#revoked", tool.tool_id)).into_response())
}
