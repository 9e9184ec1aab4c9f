//! Assignment and Grade Services 2.0: the line item container, one line
//! item, score publish and results, as a tool deployed in a course sees
//! them. A tool sees its own columns and the ones bound to its links;
//! every other course or column answers 404 as if it did not exist.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, FixedOffset};
use gradebook_domain::line_item::{LineItemPatch, LineItemSpec};
use gradebook_domain::number::NumberError;
use gradebook_domain::score::{
    ActivityProgress, GradingProgress, RejectReason, ScoreOutcome, ScorePost,
};
use gradebook_domain::{CourseId, DomainError, LineItemId, ToolId, UserId};
use gradebook_projections::reports::grading::scale_points;
use gradebook_projections::tables::post_facts::score_post_facts;
use gradebook_projections::tables::tool_reads::{self, LineItemEntry, LinkEntry};
use serde_json::{json, Map, Value};

use super::bearer::ToolCaller;
use super::wire::{self, number, typed};
use crate::engine::EngineError;
use crate::http::error::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Path, Query};
use crate::http::SharedState;
use crate::json::{too_many_digits, ObjectError, SentObject};
use crate::services::scope;
use crate::services::urls::Urls;

fn course_not_found() -> ApiError {
    ApiError::not_found("the course")
}

fn item_not_found() -> ApiError {
    ApiError::not_found("the line item")
}

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_body", message)
}

/// The course, if it exists and the tool reaches it: the course deploys
/// it, or the tool's course set names it or is every course.
pub(crate) async fn deployed_course(
    state: &SharedState,
    caller: &ToolCaller,
    course_id: &str,
) -> ApiResult<CourseId> {
    let id = CourseId::parse(course_id).map_err(|_| course_not_found())?;
    let db = &state.engine.db;
    let tool = &caller.tool;
    if let Some(deployed) = tool_reads::course_deployment(db, id.as_str(), &tool.tool_id).await? {
        if tool.reaches(id.as_str(), deployed) {
            return Ok(id);
        }
    }
    // A next-page URL may come back lower-cased (pylti1p3 lower-cases the
    // whole Link header); accept it when it names one course unambiguously.
    let reached: Vec<String> = tool_reads::courses_ignoring_case(db, id.as_str(), &tool.tool_id)
        .await?
        .into_iter()
        .filter(|(c, deployed)| tool.reaches(c, *deployed))
        .map(|(c, _)| c)
        .collect();
    match reached.as_slice() {
        [one] => CourseId::parse(one.as_str()).map_err(|_| course_not_found()),
        _ => Err(course_not_found()),
    }
}

/// `a == b`, or equal ignoring ASCII case when `loose`.
pub(crate) fn same_text(a: &str, b: &str, loose: bool) -> bool {
    a == b || (loose && a.eq_ignore_ascii_case(b))
}

/// The course's line items this tool may see, with the links that bind them.
struct Visible {
    entries: Vec<LineItemEntry>,
    links: Vec<LinkEntry>,
    tool_id: String,
}

impl Visible {
    async fn load(state: &SharedState, course: &CourseId, tool_id: &str) -> ApiResult<Self> {
        let db = &state.engine.db;
        let links = tool_reads::course_links(db, course.as_str())
            .await?
            .into_iter()
            .filter(|l| l.tool_id == tool_id)
            .collect();
        Ok(Self {
            entries: tool_reads::course_line_items(db, course.as_str()).await?,
            links,
            tool_id: tool_id.to_string(),
        })
    }

    fn sees(&self, e: &LineItemEntry) -> bool {
        e.spec
            .tool_id
            .as_ref()
            .is_some_and(|t| t.as_str() == self.tool_id)
            || self.links.iter().any(|l| {
                l.line_item_id.as_deref() == Some(e.line_item_id.as_str())
                    || e.spec.resource_link_id.as_deref() == Some(l.resource_link_id.as_str())
            })
    }

