//! Faults against real processes: the built `gradebook serve` binary runs
//! as a child process on a real database and is killed, loses its database,
//! races itself and shares its database with a second node. A tool streams
//! AGS score posts through it the whole time. Whatever happens, every score
//! that got a 2xx is in the event log exactly once and in the projection,
//! and the projection equals a replay of the log.
//!
//! Every wait polls with a deadline; none relies on a fixed sleep.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use common::{call, FakeTool, ALL_SCOPES};
use gradebook::projections::db::Db;
use gradebook::projections::projector;
use gradebook::projections::projector::events::Checkpoint;
use gradebook::services::api_tokens::{create, ApiRole};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::Row;

const COURSE: &str = "FAULT-101";
const SCORE_MAX: u64 = 1_000_000;

// ---------------------------------------------------------------------------
// A node: `gradebook serve` as a child process.

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

struct Node {
    child: tokio::process::Child,
    base: String,
    log: PathBuf,
}

impl Node {
    /// Starts a node on the store and waits until it answers `/healthz`.
    async fn start(db_url: &str, logs: &Path, name: &str) -> Node {
        let mut last = String::new();
        // A free port may be taken by someone else before the node binds it.
        for attempt in 0..3 {
            let port = free_port();
            let log = logs.join(format!("{name}-{attempt}.log"));
            let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gradebook"))
                .arg("serve")
                .env("DATABASE_URL", db_url)
                .env("GRADEBOOK_BIND", format!("127.0.0.1:{port}"))
                .env("GRADEBOOK_DB_CONNECTIONS", "8")
                .env("RUST_LOG", "warn,gradebook_projections=info")
                .env_remove("GRADEBOOK_PUBLIC_URL")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn gradebook serve");
            let mut node = Node {
                child,
                base: format!("http://127.0.0.1:{port}"),
                log,
            };
            match node.wait_healthy(Duration::from_secs(30)).await {
                Ok(()) => return node,
                Err(why) => last = why,
            }
        }
        panic!("the node did not start: {last}");
    }

