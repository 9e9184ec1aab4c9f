//! Registrar API tokens: minted once, stored as a SHA-256 hash of their
//! secret, checked in constant time.
//!
//! A token reads `gb_<token_id>_<secret>`. The id finds the row; the secret
//! is 32 random bytes, so a plain hash is as strong as a slow one would be.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use gradebook_projections::db::{ts, Db};
use gradebook_projections::with_db;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ApiRole {
    /// Reads grades, provenance, reconciliation and the audit log.
    Auditor,
    /// Reads, manages tools, locks, unlocks and backfills.
    Registrar,
    /// Manages courses, enrollments, line items, links and launches; reads.
    Sis,
}

impl ApiRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiRole::Auditor => "auditor",
            ApiRole::Registrar => "registrar",
            ApiRole::Sis => "sis",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auditor" => Some(ApiRole::Auditor),
            "registrar" => Some(ApiRole::Registrar),
            "sis" => Some(ApiRole::Sis),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub token_id: String,
    pub name: Option<String>,
    pub role: ApiRole,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// How every secret the platform hands out (API tokens, LTI access and
/// registration tokens, page sessions) is stored: its SHA-256 in lowercase
/// hex. The secrets are random, so a plain hash is as strong as a slow one.
pub fn sha256_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A random secret of `[A-Za-z0-9_-]` (32 bytes, base64url without padding).
pub fn secret() -> String {
    URL_SAFE_NO_PAD.encode(random(32))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf
}

/// Creates a token and returns it with its full secret; the secret is not
/// kept and cannot be shown again.
pub async fn create(
    db: &Db,
    role: ApiRole,
    name: Option<String>,
) -> Result<(TokenInfo, String), sqlx::Error> {
    let token_id = hex(&random(6));
    let secret = secret();
    let created_at = ts(Utc::now());
    with_db!(db, pool => {
        sqlx::query("INSERT INTO api_tokens (token_id, name, role, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&token_id)
            .bind(&name)
            .bind(role.as_str())
            .bind(sha256_hex(&secret))
            .bind(&created_at)
            .execute(pool)
            .await?;
    });
    let token = format!("gb_{token_id}_{secret}");
    Ok((
        TokenInfo {
            token_id,
            name,
            role,
            created_at,
            revoked_at: None,
        },
        token,
    ))
}

pub async fn list(db: &Db) -> Result<Vec<TokenInfo>, sqlx::Error> {
    with_db!(db, pool => {
        let rows = sqlx::query("SELECT token_id, name, role, created_at, revoked_at FROM api_tokens ORDER BY created_at, token_id")
            .fetch_all(pool)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(TokenInfo {
                    token_id: r.get("token_id"),
                    name: r.get("name"),
                    role: ApiRole::parse(&r.get::<String, _>("role"))?,
                    created_at: r.get("created_at"),
                    revoked_at: r.get("revoked_at"),
                })
            })
            .collect())
    })
}

/// An event's actor in words for a registrar: an API token by the name it
/// was given at `token create` (else its role and id), anything else as
/// recorded.
pub async fn actor_in_words(db: &Db, actor: &str) -> Result<String, sqlx::Error> {
    let Some(token_id) = actor.strip_prefix("token:") else {
        return Ok(actor.to_string());
    };
    let found = list(db).await?.into_iter().find(|t| t.token_id == token_id);
    Ok(match found {
        Some(TokenInfo {
            name: Some(name), ..
        }) => name,
        Some(t) => format!("{} token {token_id}", t.role.as_str()),
        None => actor.to_string(),
    })
}

/// Revokes a token at once; returns false if there was no such live token.
pub async fn revoke(db: &Db, token_id: &str) -> Result<bool, sqlx::Error> {
    with_db!(db, pool => {
        let n = sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE token_id = $1 AND revoked_at IS NULL")
            .bind(token_id)
            .bind(ts(Utc::now()))
            .execute(pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    })
}

/// The live token a bearer string names, if its secret matches.
pub async fn verify(db: &Db, bearer: &str) -> Result<Option<TokenInfo>, sqlx::Error> {
    let Some((token_id, secret)) = bearer.strip_prefix("gb_").and_then(|s| s.split_once('_'))
    else {
        return Ok(None);
    };
    if token_id.len() > 64 || secret.len() > 128 {
        return Ok(None);
    }
    let row = with_db!(db, pool => {
        sqlx::query("SELECT token_id, name, role, secret_hash, created_at, revoked_at FROM api_tokens WHERE token_id = $1")
            .bind(token_id)
            .fetch_optional(pool)
            .await?
            .map(|r| {
                (
                    r.get::<String, _>("secret_hash"),
                    r.get::<Option<String>, _>("revoked_at"),
                    TokenInfo {
                        token_id: r.get("token_id"),
                        name: r.get("name"),
                        role: ApiRole::parse(&r.get::<String, _>("role")).unwrap_or(ApiRole::Auditor),
                        created_at: r.get("created_at"),
                        revoked_at: None,
                    },
                )
            })
    });
    let Some((stored, revoked_at, info)) = row else {
        return Ok(None);
    };
    let matches: bool = sha256_hex(secret)
        .as_bytes()
        .ct_eq(stored.as_bytes())
        .into();
    Ok((matches && revoked_at.is_none()).then_some(info))
}
