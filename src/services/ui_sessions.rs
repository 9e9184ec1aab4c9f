//! The registrar pages' sessions as the database keeps them: the hash of
//! the session id, the API token it stands for, its expiry and its CSRF
//! token. The cookie that carries the id is the pages' own business.

use chrono::{Duration, Utc};
use gradebook_projections::db::{ts, Db};
use gradebook_projections::with_db;
use sqlx::Row;

use super::api_tokens::{self, secret, sha256_hex, ApiRole};

/// A live session: whose token it stands for and its CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_id: String,
    pub role: ApiRole,
    pub token_name: Option<String>,
    pub csrf: String,
}

/// Checks an API token and opens a session for it lasting `ttl`; returns
/// the session id. `Ok(None)` when the token is unknown or revoked.
pub async fn open(db: &Db, api_token: &str, ttl: Duration) -> Result<Option<String>, sqlx::Error> {
    let Some(token) = api_tokens::verify(db, api_token.trim()).await? else {
        return Ok(None);
    };
    let id = secret();
    let now = Utc::now();
    with_db!(db, pool => {
        // Expired sessions are dropped here, where they are cheap to find.
        sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
            .bind(ts(now))
            .execute(pool)
            .await?;
        sqlx::query("INSERT INTO ui_sessions (session_hash, token_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(sha256_hex(&id))
            .bind(&token.token_id)
            .bind(secret())
            .bind(ts(now))
            .bind(ts(now + ttl))
            .execute(pool)
            .await?;
    });
    Ok(Some(id))
}

/// Ends a session.
pub async fn close(db: &Db, session_id: &str) -> Result<(), sqlx::Error> {
    with_db!(db, pool => {
        sqlx::query("DELETE FROM ui_sessions WHERE session_hash = $1")
            .bind(sha256_hex(session_id))
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// The live session an id names: unexpired, and its token not revoked.
pub async fn lookup(db: &Db, session_id: &str) -> Result<Option<Session>, sqlx::Error> {
    if session_id.is_empty() || session_id.len() > 128 {
        return Ok(None);
    }
    with_db!(db, pool => {
        let row = sqlx::query(
            "SELECT s.token_id, s.csrf_token, t.role, t.name FROM ui_sessions s
               JOIN api_tokens t ON t.token_id = s.token_id
              WHERE s.session_hash = $1 AND s.expires_at > $2 AND t.revoked_at IS NULL",
        )
        .bind(sha256_hex(session_id))
        .bind(ts(Utc::now()))
        .fetch_optional(pool)
        .await?;
        Ok(row.and_then(|r| {
            Some(Session {
                token_id: r.get("token_id"),
                role: ApiRole::parse(&r.get::<String, _>("role"))?,
                token_name: r.get("name"),
                csrf: r.get("csrf_token"),
            })
        }))
    })
}
