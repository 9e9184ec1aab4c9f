//! The one fake LTI tool of the tests: its own key pair, registered over the
//! registrar API, signing client assertions and asking the token endpoint
//! for access tokens. Tests that run the server in another process use the
//! same tool through a base URL and a client of their own.

use gradebook::services::crypto::PlatformKey;
use serde_json::{json, Value};

use super::{Answer, TestApp};

/// Every scope a tool can ask for, space-separated as a token request sends them.
pub const ALL_SCOPES: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly https://purl.imsglobal.org/spec/lti-ags/scope/score https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly";

/// A tool as the platform knows it: the key it signs with and the ids the
/// registration gave it.
#[derive(Clone)]
pub struct FakeTool {
    pub key: PlatformKey,
    pub tool_id: String,
    pub client_id: String,
    /// The one deployment the platform made for it.
    pub deployment_id: String,
}

/// A registration the way Moodle's LTI enrolment plugin is set up by hand.
pub fn moodle(grading: &str, roster: Value) -> Value {
    json!({
        "name": "Moodle", "issuer": "https://moodle.example.edu",
        "launch_url": "https://moodle.example.edu/enrol/lti/launch.php",
        "login_url": "https://moodle.example.edu/enrol/lti/login.php",
        "redirect_uris": ["https://moodle.example.edu/enrol/lti/launch.php"],
        "jwks_url": null,
        "deep_linking_url": "https://moodle.example.edu/enrol/lti/launch_deeplink.php",
        "grading": grading, "roster": roster,
    })
}

/// Roster access with names and emails shown.
pub fn full_roster() -> Value {
    json!({"access": true, "hide_names": false, "hide_emails": false})
}

/// Now, in the seconds JWT claims count.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl FakeTool {
    /// Registers the tool with a new key through the registrar API at
    /// `base`; the body gets the key's public JWK unless it names a
    /// `jwks_url` (the tool's keys then live there).
    pub async fn register_at(
        client: &reqwest::Client,
        base: &str,
        registrar: &str,
        mut body: Value,
    ) -> FakeTool {
        let key = PlatformKey::generate().unwrap();
        if !body["jwks_url"].is_string() {
            body["public_jwk"] = key.public_jwk.clone();
        }
        let (status, reg) = super::call(
            client,
            reqwest::Method::POST,
            format!("{base}/api/tools"),
            registrar,
            body,
        )
        .await;
        assert_eq!(status, 201, "{reg}");
        FakeTool {
            key,
            tool_id: reg["tool_id"].as_str().unwrap().to_string(),
            client_id: reg["client_id"].as_str().unwrap().to_string(),
            deployment_id: reg["deployment_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// Registers the tool on the test's server as its registrar.
    pub async fn register(app: &TestApp, body: Value) -> FakeTool {
        Self::register_at(&app.client, &app.base, &app.registrar, body).await
    }

    /// The claims of a client assertion for the token endpoint at `token_url`.
    pub fn claims_for(&self, token_url: &str) -> Value {
        json!({
            "iss": self.client_id, "sub": self.client_id, "aud": token_url,
            "iat": now(), "exp": now() + 60, "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// The claims of a client assertion for the test server.
    pub fn claims(&self, app: &TestApp) -> Value {
        self.claims_for(&app.url("/lti/token"))
    }

    /// A signed client assertion for the test server.
    pub fn assertion(&self, app: &TestApp) -> String {
        self.key.sign(&self.claims(app)).unwrap()
    }

    /// An access token for the scopes from the server at `base`.
    pub async fn token_at(&self, client: &reqwest::Client, base: &str, scope: &str) -> String {
        let url = format!("{base}/lti/token");
        let assertion = self.key.sign(&self.claims_for(&url)).unwrap();
        let a = token_request(client, &url, &assertion, scope).await;
        let body = a.json();
        assert_eq!(a.status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// An access token for the scopes from the test server.
    pub async fn token(&self, app: &TestApp, scope: &str) -> String {
        self.token_at(&app.client, &app.base, scope).await
    }
}

/// A client-credentials token request with this assertion and scope.
pub async fn token_request(
    client: &reqwest::Client,
    token_url: &str,
    assertion: &str,
    scope: &str,
) -> Answer {
    token_form(
        client,
        token_url,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope),
        ],
    )
    .await
}

/// A form posted to the token endpoint as it is.
pub async fn token_form(
    client: &reqwest::Client,
    token_url: &str,
    form: &[(&str, &str)],
) -> Answer {
    let res = client.post(token_url).form(form).send().await.unwrap();
    Answer {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        text: res.text().await.unwrap(),
    }
}
