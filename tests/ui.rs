//! The registrar web pages under `/ui`: sessions and their cookie, CSRF,
//! role refusals as pages, the page a 40 x 20 course renders in, and a
//! headless Chromium walking the pages a registrar uses, checked against
//! the REST API.

mod common;
#[path = "ui/support.rs"]
mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::fixtures::{self, hist101, score};
use common::{meta, TestApp};
use fantoccini::Locator;
use gradebook::domain::line_item::LineItemSpec;
use gradebook::domain::score::{ActivityProgress, GradingProgress, ScoreOutcome, ScorePost};
use gradebook::domain::Source;
use gradebook::projections::db::Db;
use serde_json::Value;
use support::{cookie_in, set_cookies, sign_in};

const COURSE: &str = "HIST-101-2026FA";

async fn api_locked(app: &TestApp) -> bool {
    let (st, b) = app.get_json(&format!("/api/courses/{COURSE}")).await;
    assert_eq!(st, 200, "{b}");
    b["locked"].as_bool().unwrap()
}

on_both_stores! {
    async fn signing_in_gives_a_strict_http_only_cookie_and_signing_out_ends_the_session(app: TestApp) {
        hist101(&app).await;
        // Pages need a session: the browser is sent to sign in, and back.
        let c = support::client();
        let res = c.get(app.url(&format!("/ui/courses/{COURSE}"))).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 303);
        assert_eq!(res.headers()["location"], format!("/ui/sign-in?next=/ui/courses/{COURSE}"));
        // The pages' address as the docs write it, with and without its slash.
        for entry in ["/ui", "/ui/"] {
            let res = c.get(app.url(entry)).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 303, "{entry}");
            assert_eq!(res.headers()["location"], "/ui/courses", "{entry}");
        }

        let (s, lines) = sign_in(&app, &app.registrar).await;
        let line = lines.iter().find(|l| l.starts_with("gb_session=")).unwrap();
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
            assert!(line.contains(flag), "{flag} missing from {line}");
        }
        // Served over plain http here; Secure is set when the public URL is https.
        assert!(!line.contains("Secure"), "{line}");
        // The page is HTML under a strict content security policy.
        let page = s.get("/ui/courses").await;
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let csp = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        let html = page.text().await.unwrap();
        assert!(html.contains(COURSE), "the course list shows the course");

        // A wrong token gets the form again, and no session.
        let c2 = support::client();
        let form = c2.get(app.url("/ui/sign-in")).send().await.unwrap();
        let nonce_cookie = cookie_in(&set_cookies(&form), "gb_sign_in").unwrap();
        let nonce = support::csrf_in(&form.text().await.unwrap()).unwrap();
        let bad = c2.post(app.url("/ui/sign-in"))
            .header("cookie", format!("gb_sign_in={nonce_cookie}"))
            .form(&[("token", "gb_nope_nope"), ("csrf", nonce.as_str())])
            .send().await.unwrap();
        assert_eq!(bad.status().as_u16(), 401);
        assert!(cookie_in(&set_cookies(&bad), "gb_session").is_none());

        // Sign-out needs the form's token, then the session is gone.
        let out = s.post_form("/ui/sign-out", &[("csrf", &s.csrf)]).await;
        assert_eq!(out.status().as_u16(), 303);
        let cleared = set_cookies(&out);
        assert!(cleared.iter().any(|l| l.starts_with("gb_session=;") && l.contains("Max-Age=0")), "{cleared:?}");
        assert_eq!(s.get("/ui/courses").await.status().as_u16(), 303);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_form_posted_without_this_sessions_csrf_token_is_refused_and_changes_nothing(app: TestApp) {
        hist101(&app).await;
        let (s, _) = sign_in(&app, &app.registrar).await;
        let before = app.event_count().await;
        for form in [vec![], vec![("csrf", "forged")], vec![("csrf", "")]] {
            let res = s.post_form(&format!("/ui/courses/{COURSE}/lock"), &form).await;
            assert_eq!(res.status().as_u16(), 403, "{form:?}");
            let html = res.text().await.unwrap();
            assert!(html.contains("nothing was changed"), "{html}");
        }
        assert!(!api_locked(&app).await);
        assert_eq!(app.event_count().await, before);
        // Tool settings and sign-in are guarded the same way.
        let res = s.post_form("/ui/tools/registration", &[("registration_url", "https://tool.example/reg")]).await;
        assert_eq!(res.status().as_u16(), 403);
        let res = support::client().post(app.url("/ui/sign-in"))
            .form(&[("token", app.registrar.as_str()), ("csrf", "guess")])
            .send().await.unwrap();
        assert_eq!(res.status().as_u16(), 403);
        assert!(cookie_in(&set_cookies(&res), "gb_session").is_none());

        // With the token, the same post locks the course, and the page says so.
        let res = s.post_form(&format!("/ui/courses/{COURSE}/lock"), &[("csrf", &s.csrf), ("reason", "grades final")]).await;
        assert_eq!(res.status().as_u16(), 303);
        assert_eq!(res.headers()["location"], format!("/ui/courses/{COURSE}?done=locked#done"));
        assert!(api_locked(&app).await);
        let html = s.get(&format!("/ui/courses/{COURSE}?done=locked")).await.text().await.unwrap();
        assert!(html.contains("id=\"done\"") && html.contains("Locked: tools and backfills"), "{html}");
        assert!(html.contains("Locked by <strong>registrar token ") && html.contains("<q>grades final</q>"), "{html}");
        // A token given a name at `token create` is named by it.
        let (_, named) = gradebook::services::api_tokens::create(&app.db, gradebook::services::api_tokens::ApiRole::Registrar, Some("Office of the Registrar".into())).await.unwrap();
        let (office, _) = sign_in(&app, &named).await;
        let res = office.post_form(&format!("/ui/courses/{COURSE}/unlock"), &[("csrf", office.csrf.as_str()), ("reason", "appeal")]).await;
        assert_eq!(res.status().as_u16(), 303);
        let res = office.post_form(&format!("/ui/courses/{COURSE}/lock"), &[("csrf", office.csrf.as_str())]).await;
        assert_eq!(res.status().as_u16(), 303);
        let html = office.get(&format!("/ui/courses/{COURSE}")).await.text().await.unwrap();
        assert!(html.contains("Locked by <strong>Office of the Registrar</strong>") && html.contains("(no reason given)"), "{html}");
        // Unlocking needs a reason: without one nothing changes.
        let before = app.event_count().await;
        for reason in [None, Some("  ")] {
            let mut form = vec![("csrf", s.csrf.as_str())];
            form.extend(reason.map(|r| ("reason", r)));
            let res = s.post_form(&format!("/ui/courses/{COURSE}/unlock"), &form).await;
            assert_eq!(res.status().as_u16(), 400, "{reason:?}");
            let html = res.text().await.unwrap();
            assert!(html.contains("Unlocking needs a reason"), "{html}");
        }
        assert!(api_locked(&app).await);
        assert_eq!(app.event_count().await, before);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_page_a_role_may_not_use_answers_403_as_a_page(app: TestApp) {
        hist101(&app).await;
        for token in [app.auditor.clone(), app.sis.clone()] {
            let (s, _) = sign_in(&app, &token).await;
            for path in [format!("/ui/courses/{COURSE}/backfill"), format!("/ui/courses/{COURSE}/lock")] {
                let res = s.get(&path).await;
                assert_eq!(res.status().as_u16(), 403, "{path}");
                assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
                let html = res.text().await.unwrap();
                assert!(html.contains("<h1>Not allowed</h1>") && html.contains("registrar"), "{html}");
            }
            // With a valid CSRF token the role is still refused, and nothing changes.
            let res = s.post_form(&format!("/ui/courses/{COURSE}/lock"), &[("csrf", &s.csrf)]).await;
            assert_eq!(res.status().as_u16(), 403);
            assert!(!api_locked(&app).await);
            // Reading is for every role; a registrar's buttons are not shown.
            let html = s.get(&format!("/ui/courses/{COURSE}")).await.text().await.unwrap();
            assert!(html.contains("id=\"matrix\"") && !html.contains("Lock course"));
        }
        let (s, _) = sign_in(&app, &app.registrar).await;
        assert_eq!(s.get(&format!("/ui/courses/{COURSE}/backfill")).await.status().as_u16(), 200);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_session_ends_when_its_token_is_revoked_or_it_expires(app: TestApp) {
        let (registrar, _) = sign_in(&app, &app.registrar).await;
        let (auditor, _) = sign_in(&app, &app.auditor).await;
        assert_eq!(auditor.get("/ui/courses").await.status().as_u16(), 200);
        let token_id = app.auditor.split('_').nth(1).unwrap().to_string();
        assert!(gradebook::services::api_tokens::revoke(&app.db, &token_id).await.unwrap());
        let res = auditor.get("/ui/courses").await;
        assert_eq!(res.status().as_u16(), 303, "a revoked token's session must end");
        assert!(res.headers()["location"].to_str().unwrap().starts_with("/ui/sign-in"));

        assert_eq!(registrar.get("/ui/courses").await.status().as_u16(), 200);
        let past = "2000-01-01T00:00:00.000000Z";
        match &app.db {
            Db::Postgres(p) => { sqlx::query("UPDATE ui_sessions SET expires_at = $1").bind(past).execute(p).await.unwrap(); }
            Db::Sqlite(p) => { sqlx::query("UPDATE ui_sessions SET expires_at = $1").bind(past).execute(p).await.unwrap(); }
        }
        let res = registrar.get("/ui/courses?q=HIST").await;
        assert_eq!(res.status().as_u16(), 303, "an expired session must end");
        // The sign-in page says why, and leads back to where the registrar was.
        let back = res.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(back, "/ui/sign-in?next=/ui/courses%3Fq%3DHIST&why=expired");
        let page = support::client().get(app.url(&back)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("Your session has ended") && page.contains("value=\"/ui/courses?q=HIST\""), "{page}");
        // A form sent on an ended session: nothing changes, the sign-in page
        // says the form was not sent and leads back to the form's page.
        let before = app.event_count().await;
        let lock = format!("/ui/courses/{COURSE}/lock");
        for (referrer, next) in [
            (app.url(&lock), lock.clone()),
            ("https://elsewhere.example/ui/x".to_string(), "/ui/courses".to_string()),
        ] {
            let res = registrar.client.post(app.url(&lock))
                .header("cookie", format!("gb_session={}", registrar.cookie))
                .header("referer", referrer)
                .form(&[("csrf", registrar.csrf.as_str()), ("reason", "end of term")])
                .send().await.unwrap();
            assert_eq!(res.status().as_u16(), 303);
            assert_eq!(res.headers()["location"], format!("/ui/sign-in?next={next}&why=unsent"));
        }
        let page = support::client().get(app.url(&format!("/ui/sign-in?next={lock}&why=unsent"))).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("nothing was changed"), "{page}");
        assert_eq!(app.event_count().await, before);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_registrar_edits_tool_settings_and_starts_a_registration_from_the_tools_page(app: TestApp) {
        let res = app.client.post(app.url("/api/tools")).bearer_auth(&app.registrar)
            .json(&serde_json::json!({"name": "Quiz engine", "jwks_url": "https://quiz.example/jwks", "grading": "full"}))
            .send().await.unwrap();
        let tool: Value = res.json().await.unwrap();
        let id = tool["tool_id"].as_str().unwrap().to_string();
        let (s, _) = sign_in(&app, &app.registrar).await;
        let html = s.get("/ui/tools").await.text().await.unwrap();
        assert!(html.contains(tool["client_id"].as_str().unwrap()) && html.contains(tool["deployment_id"].as_str().unwrap()));
        assert!(html.contains(&format!("{}/.well-known/jwks.json", app.base)));

        assert!(!html.contains("id=\"saved\""), "nothing is said saved before a save");
        assert!(html.contains("/enrol/lti/register.php?token="), "the placeholder shows Moodle's registration URL");

        let res = s.post_form(&format!("/ui/tools/{id}"), &[("csrf", &s.csrf), ("grading", "sync_only"), ("access", "on"), ("hide_names", "on")]).await;
        assert_eq!(res.status().as_u16(), 303);
        let back = res.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(back, format!("/ui/tools?saved={id}#saved"));
        let html = s.get(back.trim_end_matches("#saved")).await.text().await.unwrap();
        assert!(html.contains("id=\"saved\"") && html.contains("Saved: the settings of <strong>Quiz engine</strong>"), "{html}");
        let (_, t) = app.get_json(&format!("/api/tools/{id}")).await;
        assert_eq!(t["grading"], "sync_only");
        assert_eq!(t["roster"], serde_json::json!({"access": true, "hide_names": true, "hide_emails": false}));
        // A value the API refuses is refused here too, and changes nothing.
        let res = s.post_form(&format!("/ui/tools/{id}"), &[("csrf", &s.csrf), ("grading", "everything")]).await;
        assert_eq!(res.status().as_u16(), 400);
        assert_eq!(app.get_json(&format!("/api/tools/{id}")).await.1["grading"], "sync_only");

        let res = s.post_form("/ui/tools/registration", &[("csrf", &s.csrf), ("registration_url", "https://tool.example/register?token=abc")]).await;
        assert_eq!(res.status().as_u16(), 200);
        let html = res.text().await.unwrap();
        assert!(html.contains("https://tool.example/register?token=abc&amp;openid_configuration=") && html.contains("registration_token="), "{html}");
        let res = s.post_form("/ui/tools/registration", &[("csrf", &s.csrf), ("registration_url", "not a url")]).await;
        assert_eq!(res.status().as_u16(), 422);

        // Its deep-linking URL, or that it has none.
        assert!(html.contains("None: the registration offers no deep linking"), "{html}");
        let res = app.client.post(app.url("/api/tools")).bearer_auth(&app.registrar)
            .json(&serde_json::json!({"name": "Moodle", "jwks_url": "https://moodle.example/jwks",
                "launch_url": "https://moodle.example/enrol/lti/launch.php",
                "deep_linking_url": "https://moodle.example/enrol/lti/launch_deeplink.php"}))
            .send().await.unwrap();
        assert_eq!(res.status().as_u16(), 201);
        let html = s.get("/ui/tools").await.text().await.unwrap();
        assert!(html.contains("<code>https://moodle.example/enrol/lti/launch_deeplink.php</code>"), "{html}");

        // The courses it reaches: all, a list, or those that deploy it.
        hist101(&app).await;
        let res = s.post_form(&format!("/ui/tools/{id}"), &[("csrf", &s.csrf), ("grading", "sync_only"), ("access", "on"), ("hide_names", "on"), ("courses", "all")]).await;
        assert_eq!(res.status().as_u16(), 303);
        assert_eq!(app.get_json(&format!("/api/tools/{id}")).await.1["courses"], "all");
        let res = s.post_form(&format!("/ui/tools/{id}"), &[("csrf", &s.csrf), ("grading", "sync_only"), ("access", "on"), ("hide_names", "on"), ("courses", "only"), ("course_ids", &format!("{COURSE}, NO-SUCH-COURSE"))]).await;
        assert_eq!(res.status().as_u16(), 422);
        assert!(res.text().await.unwrap().contains("NO-SUCH-COURSE"));
        assert_eq!(app.get_json(&format!("/api/tools/{id}")).await.1["courses"], "all", "a refused list changes nothing");
        let res = s.post_form(&format!("/ui/tools/{id}"), &[("csrf", &s.csrf), ("grading", "sync_only"), ("access", "on"), ("hide_names", "on"), ("courses", "only"), ("course_ids", COURSE)]).await;
        assert_eq!(res.status().as_u16(), 303);
        assert_eq!(app.get_json(&format!("/api/tools/{id}")).await.1["courses"], serde_json::json!([COURSE]));
        let html = s.get("/ui/tools").await.text().await.unwrap();
        assert!(html.contains(&format!("value=\"{COURSE}\"")), "the list is in the form: {html}");

        // An auditor sees the settings but gets no form, and may not post one.
        let (a, _) = sign_in(&app, &app.auditor).await;
        let html = a.get("/ui/tools").await.text().await.unwrap();
        assert!(html.contains("Grade sync only") && !html.contains("Save settings"));
        assert!(html.contains(&format!("Only {COURSE}")) && html.contains("The courses that deploy it"), "{html}");
        let res = a.post_form(&format!("/ui/tools/{id}"), &[("csrf", &a.csrf), ("grading", "off")]).await;
        assert_eq!(res.status().as_u16(), 403);
        assert_eq!(app.get_json(&format!("/api/tools/{id}")).await.1["grading"], "sync_only");

        // Each tool lists the courses that deploy it, as the API says.
        let section = |html: &str| {
            let start = html.find(&format!("data-tool=\"{id}\"")).expect("the tool's section");
            let end = html[start..].find("</section>").unwrap() + start;
            html[start..end].to_string()
        };
        let html = s.get("/ui/tools").await.text().await.unwrap();
        assert!(section(&html).contains("No course deploys it itself"), "{html}");
        let res = app.client.post(app.url(&format!("/api/courses/{COURSE}/tools"))).bearer_auth(&app.registrar)
            .json(&serde_json::json!({"tool_ids": [id]})).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let html = s.get("/ui/tools").await.text().await.unwrap();
        assert!(section(&html).contains(&format!("<a href=\"/ui/courses/{COURSE}\">{COURSE}</a>")), "{html}");

        // Revoking asks first; an auditor may not, nor a post without the
        // session's CSRF token; then the API says revoked and the page says so.
        assert!(section(&html).contains(&format!("href=\"/ui/tools/{id}/revoke\"")));
        let confirm = s.get(&format!("/ui/tools/{id}/revoke")).await;
        assert_eq!(confirm.status().as_u16(), 200);
        assert!(confirm.text().await.unwrap().contains("Revoke Quiz engine?"));
        assert!(app.get_json(&format!("/api/tools/{id}")).await.1["revoked_at"].is_null(), "nothing happens before confirming");
        assert_eq!(a.get(&format!("/ui/tools/{id}/revoke")).await.status().as_u16(), 403);
        assert_eq!(a.post_form(&format!("/ui/tools/{id}/revoke"), &[("csrf", &a.csrf)]).await.status().as_u16(), 403);
        assert_eq!(s.post_form(&format!("/ui/tools/{id}/revoke"), &[("csrf", "forged")]).await.status().as_u16(), 403);
        assert!(app.get_json(&format!("/api/tools/{id}")).await.1["revoked_at"].is_null());
        let res = s.post_form(&format!("/ui/tools/{id}/revoke"), &[("csrf", &s.csrf)]).await;
        assert_eq!(res.status().as_u16(), 303);
        assert_eq!(res.headers()["location"], format!("/ui/tools?revoked={id}#revoked"));
        assert!(app.get_json(&format!("/api/tools/{id}")).await.1["revoked_at"].is_string());
        let html = s.get(&format!("/ui/tools?revoked={id}")).await.text().await.unwrap();
        assert!(html.contains("Revoked: <strong>Quiz engine</strong>"), "{html}");
        assert!(!section(&html).contains("/revoke\""), "a revoked tool offers no revoke button");
        assert_eq!(s.get("/ui/tools/no-such-tool/revoke").await.status().as_u16(), 404);
        app.stop().await;
    }
}

on_both_stores! {
    async fn the_backfill_page_lists_the_line_items_and_gives_a_template_the_backfill_takes(app: TestApp) {
        hist101(&app).await;
        let (s, _) = sign_in(&app, &app.registrar).await;
        let (_, grades) = app.get_json(&format!("/api/courses/{COURSE}/grades")).await;
        let students: Vec<String> = grades["students"].as_array().unwrap().iter().map(|s| s["user_id"].as_str().unwrap().to_string()).collect();
        let items: Vec<(String, String)> = grades["students"][0]["items"].as_array().unwrap().iter()
            .map(|i| (i["line_item_id"].as_str().unwrap().to_string(), i["maximum"].as_str().unwrap().to_string())).collect();
        assert!(students.len() > 1 && items.len() > 1);

        let html = s.get(&format!("/ui/courses/{COURSE}/backfill")).await.text().await.unwrap();
        for (id, _) in &items {
            assert!(html.contains(&format!("data-item=\"{id}\"")), "{id} listed: {html}");
        }
        let res = s.get(&format!("/ui/courses/{COURSE}/backfill/template.csv")).await;
        assert_eq!(res.status().as_u16(), 200);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        assert!(res.headers()["content-disposition"].to_str().unwrap().contains(&format!("{COURSE}-backfill-template.csv")));
        let csv = res.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "line_item_id,user_id,score_given,score_maximum,timestamp,comment");
        assert_eq!(lines.len() - 1, students.len() * items.len(), "a row for each learner and item: {csv}");
        let dec = |s: &str| rust_decimal::Decimal::from_str_exact(s).unwrap();
        for u in &students {
            for (id, max) in &items {
                let found = lines.iter().any(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    f.len() == 6 && f[0] == id && f[1] == u && f[2].is_empty() && f[4].is_empty()
                        && f[3].parse().ok().map(|m: String| dec(&m)) == Some(dec(max))
                });
                assert!(found, "{id},{u} with maximum {max} in {csv}");
            }
        }
        // Filled in, the template is a file the backfill takes as it is.
        let filled: String = lines.iter().enumerate().map(|(n, l)| {
            if n == 0 { format!("{l}\n") } else {
                let f: Vec<&str> = l.split(',').collect();
                format!("{},{},1,{},2026-05-01T10:00:00Z,\n", f[0], f[1], f[3])
            }
        }).collect();
        let res = app.client.post(app.url(&format!("/api/courses/{COURSE}/backfill?dry_run=true")))
            .bearer_auth(&app.registrar).header("content-type", "text/csv").body(filled).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let report: Value = res.json().await.unwrap();
        assert_eq!(report["rejected"], 0, "{report}");
        assert_eq!(report["accepted"], students.len() * items.len(), "{report}");

        // Like the page, the template is for registrars only.
        let (a, _) = sign_in(&app, &app.auditor).await;
        assert_eq!(a.get(&format!("/ui/courses/{COURSE}/backfill/template.csv")).await.status().as_u16(), 403);
        assert_eq!(s.get("/ui/courses/NO-SUCH-COURSE/backfill/template.csv").await.status().as_u16(), 404);
        app.stop().await;
    }
}

