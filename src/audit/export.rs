//! Export of matching records as JSON lines or CSV.

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

/// The CSV columns, in order.
const CSV_HEADER: [&str; 21] = [
    "seq",
    "ts",
    "request_id",
    "caller",
    "subject",
    "purpose",
    "region",
    "route",
    "method",
    "path",
    "decision",
    "reason",
    "policy",
    "consent",
    "status",
    "fields_removed",
    "redactions",
    "collection",
    "replica",
    "prev",
    "hash",
];

/// Writes every record matching `filter` (oldest first; `filter.limit`, if set, caps
/// the count) to `out`. CSV (RFC 4180 through the `csv` crate, CRLF line ends): a header
/// row, `fields_removed` joined by `;`, `redactions` as `name=count;…`, absent values
/// empty, and every cell that a spreadsheet would take for a formula (one starting with
/// `=`, `+`, `-`, `@`, a tab or a CR) prefixed with `'`, so that opening an export never
/// runs what a caller put into a name or a path. JSON lines are the records as stored.
/// Returns the number of records written.
pub fn export(
    dir: &Path,
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, AuditError> {
    let mut exporter = Exporter::new(format, filter, out)?;
    scan_from(dir, filter, 1, |line, record| exporter.write(line, record))?;
    exporter.finish()
}

/// Writes records one by one in an export [`Format`] (see [`export`]), up to a cap.
pub(crate) struct Exporter<'a> {
    out: Sink<'a>,
    cap: u64,
    n: u64,
}

enum Sink<'a> {
    Csv(Box<csv::Writer<&'a mut dyn Write>>),
    Jsonl(&'a mut dyn Write),
}

fn csv_error(e: csv::Error) -> AuditError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => AuditError::Export(io),
        other => AuditError::Export(std::io::Error::other(format!("{other:?}"))),
    }
}

impl<'a> Exporter<'a> {
    /// Starts an export to `out` (the CSV header is written here).
    pub(crate) fn new(
        format: Format,
        filter: &Filter,
        out: &'a mut dyn Write,
    ) -> Result<Self, AuditError> {
        let out = match format {
            Format::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(out);
                w.write_record(CSV_HEADER).map_err(csv_error)?;
                Sink::Csv(Box::new(w))
            }
            Format::Jsonl => Sink::Jsonl(out),
        };
        Ok(Self {
            out,
            cap: filter.limit.map_or(u64::MAX, |l| l as u64),
            n: 0,
        })
    }

    /// Writes one record (its stored line, or its CSV row); breaks once the cap is reached.
    pub(crate) fn write(
        &mut self,
        line: &str,
        record: &AuditRecord,
    ) -> Result<ControlFlow<()>, AuditError> {
        if self.n >= self.cap {
            return Ok(ControlFlow::Break(()));
        }
        match &mut self.out {
            Sink::Csv(w) => w.write_record(csv_cells(record)).map_err(csv_error)?,
            Sink::Jsonl(out) => {
                out.write_all(line.as_bytes()).map_err(AuditError::Export)?;
                out.write_all(b"\n").map_err(AuditError::Export)?;
            }
        }
        self.n += 1;
        Ok(ControlFlow::Continue(()))
    }

    /// Flushes; returns the number of records written.
    pub(crate) fn finish(self) -> Result<u64, AuditError> {
        match self.out {
            Sink::Csv(mut w) => w.flush().map_err(AuditError::Export)?,
            Sink::Jsonl(out) => out.flush().map_err(AuditError::Export)?,
        }
        Ok(self.n)
    }
}

/// `record`'s CSV cells, neutralised.
pub(crate) fn csv_cells(r: &AuditRecord) -> Vec<String> {
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
    [
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
        opt(&r.replica),
        r.prev.clone(),
        r.hash.clone(),
    ]
    .into_iter()
    .map(neutralise)
    .collect()
}

/// Prefixes `'` to a cell that a spreadsheet would evaluate as a formula (OWASP's CSV
/// injection advice): one starting with `=`, `+`, `-`, `@`, a tab or a carriage return.
pub(crate) fn neutralise(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::record::GENESIS_PREV;
    use crate::audit::record::tests::entry;

    fn csv_of(records: &[AuditRecord]) -> String {
        let mut out = Vec::new();
        {
            let mut w = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(&mut out);
            for r in records {
                w.write_record(csv_cells(r)).unwrap();
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formula_cells_are_neutralised() {
        for bad in ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(bad.to_owned()), format!("'{bad}"));
        }
        for good in ["plain", "a=b", "", "1"] {
            assert_eq!(neutralise(good.to_owned()), good);
        }
    }

    #[test]
    fn csv_rows_quote_and_neutralise_outside_text() {
        let mut e = entry("al,ice");
        e.caller = Some("=HYPERLINK(\"http://x\")".into());
        e.fields_removed = vec!["$.a".into(), "$.b".into()];
        e.redactions.insert("phone".into(), 1);
        e.region = None;
        e.reason = "quote \" here".into();
        e.request_id = "@cmd".into();
        let r = AuditRecord::seal(
            e,
            9,
            "2026-01-01T00:00:00.000Z".into(),
            GENESIS_PREV.into(),
            None,
        );
        let row = csv_of(std::slice::from_ref(&r));
        let expected = format!(
            "9,2026-01-01T00:00:00.000Z,'@cmd,\"'=HYPERLINK(\"\"http://x\"\")\",\"al,ice\",support,,customers,GET,\"/api/customers/al,ice\",allow,\"quote \"\" here\",eu@abc123,granted,200,$.a;$.b,email=2;phone=1,,,{GENESIS_PREV},{}\r\n",
            r.hash
        );
        assert_eq!(row, expected);
        // Read back with the csv crate: the same cells, one record, 21 columns.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(row.as_bytes());
        let back: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].len(), CSV_HEADER.len());
        assert_eq!(&back[0][3], "'=HYPERLINK(\"http://x\")");
        let mut e = entry("bob");
        e.collection = Some(crate::audit::CollectionPos {
            index: 3,
            count: Some(10),
        });
        let r = AuditRecord::seal(e, 9, "t".into(), GENESIS_PREV.into(), None);
        assert!(csv_of(std::slice::from_ref(&r)).contains(",email=2,3/10,"));
    }

    #[test]
    fn format_parses() {
        assert_eq!("csv".parse::<Format>().unwrap(), Format::Csv);
        assert_eq!("jsonl".parse::<Format>().unwrap(), Format::Jsonl);
        assert!("xml".parse::<Format>().is_err());
    }
}
