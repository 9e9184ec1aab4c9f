//! End to end with real LTI libraries on the tool side.
//!
//! pylti1p3 (run by `tests/e2e/lti_tool.py`) performs the OIDC login,
//! validates our launches with its own checks, answers a deep-linking
//! request, and relaunches the link it made. Needs `GRADEBOOK_E2E_PYTHON`
//! (an interpreter with `tests/e2e/requirements.txt` installed).
//!
//! ltijs (run by `tests/e2e/ltijs/tool.js`) goes further: it registers
//! itself (or is registered by hand), and grades and reads the roster
//! through its own AGS and NRPS services (see the ltijs section below).
//! Needs `GRADEBOOK_E2E_NODE` and `GRADEBOOK_E2E_NODE_MODULES`.
//!
//! `scripts/test` sets all three up; each test is skipped, saying so, only
//! when its variables are unset.

mod common;

use common::fixtures::grade_cell;
use common::launch::*;
use common::TestApp;
use gradebook::domain::enrollment::Role;
use gradebook::domain::line_item::LineItemSpec;
use gradebook::domain::{CourseId, LineItemId, Source, UserId};
use gradebook::services::platform_keys as keys;
use gradebook::services::tools::Grading;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;

/// The interpreter to run the tool with, or `None` (and a message) to skip.
fn python() -> Option<String> {
    match std::env::var("GRADEBOOK_E2E_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            eprintln!(
                "SKIPPED: GRADEBOOK_E2E_PYTHON is not set; run scripts/test, or make a venv from \
                 tests/e2e/requirements.txt and point GRADEBOOK_E2E_PYTHON at its python"
            );
            None
        }
    }
}

