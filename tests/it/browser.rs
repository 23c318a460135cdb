//! The website chat widget in a real headless browser: Debian's Chromium
//! driven by playwright-core from npm (`tests/browser/widget.mjs`), against
//! the engine on 127.0.0.1 with host pages served from two other origins.
//! A visitor asks, sees typing and gets the answer; reloads and sees the
//! history; sends while the socket is cut and is answered once; sees a
//! person's message; a page of another origin is refused. Screenshots are
//! kept in `target/browser-shots`. Skipped (and says so) where the test
//! script has not installed the browser.

use std::time::Duration;

use crate::support::*;

async fn host_page(engine: std::net::SocketAddr) -> std::net::SocketAddr {
    let html = format!(
        "<!doctype html><html><head><title>Acme lamps</title></head><body>\
         <h1>Acme lamps</h1><p>Lamps for every room.</p>\
         <script src=\"http://{engine}/web/widget.js\" data-integration=\"acme-web\" async></script>\
         </body></html>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_in_chromium() {
    if !browser_installed() {
        return;
    }
    // The engine's address is known once it runs; the pages need it, and
    // the engine needs the good page's origin: a port is taken first.
    let engine_port = crate::crash::free_port();
    let engine: std::net::SocketAddr = format!("127.0.0.1:{engine_port}").parse().unwrap();
    let good = host_page(engine).await;
    let bad = host_page(engine).await;
    let tail = format!(
        r#"
[[integrations]]
id = "acme-web"
tenant = "acme"
channel = "web"
assistant = "support"
response_delay_ms = 1500
allowed_origins = ["http://{good}"]
widget_title = "Acme help"
widget_greeting = "Hi! Ask us anything."
"#
    );
    let edit: Edit = std::sync::Arc::new(move |toml: String, _| {
        toml.replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{engine_port}\""),
            1,
        )
    });
    let desk = Desk::start_edited(0, "", &tail, edit).await;
    assert_eq!(desk.engine.addr, engine);
    let out = run_script(
        "widget.mjs",
        &[
            ("PAGE_URL", format!("http://{good}/")),
            ("BAD_PAGE_URL", format!("http://{bad}/")),
            ("ENGINE", format!("http://{engine}")),
            ("ADMIN_TOKEN", "admin".into()),
        ],
    )
    .await;
    assert_ran(&out);
}

/// Whether the test script installed the browser (else the test says it
/// is skipped).
pub fn browser_installed() -> bool {
    let there = std::env::var("SWITCHBOARD_TEST_CHROMIUM").is_ok()
        && std::env::var("SWITCHBOARD_TEST_PLAYWRIGHT").is_ok();
    if !there {
        eprintln!("SKIPPED: SWITCHBOARD_TEST_CHROMIUM / SWITCHBOARD_TEST_PLAYWRIGHT not set (scripts/test.sh sets them)");
    }
    there
}

/// Runs `tests/browser/{script}` in node with the browser, `env` and the
/// screenshots folder (`target/browser-shots`), for at most 3 minutes.
pub async fn run_script(script: &str, env: &[(&str, String)]) -> std::process::Output {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shots = root.join("target/browser-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(root.join("tests/browser").join(script))
        .env(
            "PLAYWRIGHT_DIR",
            std::env::var("SWITCHBOARD_TEST_PLAYWRIGHT").unwrap(),
        )
        .env(
            "CHROMIUM",
            std::env::var("SWITCHBOARD_TEST_CHROMIUM").unwrap(),
        )
        .env("SHOTS", &shots)
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("the browser run ends within 3 minutes")
        .unwrap()
}

/// The script succeeded and printed `ok` last.
pub fn assert_ran(out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The steps taken, in the test's output.
    println!("{stdout}");
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
}
