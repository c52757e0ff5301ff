//! The report as Markdown (for a ticket or a wiki) and as one self-contained HTML page
//! (styles inline, nothing fetched), both from the same [`Report`].

use serde_json::Value;

use super::Report;

/// Markdown.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let name = report.tenant["name"].as_str().unwrap_or_default();
    out += &format!("# Compliance evidence: tenant {name}\n\n");
    out += &format!(
        "Read live at {} from the API server, S3 and KMS. Period: {} to {}.\n\n",
        report.generated,
        report.period.since.as_deref().unwrap_or("the first record"),
        report.period.until.as_deref().unwrap_or("now")
    );
    out += "## Safeguards\n\n| Safeguard | Status | Failing findings | Demonstrated by |\n|---|---|---|---|\n";
    for c in &report.controls {
        out += &format!(
            "| {} {} | **{}** | {} | {} |\n",
            c.control.id,
            c.control.title,
            c.status,
            md_cell(&c.failing.join(", ")),
            c.control
                .tests
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    out += "\n## Findings\n\n| Finding | Result | What was read |\n|---|---|---|\n";
    for f in &report.findings {
        out += &format!(
            "| {} | {} | {} |\n",
            f.id,
            if f.ok { "pass" } else { "**FAIL**" },
            md_cell(&f.detail)
        );
    }
    out += "\n## Allowed connections\n\n| Policy | Direction | Pods | Peers | Ports |\n|---|---|---|---|---|\n";
    for c in report.network["connections"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out += &format!(
            "| {} | {} | {} | {} | {} |\n",
            text(&c["policy"]),
            text(&c["direction"]),
            md_cell(&text(&c["pods"])),
            md_cell(&list(&c["peers"])),
            list(&c["ports"])
        );
    }
    for (title, section) in sections(report) {
        out += &format!(
            "\n## {title}\n\n```json\n{}\n```\n",
            serde_json::to_string_pretty(section).unwrap_or_default()
        );
    }
    out
}

/// One HTML page.
pub fn html(report: &Report) -> String {
    let name = escape(report.tenant["name"].as_str().unwrap_or_default());
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Compliance evidence: {name}</title><style>{STYLE}</style></head><body>"
    );
    out += &format!(
        "<h1>Compliance evidence: tenant {name}</h1><p>Read live at {} from the API server, S3 and KMS. Period: {} to {}.</p>",
        escape(&report.generated),
        escape(report.period.since.as_deref().unwrap_or("the first record")),
        escape(report.period.until.as_deref().unwrap_or("now"))
    );
    let failing = report.failing().len();
    out += &format!(
        "<p class=\"{}\">{}</p>",
        if failing == 0 { "pass" } else { "fail" },
        if failing == 0 {
            "Every safeguard's live state is what the spec promises.".to_string()
        } else {
            format!("{failing} safeguard(s) failing.")
        }
    );
    out += "<h2>Safeguards</h2><table><tr><th>Safeguard</th><th>Status</th><th>Failing findings</th><th>Demonstrated by</th></tr>";
    for c in &report.controls {
        let class = match c.status {
            "pass" => "pass",
            "fail" => "fail",
            _ => "none",
        };
        out += &format!(
            "<tr><td>{} {}</td><td class=\"{class}\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
            escape(c.control.id),
            escape(c.control.title),
            escape(c.status),
            escape(&c.failing.join(", ")),
            c.control
                .tests
                .iter()
                .map(|t| escape(t))
                .collect::<Vec<_>>()
                .join("</code><br><code>")
        );
    }
    out += "</table><h2>Findings</h2><table><tr><th>Finding</th><th>Result</th><th>What was read</th></tr>";
    for f in &report.findings {
        out += &format!(
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            escape(&f.id),
            if f.ok { "pass" } else { "fail" },
            if f.ok { "pass" } else { "FAIL" },
            escape(&f.detail)
        );
    }
    out += "</table><h2>Allowed connections</h2><table><tr><th>Policy</th><th>Direction</th><th>Pods</th><th>Peers</th><th>Ports</th></tr>";
    for c in report.network["connections"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&text(&c["policy"])),
            escape(&text(&c["direction"])),
            escape(&text(&c["pods"])),
            escape(&list(&c["peers"])),
            escape(&list(&c["ports"]))
        );
    }
    out += "</table>";
    for (title, section) in sections(report) {
        out += &format!(
            "<h2>{title}</h2><pre>{}</pre>",
            escape(&serde_json::to_string_pretty(section).unwrap_or_default())
        );
    }
    out += "</body></html>\n";
    out
}

/// The sections printed as they were read, in the order of both formats.
fn sections(report: &Report) -> [(&'static str, &Value); 7] {
    [
        ("Tenant", &report.tenant),
        ("Bucket", &report.bucket),
        ("Keys", &report.keys),
        ("Sessions", &report.sessions),
        ("Recordings", &report.recordings),
        ("Backup", &report.backup),
        ("Audit chain", &report.audit),
    ]
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#1b1b1b}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#eee}.pass{color:#0a6b2d;font-weight:600}.fail{color:#b00020;font-weight:700}.none{color:#666}pre{background:#f6f6f6;padding:1em;overflow:auto}code{font-size:.85em}";

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// `s` safe inside HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_read_values_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
