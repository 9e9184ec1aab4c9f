//! Property-based fuzzing of the parsers that read what tools and
//! registrars send: AGS score posts, AGS line items, deep-linking responses
//! (the JWT and its content items) and backfill files (CSV and JSON lines).
//! Inputs are arbitrary bytes and, to get past the first check, arbitrary
//! values in the shape the parser expects. No input may panic; what is
//! accepted must survive the round trip the event store puts it through
//! unchanged.
//!
//! `FUZZ_CASES` sets the cases per target (default 1,000, which keeps CI
//! quick); each target prints how many it ran and how long it took.

use std::io::Cursor;
use std::time::Instant;

use gradebook::backfill::{check_row, CsvRows, JsonLines, RowSource, COLUMNS};
use gradebook::domain::enrollment::{EnrollmentStatus, Role};
use gradebook::domain::line_item::LineItemSpec;
use gradebook::domain::policy::GradingPolicy;
use gradebook::domain::score::{Score, ScoreCommand, ScoreFacts, ScorePost};
use gradebook::domain::{CourseId, LineItemId, ToolId};
use gradebook::lti::launch::deep_linking::{plan_items, unverified_issuer};
use gradebook::lti::services::ags::{parse_line_item, parse_line_item_patch, parse_score_body};
use gradebook::projections::tables::view::{CourseView, EnrollmentRow, LineItemRow};
use gradebook::services::crypto::{verify_tool_jwt, Expect, JwksCache, PlatformKey, ToolKeySource};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000)
}

/// Runs `test` over `strategy` for the configured number of cases and
/// reports the count and time.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let n = cases();
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    });
    let started = Instant::now();
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
    println!(
        "fuzz {name}: {n} cases in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

// ---- strategies ----

/// Numbers and number-like text the way tools get them wrong.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1e309".to_string()),
        Just("-0".to_string()),
        Just("NaN".to_string()),
        Just("Infinity".to_string()),
        Just("79228162514264337593543950336".to_string()),
        Just("1e-400".to_string()),
        Just("0.0000000000000000000000000001".to_string()),
        Just("1e28".to_string()),
        Just("9e99999999999".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "[-+]?[0-9]{0,30}(\\.[0-9]{0,30})?([eE][-+]?[0-9]{1,12})?",
    ]
}

/// Any JSON value, a few levels deep, with strings and numbers that are
/// likely to matter.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        number_text().prop_map(Value::String),
        // RFC 3339 and near misses.
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:?[0-9]{2})?"
            .prop_map(Value::String),
        prop_oneof![
            Just("Completed"), Just("FullyGraded"), Just("Pending"), Just("Started"),
            Just("ltiResourceLink"), Just("html"), Just("window"), Just("iframe"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
        any::<String>().prop_map(Value::String),
        "[a-zA-Z0-9_./%'\" -]{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with some of `keys`, each with any value, plus stray keys.
fn object_with(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(
            (prop::sample::select(keys), json_value()),
            0..keys.len() + 2,
        ),
        prop::collection::btree_map("[a-zA-Z]{1,10}", json_value(), 0..2),
    )
        .prop_map(|(fields, extra)| {
            let mut o: Map<String, Value> = extra.into_iter().collect();
            for (k, v) in fields {
                o.insert(k.to_string(), v);
            }
            Value::Object(o)
        })
}

/// Text made of the pieces that matter to the parser, in any order.
fn pieces(alphabet: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(alphabet).prop_map(|s| s.as_bytes().to_vec()),
            1 => any::<String>().prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..8),
        ],
        0..48,
    )
    .prop_map(|v| v.concat())
}

const SCORE_KEYS: &[&str] = &[
    "userId",
    "scoreGiven",
    "scoreMaximum",
    "activityProgress",
    "gradingProgress",
    "timestamp",
    "comment",
];
const LINE_ITEM_KEYS: &[&str] = &[
    "label",
    "scoreMaximum",
    "resourceId",
    "resourceLinkId",
    "tag",
    "startDateTime",
    "endDateTime",
];
const JSON_PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\"userId\"",
    "\"scoreGiven\"",
    "\"scoreMaximum\"",
    "\"timestamp\"",
    "\"label\"",
    "1e309",
    "-0",
    "NaN",
    "null",
    "true",
    "\\u0000",
    "\\ud800",
    "\u{feff}",
    "0.1",
    "\"2026-09-10T10:00:00Z\"",
];

fn arbitrary_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        pieces(JSON_PIECES),
    ]
}

// ---- AGS score posts ----