    async fn wait_healthy(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let client = reqwest::Client::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", tail(&self.log)));
            }
            let res = client
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if res.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.start_kill();
                return Err(format!("no answer in time:\n{}", tail(&self.log)));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9`: no shutdown code runs.
    async fn kill9(&mut self) {
        self.child.start_kill().expect("SIGKILL the node");
        let _ = self.child.wait().await;
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn readyz(&self) -> Option<(u16, Value)> {
        let res = reqwest::Client::new()
            .get(format!("{}/readyz", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()?;
        let status = res.status().as_u16();
        Some((status, res.json().await.unwrap_or(Value::Null)))
    }

    async fn is_leader(&self) -> Option<bool> {
        match self.readyz().await {
            Some((200, r)) => r["projector"]["leader"].as_bool(),
            _ => None,
        }
    }

    /// Waits until the log is fully applied, as this node sees it.
    async fn wait_caught_up(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some((200, r)) = self.readyz().await {
                if r["projector"]["lag"]["events"] == 0 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the projector did not catch up:\n{}",
                tail(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

// ---------------------------------------------------------------------------
// The tool's side: a registered tool deployed in a course, learners and
// line items, and an AGS token.

#[derive(Clone)]
struct World {
    client: reqwest::Client,
    tool_token: String,
    registrar: String,
    sis: String,
    items: Vec<String>,
    users: Vec<String>,
    /// Score timestamps count up from here, one second per post number.
    epoch: DateTime<Utc>,
}

/// Checks a set-up write answered 201 and waits until it reads back. When
/// another transaction on the same PostgreSQL database holds the projector
/// back for longer than the 5 s read-your-write wait, a create answers 404
/// from its read-back although it was written; the set-up then waits for
/// the projection instead of failing.
async fn settled(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    status: u16,
    body: &Value,
    path: &str,
) {
    assert!(
        status == 201
            || (status == 404
                && body["error"]
                    .as_str()
                    .is_some_and(|e| e.ends_with("not_found"))),
        "{status}: {body}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let res = client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never became readable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sets the course up over HTTP on `base`, as a registrar, the SIS and a
/// tool would.
async fn world(base: &str, db_url: &str, users: usize, items: usize) -> World {
    let client = reqwest::Client::new();
    let db = Db::connect(db_url, 2).await.expect("open the node's store");
    let registrar = create(&db, ApiRole::Registrar, None).await.unwrap().1;
    let sis = create(&db, ApiRole::Sis, None).await.unwrap().1;
    close(db).await;
    let tool = FakeTool::register_at(
        &client,
        base,
        &registrar,
        json!({"name": "Quiz engine", "grading": "full"}),
    )
    .await;
    let tool_id = tool.tool_id.as_str();
    let (st, b) = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/api/courses"),
        &sis,
        json!({"course_id": COURSE, "title": "Faults", "term": "2026FA", "tool_ids": [tool_id]}),
    )
    .await;
    settled(
        &client,
        base,
        &sis,
        st,
        &b,
        &format!("/api/courses/{COURSE}"),
    )
    .await;
    let users: Vec<String> = (0..users).map(|i| format!("learner{i:02}")).collect();
    for u in &users {
        let (st, b) = call(
            &client,
            reqwest::Method::PUT,
            format!("{base}/api/courses/{COURSE}/enrollments/{u}"),
            &sis,
            json!({"role": "Learner"}),
        )
        .await;
        settled(
            &client,
            base,
            &sis,
            st,
            &b,
            &format!("/api/courses/{COURSE}/enrollments/{u}"),
        )
        .await;
    }
    let tool_token = tool.token_at(&client, base, ALL_SCOPES).await;
    let mut ids = Vec::new();
    for i in 0..items {
        let (st, item) = call(
            &client,
            reqwest::Method::POST,
            format!("{base}/lti/courses/{COURSE}/lineitems"),
            &tool_token,
            json!({"label": format!("Quiz {i}"), "scoreMaximum": SCORE_MAX}),
        )
        .await;
        assert_eq!(st, 201, "{item}");
        ids.push(
            item["id"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string(),
        );
    }
    World {
        client,
        tool_token,
        registrar,
        sis,
        items: ids,
        users,
        // Whole seconds, a day back: every post stays well before "now".
        epoch: DateTime::from_timestamp(Utc::now().timestamp() - 86_400, 0).unwrap(),
    }
}

/// One score post: `given` is also the post's number, which makes it
/// unique per cell and sets its timestamp (later posts are newer).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Post {
    user: String,
    item: String,
    given: u64,
}

/// What the server said: a status and the error or result code, or
/// nothing at all (the connection failed or timed out).
#[derive(Debug, Clone)]
enum Answer {
    Status(u16, String),
    NoAnswer(#[allow(dead_code)] String),
}

impl World {
    fn timestamp(&self, given: u64) -> String {
        (self.epoch + chrono::TimeDelta::seconds(given as i64))
            .to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    fn score_body(&self, p: &Post) -> String {
        json!({
            "userId": p.user, "scoreGiven": p.given, "scoreMaximum": SCORE_MAX,
            "activityProgress": "Completed", "gradingProgress": "FullyGraded",
            "timestamp": self.timestamp(p.given),
        })
        .to_string()
    }

    async fn post(&self, base: &str, p: &Post, timeout: Duration) -> Answer {
        let res = self
            .client
            .post(format!(
                "{base}/lti/courses/{COURSE}/lineitems/{}/scores",
                p.item
            ))
            .bearer_auth(&self.tool_token)
            .header("content-type", "application/vnd.ims.lis.v1.score+json")
            .body(self.score_body(p))
            .timeout(timeout)
            .send()
            .await;
        match res {
            Err(e) => Answer::NoAnswer(e.to_string()),
            Ok(res) => {
                let status = res.status().as_u16();
                let ct = common::fixtures::header(res.headers(), "content-type");
                match res.text().await {
                    Err(e) => Answer::NoAnswer(e.to_string()),
                    Ok(text) => {
                        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        if status >= 400 {
                            // Every refusal is in the JSON error shape.
                            assert!(ct.starts_with("application/json"), "{status} {ct}: {text}");
                            assert!(
                                body["error"].is_string()
                                    && body["message"].is_string()
                                    && body["request_id"].is_string(),
                                "{status}: {text}"
                            );
                        }
                        let code = body["result"]
                            .as_str()
                            .or(body["error"].as_str())
                            .unwrap_or_default()
                            .to_string();
                        Answer::Status(status, code)
                    }
                }
            }
        }
    }

    /// Every kept result of every item, as the tool reads them back.
    async fn results(&self, base: &str) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for item in &self.items {
            let res = self
                .client
                .get(format!(
                    "{base}/lti/courses/{COURSE}/lineitems/{item}/results?limit=1000"
                ))
                .bearer_auth(&self.tool_token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let list: Value = res.json().await.unwrap();
            for r in list.as_array().unwrap() {
                let score = r["resultScore"].as_u64().expect("a whole resultScore");
                out.insert(
                    (r["userId"].as_str().unwrap().to_string(), item.clone()),
                    score,
                );
            }
        }
        out
    }
}

/// A log of what a load sent and what came back.
#[derive(Default)]
struct Ledger {
    sent: Mutex<Vec<(Post, Answer)>>,
    acknowledged: AtomicUsize,
}

impl Ledger {
    fn record(&self, p: Post, a: Answer) {
        if matches!(a, Answer::Status(200..=299, _)) {
            self.acknowledged.fetch_add(1, Ordering::Relaxed);
        }
        self.sent.lock().unwrap().push((p, a));
    }

    fn acked(&self) -> usize {
        self.acknowledged.load(Ordering::Relaxed)
    }

    fn entries(&self) -> Vec<(Post, Answer)> {
        self.sent.lock().unwrap().clone()
    }
}

/// Streams posts from one task per user (its own learner, cycling over
/// the items, numbers counting up) to the nodes in turn, until `stop` is
/// set, or until a node stops answering when `stop_on_no_answer`.
fn load(
    world: &World,
    bases: Vec<String>,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
    stop_on_no_answer: bool,
) -> Vec<tokio::task::JoinHandle<()>> {
    world
        .users
        .iter()
        .enumerate()
        .map(|(t, user)| {
            let w = world.clone();
            let user = user.clone();
            let bases = bases.clone();
            let ledger = ledger.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let p = Post {
                        user: user.clone(),
                        item: w.items[(n as usize + t) % w.items.len()].clone(),
                        given: n,
                    };
                    let base = &bases[(n as usize + t) % bases.len()];
                    let a = w.post(base, &p, Duration::from_secs(20)).await;
                    let failed = matches!(a, Answer::NoAnswer(_));
                    let refused = matches!(a, Answer::Status(s, _) if s >= 300);
                    ledger.record(p, a);
                    if failed && stop_on_no_answer {
                        return;
                    }
                    if failed || refused {
                        // Do not spin while the store is away.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect()
}

async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// Checking the store against the ledger.

/// Every score event in the log: (user, item, given, event type).
async fn score_events(db: &Db) -> Vec<(String, String, u64, String)> {
    let rows: Vec<(String, String)> = match db {
        Db::Postgres(pool) => sqlx::query(
            "SELECT event_type, payload::text FROM events WHERE aggregate_type = 'score'",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect(),
        Db::Sqlite(pool) => {
            sqlx::query("SELECT event_type, payload FROM events WHERE aggregate_type = 'score'")
                .fetch_all(pool)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        }
    };
    rows.into_iter()
        .map(|(kind, payload)| {
            let v: Value = serde_json::from_str(&payload).unwrap();
            let e = &v[&kind];
            let given = Decimal::from_str(e["post"]["score_given"].as_str().unwrap()).unwrap();
            (
                e["user_id"].as_str().unwrap().to_string(),
                e["line_item_id"].as_str().unwrap().to_string(),
                u64::try_from(given.trunc().mantissa()).unwrap(),
                kind,
            )
        })
        .collect()
}

/// The counts a check found; `lost` must be 0.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    acknowledged: usize,
    lost: usize,
    duplicated: usize,
    /// Score events in the log.
    #[allow(dead_code)]
    events: usize,
}

/// Every acknowledged post is in the log exactly once as accepted; no post
/// is in the log twice; each cell the tool reads back holds the newest
/// accepted post of the log, which is at least as new as the newest
/// acknowledged one; and the read tables equal a replay of the log.
async fn check(node: &Node, db_url: &str, world: &World, ledger: &Ledger) -> Tally {
    node.wait_caught_up(Duration::from_secs(30)).await;
    let db = Db::connect(db_url, 2).await.unwrap();
    let events = score_events(&db).await;
    let mut seen: HashMap<(String, String, u64), Vec<String>> = HashMap::new();
    for (u, i, g, kind) in &events {
        seen.entry((u.clone(), i.clone(), *g))
            .or_default()
            .push(kind.clone());
    }
    let mut tally = Tally {
        events: events.len(),
        ..Tally::default()
    };
    tally.duplicated = seen.values().filter(|k| k.len() > 1).count();
    let mut newest_acked: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (p, a) in ledger.entries() {
        tally.sent += 1;
        if let Answer::Status(200..=299, code) = a {
            tally.acknowledged += 1;
            assert_eq!(code, "accepted", "{p:?}: each post is new");
            let key = (p.user.clone(), p.item.clone());
            let newest = newest_acked.entry(key).or_default();
            *newest = (*newest).max(p.given);
            match seen.get(&(p.user.clone(), p.item.clone(), p.given)) {
                Some(kinds) if kinds == &["ScoreAccepted".to_string()] => {}
                other => {
                    eprintln!("acknowledged {p:?} is in the log as {other:?}");
                    tally.lost += 1;
                }
            }
        }
    }
    // The projection as the tool reads it.
    let mut newest_in_log: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (u, i, g, kind) in &events {
        if kind == "ScoreAccepted" {
            let n = newest_in_log.entry((u.clone(), i.clone())).or_default();
            *n = (*n).max(*g);
        }
    }
    let results = world.results(&node.base).await;
    assert_eq!(
        results, newest_in_log,
        "the projection holds the newest post of the log in every cell"
    );
    for (cell, acked) in &newest_acked {
        let kept = results.get(cell).copied().unwrap_or_default();
        if kept < *acked {
            eprintln!("{cell:?} keeps {kept}, older than the acknowledged {acked}");
            tally.lost += 1;
        }
    }
    // The live read tables equal a replay of the log.
    let live = projector::dump_read_tables(&db).await.unwrap();
    projector::replay(&db, |_| {}).await.unwrap();
    assert_eq!(
        projector::dump_read_tables(&db).await.unwrap(),
        live,
        "the projection equals a replay of the log"
    );
    close(db).await;
    println!("{tally:?}");
    assert_eq!(tally.duplicated, 0, "no post is in the log twice");
    assert_eq!(tally.lost, 0, "no acknowledged score is lost");
    tally
}

/// The URL of the per-test PostgreSQL database `#[sqlx::test]` made.
fn pg_url(connect: &sqlx::postgres::PgConnectOptions) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL for the PostgreSQL tests");
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{}", connect.get_database().unwrap())
}

