//! `gradebook store copy --from URL --to URL`: moves a gradebook to
//! another store (typically from the SQLite file to PostgreSQL), keeping
//! everything that cannot be rebuilt and rebuilding the rest.
//!
//! 1. The target must be empty (its event log and every kept table); this
//!    is looked at without creating or migrating anything.
//! 2. The source is opened read-only and read in one snapshot, so a live
//!    server's file or database gives a consistent copy. Its schema must be
//!    this build's, every table must be classified ([`super::schema`]), and
//!    every event must be one this build can read: the whole log is read and
//!    checked (and folded into each course's grades, for step 5) before
//!    anything is written.
//! 3. The target is migrated, then the event log and the kept tables are
//!    written in one transaction: a copy cut off (even by `kill -9`)
//!    leaves no row behind. Events go in log order with their aggregate
//!    ids, sequences, types, versions, payloads, metadata and recording
//!    times as they were; the target numbers positions 1, 2, ... in that
//!    order.
//! 4. The read tables are rebuilt on the target by a replay.
//! 5. The check: for every course, the grade report the target serves
//!    equals the one the source's log gives, and the number of events, in
//!    all and per course, is the same on both sides.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{anyhow, bail, Context};
use futures::TryStreamExt;
use gradebook_domain::ids::aggregate_id::course_of;
use gradebook_projections::db::{migrator, Db};
use gradebook_projections::reports::grades::{course_grades, CourseGrades};
use gradebook_projections::tables::kept;
use gradebook_projections::tables::view::{CourseView, LogFold};
use gradebook_projections::with_db;

use super::conn::{pg_read, redact, same_database, unsupported_type, Column, Conn, ReadAs};
use super::schema::{self, EVENT_LOG, KEPT, MIGRATIONS_TABLE};

/// Rows (or events) written per statement.
const BATCH: usize = 1000;

/// What a copy did and what its check found.
#[derive(Debug)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub events: u64,
    /// Rows copied per kept table, in the order copied.
    pub kept: Vec<(String, u64)>,
    pub replayed: u64,
    pub replay_secs: f64,
    pub check: Check,
}

#[derive(Debug)]
pub struct Check {
    pub source_events: u64,
    pub target_events: u64,
    pub courses: usize,
    /// Each difference found, in a sentence; empty when the copy is exact.
    pub differences: Vec<String>,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.differences.is_empty() && self.source_events == self.target_events
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "copied {} to {}", self.from, self.to)?;
        writeln!(f, "  {:<24}{:>10}  (in log order)", EVENT_LOG, self.events)?;
        for (t, n) in &self.kept {
            writeln!(f, "  {t:<24}{n:>10}")?;
        }
        writeln!(
            f,
            "replayed {} events into the read tables in {:.2} s",
            self.replayed, self.replay_secs
        )?;
        let c = &self.check;
        writeln!(
            f,
            "check: {} events in the source's log, {} in the target's audit log; grades of {} course(s): {}",
            c.source_events,
            c.target_events,
            c.courses,
            if c.passed() { "all equal" } else { "DIFFERENCES" }
        )?;
        for d in &c.differences {
            writeln!(f, "  {d}")?;
        }
        Ok(())
    }
}

/// A kept table as it is read from the source.
struct TablePlan {
    name: String,
    columns: Vec<Column>,
    select: String,
    read: Vec<ReadAs>,
}

/// What the check pass over the source's log found.
struct Scan {
    events: u64,
    per_course: BTreeMap<String, u64>,
    views: BTreeMap<String, CourseView>,
}

/// How to start again, after a refusal for a target that holds rows.
fn not_empty(to: &str, occupied: &[(String, i64)]) -> String {
    let found: Vec<String> = occupied
        .iter()
        .map(|(t, n)| format!("{t} holds {n} row(s)"))
        .collect();
    format!(
        "the target {} is not empty: {}. A copy writes only into an empty store, and wrote nothing. \
         To start again, empty the target: on PostgreSQL drop and create the database again \
         (dropdb, then createdb); on SQLite delete the file and its -wal and -shm files. \
         (A copy that finished writing but was cut off while rebuilding the read tables is \
         complete once `gradebook replay` has run on the target.)",
        redact(to),
        found.join(", ")
    )
}

