//! Deciding and posting a batch's rows, a chunk at a time: the cells a
//! chunk touches and the score gates it is decided on are read in bulk,
//! each row is decided by the domain on its cell in memory, and the
//! chunk's events are appended in one transaction that first checks the
//! gates still hold. The dry run decides in the same function and appends
//! nothing.

use std::collections::HashMap;

use chrono::Utc;
use cqrs_es::Aggregate;
use gradebook_domain::ids::aggregate_id;
use gradebook_domain::score::{Score, ScoreCommand, ScoreEvent, ScoreHistory, ScoreOutcome};
use gradebook_domain::{CommandMeta, CourseId, DomainError, LineItemId, Source, UserId};

use super::{reject, BackfillError, Batch, CheckedRow, Rejection, RowResult};
use crate::engine::{score_facts, score_gates, Engine, EngineError};

/// Rows read, checked, decided and appended together: one query for the
/// facts, one for the cells, one transaction for the events.
pub const CHUNK_ROWS: usize = 1000;
/// How often a chunk is redone from fresh reads when another writer
/// appended to one of its cells first, before it goes row by row.
const CHUNK_ATTEMPTS: usize = 3;

type CellKey = (LineItemId, UserId);

/// A chunk's rows with their line numbers, checked or refused.
type Chunk = [(u64, Result<CheckedRow, Rejection>)];

/// One cell as the log holds it: its history and its sequence.
#[derive(Debug, Clone, Default)]
pub(super) struct Cell {
    history: ScoreHistory,
    sequence: usize,
}

/// Folds the log's events of the given cells (one query), as loading each
/// aggregate would; cells without events are left out.
async fn load_cells(
    engine: &Engine,
    course: &CourseId,
    keys: &[CellKey],
) -> Result<HashMap<CellKey, Cell>, BackfillError> {
    let mut cells = HashMap::new();
    if keys.is_empty() {
        return Ok(cells);
    }
    let by_id: HashMap<String, &CellKey> = keys
        .iter()
        .map(|k| (aggregate_id::score(course, &k.0, &k.1), k))
        .collect();
    let ids: Vec<&String> = by_id.keys().collect();
    let rows: Vec<(String, i64, String)> = match &engine.db {
        // An IN list on the key's second column is applied as a filter over
        // every score event on PostgreSQL 15; joining to the array probes
        // the key once per id.
        gradebook_projections::db::Db::Postgres(pool) => sqlx::query_as(
            "SELECT aggregate_id, sequence, payload::text AS payload FROM events
              WHERE (aggregate_type, aggregate_id) IN (SELECT $1, unnest($2::text[]))
              ORDER BY aggregate_id, sequence",
        )
        .bind(Score::TYPE)
        .bind(&ids)
        .fetch_all(pool)
        .await
        .map_err(EngineError::from)?,
        // Plain `?`: SQLite finds a numbered parameter by a linear scan.
        gradebook_projections::db::Db::Sqlite(pool) => {
            let sql = format!(
                "SELECT aggregate_id, sequence, payload FROM events
                  WHERE aggregate_type = ? AND aggregate_id IN ({})
                  ORDER BY aggregate_id, sequence",
                vec!["?"; ids.len()].join(",")
            );
            let mut q = sqlx::query_as(&sql).bind(Score::TYPE);
            for id in &ids {
                q = q.bind(*id);
            }
            q.fetch_all(pool).await.map_err(EngineError::from)?
        }
    };
    for (id, sequence, payload) in rows {
        let Some(key) = by_id.get(&id) else { continue };
        let event: ScoreEvent = serde_json::from_str(&payload).map_err(|e| {
            EngineError::Internal(format!("score event {id}#{sequence} cannot be read: {e}"))
        })?;
        let cell: &mut Cell = cells.entry((*key).clone()).or_default();
        cell.history.apply(event);
        cell.sequence = sequence as usize;
    }
    Ok(cells)
}

/// The cells the chunk's well-formed rows touch (repeats included).
fn cell_keys(chunk: &Chunk) -> impl Iterator<Item = CellKey> + '_ {
    chunk
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|r| (r.line_item_id.clone(), r.user_id.clone()))
}