async fn close(db: Db) {
    match db {
        Db::Postgres(p) => p.close().await,
        Db::Sqlite(p) => p.close().await,
    }
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("gradebook.db").display())
}

async fn checkpoint(db_url: &str) -> Checkpoint {
    let db = Db::connect(db_url, 1).await.unwrap();
    let cp = projector::load_checkpoint(&db).await.unwrap();
    close(db).await;
    cp
}

// ---------------------------------------------------------------------------
// 1. Crash mid-load.

async fn crash_mid_load(db_url: &str, logs: &Path) {
    let mut node = Node::start(db_url, logs, "first").await;
    let w = world(&node.base, db_url, 6, 4).await;
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(
        &w,
        vec![node.base.clone()],
        ledger.clone(),
        stop.clone(),
        true,
    );
    let l = ledger.clone();
    wait_for("150 acknowledged posts", Duration::from_secs(60), || {
        l.acked() >= 150
    })
    .await;
    let before = checkpoint(db_url).await;
    node.kill9().await;
    for t in tasks {
        t.await.unwrap();
    }
    let in_flight = ledger
        .entries()
        .iter()
        .filter(|(_, a)| matches!(a, Answer::NoAnswer(_)))
        .count();
    assert!(in_flight > 0, "the kill cut posts off mid-stream");

    let node = Node::start(db_url, logs, "restarted").await;
    // The projector starts from its stored checkpoint, not from the start.
    let (status, r) = node.readyz().await.unwrap();
    assert_eq!(status, 200, "{r}");
    let resumed = Checkpoint {
        tx: r["projector"]["checkpoint"]["tx"].as_i64().unwrap(),
        position: r["projector"]["checkpoint"]["position"].as_i64().unwrap(),
    };
    assert!(
        resumed >= before,
        "resumed at {resumed:?}, the checkpoint was {before:?}"
    );
    let tally = check(&node, db_url, &w, &ledger).await;
    assert!(tally.acknowledged >= 150);
    // The restarted node takes new posts.
    let p = Post {
        user: w.users[0].clone(),
        item: w.items[0].clone(),
        given: 80_000,
    };
    let a = w.post(&node.base, &p, Duration::from_secs(20)).await;
    assert!(
        matches!(&a, Answer::Status(200, c) if c == "accepted"),
        "{a:?}"
    );
    let mut node = node;
    node.kill9().await;
    println!(
        "crash mid-load: {} posts sent, {} acknowledged, {in_flight} cut off by kill -9, 0 lost",
        tally.sent, tally.acknowledged
    );
}

#[sqlx::test(migrations = false)]
async fn crash_mid_load_loses_no_acknowledged_score_postgres(
    _opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let logs = tempfile::tempdir().unwrap();
    crash_mid_load(&pg_url(&connect), logs.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_load_loses_no_acknowledged_score_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    crash_mid_load(&sqlite_url(dir.path()), dir.path()).await;
}

// ---------------------------------------------------------------------------
// 3. Concurrency on one line item, and 5. idempotent retries.

async fn concurrency(db_url: &str, logs: &Path) {
    let node = Node::start(db_url, logs, "node").await;
    let w = world(&node.base, db_url, 32, 1).await;
    let item = w.items[0].clone();
    let conflicts_before = node.metric("gradebook_write_conflicts_total").await;

    // 32 learners at once on the same column.
    let posts: Vec<Post> = w
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| Post {
            user: u.clone(),
            item: item.clone(),
            given: 10 + i as u64,
        })
        .collect();
    let answers = futures::future::join_all(
        posts
            .iter()
            .map(|p| w.post(&node.base, p, Duration::from_secs(30))),
    )
    .await;
    for (p, a) in posts.iter().zip(&answers) {
        assert!(
            matches!(a, Answer::Status(200, c) if c == "accepted"),
            "{p:?}: {a:?}"
        );
    }
    node.wait_caught_up(Duration::from_secs(60)).await;
    let results = w.results(&node.base).await;
    for p in &posts {
        assert_eq!(results[&(p.user.clone(), item.clone())], p.given, "{p:?}");
    }

    // 64 posts for one learner at once, sent in shuffled order: every one
    // is answered 200 (none 503), the newest timestamp wins whatever order
    // they land in, and each is recorded once.
    let one = w.users[0].clone();
    let mut numbers: Vec<u64> = (1000..1064).collect();
    numbers.sort_by_key(|n| (n * 7919) % 64);
    let posts: Vec<Post> = numbers
        .iter()
        .map(|n| Post {
            user: one.clone(),
            item: item.clone(),
            given: *n,
        })
        .collect();
    let answers = futures::future::join_all(
        posts
            .iter()
            .map(|p| w.post(&node.base, p, Duration::from_secs(30))),
    )
    .await;
    for (p, a) in posts.iter().zip(&answers) {
        assert!(
            matches!(a, Answer::Status(200, c) if c == "accepted" || c == "ignored_stale"),
            "{p:?}: {a:?}"
        );
    }
    node.wait_caught_up(Duration::from_secs(60)).await;
    let results = w.results(&node.base).await;
    assert_eq!(
        results[&(one.clone(), item.clone())],
        1063,
        "the newest post is kept"
    );
    let db = Db::connect(db_url, 2).await.unwrap();
    let events = score_events(&db).await;
    for p in &posts {
        let n = events
            .iter()
            .filter(|(u, i, g, _)| *u == p.user && *i == p.item && *g == p.given)
            .count();
        assert_eq!(n, 1, "{p:?} is recorded once");
    }
    // Writers of one record on one node take turns instead of colliding.
    let conflicts = node.metric("gradebook_write_conflicts_total").await - conflicts_before;
    assert_eq!(conflicts, 0.0, "posts on one record collided on one node");

    // The same post 8 times at once (a tool retrying in a hurry): one grade change.
    let events_before = gradebook::projections::projector::events::count(&db)
        .await
        .unwrap();
    let same = Post {
        user: w.users[1].clone(),
        item: item.clone(),
        given: 5000,
    };
    let answers = futures::future::join_all(
        (0..8).map(|_| w.post(&node.base, &same, Duration::from_secs(30))),
    )
    .await;
    let codes: Vec<String> = answers
        .iter()
        .map(|a| match a {
            Answer::Status(200, c) => c.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        codes.iter().filter(|c| *c == "accepted").count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| *c == "unchanged").count(),
        7,
        "{codes:?}"
    );
    assert_eq!(
        gradebook::projections::projector::events::count(&db)
            .await
            .unwrap(),
        events_before + 1
    );

    // The final state equals a serial replay of the log.
    node.wait_caught_up(Duration::from_secs(30)).await;
    let live = projector::dump_read_tables(&db).await.unwrap();
    projector::replay(&db, |_| {}).await.unwrap();
    assert_eq!(projector::dump_read_tables(&db).await.unwrap(), live);
    close(db).await;
    let mut node = node;
    node.kill9().await;
    println!("concurrency: 104 concurrent posts on one line item, {conflicts} conflicts, 0 lost");
}

#[sqlx::test(migrations = false)]
async fn concurrent_posts_on_one_line_item_lose_no_update_postgres(
    _opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let logs = tempfile::tempdir().unwrap();
    concurrency(&pg_url(&connect), logs.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_on_one_line_item_lose_no_update_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    concurrency(&sqlite_url(dir.path()), dir.path()).await;
}

/// Holds the store's write lock from outside, so the node's next write
/// stalls until `release`.
enum Stall {
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

async fn stall_writes(db: &Db) -> Stall {
    match db {
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .unwrap();
            Stall::Pg(tx)
        }
        Db::Sqlite(pool) => Stall::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await.unwrap()),
    }
}

