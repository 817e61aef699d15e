//! `GET /v1/stats?from&to` (`audit:read`): the compliance figures as JSON: consent states
//! and rates now (from the store's tally), accesses, GPC, fields withheld, values masked and
//! incidents over the window (from the audit log's per-segment summaries), a timeline, and
//! the top callers per purpose and subjects with a link to their access report.

use std::collections::BTreeMap;

use http::{HeaderMap, Response, StatusCode};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::json;
use super::request::{query, require};
use crate::audit::parse_rfc3339;
use crate::consent::CountedState;
use crate::error::GatewayError;
use crate::http::Body;
use crate::state::State;
use crate::stats::{IncidentKind, Summary, Window, consent_cells};

/// The window when `from` is not given: the 24 hours before `to`.
const DEFAULT_WINDOW: Duration = Duration::hours(24);
/// At most this many points in the timeline (the step grows with the window).
const MAX_POINTS: i64 = 120;
/// Callers listed per purpose, and subjects listed.
const TOP_CALLERS: usize = 10;
const TOP_SUBJECTS: usize = 20;

fn time_param(name: &str, value: &str) -> Result<OffsetDateTime, GatewayError> {
    parse_rfc3339(value).map_err(|_| {
        GatewayError::BadRequest(format!(
            "{name} must be an RFC 3339 time such as 2026-01-31T12:00:00Z"
        ))
    })
}

/// The window of a query string: `to` defaults to now, `from` to 24 hours before `to`.
pub(crate) fn window(raw_query: Option<&str>, now: OffsetDateTime) -> Result<Window, GatewayError> {
    let mut from = None;
    let mut to = None;
    for (k, v) in query(raw_query, &["from", "to"])? {
        match k {
            "from" => from = Some(time_param("from", &v)?),
            _ => to = Some(time_param("to", &v)?),
        }
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - DEFAULT_WINDOW);
    if from >= to {
        return Err(GatewayError::BadRequest(
            "from must be before to".to_owned(),
        ));
    }
    Ok(Window { from, to })
}

/// The figures of the records in `window`: from the per-segment index (files), or by reading
/// the window's records of every chain (PostgreSQL).
async fn summary(state: &State, window: Window) -> Result<Summary, crate::audit::AuditError> {
    match (&state.stats, state.audit.reader()) {
        (Some(index), _) => {
            let index = index.clone();
            tokio::task::spawn_blocking(move || index.summary(window))
                .await
                .map_err(|e| crate::audit::AuditError::WriteFailed(e.to_string()))?
        }
        (None, crate::audit::Reader::Postgres(pg)) => {
            let filter = crate::audit::Filter {
                from: Some(window.from),
                to: Some(window.to),
                ..crate::audit::Filter::default()
            };
            let mut out = Summary::default();
            pg.scan(&filter, |_, record| {
                out.add(record);
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .await?;
            Ok(out)
        }
        // `Gateway::bind` gives every file log its index.
        (None, crate::audit::Reader::Files(_)) => Err(crate::audit::AuditError::WriteFailed(
            "no stats index for the audit files".to_owned(),
        )),
    }
}

/// `GET /v1/stats`.
pub(crate) async fn stats(
    state: &State,
    headers: &HeaderMap,
    raw_query: Option<&str>,
) -> Result<Response<Body>, GatewayError> {
    require(state, headers, "audit:read")?;
    let now = OffsetDateTime::now_utc();
    let window = window(raw_query, now)?;
    let summary = summary(state, window).await.map_err(|e| {
        if crate::audit::is_outage(&e) {
            tracing::warn!(error = %e, "stats: the audit database is unavailable");
            GatewayError::AuditUnavailable
        } else {
            tracing::error!(error = %e, "stats: audit log read failed");
            GatewayError::Internal
        }
    })?;
    let cells = consent_cells(
        &state.policies.current(),
        &state.store.tally().snapshot(now),
        &state.settings.gateway.default_region,
    );
    let consent: Vec<Value> = cells
        .iter()
        .map(|c| {
            let mut v = json!({
                "region": c.region,
                "purpose": c.purpose,
                "subjects": c.counts.decided(),
                "consent_rate": c.counts.consent_rate(),
            });
            for s in CountedState::ALL {
                v[s.as_str()] = c.counts.get(s).into();
            }
            v
        })
        .collect();
    let body = json!({
        "from": fmt(window.from),
        "to": fmt(window.to),
        "generated_at": fmt(now),
        "records": summary.records,
        "consent": consent,
        "accesses": accesses(&summary),
        "incidents": {
            "report_deny": summary.incidents(IncidentKind::ReportDeny),
            "fail_closed": summary.incidents(IncidentKind::FailClosed),
            "audit_failures_since_start": state.metrics.audit_failures(),
            "policy_reload_failures_since_start": state.policies.reload_failures(),
        },
        "timeline": timeline(&summary, window),
        "top_callers": top_callers(&summary),
        "top_subjects": top_subjects(&summary),
    });
    Ok(json(StatusCode::OK, &body))
}

fn fmt(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn accesses(summary: &Summary) -> Vec<Value> {
    summary
        .cells
        .iter()
        .map(|((region, purpose), c)| {
            json!({
                "region": region,
                "purpose": purpose,
                "accesses": c.accesses,
                "by_decision": c.by_decision,
                "by_reason": c.by_reason,
                "gpc_applied": c.gpc_applied,
                "fields_withheld": c.fields_withheld,
                "values_masked": c.values_masked,
                "incidents": c.incidents,
            })
        })
        .collect()
}

/// Accesses per decision in `MAX_POINTS` steps or fewer, zeros included.
fn timeline(summary: &Summary, window: Window) -> Value {
    let minute = Duration::minutes(1);
    let start = window
        .from
        .replace_second(0)
        .unwrap_or(window.from)
        .replace_nanosecond(0)
        .unwrap_or(window.from);
    let minutes = ((window.to - start).whole_seconds() + 59) / 60;
    let step = ((minutes + MAX_POINTS - 1) / MAX_POINTS).max(1);
    let points = ((minutes + step - 1) / step).max(1);
    let mut counts = vec![[0u64; 3]; usize::try_from(points).unwrap_or(0)];
    for (m, c) in &summary.minutes {
        let Ok(t) = parse_rfc3339(&format!("{m}:00Z")) else {
            continue;
        };
        let i = (t - start).whole_minutes() / step;
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| counts.get_mut(i)) {
            for (s, n) in slot.iter_mut().zip(c) {
                *s += n;
            }
        }
    }
    let points: Vec<Value> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let t = start + minute * (step * i as i64) as i32;
            json!({"t": fmt(t), "allow": c[0], "deny": c[1], "report_deny": c[2]})
        })
        .collect();
    json!({"step_seconds": step * 60, "points": points})
}

