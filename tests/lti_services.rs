//! The LTI services as a tool uses them, end to end over HTTP on both
//! stores: platform keys and configuration, registration, the token
//! endpoint, AGS (line items, scores, results) and NRPS.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::fixtures::{d, enroll, learner, user};
use common::{meta, Body, TestApp};
use gradebook::domain::course::ResourceLink;
use gradebook::domain::enrollment::{EnrollmentStatus, Person, Role};
use gradebook::domain::ids::ResourceLinkId;
use gradebook::domain::line_item::LineItemSpec;
use gradebook::domain::{CourseId, Source, ToolId};
use gradebook::services::crypto::PlatformKey;
use gradebook::services::scope;
use serde_json::{json, Value};

use common::tool::{full_roster, moodle, now};
use common::{FakeTool, ALL_SCOPES};

/// A token request with this assertion and scope.
async fn request(app: &TestApp, assertion: &str, scope: &str) -> (u16, Value) {
    let a =
        common::tool::token_request(&app.client, &app.url("/lti/token"), assertion, scope).await;
    (a.status, a.json())
}

/// Registers a Moodle tool with the given settings through the registrar API.
async fn register(app: &TestApp, grading: &str, roster: Value) -> FakeTool {
    FakeTool::register(app, moodle(grading, roster)).await
}

async fn token_form(app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let a = common::tool::token_form(&app.client, &app.url("/lti/token"), form).await;
    (a.status, a.json())
}

async fn post_json(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    send(app, reqwest::Method::POST, token, path, Some(body)).await
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let (status, _, body) = send_full(app, method, token, path, body).await;
    (status, body)
}

/// Sends a request and returns status, headers and the JSON body.
async fn send_full(
    app: &TestApp,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let a = app
        .send(
            method.as_str(),
            path,
            Some(token),
            Body::json(body.cloned()),
        )
        .await;
    let json = a.json();
    (a.status, a.headers, json)
}

/// Opens a course with these tools deployed in it.
async fn open_course(app: &TestApp, course: &str, tools: &[&FakeTool]) -> CourseId {
    let c = CourseId::parse(course).unwrap();
    let ids: Vec<&str> = tools.iter().map(|t| t.tool_id.as_str()).collect();
    common::fixtures::open_course(app, &c, "World History", &ids).await;
    c
}

fn person(role: Role, name: &str, email: &str) -> Person {
    Person {
        role,
        status: EnrollmentStatus::Active,
        name: Some(name.into()),
        email: Some(email.into()),
    }
}

fn score_body(user: &str, given: Value, ts: &str) -> Value {
    json!({
        "userId": user, "scoreGiven": given, "scoreMaximum": 100,
        "activityProgress": "Completed", "gradingProgress": "FullyGraded",
        "timestamp": ts,
    })
}

/// The tool's own view of one line item, created over AGS.
async fn create_item(app: &TestApp, token: &str, course: &str, body: Value) -> Value {
    let (status, item) = post_json(
        app,
        token,
        &format!("/lti/courses/{course}/lineitems"),
        &body,
    )
    .await;
    assert_eq!(status, 201, "{item}");
    item
}

/// A resource link of the tool in the course, added by the SIS.
async fn add_link(app: &TestApp, c: &CourseId, tool: &FakeTool, link: &str) {
    common::fixtures::resource_link(app, c, &tool.tool_id, link, link).await;
}

fn path_of(app: &TestApp, url: &Value) -> String {
    url.as_str()
        .unwrap()
        .strip_prefix(&app.base)
        .unwrap_or_else(|| panic!("{url} is not under {}", app.base))
        .to_string()
}

// ---- platform ----

on_both_stores! {
    async fn the_platform_publishes_its_keys_and_configuration(app: TestApp) {
        let (status, jwks) = app.get_json("/.well-known/jwks.json").await;
        assert_eq!(status, 200);
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "the first request makes the key: {jwks}");
        assert_eq!(keys[0]["alg"], "RS256");
        assert_eq!(keys[0]["kty"], "RSA");
        assert!(keys[0]["kid"].as_str().is_some_and(|k| !k.is_empty()));
        assert!(keys[0].get("d").is_none(), "never the private half");
        let first_kid = keys[0]["kid"].clone();

        let (status, conf) = app.get_json("/.well-known/openid-configuration").await;
        assert_eq!(status, 200);
        assert_eq!(conf["issuer"], app.base.as_str(), "byte-identical issuer, no trailing slash");
        assert_eq!(conf["authorization_endpoint"], app.url("/lti/authorize"));
        assert_eq!(conf["token_endpoint"], app.url("/lti/token"));
        assert_eq!(conf["jwks_uri"], app.url("/.well-known/jwks.json"));
        assert_eq!(conf["registration_endpoint"], app.url("/lti/register"));
        assert_eq!(conf["token_endpoint_auth_methods_supported"], json!(["private_key_jwt"]));
        assert_eq!(conf["id_token_signing_alg_values_supported"], json!(["RS256"]));
        assert!(conf["scopes_supported"].as_array().unwrap().contains(&json!(scope::SCORE)));
        let platform = &conf["https://purl.imsglobal.org/spec/lti-platform-configuration"];
        assert_eq!(platform["product_family_code"], "gradebook");
        let types: Vec<&str> = platform["messages_supported"].as_array().unwrap().iter().map(|m| m["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["LtiResourceLinkRequest", "LtiDeepLinkingRequest"]);

        // After a rotation the old key is still published beside the new one.
        let new = gradebook::services::platform_keys::rotate(&app.db).await.unwrap();
        let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
        let kids: Vec<&Value> = jwks["keys"].as_array().unwrap().iter().map(|k| &k["kid"]).collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0], &json!(new.kid));
        assert!(kids.contains(&&first_kid));
        app.stop().await;
    }
}

// ---- registration ----

