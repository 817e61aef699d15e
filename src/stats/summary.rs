//! The access figures of a set of audit records, mergeable: a segment's summary is computed
//! once and summaries of several segments add up.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{IncidentKind, gpc_applied, incident_of};
use crate::audit::{AuditRecord, Decision};
use crate::metrics::UNLISTED;

/// Accesses of one region × purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Accesses in all.
    pub accesses: u64,
    /// Accesses per decision (`allow`, `deny`, `report_deny`).
    pub by_decision: BTreeMap<&'static str, u64>,
    /// Accesses per recorded reason.
    pub by_reason: BTreeMap<String, u64>,
    /// Accesses decided by a `Sec-GPC: 1` signal.
    pub gpc_applied: u64,
    /// Response fields removed by minimisation.
    pub fields_withheld: u64,
    /// Values masked, per redactor.
    pub values_masked: BTreeMap<String, u64>,
    /// Incidents per kind (`report_deny`, `fail_closed`).
    pub incidents: BTreeMap<&'static str, u64>,
}

impl Cell {
    fn merge(&mut self, other: &Cell) {
        self.accesses += other.accesses;
        add_all(&mut self.by_decision, &other.by_decision);
        add_all(&mut self.by_reason, &other.by_reason);
        self.gpc_applied += other.gpc_applied;
        self.fields_withheld += other.fields_withheld;
        add_all(&mut self.values_masked, &other.values_masked);
        add_all(&mut self.incidents, &other.incidents);
    }
}

fn add_all<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, n) in from {
        *into.entry(k.clone()).or_default() += n;
    }
}

/// Figures over some audit records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records counted.
    pub records: u64,
    /// Per (region, purpose); `-` where the record has none.
    pub cells: BTreeMap<(String, String), Cell>,
    /// Per minute (`YYYY-MM-DDTHH:MM`): accesses per decision `[allow, deny, report_deny]`.
    pub minutes: BTreeMap<String, [u64; 3]>,
    /// Per purpose, accesses per caller.
    pub callers: BTreeMap<String, BTreeMap<String, u64>>,
    /// Accesses per subject.
    pub subjects: BTreeMap<String, u64>,
}

fn decision_index(d: Decision) -> usize {
    match d {
        Decision::Allow => 0,
        Decision::Deny => 1,
        Decision::ReportDeny => 2,
    }
}

impl Summary {
    /// Counts one record.
    pub fn add(&mut self, r: &AuditRecord) {
        self.records += 1;
        let name = |v: &Option<String>| v.clone().unwrap_or_else(|| UNLISTED.to_owned());
        let purpose = name(&r.purpose);
        let cell = self
            .cells
            .entry((name(&r.region), purpose.clone()))
            .or_default();
        cell.accesses += 1;
        *cell.by_decision.entry(r.decision.as_str()).or_default() += 1;
        *cell.by_reason.entry(r.reason.clone()).or_default() += 1;
        if gpc_applied(&r.reason) {
            cell.gpc_applied += 1;
        }
        cell.fields_withheld += r.fields_removed.len() as u64;
        for (redactor, n) in &r.redactions {
            *cell.values_masked.entry(redactor.clone()).or_default() += n;
        }
        if let Some(kind) = incident_of(r.decision, &r.reason) {
            *cell.incidents.entry(kind.as_str()).or_default() += 1;
        }
        if let Some(minute) = r.ts.get(..16) {
            let slot = self.minutes.entry(minute.to_owned()).or_default();
            slot[decision_index(r.decision)] += 1;
        }
        *self
            .callers
            .entry(purpose)
            .or_default()
            .entry(name(&r.caller))
            .or_default() += 1;
        if let Some(subject) = &r.subject {
            *self.subjects.entry(subject.clone()).or_default() += 1;
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Summary) {
        self.records += other.records;
        for (k, c) in &other.cells {
            self.cells.entry(k.clone()).or_default().merge(c);
        }
        for (m, counts) in &other.minutes {
            let slot = self.minutes.entry(m.clone()).or_default();
            for (s, n) in slot.iter_mut().zip(counts) {
                *s += n;
            }
        }
        for (purpose, callers) in &other.callers {
            add_all(self.callers.entry(purpose.clone()).or_default(), callers);
        }
        add_all(&mut self.subjects, &other.subjects);
    }

    /// Incidents of `kind` over every cell.
    pub fn incidents(&self, kind: IncidentKind) -> u64 {
        self.cells
            .values()
            .filter_map(|c| c.incidents.get(kind.as_str()))
            .sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::ConsentUsed;

    fn record(ts: &str, decision: Decision, reason: &str, caller: &str) -> AuditRecord {
        AuditRecord {
            replica: None,
            seq: 1,
            ts: ts.into(),
            request_id: "r".into(),
            caller: Some(caller.into()),
            subject: Some("c-1".into()),
            purpose: Some("marketing".into()),
            region: Some("eu".into()),
            route: Some("customers".into()),
            method: "GET".into(),
            path: "/x".into(),
            decision,
            reason: reason.into(),
            policy: None,
            consent: ConsentUsed::NotApplicable,
            status: 200,
            fields_removed: vec!["a".into(), "b".into()],
            redactions: [("mask_email".to_owned(), 2)].into(),
            collection: None,
            prev: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn merging_two_summaries_equals_counting_all_records() {
        let rs = [
            record(
                "2026-11-23T21:55:44.123Z",
                Decision::Allow,
                "opt_in_consent_granted",
                "crm",
            ),
            record(
                "2026-11-23T21:55:50.000Z",
                Decision::Deny,
                "gpc_opt_out",
                "ads",
            ),
            record(
                "2026-11-23T21:56:01.000Z",
                Decision::ReportDeny,
                "consent_denied",
                "crm",
            ),
            record(
                "2026-11-23T21:57:01.000Z",
                Decision::Deny,
                "store_unavailable",
                "crm",
            ),
        ];
        let mut all = Summary::default();
        rs.iter().for_each(|r| all.add(r));
        let (mut a, mut b) = (Summary::default(), Summary::default());
        rs[..1].iter().for_each(|r| a.add(r));
        rs[1..].iter().for_each(|r| b.add(r));
        a.merge(&b);
        assert_eq!(a, all);
        let cell = &all.cells[&("eu".to_owned(), "marketing".to_owned())];
        assert_eq!(cell.accesses, 4);
        assert_eq!(cell.by_decision["deny"], 2);
        assert_eq!(cell.gpc_applied, 1);
        assert_eq!(cell.fields_withheld, 8);
        assert_eq!(cell.values_masked["mask_email"], 8);
        assert_eq!(all.incidents(IncidentKind::ReportDeny), 1);
        assert_eq!(all.incidents(IncidentKind::FailClosed), 1);
        assert_eq!(all.minutes["2026-11-23T21:55"], [1, 1, 0]);
        assert_eq!(all.callers["marketing"]["crm"], 3);
        assert_eq!(all.subjects["c-1"], 4);
    }
}