fn top<K: Ord>(counts: impl Iterator<Item = (K, u64)>, n: usize) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = counts.collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

fn top_callers(summary: &Summary) -> BTreeMap<String, Vec<Value>> {
    summary
        .callers
        .iter()
        .map(|(purpose, callers)| {
            let list = top(callers.iter().map(|(c, n)| (c.clone(), *n)), TOP_CALLERS)
                .into_iter()
                .map(|(caller, n)| json!({"caller": caller, "accesses": n}))
                .collect();
            (purpose.clone(), list)
        })
        .collect()
}

fn top_subjects(summary: &Summary) -> Vec<Value> {
    top(
        summary.subjects.iter().map(|(s, n)| (s.clone(), *n)),
        TOP_SUBJECTS,
    )
    .into_iter()
    .map(|(subject, n)| {
        // Subject ids are 1–128 of A-Za-z0-9._:@- (validated before they are audited):
        // nothing in them needs escaping in a path segment.
        let report = format!("/v1/subjects/{subject}/report");
        json!({"subject": subject, "accesses": n, "report": report})
    })
    .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn window_defaults_and_errors() {
        let now = parse_rfc3339("2026-11-23T12:00:00Z").unwrap();
        let w = window(None, now).unwrap();
        assert_eq!(w.to, now);
        assert_eq!(w.from, now - Duration::hours(24));
        let w = window(
            Some("from=2026-11-23T10:00:00Z&to=2026-11-23T11:00:00%2B01:00"),
            now,
        );
        assert!(matches!(w, Err(GatewayError::BadRequest(_))), "{w:?}");
        for bad in [
            "from=yesterday",
            "to=2026-13-01T00:00:00Z",
            "since=x",
            "from=a&from=b",
        ] {
            assert!(
                matches!(window(Some(bad), now), Err(GatewayError::BadRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn timeline_steps_keep_at_most_max_points() {
        let from = parse_rfc3339("2026-11-23T00:00:00Z").unwrap();
        let mut s = Summary::default();
        s.minutes.insert("2026-11-23T00:05".into(), [1, 2, 0]);
        s.minutes.insert("2026-11-23T23:59".into(), [4, 0, 1]);
        let t = timeline(
            &s,
            Window {
                from,
                to: from + Duration::hours(24),
            },
        );
        assert_eq!(t["step_seconds"], 720);
        let points = t["points"].as_array().unwrap();
        assert_eq!(points.len(), 120);
        assert_eq!(points[0]["deny"], 2);
        assert_eq!(points[119]["allow"], 4);
        assert_eq!(points[119]["report_deny"], 1);
    }
}
