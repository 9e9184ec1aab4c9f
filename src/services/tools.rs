//! Registered tools and the rights a registrar gave them. A tool has one
//! deployment; its grading and roster settings decide which OAuth scopes it
//! gets and which claims its launches carry, and its course set which
//! courses it reaches, all checked on every request so a change takes
//! effect at once, even for tokens already issued.

use chrono::Utc;
use gradebook_projections::db::{ts, Db};
use gradebook_projections::with_db;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use sqlx::Row;

use super::crypto::ToolKeySource;
use super::scope;

/// "Allow grading and assignment management" / "Allow grade sync only" / off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grading {
    Full,
    SyncOnly,
    Off,
}

impl Grading {
    pub fn as_str(self) -> &'static str {
        match self {
            Grading::Full => "full",
            Grading::SyncOnly => "sync_only",
            Grading::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Roster {
    pub access: bool,
    #[serde(default)]
    pub hide_names: bool,
    #[serde(default)]
    pub hide_emails: bool,
}

/// The courses a tool reaches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Courses {
    /// The courses that deploy it themselves (`tool_ids` of a course):
    /// what a tool reaches unless a registrar says otherwise. Shown as `null`.
    #[default]
    Deployed,
    /// Every course, those opened later included: the institution-wide
    /// registration. Shown as `"all"`.
    All,
    /// Exactly these courses, whatever the courses deployed: a registrar
    /// narrowing a tool expects nothing else to reach it.
    Only(Vec<String>),
}

impl Courses {
    /// Whether a tool with this course set reaches the course;
    /// `deployed_by_course` is whether the course deploys the tool itself.
    pub fn reaches(&self, course_id: &str, deployed_by_course: bool) -> bool {
        match self {
            Courses::Deployed => deployed_by_course,
            Courses::All => true,
            Courses::Only(ids) => ids.iter().any(|c| c == course_id),
        }
    }

    /// The stored form: NULL, `all`, or a JSON array.
    pub(crate) fn to_column(&self) -> Option<String> {
        match self {
            Courses::Deployed => None,
            Courses::All => Some("all".into()),
            Courses::Only(ids) => Some(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())),
        }
    }

    /// Reads the stored form; something unreadable reaches no course
    /// rather than more than a registrar chose.
    pub(crate) fn from_column(s: Option<String>) -> Self {
        match s.as_deref() {
            None => Courses::Deployed,
            Some("all") => Courses::All,
            Some(list) => Courses::Only(serde_json::from_str(list).unwrap_or_default()),
        }
    }

    /// The JSON form: `null`, `"all"` or the list.
    pub fn to_json(&self) -> Value {
        match self {
            Courses::Deployed => Value::Null,
            Courses::All => Value::String("all".into()),
            Courses::Only(ids) => Value::from(ids.clone()),
        }
    }

    /// The shape of a `courses` value in a request: `null`, `"all"` or an
    /// array of strings (whether the courses exist is checked apart).
    pub fn parse(v: &Value) -> Result<Self, String> {
        const SHAPE: &str = "courses must be \"all\", a list of course ids, or null (only the courses that deploy the tool)";
        match v {
            Value::Null => Ok(Courses::Deployed),
            Value::String(s) if s == "all" => Ok(Courses::All),
            Value::Array(items) => {
                let mut ids: Vec<String> = Vec::with_capacity(items.len());
                for item in items {
                    let id = item.as_str().ok_or_else(|| SHAPE.to_string())?;
                    let id = gradebook_domain::CourseId::parse(id)
                        .map_err(|e| format!("courses: {e}"))?
                        .to_string();
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                ids.sort();
                Ok(Courses::Only(ids))
            }
            _ => Err(SHAPE.to_string()),
        }
    }
}

impl Serialize for Courses {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tool {
    pub tool_id: String,
    pub name: String,
    pub client_id: String,
    pub deployment_id: String,
    /// The tool's own issuer (its `iss` in deep-linking responses).
    pub issuer: Option<String>,
    pub launch_url: Option<String>,
    pub login_url: Option<String>,
    pub redirect_uris: Vec<String>,
    pub jwks_url: Option<String>,
    pub public_jwk: Option<Value>,
    pub deep_linking_url: Option<String>,
    pub grading: Grading,
    pub roster: Roster,
    pub courses: Courses,
    /// `manual` or `dynamic`.
    pub registered_via: String,
    /// What the tool sent at dynamic registration, kept as sent.
    pub registration: Option<Value>,
    pub created_at: String,
    pub updated_at: String,
    pub revoked_at: Option<String>,
}

impl Tool {
    /// Where the tool's signing key comes from.
    pub fn key_source(&self) -> Option<ToolKeySource> {
        match (&self.public_jwk, &self.jwks_url) {
            (Some(jwk), _) => Some(ToolKeySource::Jwk(jwk.clone())),
            (None, Some(url)) => Some(ToolKeySource::JwksUrl(url.clone())),
            (None, None) => None,
        }
    }

