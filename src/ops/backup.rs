//! `gradebook backup PATH`: a consistent copy of a SQLite store, taken
//! while the server runs. On PostgreSQL the database's own tool does this
//! better; the command prints the `pg_dump` to run.
//!
//! SQLite's `VACUUM INTO` writes the database as one read transaction saw
//! it (the server's writers carry on meanwhile, in WAL mode), into a new
//! file. Copying `gradebook.db` with `cp` instead can tear: pages change
//! under the copy, and the newest writes may still be in `gradebook.db-wal`.
//! The backup is written beside PATH under a temporary name, flushed to
//! disk, checked, and only then renamed to PATH, so PATH is either a whole
//! backup or absent.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

use super::conn::{locate, redact, Conn, Location};

#[derive(Debug)]
pub enum Backup {
    /// A SQLite backup at `path`, holding `events` events.
    Written {
        path: PathBuf,
        events: i64,
        bytes: u64,
    },
    /// PostgreSQL: nothing written; the command that makes the backup.
    UsePgDump { command: String },
}

pub async fn run(url: &str, path: &Path) -> anyhow::Result<Backup> {
    let file = match locate(url)? {
        Location::Postgres {
            host,
            port,
            user,
            database,
        } => {
            return Ok(Backup::UsePgDump {
                command: pg_dump_command(&host, port, &user, &database, path),
            })
        }
        Location::Sqlite(file) => file,
    };
    if path.exists() {
        bail!(
            "{} already exists; a backup never overwrites a file: choose another path",
            path.display()
        );
    }
    let partial = partial_path(path)?;
    if partial.exists() {
        bail!(
            "{} exists: a backup to {} was cut off earlier, or is running now; delete it and run again",
            partial.display(),
            path.display()
        );
    }
    let target = partial
        .to_str()
        .ok_or_else(|| anyhow!("the backup path must be valid UTF-8"))?
        .to_string();
    let mut source = Conn::open_read_only(url, "store")
        .await?
        .ok_or_else(|| anyhow!("there is no SQLite file at {}", file.display()))?;
    let Conn::Sqlite(conn) = &mut source else {
        unreachable!("a SQLite URL")
    };
    let written = sqlx::query("VACUUM INTO $1")
        .bind(&target)
        .execute(&mut *conn)
        .await;
    source.close().await;
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e).context(format!("write the backup to {}", partial.display()));
    }
    let done = finish(url, &partial, path).await;
    if done.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    done
}

/// Flushes and checks the new file, then puts it in place.
async fn finish(url: &str, partial: &Path, path: &Path) -> anyhow::Result<Backup> {
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("flush {}", partial.display()))?;
    let mut copy = Conn::open_sqlite_file(partial).await?;
    let Conn::Sqlite(conn) = &mut copy else {
        unreachable!("a SQLite URL")
    };
    let verdict: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut *conn)
        .await?;
    let has_log = copy.tables().await?.iter().any(|t| t == "events");
    let events = if has_log {
        copy.count("events").await?
    } else {
        0
    };
    copy.close().await;
    if verdict != "ok" {
        bail!(
            "the backup of {} failed SQLite's check ({verdict}); nothing was kept",
            redact(url)
        );
    }
    std::fs::rename(partial, path)
        .with_context(|| format!("move the backup to {}", path.display()))?;
    // The rename itself is durable once the directory is flushed.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(Backup::Written {
        path: path.to_path_buf(),
        events,
        bytes,
    })
}

/// The name the backup is written under until it is complete.
fn partial_path(path: &Path) -> anyhow::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", path.display()))?;
    let mut partial = name.to_os_string();
    partial.push(".partial");
    Ok(path.with_file_name(partial))
}

/// A word for a POSIX shell: as it is when it is plain, else single-quoted.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The `pg_dump` that backs up this database in its custom format (what
/// `pg_restore` reads). The password, if any, is not printed: pg_dump
/// takes it from `PGPASSWORD` or `~/.pgpass`.
pub fn pg_dump_command(host: &str, port: u16, user: &str, database: &str, path: &Path) -> String {
    format!(
        "pg_dump --format=custom --host={} --port={port} --username={} --file={} {}",
        shell_word(host),
        shell_word(user),
        shell_word(&path.to_string_lossy()),
        shell_word(database)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pg_dump_command_names_the_database_and_quotes_what_needs_it() {
        assert_eq!(
            pg_dump_command(
                "db.example.edu",
                5433,
                "gb",
                "gradebook",
                Path::new("/backups/gb.dump")
            ),
            "pg_dump --format=custom --host=db.example.edu --port=5433 --username=gb --file=/backups/gb.dump gradebook"
        );
        assert_eq!(
            pg_dump_command("h", 5432, "o'neil", "grade book", Path::new("a b.dump")),
            "pg_dump --format=custom --host=h --port=5432 --username='o'\\''neil' --file='a b.dump' 'grade book'"
        );
    }
}