    /// A visible line item, deleted ones included.
    fn find(&self, line_item_id: &str) -> Option<&LineItemEntry> {
        let exact = self
            .entries
            .iter()
            .find(|e| e.line_item_id == line_item_id && self.sees(e));
        exact.or_else(|| {
            // The same leniency as for course ids, for lower-cased URLs.
            let mut loose = self
                .entries
                .iter()
                .filter(|e| e.line_item_id.eq_ignore_ascii_case(line_item_id) && self.sees(e));
            match (loose.next(), loose.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        })
    }

    fn live(&self, line_item_id: &str) -> ApiResult<&LineItemEntry> {
        self.find(line_item_id)
            .filter(|e| !e.deleted)
            .ok_or_else(item_not_found)
    }

    /// The resource link a line item belongs to: its own, else the link bound to it.
    fn link_of(&self, e: &LineItemEntry) -> Option<String> {
        e.spec.resource_link_id.clone().or_else(|| {
            self.links
                .iter()
                .find(|l| l.line_item_id.as_deref() == Some(e.line_item_id.as_str()))
                .map(|l| l.resource_link_id.clone())
        })
    }
}

fn line_item_json(urls: &Urls, course: &str, v: &Visible, e: &LineItemEntry) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(urls.line_item(course, &e.line_item_id)));
    o.insert("label".into(), json!(e.spec.label));
    o.insert("scoreMaximum".into(), number(e.spec.score_maximum));
    // Kept exactly as sent: tools compare these to find their own columns.
    if let Some(r) = &e.spec.resource_id {
        o.insert("resourceId".into(), r.clone());
    }
    if let Some(l) = v.link_of(e) {
        o.insert("resourceLinkId".into(), json!(l));
    }
    if let Some(t) = &e.spec.tag {
        o.insert("tag".into(), json!(t));
    }
    if let Some(s) = &e.spec.start_date_time {
        o.insert("startDateTime".into(), json!(s));
    }
    if let Some(s) = &e.spec.end_date_time {
        o.insert("endDateTime".into(), json!(s));
    }
    Value::Object(o)
}

fn resource_id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---- the container ----

/// The line item container: the columns this tool may see, paged.
#[utoipa::path(get, path = "/lti/courses/{course_id}/lineitems", tag = "lti",
    params(("course_id" = String, Path, description = "The course id (the context id in launches)"),
           ("resource_link_id" = Option<String>, Query, description = "Only the columns of this resource link"),
           ("resource_id" = Option<String>, Query, description = "Only the columns with this resourceId"),
           ("tag" = Option<String>, Query, description = "Only the columns with this tag"),
           ("limit" = Option<u32>, Query, description = "Page size, default 100; more than 1000 counts as 1000"),
           ("cursor" = Option<String>, Query, description = "From a rel=\"next\" link")),
    responses((status = 200, description = "An array of line items", content_type = "application/vnd.ims.lis.v2.lineitemcontainer+json", body = Object,
               headers(("Link" = String, description = "`<url>; rel=\"next\"` when there is a next page"))),
              (status = 400, description = "invalid_query", body = ErrorBody),
              (status = 401, description = "invalid_token: get a new access token", body = ErrorBody),
              (status = 403, description = "scope_not_granted", body = ErrorBody),
              (status = 404, description = "not_found: no such course for this tool", body = ErrorBody)),
    security(("lti_access_token" = ["https://purl.imsglobal.org/spec/lti-ags/scope/lineitem", "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"])))]
pub async fn list_line_items(
    State(state): State<SharedState>,
    caller: ToolCaller,
    Path(course_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    caller.require(&[scope::LINEITEM, scope::LINEITEM_READONLY])?;
    let course = deployed_course(&state, &caller, &course_id).await?;
    let (limit, cursor) = wire::paging(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let v = Visible::load(&state, &course, &caller.tool.tool_id).await?;
    let rlid = q.get("resource_link_id");
    let rid = q.get("resource_id");
    let tag = q.get("tag");
    // A follow-up page's URL may have been lower-cased by the client, so
    // its filters match ignoring ASCII case; a first page matches exactly.
    let loose = cursor > 0;
    let matches = |e: &LineItemEntry| {
        !e.deleted
            && v.sees(e)
            && rlid.is_none_or(|r| v.link_of(e).is_some_and(|l| same_text(&l, r, loose)))
            && rid.is_none_or(|r| {
                e.spec
                    .resource_id
                    .as_ref()
                    .is_some_and(|x| same_text(&resource_id_text(x), r, loose))
            })
            && tag.is_none_or(|t| e.spec.tag.as_ref().is_some_and(|x| same_text(x, t, loose)))
    };
    let urls = Urls::of(&state.settings);
    let mut page = Vec::new();
    let mut next = None;
    // The cursor is a position in the course's creation-ordered list, which
    // only ever grows at the end, so pages neither skip nor repeat.
    for (i, e) in v.entries.iter().enumerate().skip(cursor) {
        if !matches(e) {
            continue;
        }
        if page.len() == limit {
            next = Some(i);
            break;
        }
        page.push(line_item_json(&urls, course.as_str(), &v, e));
    }
    let next = next.map(|i| {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (k, val) in [
            ("resource_link_id", rlid),
            ("resource_id", rid),
            ("tag", tag),
        ] {
            if let Some(val) = val {
                pairs.push((k, val.clone()));
            }
        }
        pairs.push(("limit", limit.to_string()));
        pairs.push(("cursor", i.to_string()));
        wire::with_query(&urls.line_items(course.as_str()), &pairs)
    });
    Ok(typed(
        StatusCode::OK,
        wire::LINEITEM_CONTAINER,
        &Value::Array(page),
        next,
    ))
}

/// A JSON body whatever the Content-Type says (tools differ), with each
/// member's text as sent for the numbers.
fn body_object(body: &[u8]) -> ApiResult<SentObject> {
    SentObject::from_slice(body).map_err(|e| match e {
        ObjectError::NotAnObject => malformed("the body must be a JSON object"),
        ObjectError::Json(e) => {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
        }
    })
}

/// An optional text field: absent is `None`, null is `Some(None)`.
fn opt_text(o: &SentObject, name: &str) -> ApiResult<Option<Option<String>>> {
    match o.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(malformed(format!("{name} must be a string"))),
    }
}

fn opt_resource_id(o: &SentObject) -> ApiResult<Option<Option<Value>>> {
    match o.get("resourceId") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v @ (Value::String(_) | Value::Number(_))) => Ok(Some(Some(v.clone()))),
        Some(_) => Err(malformed("resourceId must be a string or a number")),
    }
}

