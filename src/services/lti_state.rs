//! LTI state kept in the database between requests: the message hints
//! handed to the SIS, the deep-linking requests waiting for the tool's
//! answer, the nonces of deep-linking responses already taken, the
//! single-use dynamic-registration tokens, the client assertions' used
//! `jti`s and the access tokens issued to tools. Each hint, request and
//! registration token is used once: the update that marks it used is also
//! the check, so two racing requests cannot both win.

use chrono::{DateTime, Duration, Utc};
use gradebook_projections::db::{ts, Db};
use gradebook_projections::with_db;
use rand::RngCore;
use sqlx::Row;

use super::api_tokens::sha256_hex;
use super::tools::{self, Courses, Tool};

/// How long a login initiation URL can be followed.
pub const HINT_LIFETIME: Duration = Duration::minutes(5);
/// How long an instructor has to pick content in the tool.
pub const DEEP_LINK_LIFETIME: Duration = Duration::hours(1);
/// Expired hints and requests are deleted this long after they expire
/// (kept a while so a late request is told "expired", not "unknown").
pub const SWEEP_AFTER: Duration = Duration::days(1);

/// A fresh opaque value: 32 random bytes in lowercase hex (survives tools
/// that lower-case or re-encode parameters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a message hint stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchHint {
    pub hint: String,
    pub login_hint: String,
    pub tool_id: String,
    pub course_id: String,
    pub user_id: String,
    /// `resource_link` or `deep_linking`.
    pub kind: String,
    pub resource_link_id: Option<String>,
    pub expires_at: String,
    pub used_at: Option<String>,
}

pub async fn insert_hint(db: &Db, h: &LaunchHint, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    with_db!(db, pool => {
        // Old hints are worthless; sweeping here keeps the table small
        // without a background job.
        sqlx::query("DELETE FROM lti_launch_hints WHERE expires_at < $1")
            .bind(ts(now - SWEEP_AFTER))
            .execute(pool)
            .await?;
        sqlx::query("INSERT INTO lti_launch_hints (hint, login_hint, tool_id, course_id, user_id, kind, resource_link_id, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)")
            .bind(&h.hint)
            .bind(&h.login_hint)
            .bind(&h.tool_id)
            .bind(&h.course_id)
            .bind(&h.user_id)
            .bind(&h.kind)
            .bind(&h.resource_link_id)
            .bind(ts(now))
            .bind(&h.expires_at)
            .execute(pool)
            .await?;
    });
    Ok(())
}

pub async fn hint(db: &Db, hint: &str) -> Result<Option<LaunchHint>, sqlx::Error> {
    with_db!(db, pool => {
        let row = sqlx::query("SELECT hint, login_hint, tool_id, course_id, user_id, kind, resource_link_id, expires_at, used_at FROM lti_launch_hints WHERE hint = $1")
            .bind(hint)
            .fetch_optional(pool)
            .await?;
        Ok(row.map(|r| LaunchHint {
            hint: r.get("hint"),
            login_hint: r.get("login_hint"),
            tool_id: r.get("tool_id"),
            course_id: r.get("course_id"),
            user_id: r.get("user_id"),
            kind: r.get("kind"),
            resource_link_id: r.get("resource_link_id"),
            expires_at: r.get("expires_at"),
            used_at: r.get("used_at"),
        }))
    })
}

/// Marks a hint used; false when it was already used or has expired.
pub async fn consume_hint(db: &Db, hint: &str, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let now = ts(now);
    with_db!(db, pool => {
        let n = sqlx::query("UPDATE lti_launch_hints SET used_at = $2 WHERE hint = $1 AND used_at IS NULL AND expires_at > $2")
            .bind(hint)
            .bind(&now)
            .execute(pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    })
}

/// A deep-linking request waiting for the tool's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeepLinkRequest {
    pub data: String,
    pub tool_id: String,
    pub course_id: String,
    pub user_id: String,
    pub nonce: String,
    pub expires_at: String,
    pub used_at: Option<String>,
}

pub async fn insert_deep_link_request(
    db: &Db,
    r: &DeepLinkRequest,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    with_db!(db, pool => {
        sqlx::query("DELETE FROM lti_deep_link_requests WHERE expires_at < $1")
            .bind(ts(now - SWEEP_AFTER))
            .execute(pool)
            .await?;
        sqlx::query("INSERT INTO lti_deep_link_requests (data, tool_id, course_id, user_id, nonce, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)")
            .bind(&r.data)
            .bind(&r.tool_id)
            .bind(&r.course_id)
            .bind(&r.user_id)
            .bind(&r.nonce)
            .bind(ts(now))
            .bind(&r.expires_at)
            .execute(pool)
            .await?;
    });
    Ok(())
}

pub async fn deep_link_request(
    db: &Db,
    data: &str,
) -> Result<Option<DeepLinkRequest>, sqlx::Error> {
    with_db!(db, pool => {
        let row = sqlx::query("SELECT data, tool_id, course_id, user_id, nonce, expires_at, used_at FROM lti_deep_link_requests WHERE data = $1")
            .bind(data)
            .fetch_optional(pool)
            .await?;
        Ok(row.map(|r| DeepLinkRequest {
            data: r.get("data"),
            tool_id: r.get("tool_id"),
            course_id: r.get("course_id"),
            user_id: r.get("user_id"),
            nonce: r.get("nonce"),
            expires_at: r.get("expires_at"),
            used_at: r.get("used_at"),
        }))
    })
}

