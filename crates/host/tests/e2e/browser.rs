//! A real browser for the end-to-end tests: headless Chromium (Debian's `chromium`), driven
//! through WebDriver by `chromedriver` (Debian's `chromium-driver`) with fantoccini.
//!
//! Each [`Chromium`] runs its own chromedriver on a free port, in a process group of its own
//! so that the browser it starts goes with it when the test ends, however it ends. Every page
//! the browser lands on is saved as a screenshot under `target/screenshots/<test>/`, the
//! artifacts to look at when a test fails.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::support::{TempDir, free_port};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to appear after a navigation or a click.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// Headless Chromium and its chromedriver; both are killed when it is dropped.
pub struct Chromium {
    client: Client,
    driver: Child,
    /// Chromium's profile, removed when the browser is.
    _profile: TempDir,
    screenshots: PathBuf,
    pages: usize,
}

impl Chromium {
    /// Starts chromedriver and a headless Chromium for the test named `test`, whose
    /// screenshots go to `target/screenshots/<test>/` (emptied first).
    pub async fn start(test: &str) -> Chromium {
        for (binary, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the browser tests need Debian's `{package}` package; \
                 run `bash .ci/chromium-ready` (as root) to install it"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: Chromium's processes join it, and `Drop` ends them all at once.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let profile = TempDir::new();
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Tests run as root, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    // Containers' /dev/shm is too small for Chromium.
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--no-first-run",
                    "--window-size=1024,900",
                    format!("--user-data-dir={}", profile.0.display()),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PAGE_TIMEOUT;
        // chromedriver takes a moment to listen.
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("chromedriver at {url} did not start a browser: {error}"),
            }
        };
        let screenshots = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/screenshots")
            .join(test);
        let _ = std::fs::remove_dir_all(&screenshots);
        std::fs::create_dir_all(&screenshots).unwrap();
        Chromium {
            client,
            driver,
            _profile: profile,
            screenshots,
            pages: 0,
        }
    }

    /// Opens `url` and waits for its page.
    pub async fn open(&mut self, url: &str) {
        self.client.goto(url).await.unwrap();
        self.landed().await;
    }

    /// Clicks the element `css` selects and waits for the page the click leads to.
    pub async fn click(&mut self, css: &str) {
        let before = self.url().await;
        // The page the click leaves: once it is gone, the next one is loading (a form posted
        // back to its own URL leads to a new page at the same address).
        let page = self.element("html").await;
        self.element(css).await.click().await.unwrap();
        let deadline = Instant::now() + PAGE_TIMEOUT;
        while page.tag_name().await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "clicking `{css}` on {before} led nowhere"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.landed().await;
    }

    /// Types `text` into the field `css` selects, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.element(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// The current page's HTML.
    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// Reloads the current page and waits for it.
    pub async fn reload(&mut self) {
        self.client.refresh().await.unwrap();
        self.landed().await;
    }

    /// Removes every element `css` selects from the page, as a tampering client would.
    pub async fn remove(&self, css: &str) {
        self.client
            .execute(
                "document.querySelectorAll(arguments[0]).forEach(e => e.remove());",
                vec![json!(css)],
            )
            .await
            .unwrap();
    }

    /// The value of the cookie `name` the browser holds for the current page, if any.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.client
            .get_named_cookie(name)
            .await
            .ok()
            .map(|cookie| cookie.value().to_owned())
    }

    /// The URL of the current page.
    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// The text of the first element `css` selects.
    pub async fn text(&self, css: &str) -> String {
        self.element(css).await.text().await.unwrap()
    }

    /// The texts of every element `css` selects, in page order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.client.find_all(Locator::Css(css)).await.unwrap() {
            texts.push(element.text().await.unwrap());
        }
        texts
    }

    /// The computed value of a CSS property of the first element `css` selects.
    pub async fn css_value(&self, css: &str, property: &str) -> String {
        self.element(css).await.css_value(property).await.unwrap()
    }

    /// An attribute of the first element `css` selects.
    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        self.element(css).await.attr(name).await.unwrap()
    }

    async fn element(&self, css: &str) -> Element {
        let found = self
            .client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element,
            Err(error) => {
                let source = self.client.source().await.unwrap_or_default();
                panic!("no `{css}` on {}: {error}\n{source}", self.url().await)
            }
        }
    }

    /// Waits until the page has a body, then saves its screenshot.
    async fn landed(&mut self) {
        self.element("body").await;
        let png = self.client.screenshot().await.unwrap();
        self.pages += 1;
        let url = self.url().await;
        let path = self
            .screenshots
            .join(format!("{:02}-{}.png", self.pages, slug(&url)));
        std::fs::write(&path, png).unwrap();
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium processes it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A file name for a page: its host and path, without the query (which may carry a token).
fn slug(url: &str) -> String {
    let url = url::Url::parse(url).ok();
    let text = url.map_or_else(String::new, |url| {
        format!("{}{}", url.host_str().unwrap_or_default(), url.path())
    });
    let slug: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    slug.trim_matches('-').chars().take(80).collect()
}
