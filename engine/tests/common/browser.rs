//! A headless Chromium driven over the W3C WebDriver protocol (`chromedriver`,
//! Debian packages `chromium` and `chromium-driver`, installed by
//! `scripts/test.sh`), for tests that look at a page as a user would.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::process::{free_port, http, wait_until};

/// The W3C identifier of an element reference in WebDriver replies.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver with one headless browser session.
pub struct Browser {
    driver: Child,
    address: SocketAddr,
    session: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium, or returns `None` (after
    /// saying so) when they are not installed; with `CI=true` that fails the test.
    pub fn start() -> Option<Self> {
        let found = Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("chromedriver is not installed: CI requires it (scripts/test.sh installs chromium-driver)");
            }
            let warning =
                "\n*** SKIPPED: no chromedriver; run ./scripts/test.sh to install chromium and chromium-driver ***\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr(), warning.as_bytes());
            return None;
        }
        let port = free_port();
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        wait_until("chromedriver answers", Duration::from_secs(30), || {
            http(address, "GET", "/status", None, None).1["value"]["ready"] == true
        });
        let mut browser = Self {
            driver,
            address,
            session: String::new(),
        };
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": args}}}});
        let created = browser.command("POST", "/session", &capabilities);
        browser.session = created["sessionId"].as_str().expect("a session id").to_owned();
        Some(browser)
    }

    /// One WebDriver command; panics with the driver's message if it fails.
    fn command(&self, method: &str, path: &str, body: &Value) -> Value {
        let body = (method == "POST").then_some(body);
        let (status, reply) = http(self.address, method, path, None, body);
        assert_eq!(status, 200, "WebDriver {method} {path} failed: {reply}");
        reply["value"].clone()
    }

    fn session_command(&self, method: &str, path: &str, body: &Value) -> Value {
        self.command(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Loads `url` and waits for the page's load event.
    pub fn open(&self, url: &str) {
        self.session_command("POST", "/url", &json!({ "url": url }));
    }

    /// The element matching a CSS selector; panics if there is none.
    pub fn find(&self, selector: &str) -> String {
        let found = self.session_command("POST", "/element", &json!({"using": "css selector", "value": selector}));
        found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector}: {found}"))
            .to_owned()
    }

    /// Types `text` into the element matching `selector`, as a user would.
    pub fn type_into(&self, selector: &str, text: &str) {
        let element = self.find(selector);
        self.session_command("POST", &format!("/element/{element}/clear"), &json!({}));
        self.session_command("POST", &format!("/element/{element}/value"), &json!({ "text": text }));
    }

    /// Clicks the element matching `selector`.
    pub fn click(&self, selector: &str) {
        let element = self.find(selector);
        self.session_command("POST", &format!("/element/{element}/click"), &json!({}));
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub fn eval(&self, script: &str) -> Value {
        self.session_command("POST", "/execute/sync", &json!({"script": script, "args": []}))
    }

    /// The handle of the tab commands go to.
    pub fn current_tab(&self) -> String {
        let handle = self.session_command("GET", "/window", &json!({}));
        handle.as_str().expect("a window handle").to_owned()
    }

    /// Opens a new tab (with its own session storage, as a user's second
    /// tab has) and sends the following commands to it; returns its handle.
    pub fn new_tab(&self) -> String {
        let created = self.session_command("POST", "/window/new", &json!({"type": "tab"}));
        let handle = created["handle"].as_str().expect("a tab handle").to_owned();
        self.switch_to(&handle);
        handle
    }

    /// Sends the following commands to the tab `handle` (and brings it to the front).
    pub fn switch_to(&self, handle: &str) {
        self.session_command("POST", "/window", &json!({ "handle": handle }));
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.session_command("GET", "/screenshot", &json!({}));
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 PNG"))
            .expect("the screenshot decodes")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(
                self.address,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
                None,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
