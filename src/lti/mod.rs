//! The LTI 1.3 platform: signing keys, tool registrations and, built on
//! them, launches, deep linking, the token endpoint, AGS and NRPS.

pub mod crypto;
pub mod keys;
pub mod launch;
pub mod services;
pub mod tools;

/// AGS and NRPS scopes, as tools request them.
pub mod scope {
    pub const LINEITEM: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem";
    pub const LINEITEM_READONLY: &str =
        "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly";
    pub const RESULT_READONLY: &str =
        "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly";
    pub const SCORE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";
    pub const NRPS: &str =
        "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly";
}
