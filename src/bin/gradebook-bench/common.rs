//! What every scenario shares: the server under test (started in-process on
//! a free port), a tool registered by a registrar with its own key pair and
//! an AGS access token from the token endpoint, latency statistics, and the
//! database's own baseline (raw single-row INSERTs into a scratch table).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use chrono::Utc;
use gradebook::app::{self, Running};
use gradebook::config::Settings;
use gradebook::domain::enrollment::{EnrollmentStatus, Person, Role};
use gradebook::domain::{CommandMeta, CourseId, Source, ToolId, UserId};
use gradebook::engine::Engine;
use gradebook::projections::db::Db;
use gradebook::services::api_tokens::{create, ApiRole};
use gradebook::services::crypto::PlatformKey;
use gradebook_projections::with_db;
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub const SCORE_SCOPE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";
pub const LINEITEM_SCOPE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem";

/// Latencies of one measured series and the wall time it took.
#[derive(Default)]
pub struct Series {
    pub samples: Vec<Duration>,
    pub wall: Duration,
}

impl Series {
    pub fn new(mut samples: Vec<Duration>, wall: Duration) -> Self {
        samples.sort();
        Self { samples, wall }
    }

    pub fn per_sec(&self) -> f64 {
        self.samples.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn quantile(&self, q: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.samples.len() as f64 - 1.0) * q).round() as usize;
        self.samples[i]
    }

    pub fn p50_ms(&self) -> f64 {
        self.quantile(0.5).as_secs_f64() * 1e3
    }

    pub fn p99_ms(&self) -> f64 {
        self.quantile(0.99).as_secs_f64() * 1e3
    }

    /// Two runs of the same series, as if measured at once.
    pub fn merge(a: Series, b: Series) -> Series {
        let mut s = a.samples;
        s.extend(b.samples);
        Series::new(s, a.wall + b.wall)
    }
}

/// CPU time spent between two readings: by the whole machine (every core,
/// every process: with nothing else running, this process plus the
/// database server) and by this process (the server under test and the
/// benchmark's client). Linux only; zero elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuReading {
    machine_ticks: u64,
    process_ticks: u64,
}

/// `/proc` counts CPU time in USER_HZ ticks, 100 a second on Linux.
const TICK_MS: f64 = 10.0;

impl CpuReading {
    pub fn now() -> Self {
        // /proc/stat: "cpu user nice system idle iowait irq softirq steal ...";
        // busy is everything but idle and iowait.
        let machine_ticks = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let f: Vec<u64> = s
                    .lines()
                    .next()?
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse().ok())
                    .collect();
                Some(f.iter().take(8).sum::<u64>() - f.get(3)? - f.get(4)?)
            })
            .unwrap_or_default();
        // /proc/self/stat: utime and stime are fields 14 and 15, counted
        // after the command name's closing parenthesis.
        let process_ticks = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let f: Vec<u64> = s
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|v| v.parse().ok())
                    .collect();
                Some(f.iter().sum())
            })
            .unwrap_or_default();
        CpuReading {
            machine_ticks,
            process_ticks,
        }
    }

    /// The CPU time spent since `self`.
    pub fn spent_since(self) -> CpuSpent {
        let now = CpuReading::now();
        CpuSpent {
            machine_ticks: now.machine_ticks.saturating_sub(self.machine_ticks),
            process_ticks: now.process_ticks.saturating_sub(self.process_ticks),
        }
    }

    /// Milliseconds of CPU per request since `self`, for `n` requests:
    /// (machine, this process).
    pub fn per_request_since(self, n: usize) -> (f64, f64) {
        self.spent_since().per_op(n)
    }
}

/// CPU time spent over one or more stretches of a run, in ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSpent {
    machine_ticks: u64,
    process_ticks: u64,
}

