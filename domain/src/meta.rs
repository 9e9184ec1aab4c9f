//! Command metadata: who asked, through which door, in which request, and
//! when the engine received it. Every event stores it (cqrs-es keeps it as a
//! string map beside the payload), which makes the event log the audit trail.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Where a change came from, in a registrar's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A tool's AGS score or line item call.
    Ags,
    /// A tool's deep-linking response.
    DeepLinking,
    /// A registrar's backfill batch.
    Backfill,
    /// A registrar's own action (lock, unlock, settings).
    Registrar,
    /// The SIS managing courses, people and links.
    Sis,
    /// A completed LTI launch.
    Launch,
    /// The engine itself (migrations, maintenance).
    System,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Ags => "ags",
            Source::DeepLinking => "deep_linking",
            Source::Backfill => "backfill",
            Source::Registrar => "registrar",
            Source::Sis => "sis",
            Source::Launch => "launch",
            Source::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandMeta {
    /// `tool:<client_id>:<deployment_id>`, `token:<id>` or `system`.
    pub actor: String,
    pub source: Source,
    pub request_id: String,
    pub received_at: DateTime<Utc>,
    /// The backfill batch a row belongs to.
    pub batch_id: Option<String>,
}

impl CommandMeta {
    pub fn new(
        actor: impl Into<String>,
        source: Source,
        request_id: impl Into<String>,
        received_at: DateTime<Utc>,
    ) -> Self {
        Self {
            actor: actor.into(),
            source,
            request_id: request_id.into(),
            received_at,
            batch_id: None,
        }
    }

    pub fn with_batch(mut self, batch_id: impl Into<String>) -> Self {
        self.batch_id = Some(batch_id.into());
        self
    }

    /// The string map cqrs-es stores beside each event.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::from([
            ("actor".to_string(), self.actor.clone()),
            ("source".to_string(), self.source.as_str().to_string()),
            ("request_id".to_string(), self.request_id.clone()),
            (
                "received_at".to_string(),
                self.received_at
                    .to_rfc3339_opts(SecondsFormat::Micros, true),
            ),
        ]);
        if let Some(b) = &self.batch_id {
            m.insert("batch_id".to_string(), b.clone());
        }
        m
    }

    /// Reads metadata back; missing or unreadable fields fall back to
    /// `system` values so an old or hand-written event still projects.
    pub fn from_map(m: &HashMap<String, String>) -> Self {
        Self::from_fields(|k| m.get(k).map(String::as_str))
    }

    /// Reads the fields by name from any map of strings (the event log's
    /// metadata as the store wrote it, or a borrowed reading of it).
    pub fn from_fields<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        Self {
            actor: get("actor").unwrap_or("system").to_string(),
            source: get("source")
                .and_then(Source::parse)
                .unwrap_or(Source::System),
            request_id: get("request_id").unwrap_or_default().to_string(),
            received_at: get("received_at")
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            batch_id: get("batch_id").map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_survives_the_string_map_round_trip() {
        let meta = CommandMeta::new(
            "token:7",
            Source::Backfill,
            "req-1",
            "2026-05-01T10:00:00.123456Z".parse().unwrap(),
        )
        .with_batch("b-1");
        assert_eq!(CommandMeta::from_map(&meta.to_map()), meta);
    }
}
