//! Auditor API: filtered NDJSON access log with cursor paging, chain verification, the latest
//! signed checkpoint, and the access report for one data subject (JSON, HTML or Markdown).

use std::fmt::Write;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use time::OffsetDateTime;

use super::json;
use super::request::{query, require};
use crate::audit::{self, AuditError, AuditRecord, Filter, Reader};
use crate::error::GatewayError;
use crate::http::{Body, full};
use crate::state::State;

fn audit_error(e: AuditError) -> GatewayError {
    match e {
        AuditError::BadCursor | AuditError::BadFilter(_) => GatewayError::BadRequest(e.to_string()),
        e if audit::is_outage(&e) => {
            tracing::warn!(error = %e, "audit read failed: the database is unavailable");
            GatewayError::AuditUnavailable
        }
        other => {
            tracing::error!(error = %other, "audit read failed");
            GatewayError::Internal
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuditError> + Send + 'static,
) -> Result<T, GatewayError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| GatewayError::Internal)?
        .map_err(audit_error)
}

fn time_param(name: &str, value: &str) -> Result<OffsetDateTime, GatewayError> {
    audit::parse_rfc3339(value).map_err(|_| {
        GatewayError::BadRequest(format!(
            "{name} must be an RFC 3339 time such as 2026-01-31T12:00:00Z"
        ))
    })
}

/// `GET /v1/audit?subject&caller&purpose&decision&from&to&limit&cursor`: NDJSON, oldest first;
/// the next page's cursor in `X-Next-Cursor` (absent on the last page).
pub(crate) async fn list(
    state: &State,
    headers: &HeaderMap,
    raw_query: Option<&str>,
) -> Result<Response<Body>, GatewayError> {
    require(state, headers, "audit:read")?;
    let mut filter = Filter::default();
    let mut cursor = None;
    for (k, v) in query(
        raw_query,
        &[
            "subject", "caller", "purpose", "decision", "from", "to", "limit", "cursor",
        ],
    )? {
        match k {
            "subject" => filter.subject = Some(v),
            "caller" => filter.caller = Some(v),
            "purpose" => filter.purpose = Some(v),
            "decision" => {
                filter.decision = Some(v.parse().map_err(|_| {
                    GatewayError::BadRequest("decision must be allow, deny or report_deny".into())
                })?)
            }
            "from" => filter.from = Some(time_param("from", &v)?),
            "to" => filter.to = Some(time_param("to", &v)?),
            "limit" => {
                let n: usize = v.parse().map_err(|_| {
                    GatewayError::BadRequest("limit must be a number from 1 to 1000".into())
                })?;
                if !(1..=audit::MAX_LIMIT).contains(&n) {
                    return Err(GatewayError::BadRequest(
                        "limit must be a number from 1 to 1000".into(),
                    ));
                }
                filter.limit = Some(n);
            }
            _ => cursor = Some(v),
        }
    }
    let page = match state.audit.reader() {
        Reader::Files(dir) => {
            let dir = dir.clone();
            blocking(move || audit::query(&dir, &filter, cursor.as_deref())).await?
        }
        Reader::Postgres(pg) => pg
            .query(&filter, cursor.as_deref())
            .await
            .map_err(audit_error)?,
    };
    let mut body = String::with_capacity(page.lines.iter().map(|l| l.len() + 1).sum());
    for line in &page.lines {
        body.push_str(line);
        body.push('\n');
    }
    let mut resp = Response::new(full(body));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Some(next) = page
        .next_cursor
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        resp.headers_mut().insert("x-next-cursor", next);
    }
    Ok(resp)
}

/// `GET /v1/audit/verify`.
pub(crate) async fn verify(
    state: &State,
    headers: &HeaderMap,
) -> Result<Response<Body>, GatewayError> {
    require(state, headers, "audit:read")?;
    // The server trusts its own checkpoint key for the checkpoint that anchors a chain
    // shortened by retention.
    let key = state.audit.checkpoint_public_key().map(<[u8]>::to_vec);
    let report = match state.audit.reader() {
        Reader::Files(dir) => {
            let dir = dir.clone();
            let report = blocking(move || {
                audit::verify_with(
                    &dir,
                    audit::VerifyOptions {
                        checkpoint: None,
                        public_key: key.as_deref(),
                    },
                )
            })
            .await?;
            serde_json::to_value(&report)
        }
        Reader::Postgres(pg) => {
            serde_json::to_value(pg.verify(key.as_deref()).await.map_err(audit_error)?)
        }
    };
    Ok(json(StatusCode::OK, &report.unwrap_or_default()))
}

