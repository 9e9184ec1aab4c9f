//! The platform's signing keys, kept in the database so every node signs
//! with the same key and a restart keeps it. The newest live key signs;
//! a rotated-out key stays in the JWKS for [`KEY_OVERLAP`] so tools that
//! cached it keep verifying launches signed just before the rotation.

use chrono::{DateTime, Duration, Utc};
use gradebook_projections::db::{ts, Db};
use gradebook_projections::with_db;
use serde_json::Value;
use sqlx::Row;

use super::crypto::{self, PlatformKey};

/// How long a rotated-out key is still published.
pub const KEY_OVERLAP: Duration = Duration::days(7);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
}

async fn insert(db: &Db, key: &PlatformKey) -> Result<(), KeyError> {
    let jwk = key.public_jwk.to_string();
    with_db!(db, pool => {
        sqlx::query("INSERT INTO platform_keys (kid, private_pem, public_jwk, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&key.kid)
            .bind(&key.private_pkcs8_pem)
            .bind(&jwk)
            .bind(ts(Utc::now()))
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// The key that signs now: the newest live one, made on first use.
pub async fn signing_key(db: &Db) -> Result<PlatformKey, KeyError> {
    let pem: Option<String> = with_db!(db, pool => {
        sqlx::query_scalar("SELECT private_pem FROM platform_keys WHERE retired_at IS NULL ORDER BY created_at DESC, kid LIMIT 1")
            .fetch_optional(pool)
            .await?
    });
    match pem {
        Some(pem) => Ok(PlatformKey::from_private_pem(&pem)?),
        None => {
            let key = PlatformKey::generate()?;
            insert(db, &key).await?;
            tracing::info!(kid = %key.kid, "generated the platform signing key");
            Ok(key)
        }
    }
}

/// Makes a new signing key and retires the others (they stay published for
/// the overlap). Returns the new key.
pub async fn rotate(db: &Db) -> Result<PlatformKey, KeyError> {
    let key = PlatformKey::generate()?;
    let now = ts(Utc::now());
    with_db!(db, pool => {
        sqlx::query("UPDATE platform_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(&now)
            .execute(pool)
            .await?;
    });
    insert(db, &key).await?;
    Ok(key)
}

/// The public JWKS: live keys and keys retired less than the overlap ago.
pub async fn jwks(db: &Db, now: DateTime<Utc>) -> Result<Value, KeyError> {
    let cutoff = ts(now - KEY_OVERLAP);
    let rows: Vec<String> = with_db!(db, pool => {
        sqlx::query("SELECT public_jwk FROM platform_keys WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC")
            .bind(&cutoff)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect()
    });
    let keys: Vec<Value> = rows
        .iter()
        .filter_map(|s| serde_json::from_str(s).ok())
        .collect();
    Ok(crypto::jwks(&keys))
}
