//! One connection to either store, for the commands that read or write a
//! whole store: a consistent, read-only snapshot of a source; the single
//! transaction that fills a target; and the schema as the database itself
//! describes it, so that a column added by a later migration is carried
//! without this module naming it.
//!
//! Values cross between the stores as one of a few kinds ([`Value`]): a
//! SQLite value keeps the type it is stored with (SQLite types values, not
//! columns), a PostgreSQL column is read as the kind its type maps to, and
//! is written back through `COPY`, whose text form PostgreSQL parses with
//! the target column's own type (so `1` becomes `true` in a boolean and
//! JSON text stays exactly the text it was).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use gradebook_projections::db::copy_escape;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{ConnectOptions, Connection, Row, TypeInfo, ValueRef};

/// A value on its way from one store to another.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
}

/// How a PostgreSQL column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAs {
    Bool,
    Int,
    Real,
    Bytes,
    Text,
}

/// A column as the database describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// PostgreSQL: `information_schema.columns.data_type`; SQLite: the
    /// declared type.
    pub ty: String,
    /// Computed by the database (a generated column): never written.
    pub generated: bool,
}

/// One event of the log, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: String,
    pub metadata: String,
}

/// Where a database URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Postgres {
        host: String,
        port: u16,
        user: String,
        database: String,
    },
    Sqlite(PathBuf),
}

pub fn locate(url: &str) -> anyhow::Result<Location> {
    if is_postgres_url(url) {
        let o = PgConnectOptions::from_str(url).context("read the PostgreSQL URL")?;
        Ok(Location::Postgres {
            host: o.get_host().to_string(),
            port: o.get_port(),
            user: o.get_username().to_string(),
            database: o.get_database().unwrap_or(o.get_username()).to_string(),
        })
    } else if url.starts_with("sqlite:") {
        let o = SqliteConnectOptions::from_str(url).context("read the SQLite URL")?;
        Ok(Location::Sqlite(o.get_filename().to_path_buf()))
    } else {
        bail!(
            "unsupported database URL {}: use postgres://... or sqlite://FILE",
            redact(url)
        )
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The URL with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}{tail}");
            }
        }
    }
    url.to_string()
}

/// Whether two URLs name the same database: the same file, or the same
/// database on the same server.
pub fn same_database(a: &str, b: &str) -> anyhow::Result<bool> {
    Ok(match (locate(a)?, locate(b)?) {
        (Location::Sqlite(x), Location::Sqlite(y)) => {
            let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            canon(&x) == canon(&y)
        }
        (
            Location::Postgres {
                host: h1,
                port: p1,
                database: d1,
                ..
            },
            Location::Postgres {
                host: h2,
                port: p2,
                database: d2,
                ..
            },
        ) => h1 == h2 && p1 == p2 && d1 == d2,
        _ => false,
    })
}

/// Double-quotes an identifier read from the catalog.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The form SQLite's own default gives `events.recorded_at`.
pub fn sqlite_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

const PG_TIME: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

/// The log in log order (the projector's order): on PostgreSQL by the
/// writing transaction, then position; on SQLite by position. `$1`, when
/// given, narrows it to one course.
fn events_sql(postgres: bool, course: bool) -> String {
    let filter = if course { "WHERE course_id = $1" } else { "" };
    if postgres {
        format!(
            "SELECT position, to_char(recorded_at AT TIME ZONE 'UTC', {PG_TIME}), aggregate_type, aggregate_id,
                    sequence, event_type, event_version, payload::text, metadata::text
               FROM events {filter} ORDER BY tx_id, position"
        )
    } else {
        format!(
            "SELECT position, recorded_at, aggregate_type, aggregate_id,
                    sequence, event_type, event_version, payload, metadata
               FROM events {filter} ORDER BY position"
        )
    }
}

fn event_from_row<R: Row>(row: &R) -> anyhow::Result<StoredEvent>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let position: i64 = row.try_get(0)?;
    let recorded: String = row.try_get(1)?;
    let recorded_at = DateTime::parse_from_rfc3339(&recorded)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| {
            format!("the event at position {position} has a recorded_at that is not a time: {recorded:?}")
        })?;
    Ok(StoredEvent {
        position,
        recorded_at,
        aggregate_type: row.try_get(2)?,
        aggregate_id: row.try_get(3)?,
        sequence: row.try_get(4)?,
        event_type: row.try_get(5)?,
        event_version: row.try_get(6)?,
        payload: row.try_get(7)?,
        metadata: row.try_get(8)?,
    })
}