impl CpuSpent {
    /// Runs `f` and adds the CPU time the machine and this process spent
    /// meanwhile.
    pub async fn meter<T>(&mut self, f: impl std::future::Future<Output = T>) -> T {
        let start = CpuReading::now();
        let out = f.await;
        let spent = start.spent_since();
        self.machine_ticks += spent.machine_ticks;
        self.process_ticks += spent.process_ticks;
        out
    }

    /// Milliseconds of CPU per operation, for `n` operations: (machine,
    /// this process).
    pub fn per_op(self, n: usize) -> (f64, f64) {
        let per = |ticks: u64| ticks as f64 * TICK_MS / n.max(1) as f64;
        (per(self.machine_ticks), per(self.process_ticks))
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `n` jobs on `concurrency` workers; each job returns its own
/// latency sample (or an error, which stops the run).
pub async fn run_concurrent<F, Fut>(n: usize, concurrency: usize, job: F) -> anyhow::Result<Series>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Duration>> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let job = job.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    return Ok::<_, anyhow::Error>(samples);
                }
                samples.push(job(k).await?);
            }
        }));
    }
    let mut samples = Vec::with_capacity(n);
    for w in workers {
        samples.extend(w.await??);
    }
    Ok(Series::new(samples, started.elapsed()))
}

/// A same-sized row for the baseline: what one score post appends.
pub fn sample_event_row() -> (String, String, String) {
    let payload = json!({"ScoreAccepted": {
        "course_id": "ING-00000000-0", "line_item_id": "0123456789abcdef0123456789abcdef", "user_id": "learner-0000",
        "post": {"score_given": "87", "score_maximum": "100", "activity_progress": "Completed",
                 "grading_progress": "FullyGraded", "timestamp": "2026-11-20T10:00:00+00:00", "comment": null}}});
    let metadata = json!({"actor": "tool:0123456789abcdef:0123456789abcdef", "source": "ags",
        "request_id": "00000000-0000-0000-0000-000000000000", "received_at": "2026-11-20T10:00:00.000000Z"});
    (
        "ING-00000000-0/0123456789abcdef0123456789abcdef/learner-0000".to_string(),
        payload.to_string(),
        metadata.to_string(),
    )
}

