//! `POST /lti/deep-linking/return`: the tool's `LtiDeepLinkingResponse`.
//! Each `ltiResourceLink` content item becomes a resource link in the
//! course the request came from, and each one with a `lineItem` also a line
//! item bound to it. Every check runs, and every item is validated, before
//! anything is created: a bad response creates nothing.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use gradebook_domain::course::ResourceLink;
use gradebook_domain::ids::ResourceLinkId;
use gradebook_domain::line_item::LineItemSpec;
use gradebook_domain::{clean_text, CourseId, LineItemId, Source, ToolId};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::claims::{DEPLOYMENT_ID, DL_CONTENT_ITEMS, DL_DATA, MESSAGE_TYPE, VERSION};
use super::{html, tool_meta};
use crate::engine::EngineError;
use crate::http::error::ApiError;
use crate::http::error::ErrorBody;
use crate::http::SharedState;
use crate::json::{too_many_digits, SentObject};
use crate::services::crypto::{verify_tool_jwt, Expect, JwksCache};
use crate::services::lti_state;
use crate::services::tools::{self, Tool};

/// Tool key sets fetched for deep-linking responses, shared by all requests.
fn jwks_cache() -> &'static JwksCache {
    static CACHE: OnceLock<JwksCache> = OnceLock::new();
    CACHE.get_or_init(JwksCache::default)
}

/// The deep-linking response form, as documented.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DeepLinkingReturn {
    /// The `LtiDeepLinkingResponse` JWT, signed with the tool's key.
    #[schema(rename = "JWT")]
    jwt: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

/// One content item, checked and ready to create.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedItem {
    pub title: String,
    pub url: Option<String>,
    pub custom: Map<String, Value>,
    pub line_item: Option<LineItemSpec>,
}

/// Moodle sends `null` for fields it has no value for: null is absent.
fn present<'a>(item: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    item.get(key).filter(|v| !v.is_null())
}

fn optional_string(
    item: &Map<String, Value>,
    key: &str,
    n: usize,
) -> Result<Option<String>, ApiError> {
    match present(item, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(refuse(
            "invalid_content_item",
            format!("content item {n}: {key} must be a string"),
        )),
    }
}

/// Validates the content items of a response (each object with its texts
/// as sent, `None` for an element that is not an object) and turns them
/// into what will be created. `accept_multiple` is what our request
/// offered; `tool` is the tool that answered, whose registered hosts a
/// link's `url` must be on.
pub fn plan_items(
    items: &[Option<SentObject>],
    accept_multiple: bool,
    tool: &Tool,
) -> Result<Vec<PlannedItem>, ApiError> {
    if items.len() > 1 && !accept_multiple {
        return Err(refuse(
            "invalid_content_item",
            "only one content item may be returned",
        ));
    }
    if items.len() > 100 {
        return Err(refuse(
            "invalid_content_item",
            "at most 100 content items may be returned at once",
        ));
    }
    let mut planned = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let n = i + 1;
        let sent = item.as_ref().ok_or_else(|| {
            refuse(
                "invalid_content_item",
                format!("content item {n} is not a JSON object"),
            )
        })?;
        let item = sent.values();
        match item.get("type").and_then(Value::as_str) {
            Some("ltiResourceLink") => {}
            Some(other) => {
                return Err(refuse(
                    "unsupported_content_type",
                    format!(
                        "content item {n} has type {other:?}; only ltiResourceLink is accepted"
                    ),
                ))
            }
            None => {
                return Err(refuse(
                    "invalid_content_item",
                    format!("content item {n} has no type"),
                ))
            }
        }
        let title = optional_string(item, "title", n)?
            .map(|t| clean_text(&t, "title", 300))
            .transpose()
            .map_err(|e| refuse("invalid_content_item", format!("content item {n}: {e}")))?
            .filter(|t| !t.is_empty());
        // The link launches at its url later: only a URL of the tool's own.
        let url = optional_string(item, "url", n)?;
        if let Some(u) = &url {
            tool.check_link_url(u)
                .map_err(|e| refuse("invalid_content_item", format!("content item {n}: {e}")))?;
        }
        let custom = match present(item, "custom") {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(refuse(
                    "invalid_content_item",
                    format!("content item {n}: custom must be an object"),
                ))
            }
        };
        if Value::Object(custom.clone()).to_string().len() > 16 * 1024 {
            return Err(refuse(
                "invalid_content_item",
                format!("content item {n}: custom is too large"),
            ));
        }
        let line_item = match present(item, "lineItem") {
            None => None,
            Some(Value::Object(li)) => {
                // Read from the digits sent, and kept only exactly.
                let max = sent.object("lineItem").map(|li| li.decimal("scoreMaximum"));
                let max = match max {
                    Some(Ok(Some(m))) if !m.read.is_exact() => {
                        return Err(refuse(
                            "invalid_content_item",
                            too_many_digits(&format!("content item {n}: lineItem.scoreMaximum")),
                        ))
                    }
                    Some(Ok(Some(m))) if m.value() > Decimal::ZERO => m.value(),
                    _ => {
                        return Err(refuse(
                            "invalid_content_item",
                            format!("content item {n}: lineItem.scoreMaximum must be a number greater than 0"),
                        ))
                    }
                };
                let label = optional_string(li, "label", n)?
                    .filter(|l| !l.trim().is_empty())
                    .or_else(|| title.clone())
                    .unwrap_or_else(|| "Untitled".to_string());
                let mut spec = LineItemSpec::new(label, max);
                spec.resource_id = present(li, "resourceId").cloned();
                spec.tag = optional_string(li, "tag", n)?;
                let spec = spec.validated().map_err(|e| {
                    refuse("invalid_content_item", format!("content item {n}: {e}"))
                })?;
                Some(spec)
            }
            Some(_) => {
                return Err(refuse(
                    "invalid_content_item",
                    format!("content item {n}: lineItem must be an object"),
                ))
            }
        };
        planned.push(PlannedItem {
            title: title.unwrap_or_else(|| "Untitled".to_string()),
            url,
            custom,
            line_item,
        });
    }
    Ok(planned)
}