on_both_stores! {
    async fn the_course_page_takes_a_plain_date_as_the_end_of_that_day_in_utc(app: TestApp) {
        hist101(&app).await;
        let (s, _) = sign_in(&app, &app.auditor).await;
        // Today: the course exists (it was opened just now), and the end
        // of today is later than anything in it.
        let today = Utc::now().format("%Y-%m-%d").to_string();
        let html = s.get(&format!("/ui/courses/{COURSE}?as_of={today}")).await.text().await.unwrap();
        assert!(html.contains(&format!("As of {today} 23:59:59 UTC")), "{html}");
        assert!(html.contains("as of (UTC)"), "the time zone is stated: {html}");
        let res = s.get(&format!("/ui/courses/{COURSE}?as_of=2026-02-30")).await;
        assert_eq!(res.status().as_u16(), 400);
        assert!(res.text().await.unwrap().contains("or a date such as 2026-05-01 (the end of that day)"));
        app.stop().await;
    }
}

on_both_stores! {
    async fn the_audit_page_filters_and_pages_through_the_log(app: TestApp) {
        hist101(&app).await;
        for i in 0..55 {
            score(&app, "ada", "hw1", Some(&(i % 10).to_string()), "10", &format!("2026-05-01T10:{i:02}:00Z")).await;
        }
        score(&app, "alan", "hw1", Some("5"), "10", "2026-05-01T10:00:00Z").await;
        let (s, _) = sign_in(&app, &app.auditor).await;
        let first = s.get("/ui/audit?course_id=HIST-101-2026FA&user_id=ada").await.text().await.unwrap();
        let rows = |html: &str| html.matches("<tr><td class=\"num\">").count();
        assert_eq!(rows(&first), 50, "a page holds 50 events");
        assert!(!first.contains("alan/"), "only ada's events");
        let at = first.find("id=\"next-page\" rel=\"next\" href=\"").unwrap() + "id=\"next-page\" rel=\"next\" href=\"".len();
        let next = first[at..].split('"').next().unwrap().replace("&amp;", "&");
        assert!(next.contains("user_id=ada") && next.contains("cursor="), "{next}");
        let second = s.get(&next).await.text().await.unwrap();
        // Ada's enrollment and 55 posts: 6 left for the second page, the last.
        assert_eq!(rows(&second), 6);
        assert!(!second.contains("id=\"next-page\""));
        let res = s.get("/ui/audit?from=May%201").await;
        assert_eq!(res.status().as_u16(), 400);
        let today = Utc::now().format("%Y-%m-%d").to_string();
        let html = s.get(&format!("/ui/audit?course_id=HIST-101-2026FA&from={today}&to={today}")).await.text().await.unwrap();
        assert_eq!(rows(&html), 50);
        app.stop().await;
    }
}