pub async fn run(from: &str, to: &str) -> anyhow::Result<Report> {
    if same_database(from, to)? {
        bail!(
            "--from and --to name the same database ({}); copy into another, empty one",
            redact(to)
        );
    }
    // 1. The target, looked at without creating anything.
    if let Some(mut target) = Conn::open_read_only(to, "target").await? {
        let occupied = schema::occupied(&mut target).await?;
        target.close().await;
        if !occupied.is_empty() {
            bail!(not_empty(to, &occupied));
        }
    }

    // 2. The source, in one snapshot; everything is checked before writing.
    let mut source = Conn::open_read_only(from, "source")
        .await?
        .ok_or_else(|| anyhow!("there is no SQLite file at {from}: nothing to copy"))?;
    source.begin_snapshot().await?;
    let plan = plan_source(&mut source, from).await?;
    eprintln!("checking every event of the source's log...");
    let scan = scan_log(&mut source).await?;

    // 3. The target's schema, then everything in one transaction.
    let db = Db::connect(to, 2)
        .await
        .with_context(|| format!("open the target {}", redact(to)))?;
    db.migrate().await.context("migrate the target")?;
    close(db).await;
    let mut target = Conn::open_for_writing(to, "target").await?;
    check_target(&mut target, &plan).await?;
    target.begin_write().await?;
    if target.is_postgres() {
        // Positions count from 1 again (a copy cut off earlier used some),
        // and nobody else writes the log until this commits.
        target
            .exec("ALTER TABLE events ALTER COLUMN position RESTART WITH 1")
            .await?;
    }
    let occupied = schema::occupied(&mut target).await?;
    if !occupied.is_empty() {
        bail!(not_empty(to, &occupied));
    }
    eprintln!("writing the target in one transaction...");
    let events = copy_events(&mut source, &mut target, scan.events).await?;
    let kept = copy_kept(&mut source, &mut target, &plan).await?;
    target.commit().await.context("commit the copy")?;
    target.close().await;
    source.close().await;

    // 4. The read tables.
    eprintln!("rebuilding the target's read tables...");
    let db = Db::connect_for_replay(to, 2).await?;
    let (replayed, replay_secs) = super::replay_with_progress(&db).await?;
    close(db).await;

    // 5. The check: one pass over every course, so without the server's
    // memory map of a SQLite file (see `Db::connect_for_replay`).
    let db = Db::connect_for_replay(to, 2).await?;
    let check = check(&db, scan).await?;
    close(db).await;
    Ok(Report {
        from: redact(from),
        to: redact(to),
        events,
        kept,
        replayed,
        replay_secs,
        check,
    })
}

async fn close(db: Db) {
    match db {
        Db::Postgres(p) => p.close().await,
        Db::Sqlite(p) => p.close().await,
    }
}