pub(super) async fn dry_run_chunk(
    engine: &Engine,
    batch: &Batch,
    chunk: &Chunk,
    simulated: &mut HashMap<CellKey, Cell>,
) -> Result<Vec<RowResult>, BackfillError> {
    let course = &batch.course_id;
    let mut missing: Vec<CellKey> = cell_keys(chunk)
        .filter(|k| !simulated.contains_key(k))
        .collect();
    missing.sort();
    missing.dedup();
    simulated.extend(load_cells(engine, course, &missing).await?);
    // Nothing is written, not even a gate worked out from the log.
    let gates = chunk_gates(engine, course, chunk, false).await?;
    Ok(decide_chunk(batch, chunk, &gates, simulated)?.results)
}

/// The score gates of a chunk's rows, by key: the course's, and each row's
/// line item and enrollment. `fill` stores a gate worked out from the log.
async fn chunk_gates(
    engine: &Engine,
    course: &CourseId,
    chunk: &Chunk,
    fill: bool,
) -> Result<HashMap<String, bool>, BackfillError> {
    let mut keys: Vec<String> = cell_keys(chunk)
        .flat_map(|(item, user)| score_gates(course, &item, &user))
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    keys.sort();
    keys.dedup();
    let open = crate::store::read_gates::<DomainError>(&engine.db, &keys, fill)
        .await
        .map_err(crate::engine::store_error)?;
    Ok(keys.into_iter().zip(open).collect())
}

/// What a chunk's rows came to: each row's result, the events to append
/// (with each cell's next sequence), the outcome of each, and the last
/// event's (aggregate id, sequence).
struct Decided {
    results: Vec<RowResult>,
    events: Vec<cqrs_es::persist::SerializedEvent>,
    outcomes: Vec<ScoreOutcome>,
    last: Option<(String, usize)>,
}

/// Decides a chunk's rows in order, each on its cell as the rows before it
/// left it, with the domain's score rules and the given gates: the one
/// decision path of the dry run and the real run.
fn decide_chunk(
    batch: &Batch,
    chunk: &Chunk,
    gates: &HashMap<String, bool>,
    cells: &mut HashMap<CellKey, Cell>,
) -> Result<Decided, BackfillError> {
    let course = &batch.course_id;
    let mut decided = Decided {
        results: Vec::with_capacity(chunk.len()),
        events: Vec::new(),
        outcomes: Vec::new(),
        last: None,
    };
    for (line, row) in chunk {
        let row = match row {
            Err(r) => {
                decided.results.push(Err(r.clone()));
                continue;
            }
            Ok(row) => row,
        };
        let open: Vec<bool> = score_gates(course, &row.line_item_id, &row.user_id)
            .iter()
            .map(|key| gates.get(key).copied().unwrap_or(false))
            .collect();
        let key = (row.line_item_id.clone(), row.user_id.clone());
        let cell = cells.entry(key).or_default();
        let meta = row_meta(batch);
        let command = ScoreCommand::Backfill {
            course_id: course.clone(),
            line_item_id: row.line_item_id.clone(),
            user_id: row.user_id.clone(),
            post: row.post.clone(),
            facts: score_facts(&open, &meta),
            applied_before: cell.history.applied_before(&row.post),
        };
        let result = match cell.history.state.decide(command) {
            Err(e) => Err(reject(*line, e.code(), e.to_string())),
            Ok(decision) => {
                let id = aggregate_id::score(course, &row.line_item_id, &row.user_id);
                for event in decision.events {
                    cell.sequence += 1;
                    let envelope = cqrs_es::EventEnvelope::<Score> {
                        aggregate_id: id.clone(),
                        sequence: cell.sequence,
                        payload: event.clone(),
                        metadata: meta.to_map(),
                    };
                    decided.events.push(
                        cqrs_es::persist::SerializedEvent::try_from(&envelope)
                            .map_err(|e| EngineError::Internal(e.to_string()))?,
                    );
                    cell.history.apply(event);
                    decided.last = Some((id.clone(), cell.sequence));
                }
                // A row already in the log is reported, not counted as a post.
                if decision.outcome != ScoreOutcome::Unchanged {
                    decided.outcomes.push(decision.outcome);
                }
                outcome_result(*line, decision.outcome)
            }
        };
        decided.results.push(result);
    }
    Ok(decided)
}