async fn release(s: Stall) {
    match s {
        Stall::Pg(tx) => tx.rollback().await.unwrap(),
        Stall::Sqlite(tx) => tx.rollback().await.unwrap(),
    }
}

async fn retry_after_timeout(db_url: &str, logs: &Path) {
    let node = Node::start(db_url, logs, "node").await;
    let w = world(&node.base, db_url, 2, 1).await;
    let db = Db::connect(db_url, 2).await.unwrap();
    let p = Post {
        user: w.users[0].clone(),
        item: w.items[0].clone(),
        given: 77,
    };
    // The store is slow: the tool gives up waiting...
    let stall = stall_writes(&db).await;
    let first = w.post(&node.base, &p, Duration::from_millis(300)).await;
    assert!(matches!(first, Answer::NoAnswer(_)), "{first:?}");
    release(stall).await;
    // ...and sends the same post again, more than once.
    let mut codes = Vec::new();
    for _ in 0..3 {
        match w.post(&node.base, &p, Duration::from_secs(30)).await {
            Answer::Status(200, c) => codes.push(c),
            other => panic!("{other:?}"),
        }
    }
    // The first try may or may not have landed; either way exactly one
    // grade change is recorded and later retries change nothing.
    assert!(
        codes[0] == "accepted" || codes[0] == "unchanged",
        "{codes:?}"
    );
    assert_eq!(&codes[1..], ["unchanged", "unchanged"]);
    let events = score_events(&db).await;
    let recorded: Vec<_> = events
        .iter()
        .filter(|(u, i, g, _)| *u == p.user && *i == p.item && *g == p.given)
        .collect();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].3, "ScoreAccepted");
    let count = gradebook::projections::projector::events::count(&db)
        .await
        .unwrap();
    assert!(
        matches!(w.post(&node.base, &p, Duration::from_secs(30)).await, Answer::Status(200, c) if c == "unchanged")
    );
    assert_eq!(
        gradebook::projections::projector::events::count(&db)
            .await
            .unwrap(),
        count
    );
    node.wait_caught_up(Duration::from_secs(60)).await;
    assert_eq!(
        w.results(&node.base).await[&(p.user.clone(), p.item.clone())],
        77
    );
    close(db).await;
    let mut node = node;
    node.kill9().await;
}