/// How a PostgreSQL column of `data_type` is selected and read; `None` for
/// a type whose values have no common form with SQLite (arrays, ranges,
/// types of an extension).
pub fn pg_read(column: &str, data_type: &str) -> Option<(String, ReadAs)> {
    let q = quote(column);
    Some(match data_type {
        "boolean" => (q, ReadAs::Bool),
        "smallint" | "integer" | "bigint" => (format!("{q}::bigint"), ReadAs::Int),
        "real" | "double precision" => (format!("{q}::float8"), ReadAs::Real),
        "bytea" => (q, ReadAs::Bytes),
        "timestamp with time zone" => (
            format!("to_char({q} AT TIME ZONE 'UTC', {PG_TIME})"),
            ReadAs::Text,
        ),
        "text"
        | "character varying"
        | "character"
        | "json"
        | "jsonb"
        | "numeric"
        | "uuid"
        | "date"
        | "timestamp without time zone"
        | "xid8" => (format!("{q}::text"), ReadAs::Text),
        _ => return None,
    })
}

fn pg_values(row: &PgRow, read: &[ReadAs]) -> Result<Vec<Value>, sqlx::Error> {
    let mut out = Vec::with_capacity(read.len());
    for (i, how) in read.iter().enumerate() {
        if row.try_get_raw(i)?.is_null() {
            out.push(Value::Null);
            continue;
        }
        out.push(match how {
            ReadAs::Bool => Value::Bool(row.try_get(i)?),
            ReadAs::Int => Value::Int(row.try_get(i)?),
            ReadAs::Real => Value::Real(row.try_get(i)?),
            ReadAs::Bytes => Value::Bytes(row.try_get(i)?),
            ReadAs::Text => Value::Text(row.try_get(i)?),
        });
    }
    Ok(out)
}

/// A SQLite row's values, each as the type it is stored with.
fn sqlite_values(row: &SqliteRow, n: usize) -> Result<Vec<Value>, sqlx::Error> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let kind = {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                None
            } else {
                Some(raw.type_info().name().to_string())
            }
        };
        out.push(match kind.as_deref() {
            None => Value::Null,
            Some("INTEGER") => Value::Int(row.try_get_unchecked(i)?),
            Some("REAL") => Value::Real(row.try_get_unchecked(i)?),
            Some("BLOB") => Value::Bytes(row.try_get_unchecked(i)?),
            Some(_) => Value::Text(row.try_get_unchecked(i)?),
        });
    }
    Ok(out)
}

/// Appends a value in PostgreSQL `COPY` text form.
fn push_copy_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("\\N"),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Real(f) => out.push_str(&f.to_string()),
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Text(s) => copy_escape(s, out),
        Value::Bytes(b) => {
            // bytea's hex input form, its backslash escaped for COPY.
            out.push_str("\\\\x");
            for byte in b {
                out.push_str(&format!("{byte:02x}"));
            }
        }
    }
}

/// Rows per SQLite INSERT: SQLite takes at most 32,766 parameters per
/// statement; far fewer keeps each statement small.
const SQLITE_PARAMS: usize = 900;

pub enum Conn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl Conn {
    // Statement logging is off on these connections: reading the whole
    // log is one long statement by design, which sqlx would report as slow.

    /// Opens a store that must not be written: a SQLite file with
    /// `mode=ro` (SQLite itself then refuses any write), PostgreSQL with
    /// every transaction read-only. SQLite: `None` when there is no such
    /// file (an empty store); it is never created.
    pub async fn open_read_only(url: &str, what: &str) -> anyhow::Result<Option<Conn>> {
        if is_postgres_url(url) {
            let opts = PgConnectOptions::from_str(url)?
                .application_name(&format!("gradebook ({what}, read only)"))
                .options([("default_transaction_read_only", "on")])
                .disable_statement_logging();
            let conn = PgConnection::connect_with(&opts)
                .await
                .with_context(|| format!("connect to the {what} {}", redact(url)))?;
            Ok(Some(Conn::Postgres(conn)))
        } else {
            let Location::Sqlite(file) = locate(url)? else {
                unreachable!("not a PostgreSQL URL")
            };
            if !file.exists() {
                return Ok(None);
            }
            let opts = SqliteConnectOptions::from_str(url)?
                .read_only(true)
                .create_if_missing(false)
                .busy_timeout(Duration::from_secs(10))
                .disable_statement_logging();
            let conn = SqliteConnection::connect_with(&opts)
                .await
                .with_context(|| format!("open the {what} {}", file.display()))?;
            Ok(Some(Conn::Sqlite(conn)))
        }
    }

