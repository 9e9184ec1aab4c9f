//! The id_token a launch carries: every claim LTI 1.3 Core, AGS, NRPS and
//! Deep Linking ask for, built from what the engine knows. Pure: the caller
//! supplies the facts and the time, and signs the result.

use gradebook_domain::course::ResourceLink;
use gradebook_domain::enrollment::Person;
use serde_json::{json, Map, Value};

use crate::services::tools::{Grading, Tool};

pub const LTI: &str = "https://purl.imsglobal.org/spec/lti/claim/";
pub const MESSAGE_TYPE: &str = "https://purl.imsglobal.org/spec/lti/claim/message_type";
pub const VERSION: &str = "https://purl.imsglobal.org/spec/lti/claim/version";
pub const DEPLOYMENT_ID: &str = "https://purl.imsglobal.org/spec/lti/claim/deployment_id";
pub const AGS_ENDPOINT: &str = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint";
pub const NRPS: &str = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice";
pub const DL_SETTINGS: &str = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings";
pub const DL_CONTENT_ITEMS: &str = "https://purl.imsglobal.org/spec/lti-dl/claim/content_items";
pub const DL_DATA: &str = "https://purl.imsglobal.org/spec/lti-dl/claim/data";
pub const COURSE_OFFERING: &str = "http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering";

/// How long a tool may take to accept an id_token.
pub const ID_TOKEN_LIFETIME_SECS: i64 = 300;

/// What the launch is for.
#[derive(Debug, Clone)]
pub enum Message<'a> {
    ResourceLink(&'a ResourceLink),
    /// `data` is the opaque value the response must echo.
    DeepLinking {
        data: &'a str,
    },
}

/// Everything an id_token is built from.
#[derive(Debug, Clone)]
pub struct LaunchFacts<'a> {
    /// The platform issuer (`Settings::public_url`), also the URL base.
    pub issuer: &'a str,
    pub tool: &'a Tool,
    pub course_id: &'a str,
    pub course_title: &'a str,
    pub user_id: &'a str,
    pub person: &'a Person,
    pub message: Message<'a>,
    pub target_link_uri: &'a str,
    pub nonce: &'a str,
    pub now: i64,
}

/// The AGS scopes the tool's registration grants, in a stable order.
pub fn ags_scopes(tool: &Tool) -> Vec<&'static str> {
    tool.allowed_scopes()
        .into_iter()
        .filter(|s| s.starts_with("https://purl.imsglobal.org/spec/lti-ags/"))
        .collect()
}

pub fn lineitems_url(issuer: &str, course_id: &str) -> String {
    format!("{issuer}/lti/courses/{course_id}/lineitems")
}

pub fn memberships_url(issuer: &str, course_id: &str) -> String {
    format!("{issuer}/lti/courses/{course_id}/memberships")
}

pub fn deep_link_return_url(issuer: &str) -> String {
    format!("{issuer}/lti/deep-linking/return")
}