#[sqlx::test(migrations = false)]
async fn a_score_retried_after_a_timeout_is_one_grade_change_postgres(
    _opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let logs = tempfile::tempdir().unwrap();
    retry_after_timeout(&pg_url(&connect), logs.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_retried_after_a_timeout_is_one_grade_change_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    retry_after_timeout(&sqlite_url(dir.path()), dir.path()).await;
}

// ---------------------------------------------------------------------------
// 4. Two nodes on one PostgreSQL database.

async fn wait_one_leader(a: &Node, b: &Node, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        match (a.is_leader().await, b.is_leader().await) {
            (Some(true), Some(false)) => return true,
            (Some(false), Some(true)) => return false,
            (Some(true), Some(true)) => panic!("both nodes say they project"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "no node became the projector");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn two_nodes_share_the_store_and_the_survivor_takes_over_projecting(
    _opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let logs = tempfile::tempdir().unwrap();
    let url = pg_url(&connect);
    let a = Node::start(&url, logs.path(), "a").await;
    let b = Node::start(&url, logs.path(), "b").await;
    let a_leads = wait_one_leader(&a, &b, Duration::from_secs(10)).await;
    let (mut leader, survivor) = if a_leads { (a, b) } else { (b, a) };
    let w = world(&survivor.base, &url, 6, 3).await;

    // Both accept writes.
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let bases = vec![leader.base.clone(), survivor.base.clone()];
    let tasks = load(&w, bases, ledger.clone(), stop.clone(), false);
    let l = ledger.clone();
    wait_for("60 acknowledged posts", Duration::from_secs(60), || {
        l.acked() >= 60
    })
    .await;
    let by_node = |base: &str| {
        ledger
            .entries()
            .iter()
            .filter(|(p, a)| {
                let i = (p.given as usize + w.users.iter().position(|u| *u == p.user).unwrap()) % 2;
                [leader.base.as_str(), survivor.base.as_str()][i] == base
                    && matches!(a, Answer::Status(200, _))
            })
            .count()
    };
    assert!(by_node(&leader.base) > 0 && by_node(&survivor.base) > 0);
    assert_eq!(
        survivor.is_leader().await,
        Some(false),
        "exactly one node projects"
    );

    // Kill the projecting node mid-load; the other takes over.
    let acked_at_kill = ledger.acked();
    leader.kill9().await;
    let killed = Instant::now();
    loop {
        if survivor.is_leader().await == Some(true) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "no takeover:\n{}",
            tail(&survivor.log)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let takeover = killed.elapsed();
    assert!(
        takeover < Duration::from_secs(5),
        "took over after {takeover:?}"
    );
    // The survivor keeps taking writes, and projects them.
    let l = ledger.clone();
    wait_for(
        "40 more acknowledged posts",
        Duration::from_secs(60),
        || l.acked() >= acked_at_kill + 40,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    // Only posts to the killed node may have failed, and only as no answer.
    for (p, a) in ledger.entries() {
        match a {
            Answer::Status(200, _) | Answer::NoAnswer(_) => {}
            other => panic!("{p:?}: {other:?}"),
        }
    }
    let tally = check(&survivor, &url, &w, &ledger).await;
    println!(
        "two nodes: {} posts acknowledged across both, takeover {} ms after kill -9",
        tally.acknowledged,
        takeover.as_millis()
    );
    let mut survivor = survivor;
    survivor.kill9().await;
}

// ---------------------------------------------------------------------------
// 2. The database restarts under load (a throwaway PostgreSQL cluster of
// the test's own, never the shared server).

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
fn pg_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d)
}

struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Cluster {
    /// PostgreSQL refuses to run as root: run it as `postgres` then.
    fn command(&self, program: &str) -> tokio::process::Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut c = tokio::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            tokio::process::Command::new(path)
        }
    }

    async fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let out = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail(&self.dir.path().join("postgres.log"))
            ))
        }
    }

    async fn init(bin: PathBuf) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("gradebook-fault-pg")
            .tempdir_in("/tmp")
            .unwrap();
        let mut cluster = Cluster { bin, dir, port: 0 };
        std::fs::create_dir(cluster.dir.path().join("sock")).unwrap();
        if is_root() {
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(cluster.dir.path())
                .status()
                .unwrap();
            assert!(ok.success(), "chown the cluster directory to postgres");
        }
        let data = cluster.data();
        cluster
            .run(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            )
            .await
            .unwrap();
        for _ in 0..3 {
            cluster.port = free_port();
            if cluster.start().await.is_ok() {
                return cluster;
            }
        }
        panic!("the throwaway cluster did not start");
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn start(&self) -> Result<(), String> {
        // fsync off: the cluster is thrown away, and stopping the server
        // (even with -m immediate) keeps what the OS already holds.
        // Commits stay synchronous, so an acknowledged write is in the WAL.
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().join("sock").display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        )
        .await
    }

    async fn stop(&self, mode: &str) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", mode, "-w", "-t", "60", "stop"],
        )
        .await
        .unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let args = [
            "-D",
            data.as_str(),
            "-m",
            "immediate",
            "-w",
            "-t",
            "30",
            "stop",
        ];
        let _ = if is_root() {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(path)
                .args(args)
                .output()
        } else {
            std::process::Command::new(path).args(args).output()
        };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarting_under_load_gives_503_then_recovers_losing_nothing() {
    let Some(bin) = pg_bin_dir() else {
        eprintln!("\n\n!!!!! SKIPPED: no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin; install PostgreSQL to run the database-restart fault test !!!!!\n\n");
        return;
    };
    let cluster = Cluster::init(bin).await;
    let url = cluster.url();
    let logs = tempfile::tempdir().unwrap();
    let mut node = Node::start(&url, logs.path(), "node").await;
    let w = world(&node.base, &url, 4, 2).await;
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(
        &w,
        vec![node.base.clone()],
        ledger.clone(),
        stop.clone(),
        false,
    );
    let l = ledger.clone();
    wait_for("60 acknowledged posts", Duration::from_secs(60), || {
        l.acked() >= 60
    })
    .await;

    // The database goes away mid-load, without a clean shutdown.
    cluster.stop("immediate").await;
    let down = Instant::now();
    // Writes answer 503 in the JSON error shape (the load asserts the shape
    // of every refusal), and /readyz says why.
    let probe = Post {
        user: w.users[0].clone(),
        item: w.items[0].clone(),
        // Still in the past (a day before now), and never sent by the load.
        given: 80_000,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match w.post(&node.base, &probe, Duration::from_secs(20)).await {
            Answer::Status(503, code) => {
                assert_eq!(code, "unavailable");
                break;
            }
            other => assert!(
                Instant::now() < deadline,
                "while the database is down: {other:?}"
            ),
        }
    }
    let (status, r) = node.readyz().await.unwrap();
    assert_eq!(status, 503, "{r}");
    assert_eq!(r["status"], "unavailable");
    assert!(r["reason"].as_str().unwrap().contains("database"), "{r}");
    let l = ledger.clone();
    let acked_down = l.acked();
    wait_for(
        "some refused posts during the outage",
        Duration::from_secs(30),
        || {
            l.entries()
                .iter()
                .filter(|(_, a)| matches!(a, Answer::Status(503, _)))
                .count()
                >= 4
        },
    )
    .await;

    // It comes back; the same server process recovers by itself.
    cluster.start().await.unwrap();
    let outage = down.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.readyz().await.map(|r| r.0) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "not ready again:\n{}",
            tail(&node.log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let l = ledger.clone();
    wait_for(
        "40 acknowledged posts after the restart",
        Duration::from_secs(60),
        || l.acked() >= acked_down + 40,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(node.is_running(), "the server was never restarted");
    // Nothing but success or 503 (never a 500), and no dropped connection.
    let mut refused = 0;
    for (p, a) in ledger.entries() {
        match a {
            Answer::Status(200, _) => {}
            Answer::Status(503, _) => refused += 1,
            other => panic!("{p:?}: {other:?}\n{}", tail(&node.log)),
        }
    }
    let tally = check(&node, &url, &w, &ledger).await;
    println!(
        "database restart: outage {} ms, {refused} posts answered 503, {} acknowledged, 0 lost",
        outage.as_millis(),
        tally.acknowledged
    );
    node.kill9().await;
}

// ---------------------------------------------------------------------------
// 6. Races against a lock, a drop and a deletion: many tools post while a
//    registrar locks the course (on the same node or on the other one), the
//    SIS drops a learner or a tool deletes a column. Once that answered, no
//    score is applied: the log holds no accepted score after the closing
//    event (in position order and, on PostgreSQL, in the projector's
//    (transaction, position) order), the grades do not change, and every
//    post sent after it is refused.

/// Every event of the log as (aggregate type, aggregate id, event type),
/// in each order the log is read in: position, and on PostgreSQL also the
/// projector's (tx_id, position).
async fn log_orders(db: &Db) -> Vec<Vec<(String, String, String)>> {
    let mut sqls =
        vec!["SELECT aggregate_type, aggregate_id, event_type FROM events ORDER BY position"];
    if matches!(db, Db::Postgres(_)) {
        sqls.push(
            "SELECT aggregate_type, aggregate_id, event_type FROM events ORDER BY tx_id, position",
        );
    }
    let mut out = Vec::new();
    for sql in sqls {
        let rows: Vec<(String, String, String)> = match db {
            Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
            Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        };
        out.push(rows);
    }
    out
}

/// Asserts that, in every order of the log, no score event for which
/// `scored` holds is accepted after the `nth` event (counting from 0) for
/// which `closes` holds, up to the next event for which `opens` holds.
async fn nothing_accepted_after(
    db: &Db,
    what: &str,
    nth: usize,
    closes: impl Fn(&str, &str, &str) -> bool,
    opens: impl Fn(&str, &str, &str) -> bool,
    scored: impl Fn(&str) -> bool,
) -> usize {
    let mut before = 0;
    for log in log_orders(db).await {
        let at = log
            .iter()
            .enumerate()
            .filter(|(_, (t, id, e))| closes(t, id, e))
            .nth(nth)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("no {what} event #{nth} in the log"));
        let after: Vec<_> = log[at + 1..]
            .iter()
            .take_while(|(t, id, e)| !opens(t, id, e))
            .filter(|(t, id, e)| t == "score" && e == "ScoreAccepted" && scored(id))
            .collect();
        assert!(
            after.is_empty(),
            "{} scores accepted after {what} in the log: {:?}",
            after.len(),
            &after[..after.len().min(5)]
        );
        before = log[..at]
            .iter()
            .filter(|(t, id, e)| t == "score" && e == "ScoreAccepted" && scored(id))
            .count();
    }
    before
}

/// What one racing post was told, and when it was sent and answered.
#[derive(Debug, Clone)]
struct Raced {
    post: Post,
    sent: Instant,
    answered: Instant,
    answer: Answer,
}

/// 32 writers posting new scores as fast as they are answered: half on two
/// hot cells, half spread over `users` and every item. Every post's number
/// is unique and newer than the ones before it.
struct Race {
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<Vec<Raced>>>,
}

impl Race {
    /// Starts the writers and returns once they are well under way (96
    /// posts sent).
    async fn start(w: &World, base: &str, users: &[String], counter: &Arc<AtomicUsize>) -> Race {
        let stop = Arc::new(AtomicBool::new(false));
        let start = counter.load(Ordering::Relaxed);
        let writers = (0..32)
            .map(|t| {
                let w = w.clone();
                let users = users.to_vec();
                let base = base.to_string();
                let counter = counter.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    let mut k = 0;
                    while !stop.load(Ordering::Relaxed) {
                        k += 1;
                        let given = counter.fetch_add(1, Ordering::Relaxed) as u64 + 1;
                        let (user, item) = if t < 16 {
                            (&users[t % 2], &w.items[0])
                        } else {
                            (
                                &users[(t + k) % users.len()],
                                &w.items[(t + k) % w.items.len()],
                            )
                        };
                        let post = Post {
                            user: user.clone(),
                            item: item.clone(),
                            given,
                        };
                        let sent = Instant::now();
                        let answer = w.post(&base, &post, Duration::from_secs(30)).await;
                        out.push(Raced {
                            post,
                            sent,
                            answered: Instant::now(),
                            answer,
                        });
                    }
                    out
                })
            })
            .collect();
        let c = counter.clone();
        wait_for("the writers", Duration::from_secs(30), || {
            c.load(Ordering::Relaxed) > start + 96
        })
        .await;
        Race { stop, writers }
    }

    /// Lets the writers go on for `more`, then stops them: what each post
    /// was told.
    async fn finish(self, more: Duration) -> Vec<Raced> {
        tokio::time::sleep(more).await;
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for w in self.writers {
            all.extend(w.await.unwrap());
        }
        all
    }
}