    /// Opens a SQLite file read-only, by its path.
    pub async fn open_sqlite_file(file: &Path) -> anyhow::Result<Conn> {
        let opts = SqliteConnectOptions::new()
            .filename(file)
            .read_only(true)
            .create_if_missing(false)
            .disable_statement_logging();
        let conn = SqliteConnection::connect_with(&opts)
            .await
            .with_context(|| format!("open {}", file.display()))?;
        Ok(Conn::Sqlite(conn))
    }

    /// Opens a store to write (its schema already migrated).
    pub async fn open_for_writing(url: &str, what: &str) -> anyhow::Result<Conn> {
        if is_postgres_url(url) {
            let opts = PgConnectOptions::from_str(url)?
                .application_name(&format!("gradebook ({what})"))
                .disable_statement_logging();
            let conn = PgConnection::connect_with(&opts)
                .await
                .with_context(|| format!("connect to the {what} {}", redact(url)))?;
            Ok(Conn::Postgres(conn))
        } else {
            let opts = SqliteConnectOptions::from_str(url)?
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .disable_statement_logging();
            let conn = SqliteConnection::connect_with(&opts)
                .await
                .with_context(|| format!("open the {what} {url}"))?;
            Ok(Conn::Sqlite(conn))
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Conn::Postgres(_))
    }

