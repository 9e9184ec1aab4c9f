//! Which tables of the store are what, in one place: the event log, the
//! tables kept across a copy (everything the server keeps that is not an
//! event and cannot be rebuilt from the log), and the read tables rebuilt
//! from the log. A table that is none of these stops a copy before it
//! writes anything, so a table added later cannot be left behind unnoticed
//! (a test checks that every table the migrations create is listed here).

use gradebook_projections::projector::READ_TABLES;

use super::conn::Conn;

/// The event log.
pub const EVENT_LOG: &str = "events";

/// Tables copied row for row, in this order (a table before any that
/// refers to it).
pub const KEPT: &[&str] = &[
    // Registrar API tokens (hashes), and the web pages' sessions on them.
    "api_tokens",
    "ui_sessions",
    // The platform's signing keys with their kids: tools hold the public
    // ones.
    "platform_keys",
    // Registered tools: client and deployment ids, keys, rights.
    "tools",
    // Dynamic-registration and service tokens, and the assertion ids and
    // deep-linking nonces already used (without them a captured assertion
    // could be replayed after a move).
    "lti_registration_tokens",
    "lti_access_tokens",
    "lti_used_jtis",
    // Launches and deep-linking requests under way.
    "lti_launch_hints",
    "lti_deep_link_requests",
    "lti_deep_link_nonces",
    // The write side's own state beside the log: aggregate snapshots and
    // the score gates, both as of the same moment as the log copied.
    "snapshots",
    "score_gates",
];

/// The migration bookkeeping; the target's is written by its own
/// migrations.
pub const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Columns of the event log: the ones copied, and the ones each store
/// fills itself (positions, the writing transaction, the ids generated
/// from the aggregate id).
pub const EVENT_COLUMNS_COPIED: &[&str] = &[
    "aggregate_type",
    "aggregate_id",
    "sequence",
    "event_type",
    "event_version",
    "payload",
    "metadata",
    "recorded_at",
];
pub const EVENT_COLUMNS_DERIVED: &[&str] =
    &["position", "tx_id", "course_id", "user_id", "line_item_id"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    EventLog,
    Kept,
    /// A read table (or the projector's checkpoint): emptied and rebuilt
    /// by a replay.
    Rebuilt,
    Migrations,
}

pub fn classify(table: &str) -> Option<Class> {
    if table == EVENT_LOG {
        Some(Class::EventLog)
    } else if KEPT.contains(&table) {
        Some(Class::Kept)
    } else if READ_TABLES.contains(&table) {
        Some(Class::Rebuilt)
    } else if table == MIGRATIONS_TABLE {
        Some(Class::Migrations)
    } else {
        None
    }
}

/// The tables of a store that none of the lists name.
pub async fn unclassified(conn: &mut Conn) -> Result<Vec<String>, sqlx::Error> {
    Ok(conn
        .tables()
        .await?
        .into_iter()
        .filter(|t| classify(t).is_none())
        .collect())
}

/// The event log's columns that are neither copied nor filled by the
/// store.
pub async fn unknown_event_columns(conn: &mut Conn) -> Result<Vec<String>, sqlx::Error> {
    Ok(conn
        .columns(EVENT_LOG)
        .await?
        .into_iter()
        .map(|c| c.name)
        .filter(|c| {
            !EVENT_COLUMNS_COPIED.contains(&c.as_str())
                && !EVENT_COLUMNS_DERIVED.contains(&c.as_str())
        })
        .collect())
}

/// The event log and kept tables that hold rows, with their counts.
pub async fn occupied(conn: &mut Conn) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let tables = conn.tables().await?;
    let mut out = Vec::new();
    for t in std::iter::once(&EVENT_LOG).chain(KEPT) {
        if tables.iter().any(|x| x == t) {
            let n = conn.count(t).await?;
            if n > 0 {
                out.push((t.to_string(), n));
            }
        }
    }
    Ok(out)
}