/// The source's schema must be this build's, with every table known.
async fn plan_source(source: &mut Conn, from: &str) -> anyhow::Result<Vec<TablePlan>> {
    let tables = source.tables().await?;
    if !tables.iter().any(|t| t == EVENT_LOG) || !tables.iter().any(|t| t == MIGRATIONS_TABLE) {
        bail!(
            "{} is not a gradebook store (it has no event log); nothing was written",
            redact(from)
        );
    }
    let applied = source.applied_migrations().await?;
    let known: Vec<i64> = migrator(source.is_postgres())
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    let missing: Vec<String> = known
        .iter()
        .filter(|v| !applied.contains(v))
        .map(|v| v.to_string())
        .collect();
    let newer: Vec<String> = applied
        .iter()
        .filter(|v| !known.contains(v))
        .map(|v| v.to_string())
        .collect();
    if !newer.is_empty() {
        bail!(
            "the source was migrated by a newer gradebook (migrations {} are unknown to this build); \
             copy it with that build. Nothing was written.",
            newer.join(", ")
        );
    }
    if !missing.is_empty() {
        bail!(
            "the source's schema is older than this build's (migrations {} not applied): bring it \
             up to date first with `gradebook migrate --database-url {}` (or start this build's \
             server on it once), then copy. Nothing was written.",
            missing.join(", "),
            redact(from)
        );
    }
    let unknown = schema::unclassified(source).await?;
    if !unknown.is_empty() {
        bail!(
            "the source has table(s) {} that this build does not know how to carry (neither the \
             event log, nor kept, nor rebuilt from the log); refusing rather than leaving them \
             behind. Nothing was written.",
            unknown.join(", ")
        );
    }
    let odd = schema::unknown_event_columns(source).await?;
    if !odd.is_empty() {
        bail!(
            "the source's event log has column(s) {} that this build does not know; nothing was written",
            odd.join(", ")
        );
    }
    let mut plan = Vec::new();
    for t in KEPT {
        if !tables.iter().any(|x| x == t) {
            continue;
        }
        let columns: Vec<Column> = source
            .columns(t)
            .await?
            .into_iter()
            .filter(|c| !c.generated)
            .collect();
        let (select, read) = source
            .select(t, &columns)
            .map_err(|e| anyhow!("{e}. Nothing was written."))?;
        plan.push(TablePlan {
            name: t.to_string(),
            columns,
            select,
            read,
        });
    }
    Ok(plan)
}

/// Reads the whole log in log order, checking that every event is one
/// this build knows, and folds each course's grades from it.
async fn scan_log(source: &mut Conn) -> anyhow::Result<Scan> {
    let total = source.count(EVENT_LOG).await? as u64;
    let bar = super::progress(
        total,
        "{spinner} checking [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
    );
    let mut fold = LogFold::default();
    let mut per_course: BTreeMap<String, u64> = BTreeMap::new();
    let mut n = 0u64;
    let sql = source.events_sql(false);
    let mut events = source.events(&sql, None);
    while let Some(e) = events.try_next().await? {
        let env = gradebook_projections::projector::events::check_stored(
            &e.aggregate_type,
            &e.aggregate_id,
            e.sequence,
            &e.event_type,
            &e.event_version,
            &e.payload,
            &e.metadata,
        )
        .map_err(|why| {
            anyhow!(
                "the event at position {} ({} {}, sequence {}) cannot be copied: {why}. Nothing was written.",
                e.position,
                e.aggregate_type,
                e.aggregate_id,
                e.sequence
            )
        })?;
        fold.apply(&env);
        *per_course
            .entry(course_of(&e.aggregate_id).to_string())
            .or_default() += 1;
        n += 1;
        if n.is_multiple_of(BATCH as u64) {
            bar.set_position(n);
        }
    }
    bar.finish_and_clear();
    Ok(Scan {
        events: n,
        per_course,
        views: fold.into_views(),
    })
}

/// The target, migrated, must take every column read from the source.
async fn check_target(target: &mut Conn, plan: &[TablePlan]) -> anyhow::Result<()> {
    let odd = schema::unknown_event_columns(target).await?;
    if !odd.is_empty() {
        bail!(
            "the target's event log has column(s) {} that this build does not know; nothing was written",
            odd.join(", ")
        );
    }
    let tables = target.tables().await?;
    for t in plan {
        if !tables.contains(&t.name) {
            bail!(
                "the target has no table {} after its migrations; nothing was written",
                t.name
            );
        }
        let columns: Vec<Column> = target
            .columns(&t.name)
            .await?
            .into_iter()
            .filter(|c| !c.generated)
            .collect();
        for c in &t.columns {
            let Some(tc) = columns.iter().find(|x| x.name == c.name) else {
                bail!(
                    "the target's table {} has no column {}; nothing was written",
                    t.name,
                    c.name
                );
            };
            if target.is_postgres() && pg_read(&tc.name, &tc.ty).is_none() {
                bail!("{}. Nothing was written.", unsupported_type(&t.name, tc));
            }
        }
    }
    Ok(())
}