    /// The scopes the registration allows now.
    pub fn allowed_scopes(&self) -> Vec<&'static str> {
        let mut s = match self.grading {
            Grading::Full => vec![
                scope::LINEITEM,
                scope::LINEITEM_READONLY,
                scope::RESULT_READONLY,
                scope::SCORE,
            ],
            Grading::SyncOnly => vec![
                scope::LINEITEM_READONLY,
                scope::RESULT_READONLY,
                scope::SCORE,
            ],
            Grading::Off => vec![],
        };
        if self.roster.access {
            s.push(scope::NRPS);
        }
        s
    }

    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none()
    }

    /// Whether the tool reaches the course now; `deployed_by_course` is
    /// whether the course deploys it itself.
    pub fn reaches(&self, course_id: &str, deployed_by_course: bool) -> bool {
        self.courses.reaches(course_id, deployed_by_course)
    }

    /// The hosts the registration names as the tool's own, lower-cased:
    /// those of its URLs and issuer, and the `domain` a tool gave at
    /// dynamic registration. A link URL a tool or the SIS sets must be on
    /// one of them, so a link cannot send people elsewhere.
    pub fn registered_hosts(&self) -> Vec<String> {
        let mut urls: Vec<&str> = [
            &self.launch_url,
            &self.deep_linking_url,
            &self.login_url,
            &self.issuer,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
        urls.extend(self.redirect_uris.iter().map(String::as_str));
        let mut hosts: Vec<String> = urls
            .into_iter()
            .filter_map(|u| reqwest::Url::parse(u).ok())
            .filter_map(|u| u.host_str().map(str::to_ascii_lowercase))
            .collect();
        let domain = self
            .registration
            .as_ref()
            .and_then(|r| r.get(TOOL_CONFIG))
            .and_then(|c| c.get("domain"))
            .and_then(Value::as_str);
        // `domain` is a host, possibly with a port, without a scheme.
        if let Some(host) = domain
            .and_then(|d| reqwest::Url::parse(&format!("https://{}", d.trim())).ok())
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        {
            hosts.push(host);
        }
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// Checks a link's own launch URL: an absolute http(s) URL of at most
    /// 2048 bytes on one of the tool's registered hosts; else says why.
    pub fn check_link_url(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && url.len() <= 2048);
        let Some(host) = parsed.as_ref().and_then(|u| u.host_str()) else {
            return Err("url must be an absolute http(s) URL of at most 2048 characters".into());
        };
        let hosts = self.registered_hosts();
        if hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            Ok(())
        } else if hosts.is_empty() {
            Err("url cannot be checked: the tool's registration names no host of its own".into())
        } else {
            Err(format!(
                "url {url} is not on the tool's registered host{} ({})",
                if hosts.len() == 1 { "" } else { "s" },
                hosts.join(", ")
            ))
        }
    }
}

/// The tool configuration claim of a dynamic registration.
pub const TOOL_CONFIG: &str = "https://purl.imsglobal.org/spec/lti-tool-configuration";

const COLUMNS: &str = "tool_id, name, client_id, deployment_id, issuer, launch_url, login_url, redirect_uris, jwks_url, public_jwk, deep_linking_url, grading, roster_access, hide_names, hide_emails, courses, registered_via, registration, created_at, updated_at, revoked_at";

fn from_row<R: Row>(r: &R) -> Tool
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    fn json<T: serde::de::DeserializeOwned>(s: Option<String>) -> Option<T> {
        s.and_then(|s| serde_json::from_str(&s).ok())
    }
    Tool {
        tool_id: r.get("tool_id"),
        name: r.get("name"),
        client_id: r.get("client_id"),
        deployment_id: r.get("deployment_id"),
        issuer: r.get("issuer"),
        launch_url: r.get("launch_url"),
        login_url: r.get("login_url"),
        redirect_uris: json(Some(r.get("redirect_uris"))).unwrap_or_default(),
        jwks_url: r.get("jwks_url"),
        public_jwk: json(r.get("public_jwk")),
        deep_linking_url: r.get("deep_linking_url"),
        grading: Grading::parse(&r.get::<String, _>("grading")).unwrap_or(Grading::Off),
        roster: Roster {
            access: r.get("roster_access"),
            hide_names: r.get("hide_names"),
            hide_emails: r.get("hide_emails"),
        },
        courses: Courses::from_column(r.get("courses")),
        registered_via: r.get("registered_via"),
        registration: json(r.get("registration")),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        revoked_at: r.get("revoked_at"),
    }
}

