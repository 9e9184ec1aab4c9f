//! The layers keep to their direction: domain <- read side <- services <-
//! faces. The three faces (`api`, `lti`, `ui`) never import each other,
//! the services and the engine know no HTTP, and handler files hold no SQL.
//! Read from the source text, so a new import that breaks a rule fails here
//! with the file and line, before it grows roots.

use std::path::{Path, PathBuf};

const FACES: [&str; 3] = ["api", "lti", "ui"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code lines (comments left out) of every Rust file under `dir`,
/// as (file, line number, text).
fn code_lines(dir: &str) -> Vec<(String, usize, String)> {
    let mut files = Vec::new();
    let base = root().join(dir);
    if base.is_file() {
        files.push(base);
    } else {
        rust_files(&base, &mut files);
    }
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.strip_prefix(root()).unwrap().display().to_string();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if !code.starts_with("//") {
                out.push((name.clone(), i + 1, line.to_string()));
            }
        }
    }
    out
}

/// Every line under `dir` that names one of `forbidden`, except in the
/// files `allowed`.
fn offences(dir: &str, forbidden: &[String], allowed: &[&str]) -> Vec<String> {
    code_lines(dir)
        .into_iter()
        .filter(|(file, _, _)| !allowed.iter().any(|a| file.ends_with(a)))
        .filter(|(_, _, line)| forbidden.iter().any(|f| line.contains(f.as_str())))
        .map(|(file, n, line)| format!("{file}:{n}: {}", line.trim()))
        .collect()
}

fn assert_none(what: &str, found: Vec<String>) {
    assert!(found.is_empty(), "{what}:\n{}", found.join("\n"));
}

#[test]
fn no_face_imports_another() {
    for face in FACES {
        let others: Vec<String> = FACES
            .iter()
            .filter(|f| **f != face)
            .flat_map(|f| {
                [
                    format!("crate::{f}::"),
                    format!("crate::{f};"),
                    format!("gradebook::{f}::"),
                ]
            })
            .collect();
        assert_none(
            &format!("src/{face} imports another face"),
            offences(&format!("src/{face}"), &others, &[]),
        );
    }
}

#[test]
fn the_plumbing_imports_no_face_but_where_it_composes_them() {
    let faces: Vec<String> = FACES.iter().map(|f| format!("crate::{f}::")).collect();
    assert_none(
        "src/http imports a face outside the router and the OpenAPI composition",
        offences("src/http", &faces, &["router.rs", "openapi.rs"]),
    );
}

#[test]
fn the_services_the_engine_and_backfill_know_no_http() {
    let http: Vec<String> = ["axum", "crate::http", "ApiError", "StatusCode"]
        .into_iter()
        .map(String::from)
        .chain(FACES.iter().map(|f| format!("crate::{f}::")))
        .collect();
    for dir in [
        "src/services",
        "src/engine.rs",
        "src/backfill",
        "src/store.rs",
        "src/ops",
    ] {
        assert_none(
            &format!("{dir} knows HTTP or a face"),
            offences(dir, &http, &[]),
        );
    }
}

#[test]
fn handler_files_hold_no_sql() {
    let sql: Vec<String> = ["sqlx::query", "with_db!"]
        .into_iter()
        .map(String::from)
        .collect();
    for dir in ["src/api", "src/lti", "src/ui", "src/http"] {
        assert_none(&format!("{dir} runs SQL itself"), offences(dir, &sql, &[]));
    }
}

#[test]
fn the_read_side_and_the_domain_stay_below_the_services() {
    let above: Vec<String> = ["gradebook::", "axum"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_none(
        "projections/src reaches above the read side",
        offences("projections/src", &above, &[]),
    );
    let io: Vec<String> = ["sqlx", "axum", "std::fs", "std::net", "reqwest", "Utc::now"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_none(
        "domain/src does IO or reads the clock",
        offences("domain/src", &io, &[]),
    );
}
