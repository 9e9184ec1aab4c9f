//! `gradebook log export` and `gradebook log import`: the event log as JSON
//! lines, one event a line, in log order, for archiving a term's log or
//! moving it between installations (the format is in docs/operations.md).
//!
//! An export reads one snapshot of the store, read-only. An import checks
//! the whole file before it writes anything: every line must be an event
//! this build can read, each aggregate's sequences must follow on without
//! gap or repeat from what the target already holds, and the file must
//! end with a line break (a file cut off mid-line is refused). It then
//! appends every event in one transaction, so a bad file writes nothing;
//! the error names the line.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use futures::TryStreamExt;
use gradebook_domain::ids::aggregate_id::course_of;
use gradebook_domain::score::Score;
use gradebook_domain::CourseId;
use gradebook_projections::db::{ts, Db};
use gradebook_projections::with_db;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::conn::{redact, Conn, StoredEvent};

/// Events appended per statement.
const BATCH: usize = 1000;

/// One line of an export.
#[derive(Serialize)]
struct LineOut<'a> {
    position: i64,
    recorded_at: String,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    sequence: i64,
    event_type: &'a str,
    event_version: &'a str,
    payload: &'a RawValue,
    metadata: &'a RawValue,
}

/// One line of an import. `position` is where the event sat in the log it
/// came from (the target gives it its own); `recorded_at`, when absent, is
/// the time of the import.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn {
    #[serde(default)]
    position: Option<i64>,
    #[serde(default)]
    recorded_at: Option<String>,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: Box<RawValue>,
    metadata: Box<RawValue>,
}

/// Writes the log (or one course's part of it) to `out`; returns how many
/// events.
pub async fn export(url: &str, course: Option<&str>, out: &mut dyn Write) -> anyhow::Result<u64> {
    if let Some(c) = course {
        CourseId::parse(c).map_err(|e| anyhow!("--course {c:?}: {e}"))?;
    }
    let mut store = Conn::open_read_only(url, "store")
        .await?
        .ok_or_else(|| anyhow!("there is no SQLite file at {url}: nothing to export"))?;
    store.begin_snapshot().await?;
    let sql = store.events_sql(course.is_some());
    let mut events = store.events(&sql, course);
    let mut n = 0u64;
    while let Some(e) = events.try_next().await? {
        let line = LineOut {
            position: e.position,
            recorded_at: ts(e.recorded_at),
            aggregate_type: &e.aggregate_type,
            aggregate_id: &e.aggregate_id,
            sequence: e.sequence,
            event_type: &e.event_type,
            event_version: &e.event_version,
            payload: raw_json(e.position, "payload", &e.payload)?,
            metadata: raw_json(e.position, "metadata", &e.metadata)?,
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    drop(events);
    store.close().await;
    out.flush()?;
    Ok(n)
}

/// A stored payload or metadata as it is, for one line of an export.
fn raw_json<'a>(position: i64, what: &str, text: &'a str) -> anyhow::Result<&'a RawValue> {
    // Only whitespace between tokens can hold a raw line break, and this
    // engine writes none; one would split the line.
    if text.contains(['\n', '\r']) {
        bail!("the event at position {position} has a {what} written over several lines, which one line cannot hold");
    }
    serde_json::from_str(text).map_err(|err| {
        anyhow!("the event at position {position} has a {what} that is not JSON: {err}")
    })
}