/// The row of the term page for one course.
fn term_row(html: &str, course_id: &str) -> String {
    let at = html
        .find(&format!("data-course=\"{course_id}\""))
        .unwrap_or_else(|| panic!("no row for {course_id}: {html}"));
    html[at..].split("</tr>").next().unwrap().to_string()
}

on_both_stores! {
    async fn student_search_finds_people_by_id_or_name_and_opens_their_term(app: TestApp) {
        use gradebook::domain::CourseId;
        hist101(&app).await;
        for (user, item, given, max) in [("ada", "midterm", "88", "100"), ("ada", "hw1", "7", "10"), ("alan", "hw1", "9", "10")] {
            score(&app, user, item, Some(given), max, "2026-05-01T10:00:00Z").await;
        }
        // A second course, locked, where ada has a grade too.
        let math = CourseId::parse("MATH-201-2026FA").unwrap();
        fixtures::open_course(&app, &math, "Linear Algebra", &[]).await;
        app.engine()
            .create_line_item(&math, Some(fixtures::item("quiz")), LineItemSpec::new("Quiz", fixtures::d("20")), &meta(Source::Sis))
            .await
            .unwrap();
        fixtures::enroll(&app, &math, "ada", fixtures::learner("Ada Lovelace")).await;
        fixtures::enroll(&app, &math, "dana", fixtures::learner("Dana 50%_off")).await;
        app.engine()
            .post_score(&math, &fixtures::item("quiz"), &fixtures::user("ada"), fixtures::post(Some("15"), "20", "2026-05-01T10:00:00Z"), &meta(Source::Ags))
            .await
            .unwrap();
        app.engine().lock_course(&math, Some("term over".into()), &meta(Source::Registrar)).await.unwrap();

        let (s, _) = sign_in(&app, &app.auditor).await;
        // The header's search box is on every signed-in page.
        let courses = s.get("/ui/courses").await.text().await.unwrap();
        assert!(courses.contains("action=\"/ui/students\"") && courses.contains("for=\"header-q\""), "{courses}");
        // An empty query shows the form only.
        let empty = s.get("/ui/students?q=").await;
        assert_eq!(empty.status().as_u16(), 200);
        let empty = empty.text().await.unwrap();
        assert!(!empty.contains("id=\"students\"") && !empty.contains("id=\"no-match\""), "{empty}");
        // By id, and by part of a name in any case.
        let by_id = s.get("/ui/students?q=ADA").await.text().await.unwrap();
        assert!(by_id.contains("href=\"/ui/students/ada\""), "{by_id}");
        assert!(!by_id.contains("/ui/students/alan\""), "{by_id}");
        let by_name = s.get("/ui/students?q=turING").await.text().await.unwrap();
        assert!(by_name.contains("href=\"/ui/students/alan\"") && !by_name.contains("/ui/students/ada\""), "{by_name}");
        // Ada is in two courses.
        let ada_row = by_id.split("/ui/students/ada\"").nth(1).unwrap().split("</tr>").next().unwrap();
        assert!(ada_row.contains(">2<"), "{ada_row}");
        // LIKE's wildcards are matched as themselves.
        for q in ["%25", "_", "50%25_"] {
            let html = s.get(&format!("/ui/students?q={q}")).await.text().await.unwrap();
            assert!(html.contains("href=\"/ui/students/dana\""), "{q}: {html}");
            for other in ["ada", "alan", "grace"] {
                assert!(!html.contains(&format!("href=\"/ui/students/{other}\"")), "{q} matched {other}");
            }
        }
        let none = s.get("/ui/students?q=nobody-here").await.text().await.unwrap();
        assert!(none.contains("id=\"no-match\""), "{none}");

        // The term page: each course's grade is the grades endpoint's.
        let term = s.get("/ui/students/ada").await;
        assert_eq!(term.status().as_u16(), 200);
        let term = term.text().await.unwrap();
        for (course, locked) in [(COURSE, false), ("MATH-201-2026FA", true)] {
            let (st, grades) = app.get_json(&format!("/api/courses/{course}/grades")).await;
            assert_eq!(st, 200, "{grades}");
            let g = fixtures::student(&grades, "ada");
            let row = term_row(&term, course);
            let percent = g["percent"].as_str().unwrap();
            // A course without a letter scale has no letter: a dash.
            let letter = g["letter"].as_str().unwrap_or("—");
            let status = g["status"].as_str().unwrap();
            assert!(row.contains(&format!(">{percent}%<")), "{course} {percent}: {row}");
            assert!(row.contains(&format!("<td class=\"letter\">{letter}</td>")), "{course} {letter}: {row}");
            assert!(row.contains(&format!(">{status}<")), "{course} {status}: {row}");
            assert!(row.contains(&format!("href=\"/ui/courses/{course}/students/ada\"")), "{row}");
            assert_eq!(row.contains("Locked"), locked, "{course}: {row}");
            assert_eq!(row.contains("<svg"), locked, "the padlock: {row}");
        }
        // Someone unknown is a 404 page.
        let res = s.get("/ui/students/nobody").await;
        assert_eq!(res.status().as_u16(), 404);
        assert!(res.text().await.unwrap().contains("<h1>Student not found</h1>"));
        app.stop().await;
    }
}