    pub fn kind(&self) -> &'static str {
        if self.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Runs statements without parameters.
    pub async fn exec(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Conn::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
            Conn::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
        }
    }

    /// Starts a read transaction that sees the store as it is now for as
    /// long as it lasts, while the store's own writers carry on: on
    /// PostgreSQL `REPEATABLE READ`; on SQLite a read transaction, pinned
    /// by its first read (in WAL mode writers append to the log meanwhile).
    pub async fn begin_snapshot(&mut self) -> Result<(), sqlx::Error> {
        match self {
            Conn::Postgres(_) => {
                self.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
            }
            Conn::Sqlite(_) => {
                self.exec("BEGIN").await?;
                self.exec("SELECT count(*) FROM sqlite_schema").await
            }
        }
    }

    /// Starts a write transaction; on SQLite it takes the write lock now.
    pub async fn begin_write(&mut self) -> Result<(), sqlx::Error> {
        match self {
            Conn::Postgres(_) => self.exec("BEGIN").await,
            Conn::Sqlite(_) => self.exec("BEGIN IMMEDIATE").await,
        }
    }

    pub async fn commit(&mut self) -> Result<(), sqlx::Error> {
        self.exec("COMMIT").await
    }

    pub async fn close(self) {
        // Closing ends any transaction still open without committing it.
        let _ = match self {
            Conn::Postgres(c) => c.close().await,
            Conn::Sqlite(c) => c.close().await,
        };
    }

    /// The tables of the store's schema.
    pub async fn tables(&mut self) -> Result<Vec<String>, sqlx::Error> {
        match self {
            Conn::Postgres(c) => {
                sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables
                      WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                      ORDER BY 1",
                )
                .fetch_all(c)
                .await
            }
            Conn::Sqlite(c) => {
                sqlx::query_scalar(
                    "SELECT name FROM sqlite_schema
                      WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
                      ORDER BY 1",
                )
                .fetch_all(c)
                .await
            }
        }
    }

    /// A table's columns, in their order.
    pub async fn columns(&mut self, table: &str) -> Result<Vec<Column>, sqlx::Error> {
        let rows: Vec<(String, String, bool)> = match self {
            Conn::Postgres(c) => {
                sqlx::query_as(
                    "SELECT column_name::text, data_type::text, is_generated = 'ALWAYS'
                       FROM information_schema.columns
                      WHERE table_schema = current_schema() AND table_name = $1
                      ORDER BY ordinal_position",
                )
                .bind(table)
                .fetch_all(c)
                .await?
            }
            Conn::Sqlite(c) => {
                // hidden: 2 and 3 are generated columns (virtual, stored).
                sqlx::query_as(
                    "SELECT name, type, hidden IN (2, 3) FROM pragma_table_xinfo($1) ORDER BY cid",
                )
                .bind(table)
                .fetch_all(c)
                .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(name, ty, generated)| Column {
                name,
                ty,
                generated,
            })
            .collect())
    }

    pub async fn count(&mut self, table: &str) -> Result<i64, sqlx::Error> {
        let sql = format!("SELECT count(*) FROM {}", quote(table));
        match self {
            Conn::Postgres(c) => sqlx::query_scalar(&sql).fetch_one(c).await,
            Conn::Sqlite(c) => sqlx::query_scalar(&sql).fetch_one(c).await,
        }
    }

    /// The versions of the migrations applied to the store.
    pub async fn applied_migrations(&mut self) -> Result<Vec<i64>, sqlx::Error> {
        let sql = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        match self {
            Conn::Postgres(c) => sqlx::query_scalar(sql).fetch_all(c).await,
            Conn::Sqlite(c) => sqlx::query_scalar(sql).fetch_all(c).await,
        }
    }

    /// The SQL of [`Self::events`].
    pub fn events_sql(&self, course: bool) -> String {
        events_sql(self.is_postgres(), course)
    }

    /// The log (or one course's part of it) in log order.
    pub fn events<'a>(
        &'a mut self,
        sql: &'a str,
        course: Option<&'a str>,
    ) -> BoxStream<'a, anyhow::Result<StoredEvent>> {
        match self {
            Conn::Postgres(c) => {
                let mut q = sqlx::query(sql);
                if let Some(course) = course {
                    q = q.bind(course);
                }
                q.fetch(c)
                    .map(|r| {
                        r.map_err(anyhow::Error::from)
                            .and_then(|r| event_from_row(&r))
                    })
                    .boxed()
            }
            Conn::Sqlite(c) => {
                let mut q = sqlx::query(sql);
                if let Some(course) = course {
                    q = q.bind(course);
                }
                q.fetch(c)
                    .map(|r| {
                        r.map_err(anyhow::Error::from)
                            .and_then(|r| event_from_row(&r))
                    })
                    .boxed()
            }
        }
    }

    /// How to read `columns` of `table`: the SQL and, on PostgreSQL, how
    /// each column is read. Fails naming a column of a type that has no
    /// common form on both stores.
    pub fn select(&self, table: &str, columns: &[Column]) -> anyhow::Result<(String, Vec<ReadAs>)> {
        let mut exprs = Vec::with_capacity(columns.len());
        let mut read = Vec::with_capacity(columns.len());
        for c in columns {
            if self.is_postgres() {
                let Some((expr, how)) = pg_read(&c.name, &c.ty) else {
                    bail!(unsupported_type(table, c));
                };
                exprs.push(expr);
                read.push(how);
            } else {
                exprs.push(quote(&c.name));
            }
        }
        Ok((
            format!("SELECT {} FROM {}", exprs.join(", "), quote(table)),
            read,
        ))
    }

    /// The rows of a [`Self::select`].
    pub fn rows<'a>(
        &'a mut self,
        sql: &'a str,
        read: Vec<ReadAs>,
        n: usize,
    ) -> BoxStream<'a, anyhow::Result<Vec<Value>>> {
        match self {
            Conn::Postgres(c) => sqlx::query(sql)
                .fetch(c)
                .map(move |r| Ok(pg_values(&r?, &read)?))
                .boxed(),
            Conn::Sqlite(c) => sqlx::query(sql)
                .fetch(c)
                .map(move |r| Ok(sqlite_values(&r?, n)?))
                .boxed(),
        }
    }

    /// Inserts rows of `columns` into `table`.
    pub async fn insert_rows(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<(), sqlx::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        match self {
            Conn::Postgres(c) => {
                let mut data = String::new();
                for row in rows {
                    for (i, v) in row.iter().enumerate() {
                        if i > 0 {
                            data.push('\t');
                        }
                        push_copy_value(v, &mut data);
                    }
                    data.push('\n');
                }
                let sql = format!("COPY {} ({}) FROM STDIN", quote(table), cols.join(", "));
                let mut copy = c.copy_in_raw(&sql).await?;
                copy.send(data.into_bytes()).await?;
                copy.finish().await?;
            }
            Conn::Sqlite(c) => {
                let one = format!("({})", vec!["?"; cols.len()].join(", "));
                let per = (SQLITE_PARAMS / cols.len().max(1)).max(1);
                for chunk in rows.chunks(per) {
                    let sql = format!(
                        "INSERT INTO {} ({}) VALUES {}",
                        quote(table),
                        cols.join(", "),
                        vec![one.as_str(); chunk.len()].join(", ")
                    );
                    let mut q = sqlx::query(&sql);
                    for v in chunk.iter().flatten() {
                        q = match v.clone() {
                            Value::Null => q.bind(None::<String>),
                            Value::Int(i) => q.bind(i),
                            Value::Real(f) => q.bind(f),
                            Value::Bool(b) => q.bind(b),
                            Value::Text(s) => q.bind(s),
                            Value::Bytes(b) => q.bind(b),
                        };
                    }
                    q.execute(&mut *c).await?;
                }
            }
        }
        Ok(())
    }

    /// Appends events after those the log holds, in the order given: the
    /// store numbers their positions (PostgreSQL's identity, SQLite's
    /// trigger) and, on PostgreSQL, stamps the writing transaction.
    pub async fn insert_events(&mut self, events: &[StoredEvent]) -> Result<(), sqlx::Error> {
        const COLUMNS: &str = "aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";
        if events.is_empty() {
            return Ok(());
        }
        match self {
            Conn::Postgres(c) => {
                let mut data = String::new();
                for e in events {
                    for field in [&e.aggregate_type, &e.aggregate_id] {
                        copy_escape(field, &mut data);
                        data.push('\t');
                    }
                    data.push_str(&e.sequence.to_string());
                    data.push('\t');
                    for field in [&e.event_type, &e.event_version, &e.payload, &e.metadata] {
                        copy_escape(field, &mut data);
                        data.push('\t');
                    }
                    data.push_str(&gradebook_projections::db::ts(e.recorded_at));
                    data.push('\n');
                }
                let mut copy = c
                    .copy_in_raw(&format!("COPY events ({COLUMNS}) FROM STDIN"))
                    .await?;
                copy.send(data.into_bytes()).await?;
                copy.finish().await?;
            }
            Conn::Sqlite(c) => {
                for chunk in events.chunks(SQLITE_PARAMS / 8) {
                    let sql = format!(
                        "INSERT INTO events ({COLUMNS}) VALUES {}",
                        vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
                    );
                    let mut q = sqlx::query(&sql);
                    for e in chunk {
                        q = q
                            .bind(&e.aggregate_type)
                            .bind(&e.aggregate_id)
                            .bind(e.sequence)
                            .bind(&e.event_type)
                            .bind(&e.event_version)
                            .bind(&e.payload)
                            .bind(&e.metadata)
                            .bind(sqlite_time(e.recorded_at));
                    }
                    q.execute(&mut *c).await?;
                }
            }
        }
        Ok(())
    }
}

