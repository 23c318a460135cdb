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
    let (Ok(chromium), Ok(playwright)) = (
        std::env::var("SWITCHBOARD_TEST_CHROMIUM"),
        std::env::var("SWITCHBOARD_TEST_PLAYWRIGHT"),
    ) else {
        eprintln!("SKIPPED: SWITCHBOARD_TEST_CHROMIUM / SWITCHBOARD_TEST_PLAYWRIGHT not set (scripts/test.sh sets them)");
        return;
    };
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
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/widget.mjs");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(script)
            .env("PLAYWRIGHT_DIR", playwright)
            .env("CHROMIUM", chromium)
            .env("PAGE_URL", format!("http://{good}/"))
            .env("BAD_PAGE_URL", format!("http://{bad}/"))
            .env("ENGINE", format!("http://{engine}"))
            .env("ADMIN_TOKEN", "admin")
            .env("SHOTS", &shots)
            .output(),
    )
    .await
    .expect("the browser run ends within 2 minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
}