/// `GET /v1/audit/checkpoint`: the latest signed checkpoint, to keep off-host.
pub(crate) async fn checkpoint(
    state: &State,
    headers: &HeaderMap,
) -> Result<Response<Body>, GatewayError> {
    require(state, headers, "audit:read")?;
    let no_checkpoint = || {
        GatewayError::NotFound(
            "no checkpoint yet: set [audit] checkpoint_key, and wait for the first records".into(),
        )
    };
    match state.audit.reader() {
        Reader::Files(dir) => {
            let dir = dir.clone();
            let cp = blocking(move || audit::read_latest_checkpoint(&dir))
                .await?
                .ok_or_else(no_checkpoint)?;
            Ok(json(
                StatusCode::OK,
                &serde_json::to_value(&cp).unwrap_or_default(),
            ))
        }
        Reader::Postgres(pg) => {
            // This replica's latest checkpoint, and every chain's under `chains`.
            let chains = pg.latest_checkpoints().await.map_err(audit_error)?;
            if chains.is_empty() {
                return Err(no_checkpoint());
            }
            let own = chains
                .iter()
                .find(|cp| cp.replica.as_deref() == state.audit.replica());
            let mut doc = own
                .and_then(|cp| serde_json::to_value(cp).ok())
                .unwrap_or_else(|| serde_json::json!({}));
            doc["chains"] = serde_json::to_value(&chains).unwrap_or_default();
            Ok(json(StatusCode::OK, &doc))
        }
    }
}

/// Most accesses listed in one report (memory stays bounded); the rest are counted in
/// `accesses_omitted` and can be exported with `GET /v1/audit?subject=…` or `audit export`.
const MAX_REPORT_ACCESSES: usize = 100_000;

/// The accesses a report lists: the first [`MAX_REPORT_ACCESSES`], and how many more.
#[derive(Default)]
struct Accesses {
    list: Vec<serde_json::Value>,
    omitted: u64,
}

impl Accesses {
    fn add(&mut self, r: &AuditRecord) {
        if self.list.len() < MAX_REPORT_ACCESSES {
            self.list.push(access_json(r));
        } else {
            self.omitted += 1;
        }
    }
}

/// One access, as shown in the report (no personal values: paths and counts only).
fn access_json(r: &AuditRecord) -> serde_json::Value {
    serde_json::json!({
        "seq": r.seq, "ts": r.ts, "caller": r.caller, "purpose": r.purpose, "region": r.region,
        "route": r.route, "method": r.method, "path": r.path, "decision": r.decision.as_str(),
        "reason": r.reason, "policy": r.policy, "consent": r.consent.as_str(), "status": r.status,
        "fields_removed": r.fields_removed, "redactions": r.redactions,
        "collection": r.collection,
    })
}

