//! The audit record, its canonical form and its hash. Pure, no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use super::error::AuditError;
use crate::canonical_json::{self, to_vec as to_canonical};
use crate::hex::encode as hex;

/// `prev` of the first record: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `2026-11-23T21:55:44.123Z`: RFC 3339, UTC, milliseconds.
const TS_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// The gateway's decision for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The request was allowed.
    Allow,
    /// The request was denied.
    Deny,
    /// Report mode: the policy would have denied, the request was allowed.
    ReportDeny,
}

impl Decision {
    /// The wire name (`allow`, `deny`, `report_deny`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::ReportDeny => "report_deny",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Decision {
    type Err = AuditError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            "report_deny" => Ok(Self::ReportDeny),
            _ => Err(AuditError::BadFilter(
                "decision must be allow, deny or report_deny".to_owned(),
            )),
        }
    }
}

/// The consent state the decision used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentUsed {
    /// A granted, unexpired consent.
    Granted,
    /// The subject denied consent.
    Denied,
    /// The subject withdrew consent.
    Withdrawn,
    /// The consent had expired.
    Expired,
    /// No consent decision was recorded.
    None,
    /// Consent was not relevant (another legal basis, or no personal data).
    #[serde(rename = "n/a")]
    NotApplicable,
}

impl ConsentUsed {
    /// The wire name (`granted`, …, `n/a`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Denied => "denied",
            Self::Withdrawn => "withdrawn",
            Self::Expired => "expired",
            Self::None => "none",
            Self::NotApplicable => "n/a",
        }
    }
}

/// Where a record of a collection response stood in it (SPEC "Collections").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionPos {
    /// Position in the upstream's array or stream, from 0.
    pub index: u64,
    /// Number of records in the array; `null` for a stream (NDJSON).
    pub count: Option<u64>,
}

/// What the pipeline hands to [`super::AuditLog::append`]: a record without
/// `seq`, `ts`, `prev` and `hash`. It must hold no personal field values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The request's `X-Request-Id`.
    pub request_id: String,
    /// The authenticated caller (`sub`), absent when authentication failed.
    pub caller: Option<String>,
    /// The data subject, absent when none was resolved.
    pub subject: Option<String>,
    /// The declared purpose, absent when missing or invalid.
    pub purpose: Option<String>,
    /// The subject's region, absent when not resolved.
    pub region: Option<String>,
    /// The matched route's name, absent when no route matched.
    pub route: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The normalised request path.
    pub path: String,
    /// The decision.
    pub decision: Decision,
    /// Why (an error code or policy reason).
    pub reason: String,
    /// `region@version` of the policy used, absent when none applied.
    pub policy: Option<String>,
    /// The consent state used.
    pub consent: ConsentUsed,
    /// The HTTP status released to the caller.
    pub status: u16,
    /// JSON paths removed by minimisation.
    pub fields_removed: Vec<String>,
    /// Redactor name → number of values it masked.
    pub redactions: BTreeMap<String, u64>,
    /// The record's place in a collection response; `None` for a single-subject request.
    pub collection: Option<CollectionPos>,
}

impl AuditEntry {
    /// An entry with no caller, subject, purpose, region, route or policy, consent `n/a`,
    /// nothing removed and nothing masked; set the fields that apply.
    pub fn new(
        request_id: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
        decision: Decision,
        reason: impl Into<String>,
        status: u16,
    ) -> Self {
        Self {
            request_id: request_id.into(),
            caller: None,
            subject: None,
            purpose: None,
            region: None,
            route: None,
            method: method.into(),
            path: path.into(),
            decision,
            reason: reason.into(),
            policy: None,
            consent: ConsentUsed::NotApplicable,
            status,
            fields_removed: Vec::new(),
            redactions: BTreeMap::new(),
            collection: None,
        }
    }
}

/// The writer's members of a record, in JCS order: everything else comes from the entry.
const WRITER_KEYS: usize = 5;

/// An entry turned into canonical JSON in the requesting task: its members in JCS order,
/// each followed by a comma, and where the writer's five members (`hash`, `prev`, `replica`,
/// `seq`, `ts`) go. The writer thread only splices those in and hashes (see
/// [`Prepared::seal_into`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prepared {
    members: Vec<u8>,
    /// Offsets into `members` of `hash`, `prev`, `replica`, `seq`, `ts`, ascending.
    slots: [usize; WRITER_KEYS],
}