/// A course of `students` learners and `items` line items, every cell scored.
async fn big_course(app: &TestApp, students: usize, items: usize) -> String {
    use gradebook::domain::line_item::LineItemSpec;
    use gradebook::domain::{CourseId, LineItemId};
    let e = app.engine();
    let c = CourseId::parse("BIG-200-2026FA").unwrap();
    fixtures::open_course(app, &c, "Big course", &[]).await;
    for i in 0..items {
        let spec = LineItemSpec::new(format!("Assignment {i}"), fixtures::d("20"));
        e.create_line_item(
            &c,
            Some(LineItemId::parse(format!("a{i:02}")).unwrap()),
            spec,
            &meta(Source::Sis),
        )
        .await
        .unwrap();
    }
    for s in 0..students {
        let learner = fixtures::learner(&format!("Student {s:02}"));
        fixtures::enroll(app, &c, &format!("s{s:02}"), learner).await;
    }
    let cells: Vec<(usize, usize)> = (0..students)
        .flat_map(|s| (0..items).map(move |i| (s, i)))
        .collect();
    for chunk in cells.chunks(16) {
        futures::future::join_all(chunk.iter().map(|(s, i)| {
            let c = c.clone();
            async move {
                let given = ((s * 7 + i * 3) % 21).to_string();
                e.post_score(
                    &c,
                    &fixtures::item(&format!("a{i:02}")),
                    &fixtures::user(&format!("s{s:02}")),
                    fixtures::post(Some(&given), "20", "2026-05-01T10:00:00Z"),
                    &meta(Source::Ags),
                )
                .await
                .unwrap();
            }
        }))
        .await;
    }
    c.to_string()
}