/// The claims of a JWT with their texts as sent; the caller has verified it.
fn sent_claims(token: &str) -> Option<SentObject> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    SentObject::from_slice(&bytes).ok()
}

/// The claims of a JWT, unverified: only to find out which tool signed it.
pub fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}

/// Receives the tool's `LtiDeepLinkingResponse`; content items with a
/// `lineItem` become line items.
#[utoipa::path(post, path = "/lti/deep-linking/return", tag = "lti",
    request_body(content = DeepLinkingReturn, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "A page listing the links and line items made", content_type = "text/html", body = String),
              (status = 400, description = "The form, the JWT or a content item is refused; the code says which", body = ErrorBody)))]
pub async fn deep_linking_return(
    State(state): State<SharedState>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(f)) => f,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return crate::http::extract::too_large().into_response()
        }
        Err(r) => return refuse("invalid_request", r.body_text()).into_response(),
    };
    match receive(&state, &form).await {
        Ok(page) => page,
        Err(e) => e.into_response(),
    }
}

async fn receive(
    state: &SharedState,
    form: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let db = &state.engine.db;
    let token = form.get("JWT").filter(|t| !t.is_empty()).ok_or_else(|| {
        refuse(
            "invalid_request",
            "post the deep-linking response as the form field JWT",
        )
    })?;
    let client_id = unverified_issuer(token)
        .ok_or_else(|| refuse("invalid_jwt", "the JWT is malformed or has no iss"))?;
    let tool = tools::by_client_id(db, &client_id)
        .await
        .map_err(EngineError::from)?
        .filter(|t| t.is_live())
        .ok_or_else(|| {
            refuse(
                "unknown_client",
                "the JWT's iss is not a registered, live tool",
            )
        })?;
    let source = tool.key_source().ok_or_else(|| {
        refuse(
            "invalid_jwt",
            "the tool has no registered key to verify with",
        )
    })?;
    let issuer = state.settings.public_url();
    let claims = verify_tool_jwt(
        token,
        &source,
        jwks_cache(),
        &Expect::new(&client_id, &issuer),
    )
    .await
    .map_err(|e| refuse("invalid_jwt", e.to_string()))?;

    let text = |k: &str| claims.get(k).and_then(Value::as_str);
    let nonce = text("nonce")
        .filter(|n| !n.is_empty() && !n.contains('\0'))
        .ok_or_else(|| refuse("invalid_jwt", "the JWT has no nonce"))?;
    if text(DEPLOYMENT_ID) != Some(tool.deployment_id.as_str()) {
        return Err(refuse(
            "invalid_jwt",
            "deployment_id is not the tool's deployment",
        ));
    }
    if text(MESSAGE_TYPE) != Some("LtiDeepLinkingResponse") {
        return Err(refuse(
            "invalid_jwt",
            "message_type must be LtiDeepLinkingResponse",
        ));
    }
    if text(VERSION) != Some("1.3.0") {
        return Err(refuse("invalid_jwt", "version must be 1.3.0"));
    }
    if lti_state::nonce_used(db, &tool.tool_id, nonce)
        .await
        .map_err(EngineError::from)?
    {
        return Err(refuse(
            "replayed",
            "this deep-linking response was already received",
        ));
    }
    let data = text(DL_DATA)
        .ok_or_else(|| refuse("invalid_jwt", "the response does not echo our data"))?;
    let now = Utc::now();
    let request = lti_state::deep_link_request(db, data)
        .await
        .map_err(EngineError::from)?
        .filter(|r| r.tool_id == tool.tool_id)
        .ok_or_else(|| {
            refuse(
                "unknown_request",
                "data does not match a deep-linking request of ours",
            )
        })?;
    if request.used_at.is_some() {
        return Err(refuse(
            "replayed",
            "this deep-linking request was already answered",
        ));
    }
    if request.expires_at <= gradebook_projections::db::ts(now) {
        return Err(refuse(
            "expired",
            "this deep-linking request has expired; start it again",
        ));
    }
    let not_an_array = || refuse("invalid_jwt", "content_items must be an array");
    let items = match claims.get(DL_CONTENT_ITEMS) {
        None | Some(Value::Null) => vec![],
        // The verified payload read again for the numbers' texts.
        Some(Value::Array(_)) => sent_claims(token)
            .and_then(|c| c.objects(DL_CONTENT_ITEMS))
            .ok_or_else(not_an_array)?,
        Some(_) => return Err(not_an_array()),
    };
    let planned = plan_items(&items, true, &tool)?;

    let course_id = CourseId::parse(request.course_id.clone())?;
    let tool_id = ToolId::parse(tool.tool_id.clone())?;
    let course = state
        .engine
        .course(&course_id)
        .await?
        .ok_or_else(|| super::course_not_found(course_id.as_str()))?;
    if !tool.reaches(course_id.as_str(), course.tools.contains(&tool_id)) {
        return Err(super::course_not_found(course_id.as_str()));
    }
    if !lti_state::consume_deep_link(db, data, &tool.tool_id, nonce, now)
        .await
        .map_err(EngineError::from)?
    {
        return Err(refuse(
            "replayed",
            "this deep-linking response was already received",
        ));
    }

    let meta = tool_meta(&tool, Source::DeepLinking);
    let mut created = Vec::new();
    for item in planned {
        let link_id = ResourceLinkId::parse(lti_state::random_token())?;
        let line_item = match item.line_item {
            Some(mut spec) => {
                spec.resource_link_id = Some(link_id.as_str().to_string());
                spec.tool_id = Some(tool_id.clone());
                let label = spec.label.clone();
                let max = spec.score_maximum;
                let id: LineItemId = state
                    .engine
                    .create_line_item(&course_id, None, spec, &meta)
                    .await?;
                Some((id, label, max))
            }
            None => None,
        };
        let link = ResourceLink {
            resource_link_id: link_id,
            tool_id: tool_id.clone(),
            title: item.title,
            url: item.url,
            custom: item.custom,
            line_item_id: line_item.as_ref().map(|(id, _, _)| id.clone()),
        };
        state
            .engine
            .add_resource_link(&course_id, link.clone(), &meta)
            .await?;
        created.push((link, line_item));
    }
    Ok(result_page(&course.title, &created))
}

