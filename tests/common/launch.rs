//! Helpers for launch tests: a registered tool with its own key, a course it
//! is deployed in, people, and the browser's side of the OIDC login.

use std::collections::HashMap;

use gradebook::domain::enrollment::{EnrollmentStatus, Person, Role};
use gradebook::domain::CourseId;
use gradebook::services::crypto::{parse_rsa_jwk, PlatformKey};
use gradebook::services::platform_keys as keys;
use gradebook::services::tools::{self, Grading, Roster, Tool};
use serde_json::{json, Value};

use super::fixtures::{enroll, open_course};
use super::{Body, FakeTool, TestApp};

pub const COURSE: &str = "BIO-200-2026FA";
pub const TOOL_BASE: &str = "https://tool.example.edu";

/// Where the tool is launched.
pub fn launch_url() -> String {
    format!("{TOOL_BASE}/enrol/lti/launch.php")
}

/// Where the tool takes deep-linking requests.
pub fn deep_linking_url() -> String {
    format!("{TOOL_BASE}/enrol/lti/launch_deeplink.php")
}

pub fn tool_record(grading: Grading, roster: Roster, key: &PlatformKey) -> Tool {
    let mut t = tools::new_tool("Moodle".into(), grading, roster, "manual");
    t.issuer = Some(TOOL_BASE.into());
    t.launch_url = Some(launch_url());
    t.login_url = Some(format!("{TOOL_BASE}/enrol/lti/login.php?id=abc"));
    t.deep_linking_url = Some(deep_linking_url());
    t.redirect_uris = vec![launch_url(), deep_linking_url()];
    t.public_jwk = Some(key.public_jwk.clone());
    t
}

pub fn roster(access: bool, hide_names: bool, hide_emails: bool) -> Roster {
    Roster {
        access,
        hide_names,
        hide_emails,
    }
}

/// A tool registration as a registrar would make it, written straight into
/// the store, with the tool's own signing key (which signs its
/// deep-linking responses and client assertions).
pub async fn register(app: &TestApp, grading: Grading, roster: Roster) -> FakeTool {
    let key = PlatformKey::generate().unwrap();
    let tool = tool_record(grading, roster, &key);
    tools::insert(&app.db, &tool).await.unwrap();
    FakeTool {
        key,
        tool_id: tool.tool_id,
        client_id: tool.client_id,
        deployment_id: tool.deployment_id,
    }
}

pub fn person(role: Role, name: &str, email: Option<&str>) -> Person {
    Person {
        role,
        status: EnrollmentStatus::Active,
        name: Some(name.into()),
        email: email.map(str::to_string),
    }
}

/// BIO-200 with the given tools deployed; Ada (learner, with name and
/// email) and Grace (instructor).
pub async fn course_with(app: &TestApp, tool_ids: &[&str]) {
    let c = CourseId::parse(COURSE).unwrap();
    open_course(app, &c, "Cell Biology", tool_ids).await;
    let ada = person(Role::Learner, "Ada Lovelace", Some("ada@example.edu"));
    enroll(app, &c, "ada", ada).await;
    let grace = person(Role::Instructor, "Grace Hopper", Some("grace@example.edu"));
    enroll(app, &c, "grace", grace).await;
}

/// POST as the SIS; returns status and JSON body.
pub async fn post_sis(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    post_as(app, &app.sis.clone(), path, body).await
}

pub async fn post_as(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let a = app.send("POST", path, Some(token), Body::Json(body)).await;
    (a.status, a.json())
}