on_both_stores! {
    async fn a_forty_student_twenty_item_course_page_renders_in_under_100_ms(app: TestApp) {
        let id = big_course(&app, 40, 20).await;
        let (s, _) = sign_in(&app, &app.auditor).await;
        let path = format!("/ui/courses/{id}");
        let first = s.get(&path).await;
        assert_eq!(first.status().as_u16(), 200);
        let html = first.text().await.unwrap();
        assert_eq!(html.matches("<td class=\"cell st-").count(), 800, "every cell is drawn");
        // The server says what the page cost it (Server-Timing: total;dur=ms).
        let mut server = Vec::new();
        let mut round_trip = Vec::new();
        for _ in 0..7 {
            let t = Instant::now();
            let res = s.get(&path).await;
            let timing = res.headers()["server-timing"].to_str().unwrap().to_string();
            let body = res.bytes().await.unwrap();
            round_trip.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(body.len() > 10_000);
            let total: f64 = timing.split(", ").find_map(|p| p.strip_prefix("total;dur=")).unwrap().parse().unwrap();
            server.push(total);
        }
        server.sort_by(f64::total_cmp);
        round_trip.sort_by(f64::total_cmp);
        let median = server[server.len() / 2];
        println!("40 x 20 course page on the server: median {median:.1} ms (min {:.1}, max {:.1}); round trip median {:.1} ms",
            server[0], server[server.len() - 1], round_trip[round_trip.len() / 2]);
        // The budget is 100 ms for an optimised build. An unoptimised test
        // build spends most of that loading the course (the read the grades
        // endpoint shares), so there it only has to stay clear of anything
        // pathological. Other tests share the machine: the fastest of the
        // runs is the page's own cost, the rest adds their noise.
        let budget = if cfg!(debug_assertions) { 1000.0 } else { 100.0 };
        let fastest = server[0];
        assert!(fastest < budget, "the page took at least {fastest:.1} ms on the server (budget {budget} ms)");
        app.stop().await;
    }
}

