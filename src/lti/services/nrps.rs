//! Names and Role Provisioning Services 2.0: a course's roster as a tool
//! deployed in it sees it, with the registrar's privacy settings applied
//! to every member of every page.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use gradebook_domain::enrollment::{EnrollmentStatus, Role};
use gradebook_projections::tables::tool_reads::{self, Member};
use serde_json::{json, Map, Value};

use super::ags::{deployed_course, same_text};
use super::bearer::ToolCaller;
use super::wire::{self, typed};
use crate::http::error::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Path, Query};
use crate::http::SharedState;
use crate::services::scope;
use crate::services::urls::Urls;

const CLAIM: &str = "https://purl.imsglobal.org/spec/lti/claim/";

/// Splits a display name into given and family name at the last space
/// ("Ada King Lovelace" -> "Ada King", "Lovelace").
fn split_name(name: &str) -> (String, Option<String>) {
    match name.trim().rsplit_once(' ') {
        Some((given, family)) => (given.trim().to_string(), Some(family.trim().to_string())),
        None => (name.trim().to_string(), None),
    }
}

fn member_json(m: &Member, hide_names: bool, hide_emails: bool, message: Option<&Value>) -> Value {
    let mut o = Map::new();
    o.insert("user_id".into(), json!(m.user_id));
    o.insert("roles".into(), json!(m.role.lti_uris()));
    let status = match m.status {
        EnrollmentStatus::Active => "Active",
        _ => "Inactive",
    };
    o.insert("status".into(), json!(status));
    if !hide_names {
        if let Some(name) = &m.name {
            let (given, family) = split_name(name);
            o.insert("name".into(), json!(name));
            o.insert("given_name".into(), json!(given));
            if let Some(f) = family {
                o.insert("family_name".into(), json!(f));
            }
        }
    }
    if !hide_emails {
        if let Some(email) = &m.email {
            o.insert("email".into(), json!(email));
        }
    }
    if let Some(msg) = message {
        o.insert("message".into(), json!([msg]));
    }
    Value::Object(o)
}

/// The full role URI a `role` filter names, short (`Learner`) or full,
/// in any ASCII case: next-page URLs may come back lower-cased.
fn role_uri(filter: &str) -> ApiResult<String> {
    const KNOWN: [&str; 6] = [
        "Learner",
        "Instructor",
        "TeachingAssistant",
        "ContentDeveloper",
        "Mentor",
        "Administrator",
    ];
    let f = filter.trim();
    let canonical = KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(f))
        .map(|k| k.to_string())
        .unwrap_or_else(|| f.to_string());
    Role::parse(&canonical)
        .map(|r| r.lti_uris().remove(0))
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))
}

/// The membership container: the course roster, paged, with names and
/// emails left out when the registration hides them.
#[utoipa::path(get, path = "/lti/courses/{course_id}/memberships", tag = "lti",
    params(("course_id" = String, Path, description = "The course id (the context id in launches)"),
           ("role" = Option<String>, Query, description = "Only this role, short (`Learner`) or as a full URI"),
           ("rlid" = Option<String>, Query, description = "A resource link id: each member with that link's message claims"),
           ("limit" = Option<u32>, Query, description = "Page size, default 100; more than 1000 counts as 1000"),
           ("cursor" = Option<String>, Query, description = "From a rel=\"next\" link")),
    responses((status = 200, description = "`{\"id\", \"context\", \"members\"}`", content_type = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json", body = Object,
               headers(("Link" = String, description = "`<url>; rel=\"next\"` when there is a next page"))),
              (status = 400, description = "invalid_query", body = ErrorBody),
              (status = 401, description = "invalid_token: get a new access token", body = ErrorBody),
              (status = 403, description = "scope_not_granted", body = ErrorBody),
              (status = 404, description = "not_found: no such course or resource link for this tool", body = ErrorBody)),
    security(("lti_access_token" = ["https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"])))]
pub async fn memberships(
    State(state): State<SharedState>,
    caller: ToolCaller,
    Path(course_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    caller.require(&[scope::NRPS])?;
    let course = deployed_course(&state, &caller, &course_id).await?;
    let db = &state.engine.db;
    let (limit, cursor) = wire::paging(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let role_filter = q.get("role").map(|r| role_uri(r)).transpose()?;
    // The whole class has access to a link of the course, so an rlid
    // answer lists everyone, each with that link's launch claims.
    let message = match q.get("rlid") {
        None => None,
        Some(rlid) => {
            let link = tool_reads::course_links(db, course.as_str())
                .await?
                .into_iter()
                .filter(|l| l.tool_id == caller.tool.tool_id)
                .filter(|l| same_text(&l.resource_link_id, rlid, true))
                .min_by_key(|l| &l.resource_link_id != rlid)
                .ok_or_else(|| ApiError::not_found("the resource link"))?;
            Some(json!({
                format!("{CLAIM}message_type"): "LtiResourceLinkRequest",
                format!("{CLAIM}resource_link"): {"id": link.resource_link_id, "title": link.title},
                format!("{CLAIM}custom"): link.custom,
            }))
        }
    };
    let (title, term) = tool_reads::course_title(db, course.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("the course"))?;
    let roster: Vec<Member> = tool_reads::roster(db, course.as_str())
        .await?
        .into_iter()
        .filter(|m| {
            role_filter
                .as_ref()
                .is_none_or(|r| m.role.lti_uris().iter().any(|u| u.eq_ignore_ascii_case(r)))
        })
        .collect();
    let hide = caller.tool.roster;
    let members: Vec<Value> = roster
        .iter()
        .skip(cursor)
        .take(limit)
        .map(|m| member_json(m, hide.hide_names, hide.hide_emails, message.as_ref()))
        .collect();
    let urls = Urls::of(&state.settings);
    let base = urls.memberships(course.as_str());
    let mut filters: Vec<(&str, String)> = Vec::new();
    for k in ["role", "rlid"] {
        if let Some(v) = q.get(k) {
            filters.push((k, v.clone()));
        }
    }
    let next = (cursor + limit < roster.len()).then(|| {
        let mut pairs = filters.clone();
        pairs.push(("limit", limit.to_string()));
        pairs.push(("cursor", (cursor + limit).to_string()));
        wire::with_query(&base, &pairs)
    });
    let mut self_pairs = filters;
    if q.contains_key("limit") || cursor > 0 {
        self_pairs.push(("limit", limit.to_string()));
    }
    if cursor > 0 {
        self_pairs.push(("cursor", cursor.to_string()));
    }
    let body = json!({
        "id": wire::with_query(&base, &self_pairs),
        "context": {"id": course.as_str(), "label": course.as_str(), "title": title, "term": term},
        "members": members,
    });
    Ok(typed(
        StatusCode::OK,
        wire::MEMBERSHIP_CONTAINER,
        &body,
        next,
    ))
}