/// A line item's maximum, read from its digits: kept only exactly, so one
/// with more digits than a decimal holds is refused rather than rounded.
fn opt_score_maximum(o: &SentObject) -> ApiResult<Option<rust_decimal::Decimal>> {
    match o.decimal("scoreMaximum") {
        Ok(None) => Ok(None),
        Ok(Some(n)) if n.read.is_exact() => Ok(Some(n.value())),
        Ok(Some(_)) => Err(malformed(too_many_digits("scoreMaximum"))),
        Err(NumberError::NotANumber) => Err(malformed("scoreMaximum must be a number")),
        Err(e) => Err(malformed(format!("scoreMaximum {e}"))),
    }
}

/// Reads and validates a tool's new line item (the body of a create).
pub fn parse_line_item(body: &[u8], tool_id: ToolId) -> ApiResult<LineItemSpec> {
    let o = body_object(body)?;
    let label = opt_text(&o, "label")?
        .flatten()
        .ok_or_else(|| malformed("label is required"))?;
    let score_maximum =
        opt_score_maximum(&o)?.ok_or_else(|| malformed("scoreMaximum is required"))?;
    let mut spec = LineItemSpec::new(label, score_maximum);
    spec.resource_id = opt_resource_id(&o)?.flatten();
    spec.resource_link_id = opt_text(&o, "resourceLinkId")?.flatten();
    spec.tag = opt_text(&o, "tag")?.flatten();
    spec.start_date_time = opt_text(&o, "startDateTime")?.flatten();
    spec.end_date_time = opt_text(&o, "endDateTime")?.flatten();
    spec.tool_id = Some(tool_id);
    let spec = spec.validated()?;
    date_time("startDateTime", spec.start_date_time.as_deref())?;
    date_time("endDateTime", spec.end_date_time.as_deref())?;
    Ok(spec)
}

/// A line item's start or end, kept as sent: refused unless it is an
/// RFC 3339 date-time the stores can hold, by the domain's one rule.
fn date_time(name: &str, value: Option<&str>) -> ApiResult<()> {
    match value {
        Some(v) => gradebook_domain::time::parse(v)
            .map(drop)
            .map_err(|e| malformed(format!("{name} {e}"))),
        None => Ok(()),
    }
}

/// Refuses a `resourceLinkId` that names no resource link of the course.
async fn known_resource_link(
    state: &SharedState,
    course: &CourseId,
    link: Option<&str>,
) -> ApiResult<()> {
    let Some(link) = link else { return Ok(()) };
    let listed = tool_reads::course_links(&state.engine.db, course.as_str()).await?;
    if listed.iter().any(|l| l.resource_link_id == link) {
        return Ok(());
    }
    // The read side may not show yet a link added a moment ago: the
    // course's own stream decides (links are never removed).
    let added = state
        .engine
        .course(course)
        .await?
        .is_some_and(|c| c.resource_links.keys().any(|k| k.as_str() == link));
    if added {
        Ok(())
    } else {
        Err(malformed(format!(
            "resourceLinkId {link:?} names no resource link of course {course}"
        )))
    }
}

