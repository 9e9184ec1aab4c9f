//! Security properties a tool, a registrar or an attacker runs into, on
//! both stores, beyond what the LTI and registrar API tests already hold:
//! the edges of client-assertion checking, access tokens that should no
//! longer work, tools reaching into courses they are not deployed in,
//! hidden roster fields on every page, deep-linking replays, every
//! registrar route refusing bad tokens, keys, and a tool whose key server
//! hangs.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::launch::{
    course_with, deep_linking_response, launch, post_deep_linking, register, roster, COURSE,
};
use common::{meta, Body, TestApp};
use gradebook::domain::enrollment::{EnrollmentStatus, Person, Role};
use gradebook::domain::{CourseId, Source, UserId};
use gradebook::projections::with_db;
use gradebook::services::crypto::PlatformKey;
use gradebook::services::scope;
use gradebook::services::tools::Grading;
use serde_json::{json, Value};

use common::tool::now;
use common::{FakeTool, ALL_SCOPES};

/// A tool registered over the registrar API with full rights, and `extra`
/// settings.
async fn register_tool(app: &TestApp, extra: Value) -> FakeTool {
    let mut body = json!({"name": "Tool", "grading": "full",
        "roster": {"access": true, "hide_names": false, "hide_emails": false}});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    FakeTool::register(app, body).await
}

/// Signs with the tool's key, naming `kid` in the header.
fn sign_with_kid(tool: &FakeTool, claims: &Value, kid: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_string());
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let der = rsa::RsaPrivateKey::from_pkcs8_pem(&tool.key.private_pkcs8_pem)
        .unwrap()
        .to_pkcs1_der()
        .unwrap();
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
    )
    .unwrap()
}

/// A token request; checks the OAuth error shape of every refusal.
async fn token_request(app: &TestApp, assertion: &str, scope: &str) -> (u16, Value) {
    let a =
        common::tool::token_request(&app.client, &app.url("/lti/token"), assertion, scope).await;
    let status = a.status;
    let ct = a
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = a.json();
    if status != 200 {
        assert!(
            ct.is_some_and(|c| c.starts_with("application/json")),
            "{body}"
        );
        assert!(
            body["error"].is_string() && body["error_description"].is_string(),
            "{body}"
        );
    }
    (status, body)
}

async fn send(
    app: &TestApp,
    method: &str,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, _, text) = send_raw(app, method, Some(token), path, body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn send_raw(
    app: &TestApp,
    method: &str,
    token: Option<&str>,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let a = app.send(method, path, token, Body::json(body)).await;
    (a.status, a.headers, a.text)
}

/// A key set served the way a tool publishes it, counting fetches; or,
/// with `hang`, a server that accepts connections and never answers.
async fn key_server(jwks: Value, hang: bool) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    if hang {
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::Relaxed);
                held.push(stream);
            }
        });
    } else {
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                counted.fetch_add(1, Ordering::Relaxed);
                async move { axum::Json(jwks) }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    (format!("http://{addr}/jwks.json"), hits)
}

// ---- client assertions ----