on_both_stores! {
    async fn a_registrar_registers_a_tool_by_hand_and_gets_the_platform_details(app: TestApp) {
        let key = PlatformKey::generate().unwrap();
        let body = json!({
            "name": "Moodle", "issuer": "https://moodle.example.edu",
            "launch_url": "https://moodle.example.edu/enrol/lti/launch.php",
            "login_url": "https://moodle.example.edu/enrol/lti/login.php",
            "redirect_uris": ["https://moodle.example.edu/enrol/lti/launch.php"],
            "jwks_url": null, "public_jwk": key.public_jwk,
            "grading": "full", "roster": {"access": true, "hide_names": false, "hide_emails": true},
        });
        // Only a registrar registers tools.
        let (status, err) = post_json(&app, &app.sis, "/api/tools", &body).await;
        assert_eq!(status, 403, "{err}");
        let (status, reg) = post_json(&app, &app.registrar, "/api/tools", &body).await;
        assert_eq!(status, 201, "{reg}");
        let p = &reg["platform"];
        assert_eq!(p["issuer"], app.base.as_str());
        assert_eq!(p["authorization_url"], app.url("/lti/authorize"));
        assert_eq!(p["jwks_url"], app.url("/.well-known/jwks.json"));
        assert_eq!(p["token_url"], app.url("/lti/token"));
        assert_eq!(p["client_id"], reg["client_id"]);
        assert_eq!(p["deployment_id"], reg["deployment_id"]);
        let tool_id = reg["tool_id"].as_str().unwrap();

        // Any role reads; the listing shows the settings.
        let (status, one) = app.get_json(&format!("/api/tools/{tool_id}")).await;
        assert_eq!(status, 200, "{one}");
        assert_eq!(one["grading"], "full");
        assert_eq!(one["roster"]["hide_emails"], true);
        let (_, all) = app.get_json("/api/tools").await;
        assert_eq!(all["tools"].as_array().unwrap().len(), 1);

        // Without redirect_uris, the tool's launch and deep-linking URLs are
        // where it may be answered (Moodle's launch.php and launch_deeplink.php).
        let mut bare = body.clone();
        bare["name"] = json!("Moodle without redirect URIs");
        bare.as_object_mut().unwrap().remove("redirect_uris");
        bare["deep_linking_url"] = json!("https://moodle.example.edu/enrol/lti/launch_deeplink.php");
        let (status, reg2) = post_json(&app, &app.registrar, "/api/tools", &bare).await;
        assert_eq!(status, 201, "{reg2}");
        let (_, two) = app.get_json(&format!("/api/tools/{}", reg2["tool_id"].as_str().unwrap())).await;
        assert_eq!(
            two["redirect_uris"],
            json!(["https://moodle.example.edu/enrol/lti/launch.php", "https://moodle.example.edu/enrol/lti/launch_deeplink.php"]),
            "{two}"
        );

        // Bad registrations are refused and change nothing.
        for bad in [
            json!({"name": "Both", "jwks_url": "https://t.example/jwks", "public_jwk": key.public_jwk}),
            json!({"name": "Neither"}),
            json!({"name": "Relative", "jwks_url": "/jwks"}),
            json!({"name": "Ftp", "jwks_url": "ftp://t.example/jwks"}),
            json!({"name": "Not RSA", "public_jwk": {"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}}),
            json!({"name": "Bad launch", "jwks_url": "https://t.example/jwks", "launch_url": "launch.php"}),
        ] {
            let (status, err) = post_json(&app, &app.registrar, "/api/tools", &bad).await;
            assert_eq!(status, 422, "{bad} -> {err}");
            assert!(err["error"].is_string() && err["message"].is_string(), "{err}");
        }
        let (_, all) = app.get_json("/api/tools").await;
        assert_eq!(all["tools"].as_array().unwrap().len(), 2, "the two good registrations only");

        // Settings change; an auditor may not.
        let path = format!("/api/tools/{tool_id}");
        let (status, _) = send(&app, reqwest::Method::PATCH, &app.auditor, &path, Some(&json!({"grading": "off"}))).await;
        assert_eq!(status, 403);
        let (status, patched) = send(&app, reqwest::Method::PATCH, &app.registrar, &path, Some(&json!({"grading": "sync_only", "roster": {"hide_names": true}}))).await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["grading"], "sync_only");
        assert_eq!(patched["roster"], json!({"access": true, "hide_names": true, "hide_emails": true}));

        let (status, _) = send(&app, reqwest::Method::DELETE, &app.registrar, &path, None).await;
        assert_eq!(status, 204);
        let (_, one) = app.get_json(&path).await;
        assert!(one["revoked_at"].is_string(), "{one}");
        let (status, _) = send(&app, reqwest::Method::DELETE, &app.registrar, "/api/tools/nosuchtool", None).await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}

/// A registration body as Moodle sends it.
fn moodle_registration() -> Value {
    json!({
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": "https://moodle.example.edu/enrol/lti/login.php?id=abc",
        "redirect_uris": ["https://moodle.example.edu/enrol/lti/launch.php", "https://moodle.example.edu/enrol/lti/launch_deeplink.php"],
        "client_name": "Moodle site",
        "jwks_uri": "https://moodle.example.edu/enrol/lti/jwks.php",
        "logo_uri": "https://moodle.example.edu/theme/image.php/boost/core/1/moodlelogo",
        "token_endpoint_auth_method": "private_key_jwt",
        "https://purl.imsglobal.org/spec/lti-tool-configuration": {
            "domain": "moodle.example.edu",
            "target_link_uri": "https://moodle.example.edu/enrol/lti/launch.php",
            "claims": ["iss", "sub", "name", "given_name", "family_name", "email"],
            "custom_parameters": [],
            "messages": [
                {"type": "LtiResourceLinkRequest", "allowLearner": true, "target_link_uri": "https://moodle.example.edu/enrol/lti/launch.php", "placements": ["ContentArea"]},
                {"type": "LtiDeepLinkingRequest", "allowLearner": false, "target_link_uri": "https://moodle.example.edu/enrol/lti/launch_deeplink.php", "placements": ["ContentArea"]}
            ],
            "scopes": [scope::SCORE, scope::LINEITEM, scope::NRPS]
        }
    })
}

async fn register_raw(app: &TestApp, token: &str, body: &str) -> (u16, Value) {
    // No Content-Type at all, as Moodle sends it.
    let body = Body::Untyped(body.as_bytes().to_vec());
    let a = app.send("POST", "/lti/register", Some(token), body).await;
    (a.status, a.json())
}

on_both_stores! {
    async fn a_tool_registers_itself_once_per_registration_link(app: TestApp) {
        let (status, link) = post_json(&app, &app.registrar, "/api/tools/dynamic-registration",
            &json!({"registration_url": "https://moodle.example.edu/enrol/lti/register.php?token=m00dle"})).await;
        assert_eq!(status, 200, "{link}");
        let url = reqwest::Url::parse(link["url"].as_str().unwrap()).unwrap();
        assert_eq!(url.path(), "/enrol/lti/register.php");
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["token"], "m00dle", "the tool's own query stays");
        assert_eq!(q["openid_configuration"], app.url("/.well-known/openid-configuration"));
        let token = q["registration_token"].clone();
        assert!(token.len() >= 32 && token.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)), "{token}");

        // An auditor cannot hand out registration links.
        let (status, _) = post_json(&app, &app.auditor, "/api/tools/dynamic-registration", &json!({"registration_url": "https://x.example/r"})).await;
        assert_eq!(status, 403);

        // Missing required metadata: refused in the registration error shape, the token still works.
        let mut broken = moodle_registration();
        broken.as_object_mut().unwrap().remove("jwks_uri");
        let (status, err) = register_raw(&app, &token, &broken.to_string()).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"], "invalid_client_metadata");
        assert!(err["error_description"].as_str().unwrap().contains("jwks_uri"));
        let (status, err) = register_raw(&app, &token, "{not json").await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"], "invalid_client_metadata");

        let (status, reg) = register_raw(&app, &token, &moodle_registration().to_string()).await;
        assert_eq!(status, 200, "{reg}");
        let client_id = reg["client_id"].as_str().unwrap();
        let deployment_id = reg["https://purl.imsglobal.org/spec/lti-tool-configuration"]["deployment_id"].as_str().unwrap();
        assert_eq!(reg["client_name"], "Moodle site", "the registration is echoed");

        let (_, all) = app.get_json("/api/tools").await;
        let tools = all["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 1);
        let t = &tools[0];
        assert_eq!(t["client_id"], client_id);
        assert_eq!(t["deployment_id"], deployment_id);
        assert_eq!(t["grading"], "off", "a registrar turns grading on");
        assert_eq!(t["roster"]["access"], false);
        assert_eq!(t["jwks_url"], "https://moodle.example.edu/enrol/lti/jwks.php");
        assert_eq!(t["launch_url"], "https://moodle.example.edu/enrol/lti/launch.php");
        assert_eq!(t["deep_linking_url"], "https://moodle.example.edu/enrol/lti/launch_deeplink.php");
        assert_eq!(t["login_url"], "https://moodle.example.edu/enrol/lti/login.php?id=abc");
        assert_eq!(t["registered_via"], "dynamic");

        // The token is single use; an unknown one never worked.
        let (status, err) = register_raw(&app, &token, &moodle_registration().to_string()).await;
        assert_eq!(status, 401, "{err}");
        assert_eq!(err["error"], "invalid_token");
        let (status, _) = register_raw(&app, "made-up", &moodle_registration().to_string()).await;
        assert_eq!(status, 401);
        let (_, all) = app.get_json("/api/tools").await;
        assert_eq!(all["tools"].as_array().unwrap().len(), 1);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_deep_linking_message_without_its_own_url_goes_to_the_tools_target_link_uri(app: TestApp) {
        // ltijs lists its messages without a target_link_uri each: the
        // tool's own target_link_uri is then the one to use.
        let register = |body: Value| {
            let app = &app;
            async move {
                let (_, link) = post_json(app, &app.registrar, "/api/tools/dynamic-registration",
                    &json!({"registration_url": "https://tool.example.edu/register"})).await;
                let url = reqwest::Url::parse(link["url"].as_str().unwrap()).unwrap();
                let token = url.query_pairs().find(|(k, _)| k == "registration_token").unwrap().1.into_owned();
                let (status, reg) = register_raw(app, &token, &body.to_string()).await;
                assert_eq!(status, 200, "{reg}");
                let (_, all) = app.get_json("/api/tools").await;
                let listed = all["tools"].as_array().unwrap().iter().find(|t| t["client_id"] == reg["client_id"]).cloned().unwrap();
                let (status, tool) = app.get_json(&format!("/api/tools/{}", listed["tool_id"].as_str().unwrap())).await;
                assert_eq!(status, 200, "{tool}");
                tool
            }
        };
        let config = "https://purl.imsglobal.org/spec/lti-tool-configuration";
        let mut ltijs = moodle_registration();
        ltijs["client_name"] = json!("ltijs tool");
        ltijs[config]["target_link_uri"] = json!("https://tool.example.edu/");
        ltijs[config]["messages"] = json!([{"type": "LtiResourceLinkRequest"}, {"type": "LtiDeepLinkingRequest"}]);
        let tool = register(ltijs.clone()).await;
        assert_eq!(tool["launch_url"], "https://tool.example.edu/", "{tool}");
        assert_eq!(tool["deep_linking_url"], "https://tool.example.edu/", "{tool}");

        // No deep-linking message: no deep linking.
        ltijs[config]["messages"] = json!([{"type": "LtiResourceLinkRequest"}]);
        let tool = register(ltijs).await;
        assert!(tool["deep_linking_url"].is_null(), "{tool}");
        app.stop().await;
    }
}

#[test]
fn registration_scopes_are_read_from_the_spec_string_and_the_moodle_array() {
    let mut reg = moodle_registration();
    reg["scope"] = json!(format!("{} {}", scope::RESULT_READONLY, scope::SCORE));
    let got = gradebook::lti::services::registration::requested_scopes(&reg);
    assert_eq!(
        got,
        [
            scope::RESULT_READONLY,
            scope::SCORE,
            scope::LINEITEM,
            scope::NRPS
        ]
    );
}

// ---- token endpoint ----

on_both_stores! {
    async fn the_token_endpoint_grants_the_allowed_part_of_the_requested_scopes(app: TestApp) {
        let tool = register(&app, "sync_only", json!({"access": false})).await;
        let (status, t) = request(&app, &tool.assertion(&app), ALL_SCOPES).await;
        assert_eq!(status, 200, "{t}");
        assert_eq!(t["token_type"], "Bearer");
        assert_eq!(t["expires_in"], 3600);
        assert!(t["access_token"].as_str().unwrap().len() >= 32);
        let granted: Vec<&str> = t["scope"].as_str().unwrap().split(' ').collect();
        assert_eq!(granted, [scope::LINEITEM_READONLY, scope::RESULT_READONLY, scope::SCORE]);

        // aud as an array (newer libraries) and the issuer as aud are accepted.
        let mut claims = tool.claims(&app);
        claims["aud"] = json!([app.url("/lti/token"), "something-else"]);
        let (status, t) = request(&app, &tool.key.sign(&claims).unwrap(), scope::SCORE).await;
        assert_eq!(status, 200, "{t}");
        assert_eq!(t["scope"], scope::SCORE);
        let mut claims = tool.claims(&app);
        claims["aud"] = json!(app.base);
        let (status, t) = request(&app, &tool.key.sign(&claims).unwrap(), scope::SCORE).await;
        assert_eq!(status, 200, "{t}");

        // Only scopes the registration does not allow: invalid_scope.
        let (status, err) = request(&app, &tool.assertion(&app), &format!("{} {}", scope::LINEITEM, scope::NRPS)).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"], "invalid_scope");
        app.stop().await;
    }
}

fn jwt_with_header(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

on_both_stores! {
    async fn the_token_endpoint_refuses_every_bad_assertion(app: TestApp) {
        let tool = register(&app, "full", full_roster()).await;
        let other_key = PlatformKey::generate().unwrap();
        let token_url = app.url("/lti/token");
        let with = |f: &dyn Fn(&mut Value)| {
            let mut c = tool.claims(&app);
            f(&mut c);
            tool.key.sign(&c).unwrap()
        };
        let alg_none = jwt_with_header(&json!({"alg": "none", "typ": "JWT"}), &tool.claims(&app));
        let hs256 = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &tool.claims(&app),
            &jsonwebtoken::EncodingKey::from_secret(tool.key.public_jwk.to_string().as_bytes()),
        )
        .unwrap();
        let cases: Vec<(&str, String)> = vec![
            ("signed by another key", other_key.sign(&tool.claims(&app)).unwrap()),
            ("alg none", alg_none),
            ("HS256 keyed with the public key", hs256),
            ("expired", with(&|c| { c["iat"] = json!(now() - 600); c["exp"] = json!(now() - 300); })),
            ("issued in the future", with(&|c| { c["iat"] = json!(now() + 600); c["exp"] = json!(now() + 660); })),
            ("lifetime over an hour", with(&|c| { c["exp"] = json!(now() + 7200); })),
            ("wrong audience", with(&|c| c["aud"] = json!("https://elsewhere.example/token"))),
            ("wrong issuer", with(&|c| c["iss"] = json!("someone-else"))),
            ("wrong subject", with(&|c| c["sub"] = json!("someone-else"))),
            ("no jti", with(&|c| { c.as_object_mut().unwrap().remove("jti"); })),
            ("not a JWT", "abc".to_string()),
        ];
        for (what, assertion) in cases {
            let (status, err) = request(&app, &assertion, scope::SCORE).await;
            assert_eq!(status, 401, "{what}: {err}");
            assert_eq!(err["error"], "invalid_client", "{what}: {err}");
            assert!(err["error_description"].is_string(), "{what}");
        }

        // An unknown client.
        let stranger = FakeTool { key: other_key, tool_id: "x".into(), client_id: "nobody".into(), deployment_id: String::new() };
        let (status, err) = request(&app, &stranger.assertion(&app), scope::SCORE).await;
        assert_eq!((status, err["error"].as_str()), (401, Some("invalid_client")), "{err}");

        // The same assertion twice: the replay is refused.
        let once = tool.assertion(&app);
        assert_eq!(request(&app, &once, scope::SCORE).await.0, 200);
        let (status, err) = request(&app, &once, scope::SCORE).await;
        assert_eq!((status, err["error"].as_str()), (401, Some("invalid_client")), "{err}");
        assert!(err["error_description"].as_str().unwrap().contains("jti"));

        // Wrong grant type, wrong assertion type, missing assertion.
        let a = tool.assertion(&app);
        let (status, err) = token_form(&app, &[("grant_type", "password"), ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"), ("client_assertion", &a)]).await;
        assert_eq!((status, err["error"].as_str()), (400, Some("unsupported_grant_type")), "{err}");
        let (status, err) = token_form(&app, &[("grant_type", "client_credentials"), ("client_assertion_type", "basic"), ("client_assertion", &a)]).await;
        assert_eq!((status, err["error"].as_str()), (400, Some("invalid_request")), "{err}");
        let (status, err) = token_form(&app, &[("grant_type", "client_credentials"), ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")]).await;
        assert_eq!((status, err["error"].as_str()), (400, Some("invalid_request")), "{err}");
        let _ = token_url;
        app.stop().await;
    }
}

// ---- AGS ----

on_both_stores! {
    async fn a_tool_creates_reads_updates_and_deletes_its_line_items(app: TestApp) {
        let tool = register(&app, "full", full_roster()).await;
        let c = open_course(&app, "HIST-101", &[&tool]).await;
        add_link(&app, &c, &tool, "rl-1").await;
        let token = tool.token(&app, ALL_SCOPES).await;
        let item = create_item(&app, &token, "HIST-101", json!({
            "label": "Essay", "scoreMaximum": 50, "resourceId": 42, "resourceLinkId": "rl-1",
            "tag": "grade", "startDateTime": "2026-09-01T00:00:00Z", "endDateTime": "2026-12-01T00:00:00Z",
        })).await;
        let id = item["id"].as_str().unwrap();
        assert!(id.starts_with(&app.url("/lti/courses/HIST-101/lineitems/")), "{id}");
        assert_eq!(item["label"], "Essay");
        assert_eq!(item["scoreMaximum"], 50);
        assert_eq!(item["resourceId"], json!(42), "a number stays a number");
        assert_eq!(item["resourceLinkId"], "rl-1");
        assert_eq!(item["tag"], "grade");
        assert_eq!(item["startDateTime"], "2026-09-01T00:00:00Z");

        let path = path_of(&app, &item["id"]);
        let (status, headers, got) = send_full(&app, reqwest::Method::GET, &token, &path, None).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/vnd.ims.lis.v2.lineitem+json");
        assert_eq!(got, item);

        // The column made over AGS belongs to the tool.
        let line_item_id = path.rsplit('/').next().unwrap();
        let li = app.engine().line_item(&CourseId::parse("HIST-101").unwrap(), &gradebook::domain::LineItemId::parse(line_item_id).unwrap()).await.unwrap();
        assert_eq!(li.spec.unwrap().tool_id.unwrap().as_str(), tool.tool_id);

        let (status, updated) = send(&app, reqwest::Method::PUT, &token, &path, Some(&json!({"label": "Long essay", "scoreMaximum": "60", "resourceId": "essay-1"}))).await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["label"], "Long essay");
        assert_eq!(updated["scoreMaximum"], 60);
        assert_eq!(updated["resourceId"], "essay-1");
        assert_eq!(updated["tag"], "grade", "fields not sent are kept");

        // Bad bodies: clear errors, nothing recorded.
        let before = app.event_count().await;
        let (status, err) = post_json(&app, &token, "/lti/courses/HIST-101/lineitems", &json!({"label": "No max"})).await;
        assert_eq!(status, 400, "{err}");
        let (status, err) = post_json(&app, &token, "/lti/courses/HIST-101/lineitems", &json!({"label": "Negative", "scoreMaximum": -1})).await;
        assert_eq!(status, 422, "{err}");
        let (status, _) = send(&app, reqwest::Method::PUT, &token, &path, Some(&json!({"resourceId": {"x": 1}}))).await;
        assert_eq!(status, 400);
        assert_eq!(app.event_count().await, before);

        let (status, _) = send(&app, reqwest::Method::DELETE, &token, &path, None).await;
        assert_eq!(status, 204);
        let (status, _) = send(&app, reqwest::Method::GET, &token, &path, None).await;
        assert_eq!(status, 404);
        let (_, list) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/lineitems", None).await;
        assert_eq!(list, json!([]));
        app.stop().await;
    }
}

on_both_stores! {
    /// A line item's resourceLinkId must name a resource link of the
    /// course, and its start and end must be RFC 3339 date-times the
    /// stores can hold; anything else is a 400 naming the field, and
    /// nothing is recorded.
    async fn line_item_links_and_dates_are_checked(app: TestApp) {
        let tool = register(&app, "full", full_roster()).await;
        let c = open_course(&app, "HIST-101", &[&tool]).await;
        add_link(&app, &c, &tool, "rl-quiz").await;
        let token = tool.token(&app, ALL_SCOPES).await;
        let items = "/lti/courses/HIST-101/lineitems";
        let item = create_item(&app, &token, "HIST-101", json!({"label": "Essay", "scoreMaximum": 10})).await;
        let path = path_of(&app, &item["id"]);

        let before = app.event_count().await;
        let refused = [
            ("resourceLinkId", json!({"resourceLinkId": "rl-nope"})),
            ("resourceLinkId", json!({"resourceLinkId": "RL-QUIZ"})),
            ("startDateTime", json!({"startDateTime": "tomorrow"})),
            ("startDateTime", json!({"startDateTime": "2026-09-01"})),
            ("endDateTime", json!({"endDateTime": "2026-12-01T00:00:00"})),
            ("endDateTime", json!({"endDateTime": "2026-12-01T00:00:00+24:00"})),
            ("endDateTime", json!({"endDateTime": "9999-12-31T23:59:59-10:00"})),
        ];
        for (field, extra) in &refused {
            let mut body = json!({"label": "Quiz", "scoreMaximum": 10});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let (status, err) = post_json(&app, &token, items, &body).await;
            assert_eq!((status, err["error"].as_str()), (400, Some("invalid_body")), "POST {extra}: {err}");
            assert!(err["message"].as_str().unwrap().starts_with(field), "POST {extra}: {err}");
            let (status, err) = send(&app, reqwest::Method::PUT, &token, &path, Some(extra)).await;
            assert_eq!((status, err["error"].as_str()), (400, Some("invalid_body")), "PUT {extra}: {err}");
            assert!(err["message"].as_str().unwrap().starts_with(field), "PUT {extra}: {err}");
        }
        assert_eq!(app.event_count().await, before, "nothing recorded");
        let (_, got) = send(&app, reqwest::Method::GET, &token, &path, None).await;
        assert_eq!(got, item, "the line item is as it was");

        // A known link and valid times are stored as sent.
        let good = json!({
            "label": "Quiz", "scoreMaximum": 10, "resourceLinkId": "rl-quiz",
            "startDateTime": "2026-09-01T08:00:00+02:00", "endDateTime": "2026-12-01T23:59:59.5Z",
        });
        let (status, made) = post_json(&app, &token, items, &good).await;
        assert_eq!(status, 201, "{made}");
        for f in ["resourceLinkId", "startDateTime", "endDateTime"] {
            assert_eq!(made[f], good[f], "{f}: {made}");
        }
        let change = json!({"resourceLinkId": "rl-quiz", "startDateTime": "2026-10-01T00:00:00Z", "endDateTime": null});
        let (status, changed) = send(&app, reqwest::Method::PUT, &token, &path, Some(&change)).await;
        assert_eq!(status, 200, "{changed}");
        assert_eq!((&changed["resourceLinkId"], &changed["startDateTime"]), (&json!("rl-quiz"), &json!("2026-10-01T00:00:00Z")), "{changed}");
        assert!(changed.get("endDateTime").is_none(), "{changed}");
        let (_, got) = send(&app, reqwest::Method::GET, &token, &path, None).await;
        assert_eq!(got, changed);
        app.stop().await;
    }
}

on_both_stores! {
    async fn the_line_item_container_pages_with_one_link_header_that_keeps_the_filters(app: TestApp) {
        let tool = register(&app, "full", full_roster()).await;
        let c = open_course(&app, "HIST-101", &[&tool]).await;
        add_link(&app, &c, &tool, "rl-final").await;
        let token = tool.token(&app, ALL_SCOPES).await;
        for i in 0..5 {
            create_item(&app, &token, "HIST-101", json!({"label": format!("Quiz {i}"), "scoreMaximum": 10, "tag": "quiz", "resourceId": i})).await;
        }
        create_item(&app, &token, "HIST-101", json!({"label": "Final", "scoreMaximum": 100, "tag": "exam", "resourceLinkId": "rl-final"})).await;

        let mut url = app.url("/lti/courses/HIST-101/lineitems?tag=quiz&limit=2");
        let mut labels = Vec::new();
        let mut pages = 0;
        loop {
            let (status, headers, page) = send_full(&app, reqwest::Method::GET, &token, &url, None).await;
            assert_eq!(status, 200, "{page}");
            assert_eq!(headers["content-type"], "application/vnd.ims.lis.v2.lineitemcontainer+json");
            pages += 1;
            labels.extend(page.as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap().to_string()));
            let links: Vec<_> = headers.get_all("link").iter().collect();
            if links.is_empty() {
                break;
            }
            assert_eq!(links.len(), 1, "one Link header line");
            // pylti1p3 lower-cases the whole header before reading the URL.
            let link = links[0].to_str().unwrap().to_lowercase();
            assert!(link.ends_with(">; rel=\"next\""), "{link}");
            url = link.trim_start_matches('<').split('>').next().unwrap().to_string();
            assert!(url.contains("tag=quiz") && url.contains("limit=2"), "filters stay in the next URL: {url}");
        }
        assert_eq!(pages, 3);
        assert_eq!(labels, ["Quiz 0", "Quiz 1", "Quiz 2", "Quiz 3", "Quiz 4"]);

        // The other filters.
        let (_, found) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/lineitems?resource_link_id=rl-final", None).await;
        assert_eq!(found.as_array().unwrap().len(), 1);
        assert_eq!(found[0]["label"], "Final");
        let (_, found) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/lineitems?resource_id=3", None).await;
        assert_eq!(found.as_array().unwrap().len(), 1);
        assert_eq!(found[0]["label"], "Quiz 3");
        let (status, err) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/lineitems?limit=zero", None).await;
        assert_eq!(status, 400, "{err}");

        // On the wire the header name is title-case.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
        let req = format!("GET /lti/courses/HIST-101/lineitems?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        assert!(raw.contains("\r\nLink: <"), "{raw}");
        app.stop().await;
    }
}

on_both_stores! {
    async fn score_posts_answer_200_when_applied_repeated_or_stale_and_say_why_otherwise(app: TestApp) {
        let tool = register(&app, "full", full_roster()).await;
        let c = open_course(&app, "HIST-101", &[&tool]).await;
        enroll(&app, &c, "ada", learner("Ada Lovelace")).await;
        enroll(&app, &c, "grace", person(Role::Instructor, "Grace Hopper", "grace@example.edu")).await;
        let token = tool.token(&app, ALL_SCOPES).await;
        let item = create_item(&app, &token, "HIST-101", json!({"label": "Essay", "scoreMaximum": 100})).await;
        let scores = format!("{}/scores", path_of(&app, &item["id"]));
        let post = |body: Value| { let app = &app; let token = token.clone(); let scores = scores.clone(); async move {
            let res = app.client.post(app.url(&scores)).bearer_auth(&token)
                .header("content-type", "application/vnd.ims.lis.v1.score+json")
                .body(body.to_string()).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }};

        // A numeric string with trailing zeros and PHP's offset without a colon.
        let (status, r) = post(score_body("ada", json!("72.50000"), "2026-10-01T10:00:00+0000")).await;
        assert_eq!((status, r["result"].as_str()), (200, Some("accepted")), "{r}");
        let (_, g) = app.get_json("/api/courses/HIST-101/grades").await;
        assert_eq!(g["students"][0]["items"][0]["score"], "72.50", "{g}");

        // The identical re-send, and an older one: still 200.
        let before = app.event_count().await;
        let (status, r) = post(score_body("ada", json!(72.5), "2026-10-01T18:00:00+0800")).await;
        assert_eq!((status, r["result"].as_str()), (200, Some("unchanged")), "{r}");
        assert_eq!(app.event_count().await, before);
        let (status, r) = post(score_body("ada", json!(10), "2026-09-30T10:00:00.123Z")).await;
        assert_eq!((status, r["result"].as_str()), (200, Some("ignored_stale")), "{r}");
        assert_eq!(app.event_count().await, before + 1, "the stale post is recorded");

        // Zero is a score.
        let (status, r) = post(score_body("ada", json!(0), "2026-10-02T10:00:00Z")).await;
        assert_eq!((status, r["result"].as_str()), (200, Some("accepted")), "{r}");
        let (_, g) = app.get_json("/api/courses/HIST-101/grades").await;
        assert_eq!(g["students"][0]["items"][0]["score"], "0.00", "{g}");
        assert_eq!(g["students"][0]["items"][0]["state"], "counted");

        // No scoreGiven clears it.
        let mut clear = score_body("ada", Value::Null, "2026-10-03T10:00:00Z");
        clear.as_object_mut().unwrap().remove("scoreGiven");
        let (status, r) = post(clear).await;
        assert_eq!((status, r["result"].as_str()), (200, Some("cleared")), "{r}");
        let (_, g) = app.get_json("/api/courses/HIST-101/grades").await;
        assert_eq!(g["students"][0]["items"][0]["state"], "missing", "{g}");

        // Not an active learner: 422, recorded.
        let before = app.event_count().await;
        let (status, r) = post(score_body("grace", json!(90), "2026-10-03T10:00:00Z")).await;
        assert_eq!((status, r["error"].as_str()), (422, Some("user_not_enrolled")), "{r}");
        assert_eq!(app.event_count().await, before + 1);

        // Malformed: 400, nothing recorded.
        let before = app.event_count().await;
        for bad in [
            score_body("ada", json!("lots"), "2026-10-04T10:00:00Z"),
            score_body("ada", json!(5), "yesterday"),
            json!({"userId": "ada", "scoreGiven": 5, "scoreMaximum": 10, "timestamp": "2026-10-04T10:00:00Z"}),
            json!({"scoreGiven": 5, "scoreMaximum": 10, "activityProgress": "Completed", "gradingProgress": "FullyGraded", "timestamp": "2026-10-04T10:00:00Z"}),
        ] {
            let (status, r) = post(bad.clone()).await;
            assert_eq!(status, 400, "{bad} -> {r}");
            assert!(r["message"].is_string());
        }
        let res = app.client.post(app.url(&scores)).bearer_auth(&token).body("{oops").send().await.unwrap();
        assert_eq!(res.status().as_u16(), 400);
        assert_eq!(app.event_count().await, before);

        // An unknown line item: 404.
        let (status, _) = post_json(&app, &token, "/lti/courses/HIST-101/lineitems/nosuchitem/scores", &score_body("ada", json!(5), "2026-10-04T10:00:00Z")).await;
        assert_eq!(status, 404);

        // A locked course: 422, recorded; applied after unlock and resend.
        app.engine().lock_course(&c, None, &meta(Source::Registrar)).await.unwrap();
        let before = app.event_count().await;
        let (status, r) = post(score_body("ada", json!(88), "2026-10-05T10:00:00Z")).await;
        assert_eq!((status, r["error"].as_str()), (422, Some("course_locked")), "{r}");
        assert_eq!(app.event_count().await, before + 1);
        app.engine().unlock_course(&c, None, &meta(Source::Registrar)).await.unwrap();
        let (status, r) = post(score_body("ada", json!(88), "2026-10-05T10:00:00Z")).await;
        assert_eq!((status, r["result"].as_str()), (200, Some("accepted")), "{r}");

        // A deleted line item: 404.
        send(&app, reqwest::Method::DELETE, &token, &path_of(&app, &item["id"]), None).await;
        let (status, _) = post(score_body("ada", json!(90), "2026-10-06T10:00:00Z")).await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_retried_refused_post_gets_the_same_refusal_every_time(app: TestApp) {
        // Tools in the field re-send a failed call with the identical body
        // two or three times: each re-send must hear the refusal again,
        // never 200, and nothing new is recorded.
        let tool = register(&app, "full", full_roster()).await;
        let c = open_course(&app, "HIST-101", &[&tool]).await;
        enroll(&app, &c, "ada", learner("Ada Lovelace")).await;
        enroll(&app, &c, "grace", person(Role::Instructor, "Grace Hopper", "grace@example.edu")).await;
        let token = tool.token(&app, ALL_SCOPES).await;
        let essay = create_item(&app, &token, "HIST-101", json!({"label": "Essay", "scoreMaximum": 100})).await;
        let quiz = create_item(&app, &token, "HIST-101", json!({"label": "Quiz", "scoreMaximum": 100})).await;
        let post = |item: &Value, body: Value| {
            let app = &app;
            let token = token.clone();
            let scores = format!("{}/scores", path_of(app, &item["id"]));
            async move {
                let res = app.client.post(app.url(&scores)).bearer_auth(&token)
                    .header("content-type", "application/vnd.ims.lis.v1.score+json")
                    .body(body.to_string()).send().await.unwrap();
                let status = res.status().as_u16();
                let body = res.json::<Value>().await.unwrap_or(Value::Null);
                (status, body["error"].as_str().or(body["result"].as_str()).unwrap_or_default().to_string())
            }
        };
        let retried = |item: Value, body: Value, expected: (u16, &'static str), recorded: i64| {
            let app = &app;
            let post = &post;
            async move {
                let before = app.event_count().await;
                assert_eq!(post(&item, body.clone()).await, (expected.0, expected.1.to_string()), "{body}");
                assert_eq!(app.event_count().await, before + recorded, "the first refusal: {body}");
                for _ in 0..3 {
                    assert_eq!(post(&item, body.clone()).await, (expected.0, expected.1.to_string()), "a retry of {body}");
                }
                assert_eq!(app.event_count().await, before + recorded, "retries record nothing: {body}");
            }
        };

        // Not an active learner: recorded once.
        retried(essay.clone(), score_body("grace", json!(90), "2026-10-03T10:00:00Z"), (422, "user_not_enrolled"), 1).await;
        // A timestamp far ahead of the engine's clock, or one no store can
        // hold: never recorded.
        retried(essay.clone(), score_body("ada", json!(90), "2999-01-01T00:00:00Z"), (422, "invalid_timestamp"), 0).await;
        retried(essay.clone(), score_body("ada", json!(90), "2026-10-03T10:00:00-23:59"), (400, "invalid_timestamp"), 0).await;
        // A locked course: recorded once; the same post lands after the unlock.
        app.engine().lock_course(&c, None, &meta(Source::Registrar)).await.unwrap();
        retried(essay.clone(), score_body("ada", json!(88), "2026-10-05T10:00:00Z"), (422, "course_locked"), 1).await;
        app.engine().unlock_course(&c, None, &meta(Source::Registrar)).await.unwrap();
        assert_eq!(post(&essay, score_body("ada", json!(88), "2026-10-05T10:00:00Z")).await, (200, "accepted".to_string()));
        // A deleted column: recorded once.
        send(&app, reqwest::Method::DELETE, &token, &path_of(&app, &quiz["id"]), None).await;
        let (status, _) = post(&quiz, score_body("ada", json!(70), "2026-10-06T10:00:00Z")).await;
        assert_eq!(status, 404);
        retried(quiz.clone(), score_body("ada", json!(70), "2026-10-06T10:00:00Z"), (404, "not_found"), 0).await;
        app.stop().await;
    }
}

on_both_stores! {
    async fn results_list_the_kept_scores_and_leave_out_learners_without_one(app: TestApp) {
        let tool = register(&app, "full", full_roster()).await;
        let c = open_course(&app, "HIST-101", &[&tool]).await;
        for u in ["ada", "alan", "bob"] {
            enroll(&app, &c, u, learner(u)).await;
        }
        let token = tool.token(&app, ALL_SCOPES).await;
        let item = create_item(&app, &token, "HIST-101", json!({"label": "Essay", "scoreMaximum": 100})).await;
        let item_path = path_of(&app, &item["id"]);
        for (u, s) in [("ada", "40.5"), ("alan", "0")] {
            let mut b = score_body(u, json!(s), "2026-10-01T10:00:00Z");
            b["scoreMaximum"] = json!(50);
            b["comment"] = json!(format!("well done {u}"));
            let (status, r) = post_json(&app, &token, &format!("{item_path}/scores"), &b).await;
            assert_eq!(status, 200, "{r}");
        }
        let (status, headers, results) = send_full(&app, reqwest::Method::GET, &token, &format!("{item_path}/results"), None).await;
        assert_eq!(status, 200, "{results}");
        assert_eq!(headers["content-type"], "application/vnd.ims.lis.v2.resultcontainer+json");
        let results = results.as_array().unwrap();
        assert_eq!(results.len(), 2, "bob has no score: {results:?}");
        assert_eq!(results[0]["userId"], "ada");
        // In the line item's scale: 40.5 of 50 is 81 of 100.
        assert_eq!(results[0]["resultScore"], json!(81));
        assert_eq!(results[0]["resultMaximum"], json!(100));
        assert_eq!(results[0]["comment"], "well done ada");
        assert_eq!(results[0]["scoreOf"], item["id"]);
        assert!(results[0]["id"].is_string());
        assert_eq!(results[1]["resultScore"], json!(0));

        let (_, one) = send(&app, reqwest::Method::GET, &token, &format!("{item_path}/results?user_id=alan"), None).await;
        assert_eq!(one.as_array().unwrap().len(), 1);
        assert_eq!(one[0]["userId"], "alan");
        let (_, headers, page) = send_full(&app, reqwest::Method::GET, &token, &format!("{item_path}/results?limit=1"), None).await;
        assert_eq!(page.as_array().unwrap().len(), 1);
        assert!(headers["link"].to_str().unwrap().contains("rel=\"next\""));
        app.stop().await;
    }
}

on_both_stores! {
    /// Tools that read results back (Moodle, ltijs, pylti1p3) compare them
    /// with the column they made: every result is in the line item's
    /// scale, the maximum in force now, whoever sent the score.
    async fn results_answer_in_the_line_items_scale_now(app: TestApp) {
        let tool = register(&app, "full", full_roster()).await;
        let c = open_course(&app, "HIST-101", &[&tool]).await;
        for u in ["ada", "alan", "bob"] {
            enroll(&app, &c, u, learner(u)).await;
        }
        let token = tool.token(&app, ALL_SCOPES).await;
        let item = create_item(&app, &token, "HIST-101", json!({"label": "Essay", "scoreMaximum": 50})).await;
        let item_path = path_of(&app, &item["id"]);
        let mut b = score_body("ada", json!(17), "2026-10-01T10:00:00Z");
        b["scoreMaximum"] = json!(20);
        let (status, r) = post_json(&app, &token, &format!("{item_path}/scores"), &b).await;
        assert_eq!(status, 200, "{r}");
        // A pending score with a value is shown the same way.
        let mut b = score_body("alan", json!(3), "2026-10-01T10:00:00Z");
        b["scoreMaximum"] = json!(4);
        b["gradingProgress"] = json!("Pending");
        let (status, r) = post_json(&app, &token, &format!("{item_path}/scores"), &b).await;
        assert_eq!(status, 200, "{r}");
        // A backfilled score, in its own scale too.
        let item_id = item_path.rsplit('/').next().unwrap();
        let csv = format!("line_item_id,user_id,score_given,score_maximum,timestamp,comment\n{item_id},bob,9,10,2026-09-01T10:00:00Z,\n");
        let res = app.client.post(app.url("/api/courses/HIST-101/backfill"))
            .bearer_auth(&app.registrar).header("content-type", "text/csv").body(csv).send().await.unwrap();
        let status = res.status().as_u16();
        let report: Value = res.json().await.unwrap();
        assert_eq!((status, &report["accepted"]), (200, &json!(1)), "{report}");

        let read = |path: String| {
            let (app, token) = (&app, &token);
            async move {
                let (status, results) = send(app, reqwest::Method::GET, token, &path, None).await;
                assert_eq!(status, 200, "{results}");
                results.as_array().unwrap().iter()
                    .map(|r| (r["userId"].as_str().unwrap().to_string(), r["resultScore"].clone(), r["resultMaximum"].clone()))
                    .collect::<Vec<_>>()
            }
        };
        let results_path = format!("{item_path}/results");
        assert_eq!(read(results_path.clone()).await, [
            ("ada".to_string(), json!(42.5), json!(50)),
            ("alan".to_string(), json!(37.5), json!(50)),
            ("bob".to_string(), json!(45), json!(50)),
        ]);

        // The maximum changed after the scores: they read back on the new one.
        let (status, changed) = send(&app, reqwest::Method::PUT, &token, &item_path, Some(&json!({"scoreMaximum": 30}))).await;
        assert_eq!((status, &changed["scoreMaximum"]), (200, &json!(30)), "{changed}");
        assert_eq!(read(results_path.clone()).await, [
            ("ada".to_string(), json!(25.5), json!(30)),
            ("alan".to_string(), json!(22.5), json!(30)),
            ("bob".to_string(), json!(27), json!(30)),
        ]);
        assert_eq!(read(format!("{results_path}?user_id=bob")).await, [("bob".to_string(), json!(27), json!(30))]);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_sync_only_tool_may_not_manage_line_items_but_its_scores_land(app: TestApp) {
        let full = register(&app, "full", full_roster()).await;
        let sync = register(&app, "sync_only", full_roster()).await;
        let c = open_course(&app, "HIST-101", &[&sync, &full]).await;
        enroll(&app, &c, "ada", learner("Ada")).await;
        // A column bound to the sync-only tool's link, made by the SIS.
        let mut spec = LineItemSpec::new("Essay", d("100"));
        spec.resource_link_id = Some("rl-essay".into());
        app.engine().create_line_item(&c, Some(gradebook::domain::LineItemId::parse("essay").unwrap()), spec, &meta(Source::Sis)).await.unwrap();
        app.engine().add_resource_link(&c, ResourceLink {
            resource_link_id: ResourceLinkId::parse("rl-essay").unwrap(),
            tool_id: ToolId::parse(sync.tool_id.clone()).unwrap(),
            title: "Essay".into(), url: None, custom: Default::default(),
            line_item_id: Some(gradebook::domain::LineItemId::parse("essay").unwrap()),
        }, &meta(Source::Sis)).await.unwrap();

        let token = sync.token(&app, ALL_SCOPES).await;
        let before = app.event_count().await;
        let (status, err) = post_json(&app, &token, "/lti/courses/HIST-101/lineitems", &json!({"label": "Mine", "scoreMaximum": 10})).await;
        assert_eq!((status, err["error"].as_str()), (403, Some("scope_not_granted")), "{err}");
        let (status, err) = send(&app, reqwest::Method::PUT, &token, "/lti/courses/HIST-101/lineitems/essay", Some(&json!({"label": "Renamed"}))).await;
        assert_eq!((status, err["error"].as_str()), (403, Some("scope_not_granted")), "{err}");
        let (status, _) = send(&app, reqwest::Method::DELETE, &token, "/lti/courses/HIST-101/lineitems/essay", None).await;
        assert_eq!(status, 403);
        assert_eq!(app.event_count().await, before);

        let (status, list) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/lineitems", None).await;
        assert_eq!(status, 200);
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["resourceLinkId"], "rl-essay");
        let (status, r) = post_json(&app, &token, "/lti/courses/HIST-101/lineitems/essay/scores", &score_body("ada", json!(80), "2026-10-01T10:00:00Z")).await;
        assert_eq!((status, r["result"].as_str()), (200, Some("accepted")), "{r}");

        // The other tool in the same course does not see the sync-only tool's column.
        let other = full.token(&app, ALL_SCOPES).await;
        let (_, list) = send(&app, reqwest::Method::GET, &other, "/lti/courses/HIST-101/lineitems", None).await;
        assert_eq!(list, json!([]));
        let (status, _) = send(&app, reqwest::Method::GET, &other, "/lti/courses/HIST-101/lineitems/essay", None).await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}

on_both_stores! {
    async fn narrowing_or_revoking_a_tool_takes_effect_for_tokens_already_issued(app: TestApp) {
        let tool = register(&app, "full", full_roster()).await;
        let c = open_course(&app, "HIST-101", &[&tool]).await;
        enroll(&app, &c, "ada", learner("Ada")).await;
        let token = tool.token(&app, ALL_SCOPES).await;
        let item = create_item(&app, &token, "HIST-101", json!({"label": "Essay", "scoreMaximum": 100})).await;
        let scores = format!("{}/scores", path_of(&app, &item["id"]));
        let tool_path = format!("/api/tools/{}", tool.tool_id);

        let (status, _) = send(&app, reqwest::Method::PATCH, &app.registrar, &tool_path, Some(&json!({"grading": "sync_only", "roster": {"access": false}}))).await;
        assert_eq!(status, 200);
        let (status, err) = post_json(&app, &token, "/lti/courses/HIST-101/lineitems", &json!({"label": "More", "scoreMaximum": 10})).await;
        assert_eq!((status, err["error"].as_str()), (403, Some("scope_not_granted")), "{err}");
        let (status, _) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/memberships", None).await;
        assert_eq!(status, 403);
        let (status, _) = post_json(&app, &token, &scores, &score_body("ada", json!(70), "2026-10-01T10:00:00Z")).await;
        assert_eq!(status, 200, "scores still land");

        let (status, err) = send(&app, reqwest::Method::PATCH, &app.registrar, &tool_path, Some(&json!({"grading": "off"}))).await;
        assert_eq!(status, 200, "{err}");
        let (status, _) = post_json(&app, &token, &scores, &score_body("ada", json!(71), "2026-10-02T10:00:00Z")).await;
        assert_eq!(status, 403);

        // Revoked: every token stops at once with 401, and no new ones.
        let (status, _) = send(&app, reqwest::Method::PATCH, &app.registrar, &tool_path, Some(&json!({"grading": "full"}))).await;
        assert_eq!(status, 200);
        let (status, _) = send(&app, reqwest::Method::DELETE, &app.registrar, &tool_path, None).await;
        assert_eq!(status, 204);
        let (status, headers, err) = send_full(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/lineitems", None).await;
        assert_eq!((status, err["error"].as_str()), (401, Some("invalid_token")), "{err}");
        assert!(headers.contains_key("www-authenticate"));
        let (status, _) = request(&app, &tool.assertion(&app), scope::SCORE).await;
        assert_eq!(status, 401);

        // An unknown token is 401 too.
        let (status, _) = send(&app, reqwest::Method::GET, "made-up", "/lti/courses/HIST-101/lineitems", None).await;
        assert_eq!(status, 401);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_tool_sees_only_courses_it_is_deployed_in(app: TestApp) {
        let a = register(&app, "full", full_roster()).await;
        let b = register(&app, "full", full_roster()).await;
        let c = open_course(&app, "ONLY-B", &[&b]).await;
        enroll(&app, &c, "ada", learner("Ada")).await;
        let token_b = b.token(&app, ALL_SCOPES).await;
        let item = create_item(&app, &token_b, "ONLY-B", json!({"label": "B's", "scoreMaximum": 10})).await;
        let item_path = path_of(&app, &item["id"]);

        let token_a = a.token(&app, ALL_SCOPES).await;
        let (status, missing) = send(&app, reqwest::Method::GET, &token_a, "/lti/courses/NO-SUCH-COURSE/lineitems", None).await;
        assert_eq!(status, 404);
        for (method, path) in [
            (reqwest::Method::GET, "/lti/courses/ONLY-B/lineitems".to_string()),
            (reqwest::Method::GET, item_path.clone()),
            (reqwest::Method::GET, format!("{item_path}/results")),
            (reqwest::Method::GET, "/lti/courses/ONLY-B/memberships".to_string()),
            (reqwest::Method::DELETE, item_path.clone()),
        ] {
            let (status, body) = send(&app, method.clone(), &token_a, &path, None).await;
            assert_eq!(status, 404, "{method} {path}");
            assert_eq!(body["error"], missing["error"], "the same answer as a course that does not exist");
        }
        let before = app.event_count().await;
        let (status, _) = post_json(&app, &token_a, &format!("{item_path}/scores"), &score_body("ada", json!(5), "2026-10-01T10:00:00Z")).await;
        assert_eq!(status, 404);
        assert_eq!(app.event_count().await, before);
        app.stop().await;
    }
}

on_both_stores! {
    async fn moodle_grade_sync_run_twice_keeps_one_line_item(app: TestApp) {
        let tool = register(&app, "full", full_roster()).await;
        let c = open_course(&app, "HIST-101", &[&tool]).await;
        enroll(&app, &c, "ada", learner("Ada")).await;
        add_link(&app, &c, &tool, "rl-7").await;
        for run in 0..2 {
            let token = tool.token(&app, ALL_SCOPES).await;
            // List everything, find by tag/resourceId/resourceLinkId loosely, else create.
            let (_, all) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/lineitems", None).await;
            let found = all.as_array().unwrap().iter().find(|i| i["tag"] == "grade" && i["resourceId"] == json!(7) && i["resourceLinkId"] == "rl-7").cloned();
            let item = match found {
                Some(i) => i,
                None => {
                    let (status, i) = post_json(&app, &token, "/lti/courses/HIST-101/lineitems", &json!({"label": "World History", "scoreMaximum": 100, "tag": "grade", "resourceId": 7, "resourceLinkId": "rl-7"})).await;
                    assert!(status == 201 || status == 200, "{i}");
                    i
                }
            };
            let (status, r) = post_json(&app, &token, &format!("{}/scores", path_of(&app, &item["id"])), &score_body("ada", json!(50 + run), &format!("2026-10-0{}T10:00:00+0000", run + 1))).await;
            assert_eq!(status, 200, "{r}");
            // Even a blind create (the list missed it) gives back the same column.
            let (status, again) = post_json(&app, &token, "/lti/courses/HIST-101/lineitems", &json!({"label": "World History", "scoreMaximum": 100, "tag": "grade", "resourceId": 7, "resourceLinkId": "rl-7"})).await;
            assert_eq!(status, 200, "{again}");
            assert_eq!(again["id"], item["id"]);
        }
        let token = tool.token(&app, ALL_SCOPES).await;
        let (_, all) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/lineitems", None).await;
        assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
        let (_, g) = app.get_json("/api/courses/HIST-101/grades").await;
        assert_eq!(g["students"][0]["items"].as_array().unwrap().len(), 1);
        assert_eq!(g["students"][0]["items"][0]["score"], "51.00");
        app.stop().await;
    }
}

// ---- NRPS ----

async fn roster_course(app: &TestApp, tool: &FakeTool) -> CourseId {
    let c = open_course(app, "HIST-101", &[tool]).await;
    enroll(
        app,
        &c,
        "ada",
        person(Role::Learner, "Ada Lovelace", "ada@example.edu"),
    )
    .await;
    enroll(
        app,
        &c,
        "alan",
        person(Role::Learner, "Alan Turing", "alan@example.edu"),
    )
    .await;
    enroll(
        app,
        &c,
        "grace",
        person(Role::Instructor, "Grace Hopper", "grace@example.edu"),
    )
    .await;
    enroll(
        app,
        &c,
        "ted",
        person(Role::TeachingAssistant, "Ted Nelson", "ted@example.edu"),
    )
    .await;
    let mut idle = person(Role::Learner, "Ivy Idle", "ivy@example.edu");
    idle.status = EnrollmentStatus::Inactive;
    enroll(app, &c, "ivy", idle).await;
    enroll(
        app,
        &c,
        "dan",
        person(Role::Learner, "Dan Dropped", "dan@example.edu"),
    )
    .await;
    app.engine()
        .drop_enrollment(&c, &user("dan"), &meta(Source::Sis))
        .await
        .unwrap();
    app.engine()
        .add_resource_link(
            &c,
            ResourceLink {
                resource_link_id: ResourceLinkId::parse("rl-quiz").unwrap(),
                tool_id: ToolId::parse(tool.tool_id.clone()).unwrap(),
                title: "Quiz".into(),
                url: None,
                custom: json!({"id": "4f1c"}).as_object().unwrap().clone(),
                line_item_id: None,
            },
            &meta(Source::Sis),
        )
        .await
        .unwrap();
    c
}

on_both_stores! {
    async fn the_roster_lists_everyone_but_dropped_people_with_full_role_uris(app: TestApp) {
        let tool = register(&app, "full", full_roster()).await;
        roster_course(&app, &tool).await;
        let token = tool.token(&app, scope::NRPS).await;
        let (status, headers, r) = send_full(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/memberships", None).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(headers["content-type"], "application/vnd.ims.lti-nrps.v2.membershipcontainer+json");
        assert_eq!(r["id"], app.url("/lti/courses/HIST-101/memberships"));
        assert_eq!(r["context"]["id"], "HIST-101");
        assert_eq!(r["context"]["title"], "World History");
        let members = r["members"].as_array().unwrap();
        let ids: Vec<&str> = members.iter().map(|m| m["user_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["ada", "alan", "grace", "ivy", "ted"], "dropped people are left out");
        let ada = &members[0];
        assert_eq!(ada["roles"], json!(["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]));
        assert_eq!(ada["status"], "Active");
        assert_eq!(ada["name"], "Ada Lovelace");
        assert_eq!(ada["given_name"], "Ada");
        assert_eq!(ada["family_name"], "Lovelace");
        assert_eq!(ada["email"], "ada@example.edu");
        assert_eq!(members[3]["status"], "Inactive");

        // Role filter, short or full.
        let (_, r) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/memberships?role=Instructor", None).await;
        let ids: Vec<&str> = r["members"].as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["grace", "ted"]);
        let (_, r) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/memberships?role=http%3A%2F%2Fpurl.imsglobal.org%2Fvocab%2Flis%2Fv2%2Fmembership%23Learner", None).await;
        assert_eq!(r["members"].as_array().unwrap().len(), 3);
        let (status, _) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/memberships?role=Wizard", None).await;
        assert_eq!(status, 400);

        // Paging follows rel="next" with the filter kept.
        let mut url = app.url("/lti/courses/HIST-101/memberships?role=Learner&limit=2");
        let mut seen = Vec::new();
        loop {
            let (status, headers, page) = send_full(&app, reqwest::Method::GET, &token, &url, None).await;
            assert_eq!(status, 200, "{page}");
            seen.extend(page["members"].as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap().to_string()));
            let Some(link) = headers.get("link") else { break };
            let link = link.to_str().unwrap().to_lowercase();
            url = link.trim_start_matches('<').split('>').next().unwrap().to_string();
            assert!(url.contains("role=learner"), "{url}");
        }
        assert_eq!(seen, ["ada", "alan", "ivy"]);

        // rlid: the whole class, each with the link's claims; an unknown link is 404.
        let (status, r) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/memberships?rlid=rl-quiz", None).await;
        assert_eq!(status, 200, "{r}");
        let members = r["members"].as_array().unwrap();
        assert_eq!(members.len(), 5);
        let msg = &members[0]["message"][0];
        assert_eq!(msg["https://purl.imsglobal.org/spec/lti/claim/custom"], json!({"id": "4f1c"}));
        assert_eq!(msg["https://purl.imsglobal.org/spec/lti/claim/resource_link"]["id"], "rl-quiz");
        let (status, _) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/memberships?rlid=nope", None).await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}

on_both_stores! {
    async fn hidden_names_and_emails_are_absent_from_every_member(app: TestApp) {
        let tool = register(&app, "off", json!({"access": true, "hide_names": true, "hide_emails": true})).await;
        roster_course(&app, &tool).await;
        let token = tool.token(&app, scope::NRPS).await;
        for query in ["", "?limit=2", "?role=Instructor", "?rlid=rl-quiz", "?limit=2&cursor=2"] {
            let (status, r) = send(&app, reqwest::Method::GET, &token, &format!("/lti/courses/HIST-101/memberships{query}"), None).await;
            assert_eq!(status, 200, "{r}");
            let members = r["members"].as_array().unwrap();
            assert!(!members.is_empty(), "{query}");
            for m in members {
                for field in ["name", "given_name", "family_name", "email"] {
                    assert!(m.get(field).is_none(), "{field} shows in {query}: {m}");
                }
                assert!(m["user_id"].is_string() && m["roles"].is_array());
            }
        }
        // Only emails hidden: names come back.
        let path = format!("/api/tools/{}", tool.tool_id);
        send(&app, reqwest::Method::PATCH, &app.registrar, &path, Some(&json!({"roster": {"hide_names": false}}))).await;
        let (_, r) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/memberships", None).await;
        assert_eq!(r["members"][0]["name"], "Ada Lovelace");
        assert!(r["members"][0].get("email").is_none());
        app.stop().await;
    }
}

// ---- keys published by the tool, limits, command line ----

/// Serves a key set the way a tool publishes it, on a port of its own.
async fn serve_jwks(jwks: Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/jwks.json")
}

on_both_stores! {
    async fn a_tool_whose_keys_live_at_its_jwks_url_gets_a_token(app: TestApp) {
        let key = PlatformKey::generate().unwrap();
        let url = serve_jwks(json!({"keys": [key.public_jwk]})).await;
        let tool = FakeTool { key, ..FakeTool::register(&app, json!({"name": "Remote keys", "jwks_url": url, "grading": "full"})).await };
        let (status, t) = request(&app, &tool.assertion(&app), scope::SCORE).await;
        assert_eq!(status, 200, "{t}");
        assert_eq!(t["scope"], scope::SCORE);
        // A key the set does not hold is refused.
        let (status, err) = request(&app, &PlatformKey::generate().unwrap().sign(&tool.claims(&app)).unwrap(), scope::SCORE).await;
        assert_eq!((status, err["error"].as_str()), (401, Some("invalid_client")), "{err}");
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_client_hammering_the_token_endpoint_is_slowed_down(app: TestApp) {
        let client_id = uuid::Uuid::new_v4().to_string();
        let mut statuses = Vec::new();
        for _ in 0..61 {
            let (status, body) = token_form(&app, &[("grant_type", "client_credentials"), ("client_id", &client_id)]).await;
            statuses.push(status);
            if status == 429 {
                assert!(body["error"].is_string() && body["error_description"].is_string(), "{body}");
            }
        }
        assert!(statuses[..60].iter().all(|s| *s == 400), "{statuses:?}");
        assert_eq!(statuses[60], 429);
        app.stop().await;
    }
}

#[test]
fn keys_rotate_is_a_command() {
    use clap::Parser;
    let cli = gradebook::cli::Cli::try_parse_from(["gradebook", "keys", "rotate"]).unwrap();
    assert!(matches!(
        cli.command,
        gradebook::cli::Command::Keys(gradebook::cli::KeysCommand::Rotate)
    ));
}

on_both_stores! {
    async fn racing_grade_syncs_still_make_one_line_item(app: TestApp) {
        let tool = register(&app, "full", full_roster()).await;
        let c = open_course(&app, "HIST-101", &[&tool]).await;
        add_link(&app, &c, &tool, "rl-7").await;
        let token = tool.token(&app, ALL_SCOPES).await;
        let body = json!({"label": "World History", "scoreMaximum": 100, "tag": "grade", "resourceId": 7, "resourceLinkId": "rl-7"});
        let posts = (0..4).map(|_| post_json(&app, &token, "/lti/courses/HIST-101/lineitems", &body));
        let answers = futures::future::join_all(posts).await;
        let created = answers.iter().filter(|(s, _)| *s == 201).count();
        assert_eq!(created, 1, "{answers:?}");
        assert!(answers.iter().all(|(s, i)| (*s == 200 || *s == 201) && i["id"] == answers[0].1["id"]), "{answers:?}");

        // Columns that share only a tag are different columns.
        create_item(&app, &token, "HIST-101", json!({"label": "Quiz A", "scoreMaximum": 10, "tag": "quiz"})).await;
        create_item(&app, &token, "HIST-101", json!({"label": "Quiz B", "scoreMaximum": 10, "tag": "quiz"})).await;
        let (_, all) = send(&app, reqwest::Method::GET, &token, "/lti/courses/HIST-101/lineitems", None).await;
        assert_eq!(all.as_array().unwrap().len(), 3, "{all}");

        // Once the synced column is deleted, the next sync makes a new one.
        let first = path_of(&app, &answers[0].1["id"]);
        assert_eq!(send(&app, reqwest::Method::DELETE, &token, &first, None).await.0, 204);
        let (status, again) = post_json(&app, &token, "/lti/courses/HIST-101/lineitems", &body).await;
        assert_eq!(status, 201, "{again}");
        assert_ne!(again["id"], answers[0].1["id"]);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_score_post_reaches_only_columns_the_tool_sees_however_the_url_is_cased(app: TestApp) {
        let a = register(&app, "full", full_roster()).await;
        let b = register(&app, "full", full_roster()).await;
        let c = open_course(&app, "HIST-101", &[&a, &b]).await;
        enroll(&app, &c, "ada", learner("Ada")).await;
        let token_a = a.token(&app, ALL_SCOPES).await;
        let token_b = b.token(&app, ALL_SCOPES).await;
        let item = create_item(&app, &token_a, "HIST-101", json!({"label": "Essay", "scoreMaximum": 100})).await;
        let scores = format!("{}/scores", path_of(&app, &item["id"]));

        // Tool B is deployed in the course but does not see A's column.
        let before = app.event_count().await;
        let (status, r) = post_json(&app, &token_b, &scores, &score_body("ada", json!(5), "2026-10-01T10:00:00Z")).await;
        assert_eq!((status, r["error"].as_str()), (404, Some("not_found")), "{r}");
        assert_eq!(app.event_count().await, before);

        // A column the SIS made, seen by B only through its own resource link.
        let mut spec = LineItemSpec::new("Quiz", d("10"));
        spec.resource_link_id = Some("rl-quiz".into());
        app.engine().create_line_item(&c, Some(gradebook::domain::LineItemId::parse("quiz").unwrap()), spec, &meta(Source::Sis)).await.unwrap();
        app.engine().add_resource_link(&c, ResourceLink {
            resource_link_id: ResourceLinkId::parse("rl-quiz").unwrap(),
            tool_id: ToolId::parse(b.tool_id.clone()).unwrap(),
            title: "Quiz".into(), url: None, custom: Default::default(),
            line_item_id: None,
        }, &meta(Source::Sis)).await.unwrap();
        let (status, r) = post_json(&app, &token_b, "/lti/courses/HIST-101/lineitems/quiz/scores", &score_body("ada", json!(7), "2026-10-01T10:00:00Z")).await;
        assert_eq!((status, r["result"].as_str()), (200, Some("accepted")), "{r}");
        let (status, _) = post_json(&app, &token_a, "/lti/courses/HIST-101/lineitems/quiz/scores", &score_body("ada", json!(7), "2026-10-01T10:00:00Z")).await;
        assert_eq!(status, 404);

        // A lower-cased URL still names the one course and column.
        let lower = scores.replace("HIST-101", "hist-101");
        let (status, r) = post_json(&app, &token_a, &lower, &score_body("ada", json!(80), "2026-10-02T10:00:00Z")).await;
        assert_eq!((status, r["result"].as_str()), (200, Some("accepted")), "{r}");
        assert!(r["scoreOf"].as_str().unwrap().contains("HIST-101"), "{r}");

        // Someone not enrolled: recorded, refused.
        let before = app.event_count().await;
        let (status, r) = post_json(&app, &token_a, &scores, &score_body("nobody", json!(80), "2026-10-02T10:00:00Z")).await;
        assert_eq!((status, r["error"].as_str()), (422, Some("user_not_enrolled")), "{r}");
        assert_eq!(app.event_count().await, before + 1);
        app.stop().await;
    }
}

// ---- the courses a tool reaches ----

/// Registers a tool with full rights and the given `courses`.
async fn register_for(app: &TestApp, courses: Value) -> FakeTool {
    let mut body = moodle("full", full_roster());
    body["name"] = json!("Moodle (whole college)");
    body["courses"] = courses;
    FakeTool::register(app, body).await
}

/// A course with a learner (ada) and an instructor (grace), deploying the
/// given tools itself.
async fn class(app: &TestApp, course: &str, tools: &[&FakeTool]) -> CourseId {
    let c = open_course(app, course, tools).await;
    enroll(app, &c, "ada", learner("Ada")).await;
    enroll(
        app,
        &c,
        "grace",
        person(Role::Instructor, "Grace Hopper", "grace@example.edu"),
    )
    .await;
    c
}

/// Grace asks for a deep-linking launch of the tool in the course.
async fn ask_launch(app: &TestApp, tool: &FakeTool, course: &str) -> (u16, Value) {
    post_json(app, &app.sis, "/api/launches",
        &json!({"tool_id": tool.tool_id, "course_id": course, "user_id": "grace", "kind": "deep_linking"})).await
}

/// The tool completes a launch the SIS asked for: the status of the
/// authorization answer, and the OIDC error it carries, if any.
async fn complete_launch(app: &TestApp, asked: &Value) -> (u16, Option<String>) {
    let url = reqwest::Url::parse(asked["login_initiation_url"].as_str().unwrap()).unwrap();
    let login: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    let params = common::launch::auth_request(
        &login,
        "https://moodle.example.edu/enrol/lti/launch.php",
        "nonce-1",
    );
    let (status, _, html) = common::launch::authorize(app, &params).await;
    if status == 200 {
        assert!(
            common::launch::form_field(&html, "id_token").is_some(),
            "{html}"
        );
    }
    (status, common::launch::form_field(&html, "error"))
}

/// What the tool gets in the course: a launch, the line items, the roster,
/// and a score post on `item` (a line item path) when given.
async fn reach(
    app: &TestApp,
    tool: &FakeTool,
    token: &str,
    course: &str,
    item: Option<&str>,
) -> Vec<(&'static str, u16)> {
    let mut got = vec![
        ("launch", ask_launch(app, tool, course).await.0),
        (
            "lineitems",
            send(
                app,
                reqwest::Method::GET,
                token,
                &format!("/lti/courses/{course}/lineitems"),
                None,
            )
            .await
            .0,
        ),
        (
            "memberships",
            send(
                app,
                reqwest::Method::GET,
                token,
                &format!("/lti/courses/{course}/memberships"),
                None,
            )
            .await
            .0,
        ),
    ];
    if let Some(item) = item {
        let (status, _) = post_json(
            app,
            token,
            &format!("{item}/scores"),
            &score_body("ada", json!(8), "2026-10-01T10:00:00Z"),
        )
        .await;
        got.push(("score", status));
    }
    got
}

fn everything(code: u16, with_score: bool) -> Vec<(&'static str, u16)> {
    let mut v = vec![("launch", code), ("lineitems", code), ("memberships", code)];
    if with_score {
        v.push(("score", code));
    }
    v
}

on_both_stores! {
    async fn a_tool_for_all_courses_reaches_courses_opened_after_it(app: TestApp) {
        let tool = register_for(&app, json!("all")).await;
        let (_, shown) = app.get_json(&format!("/api/tools/{}", tool.tool_id)).await;
        assert_eq!(shown["courses"], "all");
        let token = tool.token(&app, ALL_SCOPES).await;
        // Opened after the registration, deploying nothing itself.
        class(&app, "LATER-101", &[]).await;
        let item = create_item(&app, &token, "LATER-101", json!({"label": "Essay", "scoreMaximum": 10})).await;
        let item = path_of(&app, &item["id"]);
        assert_eq!(reach(&app, &tool, &token, "LATER-101", Some(&item)).await, everything(200, true));
        let (_, members) = send(&app, reqwest::Method::GET, &token, "/lti/courses/LATER-101/memberships", None).await;
        assert_eq!(members["members"].as_array().unwrap().len(), 2, "{members}");
        let (status, asked) = ask_launch(&app, &tool, "LATER-101").await;
        assert_eq!(status, 200, "{asked}");
        assert_eq!(complete_launch(&app, &asked).await, (200, None));
        // With one deployment id in every course.
        let url = reqwest::Url::parse(asked["login_initiation_url"].as_str().unwrap()).unwrap();
        let deployment = url.query_pairs().find(|(k, _)| k == "lti_deployment_id").unwrap().1.into_owned();
        assert_eq!(deployment, shown["deployment_id"].as_str().unwrap());
        // A course that does not exist is still not found.
        assert_eq!(reach(&app, &tool, &token, "NO-SUCH-COURSE", None).await, everything(404, false));
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_tool_narrowed_to_a_list_is_turned_away_from_other_courses_at_once(app: TestApp) {
        let tool = register_for(&app, json!("all")).await;
        class(&app, "KEEP-A", &[]).await;
        class(&app, "LOSE-B", &[]).await;
        // A course that deployed the tool itself is outside the list too.
        class(&app, "OWN-C", &[&tool]).await;
        let token = tool.token(&app, ALL_SCOPES).await;
        let mut items = std::collections::HashMap::new();
        for c in ["KEEP-A", "LOSE-B", "OWN-C"] {
            let item = create_item(&app, &token, c, json!({"label": "Essay", "scoreMaximum": 10})).await;
            items.insert(c, path_of(&app, &item["id"]));
        }
        // A launch asked for before the change, completed after it.
        let (status, in_flight) = ask_launch(&app, &tool, "LOSE-B").await;
        assert_eq!(status, 200, "{in_flight}");

        let (status, t) = send(&app, reqwest::Method::PATCH, &app.registrar, &format!("/api/tools/{}", tool.tool_id), Some(&json!({"courses": ["KEEP-A"]}))).await;
        assert_eq!(status, 200, "{t}");
        assert_eq!(t["courses"], json!(["KEEP-A"]));
        assert_eq!(t["grading"], "full", "the other settings stay");

        let before = app.event_count().await;
        for c in ["LOSE-B", "OWN-C"] {
            assert_eq!(reach(&app, &tool, &token, c, Some(&items[c])).await, everything(404, true), "{c}");
        }
        assert_eq!(app.event_count().await, before, "no score was recorded in a course the tool left");
        assert_eq!(complete_launch(&app, &in_flight).await, (400, Some("access_denied".into())));
        assert_eq!(reach(&app, &tool, &token, "KEEP-A", Some(&items["KEEP-A"])).await, everything(200, true));

        // A course cannot take the tool back on its own while the list stands.
        let before = app.event_count().await;
        let (status, err) = post_json(&app, &app.sis, "/api/courses/LOSE-B/tools", &json!({"tool_ids": [tool.tool_id]})).await;
        assert_eq!((status, err["error"].as_str()), (422, Some("tool_not_available")), "{err}");
        let (status, err) = post_json(&app, &app.sis, "/api/courses",
            &json!({"course_id": "NEW-D", "title": "New", "term": "2026FA", "tool_ids": [tool.tool_id]})).await;
        assert_eq!((status, err["error"].as_str()), (422, Some("tool_not_available")), "{err}");
        assert_eq!(app.get_json("/api/courses/NEW-D").await.0, 404);
        assert_eq!(app.event_count().await, before);

        // Back to the courses that deploy it: OWN-C again, LOSE-B not.
        let (status, t) = send(&app, reqwest::Method::PATCH, &app.registrar, &format!("/api/tools/{}", tool.tool_id), Some(&json!({"courses": null}))).await;
        assert_eq!((status, &t["courses"]), (200, &Value::Null), "{t}");
        assert_eq!(reach(&app, &tool, &token, "OWN-C", None).await, everything(200, false));
        assert_eq!(reach(&app, &tool, &token, "LOSE-B", None).await, everything(404, false));
        assert_eq!(reach(&app, &tool, &token, "KEEP-A", None).await, everything(404, false));
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_tool_for_two_courses_or_deployed_in_one_reaches_no_other(app: TestApp) {
        class(&app, "A-101", &[]).await;
        class(&app, "B-101", &[]).await;
        let per_course = register(&app, "full", full_roster()).await;
        class(&app, "C-101", &[&per_course]).await;
        let listed = register_for(&app, json!(["B-101", "A-101", "A-101"])).await;
        let (_, shown) = app.get_json(&format!("/api/tools/{}", listed.tool_id)).await;
        assert_eq!(shown["courses"], json!(["A-101", "B-101"]), "sorted, each once");
        let (_, shown) = app.get_json(&format!("/api/tools/{}", per_course.tool_id)).await;
        assert_eq!(shown["courses"], Value::Null);

        let listed_token = listed.token(&app, ALL_SCOPES).await;
        let per_course_token = per_course.token(&app, ALL_SCOPES).await;
        let c_item = create_item(&app, &per_course_token, "C-101", json!({"label": "C's", "scoreMaximum": 10})).await;
        let c_item = path_of(&app, &c_item["id"]);
        for c in ["A-101", "B-101"] {
            assert_eq!(reach(&app, &listed, &listed_token, c, None).await, everything(200, false), "{c}");
            assert_eq!(reach(&app, &per_course, &per_course_token, c, None).await, everything(404, false), "{c}");
        }
        assert_eq!(reach(&app, &listed, &listed_token, "C-101", Some(&c_item)).await, everything(404, true));
        assert_eq!(reach(&app, &per_course, &per_course_token, "C-101", Some(&c_item)).await, everything(200, true));
        // Nor does a course opened later reach either.
        class(&app, "D-101", &[]).await;
        assert_eq!(reach(&app, &listed, &listed_token, "D-101", None).await, everything(404, false));
        assert_eq!(reach(&app, &per_course, &per_course_token, "D-101", None).await, everything(404, false));
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_courses_value_that_is_not_all_or_existing_courses_is_refused_and_changes_nothing(app: TestApp) {
        class(&app, "A-101", &[]).await;
        let tool = register_for(&app, json!(["A-101"])).await;
        let (_, before) = app.get_json("/api/tools").await;
        let bad = [
            json!("everything"), json!(5), json!({"all": true}), json!([1]),
            json!(["A-101", "NO-SUCH"]), json!(["not an id!"]),
        ];
        for courses in &bad {
            let mut body = json!({"name": "x", "jwks_url": "https://x.example/jwks", "courses": courses});
            let (status, err) = post_json(&app, &app.registrar, "/api/tools", &body).await;
            assert_eq!((status, err["error"].as_str()), (422, Some("invalid_courses")), "{courses}: {err}");
            assert!(err["message"].as_str().unwrap().starts_with("courses"), "{err}");
            body = json!({"courses": courses, "grading": "off"});
            let (status, err) = send(&app, reqwest::Method::PATCH, &app.registrar, &format!("/api/tools/{}", tool.tool_id), Some(&body)).await;
            assert_eq!((status, err["error"].as_str()), (422, Some("invalid_courses")), "{courses}: {err}");
            let (status, err) = post_json(&app, &app.registrar, "/api/tools/dynamic-registration",
                &json!({"registration_url": "https://x.example/register", "courses": courses})).await;
            assert_eq!((status, err["error"].as_str()), (422, Some("invalid_courses")), "{courses}: {err}");
        }
        let (status, err) = post_json(&app, &app.registrar, "/api/tools", &json!({"name": "x", "jwks_url": "https://x.example/jwks", "courses": ["NO-SUCH"]})).await;
        assert!(status == 422 && err["message"].as_str().unwrap().contains("NO-SUCH"), "{err}");
        assert_eq!(app.get_json("/api/tools").await.1, before, "nothing registered, nothing changed");
        // The SIS does not choose a tool's courses.
        let (status, _) = send(&app, reqwest::Method::PATCH, &app.sis, &format!("/api/tools/{}", tool.tool_id), Some(&json!({"courses": "all"}))).await;
        assert_eq!(status, 403);
        assert_eq!(app.get_json(&format!("/api/tools/{}", tool.tool_id)).await.1["courses"], json!(["A-101"]));
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_tool_registering_itself_gets_the_courses_its_link_was_made_for(app: TestApp) {
        let (status, link) = post_json(&app, &app.registrar, "/api/tools/dynamic-registration",
            &json!({"registration_url": "https://moodle.example.edu/enrol/lti/register.php", "courses": "all"})).await;
        assert_eq!(status, 200, "{link}");
        let url = reqwest::Url::parse(link["url"].as_str().unwrap()).unwrap();
        let token = url.query_pairs().find(|(k, _)| k == "registration_token").unwrap().1.into_owned();
        let (status, reg) = register_raw(&app, &token, &moodle_registration().to_string()).await;
        assert_eq!(status, 200, "{reg}");
        let (_, all) = app.get_json("/api/tools").await;
        let t = all["tools"].as_array().unwrap().iter().find(|t| t["client_id"] == reg["client_id"]).unwrap().clone();
        assert_eq!(t["courses"], "all");

        // It reaches a course opened afterwards, once a registrar grants scopes.
        class(&app, "LATER-101", &[]).await;
        let (status, _) = send(&app, reqwest::Method::PATCH, &app.registrar, &format!("/api/tools/{}", t["tool_id"].as_str().unwrap()),
            Some(&json!({"grading": "full", "roster": {"access": true}}))).await;
        assert_eq!(status, 200);
        let (status, asked) = post_json(&app, &app.sis, "/api/launches",
            &json!({"tool_id": t["tool_id"], "course_id": "LATER-101", "user_id": "grace", "kind": "deep_linking"})).await;
        assert_eq!(status, 200, "{asked}");

        // A link made without courses gives the usual per-course tool.
        let (_, link) = post_json(&app, &app.registrar, "/api/tools/dynamic-registration",
            &json!({"registration_url": "https://moodle.example.edu/enrol/lti/register.php"})).await;
        let url = reqwest::Url::parse(link["url"].as_str().unwrap()).unwrap();
        let token = url.query_pairs().find(|(k, _)| k == "registration_token").unwrap().1.into_owned();
        let (status, reg) = register_raw(&app, &token, &moodle_registration().to_string()).await;
        assert_eq!(status, 200, "{reg}");
        let (_, all) = app.get_json("/api/tools").await;
        let t = all["tools"].as_array().unwrap().iter().find(|t| t["client_id"] == reg["client_id"]).unwrap().clone();
        assert_eq!(t["courses"], Value::Null);
        let (status, _) = post_json(&app, &app.sis, "/api/launches",
            &json!({"tool_id": t["tool_id"], "course_id": "LATER-101", "user_id": "grace", "kind": "deep_linking"})).await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}
