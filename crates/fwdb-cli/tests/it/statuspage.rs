//! The status page `/`, rendered by headless Chromium: it shows each
//! server's health, the pools, replication, a latency chart and the slowest
//! statements, from one self-contained document.

use crate::helpers::TestApp;
use crate::serve::{get, spawn_up};
use std::process::Command;

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists())
}

fn headless(url: &str, extra: &[&str], profile: &std::path::Path) -> std::process::Output {
    let bin = chromium().expect("chromium");
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs")
}

#[tokio::test]
async fn the_status_page_renders_the_servers_state_in_a_browser() {
    let Some(_) = chromium() else {
        panic!("chromium is not installed: run scripts/setup.sh (apt-get install -y chromium)");
    };
    let app = TestApp::migrated().await;
    // A slow statement of this database, for the top list.
    let conn = fwdb::connect(&app.config.postgres, fwdb::ConnectTarget::Primary).await.expect("connection");
    conn.batch_execute("select pg_sleep(0.3)").await.expect("pg_sleep");
    let up = spawn_up(app.fwdb());

    // One document, nothing fetched from elsewhere.
    let (code, html) = get(&format!("{}/", up.url)).await;
    assert_eq!(code, 200);
    for external in ["<script src", "<link", "src=\"http", "href=\"http", "@import"] {
        assert!(!html.contains(external), "the page loads {external}");
    }

    let profile = tempfile::tempdir().expect("profile dir");
    let url = format!("{}/", up.url);
    let out = tokio::task::spawn_blocking({
        let p = profile.path().to_path_buf();
        move || headless(&url, &["--virtual-time-budget=3000", "--dump-dom"], &p)
    })
    .await
    .expect("join");
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains(r#"id="overall" class="badge READY""#), "{dom}");
    for name in ["primary", "replica 0 (", "replica 1 (", "mongodb"] {
        let row = dom
            .split("<tr class=\"server\"")
            .find(|r| r.contains(&format!("<td>{name}")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{dom}"));
        assert!(row.contains(r#"data-healthy="true""#) && row.contains(">healthy<"), "{name}: {row}");
    }
    assert_eq!(dom.matches(r#"<tr class="pool""#).count(), 3, "{dom}");
    assert_eq!(dom.matches(r#"data-state="eligible""#).count(), 2, "{dom}");
    assert!(dom.contains(r#"id="latency-chart""#) && dom.matches("<polyline").count() >= 4, "{dom}");
    let statements = dom.split(r#"id="statements""#).nth(1).expect("the statements table");
    assert!(statements.contains("pg_sleep"), "{statements}");
    assert!(dom.contains("postgres: ") && dom.contains(" 0 pending"), "{dom}");

    // A screenshot renders too (kept in the temp dir; the DOM is what is checked).
    let shot = profile.path().join("status.png");
    let url = format!("{}/", up.url);
    let arg = format!("--screenshot={}", shot.display());
    let p2 = tempfile::tempdir().expect("profile dir");
    let out = tokio::task::spawn_blocking({
        let p = p2.path().to_path_buf();
        move || headless(&url, &["--window-size=1000,1400", &arg], &p)
    })
    .await
    .expect("join");
    assert!(
        shot.exists() && std::fs::metadata(&shot).unwrap().len() > 10_000,
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Ok(dir) = std::env::var("FWDB_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, std::path::Path::new(&dir).join("status.png"));
    }
    assert!(up.terminate().success());
}