on_both_stores! {
    /// The clock-skew allowance is small: a little ahead is a clock
    /// difference, minutes ahead is refused. A `kid` the tool's key set does
    /// not hold is refused even with a good signature, and made-up kids do
    /// not make the platform hammer the tool's key server.
    async fn client_assertions_are_refused_at_the_edges_in_the_oauth_shape(app: TestApp) {
        let inline = register_tool(&app, json!({})).await;
        let mut c = inline.claims(&app);
        c["iat"] = json!(now() + 20);
        let (status, body) = token_request(&app, &inline.key.sign(&c).unwrap(), scope::SCORE).await;
        assert_eq!(status, 200, "20 s of clock difference is allowed: {body}");
        for ahead in [120, 3600] {
            let mut c = inline.claims(&app);
            c["iat"] = json!(now() + ahead);
            c["exp"] = json!(now() + ahead + 60);
            let (status, body) = token_request(&app, &inline.key.sign(&c).unwrap(), scope::SCORE).await;
            assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "iat {ahead} s ahead: {body}");
        }
        // Expired a moment ago, beyond the skew.
        let mut c = inline.claims(&app);
        c["iat"] = json!(now() - 300);
        c["exp"] = json!(now() - 90);
        let (status, body) = token_request(&app, &inline.key.sign(&c).unwrap(), scope::SCORE).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");

        let remote_key = PlatformKey::generate().unwrap();
        let (real_url, real_hits) = key_server(json!({"keys": [remote_key.public_jwk]}), false).await;
        let remote = register_tool(&app, json!({"jwks_url": real_url})).await;
        let remote = FakeTool { key: remote_key, ..remote };
        // The right key, named by its kid: accepted.
        let ok = sign_with_kid(&remote, &remote.claims(&app), &remote.key.kid);
        assert_eq!(token_request(&app, &ok, scope::SCORE).await.0, 200);
        let fetched = real_hits.load(Ordering::Relaxed);
        // The right key under a kid the set does not have: refused, every time.
        for i in 0..5 {
            let bad = sign_with_kid(&remote, &remote.claims(&app), &format!("made-up-{i}"));
            let (status, body) = token_request(&app, &bad, scope::SCORE).await;
            assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
        }
        assert!(
            real_hits.load(Ordering::Relaxed) <= fetched + 1,
            "five unknown kids fetched the key set {} more times",
            real_hits.load(Ordering::Relaxed) - fetched
        );
        // Signed by an unrelated key that names the tool's kid: refused.
        let stranger = FakeTool { key: PlatformKey::generate().unwrap(), ..remote.clone() };
        let forged = sign_with_kid(&stranger, &stranger.claims(&app), &remote.key.kid);
        assert_eq!(token_request(&app, &forged, scope::SCORE).await.0, 401);
        app.stop().await;
    }
}

// ---- access tokens ----

on_both_stores! {
    async fn an_expired_access_token_is_refused(app: TestApp) {
        let tool = register_tool(&app, json!({})).await;
        course_with(&app, &[&tool.tool_id]).await;
        let token = tool.token(&app, ALL_SCOPES).await;
        let path = format!("/lti/courses/{COURSE}/lineitems");
        assert_eq!(send(&app, "GET", &token, &path, None).await.0, 200);
        // The token's hour is up.
        let past = gradebook::projections::db::ts(chrono::Utc::now() - chrono::TimeDelta::seconds(1));
        with_db!(&app.db, pool => {
            sqlx::query("UPDATE lti_access_tokens SET expires_at = $1").bind(&past).execute(pool).await.unwrap();
        });
        let (status, headers, text) = send_raw(&app, "GET", Some(&token), &path, None).await;
        assert_eq!(status, 401, "{text}");
        assert!(headers.contains_key("www-authenticate"));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"], "invalid_token");
        let before = app.event_count().await;
        let (status, _) = send(&app, "POST", &token, &path, Some(json!({"label": "x", "scoreMaximum": 1}))).await;
        assert_eq!(status, 401);
        assert_eq!(app.event_count().await, before);
        app.stop().await;
    }
}

