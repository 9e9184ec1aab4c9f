//! End to end with a real LTI library on the tool side: pylti1p3 (run by
//! `tests/e2e/lti_tool.py`) performs the OIDC login, validates our launches
//! with its own checks, answers a deep-linking request, and relaunches the
//! link it made. Needs `GRADEBOOK_E2E_PYTHON` (an interpreter with
//! `tests/e2e/requirements.txt` installed; `scripts/test` sets it up); the
//! test is skipped, saying so, only when that variable is unset.

mod common;

use common::launch::*;
use gradebook::domain::{CourseId, LineItemId};
use gradebook::lti::keys;
use gradebook::lti::tools::Grading;
use serde_json::{json, Value};

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
        course_with(&app, &[&t.tool.tool_id]).await;
        let link = sis_link(&app, &t.tool.tool_id, "unit-1", Some("30")).await;
        keys::signing_key(&app.db).await.unwrap();
        let jwks = keys::jwks(&app.db, chrono::Utc::now()).await.unwrap();

        let config = json!({
            "base": app.base, "sis_token": app.sis, "course_id": COURSE,
            "learner": "ada", "instructor": "grace", "resource_link_id": "unit-1",
            "tool_id": t.tool.tool_id, "client_id": t.tool.client_id, "deployment_id": t.tool.deployment_id,
            "tool_private_key": t.key.private_pkcs8_pem, "platform_jwks": jwks,
            "launch_url": t.tool.launch_url, "deep_linking_url": t.tool.deep_linking_url,
        });
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/lti_tool.py");
        let out = tokio::process::Command::new(&python)
            .arg(script)
            .arg(config.to_string())
            .output()
            .await
            .unwrap_or_else(|e| panic!("could not run {python}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the pylti1p3 tool failed:\n{stderr}");
        let seen: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("tool output is not JSON ({e}):\n{}\n{stderr}", String::from_utf8_lossy(&out.stdout)));

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