/// The database's own limit: single-row INSERTs of a row the size of a
/// score event into a scratch table, each in its own transaction, on a pool
/// of `concurrency` connections.
pub async fn insert_baseline(url: &str, n: usize, concurrency: usize) -> anyhow::Result<Series> {
    let db = Db::connect(url, concurrency as u32).await?;
    let create = match db {
        Db::Postgres(_) => "CREATE TABLE IF NOT EXISTS bench_scratch (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, aggregate_type text NOT NULL, aggregate_id text NOT NULL, sequence bigint NOT NULL, event_type text NOT NULL, event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL)",
        Db::Sqlite(_) => "CREATE TABLE IF NOT EXISTS bench_scratch (id integer PRIMARY KEY, aggregate_type text NOT NULL, aggregate_id text NOT NULL, sequence integer NOT NULL, event_type text NOT NULL, event_version text NOT NULL, payload text NOT NULL, metadata text NOT NULL)",
    };
    with_db!(&db, pool => { sqlx::query(create).execute(pool).await?; });
    let (id, payload, metadata) = sample_event_row();
    let sql = match db {
        Db::Postgres(_) => "INSERT INTO bench_scratch (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6::json, $7::json)",
        Db::Sqlite(_) => "INSERT INTO bench_scratch (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    };
    let db2 = db.clone();
    let series = run_concurrent(n, concurrency, move |k| {
        let (db, id, payload, metadata) =
            (db2.clone(), id.clone(), payload.clone(), metadata.clone());
        async move {
            let t = Instant::now();
            with_db!(&db, pool => {
                sqlx::query(sql)
                    .bind("score")
                    .bind(id)
                    .bind(k as i64 + 1)
                    .bind("ScoreAccepted")
                    .bind("1")
                    .bind(payload)
                    .bind(metadata)
                    .execute(pool)
                    .await?;
            });
            Ok(t.elapsed())
        }
    })
    .await?;
    with_db!(&db, pool => {
        sqlx::query("DELETE FROM bench_scratch").execute(pool).await?;
        pool.close().await;
    });
    Ok(series)
}

/// The server under test and the callers that use it.
pub struct Server {
    pub running: Running,
    pub base: String,
    pub client: reqwest::Client,
    pub registrar: String,
    pub auditor: String,
    pub tool: Tool,
}

/// A tool registered through the registrar API with its own key pair.
pub struct Tool {
    pub tool_id: String,
    /// An AGS access token from `/lti/token` (scores and line items).
    pub token: String,
}

pub fn meta(source: Source) -> CommandMeta {
    CommandMeta::new(
        "bench",
        source,
        uuid::Uuid::new_v4().to_string(),
        Utc::now(),
    )
}

pub fn learner() -> Person {
    Person {
        role: Role::Learner,
        status: EnrollmentStatus::Active,
        name: None,
        email: None,
    }
}

impl Server {
    /// Starts the server on a free port against `db` (already migrated,
    /// read model current), with API tokens and a registered tool.
    pub async fn start(db: Db, connections: u32) -> anyhow::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let settings = Settings {
            database_url: String::new(),
            bind: addr.to_string(),
            public_url: None,
            db_connections: connections,
        };
        let running = app::start(db.clone(), settings, listener).await?;
        let registrar = create(&db, ApiRole::Registrar, Some("bench".into()))
            .await?
            .1;
        let auditor = create(&db, ApiRole::Auditor, Some("bench".into())).await?.1;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?;
        let base = format!("http://{addr}");
        let tool = register_tool(&client, &base, &registrar).await?;
        Ok(Server {
            running,
            base,
            client,
            registrar,
            auditor,
            tool,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.running.state.engine
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }

    /// GET as an auditor; the JSON body of a 200.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let res = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.auditor)
            .send()
            .await?;
        let status = res.status();
        let body = res.text().await?;
        ensure!(status.as_u16() == 200, "GET {path}: {status} {body}");
        Ok(serde_json::from_str(&body)?)
    }

    /// A course with this run's tool deployed, `students` learners and
    /// `items` line items the tool made over AGS; returns the items' score
    /// URLs (paths) and the learners.
    pub async fn tool_course(
        &self,
        course: &str,
        students: usize,
        items: usize,
    ) -> anyhow::Result<(Vec<String>, Vec<UserId>)> {
        let c = CourseId::parse(course)?;
        let tool_id = ToolId::parse(self.tool.tool_id.clone())?;
        self.engine()
            .open_course(
                &c,
                format!("Course {course}"),
                "2026FA".into(),
                vec![tool_id],
                &meta(Source::Sis),
            )
            .await?;
        let users: Vec<UserId> = (0..students)
            .map(|j| UserId::parse(format!("learner-{j:04}")).unwrap())
            .collect();
        for u in &users {
            self.engine()
                .put_enrollment(&c, u, learner(), &meta(Source::Sis))
                .await?;
        }
        let mut scores = Vec::new();
        for k in 0..items {
            let res = self
                .client
                .post(self.url(&format!("/lti/courses/{course}/lineitems")))
                .bearer_auth(&self.tool.token)
                .header("content-type", "application/vnd.ims.lis.v2.lineitem+json")
                .body(json!({"label": format!("Assignment {k}"), "scoreMaximum": 100}).to_string())
                .send()
                .await?;
            let status = res.status();
            let body: Value = res.json().await?;
            ensure!(status.as_u16() == 201, "create line item: {status} {body}");
            let id = body["id"].as_str().context("line item id")?;
            let path = id.strip_prefix(&self.base).context("line item url")?;
            scores.push(format!("{path}/scores"));
        }
        Ok((scores, users))
    }

    /// GET `/healthz` (no database work, no authentication) with the same
    /// client; the latency of its 200. What HTTP alone costs a request.
    pub async fn healthz(&self) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let res = self.client.get(self.url("/healthz")).send().await?;
        let status = res.status();
        let text = res.text().await?;
        let took = t.elapsed();
        ensure!(status.as_u16() == 200, "healthz: {status} {text}");
        Ok(took)
    }

    /// Posts one score as the tool; the latency of the 200. `strict`: it
    /// must be accepted.
    pub async fn post_score(
        &self,
        scores_path: &str,
        user: &str,
        given: u32,
        timestamp: chrono::DateTime<Utc>,
        strict: bool,
    ) -> anyhow::Result<Duration> {
        let body = json!({
            "userId": user, "scoreGiven": given, "scoreMaximum": 100,
            "activityProgress": "Completed", "gradingProgress": "FullyGraded",
            "timestamp": timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        })
        .to_string();
        let t = Instant::now();
        let res = self
            .client
            .post(self.url(scores_path))
            .bearer_auth(&self.tool.token)
            .header("content-type", "application/vnd.ims.lis.v1.score+json")
            .body(body)
            .send()
            .await?;
        let status = res.status();
        let text = res.text().await?;
        let took = t.elapsed();
        ensure!(status.as_u16() == 200, "score post: {status} {text}");
        // Concurrent posts to one cell may commit out of order; the older
        // one is then recorded as stale, which is a correct answer too.
        ensure!(
            text.contains("\"accepted\"") || (!strict && text.contains("\"ignored_stale\"")),
            "score post: {status} {text}"
        );
        Ok(took)
    }
}