pub async fn insert(db: &Db, t: &Tool) -> Result<(), sqlx::Error> {
    let sql = format!("INSERT INTO tools ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)");
    with_db!(db, pool => {
        sqlx::query(&sql)
            .bind(&t.tool_id)
            .bind(&t.name)
            .bind(&t.client_id)
            .bind(&t.deployment_id)
            .bind(&t.issuer)
            .bind(&t.launch_url)
            .bind(&t.login_url)
            .bind(serde_json::to_string(&t.redirect_uris).unwrap_or_else(|_| "[]".into()))
            .bind(&t.jwks_url)
            .bind(t.public_jwk.as_ref().map(|j| j.to_string()))
            .bind(&t.deep_linking_url)
            .bind(t.grading.as_str())
            .bind(t.roster.access)
            .bind(t.roster.hide_names)
            .bind(t.roster.hide_emails)
            .bind(t.courses.to_column())
            .bind(&t.registered_via)
            .bind(t.registration.as_ref().map(|j| j.to_string()))
            .bind(&t.created_at)
            .bind(&t.updated_at)
            .bind(&t.revoked_at)
            .execute(pool)
            .await?;
    });
    Ok(())
}

pub async fn get(db: &Db, tool_id: &str) -> Result<Option<Tool>, sqlx::Error> {
    // No id holds a NUL, and PostgreSQL refuses one in a parameter.
    if tool_id.contains('\0') {
        return Ok(None);
    }
    let sql = format!("SELECT {COLUMNS} FROM tools WHERE tool_id = $1");
    with_db!(db, pool => Ok(sqlx::query(&sql).bind(tool_id).fetch_optional(pool).await?.as_ref().map(from_row)))
}

/// The tool holding a live access token, with the token's scopes: one
/// round trip for every AGS and NRPS request.
pub async fn by_access_token(
    db: &Db,
    token_hash: &str,
    now: &str,
) -> Result<Option<(Tool, String)>, sqlx::Error> {
    let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("t.{c}")).collect();
    let sql = format!(
        "SELECT {}, a.scopes FROM lti_access_tokens a JOIN tools t ON t.tool_id = a.tool_id
          WHERE a.token_hash = $1 AND a.expires_at > $2",
        columns.join(", ")
    );
    with_db!(db, pool => {
        let row = sqlx::query(&sql).bind(token_hash).bind(now).fetch_optional(pool).await?;
        Ok(row.map(|r| (from_row(&r), r.get("scopes"))))
    })
}

pub async fn by_client_id(db: &Db, client_id: &str) -> Result<Option<Tool>, sqlx::Error> {
    if client_id.contains('\0') {
        return Ok(None);
    }
    let sql = format!("SELECT {COLUMNS} FROM tools WHERE client_id = $1");
    with_db!(db, pool => Ok(sqlx::query(&sql).bind(client_id).fetch_optional(pool).await?.as_ref().map(from_row)))
}

pub async fn list(db: &Db) -> Result<Vec<Tool>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM tools ORDER BY created_at, tool_id");
    with_db!(db, pool => Ok(sqlx::query(&sql).fetch_all(pool).await?.iter().map(from_row).collect()))
}

/// Changes a tool's rights and the courses it reaches, in one statement;
/// effective for the next request it makes, with tokens and launches
/// already issued.
pub async fn update_settings(
    db: &Db,
    tool_id: &str,
    grading: Grading,
    roster: Roster,
    courses: &Courses,
) -> Result<bool, sqlx::Error> {
    with_db!(db, pool => {
        let n = sqlx::query("UPDATE tools SET grading = $2, roster_access = $3, hide_names = $4, hide_emails = $5, courses = $6, updated_at = $7 WHERE tool_id = $1 AND revoked_at IS NULL")
            .bind(tool_id)
            .bind(grading.as_str())
            .bind(roster.access)
            .bind(roster.hide_names)
            .bind(roster.hide_emails)
            .bind(courses.to_column())
            .bind(ts(Utc::now()))
            .execute(pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    })
}

/// Revokes a tool: its tokens stop working at once.
pub async fn revoke(db: &Db, tool_id: &str) -> Result<bool, sqlx::Error> {
    with_db!(db, pool => {
        let now = ts(Utc::now());
        let n = sqlx::query("UPDATE tools SET revoked_at = $2, updated_at = $2 WHERE tool_id = $1 AND revoked_at IS NULL")
            .bind(tool_id)
            .bind(&now)
            .execute(pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    })
}

/// A new tool record with fresh ids and the given settings.
pub fn new_tool(name: String, grading: Grading, roster: Roster, registered_via: &str) -> Tool {
    let now = ts(Utc::now());
    let id = || uuid::Uuid::new_v4().simple().to_string();
    Tool {
        tool_id: id(),
        name,
        client_id: id(),
        deployment_id: id(),
        issuer: None,
        launch_url: None,
        login_url: None,
        redirect_uris: vec![],
        jwks_url: None,
        public_jwk: None,
        deep_linking_url: None,
        grading,
        roster,
        courses: Courses::Deployed,
        registered_via: registered_via.to_string(),
        registration: None,
        created_at: now.clone(),
        updated_at: now,
        revoked_at: None,
    }
}