/// Appends `"key":` to `out`.
fn key(name: &str, out: &mut Vec<u8>) {
    canonical_json::write_str(name, out);
    out.push(b':');
}

fn opt_str(value: Option<&str>, out: &mut Vec<u8>) {
    match value {
        Some(s) => canonical_json::write_str(s, out),
        None => out.extend_from_slice(b"null"),
    }
}

impl Prepared {
    /// Serialises `entry` canonically, straight to bytes: the members are written in JCS
    /// order (the names are ASCII, so UTF-16 order is byte order), the redactor names sorted
    /// by their UTF-16 code units. `AuditRecord::seal`, which goes through a generic
    /// canonicaliser, is the oracle (a property test below).
    pub(crate) fn new(entry: &AuditEntry) -> Self {
        let mut m = Vec::with_capacity(384 + entry.path.len());
        let mut slots = [0; WRITER_KEYS];
        key("caller", &mut m);
        opt_str(entry.caller.as_deref(), &mut m);
        m.push(b',');
        key("collection", &mut m);
        match entry.collection {
            Some(pos) => {
                m.extend_from_slice(b"{\"count\":");
                match pos.count {
                    Some(n) => canonical_json::write_u64(n, &mut m),
                    None => m.extend_from_slice(b"null"),
                }
                m.extend_from_slice(b",\"index\":");
                canonical_json::write_u64(pos.index, &mut m);
                m.push(b'}');
            }
            None => m.extend_from_slice(b"null"),
        }
        m.push(b',');
        key("consent", &mut m);
        canonical_json::write_str(entry.consent.as_str(), &mut m);
        m.push(b',');
        key("decision", &mut m);
        canonical_json::write_str(entry.decision.as_str(), &mut m);
        m.push(b',');
        key("fields_removed", &mut m);
        m.push(b'[');
        for (i, field) in entry.fields_removed.iter().enumerate() {
            if i > 0 {
                m.push(b',');
            }
            canonical_json::write_str(field, &mut m);
        }
        m.extend_from_slice(b"],");
        slots[0] = m.len(); // hash
        key("method", &mut m);
        canonical_json::write_str(&entry.method, &mut m);
        m.push(b',');
        key("path", &mut m);
        canonical_json::write_str(&entry.path, &mut m);
        m.push(b',');
        key("policy", &mut m);
        opt_str(entry.policy.as_deref(), &mut m);
        m.push(b',');
        slots[1] = m.len(); // prev
        key("purpose", &mut m);
        opt_str(entry.purpose.as_deref(), &mut m);
        m.push(b',');
        key("reason", &mut m);
        canonical_json::write_str(&entry.reason, &mut m);
        m.push(b',');
        key("redactions", &mut m);
        m.push(b'{');
        let mut names: Vec<(&String, &u64)> = entry.redactions.iter().collect();
        if !names.iter().all(|(k, _)| k.is_ascii()) {
            names.sort_unstable_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        }
        for (i, (name, count)) in names.into_iter().enumerate() {
            if i > 0 {
                m.push(b',');
            }
            key(name, &mut m);
            canonical_json::write_u64(*count, &mut m);
        }
        m.extend_from_slice(b"},");
        key("region", &mut m);
        opt_str(entry.region.as_deref(), &mut m);
        m.push(b',');
        slots[2] = m.len(); // replica
        key("request_id", &mut m);
        canonical_json::write_str(&entry.request_id, &mut m);
        m.push(b',');
        key("route", &mut m);
        opt_str(entry.route.as_deref(), &mut m);
        m.push(b',');
        slots[3] = m.len(); // seq
        key("status", &mut m);
        canonical_json::write_u64(u64::from(entry.status), &mut m);
        m.push(b',');
        key("subject", &mut m);
        opt_str(entry.subject.as_deref(), &mut m);
        m.push(b',');
        slots[4] = m.len(); // ts
        Self { members: m, slots }
    }