async fn register_tool(
    client: &reqwest::Client,
    base: &str,
    registrar: &str,
) -> anyhow::Result<Tool> {
    let key = PlatformKey::generate()?;
    let res = client
        .post(format!("{base}/api/tools"))
        .bearer_auth(registrar)
        .header("content-type", "application/json")
        .body(
            json!({
                "name": "Bench LMS", "issuer": "https://lms.bench.example",
                "launch_url": "https://lms.bench.example/launch",
                "login_url": "https://lms.bench.example/login",
                "redirect_uris": ["https://lms.bench.example/launch"],
                "jwks_url": null, "public_jwk": key.public_jwk,
                "grading": "full", "roster": {"access": true, "hide_names": false, "hide_emails": false},
            })
            .to_string(),
        )
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    ensure!(status.as_u16() == 201, "register tool: {status} {body}");
    let tool_id = body["tool_id"].as_str().context("tool_id")?.to_string();
    let client_id = body["client_id"].as_str().context("client_id")?.to_string();
    let now = Utc::now().timestamp();
    let assertion = key.sign(&json!({
        "iss": client_id, "sub": client_id, "aud": format!("{base}/lti/token"),
        "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string(),
    }))?;
    let res = client
        .post(format!("{base}/lti/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
            ("scope", &format!("{SCORE_SCOPE} {LINEITEM_SCOPE}")),
        ])
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    ensure!(status.as_u16() == 200, "token: {status} {body}");
    Ok(Tool {
        tool_id,
        token: body["access_token"]
            .as_str()
            .context("access_token")?
            .to_string(),
    })
}

/// A row of a results table: name, figure, unit, then the comparison.
pub fn header(title: &str) {
    println!();
    println!("{title}");
    println!(
        "{:<62} {:>11} {:>9} {:>9} {:>7}",
        "", "per s", "p50 ms", "p99 ms", "ratio"
    );
}

pub fn row(name: &str, s: &Series, baseline: Option<&Series>) {
    let ratio = baseline
        .map(|b| format!("{:.2}", s.per_sec() / b.per_sec()))
        .unwrap_or_else(|| "1.00".into());
    println!(
        "{:<62} {:>11.0} {:>9.2} {:>9.2} {:>7}",
        name,
        s.per_sec(),
        s.p50_ms(),
        s.p99_ms(),
        ratio
    );
}

/// A target line: what was asked and whether this run met it.
pub fn verdict(what: &str, met: bool) {
    println!("  target {what}: {}", if met { "met" } else { "MISSED" });
}