on_both_stores! {
    /// Tool A asks about a course only tool B is deployed in, on every AGS
    /// and NRPS route and method: the answer is the very answer for a
    /// course that does not exist, and names nothing of the course.
    async fn a_tool_reaching_into_another_tools_course_gets_404_and_learns_nothing(app: TestApp) {
        let a = register_tool(&app, json!({})).await;
        let b = register_tool(&app, json!({})).await;
        course_with(&app, &[&b.tool_id]).await;
        let token_b = b.token(&app, ALL_SCOPES).await;
        let (status, item) = send(&app, "POST", &token_b, &format!("/lti/courses/{COURSE}/lineitems"),
            Some(json!({"label": "Secret exam", "scoreMaximum": 100, "tag": "hidden-tag"}))).await;
        assert_eq!(status, 201, "{item}");
        let item_id = item["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
        let score = json!({"userId": "ada", "scoreGiven": 91, "scoreMaximum": 100, "activityProgress": "Completed",
            "gradingProgress": "FullyGraded", "timestamp": "2026-10-01T10:00:00Z"});
        let (status, _) = send(&app, "POST", &token_b, &format!("/lti/courses/{COURSE}/lineitems/{item_id}/scores"), Some(score.clone())).await;
        assert_eq!(status, 200);

        let token_a = a.token(&app, ALL_SCOPES).await;
        let before = app.event_count().await;
        let tables = app.tables().await;
        let routes: Vec<(&str, String, Option<Value>)> = vec![
            ("GET", "/lti/courses/{c}/lineitems".into(), None),
            ("GET", "/lti/courses/{c}/lineitems?tag=hidden-tag".into(), None),
            ("POST", "/lti/courses/{c}/lineitems".into(), Some(json!({"label": "Mine", "scoreMaximum": 10}))),
            ("GET", format!("/lti/courses/{{c}}/lineitems/{item_id}"), None),
            ("PUT", format!("/lti/courses/{{c}}/lineitems/{item_id}"), Some(json!({"label": "Renamed", "scoreMaximum": 100}))),
            ("DELETE", format!("/lti/courses/{{c}}/lineitems/{item_id}"), None),
            ("POST", format!("/lti/courses/{{c}}/lineitems/{item_id}/scores"), Some(score.clone())),
            ("GET", format!("/lti/courses/{{c}}/lineitems/{item_id}/results"), None),
            ("GET", format!("/lti/courses/{{c}}/lineitems/{item_id}/results?user_id=ada"), None),
            ("GET", "/lti/courses/{c}/memberships".into(), None),
            ("GET", "/lti/courses/{c}/memberships?role=Learner".into(), None),
        ];
        let strip = |text: &str, course: &str| -> Value {
            let mut v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            v.as_object_mut().map(|o| o.remove("request_id"));
            serde_json::from_str(&v.to_string().replace(course, "{c}")).unwrap()
        };
        for (method, path, body) in &routes {
            let real = path.replace("{c}", COURSE);
            let fake = path.replace("{c}", "NO-SUCH-COURSE");
            let (st_real, h_real, t_real) = send_raw(&app, method, Some(&token_a), &real, body.clone()).await;
            let (st_fake, _, t_fake) = send_raw(&app, method, Some(&token_a), &fake, body.clone()).await;
            assert_eq!(st_real, 404, "{method} {real}: {t_real}");
            assert_eq!(st_fake, 404, "{method} {fake}: {t_fake}");
            assert_eq!(strip(&t_real, COURSE), strip(&t_fake, "NO-SUCH-COURSE"), "{method} {path}");
            assert!(!h_real.contains_key("link"));
            // The request id is random: look at everything else.
            let answer = strip(&t_real, COURSE).to_string();
            for secret in ["Secret exam", "hidden-tag", "Cell Biology", "Ada", "Lovelace", "ada@", "91"] {
                assert!(!answer.contains(secret), "{method} {real} leaks {secret}: {t_real}");
            }
        }
        assert_eq!(app.event_count().await, before, "nothing was recorded");
        assert_eq!(app.tables().await, tables, "nothing changed");
        app.stop().await;
    }
}

// ---- NRPS ----

async fn big_roster(app: &TestApp, tool: &FakeTool) -> Vec<(String, String, String)> {
    let c = CourseId::parse(COURSE).unwrap();
    let mut people = vec![
        (
            "ada".to_string(),
            "Ada Lovelace".to_string(),
            "ada@example.edu".to_string(),
        ),
        (
            "grace".to_string(),
            "Grace Hopper".to_string(),
            "grace@example.edu".to_string(),
        ),
    ];
    for (i, role) in [
        Role::Learner,
        Role::Learner,
        Role::TeachingAssistant,
        Role::Learner,
        Role::Instructor,
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("user{i}");
        let name = format!("Given{i} Family{i}");
        let email = format!("mail{i}@example.edu");
        let person = Person {
            role,
            status: if i == 3 {
                EnrollmentStatus::Inactive
            } else {
                EnrollmentStatus::Active
            },
            name: Some(name.clone()),
            email: Some(email.clone()),
        };
        app.engine()
            .put_enrollment(&c, &UserId::parse(&id).unwrap(), person, &meta(Source::Sis))
            .await
            .unwrap();
        people.push((id, name, email));
    }
    common::fixtures::resource_link(app, &c, &tool.tool_id, "rl-quiz", "Quiz").await;
    people
}

on_both_stores! {
    /// Names and emails a registrar hid never appear, whatever the filter,
    /// page size or page; and paging still reaches every member.
    async fn hidden_roster_fields_never_appear_on_any_page_or_filter(app: TestApp) {
        let t = register(&app, Grading::Full, roster(true, true, true)).await;
        course_with(&app, &[&t.tool_id]).await;
        let people = big_roster(&app, &t).await;
        let tool = t.clone();
        let token = tool.token(&app, scope::NRPS).await;
        let filters = ["", "role=Learner", "role=Instructor", "role=TeachingAssistant",
            "role=http%3A%2F%2Fpurl.imsglobal.org%2Fvocab%2Flis%2Fv2%2Fmembership%23Learner", "rlid=rl-quiz"];
        let mut pages = 0;
        for hide in [(true, true), (false, true), (true, false)] {
            let body = json!({"roster": {"hide_names": hide.0, "hide_emails": hide.1}});
            let (status, _) = send(&app, "PATCH", &app.registrar.clone(), &format!("/api/tools/{}", tool.tool_id), Some(body)).await;
            assert_eq!(status, 200);
            for filter in filters {
                let mut everyone = None;
                for limit in [1, 2, 3, 1000] {
                    let mut url = app.url(&format!("/lti/courses/{COURSE}/memberships?{filter}&limit={limit}"));
                    let mut seen = Vec::new();
                    loop {
                        let (status, headers, text) = send_raw(&app, "GET", Some(&token), &url, None).await;
                        assert_eq!(status, 200, "{url}: {text}");
                        pages += 1;
                        for (_, name, email) in &people {
                            for part in name.split(' ') {
                                assert!(!(hide.0 && text.contains(part)), "{part} shows on {url}: {text}");
                            }
                            assert!(!(hide.1 && text.contains(email.as_str())), "{email} shows on {url}: {text}");
                        }
                        let page: Value = serde_json::from_str(&text).unwrap();
                        for m in page["members"].as_array().unwrap() {
                            seen.push(m["user_id"].as_str().unwrap().to_string());
                            for field in ["name", "given_name", "family_name", "middle_name"] {
                                assert!(!(hide.0 && m.get(field).is_some()), "{field} on {url}: {m}");
                            }
                            assert!(!(hide.1 && m.get("email").is_some()), "email on {url}: {m}");
                        }
                        let Some(link) = headers.get("link") else { break };
                        url = link.to_str().unwrap().trim_start_matches('<').split('>').next().unwrap().to_string();
                    }
                    seen.sort();
                    let n = seen.len();
                    seen.dedup();
                    assert_eq!(seen.len(), n, "someone shows twice with {filter} limit {limit}");
                    match &everyone {
                        None => everyone = Some(seen),
                        Some(all) => assert_eq!(&seen, all, "{filter}: paging by {limit} loses or adds people"),
                    }
                }
                assert!(everyone.is_some_and(|e| !e.is_empty()), "{filter}");
            }
        }
        assert!(pages > 50, "{pages} pages checked");
        app.stop().await;
    }
}

// ---- deep linking ----

on_both_stores! {
    /// Each deep-linking response's nonce is good once, across requests;
    /// a response without a nonce, an expired one, and one another tool
    /// sends for this tool's request are refused, and none creates anything.
    async fn deep_linking_responses_cannot_be_replayed_or_borrowed(app: TestApp) {
        let t = register(&app, Grading::Full, roster(true, false, false)).await;
        let other = register(&app, Grading::Full, roster(true, false, false)).await;
        course_with(&app, &[&t.tool_id, &other.tool_id]).await;
        let aud = json!(app.base.as_str());
        let items = json!([{"type": "ltiResourceLink", "title": "Quiz", "lineItem": {"scoreMaximum": 10}}]);
        let data1 = launch(&app, &t, "grace", "deep_linking", None).await["https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"]["data"].clone();
        let first = deep_linking_response(&t, aud.clone(), &data1, items.clone());
        assert_eq!(post_deep_linking(&app, &first).await.0, 200);
        let nonce = {
            use base64::Engine as _;
            let payload = first.split('.').nth(1).unwrap();
            let claims: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
            claims["nonce"].clone()
        };
        let data2 = launch(&app, &t, "grace", "deep_linking", None).await["https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"]["data"].clone();
        assert_ne!(data1, data2);
        let before = app.event_count().await;
        let tables = app.tables().await;
        let signed = |tool: &FakeTool, edit: &dyn Fn(&mut Value)| {
            let mut c = json!({
                "iss": tool.client_id, "aud": aud, "iat": now(), "exp": now() + 600,
                "nonce": format!("nonce-{}", uuid::Uuid::new_v4().simple()),
                "https://purl.imsglobal.org/spec/lti/claim/deployment_id": tool.deployment_id,
                "https://purl.imsglobal.org/spec/lti/claim/message_type": "LtiDeepLinkingResponse",
                "https://purl.imsglobal.org/spec/lti/claim/version": "1.3.0",
                "https://purl.imsglobal.org/spec/lti-dl/claim/content_items": items,
                "https://purl.imsglobal.org/spec/lti-dl/claim/data": data2,
            });
            edit(&mut c);
            tool.key.sign(&c).unwrap()
        };
        for (why, jwt, code) in [
            ("the first response's nonce again", signed(&t, &|c| c["nonce"] = nonce.clone()), "replayed"),
            ("no nonce", signed(&t, &|c| { c.as_object_mut().unwrap().remove("nonce"); }), "invalid_jwt"),
            ("an empty nonce", signed(&t, &|c| c["nonce"] = json!("")), "invalid_jwt"),
            ("expired", signed(&t, &|c| { c["iat"] = json!(now() - 900); c["exp"] = json!(now() - 300); }), "invalid_jwt"),
            ("issued in the future", signed(&t, &|c| { c["iat"] = json!(now() + 900); c["exp"] = json!(now() + 1200); }), "invalid_jwt"),
            ("another tool answering this tool's request", signed(&other, &|_| {}), "unknown_request"),
            ("not a response", signed(&t, &|c| c["https://purl.imsglobal.org/spec/lti/claim/message_type"] = json!("LtiResourceLinkRequest")), "invalid_jwt"),
            ("wrong version", signed(&t, &|c| c["https://purl.imsglobal.org/spec/lti/claim/version"] = json!("1.1")), "invalid_jwt"),
        ] {
            let (status, body) = post_deep_linking(&app, &jwt).await;
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            assert_eq!((status, body["error"].as_str()), (400, Some(code)), "{why}: {body}");
        }
        assert_eq!(app.event_count().await, before, "nothing was recorded");
        assert_eq!(app.tables().await, tables, "nothing was created");
        // The second request is still open for a proper answer.
        assert_eq!(post_deep_linking(&app, &signed(&t, &|_| {})).await.0, 200);
        app.stop().await;
    }
}

// ---- the registrar API ----

/// For each write route, a body it takes from a caller with the right
/// role (`null` when it takes none), so a refusal can only be the role's,
/// and the roles that may call it.
fn valid_body(
    method: &str,
    template: &str,
    tool_id: &str,
) -> Option<(Value, &'static [&'static str])> {
    const SIS: &[&str] = &["sis"];
    const REGISTRAR: &[&str] = &["registrar"];
    Some(match (method, template) {
        ("POST", "/api/courses") => (
            json!({"course_id": "NEW-1", "title": "t", "term": "2026FA"}),
            SIS,
        ),
        ("PUT", "/api/courses/{course_id}/grading") => (json!({"scheme": "points"}), SIS),
        ("POST", "/api/courses/{course_id}/tools") => {
            (json!({"tool_ids": []}), &["sis", "registrar"])
        }
        ("POST", "/api/courses/{course_id}/lock" | "/api/courses/{course_id}/unlock") => {
            (Value::Null, REGISTRAR)
        }
        ("PUT", "/api/courses/{course_id}/enrollments/{user_id}") => {
            (json!({"role": "Learner"}), SIS)
        }
        ("DELETE", "/api/courses/{course_id}/enrollments/{user_id}") => (Value::Null, SIS),
        ("POST", "/api/courses/{course_id}/line-items") => {
            (json!({"label": "L", "score_maximum": 1}), SIS)
        }
        ("PATCH", "/api/courses/{course_id}/line-items/{line_item_id}") => {
            (json!({"label": "L"}), SIS)
        }
        ("DELETE", "/api/courses/{course_id}/line-items/{line_item_id}") => (Value::Null, SIS),
        ("POST", "/api/courses/{course_id}/resource-links") => (
            json!({"resource_link_id": "rl-9", "tool_id": tool_id, "title": "t"}),
            SIS,
        ),
        ("POST", "/api/courses/{course_id}/backfill") => (Value::Null, REGISTRAR),
        ("POST", "/api/tools") => (
            json!({"name": "T", "jwks_url": "https://t.example/jwks", "grading": "full"}),
            REGISTRAR,
        ),
        ("PATCH", "/api/tools/{tool_id}") => (json!({"grading": "sync_only"}), REGISTRAR),
        ("DELETE", "/api/tools/{tool_id}") => (Value::Null, REGISTRAR),
        ("POST", "/api/tools/dynamic-registration") => (
            json!({"registration_url": "https://t.example/register"}),
            REGISTRAR,
        ),
        ("POST", "/api/launches") => (
            json!({"tool_id": tool_id, "course_id": COURSE, "user_id": "ada", "kind": "deep_linking"}),
            SIS,
        ),
        _ => return None,
    })
}

