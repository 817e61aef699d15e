//! Export of matching records as JSON lines or CSV.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::str::FromStr;

use super::error::AuditError;
use super::query::{Filter, scan_from};
use super::record::AuditRecord;

/// Export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The records' JSON lines as stored.
    #[default]
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

impl FromStr for Format {
    type Err = AuditError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            _ => Err(AuditError::BadFilter(
                "format must be jsonl or csv".to_owned(),
            )),
        }
    }
}

const CSV_HEADER: &str = "seq,ts,request_id,caller,subject,purpose,region,route,method,path,decision,reason,policy,consent,status,fields_removed,redactions,collection,prev,hash\r\n";

/// Writes every record matching `filter` (oldest first; `filter.limit`, if set, caps
/// the count) to `out`. CSV: `fields_removed` joined by `;`, `redactions` as
/// `name=count;…`, absent values empty, fields quoted per RFC 4180 (CRLF line ends).
/// Values are written as recorded (no spreadsheet-formula escaping). Returns the
/// number of records written.
pub fn export(
    dir: &Path,
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, AuditError> {
    if format == Format::Csv {
        out.write_all(CSV_HEADER.as_bytes())
            .map_err(AuditError::Export)?;
    }
    let cap = filter.limit.map_or(u64::MAX, |l| l as u64);
    let mut n = 0u64;
    let mut row = String::new();
    scan_from(dir, filter, 1, |line, record| {
        if n >= cap {
            return Ok(ControlFlow::Break(()));
        }
        match format {
            Format::Jsonl => {
                out.write_all(line.as_bytes()).map_err(AuditError::Export)?;
                out.write_all(b"\n").map_err(AuditError::Export)?;
            }
            Format::Csv => {
                row.clear();
                csv_row(record, &mut row);
                out.write_all(row.as_bytes()).map_err(AuditError::Export)?;
            }
        }
        n += 1;
        Ok(ControlFlow::Continue(()))
    })?;
    out.flush().map_err(AuditError::Export)?;
    Ok(n)
}

/// Appends `record` as one CSV row (with CRLF).
pub(crate) fn csv_row(r: &AuditRecord, out: &mut String) {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let redactions = r
        .redactions
        .iter()
        .fold(String::new(), |mut acc, (name, count)| {
            if !acc.is_empty() {
                acc.push(';');
            }
            let _ = write!(acc, "{name}={count}");
            acc
        });
    let fields = [
        r.seq.to_string(),
        r.ts.clone(),
        r.request_id.clone(),
        opt(&r.caller),
        opt(&r.subject),
        opt(&r.purpose),
        opt(&r.region),
        opt(&r.route),
        r.method.clone(),
        r.path.clone(),
        r.decision.as_str().to_owned(),
        r.reason.clone(),
        opt(&r.policy),
        r.consent.as_str().to_owned(),
        r.status.to_string(),
        r.fields_removed.join(";"),
        redactions,
        // `index/count` (`index/` in a stream); empty for a single-subject request.
        r.collection.map_or_else(String::new, |c| {
            format!(
                "{}/{}",
                c.index,
                c.count.map_or_else(String::new, |n| n.to_string())
            )
        }),
        r.prev.clone(),
        r.hash.clone(),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&csv_field(field));
    }
    out.push_str("\r\n");
}

/// Quotes a CSV field when it holds a comma, quote, CR or LF, or starts or ends
/// with a space; quotes inside are doubled.
pub(crate) fn csv_field(s: &str) -> Cow<'_, str> {
    let needs = s.contains([',', '"', '\r', '\n']) || s.starts_with(' ') || s.ends_with(' ');
    if needs {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::record::GENESIS_PREV;
    use crate::audit::record::tests::entry;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_field("cr\r"), "\"cr\r\"");
        assert_eq!(csv_field(" pad"), "\" pad\"");
        assert_eq!(csv_field(""), "");
    }

    #[test]
    fn csv_row_joins_lists_and_maps() {
        let mut e = entry("al,ice");
        e.fields_removed = vec!["$.a".into(), "$.b".into()];
        e.redactions.insert("phone".into(), 1);
        e.region = None;
        e.reason = "quote \" here".into();
        let r = AuditRecord::seal(e, 9, "2026-01-01T00:00:00.000Z".into(), GENESIS_PREV.into());
        let mut row = String::new();
        csv_row(&r, &mut row);
        let expected = format!(
            "9,2026-01-01T00:00:00.000Z,req-1,crm,\"al,ice\",support,,customers,GET,\"/api/customers/al,ice\",allow,\"quote \"\" here\",eu@abc123,granted,200,$.a;$.b,email=2;phone=1,,{GENESIS_PREV},{}\r\n",
            r.hash
        );
        assert_eq!(row, expected);
        let mut e = entry("bob");
        e.collection = Some(crate::audit::CollectionPos {
            index: 3,
            count: Some(10),
        });
        let r = AuditRecord::seal(e, 9, "t".into(), GENESIS_PREV.into());
        let mut row = String::new();
        csv_row(&r, &mut row);
        assert!(row.contains(",email=2,3/10,"), "{row}");
        assert_eq!(CSV_HEADER.matches(',').count(), row.matches(',').count());
    }

    #[test]
    fn format_parses() {
        assert_eq!("csv".parse::<Format>().unwrap(), Format::Csv);
        assert_eq!("jsonl".parse::<Format>().unwrap(), Format::Jsonl);
        assert!("xml".parse::<Format>().is_err());
    }
}