// ---- the browser ----

/// Does `act` (`what`) to the first element `css` matches, finding it again
/// if it was found on the page a click was leaving.
async fn on_element<T, F, Fut>(b: &fantoccini::Client, css: &str, what: &str, mut act: F) -> T
where
    F: FnMut(fantoccini::elements::Element) -> Fut,
    Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = b
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} to {what}: {e}"));
        match act(found).await {
            Ok(t) => return t,
            Err(e) if e.is_stale_element_reference() && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("could not {what} {css}: {e}"),
        }
    }
}

/// The text of the first element `css` matches.
async fn text(b: &fantoccini::Client, css: &str) -> String {
    on_element(b, css, "read", |e| async move { e.text().await })
        .await
        .trim()
        .to_string()
}

async fn click(b: &fantoccini::Client, css: &str) {
    on_element(b, css, "click", |e| async move { e.click().await }).await;
}

async fn path_of(b: &fantoccini::Client) -> String {
    b.current_url().await.unwrap().path().to_string()
}

/// Ada's midterm as the grades endpoint reports it (optionally as of a moment).
async fn api_midterm(app: &TestApp, as_of: Option<&str>) -> String {
    let q = as_of
        .map(|t| format!("?as_of={}", t.replace('+', "%2B")))
        .unwrap_or_default();
    let (st, b) = app
        .get_json(&format!("/api/courses/{COURSE}/grades{q}"))
        .await;
    assert_eq!(st, 200, "{b}");
    fixtures::grade_cell(&b, "ada", "midterm")["score"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A post with the given progress.
fn progress_post(
    given: &str,
    max: &str,
    ts: &str,
    activity: ActivityProgress,
    grading: GradingProgress,
) -> ScorePost {
    let mut p = fixtures::post(Some(given), max, ts);
    p.activity_progress = activity;
    p.grading_progress = grading;
    p
}

async fn post(app: &TestApp, user: &str, item: &str, p: ScorePost) -> ScoreOutcome {
    app.engine()
        .post_score(
            &fixtures::course(),
            &fixtures::item(item),
            &fixtures::user(user),
            p,
            &meta(Source::Ags),
        )
        .await
        .unwrap()
}

/// HIST-101 with a cell in every state: in sync, provisional, missing,
/// rejected, stale, orphan and over maximum; a lock period; and a
/// completion-only participation item.
async fn varied_course(app: &TestApp) {
    hist101(app).await;
    let mut spec = LineItemSpec::new("Participation", fixtures::d("10"));
    spec.category = Some("Homework".into());
    spec.completion_only = true;
    app.engine()
        .create_line_item(
            &fixtures::course(),
            Some(fixtures::item("participation")),
            spec,
            &meta(Source::Sis),
        )
        .await
        .unwrap();
    score(
        app,
        "ada",
        "midterm",
        Some("80"),
        "100",
        "2026-05-01T10:00:00Z",
    )
    .await;
    score(app, "ada", "hw1", Some("9"), "10", "2026-05-01T10:00:00Z").await;
    post(
        app,
        "ada",
        "participation",
        progress_post(
            "10",
            "10",
            "2026-05-01T10:00:00Z",
            ActivityProgress::InProgress,
            GradingProgress::Pending,
        ),
    )
    .await;
    post(
        app,
        "ada",
        "final",
        progress_post(
            "70",
            "100",
            "2026-05-01T10:00:00Z",
            ActivityProgress::Submitted,
            GradingProgress::Pending,
        ),
    )
    .await;
    score(
        app,
        "alan",
        "midterm",
        Some("70"),
        "100",
        "2026-05-01T10:00:00Z",
    )
    .await;
    score(
        app,
        "alan",
        "final",
        Some("105"),
        "100",
        "2026-05-01T10:00:00Z",
    )
    .await;
    score(app, "alan", "hw1", Some("8"), "10", "2026-05-03T10:00:00Z").await;
    assert_eq!(
        score(app, "alan", "hw1", Some("6"), "10", "2026-05-01T10:00:00Z").await,
        ScoreOutcome::IgnoredStale
    );
    // Someone the SIS never enrolled.
    score(
        app,
        "zoe",
        "midterm",
        Some("50"),
        "100",
        "2026-05-01T10:00:00Z",
    )
    .await;
    // A lock period with a post refused during it.
    let c = fixtures::course();
    app.engine()
        .lock_course(
            &c,
            Some("midterm grades under review".into()),
            &meta(Source::Registrar),
        )
        .await
        .unwrap();
    score(
        app,
        "alan",
        "participation",
        Some("10"),
        "10",
        "2026-05-02T10:00:00Z",
    )
    .await;
    app.engine()
        .unlock_course(&c, None, &meta(Source::Registrar))
        .await
        .unwrap();
    post(
        app,
        "ada",
        "participation",
        progress_post(
            "10",
            "10",
            "2026-05-02T10:00:00Z",
            ActivityProgress::Completed,
            GradingProgress::FullyGraded,
        ),
    )
    .await;
}

async fn browse(app: TestApp, screenshots: bool) {
    varied_course(&app).await;
    // A registered tool, so the tools page has something to show.
    let res = app.client.post(app.url("/api/tools")).bearer_auth(&app.registrar)
        .json(&serde_json::json!({"name": "Quiz engine", "jwks_url": "https://quiz.example/jwks", "launch_url": "https://quiz.example/launch",
            "deep_linking_url": "https://quiz.example/deep-link", "grading": "full", "courses": "all"}))
        .send().await.unwrap();
    assert_eq!(res.status().as_u16(), 201);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let earlier = Utc::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    score(
        &app,
        "ada",
        "midterm",
        Some("90"),
        "100",
        "2026-05-02T10:00:00Z",
    )
    .await;

    let driver = support::start_driver().await;
    let b = support::browser(&driver).await;
    let shots = |name: &'static str| {
        let b = &b;
        async move {
            if screenshots {
                support::screenshot(b, name).await
            }
        }
    };

    // Signing in from a bookmark brings the registrar back to it.
    b.goto(&app.url("/ui/courses")).await.unwrap();
    assert_eq!(path_of(&b).await, "/ui/sign-in");
    shots("sign-in").await;
    b.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(&app.registrar)
        .await
        .unwrap();
    click(&b, "form button[type=submit]").await;
    assert_eq!(text(&b, "main h1").await, "Courses");
    assert_eq!(path_of(&b).await, "/ui/courses");
    shots("courses").await;

    // Three clicks at most from the course list to a student's grade history.
    click(&b, &format!("#courses a[href='/ui/courses/{COURSE}']")).await; // 1
    b.wait().for_element(Locator::Id("matrix")).await.unwrap();
    click(&b, "#matrix tr[data-user=ada] th a").await; // 2
    assert_eq!(text(&b, "main h1 .sub").await, format!("ada in {COURSE}"));
    let timeline = text(&b, "#timeline").await;
    assert!(
        timeline.contains("80") && timeline.contains("90") && timeline.contains("accepted"),
        "{timeline}"
    );
    let line = b
        .find(Locator::Css("svg.chart path"))
        .await
        .unwrap()
        .attr("d")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        line.matches('M').count() >= 3,
        "the percentage line has its steps: {line}"
    );
    assert_eq!(
        b.find_all(Locator::Css("svg.chart rect.lock"))
            .await
            .unwrap()
            .len(),
        1,
        "the lock period is marked"
    );
    assert_eq!(
        b.find_all(Locator::Css("svg.chart line.final"))
            .await
            .unwrap()
            .len(),
        1,
        "the completion-only item is marked"
    );
    let mark = text(&b, "svg.chart text.final-label").await;
    assert!(
        mark.contains("Participation"),
        "the completion-only mark names its item: {mark}"
    );
    shots("student").await;
    b.back().await.unwrap();

    // A cell reads what the API says, with its state in words.
    let cell = "#matrix tr[data-user=ada] td[data-item=midterm]";
    b.wait().for_element(Locator::Css(cell)).await.unwrap();
    let now_score = text(&b, &format!("{cell} .score")).await;
    assert_eq!(now_score, api_midterm(&app, None).await);
    assert_eq!(now_score, "90.00");
    assert!(text(&b, cell).await.contains("in sync"));
    for (user, item, state) in [
        ("ada", "final", "provisional"),
        ("ada", "hw2", "missing"),
        ("alan", "final", "over maximum"),
        ("alan", "hw1", "ignored, stale"),
        ("alan", "participation", "rejected"),
        ("zoe", "midterm", "orphan"),
    ] {
        let cell = text(
            &b,
            &format!("#matrix tr[data-user={user}] td[data-item={item}]"),
        )
        .await;
        assert!(cell.contains(state), "{user} {item}: {cell}");
    }
    assert!(
        text(&b, "#findings + ul").await.contains("locked"),
        "the refused post is a finding"
    );
    shots("course").await;

    // As of an earlier moment, the earlier score.
    let earlier_value = earlier.format("%Y-%m-%dT%H:%M:%S").to_string();
    b.execute(
        "document.getElementById('as_of').value = arguments[0];",
        vec![Value::String(earlier_value)],
    )
    .await
    .unwrap();
    click(&b, "form.asof button[type=submit]").await;
    b.wait()
        .for_element(Locator::Css(".badge.asof"))
        .await
        .unwrap();
    let then = text(&b, &format!("{cell} .score")).await;
    let api_then = api_midterm(
        &app,
        Some(&earlier.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
    )
    .await;
    assert_eq!(then, api_then);
    assert_eq!(then, "80.00");
    click(&b, "form.asof a").await; // back to now
    b.wait().for_element(Locator::Id("lock")).await.unwrap();

    // Locking asks first, warning of what is not final as the API counts
    // it, then the API says locked.
    click(&b, "#lock").await;
    assert!(text(&b, "main h1").await.starts_with("Lock"));
    assert!(!api_locked(&app).await, "nothing happens before confirming");
    let (_, grades) = app.get_json(&format!("/api/courses/{COURSE}/grades")).await;
    let students = grades["students"].as_array().unwrap();
    let items_in = |state: &str| {
        students
            .iter()
            .flat_map(|s| s["items"].as_array().unwrap())
            .filter(|i| i["state"] == state)
            .count()
    };
    let provisional = students
        .iter()
        .filter(|s| s["status"] == "provisional")
        .count();
    let (_, rec) = app
        .get_json(&format!("/api/courses/{COURSE}/reconciliation"))
        .await;
    let findings = rec["findings"].as_array().unwrap().len();
    assert!(
        items_in("missing") > 0 && provisional > 0,
        "the course has open work to warn of"
    );
    let warning = text(&b, "#lock-warning").await;
    for (what, n) in [
        ("missing score", items_in("missing")),
        ("provisional course grade", provisional),
        ("waiting for manual grading", items_in("pending_manual")),
        ("open reconciliation finding", findings),
    ] {
        assert_eq!(
            n > 0,
            warning.contains(what),
            "{what}: {n} by the API; the page says {warning}"
        );
        if n > 0 {
            assert!(warning.contains(&n.to_string()), "{what}: {n}; {warning}");
        }
    }
    shots("lock-confirm").await;
    b.find(Locator::Id("reason"))
        .await
        .unwrap()
        .send_keys("term grades final")
        .await
        .unwrap();
    click(&b, "#confirm").await;
    b.wait().for_element(Locator::Id("unlock")).await.unwrap();
    assert!(text(&b, "#done").await.starts_with("Locked"));
    let note = text(&b, "#lock-note").await;
    assert!(
        note.contains("term grades final")
            && note.contains(&Utc::now().format("%Y-%m-%d").to_string()),
        "who locked it, when and why: {note}"
    );
    assert!(text(&b, "#lock-state").await.contains("Locked"));
    // The padlock is drawn, not a glyph some machine's fonts may lack.
    assert_eq!(
        b.find_all(Locator::Css("#lock-state svg.icon"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(!text(&b, "#lock-state").await.contains('\u{1f512}'));
    assert!(api_locked(&app).await);
    click(&b, "#unlock").await;
    b.find(Locator::Id("reason"))
        .await
        .unwrap()
        .send_keys("grade appeal upheld")
        .await
        .unwrap();
    click(&b, "#confirm").await;
    b.wait().for_element(Locator::Id("lock")).await.unwrap();
    assert!(text(&b, "#done").await.starts_with("Unlocked"));
    assert!(!api_locked(&app).await);

    // Backfill: dry run, confirm, and the same file again changes nothing.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("past-grades.csv");
    std::fs::write(
        &file,
        "line_item_id,user_id,score_given,score_maximum,timestamp,comment\n\
        hw2,ada,8,10,2026-04-20T10:00:00Z,late but fine\n\
        hw2,alan,7,10,2026-04-20T10:00:00Z,\n\
        hw2,nobody,7,10,2026-04-20T10:00:00Z,\n\
        quiz9,ada,1,1,2026-04-20T10:00:00Z,\n",
    )
    .unwrap();
    let upload = |b: &fantoccini::Client| {
        let b = b.clone();
        let file = file.clone();
        async move {
            b.goto(&format!(
                "{}/ui/courses/{COURSE}/backfill",
                b.current_url()
                    .await
                    .unwrap()
                    .origin()
                    .ascii_serialization()
            ))
            .await
            .unwrap();
            b.find(Locator::Id("file"))
                .await
                .unwrap()
                .send_keys(file.to_str().unwrap())
                .await
                .unwrap();
            click(&b, "#dry-run").await;
            b.wait()
                .for_element(Locator::Id("backfill-summary"))
                .await
                .unwrap();
        }
    };
    upload(&b).await;
    assert_eq!(text(&b, "#accepted").await, "2");
    assert_eq!(text(&b, "#rejected").await, "2");
    let rejections = text(&b, "#rejections").await;
    assert!(
        rejections.contains('4') && rejections.contains('5'),
        "rejected lines are named: {rejections}"
    );
    shots("backfill-dry-run").await;
    let events_before = app.event_count().await;
    click(&b, "#confirm").await;
    b.wait().for_element(Locator::Id("done")).await.unwrap();
    assert_eq!(text(&b, "#accepted").await, "2");
    assert!(app.event_count().await > events_before);
    let (_, grades) = app.get_json(&format!("/api/courses/{COURSE}/grades")).await;
    let ada_hw2 = fixtures::grade_cell(&grades, "ada", "hw2")["score"].clone();
    assert_eq!(ada_hw2, "8.00");
    upload(&b).await;
    assert!(text(&b, "#nothing-to-change")
        .await
        .starts_with("Nothing to change"));
    assert_eq!(text(&b, "#accepted").await, "0");
    assert_eq!(text(&b, "#unchanged").await, "2");

    // The audit log and the tools page.
    b.goto(&app.url(&format!("/ui/audit?course_id={COURSE}&user_id=ada")))
        .await
        .unwrap();
    assert!(text(&b, "#audit").await.contains("ScoreAccepted"));
    shots("audit").await;
    b.goto(&app.url("/ui/tools")).await.unwrap();
    assert!(text(&b, "section.tool h3").await.contains("Quiz engine"));
    let issuer = b
        .find(Locator::Id("issuer"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(issuer, app.base);
    assert_eq!(
        text(&b, "section.tool dd.deep-linking-url").await,
        "https://quiz.example/deep-link"
    );
    let all = b
        .find(Locator::Css(
            "section.tool fieldset.courses input[value=all]",
        ))
        .await
        .unwrap();
    assert_eq!(all.prop("checked").await.unwrap().as_deref(), Some("true"));
    assert!(
        b.find(Locator::Css("button.copy"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "copy buttons show with script on"
    );
    shots("tools").await;
    // The tool's own part of the page: URLs, settings, courses.
    b.execute(
        "document.querySelector('section.tool').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    shots("tool-settings").await;

    // At 400 px wide the header keeps "Sign out" on screen and a tool's
    // URLs stay readable: each field as wide as most of the screen.
    b.set_window_size(400, 900).await.unwrap();
    b.goto(&app.url("/ui/tools")).await.unwrap();
    let fits = b
        .execute(
            "const w = document.documentElement.clientWidth;
             const out = document.querySelector('header .who button').getBoundingClientRect();
             const field = document.querySelector('.copy-row input').getBoundingClientRect();
             return [w, out.left, out.right, field.width, document.documentElement.scrollWidth];",
            vec![],
        )
        .await
        .unwrap();
    let n = |i: usize| fits[i].as_f64().unwrap();
    assert!(n(1) >= 0.0 && n(2) <= n(0), "Sign out is on screen: {fits}");
    assert!(n(3) >= 0.6 * n(0), "a URL field is readable: {fits}");
    assert!(n(4) <= n(0) + 1.0, "nothing scrolls sideways: {fits}");
    shots("tools-400").await;
    b.goto(&app.url(&format!("/ui/courses/{COURSE}")))
        .await
        .unwrap();
    shots("course-400").await;
    b.set_window_size(1360, 900).await.unwrap();

    // The header's search box finds a learner by part of their name and
    // opens their term: each course with the grade the API gives.
    on_element(&b, "header #header-q", "type into", |e| async move {
        e.send_keys("lovelace").await
    })
    .await;
    click(&b, "header form.header-search button[type=submit]").await;
    b.wait().for_element(Locator::Id("students")).await.unwrap();
    assert_eq!(path_of(&b).await, "/ui/students");
    click(&b, "#students a[href='/ui/students/ada']").await;
    b.wait().for_element(Locator::Id("term")).await.unwrap();
    assert_eq!(path_of(&b).await, "/ui/students/ada");
    assert!(text(&b, "main h1").await.starts_with("Ada Lovelace"));
    let (st, grades) = app.get_json(&format!("/api/courses/{COURSE}/grades")).await;
    assert_eq!(st, 200, "{grades}");
    let percent = fixtures::student(&grades, "ada")["percent"]
        .as_str()
        .unwrap()
        .to_string();
    let row = format!("#term tr[data-course='{COURSE}']");
    assert_eq!(
        text(&b, &format!("{row} td.percent")).await,
        format!("{percent}%")
    );
    let lock = text(&b, &format!("{row} td.lock")).await;
    assert_eq!(lock == "Locked", api_locked(&app).await, "{lock}");
    shots("student-search").await;

    // Another role: the backfill page is refused as a page.
    click(&b, "header .who button").await;
    // The tools page being left has a field with the id "token" too (the
    // access token URL): wait for the sign-in form's own.
    on_element(&b, "input#token[type=password]", "type into", |e| {
        let token = app.auditor.clone();
        async move { e.send_keys(&token).await }
    })
    .await;
    click(&b, "form button[type=submit]").await;
    b.wait().for_element(Locator::Id("courses")).await.unwrap();
    b.goto(&app.url(&format!("/ui/courses/{COURSE}/backfill")))
        .await
        .unwrap();
    assert_eq!(text(&b, "main h1").await, "Not allowed");
    shots("forbidden").await;

    b.close().await.unwrap();
    drop(driver);
    app.stop().await;
}

mod browser {
    use super::*;

    #[sqlx::test(migrations = false)]
    async fn postgres(
        opts: sqlx::postgres::PgPoolOptions,
        connect: sqlx::postgres::PgConnectOptions,
    ) {
        browse(TestApp::postgres(opts, connect).await, true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        browse(TestApp::sqlite().await, false).await
    }
}
