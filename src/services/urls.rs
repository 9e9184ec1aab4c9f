//! The platform's URLs as tools and registrars are given them: the LTI
//! endpoints, all under the one public base.

use crate::config::Settings;

/// The platform's URLs, all under the one public base (the issuer).
pub struct Urls {
    pub issuer: String,
}

impl Urls {
    pub fn of(settings: &Settings) -> Self {
        Self {
            issuer: settings.public_url(),
        }
    }
    pub fn authorization(&self) -> String {
        format!("{}/lti/authorize", self.issuer)
    }
    pub fn token(&self) -> String {
        format!("{}/lti/token", self.issuer)
    }
    pub fn jwks(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer)
    }
    pub fn registration(&self) -> String {
        format!("{}/lti/register", self.issuer)
    }
    pub fn openid_configuration(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }
    pub fn course(&self, course_id: &str) -> String {
        format!("{}/lti/courses/{course_id}", self.issuer)
    }
    pub fn line_items(&self, course_id: &str) -> String {
        format!("{}/lineitems", self.course(course_id))
    }
    pub fn line_item(&self, course_id: &str, line_item_id: &str) -> String {
        format!("{}/lineitems/{line_item_id}", self.course(course_id))
    }
    pub fn memberships(&self, course_id: &str) -> String {
        format!("{}/memberships", self.course(course_id))
    }
}