/// The id_token claims for one launch.
pub fn id_token(f: &LaunchFacts<'_>) -> Value {
    let mut c = Map::new();
    let mut put = |k: &str, v: Value| {
        c.insert(k.to_string(), v);
    };
    put("iss", json!(f.issuer));
    put("aud", json!(f.tool.client_id));
    put("azp", json!(f.tool.client_id));
    put("sub", json!(f.user_id));
    put("iat", json!(f.now));
    put("exp", json!(f.now + ID_TOKEN_LIFETIME_SECS));
    put("nonce", json!(f.nonce));
    put(VERSION, json!("1.3.0"));
    put(DEPLOYMENT_ID, json!(f.tool.deployment_id));
    put(&format!("{LTI}target_link_uri"), json!(f.target_link_uri));
    put(&format!("{LTI}roles"), json!(f.person.role.lti_uris()));
    put(
        &format!("{LTI}context"),
        json!({
            "id": f.course_id,
            "label": f.course_id,
            "title": f.course_title,
            "type": [COURSE_OFFERING],
        }),
    );
    put(
        &format!("{LTI}tool_platform"),
        json!({
            "guid": f.issuer,
            "name": "gradebook",
            "product_family_code": "gradebook",
            "version": env!("CARGO_PKG_VERSION"),
        }),
    );
    put(
        &format!("{LTI}launch_presentation"),
        json!({"document_target": "window", "locale": "en"}),
    );
    // Same privacy rules as NRPS, so a tool's profile does not flip between
    // a launch and a roster sync.
    if !f.tool.roster.hide_names {
        if let Some(name) = &f.person.name {
            put("name", json!(name));
            let (given, family) = split_name(name);
            put("given_name", json!(given));
            if let Some(family) = family {
                put("family_name", json!(family));
            }
        }
    }
    if !f.tool.roster.hide_emails {
        if let Some(email) = &f.person.email {
            put("email", json!(email));
        }
    }

    let mut ags_lineitem = None;
    match &f.message {
        Message::ResourceLink(link) => {
            put(MESSAGE_TYPE, json!("LtiResourceLinkRequest"));
            put(
                &format!("{LTI}resource_link"),
                json!({"id": link.resource_link_id.as_str(), "title": link.title}),
            );
            // Moodle refuses a launch of a deep-linked link without its custom.id.
            if !link.custom.is_empty() {
                put(&format!("{LTI}custom"), Value::Object(link.custom.clone()));
            }
            ags_lineitem = link.line_item_id.as_ref().map(|id| id.as_str().to_string());
        }
        Message::DeepLinking { data } => {
            put(MESSAGE_TYPE, json!("LtiDeepLinkingRequest"));
            put(
                DL_SETTINGS,
                json!({
                    "deep_link_return_url": deep_link_return_url(f.issuer),
                    "accept_types": ["ltiResourceLink"],
                    "accept_presentation_document_targets": ["iframe", "window"],
                    "accept_multiple": true,
                    "auto_create": true,
                    "data": data,
                }),
            );
        }
    }

    if f.tool.grading != Grading::Off {
        let lineitems = lineitems_url(f.issuer, f.course_id);
        let mut ags = json!({
            "scope": ags_scopes(f.tool),
            "lineitems": lineitems,
        });
        // Without the singular URL Moodle makes a second column of its own.
        if let Some(id) = ags_lineitem {
            ags["lineitem"] = json!(format!("{lineitems}/{id}"));
        }
        put(AGS_ENDPOINT, ags);
    }
    if f.tool.roster.access {
        put(
            NRPS,
            json!({
                "context_memberships_url": memberships_url(f.issuer, f.course_id),
                "service_versions": ["2.0"],
            }),
        );
    }
    Value::Object(c)
}

/// "Ada King Lovelace" -> ("Ada", Some("King Lovelace")): the SIS keeps one
/// name, tools want given and family names.
fn split_name(name: &str) -> (&str, Option<&str>) {
    match name.trim().split_once(char::is_whitespace) {
        Some((given, family)) => (given, Some(family.trim())),
        None => (name.trim(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::scope;

    #[test]
    fn a_single_name_is_a_given_name_only() {
        assert_eq!(split_name("Plato"), ("Plato", None));
        assert_eq!(
            split_name("Ada King Lovelace"),
            ("Ada", Some("King Lovelace"))
        );
    }

    #[test]
    fn the_nrps_scope_is_not_an_ags_scope() {
        let mut tool = crate::services::tools::new_tool(
            "t".into(),
            Grading::SyncOnly,
            crate::services::tools::Roster {
                access: true,
                hide_names: false,
                hide_emails: false,
            },
            "manual",
        );
        assert_eq!(
            ags_scopes(&tool),
            vec![
                scope::LINEITEM_READONLY,
                scope::RESULT_READONLY,
                scope::SCORE
            ]
        );
        tool.grading = Grading::Off;
        assert!(ags_scopes(&tool).is_empty());
    }
}