/// A resource link made by the SIS, with a line item out of `max`.
pub async fn sis_link(app: &TestApp, tool_id: &str, link_id: &str, max: Option<&str>) -> Value {
    let line_item = max.map(|m| json!({"label": format!("{link_id} column"), "score_maximum": m}));
    let (status, body) = post_sis(
        app,
        &format!("/api/courses/{COURSE}/resource-links"),
        json!({
            "resource_link_id": link_id, "tool_id": tool_id, "title": format!("{link_id} title"),
            "custom": {"id": format!("custom-{link_id}")}, "line_item": line_item,
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Asks for a launch; returns the login initiation URL's query parameters.
pub async fn initiate(
    app: &TestApp,
    tool_id: &str,
    user: &str,
    kind: &str,
    link: Option<&str>,
) -> HashMap<String, String> {
    let (status, body) = post_sis(
        app,
        "/api/launches",
        json!({"tool_id": tool_id, "course_id": COURSE, "user_id": user, "kind": kind, "resource_link_id": link}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url = reqwest::Url::parse(body["login_initiation_url"].as_str().unwrap()).unwrap();
    url.query_pairs().into_owned().collect()
}

/// The tool's authentication request for login parameters `login`.
pub fn auth_request(
    login: &HashMap<String, String>,
    redirect_uri: &str,
    nonce: &str,
) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = [
        ("scope", "openid"),
        ("response_type", "id_token"),
        ("response_mode", "form_post"),
        ("prompt", "none"),
        ("redirect_uri", redirect_uri),
        ("state", "state-123"),
        ("nonce", nonce),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for k in ["client_id", "login_hint", "lti_message_hint"] {
        if let Some(v) = login.get(k) {
            p.push((k.to_string(), v.clone()));
        }
    }
    p
}

/// GETs `/lti/authorize`; returns status, content type and body.
pub async fn authorize(app: &TestApp, params: &[(String, String)]) -> (u16, String, String) {
    let res = app
        .client
        .get(app.url("/lti/authorize"))
        .query(params)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, res.text().await.unwrap())
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of a hidden form field in an auto-posting page.
pub fn form_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(unescape(&html[start..end]))
}

/// The form's action.
pub fn form_action(html: &str) -> Option<String> {
    let marker = "action=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(unescape(&html[start..end]))
}

/// Verifies an id_token with the platform's published keys, as a tool
/// does, and returns its claims and header.
pub async fn verify_id_token(
    app: &TestApp,
    token: &str,
    client_id: &str,
) -> (Value, jsonwebtoken::Header) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwks = keys::jwks(&app.db, chrono::Utc::now()).await.unwrap();
    let kid = header.kid.clone().expect("kid in the header");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the kid is in the platform JWKS");
    let key = parse_rsa_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[client_id]);
    v.set_issuer(&[app.base.as_str()]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &v).unwrap();
    (data.claims, data.header)
}

/// Runs a whole launch (SIS request, tool's auth request, our answer) and
/// returns the verified claims.
pub async fn launch(
    app: &TestApp,
    t: &FakeTool,
    user: &str,
    kind: &str,
    link: Option<&str>,
) -> Value {
    let login = initiate(app, &t.tool_id, user, kind, link).await;
    let redirect = login["target_link_uri"].clone();
    let (status, ct, html) = authorize(app, &auth_request(&login, &redirect, "nonce-1")).await;
    assert_eq!(status, 200, "{html}");
    assert!(ct.starts_with("text/html"), "{ct}");
    assert_eq!(form_action(&html).as_deref(), Some(redirect.as_str()));
    assert_eq!(form_field(&html, "state").as_deref(), Some("state-123"));
    let token = form_field(&html, "id_token").expect("an id_token field");
    verify_id_token(app, &token, &t.client_id).await.0
}

/// A deep-linking response JWT signed with the tool's key.
pub fn deep_linking_response(t: &FakeTool, aud: Value, data: &Value, items: Value) -> String {
    let now = chrono::Utc::now().timestamp();
    t.key
        .sign(&json!({
            "iss": t.client_id, "aud": aud, "iat": now, "exp": now + 600,
            "nonce": format!("nonce-{}", uuid::Uuid::new_v4().simple()),
            "https://purl.imsglobal.org/spec/lti/claim/deployment_id": t.deployment_id,
            "https://purl.imsglobal.org/spec/lti/claim/message_type": "LtiDeepLinkingResponse",
            "https://purl.imsglobal.org/spec/lti/claim/version": "1.3.0",
            "https://purl.imsglobal.org/spec/lti-dl/claim/content_items": items,
            "https://purl.imsglobal.org/spec/lti-dl/claim/data": data,
        }))
        .unwrap()
}

/// Posts a deep-linking response; returns status and body text.
pub async fn post_deep_linking(app: &TestApp, jwt: &str) -> (u16, String) {
    let res = app
        .client
        .post(app.url("/lti/deep-linking/return"))
        .form(&[("JWT", jwt)])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}