on_both_stores! {
    async fn a_pylti1p3_tool_launches_deep_links_and_relaunches_through_the_platform(app: TestApp) {
        let Some(python) = python() else { return };
        let t = register(&app, Grading::Full, roster(true, false, false)).await;
        course_with(&app, &[&t.tool_id]).await;
        let link = sis_link(&app, &t.tool_id, "unit-1", Some("30")).await;
        keys::signing_key(&app.db).await.unwrap();
        let jwks = keys::jwks(&app.db, chrono::Utc::now()).await.unwrap();

        let config = json!({
            "base": app.base, "sis_token": app.sis, "course_id": COURSE,
            "learner": "ada", "instructor": "grace", "resource_link_id": "unit-1",
            "tool_id": t.tool_id, "client_id": t.client_id, "deployment_id": t.deployment_id,
            "tool_private_key": t.key.private_pkcs8_pem, "platform_jwks": jwks,
            "launch_url": launch_url(), "deep_linking_url": deep_linking_url(),
        });
        let seen = run_tool(&python, &config).await;

        // The resource-link launch as pylti1p3 validated it.
        let rl = &seen["resource_link"];
        assert_eq!(rl["message_type"], "LtiResourceLinkRequest");
        assert_eq!(rl["sub"], "ada");
        assert_eq!(rl["context_id"], COURSE);
        assert_eq!(rl["resource_link_id"], "unit-1");
        assert_eq!(rl["custom"], json!({"id": "custom-unit-1"}));
        let lineitems = format!("{}/lti/courses/{COURSE}/lineitems", app.base);
        assert_eq!(rl["lineitems"], lineitems.as_str());
        assert_eq!(rl["lineitem"], format!("{lineitems}/{}", link["line_item_id"].as_str().unwrap()));
        assert_eq!(rl["scope"].as_array().unwrap().len(), 4);

        // Deep linking: what the tool made exists in the course.
        let dl = &seen["deep_linking"];
        assert_eq!(dl["accept_types"], json!(["ltiResourceLink"]));
        assert_eq!(dl["return_url"], format!("{}/lti/deep-linking/return", app.base));
        let course = app.engine().course(&CourseId::parse(COURSE).unwrap()).await.unwrap().unwrap();
        let created: Vec<&str> = dl["created_links"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(created.len(), 2);
        let quiz = course.resource_links.values().find(|l| l.resource_link_id.as_str() == created[0]).expect("the quiz link exists");
        assert_eq!(quiz.title, "E2E quiz");
        assert_eq!(quiz.custom["id"], dl["custom_id"]);
        let item_id = LineItemId::parse(dl["created_line_item"].as_str().unwrap()).unwrap();
        assert_eq!(quiz.line_item_id.as_ref(), Some(&item_id));
        let spec = app.engine().line_item(&CourseId::parse(COURSE).unwrap(), &item_id).await.unwrap().spec.expect("the line item exists");
        assert_eq!(spec.label, "E2E quiz column");
        assert_eq!(spec.score_maximum.to_string(), "20");
        assert_eq!(spec.tag.as_deref(), Some("grade"));
        assert_eq!(spec.resource_id, Some(json!("e2e-quiz")));
        assert_eq!(spec.resource_link_id.as_deref(), Some(created[0]));
        let reading = course.resource_links.values().find(|l| l.resource_link_id.as_str() == created[1]).expect("the reading link exists");
        assert_eq!((reading.title.as_str(), reading.line_item_id.as_ref()), ("E2E reading", None));
        assert_eq!(dl["relaunch_lineitem"], format!("{lineitems}/{}", item_id.as_str()));

        // AGS and NRPS run when the platform serves them.
        match &seen["services"] {
            Value::String(s) => eprintln!("services part {s}"),
            services => {
                assert!(services["lineitems"].as_u64().unwrap() >= 2, "{services}");
                let ada = services["results"].as_array().unwrap().iter().find(|r| r["userId"] == "ada");
                let ada = ada.unwrap_or_else(|| panic!("no result for ada: {services}"));
                // 15 of 20 posted on the column of 20: read back in its scale
                // (the tool itself checks every result against its line item).
                assert_eq!((ada["resultScore"].as_f64(), ada["resultMaximum"].as_f64()), (Some(15.0), Some(20.0)), "{services}");
                assert_eq!(services["members"], json!(["ada", "grace"]), "{services}");
            }
        }
        app.stop().await;
    }
}

// ---- ltijs ----
//
// The same platform against a second tool library: ltijs (Node, run by
// `tests/e2e/ltijs/tool.js`) registers itself through its own `/register`
// route (or is registered by hand), validates our launches, answers deep
// linking, and grades and reads the roster through its own Grade and
// NamesAndRoles services. Needs `GRADEBOOK_E2E_NODE` and
// `GRADEBOOK_E2E_NODE_MODULES` (`scripts/test` sets them up) and
// `DATABASE_URL` (ltijs keeps its sessions in a throwaway PostgreSQL
// database of its own); skipped, saying so, when the first two are unset.

const LEARNERS: [&str; 6] = ["ada", "alan", "bea", "carl", "dee", "eve"];

/// Node and the `node_modules` that `npm ci` made from `tests/e2e/ltijs`,
/// or `None` (and a message) to skip.
fn ltijs() -> Option<(String, String)> {
    let var = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
    match (var("GRADEBOOK_E2E_NODE"), var("GRADEBOOK_E2E_NODE_MODULES")) {
        (Some(node), Some(modules)) => Some((node, modules)),
        _ => {
            eprintln!(
                "SKIPPED: GRADEBOOK_E2E_NODE and GRADEBOOK_E2E_NODE_MODULES are not set; run scripts/test, \
                 or `npm ci` in a copy of tests/e2e/ltijs and point them at node and its node_modules"
            );
            None
        }
    }
}

/// BIO-200 with six learners and Grace (instructor), no tool deployed yet.
async fn ltijs_course(app: &TestApp) {
    course_with(app, &[]).await;
    let c = CourseId::parse(COURSE).unwrap();
    for (id, name) in [
        ("alan", "Alan Turing"),
        ("bea", "Bea Ito"),
        ("carl", "Carl Gauss"),
        ("dee", "Dee Okafor"),
        ("eve", "Eve Adams"),
    ] {
        let person = person(Role::Learner, name, Some(&format!("{id}@example.edu")));
        app.engine()
            .put_enrollment(
                &c,
                &UserId::parse(id).unwrap(),
                person,
                &common::meta(Source::Sis),
            )
            .await
            .unwrap();
    }
}

/// Runs the ltijs tool against `app`; answers what it reports.
async fn run_ltijs(app: &TestApp, node: &str, modules: &str, registration: &str) -> Value {
    let pg_url = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL: ltijs keeps its sessions on that PostgreSQL server");
    let config = json!({
        "base": app.base, "registrar_token": app.registrar, "sis_token": app.sis,
        "course_id": COURSE, "instructor": "grace", "learners": LEARNERS,
        "pg_url": pg_url, "registration": registration,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/ltijs/tool.js");
    let run = tokio::process::Command::new(node)
        .arg(script)
        .arg(config.to_string())
        .env("NODE_PATH", modules)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the ltijs tool finishes within 3 minutes")
        .unwrap_or_else(|e| panic!("could not run {node}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the ltijs tool failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "tool output is not JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn dec(v: &Value) -> Decimal {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Decimal::from_str(&text).unwrap_or_else(|e| panic!("{v} is not a decimal: {e}"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn user_ids(members: &Value) -> Vec<String> {
    members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap().to_string())
        .collect()
}

/// The one score post the store holds for a cell: its event type and post.
async fn posted(app: &TestApp, item: &str, user: &str) -> (String, Value) {
    let (status, page) = app
        .get_json(&format!(
            "/api/audit?course_id={COURSE}&line_item_id={item}&user_id={user}&limit=1000"
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    let events: Vec<&Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["aggregate_type"] == "score")
        .collect();
    assert_eq!(events.len(), 1, "one post for {user}: {events:?}");
    let kind = events[0]["event_type"].as_str().unwrap().to_string();
    let post = events[0]["payload"][&kind]["post"].clone();
    (kind, post)
}

async fn line_item_spec(app: &TestApp, id: &str) -> LineItemSpec {
    let item = app
        .engine()
        .line_item(
            &CourseId::parse(COURSE).unwrap(),
            &LineItemId::parse(id).unwrap(),
        )
        .await
        .unwrap();
    item.spec.unwrap_or_else(|| panic!("no line item {id}"))
}

async fn ltijs_scenario(app: TestApp, registration: &str) {
    let Some((node, modules)) = ltijs() else {
        return;
    };
    ltijs_course(&app).await;
    let seen = run_ltijs(&app, &node, &modules, registration).await;
    eprintln!("ltijs run, milliseconds: {}", seen["timings_ms"]);
    let course_id = CourseId::parse(COURSE).unwrap();
    let tool_url = seen["tool_url"].as_str().unwrap();
    let lineitems = format!("{}/lti/courses/{COURSE}/lineitems", app.base);
    let item_url = |id: &str| format!("{lineitems}/{id}");
    let id_of = |url: &str| {
        url.strip_prefix(&format!("{lineitems}/"))
            .unwrap_or_else(|| panic!("{url} is not a line item of {COURSE}"))
            .to_string()
    };

    // Registration: the platform holds the tool as ltijs described itself
    // (or as the registrar typed it), and ltijs holds the platform.
    let reg = &seen["registration"];
    let tool = gradebook::services::tools::get(&app.db, reg["tool_id"].as_str().unwrap())
        .await
        .unwrap()
        .expect("the tool is registered");
    assert_eq!(tool.client_id, reg["client_id"].as_str().unwrap());
    assert_eq!(tool.name, "ltijs e2e tool");
    assert_eq!(tool.registered_via, registration);
    assert_eq!(tool.launch_url.as_deref(), Some(tool_url));
    assert_eq!(tool.login_url, Some(format!("{tool_url}/login")));
    assert_eq!(tool.jwks_url, Some(format!("{tool_url}/keys")));
    // ltijs lists LtiDeepLinkingRequest with no target_link_uri of its own.
    assert_eq!(tool.deep_linking_url.as_deref(), Some(tool_url));
    assert!(
        tool.redirect_uris.contains(&tool_url.to_string())
            && tool.redirect_uris.contains(&format!("{tool_url}/quiz")),
        "{:?}",
        tool.redirect_uris
    );
    assert_eq!(tool.grading, Grading::Full);
    assert!(tool.roster.access);
    if registration == "dynamic" {
        assert_eq!(reg["page_closes_window"], true, "{reg}");
    }
    assert_eq!(reg["platform_active"], true, "{reg}");
    assert_eq!(
        reg["auth_config"],
        json!({"method": "JWK_SET", "key": format!("{}/.well-known/jwks.json", app.base)})
    );
    let course = app.engine().course(&course_id).await.unwrap().unwrap();
    assert!(
        course.tools.iter().any(|t| t.as_str() == tool.tool_id),
        "the tool is deployed"
    );

    // The launch of the SIS's link, as ltijs validated it.
    let rl = &seen["resource_link"];
    let sis_item = seen["sis_link"]["line_item_id"].as_str().unwrap();
    assert_eq!(rl["message_type"], "LtiResourceLinkRequest");
    assert_eq!(rl["user"], "ada");
    assert_eq!(rl["context_id"], COURSE);
    assert_eq!(rl["resource_link_id"], "unit-1");
    assert_eq!(rl["custom"], json!({"id": "custom-unit-1"}));
    assert_eq!(
        (
            rl["login_target_link_uri"].as_str(),
            rl["served_path"].as_str()
        ),
        (Some(tool_url), Some("/"))
    );
    assert_eq!(rl["lineitems"], lineitems.as_str());
    assert_eq!(rl["lineitem"], item_url(sis_item));
    assert_eq!(rl["scope"].as_array().unwrap().len(), 4, "{rl}");
    assert_eq!(
        rl["memberships_url"],
        format!("{}/lti/courses/{COURSE}/memberships", app.base)
    );
    let ada = app
        .engine()
        .enrollment(&course_id, &UserId::parse("ada").unwrap())
        .await
        .unwrap();
    assert!(
        ada.latest_launch.is_some(),
        "the launch is recorded on Ada's enrollment"
    );

    // Deep linking: what ltijs sent back exists in the course.
    let dl = &seen["deep_linking"];
    assert_eq!(
        (
            dl["launch"]["message_type"].as_str(),
            dl["launch"]["user"].as_str()
        ),
        (Some("LtiDeepLinkingRequest"), Some("grace"))
    );
    assert_eq!(dl["accept_types"], json!(["ltiResourceLink"]));
    assert_eq!(
        dl["return_url"],
        format!("{}/lti/deep-linking/return", app.base)
    );
    assert_eq!(
        (
            dl["replay_status"].as_u64(),
            dl["replay_body"]["error"].as_str()
        ),
        (Some(400), Some("replayed")),
        "{dl}"
    );
    let created = strs(&dl["created_links"]);
    let quiz_url = dl["quiz_url"].as_str().unwrap();
    let quiz = course
        .resource_links
        .values()
        .find(|l| l.resource_link_id.as_str() == created[0])
        .expect("the quiz link exists");
    assert_eq!(
        (quiz.title.as_str(), quiz.url.as_deref()),
        ("ltijs quiz", Some(quiz_url))
    );
    assert_eq!(
        quiz.custom,
        *json!({"id": dl["custom_id"]}).as_object().unwrap()
    );
    let quiz_item = strs(&dl["created_line_items"]).remove(0);
    assert_eq!(
        quiz.line_item_id.as_ref().map(|i| i.as_str()),
        Some(quiz_item.as_str())
    );
    let reading = course
        .resource_links
        .values()
        .find(|l| l.resource_link_id.as_str() == created[1])
        .expect("the reading link exists");
    assert_eq!(
        (reading.title.as_str(), reading.line_item_id.as_ref()),
        ("ltijs reading", None)
    );
    let quiz_spec = line_item_spec(&app, &quiz_item).await;
    assert_eq!(quiz_spec.label, "ltijs quiz column");
    assert_eq!(quiz_spec.score_maximum, Decimal::from(50));
    assert_eq!(
        (quiz_spec.tag.as_deref(), quiz_spec.resource_id.clone()),
        (Some("grade"), Some(json!("ltijs-quiz")))
    );
    assert_eq!(
        quiz_spec.resource_link_id.as_deref(),
        Some(created[0].as_str())
    );

    // The learner's launch of the new link carries its custom and lineitem.
    let re = &seen["relaunch"];
    assert_eq!(
        (re["user"].as_str(), re["resource_link_id"].as_str()),
        (Some("ada"), Some(created[0].as_str()))
    );
    assert_eq!(re["custom"], json!({"id": dl["custom_id"]}));
    assert_eq!(re["lineitem"], item_url(&quiz_item));

    // Line items ltijs made with createLineItem, as the store holds them.
    let li = &seen["line_items"];
    let bonus = id_of(li["created"][0]["id"].as_str().unwrap());
    let participation = id_of(li["created"][1]["id"].as_str().unwrap());
    let bonus_spec = line_item_spec(&app, &bonus).await;
    assert_eq!(
        (bonus_spec.label.as_str(), bonus_spec.score_maximum),
        ("ltijs bonus", Decimal::from(10))
    );
    assert_eq!(
        (bonus_spec.tag.as_deref(), bonus_spec.resource_id.clone()),
        (Some("bonus"), Some(json!("ltijs-bonus")))
    );
    // createLineItem's resourceLinkId option binds it to the launch's link.
    assert_eq!(
        bonus_spec.resource_link_id.as_deref(),
        Some(created[0].as_str())
    );
    assert_eq!(
        bonus_spec.tool_id.as_ref().map(|t| t.as_str()),
        Some(tool.tool_id.as_str())
    );
    let part_spec = line_item_spec(&app, &participation).await;
    assert_eq!(
        (part_spec.score_maximum, part_spec.resource_link_id.as_ref()),
        (Decimal::from(5), None)
    );
    assert_eq!(li["created"][0]["scoreMaximum"], 10);
    // getLineItems: every column of the tool's, in the order made; its filters.
    let every: Vec<String> = [sis_item, &quiz_item, &bonus, &participation]
        .iter()
        .map(|i| item_url(i))
        .collect();
    let all: Vec<String> = li["all"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all, every);
    let maxima: Vec<f64> = li["all"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["scoreMaximum"].as_f64().unwrap())
        .collect();
    assert_eq!(maxima, [30.0, 50.0, 10.0, 5.0]);
    assert_eq!(
        strs(&li["by_resource_link"]),
        [item_url(&quiz_item), item_url(&bonus)]
    );
    assert_eq!(strs(&li["by_tag"]), [item_url(&bonus)]);
    assert_eq!(strs(&li["by_resource_id"]), [item_url(&quiz_item)]);
    // limit 1, following rel="next": one per page, all of them, none twice.
    let pages: Vec<Vec<String>> = li["pages"].as_array().unwrap().iter().map(strs).collect();
    assert!(pages.iter().all(|p| p.len() == 1), "{pages:?}");
    assert_eq!(pages.concat(), every);

    // Scores: the store keeps each post as ltijs sent it.
    let (kind, ada_post) = posted(&app, &quiz_item, "ada").await;
    assert_eq!(
        (
            kind.as_str(),
            &ada_post["score_given"],
            &ada_post["score_maximum"]
        ),
        ("ScoreAccepted", &json!("17"), &json!("20"))
    );
    let (kind, alan_post) = posted(&app, &quiz_item, "alan").await;
    assert_eq!(
        (
            kind.as_str(),
            &alan_post["score_given"],
            &alan_post["score_maximum"]
        ),
        ("ScoreAccepted", &json!("36.50"), &json!("50"))
    );
    let (kind, bea_post) = posted(&app, &quiz_item, "bea").await;
    assert_eq!(
        (kind.as_str(), &bea_post["score_given"]),
        ("ScoreAccepted", &json!("0"))
    );
    // No scoreGiven: the cell is cleared, the post kept with its progress.
    let (kind, carl_post) = posted(&app, &quiz_item, "carl").await;
    assert_eq!(
        (
            kind.as_str(),
            &carl_post["score_given"],
            &carl_post["grading_progress"]
        ),
        ("ScoreCleared", &Value::Null, &json!("PendingManual"))
    );
    // No scoreMaximum given to ltijs: it read the line item's and sent it.
    let (kind, dee_post) = posted(&app, &quiz_item, "dee").await;
    assert_eq!(
        (
            kind.as_str(),
            &dee_post["score_given"],
            &dee_post["score_maximum"]
        ),
        ("ScoreAccepted", &json!("40"), &json!("50"))
    );
    let (kind, eve_post) = posted(&app, &quiz_item, "eve").await;
    assert_eq!(
        (kind.as_str(), &eve_post["grading_progress"]),
        ("ScoreAccepted", &json!("PendingManual"))
    );
    let (kind, bonus_post) = posted(&app, &bonus, "ada").await;
    assert_eq!(
        (
            kind.as_str(),
            &bonus_post["score_given"],
            &bonus_post["comment"]
        ),
        ("ScoreAccepted", &json!("7.5"), &json!("Well argued"))
    );

    // getScores answers in the column's scale: scoreGiven / scoreMaximum
    // x the line item's scoreMaximum, the pending score included, the
    // cleared one left out.
    let sc = &seen["scores"];
    let results = sc["results"].as_array().unwrap();
    let in_scale =
        |post: &Value, max: Decimal| dec(&post["score_given"]) / dec(&post["score_maximum"]) * max;
    let expected: Vec<(&str, Decimal)> = [
        ("ada", &ada_post),
        ("alan", &alan_post),
        ("bea", &bea_post),
        ("dee", &dee_post),
        ("eve", &eve_post),
    ]
    .into_iter()
    .map(|(u, p)| (u, in_scale(p, quiz_spec.score_maximum)))
    .collect();
    let got: Vec<(&str, Decimal)> = results
        .iter()
        .map(|r| (r["userId"].as_str().unwrap(), dec(&r["resultScore"])))
        .collect();
    assert_eq!(got, expected, "{results:?}");
    assert_eq!(expected[0].1, Decimal::from_str("42.5").unwrap());
    assert!(
        results
            .iter()
            .all(|r| r["resultMaximum"] == 50 && r["scoreOf"] == item_url(&quiz_item).as_str()),
        "{results:?}"
    );
    assert_eq!(sc["ada_only"], json!([results[0]]));
    let result_pages = sc["pages"].as_array().unwrap();
    assert!(
        result_pages.len() == 3
            && result_pages
                .iter()
                .all(|p| p.as_array().unwrap().len() <= 2),
        "{result_pages:?}"
    );
    assert_eq!(
        result_pages
            .iter()
            .flat_map(|p| p.as_array().unwrap().clone())
            .collect::<Vec<_>>(),
        *results
    );
    let bonus_results = sc["bonus_results"].as_array().unwrap();
    assert_eq!(bonus_results.len(), 1, "{bonus_results:?}");
    assert_eq!(
        (
            dec(&bonus_results[0]["resultScore"]),
            dec(&bonus_results[0]["resultMaximum"])
        ),
        (Decimal::from_str("7.5").unwrap(), Decimal::from(10))
    );
    assert_eq!(bonus_results[0]["comment"], "Well argued");
    // And the grade report agrees, cell by cell.
    let (_, grades) = app.get_json(&format!("/api/courses/{COURSE}/grades")).await;
    for (user, state, score) in [
        ("ada", "counted", Some("42.50")),
        ("alan", "counted", Some("36.50")),
        ("bea", "counted", Some("0.00")),
        ("carl", "missing", None),
        ("dee", "counted", Some("40.00")),
        ("eve", "pending_manual", Some("12.00")),
    ] {
        let cell = grade_cell(&grades, user, &quiz_item);
        assert_eq!(
            (cell["state"].as_str(), cell["score"].as_str()),
            (Some(state), score),
            "{user}: {cell}"
        );
    }

    // getMembers: the whole class, paged or not; with rlid, each member
    // carries the link's launch claims.
    let m = &seen["members"];
    let class: Vec<String> = LEARNERS
        .iter()
        .chain(["grace"].iter())
        .map(|s| s.to_string())
        .collect();
    assert_eq!(user_ids(&m["all"]), class);
    assert_eq!(m["context"]["id"], COURSE);
    let ada_member = &m["all"][0];
    assert_eq!(
        (ada_member["name"].as_str(), ada_member["email"].as_str()),
        (Some("Ada Lovelace"), Some("ada@example.edu"))
    );
    assert_eq!(user_ids(&m["first_page"]["members"]), ["ada", "alan"]);
    let next = m["first_page"]["next"].as_str().expect("a next page");
    assert!(
        next.contains("limit=2") && next.contains("cursor=2"),
        "{next}"
    );
    assert_eq!(user_ids(&m["every_page"]), class);
    assert_eq!(user_ids(&m["rlid"]), class);
    assert!(
        m["rlid"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["resource_link_ids"] == json!([created[0]])),
        "{}",
        m["rlid"]
    );
    assert!(m["all"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["resource_link_ids"] == json!([])));
    assert_eq!(user_ids(&m["learners"]), LEARNERS);

    // Last, as it needs the platform to launch a deep-linked link at its
    // own url: the quiz opens at the url ltijs gave it, on its own route.
    assert_eq!(
        (
            re["login_target_link_uri"].as_str(),
            re["target_link_uri"].as_str(),
            re["served_path"].as_str()
        ),
        (Some(quiz_url), Some(quiz_url), Some("/quiz")),
        "{re}"
    );
    app.stop().await;
}

on_both_stores! {
    async fn an_ltijs_tool_registers_itself_then_deep_links_grades_and_reads_the_roster(app: TestApp) {
        ltijs_scenario(app, "dynamic").await;
    }
}

on_both_stores! {
    async fn an_ltijs_tool_registered_by_hand_deep_links_grades_and_reads_the_roster(app: TestApp) {
        ltijs_scenario(app, "manual").await;
    }
}

/// Runs the tool with `config`; what it printed.
async fn run_tool(python: &str, config: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/lti_tool.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(config.to_string())
        .output()
        .await
        .unwrap_or_else(|e| panic!("could not run {python}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the pylti1p3 tool failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "tool output is not JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The tool's result for `user`, in the line item's scale.
fn result_of(seen: &Value, user: &str) -> Option<f64> {
    seen["results"]
        .as_array()?
        .iter()
        .find(|r| r["userId"] == user)?["resultScore"]
        .as_f64()
}

/// A college moves from the SQLite file to PostgreSQL. The tool was
/// registered on the SQLite server and posts a score there; the store is
/// copied with `gradebook store copy`; the PostgreSQL server takes the same
/// address (the same issuer); the tool, configured exactly as before (its
/// client id, deployment id, keys, the platform's JWKS URL), launches and
/// posts again, and both scores are in the grades.
#[sqlx::test(migrations = false)]
async fn a_pylti1p3_tool_goes_on_posting_after_the_store_moves_from_sqlite_to_postgres(
    opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let from = format!("sqlite://{}", dir.path().join("gradebook.db").display());
    let to = {
        let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
        let (server, _) = base.rsplit_once('/').unwrap();
        format!("{server}/{}", connect.get_database().unwrap())
    };

    // On SQLite: registered, deployed, a first score.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let db = gradebook::projections::db::Db::connect(&from, 8)
        .await
        .unwrap();
    let app = TestApp::start_on(db.clone(), listener, None).await;
    let t = register(&app, Grading::Full, roster(true, false, false)).await;
    course_with(&app, &[&t.tool_id]).await;
    let link = sis_link(&app, &t.tool_id, "unit-1", Some("30")).await;
    let line_item = link["line_item_id"].as_str().unwrap().to_string();
    let mut config = json!({
        "mode": "score", "base": app.base, "sis_token": app.sis, "course_id": COURSE,
        "learner": "ada", "instructor": "grace", "resource_link_id": "unit-1",
        "tool_id": t.tool_id, "client_id": t.client_id, "deployment_id": t.deployment_id,
        "tool_private_key": t.key.private_pkcs8_pem, "platform_jwks": Value::Null,
        "launch_url": launch_url(), "deep_linking_url": deep_linking_url(),
        "score": 15, "score_maximum": 20, "timestamp": "2026-10-01T10:00:00+00:00",
    });
    let seen = run_tool(&python, &config).await;
    assert_eq!(
        seen["key_source"], "key_set_url",
        "the tool reads the platform's published keys"
    );
    assert_eq!(result_of(&seen, "ada"), Some(22.5), "{seen}");
    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
    let (_, grades) = app.get_json(&format!("/api/courses/{COURSE}/grades")).await;
    app.stop().await;
    if let gradebook::projections::db::Db::Sqlite(pool) = db {
        pool.close().await;
    }

    // The move.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gradebook"))
        .args(["store", "copy", "--from", &from, "--to", &to])
        .env_remove("DATABASE_URL")
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("all equal"), "{report}");

    // On PostgreSQL, at the same address: same issuer, same keys.
    let pool = opts
        .max_connections(16)
        .connect_with(connect)
        .await
        .unwrap();
    let mut tries = 0;
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(e) if tries < 100 => {
                tries += 1;
                eprintln!("waiting for {addr}: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{addr} stays taken: {e}"),
        }
    };
    let app = TestApp::start_on(
        gradebook::projections::db::Db::Postgres(pool),
        listener,
        None,
    )
    .await;
    assert_eq!(app.engine().db.kind(), "postgres");
    assert_eq!(
        app.get_json("/.well-known/jwks.json").await.1,
        jwks,
        "the same signing keys, kids and all"
    );
    assert_eq!(
        app.get_json(&format!("/api/courses/{COURSE}/grades"))
            .await
            .1,
        grades
    );

    config["score"] = json!(18);
    config["timestamp"] = json!("2026-10-02T10:00:00+00:00");
    let seen = run_tool(&python, &config).await;
    assert_eq!(result_of(&seen, "ada"), Some(27.0), "{seen}");
    let (_, grades) = app.get_json(&format!("/api/courses/{COURSE}/grades")).await;
    let cell = grade_cell(&grades, "ada", &line_item);
    assert_eq!(cell["score"], "27.00", "{grades}");
    // Both posts are in the log the PostgreSQL server holds.
    let (_, audit) = app
        .get_json(&format!("/api/audit?course_id={COURSE}&limit=1000"))
        .await;
    let accepted = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "ScoreAccepted")
        .count();
    assert_eq!(accepted, 2, "{audit}");
    app.stop().await;
}