/// Reads a tool's change to a line item (the body of a PUT).
pub fn parse_line_item_patch(body: &[u8]) -> ApiResult<LineItemPatch> {
    let o = body_object(body)?;
    let patch = LineItemPatch {
        label: match opt_text(&o, "label")? {
            Some(None) => return Err(malformed("label must not be null")),
            other => other.flatten(),
        },
        score_maximum: opt_score_maximum(&o)?,
        resource_id: opt_resource_id(&o)?,
        resource_link_id: opt_text(&o, "resourceLinkId")?,
        tag: opt_text(&o, "tag")?,
        start_date_time: opt_text(&o, "startDateTime")?,
        end_date_time: opt_text(&o, "endDateTime")?,
        ..LineItemPatch::default()
    };
    date_time(
        "startDateTime",
        patch.start_date_time.clone().flatten().as_deref(),
    )?;
    date_time(
        "endDateTime",
        patch.end_date_time.clone().flatten().as_deref(),
    )?;
    Ok(patch)
}

/// Creates a column; a repeat naming the same resource answers the column
/// made before.
#[utoipa::path(post, path = "/lti/courses/{course_id}/lineitems", tag = "lti",
    params(("course_id" = String, Path, description = "The course id (the context id in launches)")),
    request_body(content = Object, content_type = "application/vnd.ims.lis.v2.lineitem+json",
        description = "`label` and `scoreMaximum` required; `resourceId`, `resourceLinkId`, `tag`, `startDateTime`, `endDateTime` optional; read as JSON whatever the Content-Type"),
    responses((status = 201, description = "The new line item", content_type = "application/vnd.ims.lis.v2.lineitem+json", body = Object),
              (status = 200, description = "The line item this tool made before for the same resource", content_type = "application/vnd.ims.lis.v2.lineitem+json", body = Object),
              (status = 400, description = "invalid_json, or invalid_body (also for a `resourceLinkId` that names no resource link of the course, and a `startDateTime` or `endDateTime` that is not an RFC 3339 date-time the store can hold)", body = ErrorBody),
              (status = 401, description = "invalid_token: get a new access token", body = ErrorBody),
              (status = 403, description = "scope_not_granted", body = ErrorBody),
              (status = 404, description = "not_found: no such course for this tool", body = ErrorBody),
              (status = 422, description = "an invalid line item", body = ErrorBody)),
    security(("lti_access_token" = ["https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"])))]
