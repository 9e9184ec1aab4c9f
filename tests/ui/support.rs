//! Helpers for the web page tests: signing in over plain HTTP (keeping the
//! cookies by hand so their flags can be read), and a chromedriver process
//! for the browser tests.

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::TestApp;

/// A client that does not follow redirects, so answers can be inspected.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Every `Set-Cookie` header of an answer.
pub fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// The value a `Set-Cookie` line gives cookie `name`.
pub fn cookie_in(lines: &[String], name: &str) -> Option<String> {
    lines.iter().find_map(|l| {
        let first = l.split(';').next()?;
        let (k, v) = first.split_once('=')?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

/// The value of the first hidden `csrf` field in a page.
pub fn csrf_in(html: &str) -> Option<String> {
    let at = html.find(r#"name="csrf" value=""#)? + r#"name="csrf" value=""#.len();
    Some(html[at..].split('"').next()?.to_string())
}

/// A signed-in browser session over plain HTTP.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
    pub client: reqwest::Client,
    pub base: String,
}

impl Session {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("gb_session={}", self.cookie))
            .send()
            .await
            .unwrap()
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("cookie", format!("gb_session={}", self.cookie))
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

/// Signs in with an API token the way a browser does; returns the session
/// and the `Set-Cookie` lines of the sign-in answer.
pub async fn sign_in(app: &TestApp, token: &str) -> (Session, Vec<String>) {
    let c = client();
    let form = c.get(app.url("/ui/sign-in")).send().await.unwrap();
    assert_eq!(form.status().as_u16(), 200);
    let nonce_cookie = cookie_in(&set_cookies(&form), "gb_sign_in").expect("sign-in cookie");
    let nonce = csrf_in(&form.text().await.unwrap()).expect("sign-in form nonce");
    let res = c
        .post(app.url("/ui/sign-in"))
        .header("cookie", format!("gb_sign_in={nonce_cookie}"))
        .form(&[("token", token), ("csrf", &nonce), ("next", "/ui/courses")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303, "sign-in should redirect");
    let lines = set_cookies(&res);
    let cookie = cookie_in(&lines, "gb_session").expect("a session cookie");
    let mut s = Session {
        cookie,
        csrf: String::new(),
        client: c,
        base: app.base.clone(),
    };
    let page = s.get("/ui/courses").await;
    assert_eq!(page.status().as_u16(), 200);
    s.csrf = csrf_in(&page.text().await.unwrap()).expect("a csrf field on the page");
    (s, lines)
}

/// chromedriver, started for one test and stopped when dropped.
pub struct Driver {
    child: Child,
    pub url: String,
    _profile: tempfile::TempDir,
    pub profile_dir: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where chromedriver is: `GRADEBOOK_CHROMEDRIVER`, else Debian's path.
/// Missing is a failure, not a skip: scripts/test installs it.
pub fn chromedriver_path() -> PathBuf {
    let path = std::env::var_os("GRADEBOOK_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    assert!(
        path.exists(),
        "chromedriver not found at {} (install Debian's chromium and chromium-driver, or run scripts/test, which does; or set GRADEBOOK_CHROMEDRIVER)",
        path.display()
    );
    path
}

pub fn chromium_path() -> String {
    std::env::var("GRADEBOOK_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

pub async fn start_driver() -> Driver {
    let port = {
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = Command::new(chromedriver_path())
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        profile_dir: profile.path().to_path_buf(),
        _profile: profile,
    };
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not start listening"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver
}

/// A headless Chromium session with a fresh profile, through `driver`.
pub async fn browser(driver: &Driver) -> fantoccini::Client {
    let args = serde_json::json!([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        format!("--user-data-dir={}", driver.profile_dir.display()),
    ]);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "binary": chromium_path(), "args": args }),
    );
    // chromedriver listens on loopback: plain HTTP, no TLS stack needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = fantoccini::ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("start a Chromium session");
    client.set_window_size(1360, 900).await.unwrap();
    client
}

/// Saves a screenshot of the page when `GRADEBOOK_SCREENSHOTS_DIR` is set.
pub async fn screenshot(client: &fantoccini::Client, name: &str) {
    let Some(dir) = std::env::var_os("GRADEBOOK_SCREENSHOTS_DIR") else {
        return;
    };
    let png = client.screenshot().await.unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
}