/// `GET /v1/subjects/{s}/report[?format=json|html|markdown]`: consents (current and history)
/// and every access to this subject, for answering a person's access request.
pub(crate) async fn report(
    state: &State,
    headers: &HeaderMap,
    raw_query: Option<&str>,
    subject: &str,
) -> Result<Response<Body>, GatewayError> {
    require(state, headers, "audit:read")?;
    crate::consent::validate_subject(subject)
        .map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    let format = query(raw_query, &["format"])?
        .into_iter()
        .next()
        .map(|(_, v)| v);
    let current = super::consent::current_json(state, subject).await?;
    let receipts = super::consent::history_receipts(state, subject).await?;
    let filter = Filter {
        subject: Some(subject.to_string()),
        ..Filter::default()
    };
    let mut listed = Accesses::default();
    let since: Option<(Option<u64>, String)> = match state.audit.reader() {
        Reader::Files(dir) => {
            let dir = dir.clone();
            let (found, since) = blocking(move || {
                let mut found = Accesses::default();
                audit::scan(&dir, &filter, |_, r| {
                    found.add(r);
                    Ok(())
                })?;
                Ok((found, audit::retained_since(&dir)?))
            })
            .await?;
            listed = found;
            since.map(|(seq, ts)| (Some(seq), ts))
        }
        Reader::Postgres(pg) => {
            pg.scan(&filter, |_, r| {
                listed.add(r);
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .await
            .map_err(audit_error)?;
            // Chains have their own seqs: only the time tells how far back the log reaches.
            pg.retained_since()
                .await
                .map_err(audit_error)?
                .map(|ts| (None, ts))
        }
    };
    let generated = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let doc = serde_json::json!({
        "subject": subject,
        "generated_at": generated,
        "region": current["region"],
        "consents": current["consents"],
        "consent_history": receipts,
        "accesses": listed.list,
        "accesses_omitted": listed.omitted,
        // How far back the access log reaches (older records were deleted by retention).
        "accesses_since": since.as_ref().map(|(_, ts)| ts.clone()),
        "audit_first_seq": since.and_then(|(seq, _)| seq),
    });
    match format.as_deref() {
        None | Some("json") => Ok(json(StatusCode::OK, &doc)),
        Some("html") => Ok(text(render_html(&doc), "text/html; charset=utf-8")),
        Some("markdown") | Some("md") => {
            Ok(text(render_markdown(&doc), "text/markdown; charset=utf-8"))
        }
        Some(_) => Err(GatewayError::BadRequest(
            "format must be json, html or markdown".into(),
        )),
    }
}

fn text(body: String, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn s(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        serde_json::Value::Array(a) => a.iter().map(s).collect::<Vec<_>>().join(", "),
        serde_json::Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}: {}", s(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

const CONSENT_COLS: [(&str, &str); 5] = [
    ("purpose", "Purpose"),
    ("status", "Status"),
    ("effective", "In effect now"),
    ("expires_at", "Expires"),
    ("recorded_at", "Recorded"),
];
const HISTORY_COLS: [(&str, &str); 5] = [
    ("recorded_at", "When"),
    ("purpose", "Purpose"),
    ("status", "Decision"),
    ("source", "Source"),
    ("id", "Receipt"),
];
const ACCESS_COLS: [(&str, &str); 8] = [
    ("ts", "When"),
    ("caller", "Who (service)"),
    ("purpose", "Purpose"),
    ("decision", "Decision"),
    ("reason", "Reason"),
    ("status", "Status"),
    ("fields_removed", "Fields withheld"),
    ("redactions", "Values masked"),
];

fn rows<'a>(doc: &'a serde_json::Value, key: &str) -> &'a [serde_json::Value] {
    doc[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

fn html_table(out: &mut String, title: &str, cols: &[(&str, &str)], items: &[serde_json::Value]) {
    let _ = write!(out, "<h2>{}</h2>", escape_html(title));
    if items.is_empty() {
        out.push_str("<p>None.</p>");
        return;
    }
    out.push_str("<table><thead><tr>");
    for (_, head) in cols {
        let _ = write!(out, "<th>{}</th>", escape_html(head));
    }
    out.push_str("</tr></thead><tbody>");
    for item in items {
        out.push_str("<tr>");
        for (key, _) in cols {
            let _ = write!(out, "<td>{}</td>", escape_html(&s(&item[*key])));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

fn render_html(doc: &serde_json::Value) -> String {
    let subject = escape_html(&s(&doc["subject"]));
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Access report for {subject}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px 8px;text-align:left}}</style></head><body>\
         <h1>Access report for data subject {subject}</h1><p>Generated {} · region {} · accesses recorded since {}</p>",
        escape_html(&s(&doc["generated_at"])),
        escape_html(&s(&doc["region"])),
        escape_html(&s(&doc["accesses_since"]))
    );
    html_table(
        &mut out,
        "Current consents",
        &CONSENT_COLS,
        rows(doc, "consents"),
    );
    html_table(
        &mut out,
        "Consent history",
        &HISTORY_COLS,
        rows(doc, "consent_history"),
    );
    html_table(
        &mut out,
        "Every access to this person's data",
        &ACCESS_COLS,
        rows(doc, "accesses"),
    );
    if let Some(n) = doc["accesses_omitted"].as_u64().filter(|n| *n > 0) {
        let _ = write!(
            out,
            "<p>{n} further accesses are not listed here; export them with <code>consentgate audit export --subject</code>.</p>"
        );
    }
    out.push_str("<p>Records list which fields were withheld and how many values were masked; they never contain the data itself.</p></body></html>");
    out
}

/// Markdown text that renders as exactly `v`'s text: HTML's `<`, `>`, `&`, `"` as entities
/// (no raw HTML gets through), every other ASCII punctuation that Markdown could read as
/// syntax (emphasis, links, images, code, tables, autolinks, escapes) backslash-escaped,
/// line breaks and other control characters as spaces. Used for every value in the report,
/// since caller names, routes and paths come from outside.
fn md_cell(v: &serde_json::Value) -> String {
    md_escape(&s(v))
}

fn md_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '!' | '|'
            | '~' | ':' | '@' | '=' | '-' | '.' | '\'' | '$' | '^' | '%' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn md_table(out: &mut String, title: &str, cols: &[(&str, &str)], items: &[serde_json::Value]) {
    let _ = writeln!(out, "\n## {}\n", md_escape(title));
    if items.is_empty() {
        out.push_str("None.\n");
        return;
    }
    let heads: Vec<&str> = cols.iter().map(|(_, h)| *h).collect();
    let _ = writeln!(out, "| {} |", heads.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(cols.len()));
    for item in items {
        let cells: Vec<String> = cols.iter().map(|(k, _)| md_cell(&item[*k])).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

fn render_markdown(doc: &serde_json::Value) -> String {
    let mut out = format!(
        "# Access report for data subject {}\n\nGenerated {} · region {} · accesses recorded since {}\n",
        md_cell(&doc["subject"]),
        md_cell(&doc["generated_at"]),
        md_cell(&doc["region"]),
        md_cell(&doc["accesses_since"])
    );
    md_table(
        &mut out,
        "Current consents",
        &CONSENT_COLS,
        rows(doc, "consents"),
    );
    md_table(
        &mut out,
        "Consent history",
        &HISTORY_COLS,
        rows(doc, "consent_history"),
    );
    md_table(
        &mut out,
        "Every access to this person's data",
        &ACCESS_COLS,
        rows(doc, "accesses"),
    );
    if let Some(n) = doc["accesses_omitted"].as_u64().filter(|n| *n > 0) {
        let _ = writeln!(
            out,
            "\n{n} further accesses are not listed here; export them with `consentgate audit export --subject`."
        );
    }
    out.push_str("\nRecords list which fields were withheld and how many values were masked; they never contain the data itself.\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cells_carry_no_html_or_markdown_syntax() {
        let nasty = "<img src=x onerror=alert(1)> [click](javascript:alert(1)) ![i](http://x/p.png) **b** `c` | d \\ e\nf <https://x> www.example.com a@b.example ~~s~~ _u_ &amp;";
        let out = md_escape(nasty);
        assert!(!out.contains(['<', '>', '\n']), "{out}");
        assert!(out.contains("&amp;amp;"), "{out}");
        // Every Markdown-significant character is escaped.
        let chars: Vec<char> = out.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            if "*_[]()!|~`:@".contains(*c) {
                assert_eq!(chars[i - 1], '\\', "{c} at {i} in {out}");
            }
        }
        assert!(out.contains("javascript\\:") && out.contains("https\\:") && out.contains("a\\@b"));
        // Every escape is of ASCII punctuation, so the rendered text is the original.
        let doc = serde_json::json!({"subject": "c-1", "generated_at": "t", "region": "eu",
            "consents": [], "consent_history": [], "accesses_since": null,
            "accesses": [{"ts": "t", "caller": nasty, "purpose": "p", "decision": "allow",
                          "reason": "r", "status": 200, "fields_removed": [nasty], "redactions": {}}]});
        let md = render_markdown(&doc);
        assert!(!md.contains("<img") && !md.contains("[click]"));
    }

    #[test]
    fn html_is_escaped_and_markdown_pipes_too() {
        let doc = serde_json::json!({"subject": "<c-1>", "generated_at": "t", "region": "eu",
            "consents": [], "consent_history": [],
            "accesses": [{"ts": "t", "caller": "a|b", "purpose": "marketing", "decision": "allow",
                          "reason": "<script>", "status": 200, "fields_removed": ["email"], "redactions": {"card": 1}}]});
        let html = render_html(&doc);
        assert!(
            html.contains("&lt;c-1&gt;")
                && html.contains("&lt;script&gt;")
                && !html.contains("<script>")
        );
        let md = render_markdown(&doc);
        assert!(md.contains("a\\|b") && md.contains("card\\: 1"));
        assert!(!md.contains("further accesses"));
        let mut big = doc.clone();
        big["accesses_omitted"] = 5.into();
        assert!(render_html(&big).contains("5 further accesses"));
        assert!(render_markdown(&big).contains("5 further accesses"));
    }
}
