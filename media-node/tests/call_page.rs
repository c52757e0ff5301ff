//! The call page the node serves: the page and its script come from the node itself,
//! with a Content-Security-Policy that keeps scripts and connections to its own origin.

mod support;

use support::{Node, NodeOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_page_is_served_with_a_strict_policy() {
    let node = Node::start(NodeOptions::default()).await;
    let page = node
        .http
        .get(format!("{}/call/", node.base))
        .send()
        .await
        .expect("GET /call/");
    assert_eq!(page.status(), 200);
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(header(&page, "content-type").starts_with("text/html"));
    let csp = header(&page, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "CSP {csp:?} lacks {directive}");
    }
    assert!(
        !csp.contains("unsafe-inline"),
        "no inline script is allowed"
    );
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    let html = page.text().await.expect("body");
    assert!(html.contains(r#"<script type="module" src="call.js">"#));
    assert!(
        !html.contains("<script>") && !html.contains("<script type=\"module\">\n"),
        "no inline script"
    );

    let script = node
        .http
        .get(format!("{}/call/call.js", node.base))
        .send()
        .await
        .expect("GET call.js");
    assert_eq!(script.status(), 200);
    assert!(header(&script, "content-type").starts_with("text/javascript"));
    let js = script.text().await.expect("body");
    assert!(
        js.contains("location.hash"),
        "the token is read from the fragment"
    );
    assert!(
        !js.contains("params.get('token')"),
        "never from the query string"
    );
}
