//! The database handle shared by the read side: one pool to PostgreSQL or
//! to one SQLite file, migrations for either, and a small statement type so
//! that one SQL text serves both stores.
//!
//! The SQL written here sticks to what PostgreSQL and SQLite both accept
//! (`$n` parameters, `ON CONFLICT ... DO UPDATE`, text/integer/boolean
//! columns), so each query is written once. [`with_db!`] compiles a block
//! once per driver.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// The store the engine runs on.
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$pool` bound to the concrete pool, compiled once for
/// each driver.
#[macro_export]
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($pool) => $body,
            $crate::db::Db::Sqlite($pool) => $body,
        }
    };
}

/// A parameter of a [`Stmt`]; the types both drivers encode the same way.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(Option<String>),
    Int(i64),
    Bool(bool),
}

impl From<String> for Param {
    fn from(s: String) -> Self {
        Param::Text(Some(s))
    }
}
impl From<&str> for Param {
    fn from(s: &str) -> Self {
        Param::Text(Some(s.to_string()))
    }
}
impl From<Option<String>> for Param {
    fn from(s: Option<String>) -> Self {
        Param::Text(s)
    }
}
impl From<i64> for Param {
    fn from(i: i64) -> Self {
        Param::Int(i)
    }
}
impl From<bool> for Param {
    fn from(b: bool) -> Self {
        Param::Bool(b)
    }
}

/// One SQL statement with its parameters, built without touching the
/// database so the projection logic stays testable and driver-neutral.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub sql: std::borrow::Cow<'static, str>,
    pub params: Vec<Param>,
}

impl Stmt {
    pub fn new(sql: impl Into<std::borrow::Cow<'static, str>>, params: Vec<Param>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

/// Runs a [`Stmt`] (taken by value, its parameters moved into the query)
/// on an executor of either driver; evaluates to the query's result.
#[macro_export]
macro_rules! exec_stmt {
    ($stmt:expr, $executor:expr) => {{
        let $crate::db::Stmt { sql, params } = $stmt;
        let mut q = sqlx::query(&sql);
        for p in params {
            q = match p {
                $crate::db::Param::Text(s) => q.bind(s),
                $crate::db::Param::Int(i) => q.bind(i),
                $crate::db::Param::Bool(b) => q.bind(b),
            };
        }
        q.execute($executor).await
    }};
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL: use postgres://... or sqlite://...")]
    UnsupportedUrl,
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

static PG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// The migrations this build runs on PostgreSQL (`postgres`) or SQLite.
pub fn migrator(postgres: bool) -> &'static sqlx::migrate::Migrator {
    if postgres {
        &PG_MIGRATIONS
    } else {
        &SQLITE_MIGRATIONS
    }
}

/// How much of a SQLite file is read through a memory map (1 GiB). The
/// server's reads land all over the file (a course's events lie spread over
/// the log): through the map each is a memory access instead of a `pread`
/// and a copy into SQLite's own cache, which `perf` put at a third of an
/// `as_of` report's time (21 ms alone, 15 ms mapped). SQLite still writes
/// with plain writes. The mapped pages are the kernel's page cache: they
/// show in the server's resident size but are shared and reclaimable.
pub const SQLITE_MMAP: u64 = 1 << 30;

/// A pooled connection idle longer than this is checked before use.
const IDLE_PING: Duration = Duration::from_secs(1);

/// sqlx checks every connection it hands out with a round trip (and again
/// when it is returned); a statement then costs two or three. A connection
/// that was in use a moment ago was checked on its return, so only one
/// that sat idle (and may have been dropped by the server meanwhile) is
/// checked before use; a dead one is replaced, as before.
async fn ping_if_idle<C: sqlx::Connection>(
    conn: &mut C,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> Result<bool, sqlx::Error> {
    if meta.idle_for > IDLE_PING {
        conn.ping().await?;
    }
    Ok(true)
}

impl Db {
    /// PostgreSQL numbers its placeholders (`$1`); SQLite is given plain `?`
    /// in long generated statements (see `apply::Changes::into_statements`).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Opens a pool for `postgres://` or `sqlite:` URLs. A SQLite file is
    /// created if missing and runs in WAL mode, so readers never wait for
    /// the writer, and is read through a memory map (see [`SQLITE_MMAP`]).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbError> {
        Self::open(url, max_connections, SQLITE_MMAP).await
    }

    /// [`Db::connect`] for one pass over the whole log (`gradebook replay`):
    /// a SQLite file is read with plain reads. A mapping would make the
    /// replay faster (8.8 s against 11.8 s over a million events), but every
    /// page it passes stays resident in the process, so its resident size
    /// would grow to the size of the file (1 GB against 100 MB).
    pub async fn connect_for_replay(url: &str, max_connections: u32) -> Result<Self, DbError> {
        Self::open(url, max_connections, 0).await
    }

    async fn open(url: &str, max_connections: u32, sqlite_mmap: u64) -> Result<Self, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .test_before_acquire(false)
                .before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta)))
                .connect_with(opts)
                .await?;
            Ok(Db::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .pragma("mmap_size", sqlite_mmap.to_string());
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .test_before_acquire(false)
                .before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta)))
                .connect_with(opts)
                .await?;
            Ok(Db::Sqlite(pool))
        } else {
            Err(DbError::UnsupportedUrl)
        }
    }

    /// Brings the schema up to date. Safe to run on every start.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Db::Postgres(pool) => PG_MIGRATIONS.run(pool).await?,
            Db::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "postgres",
            Db::Sqlite(_) => "sqlite",
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    /// Runs statements in one transaction. On SQLite the transaction takes
    /// the write lock up front, so it never fails half-way on a busy file.
    pub async fn execute_all(&self, stmts: &[Stmt]) -> Result<(), sqlx::Error> {
        with_db!(self, pool => {
            let mut tx = crate::begin_write!(self, pool);
            for s in stmts {
                crate::exec_stmt!(s.clone(), &mut *tx)?;
            }
            tx.commit().await
        })
    }
}

/// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite, so a
/// transaction never upgrades from reader to writer and fails busy.
#[macro_export]
macro_rules! begin_write {
    ($db:expr, $pool:ident) => {
        match $db {
            $crate::db::Db::Sqlite(_) => $pool.begin_with("BEGIN IMMEDIATE").await?,
            $crate::db::Db::Postgres(_) => $pool.begin().await?,
        }
    };
}

/// Appends `s` in PostgreSQL `COPY` text format: backslash, tab and line
/// breaks escaped (a field is then never mistaken for `\N`, a null).
pub fn copy_escape(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// The fixed-precision UTC text form used in read tables, so times sort as
/// text on both stores.
pub fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
