//! The local page in a real browser: Debian's `chromium`, headless, driven over WebDriver (`chromedriver` +
//! `fantoccini`) against the real `kelpie agent` binary. A person's path: search a metric, open its chart, group
//! it by a tag, read the current value, see the event and the service check, and watch the page update itself.
//! The screenshot is kept at `target/tmp/browser/local-page.png` (and one of a 100-line chart).
//!
//! Skipped (with a line saying so) when chromium or chromedriver is missing, unless KELPIE_REQUIRE_TOOLS=1
//! (CI), where `.ci/run` installs them.

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A chromedriver process on a free port, and the profile directory of the browser it starts. On drop (also
/// when an assertion failed before the session was closed) both are ended: chromedriver, and the browser
/// processes whose command line names this run's own profile directory.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let marker = format!("--user-data-dir={}", self.profile.path().display());
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let ours = cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == marker.as_bytes());
            if ours {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
    }
}

fn find_tool(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/lib/chromium")]) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// chromedriver and the chromium binary, or None (skipping) when either is missing outside CI.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let driver = find_tool(&["chromedriver"]);
    let browser = find_tool(&["chromium", "chromium-browser"]);
    match (driver, browser) {
        (Some(d), Some(b)) => Some((d, b)),
        _ => {
            assert!(
                std::env::var("KELPIE_REQUIRE_TOOLS").is_err(),
                "chromium and chromedriver are required (KELPIE_REQUIRE_TOOLS is set): apt-get install chromium chromium-driver"
            );
            eprintln!("SKIPPED: chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)");
            None
        }
    }
}

async fn start_driver(path: &PathBuf) -> Driver {
    let port = free_tcp_port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        port,
        profile: tempfile::tempdir().expect("browser profile directory"),
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client
            .get(format!("http://127.0.0.1:{port}/status"))
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            return driver;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not answer on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connect(driver: &Driver, browser: &PathBuf) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": browser,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1100", "--hide-scrollbars",
                     format!("--user-data-dir={}", driver.profile.path().display())],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("WebDriver session with headless chromium")
}

