//! A small W3C WebDriver client over reqwest, for driving Debian's headless
//! Chromium through chromedriver (packages `chromium` and
//! `chromium-driver`): sessions, navigation, elements, keys, scripts and
//! screenshots.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free loopback port, and one headless Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
}

fn find(names: &[&str]) -> Option<String> {
    names.iter().find(|n| std::path::Path::new(n).exists()).map(|n| n.to_string())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. Panics, naming the
    /// Debian packages, when they are not installed.
    pub fn start() -> Browser {
        let driver_path = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
            .expect("chromedriver not found: install Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)");
        let chromium = find(&["/usr/bin/chromium", "/usr/lib/chromium/chromium"]).expect("chromium not found");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--no-first-run", "--no-default-browser-check",
                         "--disable-background-networking", "--disable-extensions"]
            }
        }}});
        let mut browser = Browser { driver, base, session: String::new(), http };
        let created = browser.call("POST", "/session", caps);
        browser.session = created["sessionId"].as_str().expect("a session id").to_owned();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let response = request.send().unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        let status = response.status();
        let value: Value = response.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "webdriver {method} {path}: {status} {value}");
        value.get("value").cloned().unwrap_or(Value::Null)
    }

    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url`.
    pub fn go(&self, url: &str) {
        self.session_call("POST", "/url", json!({"url": url}));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and
    /// returns its value.
    pub fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.session_call("POST", "/execute/sync", json!({"script": script, "args": args}))
    }

    /// Runs `script` asynchronously: it ends by calling its last argument
    /// with the value to return (script timeout 60 s).
    pub fn run_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.session_call("POST", "/timeouts", json!({"script": 60_000}));
        self.session_call("POST", "/execute/async", json!({"script": script, "args": args}))
    }

    /// Waits up to 15 s for `script` to return something truthy; returns it.
    pub fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = self.run(script, vec![]);
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The first element matching a CSS selector.
    pub fn element(&self, css: &str) -> String {
        let v = self.session_call("POST", "/element", json!({"using": "css selector", "value": css}));
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_owned()
    }

    /// Clicks the first element matching `css`.
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.session_call("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Types `text` into the first element matching `css`.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.session_call("POST", &format!("/element/{id}/value"), json!({"text": text}));
    }

    /// Sends keys to the page (to whatever has the focus).
    pub fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [json!({"type": "keyDown", "value": c.to_string()}), json!({"type": "keyUp", "value": c.to_string()})]
            })
            .collect();
        self.session_call(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        );
        self.session_call("DELETE", "/actions", Value::Null);
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.session_call("GET", "/screenshot", Value::Null);
        decode_base64(b64.as_str().expect("base64"))
    }

    /// Saves a screenshot as `target/ui-screenshots/NAME.png`.
    pub fn save_screenshot(&self, name: &str) -> std::path::PathBuf {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, self.screenshot()).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in text.bytes() {
        let Some(v) = ALPHABET.iter().position(|&a| a == b) else { continue };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
