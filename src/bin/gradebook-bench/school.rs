//! The school the benchmarks run against: courses × learners × line items
//! and a history of score events, written straight into the event log in
//! bulk (COPY on PostgreSQL, multi-row INSERTs on SQLite, in one
//! transaction) and then projected by `gradebook replay`.
//!
//! The events are the ones the engine would have written: each comes from
//! the domain aggregate handling the command (so outcomes such as a stale
//! post are the domain's decision), serialized the way the store crates
//! serialize payloads and metadata, with sequences per aggregate from 1.

use std::time::Instant;

use anyhow::{bail, Context};
use chrono::{DateTime, Duration as TimeDelta, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use gradebook::domain::course::{Course, CourseCommand};
use gradebook::domain::enrollment::{Enrollment, EnrollmentCommand};
use gradebook::domain::ids::aggregate_id;
use gradebook::domain::line_item::{LineItem, LineItemCommand, LineItemSpec};
use gradebook::domain::score::{
    ActivityProgress, GradingProgress, Score, ScoreCommand, ScoreFacts, ScorePost,
};
use gradebook::domain::{CommandMeta, CourseId, LineItemId, Source, UserId};
use gradebook::projections::db::Db;
use gradebook_projections::with_db;
use rust_decimal::Decimal;
use sqlx::Row as _;

use crate::common::learner;

/// How big the school is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub courses: usize,
    pub students: usize,
    pub items: usize,
    pub score_events: usize,
}

impl Sizes {
    pub fn full() -> Self {
        Self {
            courses: 500,
            students: 40,
            items: 20,
            score_events: 1_000_000,
        }
    }

    pub fn smoke() -> Self {
        Self {
            courses: 4,
            students: 5,
            items: 3,
            score_events: 150,
        }
    }

    fn key(&self) -> String {
        format!(
            "{}x{}x{}x{}",
            self.courses, self.students, self.items, self.score_events
        )
    }
}

pub fn course_id(c: usize) -> String {
    format!("SCH-{c:04}")
}

pub fn user_id(c: usize, j: usize) -> String {
    format!("stu-{c:04}-{j:02}")
}

pub fn item_id(k: usize) -> String {
    format!("item-{k:02}")
}

/// What the benchmarks need to know about a school already in the store.
pub struct School {
    pub sizes: Sizes,
    /// A moment in the middle of the history, for `as_of` queries.
    pub as_of: DateTime<Utc>,
}

const MARKER: &str =
    "CREATE TABLE IF NOT EXISTS bench_school (name text PRIMARY KEY, value text NOT NULL)";

/// The school in this store, if a previous run built it with these sizes.
pub async fn existing(db: &Db, sizes: Sizes) -> anyhow::Result<Option<School>> {
    let rows: Vec<(String, String)> = with_db!(db, pool => {
        sqlx::query(MARKER).execute(pool).await?;
        sqlx::query_as("SELECT name, value FROM bench_school").fetch_all(pool).await?
    });
    let get = |k: &str| rows.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match get("sizes") {
        None => Ok(None),
        Some(s) if s == sizes.key() => {
            let as_of = get("as_of").context("as_of")?.parse()?;
            Ok(Some(School { sizes, as_of }))
        }
        Some(s) => {
            bail!("this database holds a school of another size ({s}); use a fresh database")
        }
    }
}