/// A concrete path for an OpenAPI path template.
fn fill(template: &str, tool_id: &str, token_id: &str) -> String {
    template
        .replace("{course_id}", COURSE)
        .replace("{user_id}", "ada")
        .replace("{line_item_id}", "quiz1")
        .replace("{tool_id}", tool_id)
        .replace("{token_id}", token_id)
        .replace("{resource_link_id}", "rl-1")
}

on_both_stores! {
    /// Walks every route the OpenAPI document says needs a registrar API
    /// token: each refuses no token, a made-up one, a revoked one, one with
    /// the right id and a wrong secret, and a tool's LTI access token, with
    /// 401; every role a write route does not name gets 403, sent a body
    /// the route would take (so only the role can be refused) and sent a
    /// malformed one (the role is checked first). Nothing is recorded.
    async fn every_registrar_route_refuses_missing_revoked_and_wrong_role_tokens(app: TestApp) {
        let tool = register_tool(&app, json!({})).await;
        course_with(&app, &[&tool.tool_id]).await;
        let lti_token = tool.token(&app, ALL_SCOPES).await;
        use gradebook::services::api_tokens::{create, revoke, ApiRole};
        let (info, revoked) = create(&app.db, ApiRole::Registrar, None).await.unwrap();
        assert!(revoke(&app.db, &info.token_id).await.unwrap());
        let (live, _) = create(&app.db, ApiRole::Registrar, None).await.unwrap();
        let wrong_secret = format!("gb_{}_{}", live.token_id, "A".repeat(43));
        let (_, doc) = send(&app, "GET", "", "/api/openapi.json", None).await;
        let before = app.event_count().await;
        let mut checked = 0;
        let mut wrong_role = 0;
        let mut public = Vec::new();
        for (template, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let method = method.to_uppercase();
                let schemes: Vec<String> = op["security"].as_array().map(|s| s.iter().flat_map(|r| r.as_object().unwrap().keys().cloned()).collect()).unwrap_or_default();
                if !schemes.iter().any(|s| s == "bearer") {
                    if template.starts_with("/api/") {
                        public.push(format!("{method} {template}"));
                    }
                    continue;
                }
                let path = fill(template, &tool.tool_id, &live.token_id);
                let known = if method == "GET" { None } else { valid_body(&method, template, &tool.tool_id) };
                let body = known.as_ref().map(|(b, _)| b.clone());
                for (who, token) in [("no token", None), ("a made-up token", Some("gb_madeup_secret")),
                    ("a revoked token", Some(revoked.as_str())), ("a wrong secret", Some(wrong_secret.as_str())),
                    ("a tool's access token", Some(lti_token.as_str())), ("an empty token", Some(""))] {
                    let (status, _, text) = send_raw(&app, &method, token, &path, body.clone()).await;
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    assert_eq!((status, v["error"].as_str()), (401, Some("unauthorized")), "{method} {path} with {who}: {text}");
                    assert!(v["message"].is_string() && v["request_id"].is_string(), "{text}");
                }
                if method != "GET" {
                    // A body the route would take from the right role: only the role can be refused.
                    let (body, allowed) = known.unwrap_or_else(|| panic!("no valid body known for {method} {template}: add one to valid_body"));
                    for (role, token) in [("auditor", &app.auditor), ("sis", &app.sis), ("registrar", &app.registrar)] {
                        if allowed.contains(&role) {
                            continue;
                        }
                        let (status, _, text) = if template.ends_with("/backfill") {
                            let res = app.client.post(app.url(&path)).bearer_auth(token).header("content-type", "text/csv")
                                .body(format!("{}\n", gradebook::backfill::COLUMNS.join(","))).send().await.unwrap();
                            (res.status().as_u16(), res.headers().clone(), res.text().await.unwrap())
                        } else {
                            send_raw(&app, &method, Some(token), &path, body.as_object().map(|_| body.clone())).await
                        };
                        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        assert_eq!((status, v["error"].as_str()), (403, Some("forbidden")), "{method} {path} as {role}: {text}");
                        // The role is refused before the body is read: a
                        // malformed one changes nothing about the answer.
                        let res = app.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), app.url(&path))
                            .bearer_auth(token).header("content-type", "application/json").body("{\"unclosed").send().await.unwrap();
                        let (status, text) = (res.status().as_u16(), res.text().await.unwrap());
                        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        assert_eq!((status, v["error"].as_str()), (403, Some("forbidden")), "{method} {path} as {role}, malformed body: {text}");
                        wrong_role += 1;
                    }
                }
                checked += 1;
            }
        }
        assert!(checked >= 25, "only {checked} routes found");
        assert!(wrong_role >= 25, "only {wrong_role} wrong-role calls");
        assert_eq!(public, ["GET /api/openapi.json"], "the only /api route open to anyone");
        assert_eq!(app.event_count().await, before, "refused calls record nothing");

        // Stored hashed: no secret is in the token table, nor a tool's access token in its table.
        let dump = gradebook::projections::with_db!(&app.db, pool => {
            let a: Vec<String> = sqlx::query_scalar("SELECT token_id || ' ' || role || ' ' || secret_hash FROM api_tokens").fetch_all(pool).await.unwrap();
            let b: Vec<String> = sqlx::query_scalar("SELECT token_hash || ' ' || tool_id FROM lti_access_tokens").fetch_all(pool).await.unwrap();
            format!("{a:?}{b:?}")
        });
        for secret in [&app.registrar, &app.sis, &app.auditor, &revoked, &lti_token] {
            // An API token is `gb_<hex id>_<secret>`; the secret itself is
            // base64url and may hold `_`, so it is everything after the id.
            let tail = match secret.strip_prefix("gb_") {
                Some(rest) => rest.split_once('_').unwrap().1,
                None => secret.as_str(),
            };
            assert!(tail.len() >= 40, "{secret}");
            assert!(!dump.contains(tail), "a secret is stored as it is");
        }
        app.stop().await;
    }
}