/// Asserts that every post sent after `done` for which `about` holds was
/// told `refused`.
fn refused_after(
    raced: &[Raced],
    done: Instant,
    about: impl Fn(&Post) -> bool,
    refused: impl Fn(&Answer) -> bool,
) {
    for r in raced.iter().filter(|r| r.sent > done && about(&r.post)) {
        assert!(refused(&r.answer), "sent after the change answered: {r:?}");
    }
}

/// The course's grades as a registrar reads them, without the moment they
/// were read.
async fn grades(w: &World, base: &str) -> Value {
    let (status, mut g) = call(
        &w.client,
        reqwest::Method::GET,
        format!("{base}/api/courses/{COURSE}/grades"),
        &w.registrar,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{g}");
    g["students"].take()
}

/// Every post answered "accepted" is in the log exactly once, as accepted;
/// none is answered with a 5xx or not at all.
async fn every_acknowledged_post_is_in_the_log(db: &Db, raced: &[Raced]) {
    let events = score_events(db).await;
    let mut seen: HashMap<(String, String, u64), Vec<String>> = HashMap::new();
    for (u, i, g, kind) in events {
        seen.entry((u, i, g)).or_default().push(kind);
    }
    for r in raced {
        match &r.answer {
            Answer::Status(200, code) if code == "accepted" => {
                let key = (r.post.user.clone(), r.post.item.clone(), r.post.given);
                assert_eq!(
                    seen.get(&key).map(Vec::as_slice),
                    Some(&["ScoreAccepted".to_string()][..]),
                    "{r:?}"
                );
            }
            Answer::Status(s, _) if *s < 500 => {}
            other => panic!("{:?} was answered {other:?}", r.post),
        }
    }
}

async fn registrar_post(w: &World, base: &str, path: &str, body: Value) -> (u16, Value) {
    call(
        &w.client,
        reqwest::Method::POST,
        format!("{base}{path}"),
        &w.registrar,
        body,
    )
    .await
}

/// Rounds of 32 writers racing a lock sent to `lock_base` (this node or
/// the other one); the course is unlocked again between rounds.
async fn lock_race(db_url: &str, logs: &Path, two_nodes: bool) {
    let a = Node::start(db_url, logs, "a").await;
    let b = if two_nodes {
        Some(Node::start(db_url, logs, "b").await)
    } else {
        None
    };
    let w = world(&a.base, db_url, 16, 4).await;
    let lock_base = b.as_ref().map_or(a.base.clone(), |b| b.base.clone());
    let db = Db::connect(db_url, 2).await.unwrap();
    let counter = Arc::new(AtomicUsize::new(0));
    let mut in_flight = 0;
    for round in 0..3 {
        let race = Race::start(&w, &a.base, &w.users, &counter).await;
        let lock_sent = Instant::now();
        let (status, body) = registrar_post(
            &w,
            &lock_base,
            &format!("/api/courses/{COURSE}/lock"),
            json!({"reason": format!("round {round}")}),
        )
        .await;
        let locked = Instant::now();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["locked"], true, "{body}");
        let at_lock = grades(&w, &a.base).await;
        let raced = race.finish(Duration::from_millis(500)).await;
        a.wait_caught_up(Duration::from_secs(30)).await;
        if let Some(b) = &b {
            b.wait_caught_up(Duration::from_secs(30)).await;
        }

        assert_eq!(
            grades(&w, &a.base).await,
            at_lock,
            "round {round}: grades changed after the lock answered"
        );
        nothing_accepted_after(
            &db,
            "the lock",
            round,
            |t, _, e| t == "course" && e == "CourseLocked",
            |t, _, e| t == "course" && e == "CourseUnlocked",
            |_| true,
        )
        .await;
        refused_after(
            &raced,
            locked,
            |_| true,
            |a| matches!(a, Answer::Status(422, c) if c == "course_locked"),
        );
        every_acknowledged_post_is_in_the_log(&db, &raced).await;
        in_flight += raced
            .iter()
            .filter(|r| r.sent < locked && r.answered > lock_sent)
            .count();
        let accepted = raced
            .iter()
            .filter(|r| matches!(&r.answer, Answer::Status(200, c) if c == "accepted"))
            .count();
        assert!(
            accepted > 0,
            "round {round}: no post was accepted before the lock"
        );

        let (status, body) = registrar_post(
            &w,
            &lock_base,
            &format!("/api/courses/{COURSE}/unlock"),
            json!({"reason": "next round"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(
        in_flight > 0,
        "no post was in flight while a lock was being answered"
    );
    println!(
        "lock race ({} node(s)): {in_flight} posts in flight across the locks",
        if two_nodes { 2 } else { 1 }
    );
    close(db).await;
}

#[sqlx::test(migrations = false)]
async fn a_lock_that_answered_stops_every_post_in_flight_postgres(
    _opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let logs = tempfile::tempdir().unwrap();
    lock_race(&pg_url(&connect), logs.path(), false).await;
}

#[sqlx::test(migrations = false)]
async fn a_lock_on_one_node_stops_every_post_in_flight_on_the_other_postgres(
    _opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let logs = tempfile::tempdir().unwrap();
    lock_race(&pg_url(&connect), logs.path(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_on_one_node_stops_every_post_in_flight_on_the_other_sqlite() {
    // Two processes on one SQLite file: one writer at a time, across them.
    let dir = tempfile::tempdir().unwrap();
    lock_race(&sqlite_url(dir.path()), dir.path(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_that_answered_stops_every_post_in_flight_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    lock_race(&sqlite_url(dir.path()), dir.path(), false).await;
}

/// 32 writers on the first four learners and every column while the SIS
/// drops the first learner, then while a tool deletes the first column.
async fn drop_and_delete_race(db_url: &str, logs: &Path) {
    let node = Node::start(db_url, logs, "node").await;
    let w = world(&node.base, db_url, 4, 3).await;
    let db = Db::connect(db_url, 2).await.unwrap();
    let counter = Arc::new(AtomicUsize::new(0));
    let dropped = w.users[0].clone();
    let deleted = w.items[0].clone();

    // The drop.
    let race = Race::start(&w, &node.base, &w.users, &counter).await;
    let (status, body) = call(
        &w.client,
        reqwest::Method::DELETE,
        format!("{}/api/courses/{COURSE}/enrollments/{dropped}", node.base),
        &w.sis,
        Value::Null,
    )
    .await;
    let done = Instant::now();
    assert_eq!(status, 200, "{body}");
    let at_drop = grades(&w, &node.base).await;
    let raced = race.finish(Duration::from_millis(400)).await;
    node.wait_caught_up(Duration::from_secs(30)).await;
    let dropped_cell = |g: &Value| {
        g.as_array()
            .unwrap()
            .iter()
            .find(|s| s["user_id"] == dropped.as_str())
            .cloned()
    };
    assert_eq!(
        dropped_cell(&grades(&w, &node.base).await),
        dropped_cell(&at_drop),
        "the dropped learner's grades changed after the drop answered"
    );
    let enrollment = format!("{COURSE}/{dropped}");
    let before = nothing_accepted_after(
        &db,
        "the drop",
        0,
        |t, id, e| t == "enrollment" && id == enrollment && e == "EnrollmentStatusChanged",
        |_, _, _| false,
        |id| id.ends_with(&format!("/{dropped}")),
    )
    .await;
    assert!(
        before > 0,
        "no score of the dropped learner was accepted before the drop"
    );
    refused_after(
        &raced,
        done,
        |p| p.user == dropped,
        |a| matches!(a, Answer::Status(422, c) if c == "user_not_enrolled"),
    );
    every_acknowledged_post_is_in_the_log(&db, &raced).await;

    // The deletion, by the tool that owns the column.
    let active = w.users[1..].to_vec();
    let race = Race::start(&w, &node.base, &active, &counter).await;
    let res = w
        .client
        .delete(format!(
            "{}/lti/courses/{COURSE}/lineitems/{deleted}",
            node.base
        ))
        .bearer_auth(&w.tool_token)
        .send()
        .await
        .unwrap();
    let done = Instant::now();
    assert!(res.status().is_success(), "{}", res.status());
    let raced = race.finish(Duration::from_millis(400)).await;
    node.wait_caught_up(Duration::from_secs(30)).await;
    let column = format!("{COURSE}/{deleted}");
    let before = nothing_accepted_after(
        &db,
        "the deletion",
        0,
        |t, id, e| t == "line_item" && id == column && e == "LineItemDeleted",
        |_, _, _| false,
        |id| id.starts_with(&format!("{column}/")),
    )
    .await;
    assert!(
        before > 0,
        "no score on the deleted column was accepted before the deletion"
    );
    refused_after(
        &raced,
        done,
        |p| p.item == deleted,
        |a| matches!(a, Answer::Status(404, _)),
    );
    every_acknowledged_post_is_in_the_log(&db, &raced).await;
    close(db).await;
}

#[sqlx::test(migrations = false)]
async fn a_drop_or_a_deletion_that_answered_stops_every_post_in_flight_postgres(
    _opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let logs = tempfile::tempdir().unwrap();
    drop_and_delete_race(&pg_url(&connect), logs.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_or_a_deletion_that_answered_stops_every_post_in_flight_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    drop_and_delete_race(&sqlite_url(dir.path()), dir.path()).await;
}

/// A 10,000-row backfill racing a lock sent to `lock_base` mid-way.
async fn backfill_lock_race(db_url: &str, logs: &Path, two_nodes: bool) {
    let a = Node::start(db_url, logs, "a").await;
    let b = if two_nodes {
        Some(Node::start(db_url, logs, "b").await)
    } else {
        None
    };
    let w = world(&a.base, db_url, 16, 4).await;
    let lock_base = b.as_ref().map_or(a.base.clone(), |b| b.base.clone());
    let db = Db::connect(db_url, 2).await.unwrap();
    // Each cell gets newer and newer rows: every row would be applied.
    let mut file =
        String::from("line_item_id,user_id,score_given,score_maximum,timestamp,comment\n");
    for n in 0..10_000u64 {
        let cell = (n % 64) as usize;
        let p = Post {
            user: w.users[cell % 16].clone(),
            item: w.items[cell / 16].clone(),
            given: n + 1,
        };
        file.push_str(&format!(
            "{},{},{},{SCORE_MAX},{},\n",
            p.item,
            p.user,
            p.given,
            w.timestamp(p.given)
        ));
    }
    let client = w.client.clone();
    let url = format!("{}/api/courses/{COURSE}/backfill", a.base);
    let token = w.registrar.clone();
    let backfill = tokio::spawn(async move {
        let res = client
            .post(url)
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(file)
            .send()
            .await
            .unwrap();
        (
            res.status().as_u16(),
            res.json::<Value>().await.unwrap_or(Value::Null),
        )
    });
    // Lock once the backfill has appended something, while it still runs.
    let started = Instant::now();
    loop {
        let n = score_events(&db).await.len();
        if n > 0 || backfill.is_finished() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the backfill never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, body) = registrar_post(
        &w,
        &lock_base,
        &format!("/api/courses/{COURSE}/lock"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let at_lock = grades(&w, &a.base).await;
    let (status, report) = backfill.await.unwrap();
    assert_eq!(status, 200, "{report}");
    a.wait_caught_up(Duration::from_secs(60)).await;
    assert_eq!(
        grades(&w, &a.base).await,
        at_lock,
        "grades changed after the lock answered"
    );
    let before = nothing_accepted_after(
        &db,
        "the lock",
        0,
        |t, _, e| t == "course" && e == "CourseLocked",
        |_, _, _| false,
        |_| true,
    )
    .await;
    assert_eq!(report["accepted"].as_u64(), Some(before as u64), "{report}");
    let locked_rows = report["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reason"] == "course_locked")
        .count();
    assert_eq!(
        report["rejected"].as_u64(),
        Some(locked_rows as u64),
        "only the lock refused rows"
    );
    println!(
        "backfill race: {before} rows applied before the lock, {locked_rows} refused after it"
    );
    close(db).await;
}

#[sqlx::test(migrations = false)]
async fn a_backfill_racing_a_lock_applies_nothing_after_it_postgres(
    _opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let logs = tempfile::tempdir().unwrap();
    backfill_lock_race(&pg_url(&connect), logs.path(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_racing_a_lock_applies_nothing_after_it_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    backfill_lock_race(&sqlite_url(dir.path()), dir.path(), false).await;
}

// ---------------------------------------------------------------------------
// 7. A transaction left open on the same PostgreSQL cluster: in another
// database it delays nothing; in this one it holds projection back, and
// `/readyz` names it.

/// Another database of the test's cluster: the one `DATABASE_URL` names,
/// in which `#[sqlx::test]` made the test's own.
fn other_database(connect: &sqlx::postgres::PgConnectOptions) -> sqlx::postgres::PgConnectOptions {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL for the PostgreSQL tests");
    let other = sqlx::postgres::PgConnectOptions::from_str(&url).unwrap();
    assert_ne!(
        other.get_database(),
        connect.get_database(),
        "the test's database is not the one DATABASE_URL names"
    );
    other.application_name("another application")
}

/// Opens a transaction that takes a transaction id, as an application does
/// that wrote something and then sits idle in its transaction. Returns the
/// backend's pid.
async fn take_a_transaction_id(tx: &mut sqlx::PgConnection) -> i32 {
    let (pid, _xid): (i32, String) =
        sqlx::query_as("SELECT pg_backend_pid(), pg_current_xact_id()::text")
            .fetch_one(tx)
            .await
            .unwrap();
    pid
}

/// The grades report's cell of `user` on `item`: its state and score.
async fn grade_cell(
    w: &World,
    base: &str,
    token: &str,
    user: &str,
    item: &str,
) -> (String, Option<Decimal>) {
    let (st, g) = call(
        &w.client,
        reqwest::Method::GET,
        format!("{base}/api/courses/{COURSE}/grades"),
        token,
        Value::Null,
    )
    .await;
    assert_eq!(st, 200, "{g}");
    let cell = common::fixtures::grade_cell(&g, user, item);
    (
        cell["state"].as_str().unwrap().to_string(),
        cell["score"]
            .as_str()
            .map(|s| Decimal::from_str(s).unwrap()),
    )
}

/// Sends a registrar's lock or unlock and says how long it took to answer.
async fn lock(w: &World, base: &str, token: &str, action: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (st, b) = call(
        &w.client,
        reqwest::Method::POST,
        format!("{base}/api/courses/{COURSE}/{action}"),
        token,
        json!({}),
    )
    .await;
    (st, b, started.elapsed())
}

/// What "at once" means here: a post or a lock that waits on the projector
/// takes the full 5 s read-your-write wait.
const PROMPTLY: Duration = Duration::from_secs(1);

#[sqlx::test(migrations = false)]
async fn a_transaction_left_open_in_another_database_of_the_cluster_delays_no_post_or_lock(
    _opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    use sqlx::Connection;
    let logs = tempfile::tempdir().unwrap();
    let url = pg_url(&connect);
    let node = Node::start(&url, logs.path(), "node").await;
    let w = world(&node.base, &url, 2, 1).await;
    let db = Db::connect(&url, 2).await.unwrap();
    let registrar = create(&db, ApiRole::Registrar, None).await.unwrap().1;
    let (user, item) = (w.users[0].clone(), w.items[0].clone());

    // Another application on the same cluster wrote in its own database and
    // sits idle in its transaction.
    let mut elsewhere = sqlx::PgConnection::connect_with(&other_database(&connect))
        .await
        .unwrap();
    let mut idle = elsewhere.begin().await.unwrap();
    take_a_transaction_id(&mut idle).await;

    let post = |given: u64| Post {
        user: user.clone(),
        item: item.clone(),
        given,
    };
    // Every answer comes at once; the slowest is kept for the report.
    let mut slowest = Duration::ZERO;
    let mut promptly = |what: &str, took: Duration| {
        assert!(took < PROMPTLY, "{what} took {took:?}");
        slowest = slowest.max(took);
    };
    // A post answers at once, and the grades show it at once.
    let started = Instant::now();
    let a = w.post(&node.base, &post(11), Duration::from_secs(30)).await;
    promptly("the first post", started.elapsed());
    assert!(
        matches!(&a, Answer::Status(200, c) if c == "accepted"),
        "{a:?}"
    );
    assert_eq!(
        grade_cell(&w, &node.base, &registrar, &user, &item).await,
        ("counted".to_string(), Some(Decimal::from(11)))
    );

    // A lock answers 200 at once, and the very next post sees it.
    let (st, b, took) = lock(&w, &node.base, &registrar, "lock").await;
    promptly("the lock", took);
    assert_eq!(st, 200, "{b}");
    let started = Instant::now();
    let a = w.post(&node.base, &post(12), Duration::from_secs(30)).await;
    promptly("the post to the locked course", started.elapsed());
    assert!(
        matches!(&a, Answer::Status(422, c) if c == "course_locked"),
        "{a:?}"
    );
    let (st, b, took) = lock(&w, &node.base, &registrar, "unlock").await;
    promptly("the unlock", took);
    assert_eq!(st, 200, "{b}");
    let started = Instant::now();
    let a = w.post(&node.base, &post(13), Duration::from_secs(30)).await;
    promptly("the post after the unlock", started.elapsed());
    assert!(
        matches!(&a, Answer::Status(200, c) if c == "accepted"),
        "{a:?}"
    );
    assert_eq!(
        grade_cell(&w, &node.base, &registrar, &user, &item).await,
        ("counted".to_string(), Some(Decimal::from(13)))
    );

    // The audit log shows the latest post, /readyz names no one, and a
    // replay (which reads below the same horizon) takes the whole log.
    let (st, page) = call(
        &w.client,
        reqwest::Method::GET,
        format!(
            "{}/api/audit?course_id={COURSE}&user_id={user}&limit=1000",
            node.base
        ),
        &registrar,
        Value::Null,
    )
    .await;
    assert_eq!(st, 200, "{page}");
    let last = page["events"].as_array().unwrap().last().cloned();
    assert_eq!(
        last.as_ref()
            .map(|e| &e["payload"]["ScoreAccepted"]["post"]["score_given"]),
        Some(&json!("13")),
        "{page}"
    );
    let (status, r) = node.readyz().await.unwrap();
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["projector"]["lag"]["events"], 0, "{r}");
    assert_eq!(r["projector"]["held_back_by"], json!([]), "{r}");
    let live = projector::dump_read_tables(&db).await.unwrap();
    let events = gradebook::projections::projector::events::count(&db)
        .await
        .unwrap();
    assert_eq!(
        projector::replay(&db, |_| {}).await.unwrap(),
        events as u64,
        "the replay read the whole log"
    );
    assert_eq!(projector::dump_read_tables(&db).await.unwrap(), live);

    idle.rollback().await.unwrap();
    close(db).await;
    let mut node = node;
    node.kill9().await;
    println!(
        "transaction open in another database: 3 posts, a lock and an unlock, the slowest answered in {} ms",
        slowest.as_millis()
    );
}

#[sqlx::test(migrations = false)]
async fn a_transaction_left_open_in_this_database_holds_projection_back_and_readyz_names_it(
    _opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    use sqlx::Connection;
    let logs = tempfile::tempdir().unwrap();
    let url = pg_url(&connect);
    let node = Node::start(&url, logs.path(), "node").await;
    let w = world(&node.base, &url, 2, 1).await;
    let db = Db::connect(&url, 2).await.unwrap();
    let registrar = create(&db, ApiRole::Registrar, None).await.unwrap().1;
    let (user, item) = (w.users[0].clone(), w.items[0].clone());

    // Someone's session on the gradebook's own database, idle in a
    // transaction that holds an id.
    let mut here = sqlx::PgConnection::connect_with(&connect.clone().application_name("held open"))
        .await
        .unwrap();
    let mut open = here.begin().await.unwrap();
    let pid = take_a_transaction_id(&mut open).await;

    // A post sent now is recorded, but not applied while that runs.
    let p = Post {
        user: user.clone(),
        item: item.clone(),
        given: 21,
    };
    let sent = {
        let (w, base, p) = (w.clone(), node.base.clone(), p.clone());
        tokio::spawn(async move { w.post(&base, &p, Duration::from_secs(30)).await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !score_events(&db)
        .await
        .iter()
        .any(|(u, i, g, _)| *u == p.user && *i == p.item && *g == p.given)
    {
        assert!(Instant::now() < deadline, "the post was never recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // /readyz names the transaction holding it back (another one of this
    // database, such as autovacuum's, may show beside it), and stays ready.
    let deadline = Instant::now() + Duration::from_secs(10);
    let held = loop {
        let (status, r) = node.readyz().await.unwrap();
        assert_eq!(status, 200, "{r}");
        let ours = r["projector"]["held_back_by"]
            .as_array()
            .and_then(|h| h.iter().find(|b| b["pid"] == pid).cloned());
        if let Some(held) = ours {
            assert!(
                r["projector"]["lag"]["events"].as_i64().unwrap() >= 1,
                "{r}"
            );
            break held;
        }
        assert!(Instant::now() < deadline, "/readyz did not name {pid}: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(held["state"], "idle in transaction", "{held}");
    assert_eq!(held["application_name"], "held open", "{held}");
    assert!(held["age_seconds"].as_f64().unwrap() >= 0.0, "{held}");
    assert!(held["xid"].as_i64().unwrap() > 0, "{held}");
    assert_eq!(held["gid"], Value::Null, "{held}");
    // The grades do not show the post yet, and the post has not answered
    // (checked again a little later: the wait is not what the test needs).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        grade_cell(&w, &node.base, &registrar, &user, &item).await,
        ("missing".to_string(), None)
    );
    assert!(!sent.is_finished(), "the post answered while held back");

    // Once that transaction ends, the post is applied and answers at once.
    open.rollback().await.unwrap();
    let ended = Instant::now();
    let a = sent.await.unwrap();
    let answered_after = ended.elapsed();
    assert!(
        matches!(&a, Answer::Status(200, c) if c == "accepted"),
        "{a:?}"
    );
    assert!(
        answered_after < PROMPTLY,
        "answered {answered_after:?} later"
    );
    assert_eq!(
        grade_cell(&w, &node.base, &registrar, &user, &item).await,
        ("counted".to_string(), Some(Decimal::from(21)))
    );
    let (_, r) = node.readyz().await.unwrap();
    assert_eq!(r["projector"]["lag"]["events"], 0, "{r}");
    assert_eq!(r["projector"]["held_back_by"], json!([]), "{r}");
    close(db).await;
    let mut node = node;
    node.kill9().await;
    println!(
        "transaction open in this database: /readyz named pid {pid} ({held}); the post answered {} ms after it ended",
        answered_after.as_millis()
    );
}