    /// Appends the record's line (canonical JSON, with a trailing newline) to `out` and
    /// returns its hash: `hex(SHA-256(prev ‖ canonical JSON without "hash"))`. `replica` is
    /// the chain's name (`None`, written `null`, in the file backend).
    pub(crate) fn seal_into(
        &self,
        seq: u64,
        ts: &str,
        prev: &str,
        replica: Option<&str>,
        out: &mut Vec<u8>,
    ) -> String {
        let [h, p, r, s, t] = self.slots;
        let m = &self.members;
        let start = out.len();
        out.push(b'{');
        out.extend_from_slice(&m[..h]);
        let hash_at = out.len();
        out.extend_from_slice(&m[h..p]);
        out.extend_from_slice(b"\"prev\":");
        canonical_json::write_str(prev, out);
        out.push(b',');
        out.extend_from_slice(&m[p..r]);
        out.extend_from_slice(b"\"replica\":");
        opt_str(replica, out);
        out.push(b',');
        out.extend_from_slice(&m[r..s]);
        out.extend_from_slice(b"\"seq\":");
        canonical_json::write_u64(seq, out);
        out.push(b',');
        out.extend_from_slice(&m[s..t]);
        out.extend_from_slice(b"\"ts\":");
        canonical_json::write_str(ts, out);
        out.push(b',');
        out.extend_from_slice(&m[t..]);
        // Every member ends with a comma; the last one's closes the object.
        if let Some(last) = out.last_mut() {
            *last = b'}';
        }
        let hash = chain_hash(prev, &out[start..]);
        let mut member = Vec::with_capacity(76);
        member.extend_from_slice(b"\"hash\":\"");
        member.extend_from_slice(hash.as_bytes());
        member.extend_from_slice(b"\",");
        out.splice(hash_at..hash_at, member);
        out.push(b'\n');
        hash
    }
}

/// A record as written to the log: one JSON line, hash-chained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Sequence number, from 1, contiguous across segments.
    pub seq: u64,
    /// RFC 3339 UTC time with milliseconds.
    pub ts: String,
    /// See [`AuditEntry::request_id`].
    pub request_id: String,
    /// See [`AuditEntry::caller`].
    pub caller: Option<String>,
    /// See [`AuditEntry::subject`].
    pub subject: Option<String>,
    /// See [`AuditEntry::purpose`].
    pub purpose: Option<String>,
    /// See [`AuditEntry::region`].
    pub region: Option<String>,
    /// See [`AuditEntry::route`].
    pub route: Option<String>,
    /// See [`AuditEntry::method`].
    pub method: String,
    /// See [`AuditEntry::path`].
    pub path: String,
    /// See [`AuditEntry::decision`].
    pub decision: Decision,
    /// See [`AuditEntry::reason`].
    pub reason: String,
    /// See [`AuditEntry::policy`].
    pub policy: Option<String>,
    /// See [`AuditEntry::consent`].
    pub consent: ConsentUsed,
    /// See [`AuditEntry::status`].
    pub status: u16,
    /// See [`AuditEntry::fields_removed`].
    pub fields_removed: Vec<String>,
    /// See [`AuditEntry::redactions`].
    pub redactions: BTreeMap<String, u64>,
    /// See [`AuditEntry::collection`]; written as `null` when absent. Records written before
    /// the field existed lack the key; they still verify (the hash covers the stored bytes).
    #[serde(default)]
    pub collection: Option<CollectionPos>,
    /// The chain the record belongs to: the replica's name with `[audit] backend =
    /// "postgres"`, `null` in the file backend. Records written before the field existed
    /// lack the key (and still verify).
    #[serde(default)]
    pub replica: Option<String>,
    /// The previous record's hash (64 zeros for the first).
    pub prev: String,
    /// `hex(SHA-256(prev ‖ canonical JSON of this record without "hash"))`.
    pub hash: String,
}

impl AuditRecord {
    /// Builds the record for `entry` at `seq` of chain `replica` (`None` in the file backend)
    /// and computes its hash.
    pub fn seal(
        entry: AuditEntry,
        seq: u64,
        ts: String,
        prev: String,
        replica: Option<String>,
    ) -> Self {
        let mut record = Self {
            seq,
            ts,
            request_id: entry.request_id,
            caller: entry.caller,
            subject: entry.subject,
            purpose: entry.purpose,
            region: entry.region,
            route: entry.route,
            method: entry.method,
            path: entry.path,
            decision: entry.decision,
            reason: entry.reason,
            policy: entry.policy,
            consent: entry.consent,
            status: entry.status,
            fields_removed: entry.fields_removed,
            redactions: entry.redactions,
            collection: entry.collection,
            replica,
            prev,
            hash: String::new(),
        };
        let mut value = record.to_value();
        if let Value::Object(map) = &mut value {
            map.remove("hash");
        }
        record.hash = chain_hash(&record.prev, &to_canonical(&value));
        record
    }

    /// The record's log line (canonical JSON, without the trailing newline).
    pub fn to_line(&self) -> String {
        String::from_utf8(to_canonical(&self.to_value())).unwrap_or_default()
    }