// ---- platform keys ----

on_both_stores! {
    /// After a rotation the new key signs and the old one stays published
    /// for the overlap, then drops out; no private key material is served
    /// anywhere a tool or anyone else can read.
    async fn rotation_keeps_the_old_key_for_the_overlap_and_no_private_key_is_served(app: TestApp) {
        let old = gradebook::services::platform_keys::signing_key(&app.db).await.unwrap();
        let new = gradebook::services::platform_keys::rotate(&app.db).await.unwrap();
        let (status, jwks) = send(&app, "GET", "", "/.well-known/jwks.json", None).await;
        assert_eq!(status, 200);
        let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, [new.kid.as_str(), old.kid.as_str()]);
        let later = chrono::Utc::now() + gradebook::services::platform_keys::KEY_OVERLAP + chrono::TimeDelta::hours(1);
        let then = gradebook::services::platform_keys::jwks(&app.db, later).await.unwrap();
        assert_eq!(then["keys"].as_array().unwrap().len(), 1);
        assert_eq!(then["keys"][0]["kid"], new.kid.as_str());
        // Launches are signed with the new key.
        let t = register(&app, Grading::Full, roster(true, false, false)).await;
        course_with(&app, &[&t.tool_id]).await;
        launch(&app, &t, "grace", "deep_linking", None).await;

        // Nothing readable holds a private key: every GET route without a
        // path parameter, as anyone and as a registrar, and the tool pages.
        let pems: Vec<String> = gradebook::projections::with_db!(&app.db, pool => {
            sqlx::query_scalar("SELECT private_pem FROM platform_keys").fetch_all(pool).await.unwrap()
        });
        let secrets: Vec<String> = pems.iter().flat_map(|p| p.lines().filter(|l| !l.starts_with("-----")).map(str::to_string).collect::<Vec<_>>()).collect();
        let (_, doc) = send(&app, "GET", "", "/api/openapi.json", None).await;
        let mut paths: Vec<String> = doc["paths"].as_object().unwrap().iter()
            .filter(|(p, ops)| !p.contains('{') && ops.get("get").is_some())
            .map(|(p, _)| p.clone()).collect();
        paths.push(format!("/api/tools/{}", t.tool_id));
        for path in &paths {
            for token in [None, Some(app.registrar.as_str())] {
                let (_, _, text) = send_raw(&app, "GET", token, path, None).await;
                assert!(!text.contains("PRIVATE KEY"), "{path}");
                assert!(!text.contains("\"d\":") && !text.contains("\"p\":") && !text.contains("\"q\":"), "{path}: {text}");
                for line in &secrets {
                    assert!(!text.contains(line.as_str()), "{path} serves private key material");
                }
            }
        }
        assert!(paths.iter().any(|p| p == "/.well-known/jwks.json"));
        app.stop().await;
    }
}

