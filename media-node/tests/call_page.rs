//! The pages the node serves (/visit/ and /call/): each page and everything it loads come
//! from the node itself, under a Content-Security-Policy that keeps scripts and
//! connections to its own origin, and the token is read from the fragment only.

mod support;

use support::{Node, NodeOptions};

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The `src="..."` and `href="..."` of a page, and the `from './x.js'` of a script.
fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for marker in [" src=\"", " href=\"", "from './"] {
        for (i, _) in text.match_indices(marker) {
            let rest = &text[i + marker.len()..];
            let end = rest.find(['"', '\'']).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_and_all_they_load_are_served_with_a_strict_policy() {
    let node = Node::start(NodeOptions::default()).await;
    for (dir, script) in [("/visit/", "visit.js"), ("/call/", "call.js")] {
        let page = node
            .http
            .get(format!("{}{dir}", node.base))
            .send()
            .await
            .expect("GET the page");
        assert_eq!(page.status(), 200, "{dir}");
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
        assert_eq!(header(&page, "cache-control"), "no-store");
        let permissions = header(&page, "permissions-policy");
        assert!(
            permissions.contains("camera=(self)") && permissions.contains("geolocation=()"),
            "{permissions:?}"
        );
        let html = page.text().await.expect("body");
        assert!(html.contains(&format!(r#"<script type="module" src="{script}">"#)));
        assert!(!html.contains("<script>"), "no inline script");

        // Everything the page loads, and what its scripts import, is served beside it.
        let mut pending = references(&html);
        let mut seen = Vec::new();
        while let Some(file) = pending.pop() {
            if seen.contains(&file) {
                continue;
            }
            let res = node
                .http
                .get(format!("{}{dir}{file}", node.base))
                .send()
                .await
                .expect("GET a file of the page");
            assert_eq!(res.status(), 200, "{dir}{file} is not served");
            let body = res.text().await.expect("body");
            if file.ends_with(".js") {
                pending.extend(references(&body));
            }
            seen.push(file);
        }
        assert!(seen.iter().any(|f| f == "whip.js"), "{dir}: {seen:?}");

        let js = node
            .http
            .get(format!("{}{dir}{script}", node.base))
            .send()
            .await
            .expect("GET the script")
            .text()
            .await
            .expect("body");
        assert!(
            js.contains("location.hash"),
            "the token is read from the fragment"
        );
        assert!(
            !js.contains("params.get('token')"),
            "never from the query string"
        );
    }
    let missing = node
        .http
        .get(format!("{}/visit/secret.js", node.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);
}