/// Runs an accepted post through the score aggregate, and through the
/// JSON the event store keeps, which must give it back unchanged.
fn score_lands(post: ScorePost) -> Result<(), TestCaseError> {
    use cqrs_es::Aggregate;
    let stored = serde_json::to_string(&post).unwrap();
    let back: ScorePost = serde_json::from_str(&stored).unwrap();
    prop_assert_eq!(&back, &post, "stored as {}", stored);
    let cmd = ScoreCommand::Post {
        course_id: CourseId::parse("C-1").unwrap(),
        line_item_id: LineItemId::parse("item").unwrap(),
        user_id: gradebook::domain::UserId::parse("ada").unwrap(),
        post,
        facts: ScoreFacts {
            line_item_deleted: false,
            course_locked: false,
            learner_active: true,
            received_at: Some(chrono::Utc::now()),
        },
    };
    // The sink applies what the command decides to the aggregate.
    let mut score = Score::default();
    let sink = cqrs_es::event_sink::EventSink::default();
    let _ = futures::executor::block_on(score.handle(cmd, &(), &sink));
    Ok(())
}

#[test]
fn score_posts_from_arbitrary_bytes_never_panic() {
    fuzz("score post (bytes)", arbitrary_body(), |body| {
        if let Ok((_, post)) = parse_score_body(&body) {
            score_lands(post)?;
        }
        Ok(())
    });
}

#[test]
fn score_posts_of_any_shape_never_panic_and_what_is_accepted_is_kept_exactly() {
    fuzz("score post (shaped)", object_with(SCORE_KEYS), |v| {
        let body = v.to_string();
        if let Ok((_, post)) = parse_score_body(body.as_bytes()) {
            score_lands(post)?;
        }
        Ok(())
    });
}

// ---- AGS line items ----

fn line_item_checks(body: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(spec) = parse_line_item(body, ToolId::parse("tool-1").unwrap()) {
        prop_assert!(spec.score_maximum > rust_decimal::Decimal::ZERO);
        let stored = serde_json::to_string(&spec).unwrap();
        let back: LineItemSpec = serde_json::from_str(&stored).unwrap();
        prop_assert_eq!(back, spec);
    }
    let _ = parse_line_item_patch(body);
    Ok(())
}

#[test]
fn line_items_from_arbitrary_bytes_never_panic() {
    fuzz("line item (bytes)", arbitrary_body(), |body| {
        line_item_checks(&body)
    });
}

#[test]
fn line_items_of_any_shape_never_panic_and_what_is_accepted_is_kept_exactly() {
    fuzz("line item (shaped)", object_with(LINE_ITEM_KEYS), |v| {
        line_item_checks(v.to_string().as_bytes())
    });
}

// ---- deep linking ----

const CONTENT_ITEM_KEYS: &[&str] = &[
    "type",
    "title",
    "url",
    "custom",
    "lineItem",
    "text",
    "icon",
    "iframe",
    "window",
    "available",
    "submission",
];

fn content_items() -> impl Strategy<Value = Vec<Value>> {
    let line_item = object_with(&["label", "scoreMaximum", "resourceId", "tag"]);
    let item = (
        object_with(CONTENT_ITEM_KEYS),
        prop::option::of(line_item),
        any::<bool>(),
    )
        .prop_map(|(mut item, line_item, resource_link)| {
            if let Some(li) = line_item {
                item["lineItem"] = li;
            }
            if resource_link {
                item["type"] = json!("ltiResourceLink");
            }
            item
        });
    prop::collection::vec(prop_oneof![4 => item, 1 => json_value()], 0..5)
}