// ---- outbound requests ----

on_both_stores! {
    /// A tool whose key server accepts the connection and never answers
    /// gets its token refused once the fetch times out, and meanwhile the
    /// platform serves everyone else, other tools' key fetches included.
    async fn a_tool_whose_key_server_hangs_cannot_hang_the_platform(app: TestApp) {
        let (hang_url, _) = key_server(Value::Null, true).await;
        let slow = register_tool(&app, json!({"jwks_url": hang_url})).await;
        let good_key = PlatformKey::generate().unwrap();
        let (good_url, _) = key_server(json!({"keys": [good_key.public_jwk]}), false).await;
        let good = register_tool(&app, json!({"jwks_url": good_url})).await;
        let good = FakeTool { key: good_key, ..good };

        let started = Instant::now();
        let slow_assertion = slow.key.sign(&slow.claims(&app)).unwrap();
        let hung = token_request(&app, &slow_assertion, scope::SCORE);
        let others = async {
            // Give the hanging fetch a head start, then check the others.
            tokio::time::sleep(Duration::from_millis(200)).await;
            for _ in 0..3 {
                let t = Instant::now();
                let health = app.client.get(app.url("/healthz")).send().await.unwrap();
                assert_eq!(health.status(), 200);
                let (status, body) = token_request(&app, &good.key.sign(&good.claims(&app)).unwrap(), scope::SCORE).await;
                assert_eq!(status, 200, "{body}");
                // Well under the 5 s the hanging fetch takes to time out.
                assert!(t.elapsed() < Duration::from_secs(4), "other requests waited {:?}", t.elapsed());
            }
        };
        let ((status, body), ()) = tokio::join!(hung, others);
        let took = started.elapsed();
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
        assert!(took < Duration::from_secs(12), "the hanging key server held the request {took:?}");
        app.stop().await;
    }
}