/// Why a column cannot be carried.
pub fn unsupported_type(table: &str, c: &Column) -> String {
    format!(
        "column {table}.{} has type {}, which has no common form on PostgreSQL and SQLite; \
         the store commands cannot carry it",
        c.name, c.ty
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_messages() {
        assert_eq!(
            redact("postgres://gb:s3cret@db.example.edu:5432/gradebook"),
            "postgres://gb:***@db.example.edu:5432/gradebook"
        );
        assert_eq!(
            redact("postgres://gb@db/gradebook"),
            "postgres://gb@db/gradebook"
        );
        assert_eq!(redact("sqlite://gradebook.db"), "sqlite://gradebook.db");
    }

    #[test]
    fn copy_text_keeps_every_kind_of_value() {
        let mut out = String::new();
        for v in [
            Value::Null,
            Value::Int(-7),
            Value::Bool(true),
            Value::Text("a\tb\\c\nd".into()),
            Value::Bytes(vec![0, 255]),
        ] {
            push_copy_value(&v, &mut out);
            out.push('|');
        }
        assert_eq!(out, "\\N|-7|t|a\\tb\\\\c\\nd|\\\\x00ff|");
    }

    #[test]
    fn the_same_file_or_database_is_recognised() {
        assert!(same_database("postgres://a@h:5432/gb", "postgres://b:pw@h:5432/gb").unwrap());
        assert!(!same_database("postgres://a@h:5432/gb", "postgres://a@h:5432/gb2").unwrap());
        assert!(same_database("sqlite://x/gb.db", "sqlite:x/gb.db").unwrap());
        assert!(!same_database("sqlite://gb.db", "postgres://a@h/gb").unwrap());
    }
}
