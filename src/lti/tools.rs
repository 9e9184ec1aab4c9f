//! Registered tools and the rights a registrar gave them. A tool has one
//! deployment; its grading and roster settings decide which OAuth scopes it
//! gets and which claims its launches carry, checked on every request so a
//! change takes effect at once, even for tokens already issued.

use chrono::Utc;
use gradebook_projections::db::{ts, Db};
use gradebook_projections::with_db;
use serde::{Deserialize, Serialize};
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
}

const COLUMNS: &str = "tool_id, name, client_id, deployment_id, issuer, launch_url, login_url, redirect_uris, jwks_url, public_jwk, deep_linking_url, grading, roster_access, hide_names, hide_emails, registered_via, registration, created_at, updated_at, revoked_at";

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
        registered_via: r.get("registered_via"),
        registration: json(r.get("registration")),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        revoked_at: r.get("revoked_at"),
    }
}

pub async fn insert(db: &Db, t: &Tool) -> Result<(), sqlx::Error> {
    let sql = format!("INSERT INTO tools ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)");
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

/// Changes a tool's rights; effective for the next request it makes.
pub async fn update_settings(
    db: &Db,
    tool_id: &str,
    grading: Grading,
    roster: Roster,
) -> Result<bool, sqlx::Error> {
    with_db!(db, pool => {
        let n = sqlx::query("UPDATE tools SET grading = $2, roster_access = $3, hide_names = $4, hide_emails = $5, updated_at = $6 WHERE tool_id = $1 AND revoked_at IS NULL")
            .bind(tool_id)
            .bind(grading.as_str())
            .bind(roster.access)
            .bind(roster.hide_names)
            .bind(roster.hide_emails)
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
        registered_via: registered_via.to_string(),
        registration: None,
        created_at: now.clone(),
        updated_at: now,
        revoked_at: None,
    }
}