    fn to_value(&self) -> Value {
        // Serializing plain strings, integers and maps cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// `hex(SHA-256(prev ‖ canonical))`.
pub(crate) fn chain_hash(prev: &str, canonical: &[u8]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev.as_bytes());
    ctx.update(canonical);
    hex(ctx.finish().as_ref())
}

/// Formats a time as the log's `ts` (UTC, milliseconds).
pub(crate) fn format_ts(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(TS_FORMAT)
        .unwrap_or_default()
}

/// Parses an RFC 3339 time (any offset), e.g. a query's `from`/`to`.
pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, AuditError> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|_| {
        AuditError::BadFilter("times must be RFC 3339, e.g. 2026-11-23T21:55:44Z".to_owned())
    })
}

/// What checking one line on its own found.
#[derive(Debug)]
pub(crate) enum LineCheck {
    /// The line is a well-formed record whose hash matches its content.
    Good(Box<AuditRecord>),
    /// The line parses as a record but its hash does not match its content.
    HashMismatch(Box<AuditRecord>),
    /// The line parses as a record but its bytes are not that record's canonical JSON (an
    /// edit that re-parses the same: whitespace, escapes, key order, duplicate keys).
    NotCanonical(Box<AuditRecord>),
    /// The line is not a record (why).
    Malformed(String),
}