pub async fn create_line_item(
    State(state): State<SharedState>,
    caller: ToolCaller,
    Path(course_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require(&[scope::LINEITEM])?;
    let course = deployed_course(&state, &caller, &course_id).await?;
    let tool_id = ToolId::parse(caller.tool.tool_id.clone())
        .map_err(|e| ApiError::internal(format!("tool id {e}")))?;
    let spec = parse_line_item(&body, tool_id)?;
    known_resource_link(&state, &course, spec.resource_link_id.as_deref()).await?;

    let urls = Urls::of(&state.settings);
    let v = Visible::load(&state, &course, &caller.tool.tool_id).await?;
    // Moodle's grade sync finds-or-creates by (tag, resourceId,
    // resourceLinkId) every run; answering a repeat with the column it made
    // before keeps one column per link however often it runs. Only posts
    // naming a resource count as repeats: a tool may well make several
    // columns that share just a tag.
    let identity = (spec.resource_id.is_some() || spec.resource_link_id.is_some())
        .then(|| identity_of(&caller.tool.tool_id, &spec));
    let same = |e: &&LineItemEntry| {
        !e.deleted
            && identity.is_some()
            && Some(identity_of(&caller.tool.tool_id, &e.spec)) == identity
    };
    if let Some(existing) = v.entries.iter().find(same) {
        let body = line_item_json(&urls, course.as_str(), &v, existing);
        return Ok(typed(StatusCode::OK, wire::LINEITEM, &body, None));
    }
    // The id follows from the identity, so two syncs racing each other
    // collide on one stream instead of making two columns.
    let wanted = identity
        .as_ref()
        .and_then(|i| LineItemId::parse(i[..32].to_string()).ok());
    let created = match state
        .engine
        .create_line_item(&course, wanted.clone(), spec.clone(), &caller.meta())
        .await
    {
        Err(EngineError::Domain(DomainError::DuplicateLineItem)) => {
            // Read the winner from its own stream: the read tables may not
            // have caught up with a write that committed a moment ago.
            if let Some(id) = &wanted {
                let agg = state.engine.line_item(&course, id).await?;
                if let (Some(existing), false) = (agg.spec, agg.deleted) {
                    let entry = LineItemEntry {
                        line_item_id: id.to_string(),
                        spec: existing,
                        deleted: false,
                    };
                    if same(&&entry) {
                        let body = line_item_json(&urls, course.as_str(), &v, &entry);
                        return Ok(typed(StatusCode::OK, wire::LINEITEM, &body, None));
                    }
                }
            }
            // That id belongs to a deleted column: a fresh one then.
            state
                .engine
                .create_line_item(&course, None, spec.clone(), &caller.meta())
                .await
        }
        other => other,
    };
    let entry = LineItemEntry {
        line_item_id: created?.to_string(),
        spec,
        deleted: false,
    };
    let body = line_item_json(&urls, course.as_str(), &v, &entry);
    Ok(typed(StatusCode::CREATED, wire::LINEITEM, &body, None))
}

/// What makes two tool posts "the same column": tool, resource link,
/// resource id (compared as text) and tag, hashed to lowercase hex.
fn identity_of(tool_id: &str, spec: &LineItemSpec) -> String {
    use sha2::{Digest, Sha256};
    let parts = json!([
        tool_id,
        spec.resource_link_id,
        spec.resource_id.as_ref().map(resource_id_text),
        spec.tag,
    ]);
    Sha256::digest(parts.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---- one line item ----

async fn visible_item(
    state: &SharedState,
    caller: &ToolCaller,
    course_id: &str,
    line_item_id: &str,
) -> ApiResult<(CourseId, LineItemId, Visible)> {
    let course = deployed_course(state, caller, course_id).await?;
    let item = LineItemId::parse(line_item_id).map_err(|_| item_not_found())?;
    let v = Visible::load(state, &course, &caller.tool.tool_id).await?;
    Ok((course, item, v))
}

/// One line item.
#[utoipa::path(get, path = "/lti/courses/{course_id}/lineitems/{line_item_id}", tag = "lti",
    params(("course_id" = String, Path, description = "The course id (the context id in launches)"), ("line_item_id" = String, Path, description = "The last segment of the line item URL")),
    responses((status = 200, description = "The line item", content_type = "application/vnd.ims.lis.v2.lineitem+json", body = Object),
              (status = 401, description = "invalid_token: get a new access token", body = ErrorBody),
              (status = 403, description = "scope_not_granted", body = ErrorBody),
              (status = 404, description = "not_found", body = ErrorBody)),
    security(("lti_access_token" = ["https://purl.imsglobal.org/spec/lti-ags/scope/lineitem", "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"])))]
pub async fn get_line_item(
    State(state): State<SharedState>,
    caller: ToolCaller,
    Path((course_id, line_item_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.require(&[scope::LINEITEM, scope::LINEITEM_READONLY])?;
    let (course, item, v) = visible_item(&state, &caller, &course_id, &line_item_id).await?;
    let e = v.live(item.as_str())?;
    let body = line_item_json(&Urls::of(&state.settings), course.as_str(), &v, e);
    Ok(typed(StatusCode::OK, wire::LINEITEM, &body, None))
}

/// Changes a line item; fields left out stay as they are.
#[utoipa::path(put, path = "/lti/courses/{course_id}/lineitems/{line_item_id}", tag = "lti",
    params(("course_id" = String, Path, description = "The course id (the context id in launches)"), ("line_item_id" = String, Path, description = "The last segment of the line item URL")),
    request_body(content = Object, content_type = "application/vnd.ims.lis.v2.lineitem+json"),
    responses((status = 200, description = "The changed line item", content_type = "application/vnd.ims.lis.v2.lineitem+json", body = Object),
              (status = 400, description = "invalid_json, or invalid_body (also for a `resourceLinkId` that names no resource link of the course, and a `startDateTime` or `endDateTime` that is not an RFC 3339 date-time the store can hold)", body = ErrorBody),
              (status = 401, description = "invalid_token: get a new access token", body = ErrorBody),
              (status = 403, description = "scope_not_granted", body = ErrorBody),
              (status = 404, description = "not_found", body = ErrorBody),
              (status = 422, description = "an invalid change", body = ErrorBody)),
    security(("lti_access_token" = ["https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"])))]
pub async fn put_line_item(
    State(state): State<SharedState>,
    caller: ToolCaller,
    Path((course_id, line_item_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require(&[scope::LINEITEM])?;
    let (course, item, v) = visible_item(&state, &caller, &course_id, &line_item_id).await?;
    v.live(item.as_str())?;
    let patch = parse_line_item_patch(&body)?;
    let link = patch.resource_link_id.as_ref().and_then(Option::as_deref);
    known_resource_link(&state, &course, link).await?;
    state
        .engine
        .update_line_item(&course, &item, patch, &caller.meta())
        .await?;
    let v = Visible::load(&state, &course, &caller.tool.tool_id).await?;
    let e = v.live(item.as_str())?;
    let body = line_item_json(&Urls::of(&state.settings), course.as_str(), &v, e);
    Ok(typed(StatusCode::OK, wire::LINEITEM, &body, None))
}

/// Deletes a line item; its scores stay in the history.
#[utoipa::path(delete, path = "/lti/courses/{course_id}/lineitems/{line_item_id}", tag = "lti",
    params(("course_id" = String, Path, description = "The course id (the context id in launches)"), ("line_item_id" = String, Path, description = "The last segment of the line item URL")),
    responses((status = 204, description = "Deleted"),
              (status = 401, description = "invalid_token: get a new access token", body = ErrorBody),
              (status = 403, description = "scope_not_granted", body = ErrorBody),
              (status = 404, description = "not_found", body = ErrorBody)),
    security(("lti_access_token" = ["https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"])))]
pub async fn delete_line_item(
    State(state): State<SharedState>,
    caller: ToolCaller,
    Path((course_id, line_item_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(&[scope::LINEITEM])?;
    let (course, item, v) = visible_item(&state, &caller, &course_id, &line_item_id).await?;
    v.live(item.as_str())?;
    state
        .engine
        .delete_line_item(&course, &item, &caller.meta())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- scores ----

/// A course id and line item id as given in the URL, when both are valid.
fn exact_ids(course_id: &str, line_item_id: &str) -> Option<(CourseId, LineItemId)> {
    Some((
        CourseId::parse(course_id).ok()?,
        LineItemId::parse(line_item_id).ok()?,
    ))
}

/// A tool timestamp: RFC 3339 (fractions allowed) or PHP's ISO 8601 with
/// an offset without a colon (`2024-05-01T10:00:00+0000`).
pub fn parse_timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
}

fn progress<T: serde::de::DeserializeOwned>(
    o: &SentObject,
    name: &str,
    allowed: &str,
) -> ApiResult<T> {
    o.get(name)
        .filter(|v| v.is_string())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .ok_or_else(|| malformed(format!("{name} is required, one of {allowed}")))
}

/// Reads a score publish the way tools send it.
pub fn parse_score(o: &SentObject) -> ApiResult<(UserId, ScorePost)> {
    let user = match o.get("userId") {
        Some(Value::String(s)) => s.clone(),
        // Its digits as sent: a long numeric id is not a float.
        Some(Value::Number(_)) => o.text("userId").unwrap_or_default().to_string(),
        _ => return Err(malformed("userId is required")),
    };
    let user = UserId::parse(user).map_err(|e| malformed(e.to_string()))?;
    // Read from the digits sent; a number with more digits than a decimal
    // holds is kept rounded, with its text beside it.
    let num = |name: &str| match o.decimal(name) {
        Ok(None) => Ok((None, None)),
        Ok(Some(n)) => Ok((Some(n.value()), n.as_sent())),
        Err(NumberError::NotANumber) => Err(malformed(format!("{name} must be a number"))),
        Err(e) => Err(malformed(format!("{name} {e}"))),
    };
    let (score_given, score_given_as_sent) = num("scoreGiven")?;
    let (score_maximum, score_maximum_as_sent) = num("scoreMaximum")?;
    let timestamp = o
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
        .ok_or_else(|| malformed("timestamp is required, as ISO 8601 with a time zone offset"))?;
    // The engine keeps the offset as sent: it must be one both stores hold.
    let timestamp = gradebook_domain::time::check(timestamp)
        .map_err(|e| ApiError::bad_request("invalid_timestamp", format!("timestamp {e}")))?;
    let comment = match o.get("comment") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(malformed("comment must be a string")),
    };
    let post = ScorePost {
        score_given,
        score_maximum,
        activity_progress: progress::<ActivityProgress>(
            o,
            "activityProgress",
            "Initialized, Started, InProgress, Submitted, Completed",
        )?,
        grading_progress: progress::<GradingProgress>(
            o,
            "gradingProgress",
            "FullyGraded, Pending, PendingManual, Failed, NotReady",
        )?,
        timestamp,
        comment,
        score_given_as_sent,
        score_maximum_as_sent,
    };
    Ok((user, post))
}

/// Reads a score publish from the request body.
pub fn parse_score_body(body: &[u8]) -> ApiResult<(UserId, ScorePost)> {
    parse_score(&body_object(body)?)
}

/// Score publish. Every post is recorded; 200 when applied, unchanged or
/// ignored as older than the kept score.
#[utoipa::path(post, path = "/lti/courses/{course_id}/lineitems/{line_item_id}/scores", tag = "lti",
    params(("course_id" = String, Path, description = "The course id (the context id in launches)"), ("line_item_id" = String, Path, description = "The last segment of the line item URL")),
    request_body(content = Object, content_type = "application/vnd.ims.lis.v1.score+json",
        description = "`userId`, `timestamp`, `activityProgress`, `gradingProgress` required; `scoreGiven`, `scoreMaximum`, `comment` optional"),
    responses((status = 200, description = "`{\"result\": \"accepted\" | \"cleared\" | \"unchanged\" | \"ignored_stale\", \"userId\", \"scoreOf\"}`", content_type = "application/json", body = Object),
              (status = 400, description = "invalid_json, invalid_body, or invalid_timestamp for a timestamp the store cannot hold (offset beyond ±15:59, year outside 0001 to 9999)", body = ErrorBody),
              (status = 401, description = "invalid_token: get a new access token", body = ErrorBody),
              (status = 403, description = "scope_not_granted", body = ErrorBody),
              (status = 404, description = "not_found: unknown or deleted line item", body = ErrorBody),
              (status = 422, description = "course_locked or user_not_enrolled: recorded, not applied", body = ErrorBody)),
    security(("lti_access_token" = ["https://purl.imsglobal.org/spec/lti-ags/scope/score"])))]