/// Decides and posts one chunk; returns each row's result, the last event
/// appended (aggregate id, sequence) and how many were appended.
pub(super) async fn post_chunk(
    engine: &Engine,
    batch: &Batch,
    chunk: &Chunk,
) -> Result<(Vec<RowResult>, Option<(String, usize)>, u64), BackfillError> {
    let course = &batch.course_id;
    let mut keys: Vec<CellKey> = cell_keys(chunk).collect();
    keys.sort();
    keys.dedup();
    for _ in 0..CHUNK_ATTEMPTS {
        let gates = chunk_gates(engine, course, chunk, true).await?;
        let mut cells = load_cells(engine, course, &keys).await?;
        let decided = decide_chunk(batch, chunk, &gates, &mut cells)?;
        let expected: Vec<(String, bool)> = gates.into_iter().collect();
        match crate::store::append_behind_gates::<Score>(
            &engine.db,
            &decided.events,
            course.as_str(),
            &expected,
        )
        .await
        {
            Ok(true) => {
                for o in &decided.outcomes {
                    crate::metrics::score_outcome(o);
                }
                if !decided.events.is_empty() {
                    engine.projection().wake();
                }
                return Ok((decided.results, decided.last, decided.events.len() as u64));
            }
            // A gate changed (a lock, a drop, a deletion) or another writer
            // appended to one of the cells: decide again on fresh reads.
            Ok(false) | Err(cqrs_es::AggregateError::AggregateConflict) => continue,
            Err(e) => return Err(crate::engine::store_error(e).into()),
        }
    }
    // Contended: post row by row, each through the engine's own retries.
    let mut out = Vec::with_capacity(chunk.len());
    for (line, row) in chunk {
        out.push(match row {
            Err(r) => Err(r.clone()),
            Ok(row) => post_one(engine, batch, row, *line).await?,
        });
    }
    Ok((out, None, 0))
}

fn row_meta(batch: &Batch) -> CommandMeta {
    CommandMeta::new(
        batch.actor.clone(),
        Source::Backfill,
        batch.request_id.clone(),
        Utc::now(),
    )
    .with_batch(batch.batch_id.clone())
}

/// The row's result for what the score command did.
fn outcome_result(line: u64, outcome: ScoreOutcome) -> RowResult {
    match outcome {
        ScoreOutcome::Accepted | ScoreOutcome::Cleared => Ok(true),
        ScoreOutcome::Unchanged => Ok(false),
        // A backfill command refuses an older post before this
        // (`DomainError::OlderThanKept`); answered alike should it come.
        ScoreOutcome::IgnoredStale => Err(reject(
            line,
            "stale",
            "a newer score arrived while the batch ran; this one was recorded as ignored",
        )),
        // Something changed under the batch (a lock, a drop, a deletion):
        // the refusal is recorded, as it would be for a tool.
        ScoreOutcome::Rejected(reason) => Err(reject(
            line,
            reason.code(),
            format!(
                "refused while the batch ran ({}); the refusal is recorded",
                reason.code()
            ),
        )),
    }
}

/// One row by itself, as every row went before batching: its cell read
/// from the log, then a single command through the engine.
async fn post_one(
    engine: &Engine,
    batch: &Batch,
    row: &CheckedRow,
    line: u64,
) -> Result<RowResult, BackfillError> {
    let key = (row.line_item_id.clone(), row.user_id.clone());
    let cell = load_cells(engine, &batch.course_id, std::slice::from_ref(&key))
        .await?
        .remove(&key)
        .unwrap_or_default();
    let result = engine
        .post_past_score(
            &batch.course_id,
            &row.line_item_id,
            &row.user_id,
            row.post.clone(),
            cell.history.applied_before(&row.post),
            &row_meta(batch),
        )
        .await;
    Ok(match result {
        Ok(outcome) => outcome_result(line, outcome),
        Err(EngineError::Domain(e)) => Err(reject(line, e.code(), e.to_string())),
        Err(e) => return Err(e.into()),
    })
}
