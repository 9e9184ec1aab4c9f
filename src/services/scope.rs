//! AGS and NRPS scopes, as tools request them.

pub const LINEITEM: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem";
pub const LINEITEM_READONLY: &str =
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly";
pub const RESULT_READONLY: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly";
pub const SCORE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";
pub const NRPS: &str = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly";