pub async fn post_score(
    State(state): State<SharedState>,
    caller: ToolCaller,
    Path((course_id, line_item_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require(&[scope::SCORE])?;
    let parsed = parse_score_body(&body);
    let outcome = match (&parsed, exact_ids(&course_id, &line_item_id)) {
        (Ok(_), Some((course, item))) => {
            // One round trip for the usual post: the course and the column
            // named exactly, the tool deployed and seeing the column.
            let facts = score_post_facts(
                &state.engine.db,
                course.as_str(),
                &caller.tool.tool_id,
                item.as_str(),
            )
            .await?
            .filter(|f| caller.tool.reaches(course.as_str(), f.deployed) && f.visible);
            facts.map(|f| (course, item, f.context))
        }
        _ => None,
    };
    let (course, item, user, outcome) = match outcome {
        Some((course, item, ctx)) => {
            let (user, post) = parsed?;
            let outcome = state
                .engine
                .post_score_in(ctx, &course, &item, &user, post, &caller.meta())
                .await?;
            (course, item, user, outcome)
        }
        None => {
            // Anything else (unknown, not deployed, not visible, names that
            // differ in case, a malformed body) answers as it always has,
            // the checks in their order.
            let (course, item, v) =
                visible_item(&state, &caller, &course_id, &line_item_id).await?;
            // A deleted column goes on to the engine, which records the refusal.
            v.find(item.as_str()).ok_or_else(item_not_found)?;
            let (user, post) = parsed?;
            let outcome = state
                .engine
                .post_score(&course, &item, &user, post, &caller.meta())
                .await?;
            (course, item, user, outcome)
        }
    };
    let result = match outcome {
        ScoreOutcome::Accepted => "accepted",
        ScoreOutcome::Cleared => "cleared",
        ScoreOutcome::Unchanged => "unchanged",
        ScoreOutcome::IgnoredStale => "ignored_stale",
        ScoreOutcome::Rejected(RejectReason::CourseLocked) => {
            return Err(ApiError::unprocessable(
                "course_locked",
                format!("course {course} is locked; the score was recorded and is applied only when a registrar unlocks the course and it is sent again"),
            ))
        }
        ScoreOutcome::Rejected(RejectReason::UserNotEnrolled) => {
            return Err(ApiError::unprocessable(
                "user_not_enrolled",
                format!("{user} is not an active learner in {course}; the score was recorded but not applied"),
            ))
        }
        ScoreOutcome::Rejected(RejectReason::LineItemDeleted) => return Err(item_not_found()),
    };
    // Exactly 200 every time: Moodle treats any other success code as a failure.
    let body = json!({
        "result": result,
        "userId": user.as_str(),
        "scoreOf": Urls::of(&state.settings).line_item(course.as_str(), item.as_str()),
    });
    Ok(typed(StatusCode::OK, "application/json", &body, None))
}

// ---- results ----

/// The results of a line item, paged, in the line item's scale.
#[utoipa::path(get, path = "/lti/courses/{course_id}/lineitems/{line_item_id}/results", tag = "lti",
    params(("course_id" = String, Path, description = "The course id (the context id in launches)"), ("line_item_id" = String, Path, description = "The last segment of the line item URL"),
           ("user_id" = Option<String>, Query, description = "Only this user's result"),
           ("limit" = Option<u32>, Query, description = "Page size, default 100; more than 1000 counts as 1000"),
           ("cursor" = Option<String>, Query, description = "From a rel=\"next\" link")),
    responses((status = 200, description = "An array of results in the line item's scale: `resultMaximum` is the line item's `scoreMaximum` now, `resultScore` the kept score rescaled to it (left out if it does not fit a decimal)", content_type = "application/vnd.ims.lis.v2.resultcontainer+json", body = Object,
               headers(("Link" = String, description = "`<url>; rel=\"next\"` when there is a next page"))),
              (status = 400, description = "invalid_query", body = ErrorBody),
              (status = 401, description = "invalid_token: get a new access token", body = ErrorBody),
              (status = 403, description = "scope_not_granted", body = ErrorBody),
              (status = 404, description = "not_found", body = ErrorBody)),
    security(("lti_access_token" = ["https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"])))]