/// [`export`] into a new file (written under a temporary name, then put in
/// place whole), or to stdout.
pub async fn export_to(
    url: &str,
    course: Option<&str>,
    output: Option<&Path>,
) -> anyhow::Result<u64> {
    let Some(path) = output else {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        return export(url, course, &mut out).await;
    };
    if path.exists() {
        bail!("{} already exists; choose another file", path.display());
    }
    let mut partial: PathBuf = path.to_path_buf();
    partial.as_mut_os_string().push(".partial");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .with_context(|| format!("create {}", partial.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let written = export(url, course, &mut out).await.and_then(|n| {
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&partial, path)?;
        Ok(n)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// What an import appended.
#[derive(Debug, PartialEq, Eq)]
pub struct Imported {
    pub events: u64,
    pub aggregates: usize,
    pub courses: usize,
}

/// Where each aggregate's sequences stand as the file is read.
#[derive(Default)]
struct Sequences {
    seen: HashMap<(String, String), Run>,
}

/// An aggregate's events in the file: the first sequence and its line, and
/// the last.
struct Run {
    first: i64,
    first_line: u64,
    last: i64,
    last_line: u64,
}

impl Sequences {
    /// Parses and checks line `n` of the file.
    fn take(&mut self, n: u64, bytes: &[u8], now: DateTime<Utc>) -> anyhow::Result<StoredEvent> {
        let at = |why: String| anyhow!("line {n}: {why}; nothing was imported");
        let text = std::str::from_utf8(bytes).map_err(|_| at("it is not UTF-8 text".into()))?;
        if text.trim().is_empty() {
            return Err(at("it is empty".into()));
        }
        let line: LineIn = serde_json::from_str(text)
            .map_err(|e| at(format!("it is not an exported event ({e})")))?;
        gradebook_projections::projector::events::check_stored(
            &line.aggregate_type,
            &line.aggregate_id,
            line.sequence,
            &line.event_type,
            &line.event_version,
            line.payload.get(),
            line.metadata.get(),
        )
        .map_err(at)?;
        let recorded_at = match &line.recorded_at {
            None => now,
            Some(t) => DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| at(format!("recorded_at {t:?} is not an RFC 3339 time ({e})")))?,
        };
        let key = (line.aggregate_type.clone(), line.aggregate_id.clone());
        match self.seen.get_mut(&key) {
            None => {
                self.seen.insert(
                    key,
                    Run {
                        first: line.sequence,
                        first_line: n,
                        last: line.sequence,
                        last_line: n,
                    },
                );
            }
            Some(run) if line.sequence == run.last + 1 => {
                run.last = line.sequence;
                run.last_line = n;
            }
            Some(run) if line.sequence <= run.last => {
                return Err(at(format!(
                    "{} {} sequence {} clashes with the file's line {}, which already went up to sequence {}",
                    line.aggregate_type, line.aggregate_id, line.sequence, run.last_line, run.last
                )));
            }
            Some(run) => {
                return Err(at(format!(
                    "{} {} jumps from sequence {} (line {}) to {}: a gap",
                    line.aggregate_type, line.aggregate_id, run.last, run.last_line, line.sequence
                )));
            }
        }
        Ok(StoredEvent {
            position: line.position.unwrap_or(0),
            recorded_at,
            aggregate_type: line.aggregate_type,
            aggregate_id: line.aggregate_id,
            sequence: line.sequence,
            event_type: line.event_type,
            event_version: line.event_version,
            payload: line.payload.get().to_string(),
            metadata: line.metadata.get().to_string(),
        })
    }
}

/// The file's lines, numbered from 1, without their line breaks. A last
/// line without a line break is refused as cut off.
struct Lines {
    reader: BufReader<std::fs::File>,
    buf: Vec<u8>,
    n: u64,
}

impl Lines {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
        Ok(Lines {
            reader: BufReader::with_capacity(1 << 16, file),
            buf: Vec::new(),
            n: 0,
        })
    }

    fn next(&mut self) -> anyhow::Result<Option<(u64, &[u8])>> {
        self.buf.clear();
        if self.reader.read_until(b'\n', &mut self.buf)? == 0 {
            return Ok(None);
        }
        self.n += 1;
        if self.buf.last() != Some(&b'\n') {
            bail!(
                "line {}: it does not end with a line break, so the file looks cut off; nothing was imported",
                self.n
            );
        }
        self.buf.pop();
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some((self.n, &self.buf)))
    }
}

/// Appends the events of an exported file to the store at `url`.
pub async fn import(url: &str, path: &Path) -> anyhow::Result<Imported> {
    let now = Utc::now();
    // Pass 1: the whole file is checked before anything is written.
    let mut seqs = Sequences::default();
    let mut lines = Lines::open(path)?;
    while let Some((n, bytes)) = lines.next()? {
        seqs.take(n, bytes, now)?;
    }
    let total = lines.n;
    let courses: BTreeSet<String> = seqs
        .seen
        .keys()
        .map(|(_, id)| course_of(id).to_string())
        .collect();

    let db = Db::connect(url, 2)
        .await
        .with_context(|| format!("open {}", redact(url)))?;
    db.migrate().await?;
    // Each aggregate must go on from what the target holds.
    let mut held: HashMap<(String, String), i64> = HashMap::new();
    for c in &courses {
        let rows: Vec<(String, String, i64)> = with_db!(&db, pool => sqlx::query_as(
            "SELECT aggregate_type, aggregate_id, max(sequence) FROM events WHERE course_id = $1 GROUP BY aggregate_type, aggregate_id",
        )
        .bind(c)
        .fetch_all(pool)
        .await?);
        held.extend(rows.into_iter().map(|(t, id, s)| ((t, id), s)));
    }
    match &db {
        Db::Postgres(p) => p.close().await,
        Db::Sqlite(p) => p.close().await,
    }
    let mut refusals: Vec<(u64, String)> = Vec::new();
    for ((t, id), run) in &seqs.seen {
        let last = held.get(&(t.clone(), id.clone())).copied().unwrap_or(0);
        if run.first <= last {
            refusals.push((
                run.first_line,
                format!("{t} {id} sequence {} clashes with the target, which holds its events up to sequence {last}", run.first),
            ));
        } else if run.first > last + 1 {
            refusals.push((
                run.first_line,
                format!(
                    "{t} {id} starts at sequence {}, but the target holds it only up to {last}: a gap",
                    run.first
                ),
            ));
        }
    }
    if let Some((line, why)) = refusals.into_iter().min() {
        bail!("line {line}: {why}; nothing was imported");
    }

    // Pass 2: everything in one transaction.
    let mut store = Conn::open_for_writing(url, "store").await?;
    store.begin_write().await?;
    if let Conn::Postgres(c) = &mut store {
        // As a command that changes a gate does: score posts in flight on
        // a running server finish first, and the ones after see the gates
        // as this import leaves them.
        for course in &courses {
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(crate::store::GATE_LOCK_CLASS)
                .bind(course)
                .execute(&mut *c)
                .await?;
        }
    }
    let mut again = Sequences::default();
    let mut batch: Vec<StoredEvent> = Vec::with_capacity(BATCH);
    let mut written = 0u64;
    let mut lines = Lines::open(path)?;
    loop {
        // Checked again as it is written: the file must not have changed.
        let line = lines.next()?;
        let end = line.is_none();
        if let Some((n, bytes)) = line {
            batch.push(again.take(n, bytes, now)?);
        }
        if batch.len() >= BATCH || (end && !batch.is_empty()) {
            store.insert_events(&batch).await.map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => anyhow!(
                    "the store gained events for an aggregate of the file while importing; \
                     nothing was imported: run the import again"
                ),
                _ => anyhow!(e).context("append the events"),
            })?;
            written += batch.len() as u64;
            batch.clear();
        }
        if end {
            break;
        }
    }
    if written != total {
        bail!("the file changed while importing; nothing was imported");
    }
    // The score gates of what the import changed are read again from
    // their aggregates by the next post that needs them.
    let gates: Vec<String> = again
        .seen
        .keys()
        .filter(|(t, _)| t != Score::TYPE)
        .map(|(t, id)| crate::store::gate_key(t, id))
        .collect();
    for chunk in gates.chunks(500) {
        let sql = format!(
            "DELETE FROM score_gates WHERE gate IN ({})",
            (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        match &mut store {
            Conn::Postgres(c) => {
                let mut q = sqlx::query(&sql);
                for g in chunk {
                    q = q.bind(g);
                }
                q.execute(&mut *c).await?;
            }
            Conn::Sqlite(c) => {
                let mut q = sqlx::query(&sql);
                for g in chunk {
                    q = q.bind(g);
                }
                q.execute(&mut *c).await?;
            }
        }
    }
    store.commit().await.context("commit the import")?;
    store.close().await;
    Ok(Imported {
        events: written,
        aggregates: again.seen.len(),
        courses: courses.len(),
    })
}