async fn copy_kept(
    source: &mut Conn,
    target: &mut Conn,
    plan: &[TablePlan],
) -> anyhow::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for t in plan {
        let names: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
        let mut rows = source.rows(&t.select, t.read.clone(), t.columns.len());
        let mut batch = Vec::with_capacity(BATCH);
        let mut n = 0u64;
        loop {
            let row = rows.try_next().await?;
            let end = row.is_none();
            batch.extend(row);
            if batch.len() >= BATCH || (end && !batch.is_empty()) {
                target
                    .insert_rows(&t.name, &names, &batch)
                    .await
                    .with_context(|| format!("copy the rows of {}", t.name))?;
                n += batch.len() as u64;
                batch.clear();
            }
            if end {
                break;
            }
        }
        out.push((t.name.clone(), n));
    }
    Ok(out)
}

async fn copy_events(source: &mut Conn, target: &mut Conn, expected: u64) -> anyhow::Result<u64> {
    let bar = super::progress(
        expected,
        "{spinner} copying [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
    );
    let sql = source.events_sql(false);
    let mut events = source.events(&sql, None);
    let mut batch = Vec::with_capacity(BATCH);
    let mut n = 0u64;
    loop {
        let e = events.try_next().await?;
        let end = e.is_none();
        batch.extend(e);
        if batch.len() >= BATCH || (end && !batch.is_empty()) {
            target
                .insert_events(&batch)
                .await
                .context("copy the event log")?;
            n += batch.len() as u64;
            batch.clear();
            bar.set_position(n);
        }
        if end {
            break;
        }
    }
    bar.finish_and_clear();
    // The same snapshot was read twice: anything else is a fault.
    if n != expected {
        bail!("the source's log gave {expected} events when checked and {n} when copied; nothing was written");
    }
    Ok(n)
}

/// The grades the target serves against those of the source's log, course
/// by course, and the events on both sides.
async fn check(db: &Db, scan: Scan) -> anyhow::Result<Check> {
    let target_events = gradebook_projections::projector::events::count(db).await? as u64;
    let (per_course, courses): (Vec<(String, i64)>, Vec<String>) = with_db!(db, pool => {
        let per_course = sqlx::query_as("SELECT course_id, count(*) FROM events GROUP BY course_id")
            .fetch_all(pool)
            .await?;
        let courses = sqlx::query_scalar("SELECT course_id FROM rm_courses ORDER BY course_id")
            .fetch_all(pool)
            .await?;
        (per_course, courses)
    });
    let mut differences = Vec::new();
    let target_counts: BTreeMap<String, u64> =
        per_course.into_iter().map(|(c, n)| (c, n as u64)).collect();
    let mut all: Vec<&String> = scan.per_course.keys().chain(target_counts.keys()).collect();
    all.sort();
    all.dedup();
    for c in all {
        let s = scan.per_course.get(c).copied().unwrap_or(0);
        let t = target_counts.get(c).copied().unwrap_or(0);
        if s != t {
            differences.push(format!(
                "course {c}: {s} event(s) in the source's log, {t} in the target's"
            ));
        }
    }
    for c in &courses {
        if !scan.views.contains_key(c) {
            differences.push(format!(
                "course {c} is on the target but was not opened in the source's log"
            ));
        }
    }
    for (id, view) in &scan.views {
        let expected = course_grades(view, None);
        // What the target serves: its kept grade rows.
        match kept::course_grades(db, id).await? {
            None => differences.push(format!("course {id} is missing from the target")),
            Some(actual) => {
                if actual != expected {
                    differences.push(describe(id, &expected, &actual));
                }
            }
        }
    }
    Ok(Check {
        source_events: scan.events,
        target_events,
        courses: scan.views.len(),
        differences,
    })
}

/// Where two grade reports of a course first differ.
fn describe(course: &str, source: &CourseGrades, target: &CourseGrades) -> String {
    let first = source
        .students
        .iter()
        .zip(&target.students)
        .find(|(a, b)| a != b)
        .map(|(a, _)| a.user_id.clone());
    match first {
        Some(user) => format!("course {course}: grades differ, first for {user}"),
        None if source.students.len() != target.students.len() => format!(
            "course {course}: {} learner(s) in the source's grades, {} in the target's",
            source.students.len(),
            target.students.len()
        ),
        None => format!("course {course}: the course's settings differ (scheme or lock)"),
    }
}