pub async fn results(
    State(state): State<SharedState>,
    caller: ToolCaller,
    Path((course_id, line_item_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    caller.require(&[scope::RESULT_READONLY])?;
    let (course, item, v) = visible_item(&state, &caller, &course_id, &line_item_id).await?;
    // Results answer in the line item's scale, the maximum in force now,
    // as other platforms do: tools compare them with the column they made.
    let maximum = v.live(item.as_str())?.spec.score_maximum;
    let (limit, cursor) = wire::paging(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let user_filter = q.get("user_id");
    // An id no learner can have is a mistake to report, not an empty answer.
    if let Some(u) = user_filter {
        UserId::parse(u.clone())?;
    }
    let all =
        tool_reads::line_item_results(&state.engine.db, course.as_str(), item.as_str()).await?;
    let urls = Urls::of(&state.settings);
    let item_url = urls.line_item(course.as_str(), item.as_str());
    let results_url = format!("{item_url}/results");
    let matching: Vec<_> = all
        .iter()
        .filter(|r| user_filter.is_none_or(|u| &r.user_id == u))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(cursor)
        .take(limit)
        .map(|r| {
            let mut o = json!({
                "id": wire::with_query(&results_url, &[("user_id", r.user_id.clone())]),
                "scoreOf": item_url,
                "userId": r.user_id,
                "resultMaximum": number(maximum),
            });
            // A score too large to rescale (a log written before the
            // bounds) is left out rather than shown wrong.
            if let Some(points) = scale_points(r.score_given, r.score_maximum, maximum) {
                o["resultScore"] = number(points);
            }
            if let Some(c) = &r.comment {
                o["comment"] = json!(c);
            }
            o
        })
        .collect();
    let next = (cursor + limit < matching.len()).then(|| {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(u) = user_filter {
            pairs.push(("user_id", u.clone()));
        }
        pairs.push(("limit", limit.to_string()));
        pairs.push(("cursor", (cursor + limit).to_string()));
        wire::with_query(&results_url, &pairs)
    });
    Ok(typed(
        StatusCode::OK,
        wire::RESULT_CONTAINER,
        &Value::Array(page),
        next,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(body: &str) -> (UserId, ScorePost) {
        parse_score_body(body.as_bytes()).unwrap()
    }

    #[test]
    fn a_score_posts_numbers_are_its_digits_as_sent() {
        let (user, p) = post(
            r#"{"userId": 12345678901234567890123, "scoreGiven": 0.19999999999999998, "scoreMaximum": 1.0000000000000002e-05,
                "activityProgress": "Completed", "gradingProgress": "FullyGraded", "timestamp": "2026-09-10T10:00:00Z"}"#,
        );
        assert_eq!(user.as_str(), "12345678901234567890123");
        assert_eq!(p.score_given.unwrap().to_string(), "0.19999999999999998");
        assert_eq!(
            p.score_maximum.unwrap().to_string(),
            "0.000010000000000000002"
        );
        assert_eq!(
            (p.score_given_as_sent, p.score_maximum_as_sent),
            (None, None)
        );
    }

    #[test]
    fn a_score_with_more_digits_than_a_decimal_holds_keeps_its_text() {
        let (_, p) = post(
            r#"{"userId": "ada", "scoreGiven": 0.12345678901234567890123456789012345, "scoreMaximum": "1",
                "activityProgress": "Completed", "gradingProgress": "FullyGraded", "timestamp": "2026-09-10T10:00:00Z"}"#,
        );
        assert_eq!(
            p.score_given.unwrap().to_string(),
            "0.1234567890123456789012345679"
        );
        assert_eq!(
            p.score_given_as_sent.as_deref(),
            Some("0.12345678901234567890123456789012345")
        );
        assert_eq!(p.score_maximum_as_sent, None);
    }
}