pub async fn mark(db: &Db, school: &School) -> anyhow::Result<()> {
    let as_of = school.as_of.to_rfc3339();
    let sizes = school.sizes.key();
    with_db!(db, pool => {
        for (k, v) in [("sizes", sizes.as_str()), ("as_of", as_of.as_str())] {
            sqlx::query("INSERT INTO bench_school (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
                .bind(k).bind(v).execute(pool).await?;
        }
    });
    Ok(())
}

/// One row of the events table.
struct EventRow {
    aggregate_type: &'static str,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
    recorded_at: DateTime<Utc>,
}

/// Handles a command on an in-memory aggregate and turns what it emitted
/// into rows, as the store would have committed them.
async fn run<A>(
    agg: &mut A,
    seq: &mut i64,
    id: &str,
    command: A::Command,
    meta: &CommandMeta,
    out: &mut Vec<EventRow>,
) -> anyhow::Result<()>
where
    A: Aggregate<Services = ()>,
{
    let sink = EventSink::default();
    agg.handle(command, &(), &sink)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let metadata = serde_json::to_string(&meta.to_map())?;
    for e in sink.collect().await {
        *seq += 1;
        out.push(EventRow {
            aggregate_type: A::TYPE,
            aggregate_id: id.to_string(),
            sequence: *seq,
            event_type: e.event_type(),
            event_version: e.event_version(),
            payload: serde_json::to_string(&e)?,
            metadata: metadata.clone(),
            recorded_at: meta.received_at,
        });
    }
    Ok(())
}

/// Writes rows in bulk inside one open transaction.
enum Writer {
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Writer {
    async fn begin(db: &Db) -> anyhow::Result<Self> {
        Ok(match db {
            Db::Postgres(pool) => Writer::Pg(pool.begin().await?),
            Db::Sqlite(pool) => Writer::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    async fn write(&mut self, rows: &mut Vec<EventRow>) -> anyhow::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        match self {
            Writer::Pg(tx) => {
                let mut buf = String::with_capacity(rows.len() * 600);
                for r in rows.iter() {
                    for (i, field) in [
                        r.aggregate_type,
                        &r.aggregate_id,
                        &r.sequence.to_string(),
                        &r.event_type,
                        &r.event_version,
                        &r.payload,
                        &r.metadata,
                        &r.recorded_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    ]
                    .iter()
                    .enumerate()
                    {
                        if i > 0 {
                            buf.push('\t');
                        }
                        gradebook::projections::db::copy_escape(field, &mut buf);
                    }
                    buf.push('\n');
                }
                let mut copy = tx
                    .copy_in_raw("COPY events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at) FROM STDIN")
                    .await?;
                copy.send(buf.into_bytes()).await?;
                copy.finish().await?;
            }
            Writer::Sqlite(tx) => {
                const PER_STATEMENT: usize = 100;
                for chunk in rows.chunks(PER_STATEMENT) {
                    let mut sql = String::from("INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at) VALUES ");
                    for i in 0..chunk.len() {
                        if i > 0 {
                            sql.push(',');
                        }
                        sql.push_str("(?,?,?,?,?,?,?,?)");
                    }
                    let mut q = sqlx::query(&sql);
                    for r in chunk {
                        q = q
                            .bind(r.aggregate_type)
                            .bind(&r.aggregate_id)
                            .bind(r.sequence)
                            .bind(&r.event_type)
                            .bind(&r.event_version)
                            .bind(&r.payload)
                            .bind(&r.metadata)
                            .bind(r.recorded_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
                    }
                    q.execute(&mut **tx).await?;
                }
            }
        }
        rows.clear();
        Ok(())
    }

    async fn commit(self) -> anyhow::Result<()> {
        match self {
            Writer::Pg(tx) => tx.commit().await?,
            Writer::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

fn meta_at(actor: &str, source: Source, at: DateTime<Utc>, n: usize) -> CommandMeta {
    CommandMeta::new(actor, source, format!("bench-{n:08}"), at)
}

/// Writes the school's events into the log. The caller projects them.
pub async fn generate(db: &Db, sizes: Sizes) -> anyhow::Result<School> {
    let started = Instant::now();
    let Sizes {
        courses,
        students,
        items,
        score_events,
    } = sizes;
    let term_start = Utc::now() - TimeDelta::days(120);
    let history_span = TimeDelta::days(100);
    let mut writer = Writer::begin(db).await?;
    let mut rows = Vec::with_capacity(20_000);
    let mut n = 0usize;
    let setup_at = |n: usize| term_start + TimeDelta::milliseconds(n as i64 * 10);

    let course_ids: Vec<CourseId> = (0..courses)
        .map(|c| CourseId::parse(course_id(c)))
        .collect::<Result<_, _>>()?;
    let item_ids: Vec<LineItemId> = (0..items)
        .map(|k| LineItemId::parse(item_id(k)))
        .collect::<Result<_, _>>()?;
    for (c, cid) in course_ids.iter().enumerate() {
        let mut course = Course::default();
        let mut seq = 0;
        let cmd = CourseCommand::Open {
            course_id: cid.clone(),
            title: format!("Course {c}"),
            term: "2026FA".into(),
            tool_ids: vec![],
        };
        n += 1;
        let m = meta_at("token:bench", Source::Sis, setup_at(n), n);
        run(
            &mut course,
            &mut seq,
            &aggregate_id::course(cid),
            cmd,
            &m,
            &mut rows,
        )
        .await?;
        for (k, iid) in item_ids.iter().enumerate() {
            let mut li = LineItem::default();
            let mut seq = 0;
            let cmd = LineItemCommand::Create {
                course_id: cid.clone(),
                line_item_id: iid.clone(),
                spec: LineItemSpec::new(format!("Assignment {k}"), Decimal::from(100)),
            };
            n += 1;
            let m = meta_at("token:bench", Source::Sis, setup_at(n), n);
            run(
                &mut li,
                &mut seq,
                &aggregate_id::line_item(cid, iid),
                cmd,
                &m,
                &mut rows,
            )
            .await?;
        }
        for j in 0..students {
            let uid = UserId::parse(user_id(c, j))?;
            let mut en = Enrollment::default();
            let mut seq = 0;
            let cmd = EnrollmentCommand::Enroll {
                course_id: cid.clone(),
                user_id: uid.clone(),
                person: learner(),
            };
            n += 1;
            let m = meta_at("token:bench", Source::Sis, setup_at(n), n);
            run(
                &mut en,
                &mut seq,
                &aggregate_id::enrollment(cid, &uid),
                cmd,
                &m,
                &mut rows,
            )
            .await?;
        }
        if rows.len() >= 10_000 {
            writer.write(&mut rows).await?;
        }
    }

    // Score posts in rounds over every cell, courses interleaved as an
    // LMS pushing grades would; one post in twenty arrives out of order
    // and the domain records it as stale.
    let cells = courses * students * items;
    let mut state: Vec<(Score, i64)> = (0..cells).map(|_| (Score::default(), 0)).collect();
    let user_ids: Vec<Vec<UserId>> = (0..courses)
        .map(|c| {
            (0..students)
                .map(|j| UserId::parse(user_id(c, j)).unwrap())
                .collect()
        })
        .collect();
    let step = history_span / score_events.max(1) as i32;
    for g in 0..score_events {
        let cell = g % cells;
        let c = cell % courses;
        let rest = cell / courses;
        let (k, j) = (rest % items, rest / items);
        let received = term_start + TimeDelta::days(1) + step * g as i32;
        let late = g >= cells && g % 20 == 7;
        let timestamp = if late {
            received - TimeDelta::days(60)
        } else {
            received - TimeDelta::seconds(30)
        };
        let post = ScorePost {
            score_given: Some(Decimal::from((g * 37 + 50) % 101)),
            score_maximum: Some(Decimal::from(100)),
            activity_progress: ActivityProgress::Completed,
            grading_progress: GradingProgress::FullyGraded,
            timestamp: timestamp.fixed_offset(),
            comment: None,
            score_given_as_sent: None,
            score_maximum_as_sent: None,
        };
        let (cid, iid, uid) = (&course_ids[c], &item_ids[k], &user_ids[c][j]);
        let cmd = ScoreCommand::Post {
            course_id: cid.clone(),
            line_item_id: iid.clone(),
            user_id: uid.clone(),
            post,
            facts: ScoreFacts {
                line_item_deleted: false,
                course_locked: false,
                learner_active: true,
                received_at: Some(received),
            },
        };
        n += 1;
        let m = meta_at("tool:bench-lms:bench-deployment", Source::Ags, received, n);
        let (score, seq) = &mut state[cell];
        run(
            score,
            seq,
            &aggregate_id::score(cid, iid, uid),
            cmd,
            &m,
            &mut rows,
        )
        .await?;
        if rows.len() >= 10_000 {
            writer.write(&mut rows).await?;
        }
    }
    writer.write(&mut rows).await?;
    writer.commit().await?;
    // A store that grew to a million events has had autovacuum analyze its
    // log; one written in a single transaction has not yet, and without
    // statistics PostgreSQL plans a course's set-up events (what `as_of`
    // reads) through the wrong index.
    if let Db::Postgres(pool) = db {
        sqlx::query("ANALYZE events").execute(pool).await?;
    }
    let total: i64 = with_db!(db, pool => sqlx::query("SELECT COUNT(*) FROM events").fetch_one(pool).await?.get(0));
    eprintln!(
        "school written: {courses} courses x {students} learners x {items} line items, {score_events} score events ({total} events in the log) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(School {
        sizes,
        as_of: term_start + TimeDelta::days(1) + history_span / 2,
    })
}