/// A line item made from a content item: id, label, maximum.
type NewColumn = (LineItemId, String, Decimal);

fn result_page(course_title: &str, created: &[(ResourceLink, Option<NewColumn>)]) -> Response {
    let mut body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Content added</title></head><body>\
<h1>{}</h1>",
        html::escape(course_title)
    );
    if created.is_empty() {
        body.push_str("<p>The tool returned no content; nothing was added.</p>");
    } else {
        body.push_str(&format!(
            "<p>Added {} item{} to the course:</p><ul>",
            created.len(),
            if created.len() == 1 { "" } else { "s" }
        ));
        for (link, li) in created {
            body.push_str(&format!(
                "<li data-resource-link-id=\"{}\">{}",
                html::escape(link.resource_link_id.as_str()),
                html::escape(&link.title)
            ));
            match li {
                Some((id, label, max)) => body.push_str(&format!(
                    " &mdash; gradebook column <span data-line-item-id=\"{}\">{}</span>, out of {}",
                    html::escape(id.as_str()),
                    html::escape(label),
                    max.normalize()
                )),
                None => body.push_str(" (not graded)"),
            }
            body.push_str("</li>");
        }
        body.push_str("</ul>");
    }
    body.push_str("</body></html>\n");
    html::page(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Plans items written as JSON values, read back from their text.
    fn plan(
        items: &[Value],
        accept_multiple: bool,
        tool: &Tool,
    ) -> Result<Vec<PlannedItem>, ApiError> {
        let sent = crate::json::objects(&Value::Array(items.to_vec()).to_string()).unwrap();
        super::plan_items(&sent, accept_multiple, tool)
    }

    fn moodle() -> Tool {
        let mut t = tools::new_tool(
            "Moodle".into(),
            tools::Grading::Full,
            tools::Roster {
                access: false,
                hide_names: false,
                hide_emails: false,
            },
            "manual",
        );
        t.launch_url = Some("https://moodle.example/enrol/lti/launch.php".into());
        t
    }

    #[test]
    fn a_link_url_must_be_on_the_tools_registered_host() {
        let item =
            |url: &str| vec![json!({"type": "ltiResourceLink", "title": "Quiz", "url": url})];
        let ok = plan(
            &item("https://MOODLE.example/mod/quiz/view.php?id=7"),
            true,
            &moodle(),
        )
        .unwrap();
        assert_eq!(
            ok[0].url.as_deref(),
            Some("https://MOODLE.example/mod/quiz/view.php?id=7")
        );
        for bad in [
            "https://evil.example/enrol/lti/launch.php",
            "https://moodle.example.evil.example/x",
            "javascript:alert(1)",
            "/relative/path",
        ] {
            let e = plan(&item(bad), true, &moodle()).unwrap_err();
            assert_eq!(e.code, "invalid_content_item", "{bad}");
            assert!(
                e.message.starts_with("content item 1: url"),
                "{bad}: {}",
                e.message
            );
        }
        // The domain a tool gave at dynamic registration counts too.
        let mut dynamic = moodle();
        dynamic.registration = Some(json!({tools::TOOL_CONFIG: {"domain": "quiz.example:8443"}}));
        assert!(plan(&item("https://quiz.example/x"), true, &dynamic).is_ok());
    }

    #[test]
    fn moodle_nulls_are_absent_and_the_label_defaults_to_the_title() {
        let items = vec![json!({
            "type": "ltiResourceLink", "title": "Quiz 1", "url": "https://moodle.example/enrol/lti/launch.php",
            "custom": {"id": "7f1c"}, "icon": null, "iframe": null, "window": null,
            "available": null, "submission": null,
            "lineItem": {"label": null, "scoreMaximum": 10, "resourceId": 42, "tag": null}
        })];
        let planned = plan(&items, true, &moodle()).unwrap();
        let li = planned[0].line_item.as_ref().unwrap();
        assert_eq!(li.label, "Quiz 1");
        assert_eq!(li.score_maximum, Decimal::from(10));
        assert_eq!(li.resource_id, Some(json!(42)));
        assert_eq!(li.tag, None);
        assert_eq!(planned[0].custom["id"], "7f1c");
    }

    #[test]
    fn one_bad_item_refuses_the_whole_response() {
        let items = vec![
            json!({"type": "ltiResourceLink", "title": "ok", "lineItem": {"scoreMaximum": 5}}),
            json!({"type": "ltiResourceLink", "title": "bad", "lineItem": {"scoreMaximum": 0}}),
        ];
        assert_eq!(
            plan(&items, true, &moodle()).unwrap_err().code,
            "invalid_content_item"
        );
        let items = vec![json!({"type": "file", "title": "x"})];
        assert_eq!(
            plan(&items, true, &moodle()).unwrap_err().code,
            "unsupported_content_type"
        );
    }

    #[test]
    fn a_line_items_maximum_keeps_the_digits_sent_and_is_refused_when_a_decimal_cannot_hold_it() {
        let item = |max: &str| {
            format!(
                r#"[{{"type": "ltiResourceLink", "title": "Quiz", "lineItem": {{"scoreMaximum": {max}}}}}]"#
            )
        };
        let sent = crate::json::objects(&item("1.6666666666666665")).unwrap();
        let planned = super::plan_items(&sent, false, &moodle()).unwrap();
        assert_eq!(
            planned[0]
                .line_item
                .as_ref()
                .unwrap()
                .score_maximum
                .to_string(),
            "1.6666666666666665"
        );
        let sent = crate::json::objects(&item("0.12345678901234567890123456789012345")).unwrap();
        let err = super::plan_items(&sent, false, &moodle()).unwrap_err();
        assert_eq!(err.code, "invalid_content_item");
        assert!(
            err.message
                .contains("lineItem.scoreMaximum has more digits"),
            "{}",
            err.message
        );
    }
}