/// Takes a pending deep-linking request and the response's nonce in one
/// transaction; false when either was taken already (a replay) or the
/// request has expired, and then neither is changed.
pub async fn consume_deep_link(
    db: &Db,
    data: &str,
    tool_id: &str,
    nonce: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let now = ts(now);
    with_db!(db, pool => {
        let mut tx = gradebook_projections::begin_write!(db, pool);
        let taken = sqlx::query("UPDATE lti_deep_link_requests SET used_at = $3 WHERE data = $1 AND tool_id = $2 AND used_at IS NULL AND expires_at > $3")
            .bind(data)
            .bind(tool_id)
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if taken != 1 {
            return Ok(false);
        }
        let fresh = sqlx::query("INSERT INTO lti_deep_link_nonces (tool_id, nonce, used_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(tool_id)
            .bind(nonce)
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if fresh != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    })
}

/// Whether a deep-linking response with this nonce was taken already.
pub async fn nonce_used(db: &Db, tool_id: &str, nonce: &str) -> Result<bool, sqlx::Error> {
    with_db!(db, pool => {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lti_deep_link_nonces WHERE tool_id = $1 AND nonce = $2")
            .bind(tool_id)
            .bind(nonce)
            .fetch_one(pool)
            .await?;
        Ok(n > 0)
    })
}

/// The expiry time text for something made now.
pub fn expiry(now: DateTime<Utc>, lifetime: Duration) -> String {
    ts(now + lifetime)
}

/// Keeps a dynamic-registration token (its hash) until `expires_at`, with
/// the courses the tool it registers will reach.
pub async fn insert_registration_token(
    db: &Db,
    token: &str,
    created_by: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    courses: &Courses,
) -> Result<(), sqlx::Error> {
    with_db!(db, pool => {
        sqlx::query("INSERT INTO lti_registration_tokens (token_hash, created_by, created_at, expires_at, courses) VALUES ($1, $2, $3, $4, $5)")
            .bind(sha256_hex(token))
            .bind(created_by)
            .bind(ts(now))
            .bind(ts(expires_at))
            .bind(courses.to_column())
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// The course set of a live registration token (unused, unexpired),
/// `None` if it is not live; does not use it.
pub async fn registration_token_courses(
    db: &Db,
    hash: &str,
) -> Result<Option<Courses>, sqlx::Error> {
    with_db!(db, pool => {
        let row: Option<(Option<String>,)> = sqlx::query_as("SELECT courses FROM lti_registration_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2")
            .bind(hash)
            .bind(ts(Utc::now()))
            .fetch_optional(pool)
            .await?;
        Ok(row.map(|(c,)| Courses::from_column(c)))
    })
}

/// Uses a registration token up; false if it was used or expired meanwhile.
pub async fn use_registration_token(
    db: &Db,
    hash: &str,
    tool_id: &str,
) -> Result<bool, sqlx::Error> {
    with_db!(db, pool => {
        let now = ts(Utc::now());
        let n = sqlx::query("UPDATE lti_registration_tokens SET used_at = $2, tool_id = $3 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2")
            .bind(hash)
            .bind(&now)
            .bind(tool_id)
            .execute(pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    })
}

/// Records a used jti until `until`; false when it was already there (a
/// replay). Expired entries are swept on the way.
pub async fn remember_jti(
    db: &Db,
    client_id: &str,
    jti: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    with_db!(db, pool => {
        sqlx::query("DELETE FROM lti_used_jtis WHERE expires_at < $1")
            .bind(ts(now))
            .execute(pool)
            .await?;
        let n = sqlx::query("INSERT INTO lti_used_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(client_id)
            .bind(jti)
            .bind(ts(until))
            .execute(pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    })
}

/// Keeps an access token (its hash) for a tool with the scopes granted.
pub async fn insert_access_token(
    db: &Db,
    token: &str,
    tool_id: &str,
    scopes: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    with_db!(db, pool => {
        // Expired tokens are dead weight: sweep them as new ones are made.
        sqlx::query("DELETE FROM lti_access_tokens WHERE expires_at < $1")
            .bind(ts(now))
            .execute(pool)
            .await?;
        sqlx::query("INSERT INTO lti_access_tokens (token_hash, tool_id, scopes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(sha256_hex(token))
            .bind(tool_id)
            .bind(scopes)
            .bind(ts(now))
            .bind(ts(expires_at))
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// A live access token: the tool it belongs to and the scopes granted.
pub struct Granted {
    pub tool: Tool,
    pub scopes: Vec<String>,
}

/// Looks an access token up; `None` when unknown, expired or its tool is revoked.
pub async fn check_access_token(db: &Db, token: &str) -> Result<Option<Granted>, sqlx::Error> {
    let found = tools::by_access_token(db, &sha256_hex(token), &ts(Utc::now())).await?;
    Ok(found
        .filter(|(tool, _)| tool.is_live())
        .map(|(tool, scopes)| Granted {
            tool,
            scopes: scopes.split_whitespace().map(str::to_string).collect(),
        }))
}