#[test]
fn deep_linking_content_items_of_any_shape_never_panic() {
    // A tool whose registered host the fuzzed urls may or may not be on.
    let mut tool = gradebook::services::tools::new_tool(
        "Fuzzed".into(),
        gradebook::services::tools::Grading::Full,
        gradebook::services::tools::Roster {
            access: false,
            hide_names: false,
            hide_emails: false,
        },
        "manual",
    );
    tool.launch_url = Some("https://tool.example/launch".into());
    fuzz("deep linking content items", content_items(), |items| {
        // Read back from their text, as the verified claims are.
        let items = gradebook::json::objects(&Value::Array(items).to_string()).unwrap();
        let _ = plan_items(&items, true, &tool);
        let _ = plan_items(&items, false, &tool);
        Ok(())
    });
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// JWTs that are garbage, or well-formed with any header and claims, or
/// properly signed with any claims; verified against the signer's key.
#[test]
fn deep_linking_jwts_of_any_shape_never_panic() {
    let key = PlatformKey::generate().unwrap();
    let source = ToolKeySource::Jwk(key.public_jwk.clone());
    let cache = JwksCache::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = prop_oneof![
        any::<String>(),
        pieces(&[".", "eyJ", "alg", "none", "=", "-", "_", "AAAA"])
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        (json_value(), json_value(), any::<String>()).prop_map(|(h, c, sig)| format!(
            "{}.{}.{}",
            b64(h.to_string().as_bytes()),
            b64(c.to_string().as_bytes()),
            b64(sig.as_bytes())
        )),
    ];
    let claims = object_with(&["iss", "aud", "sub", "exp", "iat", "nbf", "nonce", "jti"]);
    let input = prop_oneof![
        token.prop_map(|t| (t, false)),
        claims.prop_map(|c| (c.to_string(), true)),
    ];
    fuzz("deep linking JWT", input, |(text, sign)| {
        let token = if sign {
            let claims: Value = serde_json::from_str(&text).unwrap();
            key.sign(&claims).unwrap()
        } else {
            text
        };
        let _ = unverified_issuer(&token);
        let expect = Expect::new("tool-client", "https://platform.example");
        let _ = runtime.block_on(verify_tool_jwt(&token, &source, &cache, &expect));
        Ok(())
    });
}

// ---- backfill ----

fn course_view() -> CourseView {
    let mut spec = LineItemSpec::new("Homework 1", rust_decimal::Decimal::from(10));
    spec.category = None;
    let mut view = CourseView {
        course_id: "C-1".into(),
        title: "Course".into(),
        term: "2026FA".into(),
        policy: GradingPolicy::default(),
        locked: false,
        tool_ids: Default::default(),
        line_items: vec![LineItemRow {
            line_item_id: "hw1".into(),
            spec,
            deleted: false,
        }],
        resource_links: Default::default(),
        enrollments: Default::default(),
        scores: Default::default(),
    };
    view.enrollments.insert(
        "ada".into(),
        EnrollmentRow {
            user_id: "ada".into(),
            role: Role::Learner,
            status: EnrollmentStatus::Active,
            name: None,
            email: None,
            first_launch: None,
            latest_launch: None,
        },
    );
    view
}

/// Reads every row and checks each against the course; returns the rows.
fn read_all(mut rows: impl RowSource, view: &CourseView) -> Result<usize, TestCaseError> {
    let mut n = 0;
    let mut last_line = 0;
    while let Some((line, row)) = rows.next_row() {
        n += 1;
        prop_assert!(n < 100_000, "the reader does not end");
        prop_assert!(
            line >= last_line,
            "line numbers go back: {} after {}",
            line,
            last_line
        );
        last_line = line;
        if let Ok(raw) = row {
            if let Ok(checked) = check_row(view, line, raw) {
                let stored = serde_json::to_string(&checked.post).unwrap();
                let back: ScorePost = serde_json::from_str(&stored).unwrap();
                prop_assert_eq!(back, checked.post);
            }
        }
    }
    Ok(n)
}

/// Pieces of a CSV file besides the column names.
const CSV_PIECES: &[&str] = &[
    "line_item_id,user_id,score_given,score_maximum,timestamp,comment\n",
    "hw1",
    "ada",
    ",",
    "\"",
    "\"\"",
    "\n",
    "\r\n",
    "\r",
    "\u{feff}",
    "7",
    "10",
    "1e309",
    "NaN",
    "-0",
    "2026-09-10T10:00:00Z",
    "2026-09-10 10:00",
    " ",
    "\t",
    "\0",
    "é",
];

#[test]
fn backfill_csv_of_any_shape_never_panics() {
    let view = course_view();
    let header = "line_item_id,user_id,score_given,score_maximum,timestamp,comment\n";
    // The column names and the other pieces, as one alphabet.
    let alphabet: &'static [&'static str] =
        Vec::leak(COLUMNS.iter().chain(CSV_PIECES).copied().collect());
    let input = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        pieces(alphabet),
        // A good header, then anything.
        pieces(alphabet).prop_map(move |b| [header.as_bytes(), &b].concat()),
    ];
    fuzz("backfill CSV", input, |bytes| {
        if let Ok(rows) = CsvRows::new(Cursor::new(bytes)) {
            read_all(rows, &view)?;
        }
        Ok(())
    });
}

#[test]
fn backfill_json_lines_of_any_shape_never_panic() {
    let view = course_view();
    let row = object_with(&COLUMNS);
    let input = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        pieces(JSON_PIECES),
        prop::collection::vec(
            (row, prop::sample::select(&["\n", "\r\n", "\n\n", "\r"][..])),
            0..6
        )
        .prop_map(|rows| rows
            .into_iter()
            .map(|(r, end)| format!("{r}{end}"))
            .collect::<String>()
            .into_bytes()),
    ];
    fuzz("backfill JSON lines", input, |bytes| {
        read_all(JsonLines::new(Cursor::new(bytes)), &view)?;
        Ok(())
    });
}