/// Parses one log line and checks that its stored bytes are the canonical JSON of the record
/// and that its hash matches them (not its link to the previous record).
pub(crate) fn check_line(line: &[u8]) -> LineCheck {
    let mut value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(_) => return LineCheck::Malformed("line is not valid JSON".to_owned()),
    };
    let record: AuditRecord = match serde_json::from_value(value.clone()) {
        Ok(r) => r,
        Err(_) => {
            return LineCheck::Malformed(
                "line does not have the audit record's fields and types".to_owned(),
            );
        }
    };
    if to_canonical(&value) != line {
        return LineCheck::NotCanonical(Box::new(record));
    }
    if let Value::Object(map) = &mut value {
        map.remove("hash");
    }
    let expected = chain_hash(&record.prev, &to_canonical(&value));
    if expected == record.hash {
        LineCheck::Good(Box::new(record))
    } else {
        LineCheck::HashMismatch(Box::new(record))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn entry(subject: &str) -> AuditEntry {
        AuditEntry {
            request_id: "req-1".to_owned(),
            caller: Some("crm".to_owned()),
            subject: Some(subject.to_owned()),
            purpose: Some("support".to_owned()),
            region: Some("eu".to_owned()),
            route: Some("customers".to_owned()),
            method: "GET".to_owned(),
            path: format!("/api/customers/{subject}"),
            decision: Decision::Allow,
            reason: "consent_granted".to_owned(),
            policy: Some("eu@abc123".to_owned()),
            consent: ConsentUsed::Granted,
            status: 200,
            fields_removed: vec!["$.ssn".to_owned()],
            redactions: BTreeMap::from([("email".to_owned(), 2)]),
            collection: None,
        }
    }

    #[test]
    fn sealed_line_checks_and_has_every_key() {
        let mut e = entry("alice");
        e.caller = None;
        let r = AuditRecord::seal(
            e,
            1,
            "2026-11-23T21:55:44.123Z".into(),
            GENESIS_PREV.into(),
            None,
        );
        let line = r.to_line();
        assert!(line.contains(r#""caller":null"#));
        assert!(line.starts_with(
            r#"{"caller":null,"collection":null,"consent":"granted","decision":"allow""#
        ));
        assert!(line.contains(r#""region":"eu","replica":null,"request_id""#));
        match check_line(line.as_bytes()) {
            LineCheck::Good(back) => assert_eq!(*back, r),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hash_is_sha256_of_prev_and_canonical_without_hash() {
        let r = AuditRecord::seal(entry("a"), 1, "t".into(), GENESIS_PREV.into(), None);
        let mut v: Value = serde_json::from_str(&r.to_line()).unwrap();
        v.as_object_mut().unwrap().remove("hash");
        let mut msg = GENESIS_PREV.as_bytes().to_vec();
        msg.extend_from_slice(&to_canonical(&v));
        let d = digest::digest(&digest::SHA256, &msg);
        assert_eq!(r.hash, hex(d.as_ref()));
    }

    #[test]
    fn edited_line_is_a_hash_mismatch() {
        let r = AuditRecord::seal(entry("a"), 1, "t".into(), GENESIS_PREV.into(), None);
        let line = r.to_line().replace("\"status\":200", "\"status\":201");
        assert!(matches!(
            check_line(line.as_bytes()),
            LineCheck::HashMismatch(_)
        ));
        assert!(matches!(
            check_line(b"{\"seq\":3}"),
            LineCheck::Malformed(_)
        ));
    }

    #[test]
    fn byte_edits_that_parse_the_same_are_not_canonical() {
        let r = AuditRecord::seal(entry("a"), 1, "t".into(), GENESIS_PREV.into(), None);
        let line = r.to_line();
        let edits = [
            line.replacen(',', ", ", 1),
            line.replacen("\"GET\"", "\"\\u0047ET\"", 1),
            format!("{line} "),
            line.replacen("{", "{\"status\":500,", 1),
            line.replacen(
                "\"caller\":\"crm\",\"collection\":null",
                "\"collection\":null,\"caller\":\"crm\"",
                1,
            ),
        ];
        for edited in edits {
            assert_ne!(edited, line);
            assert!(
                matches!(check_line(edited.as_bytes()), LineCheck::NotCanonical(_)),
                "{edited}"
            );
        }
    }

    #[test]
    fn new_entry_has_defaults() {
        let e = AuditEntry::new("r", "GET", "/p", Decision::Deny, "unauthenticated", 401);
        assert_eq!(
            (e.caller, e.subject, e.consent, e.fields_removed.len()),
            (None, None, ConsentUsed::NotApplicable, 0)
        );
    }

    #[test]
    fn consent_and_decision_wire_names() {
        assert_eq!(
            serde_json::to_string(&ConsentUsed::NotApplicable).unwrap(),
            "\"n/a\""
        );
        assert_eq!(ConsentUsed::NotApplicable.as_str(), "n/a");
        assert_eq!(
            "report_deny".parse::<Decision>().unwrap(),
            Decision::ReportDeny
        );
        assert!("maybe".parse::<Decision>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_entry_seals_to_a_line_that_checks(
            subject in proptest::option::of("\\PC*"),
            caller in proptest::option::of("\\PC{0,8}"),
            route in proptest::option::of("[a-z]{0,8}"),
            path in "[\\x00-\\x7f]{0,40}",
            reason in "\\PC{0,20}",
            fields in proptest::collection::vec("\\PC{0,8}", 0..4),
            // Redactor names beyond ASCII, so UTF-16 order (JCS) and UTF-8 order differ.
            names in proptest::collection::vec("[a-z\\u{e000}-\\u{e002}\\u{1f600}\"]{0,3}", 0..4),
            // JCS numbers are doubles: seqs and counts are exact below 2^53.
            count in 0u64..=1 << 53,
            seq in 1u64..=1 << 53,
            collection in proptest::option::of((0u64..1 << 53, proptest::option::of(0u64..1 << 53))),
            replica in proptest::option::of("[a-z0-9-]{1,8}"),
            status in 100u16..600,
        ) {
            let mut e = entry("x");
            e.subject = subject;
            e.caller = caller;
            e.route = route;
            e.path = path;
            e.reason = reason;
            e.status = status;
            e.fields_removed = fields;
            e.collection = collection.map(|(index, count)| CollectionPos { index, count });
            e.redactions.insert("r\"x".to_owned(), count);
            for name in names {
                e.redactions.insert(name, count / 2);
            }
            let prepared = Prepared::new(&e);
            let mut buf = b"earlier line\n".to_vec();
            let hash = prepared.seal_into(seq, "t", GENESIS_PREV, replica.as_deref(), &mut buf);
            let r = AuditRecord::seal(e, seq, "t".into(), GENESIS_PREV.into(), replica);
            let line = r.to_line();
            // The fast path writes exactly what the generic sealing does.
            let want = format!("{line}\n");
            proptest::prop_assert_eq!(&buf[13..], want.as_bytes());
            proptest::prop_assert_eq!(&hash, &r.hash);
            proptest::prop_assert!(!line.contains('\n'));
            match check_line(line.as_bytes()) {
                LineCheck::Good(back) => proptest::prop_assert_eq!(*back, r),
                other => proptest::prop_assert!(false, "{:?}", other),
            }
        }
    }

    #[test]
    fn ts_format_is_utc_millis() {
        let t = time::macros::datetime!(2026-11-23 22:55:44.123456 +01:00);
        assert_eq!(format_ts(t), "2026-11-23T21:55:44.123Z");
        assert!(parse_rfc3339("2026-11-23T21:55:44Z").is_ok());
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
