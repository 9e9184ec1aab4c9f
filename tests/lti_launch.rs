//! LTI launches end to end over HTTP, on PostgreSQL and on SQLite: the SIS
//! asks for a launch, the tool completes the OIDC login, the id_token says
//! what a tool needs (and no more than its settings allow), and deep-linking
//! responses become resource links and line items.

mod common;

use common::launch::*;
use common::FakeTool;
use gradebook::domain::{CourseId, LineItemId, UserId};
use gradebook::services::tools::{self, Grading};
use serde_json::{json, Value};

const LTI: &str = "https://purl.imsglobal.org/spec/lti/claim/";
const AGS: &str = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint";
const NRPS: &str = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice";
const DL: &str = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings";

fn claim<'a>(c: &'a Value, name: &str) -> &'a Value {
    &c[format!("{LTI}{name}")]
}

async fn setup(app: &common::TestApp, grading: Grading, r: tools::Roster) -> FakeTool {
    let t = register(app, grading, r).await;
    course_with(app, &[&t.tool_id]).await;
    t
}

on_both_stores! {
    async fn a_launch_initiation_url_carries_every_login_parameter(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        sis_link(&app, &t.tool_id, "quiz-1", Some("10")).await;

        let p = initiate(&app, &t.tool_id, "ada", "resource_link", Some("quiz-1")).await;
        assert_eq!(p["iss"], app.base, "the issuer, byte for byte");
        assert_eq!(p["login_hint"], "ada");
        let hint = &p["lti_message_hint"];
        assert_eq!(hint.len(), 64);
        assert!(hint.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{hint}");
        assert_eq!(p["target_link_uri"], format!("{TOOL_BASE}/enrol/lti/launch.php"));
        assert_eq!(p["client_id"], t.client_id);
        assert_eq!(p["lti_deployment_id"], t.deployment_id);
        // The registered login URL's own query is kept.
        assert_eq!(p["id"], "abc");

        let p = initiate(&app, &t.tool_id, "grace", "deep_linking", None).await;
        assert_eq!(p["target_link_uri"], format!("{TOOL_BASE}/enrol/lti/launch_deeplink.php"));
        assert_ne!(p["lti_message_hint"], *hint, "every launch gets its own hint");
        app.stop().await;
    }
}

on_both_stores! {
    async fn launch_initiation_refuses_what_cannot_be_launched(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        sis_link(&app, &t.tool_id, "quiz-1", None).await;
        let other = register(&app, Grading::Full, roster(true, false, false)).await;
        let revoked = register(&app, Grading::Full, roster(true, false, false)).await;
        tools::revoke(&app.db, &revoked.tool_id).await.unwrap();
        app.engine()
            .drop_enrollment(&CourseId::parse(COURSE).unwrap(), &UserId::parse("ada").unwrap(), &common::meta(gradebook::domain::Source::Sis))
            .await
            .unwrap();
        let before = app.event_count().await;

        let ask = |tool: &str, user: &str, kind: &str, link: Option<&str>| {
            json!({"tool_id": tool, "course_id": COURSE, "user_id": user, "kind": kind, "resource_link_id": link})
        };
        let id = t.tool_id.as_str();
        for (body, status, code) in [
            (ask("no-such-tool", "grace", "resource_link", Some("quiz-1")), 404, "tool_not_found"),
            (ask(&revoked.tool_id, "grace", "resource_link", Some("quiz-1")), 422, "tool_revoked"),
            (ask(&other.tool_id, "grace", "resource_link", Some("quiz-1")), 404, "course_not_found"),
            (json!({"tool_id": id, "course_id": "NOPE-1", "user_id": "grace", "kind": "deep_linking"}), 404, "course_not_found"),
            (ask(id, "nobody", "resource_link", Some("quiz-1")), 404, "not_enrolled"),
            (ask(id, "ada", "resource_link", Some("quiz-1")), 422, "enrollment_dropped"),
            (ask(id, "grace", "resource_link", Some("no-such-link")), 404, "resource_link_not_found"),
            (ask(id, "grace", "resource_link", None), 422, "resource_link_required"),
            (ask(id, "grace", "sideways", None), 422, "invalid_body"),
            (ask(id, "bad id!", "deep_linking", None), 400, "invalid_id"),
        ] {
            let (s, b) = post_sis(&app, "/api/launches", body.clone()).await;
            assert_eq!((s, b["error"].as_str()), (status, Some(code)), "{body} -> {b}");
            assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
        }

        // Deep linking is for people who author; a learner is refused.
        let c = CourseId::parse(COURSE).unwrap();
        app.engine()
            .put_enrollment(&c, &UserId::parse("alan").unwrap(), person(gradebook::domain::enrollment::Role::Learner, "Alan Turing", None), &common::meta(gradebook::domain::Source::Sis))
            .await
            .unwrap();
        let before = before + 1;
        let (s, b) = post_sis(&app, "/api/launches", ask(id, "alan", "deep_linking", None)).await;
        assert_eq!((s, b["error"].as_str()), (403, Some("deep_linking_not_allowed")), "{b}");

        // Only the SIS starts launches.
        let (s, _) = post_as(&app, &app.auditor.clone(), "/api/launches", ask(id, "grace", "deep_linking", None)).await;
        assert_eq!(s, 403);
        let (s, _) = post_as(&app, "wrong", "/api/launches", ask(id, "grace", "deep_linking", None)).await;
        assert_eq!(s, 401);
        assert_eq!(app.event_count().await, before, "a refusal records nothing");
        app.stop().await;
    }
}

on_both_stores! {
    async fn an_authorized_launch_carries_every_claim_a_tool_needs(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        let link = sis_link(&app, &t.tool_id, "quiz-1", Some("25")).await;
        let line_item_id = link["line_item_id"].as_str().unwrap().to_string();

        let c = launch(&app, &t, "ada", "resource_link", Some("quiz-1")).await;
        assert_eq!(c["iss"], app.base.as_str());
        assert_eq!(c["aud"], t.client_id.as_str());
        assert_eq!(c["sub"], "ada");
        assert_eq!(c["nonce"], "nonce-1");
        let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
        assert!(exp > iat && (iat - chrono::Utc::now().timestamp()).abs() < 60, "{iat} {exp}");
        assert_eq!(claim(&c, "message_type"), "LtiResourceLinkRequest");
        assert_eq!(claim(&c, "version"), "1.3.0");
        assert_eq!(claim(&c, "deployment_id"), t.deployment_id.as_str());
        assert_eq!(claim(&c, "target_link_uri"), format!("{TOOL_BASE}/enrol/lti/launch.php").as_str());
        assert_eq!(claim(&c, "roles"), &json!(["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]));
        assert_eq!(claim(&c, "context"), &json!({
            "id": COURSE, "label": COURSE, "title": "Cell Biology",
            "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"],
        }));
        let platform = claim(&c, "tool_platform");
        assert_eq!(platform["product_family_code"], "gradebook");
        assert!(platform["guid"].is_string() && platform["version"].is_string(), "{platform}");
        assert!(claim(&c, "launch_presentation").is_object());
        assert_eq!(claim(&c, "resource_link"), &json!({"id": "quiz-1", "title": "quiz-1 title"}));
        assert_eq!(claim(&c, "custom"), &json!({"id": "custom-quiz-1"}), "the stored custom object is echoed");
        assert_eq!(c["name"], "Ada Lovelace");
        assert_eq!(c["given_name"], "Ada");
        assert_eq!(c["family_name"], "Lovelace");
        assert_eq!(c["email"], "ada@example.edu");

        let lineitems = format!("{}/lti/courses/{COURSE}/lineitems", app.base);
        assert_eq!(c[AGS], json!({
            "scope": [
                "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
                "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
                "https://purl.imsglobal.org/spec/lti-ags/scope/score",
            ],
            "lineitems": lineitems,
            "lineitem": format!("{lineitems}/{line_item_id}"),
        }));
        assert_eq!(c[NRPS], json!({
            "context_memberships_url": format!("{}/lti/courses/{COURSE}/memberships", app.base),
            "service_versions": ["2.0"],
        }));
        assert!(c.get(DL).is_none());
        app.stop().await;
    }
}

on_both_stores! {
    async fn launch_claims_follow_the_tools_grading_and_roster_settings(app: TestApp) {
        let sync = register(&app, Grading::SyncOnly, roster(true, true, false)).await;
        let off = register(&app, Grading::Off, roster(false, false, false)).await;
        let private = register(&app, Grading::Full, roster(true, false, true)).await;
        course_with(&app, &[&sync.tool_id, &off.tool_id, &private.tool_id]).await;
        sis_link(&app, &sync.tool_id, "s-link", None).await;
        sis_link(&app, &off.tool_id, "o-link", Some("10")).await;
        sis_link(&app, &private.tool_id, "p-link", None).await;

        let c = launch(&app, &sync, "ada", "resource_link", Some("s-link")).await;
        assert_eq!(c[AGS]["scope"], json!([
            "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
            "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
            "https://purl.imsglobal.org/spec/lti-ags/scope/score",
        ]));
        assert!(c[AGS]["lineitems"].is_string());
        assert!(c[AGS].get("lineitem").is_none(), "a link without a line item has no lineitem");
        assert!(c.get("name").is_none() && c.get("given_name").is_none() && c.get("family_name").is_none(), "{c}");
        assert_eq!(c["email"], "ada@example.edu");
        assert!(c[NRPS].is_object());
        assert!(claim(&c, "custom").is_object());

        let c = launch(&app, &off, "ada", "resource_link", Some("o-link")).await;
        assert!(c.get(AGS).is_none(), "grading off: no AGS claim");
        assert!(c.get(NRPS).is_none(), "roster off: no NRPS claim");
        assert_eq!(c["name"], "Ada Lovelace");

        let c = launch(&app, &private, "grace", "resource_link", Some("p-link")).await;
        assert!(c.get("email").is_none(), "{c}");
        assert_eq!(c["name"], "Grace Hopper");
        assert_eq!(claim(&c, "roles"), &json!(["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"]));
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_deep_linking_launch_offers_resource_links_to_an_instructor(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        let c = launch(&app, &t, "grace", "deep_linking", None).await;
        assert_eq!(claim(&c, "message_type"), "LtiDeepLinkingRequest");
        assert_eq!(claim(&c, "target_link_uri"), format!("{TOOL_BASE}/enrol/lti/launch_deeplink.php").as_str());
        let s = &c[DL];
        assert_eq!(s["deep_link_return_url"], format!("{}/lti/deep-linking/return", app.base));
        assert_eq!(s["accept_types"], json!(["ltiResourceLink"]));
        assert_eq!(s["accept_presentation_document_targets"], json!(["iframe", "window"]));
        assert_eq!(s["accept_multiple"], true);
        assert_eq!(s["auto_create"], true);
        assert!(s["data"].as_str().is_some_and(|d| d.len() >= 32), "{s}");
        assert!(claim(&c, "resource_link").is_null());
        assert!(c[AGS]["lineitems"].is_string());
        app.stop().await;
    }
}

on_both_stores! {
    async fn authorization_refuses_untrusted_and_replayed_requests(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        sis_link(&app, &t.tool_id, "quiz-1", None).await;
        let launch_php = format!("{TOOL_BASE}/enrol/lti/launch.php");
        let set = |p: &mut Vec<(String, String)>, k: &str, v: &str| {
            p.retain(|(name, _)| name != k);
            p.push((k.to_string(), v.to_string()));
        };

        // Untrusted: a plain JSON 400, nothing posted anywhere.
        let login = initiate(&app, &t.tool_id, "ada", "resource_link", Some("quiz-1")).await;
        let mut p = auth_request(&login, "https://evil.example/steal", "n1");
        let (s, ct, body) = authorize(&app, &p).await;
        assert_eq!((s, ct.as_str()), (400, "application/json"), "{body}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "invalid_redirect_uri");
        set(&mut p, "redirect_uri", &launch_php);
        set(&mut p, "client_id", "unknown-client");
        let (s, ct, body) = authorize(&app, &p).await;
        assert_eq!((s, ct.as_str()), (400, "application/json"), "{body}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "unauthorized_client");

        // Trusted redirect URI: an OIDC error posted back with the state.
        let mut p = auth_request(&login, &launch_php, "n1");
        set(&mut p, "login_hint", "grace");
        let (s, _, html) = authorize(&app, &p).await;
        assert_eq!(s, 400);
        assert_eq!(form_action(&html).as_deref(), Some(launch_php.as_str()));
        assert_eq!(form_field(&html, "error").as_deref(), Some("login_required"));
        assert_eq!(form_field(&html, "state").as_deref(), Some("state-123"));
        assert!(form_field(&html, "id_token").is_none());
        for (k, v, code) in [
            ("response_type", "code", "unsupported_response_type"),
            ("scope", "profile", "invalid_scope"),
            ("response_mode", "query", "invalid_request"),
            ("nonce", "", "invalid_request"),
            ("lti_message_hint", "0000", "invalid_request"),
        ] {
            let mut p = auth_request(&login, &launch_php, "n1");
            set(&mut p, k, v);
            let (s, _, html) = authorize(&app, &p).await;
            assert_eq!((s, form_field(&html, "error").as_deref()), (400, Some(code)), "{k}={v}: {html}");
            assert!(form_field(&html, "error_description").is_some_and(|d| !d.is_empty()));
        }
        assert!(app.engine().enrollment(&CourseId::parse(COURSE).unwrap(), &UserId::parse("ada").unwrap()).await.unwrap().first_launch.is_none(),
            "no launch was recorded by a refused request");

        // The hint survived the refusals above; it works once, then never again.
        let p = auth_request(&login, &launch_php, "n1");
        let (s, _, html) = authorize(&app, &p).await;
        assert_eq!(s, 200, "{html}");
        assert!(form_field(&html, "id_token").is_some());
        let (s, _, html) = authorize(&app, &p).await;
        assert_eq!((s, form_field(&html, "error").as_deref()), (400, Some("invalid_request")), "{html}");

        // An expired hint is refused even though it was never used.
        let login = initiate(&app, &t.tool_id, "ada", "resource_link", Some("quiz-1")).await;
        let hint = login["lti_message_hint"].clone();
        gradebook::projections::with_db!(&app.db, pool => {
            sqlx::query("UPDATE lti_launch_hints SET expires_at = $1 WHERE hint = $2")
                .bind("2020-01-01T00:00:00.000000Z")
                .bind(&hint)
                .execute(pool)
                .await
                .unwrap();
        });
        let (s, _, html) = authorize(&app, &auth_request(&login, &launch_php, "n3")).await;
        assert_eq!((s, form_field(&html, "error").as_deref()), (400, Some("invalid_request")), "{html}");

        // POST works like GET.
        let login = initiate(&app, &t.tool_id, "ada", "resource_link", Some("quiz-1")).await;
        let res = app.client.post(app.url("/lti/authorize")).form(&auth_request(&login, &launch_php, "n2")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert!(form_field(&res.text().await.unwrap(), "id_token").is_some());
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_completed_launch_is_recorded_on_the_enrollment(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        sis_link(&app, &t.tool_id, "quiz-1", None).await;
        let (c, u) = (CourseId::parse(COURSE).unwrap(), UserId::parse("ada").unwrap());

        // Asking for a launch is not a launch.
        initiate(&app, &t.tool_id, "ada", "resource_link", Some("quiz-1")).await;
        assert_eq!(app.engine().enrollment(&c, &u).await.unwrap().first_launch, None);

        launch(&app, &t, "ada", "resource_link", Some("quiz-1")).await;
        let e = app.engine().enrollment(&c, &u).await.unwrap();
        let first = e.first_launch.expect("first launch recorded");
        assert_eq!(e.latest_launch, Some(first));

        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        launch(&app, &t, "ada", "resource_link", Some("quiz-1")).await;
        let e = app.engine().enrollment(&c, &u).await.unwrap();
        assert_eq!(e.first_launch, Some(first));
        assert!(e.latest_launch.unwrap() > first);
        app.stop().await;
    }
}

/// Grace's deep-linking launch; returns the `data` our request carried.
async fn deep_linking_data(app: &common::TestApp, t: &FakeTool) -> Value {
    launch(app, t, "grace", "deep_linking", None).await[DL]["data"].clone()
}

fn moodle_items() -> Value {
    json!([
        {"type": "ltiResourceLink", "title": "Week 1 quiz", "url": format!("{TOOL_BASE}/enrol/lti/launch.php"),
         "custom": {"id": "9a3e1c52-6f1d-4f0e-8c55-0b4f1f3d2a10"}, "icon": null, "iframe": null, "window": null,
         "available": null, "submission": null, "text": null,
         "lineItem": {"label": null, "scoreMaximum": 10, "resourceId": 37, "tag": "grade"}},
        {"type": "ltiResourceLink", "title": "Reading", "url": null, "custom": null, "lineItem": null},
        {"type": "ltiResourceLink", "title": "Lab report", "lineItem": {"label": "Lab report (graded)", "scoreMaximum": "50.5"}},
    ])
}

on_both_stores! {
    async fn deep_linking_items_become_links_and_line_items(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        let data = deep_linking_data(&app, &t).await;
        let jwt = deep_linking_response(&t, json!([app.base.as_str()]), &data, moodle_items());
        let (s, page) = post_deep_linking(&app, &jwt).await;
        assert_eq!(s, 200, "{page}");
        for text in ["Week 1 quiz", "Reading", "Lab report (graded)", "out of 10", "out of 50.5", "Added 3 items"] {
            assert!(page.contains(text), "{text} missing from {page}");
        }

        let course = app.engine().course(&CourseId::parse(COURSE).unwrap()).await.unwrap().unwrap();
        let links: Vec<_> = course.resource_links.values().collect();
        assert_eq!(links.len(), 3);
        let quiz = links.iter().find(|l| l.title == "Week 1 quiz").unwrap();
        assert_eq!(quiz.custom["id"], "9a3e1c52-6f1d-4f0e-8c55-0b4f1f3d2a10");
        assert_eq!(quiz.url.as_deref(), Some(format!("{TOOL_BASE}/enrol/lti/launch.php").as_str()));
        assert_eq!(quiz.tool_id.as_str(), t.tool_id);
        let li = app.engine().line_item(&CourseId::parse(COURSE).unwrap(), quiz.line_item_id.as_ref().unwrap()).await.unwrap();
        let spec = li.spec.unwrap();
        assert_eq!(spec.label, "Week 1 quiz", "a null label defaults to the title");
        assert_eq!(spec.score_maximum.to_string(), "10");
        assert_eq!(spec.resource_id, Some(json!(37)), "resourceId kept as sent");
        assert_eq!(spec.tag.as_deref(), Some("grade"));
        assert_eq!(spec.resource_link_id.as_deref(), Some(quiz.resource_link_id.as_str()));
        assert_eq!(spec.tool_id.as_ref().map(|t| t.as_str()), Some(t.tool_id.as_str()));
        let reading = links.iter().find(|l| l.title == "Reading").unwrap();
        assert!(reading.line_item_id.is_none() && reading.custom.is_empty() && reading.url.is_none());
        let lab = links.iter().find(|l| l.title == "Lab report").unwrap();
        let lab_item = app.engine().line_item(&CourseId::parse(COURSE).unwrap(), lab.line_item_id.as_ref().unwrap()).await.unwrap().spec.unwrap();
        assert_eq!((lab_item.label.as_str(), lab_item.score_maximum.to_string().as_str()), ("Lab report (graded)", "50.5"));

        // A later launch of the deep-linked link carries its custom object
        // and the singular lineitem URL.
        let link_id = quiz.resource_link_id.as_str().to_string();
        let item_id: LineItemId = quiz.line_item_id.clone().unwrap();
        let c = launch(&app, &t, "ada", "resource_link", Some(&link_id)).await;
        assert_eq!(claim(&c, "custom"), &json!({"id": "9a3e1c52-6f1d-4f0e-8c55-0b4f1f3d2a10"}));
        assert_eq!(c[AGS]["lineitem"], format!("{}/lti/courses/{COURSE}/lineitems/{}", app.base, item_id.as_str()));
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_bad_or_replayed_deep_linking_response_creates_nothing(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        let stranger = register(&app, Grading::Full, roster(true, false, false)).await;
        let data = deep_linking_data(&app, &t).await;
        let aud = json!(app.base.as_str());
        let before = app.event_count().await;
        let tables = app.tables().await;

        let mut wrong_deployment = t.clone();
        wrong_deployment.deployment_id = "someone-else".into();
        // Signed with another tool's key, claiming to be this tool.
        let forged = FakeTool { key: stranger.key.clone(), ..t.clone() };
        let bad_item = json!([
            {"type": "ltiResourceLink", "title": "fine", "lineItem": {"scoreMaximum": 5}},
            {"type": "ltiResourceLink", "title": "broken", "lineItem": {"label": null, "scoreMaximum": -1}},
        ]);
        for (why, jwt, code) in [
            ("wrong data", deep_linking_response(&t, aud.clone(), &json!("not-ours"), moodle_items()), "unknown_request"),
            ("no data", deep_linking_response(&t, aud.clone(), &Value::Null, moodle_items()), "invalid_jwt"),
            ("wrong deployment", deep_linking_response(&wrong_deployment, aud.clone(), &data, moodle_items()), "invalid_jwt"),
            ("wrong audience", deep_linking_response(&t, json!("https://other.example"), &data, moodle_items()), "invalid_jwt"),
            ("bad signature", deep_linking_response(&forged, aud.clone(), &data, moodle_items()), "invalid_jwt"),
            ("one bad item", deep_linking_response(&t, aud.clone(), &data, bad_item), "invalid_content_item"),
            ("unsupported type", deep_linking_response(&t, aud.clone(), &data, json!([{"type": "html", "html": "<p>"}])), "unsupported_content_type"),
            ("not a JWT", "abc".to_string(), "invalid_jwt"),
        ] {
            let (s, body) = post_deep_linking(&app, &jwt).await;
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            assert_eq!((s, body["error"].as_str()), (400, Some(code)), "{why}: {body}");
        }
        assert_eq!(app.event_count().await, before, "nothing was recorded");
        assert_eq!(app.tables().await, tables, "nothing was created");

        // The request is still open after the bad answers: a good one lands once.
        let good = deep_linking_response(&t, aud.clone(), &data, moodle_items());
        assert_eq!(post_deep_linking(&app, &good).await.0, 200);
        let after = app.event_count().await;
        let (s, body) = post_deep_linking(&app, &good).await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "replayed");
        // A fresh response to the same, answered request is refused as well.
        let again = deep_linking_response(&t, aud, &data, moodle_items());
        let (s, body) = post_deep_linking(&app, &again).await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "replayed");
        assert_eq!(app.event_count().await, after);
        app.stop().await;
    }
}

on_both_stores! {
    async fn the_sis_makes_a_resource_link_with_its_line_item(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        let body = sis_link(&app, &t.tool_id, "essay-1", Some("40.5")).await;
        assert_eq!(body["resource_link_id"], "essay-1");
        assert_eq!(body["tool_id"], t.tool_id.as_str());
        assert_eq!(body["custom"], json!({"id": "custom-essay-1"}));
        let item_id = LineItemId::parse(body["line_item_id"].as_str().unwrap()).unwrap();
        let spec = app.engine().line_item(&CourseId::parse(COURSE).unwrap(), &item_id).await.unwrap().spec.unwrap();
        assert_eq!(spec.label, "essay-1 column");
        assert_eq!(spec.score_maximum.to_string(), "40.5");
        assert_eq!(spec.resource_link_id.as_deref(), Some("essay-1"));
        assert_eq!(spec.tool_id.map(|t| t.as_str().to_string()), Some(t.tool_id.clone()));
        let plain = sis_link(&app, &t.tool_id, "page-1", None).await;
        assert_eq!(plain["line_item_id"], Value::Null);

        let other = register(&app, Grading::Full, roster(true, false, false)).await;
        let before = app.event_count().await;
        let path = format!("/api/courses/{COURSE}/resource-links");
        let link = |id: &str, tool: &str, li: Value| json!({"resource_link_id": id, "tool_id": tool, "title": "T", "custom": {}, "line_item": li});
        for (body, status, code) in [
            (link("essay-1", &t.tool_id, Value::Null), 409, "resource_link_exists"),
            (link("x-1", &t.tool_id, json!({"label": "L", "score_maximum": "0"})), 422, "invalid_score_maximum"),
            (link("x-1", &t.tool_id, json!({"label": "", "score_maximum": 5})), 422, "invalid_line_item"),
            (link("x-1", "no-such-tool", Value::Null), 404, "tool_not_found"),
            (link("x-1", &other.tool_id, Value::Null), 422, "tool_not_deployed"),
            (link("bad id!", &t.tool_id, Value::Null), 400, "invalid_id"),
        ] {
            let (s, b) = post_sis(&app, &path, body.clone()).await;
            assert_eq!((s, b["error"].as_str()), (status, Some(code)), "{body} -> {b}");
        }
        let (s, b) = post_sis(&app, "/api/courses/NOPE-1/resource-links", link("x-1", &t.tool_id, Value::Null)).await;
        assert_eq!((s, b["error"].as_str()), (404, Some("course_not_found")));
        let (s, _) = post_as(&app, &app.auditor.clone(), &path, link("x-2", &t.tool_id, Value::Null)).await;
        assert_eq!(s, 403);
        assert_eq!(app.event_count().await, before);
        app.stop().await;
    }
}

on_both_stores! {
    async fn the_sis_hands_an_existing_column_to_a_tool_through_a_link(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        let course = CourseId::parse(COURSE).unwrap();
        let meta = common::meta(gradebook::domain::Source::Sis);
        let mut spec = gradebook::domain::line_item::LineItemSpec::new("Midterm", "100".parse().unwrap());
        spec.category = Some("Exams".into());
        let midterm = app.engine().create_line_item(&course, Some(LineItemId::parse("midterm").unwrap()), spec, &meta).await.unwrap();

        let path = format!("/api/courses/{COURSE}/resource-links");
        let body = json!({"resource_link_id": "midterm-link", "tool_id": t.tool_id, "title": "Midterm", "line_item_id": "midterm"});
        let (status, link) = post_sis(&app, &path, body).await;
        assert_eq!(status, 201, "{link}");
        assert_eq!(link["line_item_id"], "midterm");
        let spec = app.engine().line_item(&course, &midterm).await.unwrap().spec.unwrap();
        assert_eq!(spec.resource_link_id.as_deref(), Some("midterm-link"));
        assert_eq!(spec.tool_id.map(|t| t.to_string()), Some(t.tool_id.clone()));
        assert_eq!(spec.category.as_deref(), Some("Exams"), "the SIS's own settings stay");

        // The learner's launch of that link names the column, so the tool
        // grades it rather than making a second one.
        let c = launch(&app, &t, "ada", "resource_link", Some("midterm-link")).await;
        assert_eq!(c[AGS]["lineitem"], format!("{}/lti/courses/{COURSE}/lineitems/midterm", app.base));

        // A column already carried by a link, another tool's, or unknown: refused, nothing recorded.
        let other = register(&app, Grading::Full, roster(true, false, false)).await;
        app.engine().allow_tools(&course, vec![gradebook::domain::ToolId::parse(other.tool_id.clone()).unwrap()], &meta).await.unwrap();
        let before = app.event_count().await;
        for (body, status, code) in [
            (json!({"resource_link_id": "again", "tool_id": t.tool_id, "title": "T", "line_item_id": "midterm"}), 409, "line_item_taken"),
            (json!({"resource_link_id": "again", "tool_id": other.tool_id, "title": "T", "line_item_id": "midterm"}), 409, "line_item_taken"),
            (json!({"resource_link_id": "again", "tool_id": t.tool_id, "title": "T", "line_item_id": "nope"}), 404, "line_item_not_found"),
            (json!({"resource_link_id": "again", "tool_id": t.tool_id, "title": "T", "line_item_id": "midterm", "line_item": {"label": "x", "score_maximum": 1}}), 422, "invalid_body"),
        ] {
            let (s, b) = post_sis(&app, &path, body.clone()).await;
            assert_eq!((s, b["error"].as_str()), (status, Some(code)), "{body} -> {b}");
        }
        assert_eq!(app.event_count().await, before);
        app.stop().await;
    }
}

/// A resource-link launch whose tool answers at `redirect` (one of its
/// registered redirect URIs) wherever the target is: the login's
/// `target_link_uri` and the verified id_token's claims.
async fn launch_link(app: &common::TestApp, t: &FakeTool, link: &str) -> (String, Value) {
    let login = initiate(app, &t.tool_id, "ada", "resource_link", Some(link)).await;
    let redirect = format!("{TOOL_BASE}/enrol/lti/launch.php");
    let (status, _, html) = authorize(app, &auth_request(&login, &redirect, "nonce-url")).await;
    assert_eq!(status, 200, "{html}");
    let token = form_field(&html, "id_token").expect("an id_token field");
    let claims = verify_id_token(app, &token, &t.client_id).await.0;
    (login["target_link_uri"].clone(), claims)
}

on_both_stores! {
    async fn a_deep_linked_link_launches_at_its_own_url(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        let data = deep_linking_data(&app, &t).await;
        // As LTI-PHP's tools send it: the activity's own URL on the tool's host.
        let quiz_url = format!("{TOOL_BASE}/mod/quiz/view.php?id=7");
        let items = json!([
            {"type": "ltiResourceLink", "title": "Quiz 7", "url": quiz_url},
            {"type": "ltiResourceLink", "title": "Reading"},
        ]);
        let jwt = deep_linking_response(&t, json!(app.base.as_str()), &data, items);
        let (s, page) = post_deep_linking(&app, &jwt).await;
        assert_eq!(s, 200, "{page}");
        let course = app.engine().course(&CourseId::parse(COURSE).unwrap()).await.unwrap().unwrap();
        let id_of = |title: &str| course.resource_links.values().find(|l| l.title == title).unwrap().resource_link_id.as_str().to_string();

        let (target, claims) = launch_link(&app, &t, &id_of("Quiz 7")).await;
        assert_eq!(target, quiz_url, "the login carries the link's url");
        assert_eq!(claim(&claims, "target_link_uri"), quiz_url.as_str(), "and so does the id_token");
        // A link without a url of its own launches at the registration's.
        let (target, claims) = launch_link(&app, &t, &id_of("Reading")).await;
        let launch_php = launch_url();
        assert_eq!((target.as_str(), claim(&claims, "target_link_uri")), (launch_php.as_str(), &json!(launch_php)));
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_deep_linking_response_with_a_url_off_the_tools_hosts_creates_nothing(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        let data = deep_linking_data(&app, &t).await;
        let aud = json!(app.base.as_str());
        let before = app.event_count().await;
        let tables = app.tables().await;
        for url in ["https://elsewhere.example/mod/quiz/view.php?id=7", "https://tool.example.edu.elsewhere.example/x", "ftp://tool.example.edu/x"] {
            let items = json!([
                {"type": "ltiResourceLink", "title": "Fine", "url": format!("{TOOL_BASE}/ok"), "lineItem": {"scoreMaximum": 5}},
                {"type": "ltiResourceLink", "title": "Elsewhere", "url": url},
            ]);
            let (s, body) = post_deep_linking(&app, &deep_linking_response(&t, aud.clone(), &data, items)).await;
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            assert_eq!((s, body["error"].as_str()), (400, Some("invalid_content_item")), "{url}: {body}");
            assert!(body["message"].as_str().unwrap().starts_with("content item 2: url"), "{body}");
        }
        assert_eq!(app.event_count().await, before, "nothing was recorded");
        assert_eq!(app.tables().await, tables, "nothing was created");
        // The request is still open: a response on the tool's host lands.
        let items = json!([{"type": "ltiResourceLink", "title": "Fine", "url": format!("{TOOL_BASE}/ok")}]);
        assert_eq!(post_deep_linking(&app, &deep_linking_response(&t, aud, &data, items)).await.0, 200);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_deep_linking_response_for_a_course_the_tool_left_creates_nothing(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        let data = deep_linking_data(&app, &t).await;
        // Narrowed to no course while the instructor was picking content.
        let res = app.client.patch(app.url(&format!("/api/tools/{}", t.tool_id))).bearer_auth(&app.registrar)
            .json(&json!({"courses": []})).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let before = app.event_count().await;
        let tables = app.tables().await;
        let (s, body) = post_deep_linking(&app, &deep_linking_response(&t, json!(app.base.as_str()), &data, moodle_items())).await;
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!((s, body["error"].as_str()), (404, Some("course_not_found")), "{body}");
        assert_eq!(app.event_count().await, before);
        assert_eq!(app.tables().await, tables);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_link_the_sis_makes_launches_at_the_tools_url_unless_given_its_own(app: TestApp) {
        let t = setup(&app, Grading::Full, roster(true, false, false)).await;
        let path = format!("/api/courses/{COURSE}/resource-links");
        let (s, plain) = post_sis(&app, &path, json!({"resource_link_id": "plain", "tool_id": t.tool_id, "title": "Plain"})).await;
        assert_eq!((s, &plain["url"]), (201, &Value::Null), "{plain}");
        let own = format!("{TOOL_BASE}/mod/assign/view.php?id=3");
        let (s, body) = post_sis(&app, &path, json!({"resource_link_id": "own", "tool_id": t.tool_id, "title": "Own", "url": own})).await;
        assert_eq!((s, body["url"].as_str()), (201, Some(own.as_str())), "{body}");

        let (target, claims) = launch_link(&app, &t, "plain").await;
        assert_eq!(target, launch_url());
        assert_eq!(claim(&claims, "target_link_uri"), &json!(target));
        let (target, claims) = launch_link(&app, &t, "own").await;
        assert_eq!((target.as_str(), claim(&claims, "target_link_uri")), (own.as_str(), &json!(own)));

        let before = app.event_count().await;
        for url in ["https://elsewhere.example/x", "not a url", ""] {
            let (s, b) = post_sis(&app, &path, json!({"resource_link_id": "bad", "tool_id": t.tool_id, "title": "Bad", "url": url, "line_item": {"label": "Bad", "score_maximum": 5}})).await;
            assert_eq!((s, b["error"].as_str()), (422, Some("invalid_body")), "{url}: {b}");
            assert!(b["message"].as_str().unwrap().starts_with("url"), "{b}");
        }
        assert_eq!(app.event_count().await, before, "no link and no column");
        app.stop().await;
    }
}