/// Polls the page's text of `selector` until `pred` holds (the page updates itself on timers).
async fn wait_text(c: &Client, selector: &str, pred: impl Fn(&str) -> bool, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(e) = c.find(Locator::Css(selector)).await {
            if let Ok(t) = e.text().await {
                if pred(&t) {
                    return t;
                }
                last = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}: `{selector}` never matched; last text: {last:?}");
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chart_has(agent: &AgentProc, query: &str, groups: usize) -> bool {
    http_get(agent.status, &format!("/api/chart?{query}"))
        .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
        .and_then(|d| d["series"].as_array().map(|s| s.len() >= groups))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_page_shows_a_searched_metric_its_chart_events_and_checks() {
    let Some((driver_path, browser)) = tools() else {
        return;
    };
    let agent = AgentProc::spawn(&[]);
    agent.send(
        "browser.e2e.temperature:42.5|g|#room:kitchen\nbrowser.e2e.temperature:18|g|#room:cellar",
    );
    agent.send("browser.e2e.other:1|c");
    let shards: String = (0..100)
        .map(|i| format!("browser.e2e.shards:{}|g|#shard:s{i:03}\n", i * 3))
        .collect();
    agent.send(&shards);
    agent.send(
        "_e{14,21}:Deploy api v42|Rolled out by CI #981|t:info|#event_type:deploy,service:api",
    );
    agent.send("_sc|app.db.can_connect|2|#service:api|m:connection refused on 10.0.0.5:5432");
    assert!(
        wait_for(Duration::from_secs(15), || {
            let ready = chart_has(&agent, "metric=browser.e2e.temperature&by=room", 2)
                && chart_has(&agent, "metric=browser.e2e.shards&by=shard", 100);
            ready.then_some(())
        })
        .is_some(),
        "the agent's history never had the metrics"
    );

    let driver = start_driver(&driver_path).await;
    let c = connect(&driver, &browser).await;
    let page = format!("http://{}/", agent.status);
    c.goto(&page).await.unwrap();
    // A marker that a reload would wipe: the page must update itself without one.
    c.execute("window.__kelpieNoReload = 1; return 1;", vec![])
        .await
        .unwrap();

    // The header says where we are.
    wait_text(&c, "#host", |t| t.contains("e2e-host"), "hostname").await;
    wait_text(&c, "#mode", |t| t == "local", "mode").await;
    wait_text(&c, "#health", |t| t == "healthy", "health").await;

    // Search narrows the list to the metric; clicking it opens its chart.
    let search = c.find(Locator::Css("#search")).await.unwrap();
    wait_text(
        &c,
        "#metric-list",
        |t| t.contains("browser.e2e.temperature"),
        "list",
    )
    .await;
    search.send_keys("e2e.temp").await.unwrap();
    let list = wait_text(
        &c,
        "#metric-list",
        |t| !t.contains("browser.e2e.other"),
        "filtered list",
    )
    .await;
    assert!(
        list.contains("browser.e2e.temperature") && list.contains("2 ctx"),
        "{list}"
    );
    c.find(Locator::Css("li[data-metric=\"browser.e2e.temperature\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(
        &c,
        "#chart-title",
        |t| t == "browser.e2e.temperature",
        "chart title",
    )
    .await;
    // Everything together: the average of the two rooms.
    wait_text(
        &c,
        "#current-value",
        |t| t == "30.25",
        "current value (avg of 42.5 and 18)",
    )
    .await;
    // Grouped by room: one line per room, the highest first, and the legend names both.
    c.find(Locator::Css("#group-by"))
        .await
        .unwrap()
        .select_by_value("room")
        .await
        .unwrap();
    wait_text(
        &c,
        "#current-value",
        |t| t == "42.5",
        "current value by room",
    )
    .await;
    let legend = wait_text(&c, "#legend", |t| t.contains("room:cellar"), "legend").await;
    assert!(
        legend.contains("room:kitchen 42.5") && legend.contains("room:cellar 18"),
        "{legend}"
    );
    // The chart was drawn: the canvas holds non-blank pixels of the first line's colour.
    let drawn = c
        .execute(
            "const cv = document.getElementById('chart'); const d = cv.getContext('2d')\
             .getImageData(0, 0, cv.width, cv.height).data; let n = 0;\
             for (let i = 0; i < d.length; i += 4) if (d[i] === 0x5b && d[i+1] === 0x3c && d[i+2] === 0xc4) n++;\
             return n;",
            vec![],
        )
        .await
        .unwrap();
    assert!(drawn.as_u64().unwrap_or(0) > 0, "no line pixels: {drawn}");

    // The event (a deploy, marked as such) and the service check.
    let events = wait_text(&c, "#events", |t| t.contains("Deploy api v42"), "event").await;
    assert!(
        events.contains("deploy") && events.contains("Rolled out by CI #981"),
        "{events}"
    );
    let checks = wait_text(&c, "#checks", |t| t.contains("app.db.can_connect"), "check").await;
    assert!(
        checks.contains("critical") && checks.contains("connection refused"),
        "{checks}"
    );
    let shot = c.screenshot().await.unwrap();
    let path = artifacts().join("local-page.png");
    std::fs::write(&path, &shot).unwrap();
    eprintln!("screenshot: {}", path.display());

    // New data shows up without a reload.
    agent.send("_e{12,3}:Late arrival|now|t:warning");
    wait_text(
        &c,
        "#events",
        |t| t.contains("Late arrival"),
        "event sent after load",
    )
    .await;
    let marker = c
        .execute("return window.__kelpieNoReload || 0;", vec![])
        .await
        .unwrap();
    assert_eq!(marker, json!(1), "the page reloaded");

    // 100 lines: all in the legend; how long one redraw takes is printed (not asserted: shared machine).
    c.goto(&format!("{page}#metric=browser.e2e.shards&by=shard"))
        .await
        .unwrap();
    c.execute("location.reload(); return 1;", vec![])
        .await
        .unwrap();
    let legend = wait_text(
        &c,
        "#legend",
        |t| t.contains("shard:s000"),
        "100-line legend",
    )
    .await;
    assert_eq!(legend.matches("shard:s").count(), 100, "{legend}");
    let ms = c
        .execute(
            "const t = performance.now(); for (let i = 0; i < 20; i++) draw(); return (performance.now() - t) / 20;",
            vec![],
        )
        .await
        .unwrap();
    eprintln!("one redraw of a 100-line chart: {ms} ms");
    let shot = c.screenshot().await.unwrap();
    std::fs::write(artifacts().join("chart-100-lines.png"), &shot).unwrap();
    c.close().await.unwrap();
}
